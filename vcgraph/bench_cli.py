"""``vcgraph bench``: engine overhead, and a graph's speed per node, kind and duration."""
from __future__ import annotations

import argparse
import json

BENCH_EPILOG = """\
examples:
  vcgraph bench                                   engine overhead only
  vcgraph bench configs/fast.yaml --input audio=examples/audio/source.wav --input target=voice.vcp
  vcgraph bench configs/quality.yaml -i audio=in.wav -i target=voice.vcp --durations 1,5 --kinds cpu --json

Audio inputs are repeated or cut to each duration. RTF = processing seconds / audio seconds
(below 1 is faster than real time). 'x baseline' compares with a plain reference workload on
the same audio, timed in the same run, that a plugin of the graph offers (the voice plugin's
`stft-mel`: resample + STFT + mel + inverse STFT); --baseline picks another, or none.
"""


def add_bench_command(sub) -> None:
    p = sub.add_parser("bench", help="measure engine overhead and a graph's speed",
                       description="Benchmark the engine, and optionally a graph on your own audio.",
                       epilog=BENCH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", help="graph YAML file (omit for engine overhead only)")
    p.add_argument("--input", "-i", action="append", default=[], metavar="NAME=VALUE", help="graph input")
    p.add_argument("--set", "-s", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    p.add_argument("--durations", default="1,5,30", help="input durations in seconds (default 1,5,30)")
    p.add_argument("--kinds", help="implementation kinds to time (default: cuda if present, cpu, simplified)")
    p.add_argument("--repeat", type=int, default=3, help="warm runs per measurement (median)")
    p.add_argument("--overhead-runs", type=int, default=500, help="runs of the trivial engine-overhead graph")
    p.add_argument("--baseline", metavar="NAME", help="baseline workload to compare with ('none' for none; "
                   "default: one from a plugin of the graph)")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from .errors import UserError
    from .overhead import engine_overhead
    overhead = engine_overhead(runs=args.overhead_runs)
    out: dict = {"engine_overhead": overhead}
    rows = []
    if args.config:
        from .bench import bench_graph, format_rows, rows_to_dicts
        from .cli_helpers import load_pipeline, parse_inputs
        from .progress import ProgressBar
        spec_inputs = load_pipeline(args.config, args.overrides).graph.spec.inputs
        inputs = parse_inputs(spec_inputs, args.input)
        try:
            durations = [float(d) for d in args.durations.split(",") if d.strip()]
        except ValueError:
            raise UserError(f"--durations '{args.durations}' is not a comma-separated list of seconds") from None
        kinds = [k.strip() for k in args.kinds.split(",")] if args.kinds else None
        bar = None if args.json else ProgressBar("bench")
        try:
            rows = bench_graph(args.config, inputs, durations, kinds, args.repeat, args.overrides, progress=bar,
                               baseline=args.baseline)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        if bar:
            bar.close()
        out["graph"] = args.config
        out["runs"] = rows_to_dicts(rows)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"engine overhead: {overhead['median_ms_per_stage']:.4f} ms/stage median, "
          f"{overhead['p90_ms_per_stage']:.4f} ms p90 ({overhead['stages']} trivial stages x {overhead['runs']} runs)")
    if rows:
        print()
        print(format_rows(rows))
    return 0
