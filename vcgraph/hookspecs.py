"""The hooks a vcgraph plugin can implement.

A plugin is a module (or object) with functions marked ``@vcgraph.hookimpl`` and named after
the specifications below. Installed packages expose their plugin through an entry point in
the ``vcgraph`` group::

    [project.entry-points.vcgraph]
    echo = "vcgraph_echo"
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("vcgraph")
hookimpl = pluggy.HookimplMarker("vcgraph")


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
