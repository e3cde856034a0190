"""The hooks a vcgraph plugin can implement.

A plugin is a module (or object) with functions marked ``@vcgraph.hookimpl`` and named after
the specifications below; a misspelt name is an error (the plugin is listed as failed by
``vcgraph plugins``). Installed packages expose their plugin through an entry point in the
``vcgraph`` group::

    [project.entry-points.vcgraph]
    echo = "vcgraph_echo"

An implementation may accept any subset of a hook's arguments.
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("vcgraph")
hookimpl = pluggy.HookimplMarker("vcgraph")


# -- what a plugin provides ------------------------------------------------------------------
@hookspec
def register_stages(register):
    """Register stage types: call ``register(StageClass)`` once for each stage type."""


@hookspec
def register_commands(subparsers):
    """Add subcommands to the ``vcgraph`` CLI (an ``argparse`` subparsers object).

    Set ``func`` with ``parser.set_defaults(func=...)``; it receives the parsed arguments.
    """


@hookspec
def register_value_types(register):
    """Teach the CLI to read graph inputs of a type from files or text.

    Call ``register(type_name, load)`` where ``load(text) -> value`` turns the text after
    ``--input NAME=`` (usually a path) into the value a graph input of that type expects.
    """


@hookspec
def register_bench_baselines(register):
    """Give ``vcgraph bench`` a reference workload: ``register(name, run)``.

    ``run(audio)`` does a fixed amount of plain work on an :class:`~vcgraph.audio.Audio`
    (say, the transforms a stage type is built from); bench times it on the same audio as
    the graph, so figures read as ratios on a noisy machine.
    """


# -- observing runs (as Kedro's node hooks) ----------------------------------------------------
@hookspec
def before_node_run(node, inputs, graph):
    """Called before a node runs: ``node`` (a :class:`~vcgraph.graph.Node`), its ``inputs``
    by port name, and the :class:`~vcgraph.graph.Graph`. Observe only: do not change them."""


@hookspec
def after_node_run(node, inputs, outputs, report, graph):
    """Called after a node produced ``outputs``; ``report`` is its
    :class:`~vcgraph.report.NodeReport` (implementation, device, attempts, seconds)."""


@hookspec
def on_node_error(node, inputs, error, report, graph):
    """Called when a node fails (bad input, or every implementation failed) with the error
    the run is about to raise or fall back from."""
