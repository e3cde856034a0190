"""Graph algorithms on node names: dependency order (``graphlib``) and reachability.

Both take ``deps``: node name → the names it reads from, in declaration order. Names that
are not keys (graph inputs) are ignored.
"""
from __future__ import annotations

from graphlib import CycleError, TopologicalSorter
from typing import Iterable, Mapping

__all__ = ["CycleError", "dependents", "reachable", "topological_order"]


def topological_order(deps: Mapping[str, Iterable[str]]) -> list[str]:
    """Dependency order; among nodes ready at the same time, the one declared first runs
    first (so a graph file reads top to bottom). Raises :class:`graphlib.CycleError`, whose
    ``args[1]`` is one cycle (``[a, b, a]``)."""
    position = {name: i for i, name in enumerate(deps)}
    sorter = TopologicalSorter({n: [d for d in ds if d in position] for n, ds in deps.items()})
    sorter.prepare()
    ready: list[str] = []
    order: list[str] = []
    while sorter.is_active():
        ready.extend(sorter.get_ready())
        ready.sort(key=position.__getitem__)
        name = ready.pop(0)
        order.append(name)
        sorter.done(name)
    return order


def reachable(starts: Iterable[str], neighbours: Mapping[str, Iterable[str]]) -> set[str]:
    """``starts`` and every name reachable from them through ``neighbours``."""
    seen = set(starts)
    todo = list(seen)
    while todo:
        for nxt in neighbours.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def dependents(deps: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """The reverse of ``deps``: node name → the nodes that read from it."""
    out: dict[str, list[str]] = {n: [] for n in deps}
    for name, ds in deps.items():
        for d in ds:
            if d in out:
                out[d].append(name)
    return out
