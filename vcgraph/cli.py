"""The ``vcgraph`` command line.

User mistakes end with exit status 2 and one line on stderr (``--debug`` shows the
traceback); a failed run ends with status 1. Plugins add subcommands through the
``register_commands`` hook.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from typing import Sequence

from . import __version__
from .cli_helpers import (load_pipeline, parse_inputs, print_run_warnings, run_with_feedback,  # noqa: F401
                          save_value, write_outputs)
from .errors import ConfigErrors, UserError, VCGraphError
from .plugins import autoload_note, get_registry

EXAMPLES = """\
examples:
  vcgraph plugins                          what is installed, and which implementations run here
  vcgraph inspect preprocess               a stage's config keys, defaults and ports
  vcgraph validate configs/fast.yaml       check a graph without running it
  vcgraph graph configs/fast.yaml          Mermaid text of the graph (--format dot for Graphviz)
  vcgraph run GRAPH.yaml --input audio=in.wav -o out.wav --set nodes.NODE.config.KEY=VALUE
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vcgraph", description="Run graphs of plugin stages, declared in YAML and validated before they run.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"vcgraph {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.set_defaults(_commands=sub)

    p = sub.add_parser("run", help="run a graph file on inputs",
                       description="Run a graph. Inputs are given as NAME=VALUE; the value is read by "
                                   "the graph input's type (audio: a sound file, array: .npy, ...).")
    p.add_argument("config", help="graph YAML file")
    _add_set(p)
    p.add_argument("--input", "-i", action="append", default=[], metavar="NAME=VALUE",
                   help="a graph input (repeatable)")
    p.add_argument("-o", "--output", metavar="PATH", help="write the graph's only output here "
                   "(audio as .wav, arrays as .npy, anything else as JSON)")
    p.add_argument("--output-dir", metavar="DIR", help="write every output to DIR/NAME.<ext>")
    p.add_argument("--report", action="store_true", help="print which implementation ran per node")
    p.add_argument("--json", action="store_true", help="print the run report as JSON on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("plugins", help="list installed plugins and their stage types")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("inspect", help="show a stage type's config schema, ports and implementations")
    p.add_argument("stage", help="stage type name (see `vcgraph plugins`)")
    p.add_argument("--json", action="store_true", help="JSON: the config's JSON Schema, ports and implementations")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("validate", help="check a graph file without running it")
    p.add_argument("config")
    _add_set(p)
    p.add_argument("--strict", action="store_true", help="treat warnings (unused nodes/inputs) as errors")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("graph", help="print a graph as Mermaid or DOT text")
    p.add_argument("config")
    _add_set(p)
    p.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    p.set_defaults(func=cmd_graph)

    from .bench_cli import add_bench_command
    add_bench_command(sub)

    # a plugin whose hook fails (a lazy import, say) is recorded like a plugin that failed
    # to load, so `vcgraph plugins` still works
    get_registry().add_commands(sub)
    for command in sub.choices.values():  # `vcgraph COMMAND ... --debug` works too
        if not any("--debug" in a.option_strings for a in command._actions):
            command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                 help="show tracebacks and debug logging")
    return parser


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", "-s", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a config value by dotted path, e.g. settings.use_cuda=false (repeatable)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    hint = _missing_command_hint(parser, argv)
    if hint:
        print(f"vcgraph: error: {hint}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="vcgraph: %(levelname)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("vcgraph: interrupted", file=sys.stderr)
        return 130
    except VCGraphError as exc:
        if args.debug:  # the traceback, then the same line and status as without --debug
            traceback.print_exc()
        if isinstance(exc, UserError):
            text = str(exc) if isinstance(exc, ConfigErrors) else _first_line(exc)
            print(f"vcgraph: error: {text}", file=sys.stderr)
            return 2
        print(f"vcgraph: failed: {_first_line(exc)}", file=sys.stderr)
        return 1


def _missing_command_hint(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """When the command is unknown because plugins were not loaded, say so (argparse would
    only list the commands there are)."""
    command = next((a for a in argv if not a.startswith("-")), None)
    note = autoload_note()
    if command is None or note is None or command in parser.get_default("_commands").choices:
        return None
    return f"unknown command '{command}': {note}, and commands such as `convert` come from plugins"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__


# -- commands --------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    pipe = load_pipeline(args.config, args.overrides)
    inputs = parse_inputs(pipe.graph.spec.inputs, args.input)
    check_outputs_writable(pipe.graph, args.output, args.output_dir)
    return run_with_feedback(pipe, inputs, args,
                             lambda outputs: write_outputs(outputs, args.output, args.output_dir))


def check_outputs_writable(graph, output: str | None, output_dir: str | None) -> None:
    """Check ``-o`` / ``--output-dir`` before running, so a bad path costs no work."""
    import os
    from .audio import check_audio_output, check_output_path
    if output:
        if len(graph.outputs) != 1:
            raise UserError(f"-o needs a graph with one output; this one has {', '.join(graph.outputs)}: "
                            "use --output-dir")
        if _output_type(graph, next(iter(graph.outputs.values()))) == "audio":
            check_audio_output(output)
        else:
            check_output_path(output)
    if output_dir:
        if os.path.exists(output_dir) and not os.path.isdir(output_dir):
            raise UserError(f"--output-dir {output_dir} is a file, not a directory")
        check_output_path(os.path.join(output_dir, "probe"))


def _output_type(graph, ref) -> str:
    from .graph import GRAPH_INPUTS
    if ref.node == GRAPH_INPUTS:
        return graph.spec.inputs[ref.port].type
    return graph.nodes[ref.node].output_ports[ref.port].type  # ports may come from the config


def cmd_plugins(args: argparse.Namespace) -> int:
    reg = get_registry()
    rows = []
    for info in reg.plugins():
        stages = []
        for name in info.stages:
            if name in info.conflicts:
                stages.append({"name": name, "description": "", "implementations": {},
                               "conflict": f"also registered by {', '.join(info.conflicts[name])}: "
                                           "graphs using it are refused"})
                continue
            cls = reg.stage(name)
            stages.append({"name": name, "description": cls.description(),
                           "implementations": {k: cls.unavailable_reason(k) or "available"
                                               for k in cls.implementations()}})
        rows.append({"name": info.name, "version": info.version, "package": info.package,
                     "stages": stages, "error": info.error})
    note = autoload_note()
    if args.json:
        print(json.dumps(rows, indent=2))
        if note:
            print(f"vcgraph: note: {note}", file=sys.stderr)
        return 0
    for row in rows:
        head = f"{row['name']} {row['version'] or ''}".strip()
        print(head + (f"  FAILED TO LOAD: {row['error']}" if row["error"] else ""))
        for st in row["stages"]:
            if st.get("conflict"):
                print(f"  {st['name']:<20} CONFLICT: {st['conflict']}")
                continue
            impls = ", ".join(k if v == "available" else f"{k} (unavailable: {v})"
                              for k, v in st["implementations"].items())
            print(f"  {st['name']:<20} {st['description']}")
            print(f"  {'':<20} implementations: {impls}")
    if note:
        print(note)
    elif not rows:
        print("no plugins installed")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from .stage import Stage
    reg = get_registry()
    cls = reg.stage(args.stage)
    if args.json:
        print(json.dumps(stage_description(cls, reg.plugin_of(cls.name)), indent=2, default=str))
        return 0
    print(f"{cls.name}: {cls.description()}  (plugin: {reg.plugin_of(cls.name)})")
    print("\nconfig:")
    for key, field in cls.Config.model_fields.items():
        default = "required" if field.is_required() else f"default {field.get_default(call_default_factory=True)!r}"
        bounds = ", ".join(_bound_text(m) for m in field.metadata)
        ann = getattr(field.annotation, "__name__", str(field.annotation))
        print(f"  {key} ({ann}; {default}{'; ' + bounds if bounds else ''})")
        if field.description:
            print(f"      {field.description}")
    for title, ports in (("inputs", cls.inputs), ("outputs", cls.outputs)):
        print(f"\n{title}:")
        if not ports and cls.ports is not Stage.ports:
            print(f"  declared in the config (`{title}`) of each node")
        for name, port in ports.items():
            opt = ", optional" if port.optional else ""
            print(f"  {name} ({port.type}{opt}){': ' + port.description if port.description else ''}")
    print("\nimplementations:")
    for kind in cls.implementations():
        why = cls.unavailable_reason(kind)
        print(f"  {kind}: {'available' if why is None else 'unavailable: ' + why}")
    return 0


def stage_description(cls, plugin: str) -> dict:
    """What ``inspect --json`` prints: the config's JSON Schema, the ports, the implementations."""
    def ports(table):
        return {n: {"type": p.type, "optional": p.optional, "description": p.description} for n, p in table.items()}
    return {"name": cls.name, "plugin": plugin, "description": cls.description(),
            "config": cls.Config.model_json_schema(), "inputs": ports(cls.inputs), "outputs": ports(cls.outputs),
            "implementations": {k: {"device": impl.device, "available": cls.unavailable_reason(k) is None,
                                    "reason": cls.unavailable_reason(k)}
                                for k, impl in cls.implementations().items()}}


_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "min length", "max_length": "max length"}


def _bound_text(meta) -> str:
    """``Ge(ge=1)`` → ``>= 1``."""
    for attr, sign in _BOUNDS.items():
        if hasattr(meta, attr):
            return f"{sign} {getattr(meta, attr)}"
    return str(meta)


def cmd_validate(args: argparse.Namespace) -> int:
    pipe = load_pipeline(args.config, args.overrides)
    for w in pipe.graph.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if args.strict and pipe.graph.warnings:
        raise UserError(f"{len(pipe.graph.warnings)} warning(s) with --strict")
    order = " -> ".join(pipe.graph.nodes)
    print(f"{args.config}: ok ({len(pipe.graph.nodes)} nodes: {order})")
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    pipe = load_pipeline(args.config, args.overrides)
    sys.stdout.write(pipe.graph.to_dot() if args.format == "dot" else pipe.graph.to_mermaid())
    return 0


if __name__ == "__main__":
    sys.exit(main())
