"""Do two implementation kinds of each node agree? (``cuda`` against ``cpu``, typically.)

:func:`compare_kinds` runs a graph once with the reference kind (``cpu``), keeping every
node's inputs and outputs, then feeds each node that also offers the other kind the *same*
inputs through that kind and compares the outputs, so a difference is the node's own and
not one carried from upstream. Values are compared by walking them: arrays and tensors
(moved to the host), named tuples and dataclasses field by field, dicts, lists, numbers;
anything else must be equal. The measure is the relative RMS error of each numeric leaf,
``||a - b|| / max(||a||, tiny)``, and a node agrees when its worst leaf is within ``rtol``.

    rows = compare_kinds("configs/fast.yaml", {"audio": audio, "target": profile})
    print(format_parity(rows))

The engine knows nothing about what the values mean: stage-specific tolerances are the
caller's business (``rtol`` per node).
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .graph import GRAPH_INPUTS
from .pipeline import Pipeline
from .stage import RunContext

DEFAULT_RTOL = 1e-3


@dataclass
class NodeParity:
    """How one node's ``kind`` output compares with its ``reference`` output on the same inputs."""

    node: str
    stage: str
    reference: str
    kind: str
    rtol: float
    worst: float | None = None           # the largest relative RMS error over the outputs' leaves
    leaves: dict[str, float] = field(default_factory=dict)  # path -> relative RMS error
    mismatched: list[str] = field(default_factory=list)     # paths whose structure or value differs
    skipped: str | None = None           # why the node was not compared
    error: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool | None:
        if self.skipped:
            return None
        return self.error is None and not self.mismatched and (self.worst or 0.0) <= self.rtol


def _host(x: Any) -> Any:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        return x.detach().cpu().numpy()
    return x


