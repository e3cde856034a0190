"""What the CLI's commands share, and plugin commands may use: loading a graph with
``--set`` overrides, reading ``--input NAME=VALUE``, running with a progress bar and the
report, writing outputs. Imports are deferred so that ``vcgraph --help`` stays fast.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from .errors import UserError


def load_pipeline(config: str, overrides: list[str], **options: Any):
    """Load and build a graph file with CLI overrides (shared by commands)."""
    from .pipeline import Pipeline
    return Pipeline.from_yaml(config, overrides, **options)


def run_with_feedback(pipe, inputs: dict[str, Any], args: argparse.Namespace, write) -> int:
    """Run ``pipe`` with a progress bar (unless ``--no-progress``/``--json``), call
    ``write(outputs)``, then print the report as ``--json`` or ``--report`` ask and warn
    about fallbacks. Returns the exit status: 1 when the graph failed and the outputs
    written are its fallback's, else 0."""
    from .progress import ProgressBar
    bar = None if args.no_progress or args.json else ProgressBar(pipe.graph.name)
    result = pipe.run(inputs, progress_callback=bar)
    if bar:
        bar.close()
    write(result.outputs)
    if args.json:
        print(json.dumps(result.report.to_dict(), indent=2, default=str))
    elif args.report:
        print(result.report.format_table())
    print_run_warnings(result.report)
    return 1 if result.report.fallback_used else 0


def print_run_warnings(report) -> None:
    """Tell the user on stderr about every node that fell back, and a graph-level fallback."""
    for node in report.nodes.values():
        if node.implementation and node.attempts and not node.attempts[0].ok:
            print(f"vcgraph: warning: node '{node.node}' fell back to {node.implementation}: {node.errors[0]}",
                  file=sys.stderr)
    if report.fallback_used:
        lines = str(report.error or "").splitlines()
        print(f"vcgraph: failed: the graph failed ({lines[0] if lines else 'unknown error'}); "
              "the outputs written are the fallback's", file=sys.stderr)


def parse_inputs(declared: dict, items: list[str]) -> dict[str, Any]:
    """Turn ``NAME=VALUE`` strings into graph inputs, read by each input's declared type."""
    from .plugins import get_registry
    loaders = get_registry().value_loaders()
    inputs: dict[str, Any] = {}
    for item in items:
        name, eq, text = item.partition("=")
        if not eq:
            raise UserError(f"--input '{item}' is not of the form NAME=VALUE")
        if name not in declared:
            raise UserError(f"the graph has no input '{name}' (inputs: {', '.join(declared) or 'none'})")
        kind = declared[name].type
        load = loaders.get(kind)
        if load is None and kind != "any":
            raise UserError(f"no plugin reads values of type '{kind}' for input '{name}'")
        try:
            inputs[name] = load(text) if load else text
        except UserError:
            raise
        except Exception as exc:
            raise UserError(f"input '{name}': cannot read '{text}' as {kind}: {exc}") from None
    return inputs


def write_outputs(outputs: dict[str, Any], output: str | None, output_dir: str | None) -> None:
    """Write graph outputs: ``output`` for a single one, ``output_dir`` for all."""
    import numpy as np
    from .audio import Audio
    if output:
        if len(outputs) != 1:
            raise UserError(f"-o needs a graph with one output; this one has {', '.join(outputs)}: use --output-dir")
        save_value(output, next(iter(outputs.values())))
    if output_dir:
        for name, value in outputs.items():
            ext = ".wav" if isinstance(value, Audio) else ".npy" if isinstance(value, np.ndarray) else ".json"
            save_value(os.path.join(output_dir, name + ext), value)


def save_value(path: str, value: Any) -> None:
    """Save one output value by its type."""
    import numpy as np
    from .audio import Audio, write_audio
    if isinstance(value, Audio):
        write_audio(path, value)
    elif isinstance(value, np.ndarray) or hasattr(value, "numpy"):
        np.save(path, np.asarray(value))
    else:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(value, fh, indent=2, default=str)