def differences(a: Any, b: Any, path: str = "") -> tuple[dict[str, float], list[str]]:
    """(relative RMS error per numeric leaf, paths that differ in structure or non-numeric value)."""
    a, b = _host(a), _host(b)
    errs: dict[str, float] = {}
    bad: list[str] = []
    here = path or "."
    if isinstance(a, tuple) and hasattr(a, "_fields"):
        if type(a) is not type(b):
            return errs, [here]
        for name in a._fields:
            e, m = differences(getattr(a, name), getattr(b, name), f"{path}.{name}")
            errs.update(e); bad += m
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        if type(a) is not type(b):
            return errs, [here]
        for f in dataclasses.fields(a):
            e, m = differences(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
            errs.update(e); bad += m
    elif isinstance(a, dict):
        if not isinstance(b, dict) or set(a) != set(b):
            return errs, [here]
        for k in a:
            e, m = differences(a[k], b[k], f"{path}[{k!r}]")
            errs.update(e); bad += m
    elif isinstance(a, (list, tuple)) and not (a and isinstance(a[0], (int, float)) and not isinstance(a[0], bool)):
        if not isinstance(b, (list, tuple)) or len(a) != len(b):
            return errs, [here]
        for i, (x, y) in enumerate(zip(a, b)):
            e, m = differences(x, y, f"{path}[{i}]")
            errs.update(e); bad += m
    elif isinstance(a, (np.ndarray, np.generic, float, int, list, tuple)) and not isinstance(a, bool):
        x, y = np.asarray(a), np.asarray(b)
        if x.shape != y.shape:
            return errs, [f"{here} (shape {x.shape} vs {y.shape})"]
        if x.dtype.kind in "fciu" and y.dtype.kind in "fciu":
            x64, y64 = x.astype(np.complex128 if "c" in x.dtype.kind + y.dtype.kind else np.float64), \
                y.astype(np.complex128 if "c" in x.dtype.kind + y.dtype.kind else np.float64)
            if not (np.isfinite(x64).all() and np.isfinite(y64).all()):
                same = np.array_equal(np.isfinite(x64), np.isfinite(y64))
                keep = np.isfinite(x64) & np.isfinite(y64)
                if not same:
                    bad.append(f"{here} (non-finite values differ)")
                x64, y64 = x64[keep], y64[keep]
            norm = float(np.linalg.norm(x64.ravel()))
            diff = float(np.linalg.norm((x64 - y64).ravel()))
            errs[here] = diff / max(norm, 1e-12) if norm > 0 or diff > 0 else 0.0
        elif not np.array_equal(x, y):
            bad.append(here)
    else:
        try:
            same = a == b
            same = bool(same) if not isinstance(same, np.ndarray) else bool(same.all())
        except Exception:  # noqa: BLE001 - incomparable values differ
            same = False
        if not same:
            bad.append(here)
    return errs, bad


def _capture(pipe: Pipeline, inputs: dict[str, Any], kind: str) -> dict[str, tuple[dict, dict, float]]:
    """Run the graph node by node with ``kind`` where offered; keep each node's (args, outputs, seconds)."""
    import time
    ex = pipe.executor
    values: dict[Any, Any] = {(GRAPH_INPUTS, k): v for k, v in inputs.items()}
    seen: dict[str, tuple[dict, dict, float]] = {}
    for node in pipe.graph.nodes.values():
        args = {port: values.get(ref) for port, ref in node.inputs.items()}
        for port in node.stage_cls.inputs:
            args.setdefault(port, None)
        impls = node.stage_cls.implementations()
        use = kind if kind in impls else next(k for k in node.kinds if k in impls and
                                               not node.stage_cls.unavailable_reason(k))
        device = impls[use].device
        stage = ex.stage(node, use, device)
        t0 = time.perf_counter()
        outs = stage.call(use, RunContext(node.name, use, device, {}), dict(args))
        seen[node.name] = (args, outs, time.perf_counter() - t0)
        for port, value in outs.items():
            values[(node.name, port)] = value
    return seen


def compare_kinds(config: str | os.PathLike | dict | Pipeline, inputs: dict[str, Any], kind: str = "cuda",
                  reference: str = "cpu", rtol: float | dict[str, float] = DEFAULT_RTOL,
                  overrides: list[str] | None = None, warm: bool = True) -> list[NodeParity]:
    """Compare every node's ``kind`` implementation with its ``reference`` one on identical inputs.

    ``rtol``: one tolerance, or one per node name (others get :data:`DEFAULT_RTOL`).
    ``warm``: run each implementation once before the timed, compared call.
    """
    pipe = config if isinstance(config, Pipeline) else Pipeline.from_yaml(config, overrides, max_retries=0,
                                                                           fallback_on_error=False)
    captured = _capture(pipe, inputs, reference)
    rows: list[NodeParity] = []
    for node in pipe.graph.nodes.values():
        tol = rtol.get(node.name, DEFAULT_RTOL) if isinstance(rtol, dict) else rtol
        row = NodeParity(node.name, node.stage_cls.name, reference, kind, tol)
        rows.append(row)
        impls = node.stage_cls.implementations()
        if kind not in impls or reference not in impls:
            missing = kind if kind not in impls else reference
            row.skipped = f"stage '{node.stage_cls.name}' has no {missing} implementation"
            continue
        reason = node.stage_cls.unavailable_reason(kind) or node.stage_cls.unavailable_reason(reference)
        if reason:
            row.skipped = reason
            continue
        args, ref_out, ref_s = captured[node.name]
        row.seconds[reference] = ref_s
        device = impls[kind].device
        try:
            import time
            stage = pipe.executor.stage(node, kind, device)
            if warm:
                stage.call(kind, RunContext(node.name, kind, device, {}), dict(args))
            _sync(device)
            t0 = time.perf_counter()
            out = stage.call(kind, RunContext(node.name, kind, device, {}), dict(args))
            _sync(device)
            row.seconds[kind] = time.perf_counter() - t0
        except Exception as exc:  # noqa: BLE001 - a failing implementation is a finding, not a crash
            row.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            continue
        row.leaves, row.mismatched = differences(ref_out, out)
        finite = [v for v in row.leaves.values() if math.isfinite(v)]
        row.worst = max(finite) if finite else 0.0
    return rows


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch
        torch.cuda.synchronize()


def format_parity(rows: list[NodeParity]) -> str:
    """One line per node: agreement, worst relative RMS error and where, times per kind."""
    lines = []
    for r in rows:
        if r.skipped:
            lines.append(f"{r.node:<20} {r.stage:<18} skipped: {r.skipped}")
            continue
        if r.error:
            lines.append(f"{r.node:<20} {r.stage:<18} FAIL {r.kind} raised {r.error}")
            continue
        where = max(r.leaves, key=r.leaves.get) if r.leaves else "-"
        verdict = "ok  " if r.ok else "FAIL"
        times = ", ".join(f"{k} {s * 1e3:.1f} ms" for k, s in r.seconds.items())
        extra = f"; differs: {', '.join(r.mismatched[:4])}" if r.mismatched else ""
        lines.append(f"{r.node:<20} {r.stage:<18} {verdict} worst rel. RMS {r.worst:.2e} (<= {r.rtol:g}) at "
                     f"{where}; {times}{extra}")
    return "\n".join(lines)


def rows_to_dicts(rows: list[NodeParity]) -> list[dict]:
    return [dict(dataclasses.asdict(r), ok=r.ok) for r in rows]
