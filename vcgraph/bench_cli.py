"""``vcgraph bench``: engine overhead and per-stage speed of any graph."""
from __future__ import annotations

import argparse
import json


def add_bench_command(sub) -> None:
    p = sub.add_parser("bench", help="measure engine overhead (and a graph's speed, see --help)",
                       description="Print the engine's own overhead per stage (a chain of trivial "
                                   "stages, median over many runs).")
    p.add_argument("--overhead-runs", type=int, default=500, help="runs of the trivial graph")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from .overhead import engine_overhead
    res = engine_overhead(runs=args.overhead_runs)
    if args.json:
        print(json.dumps({"engine_overhead": res}, indent=2))
    else:
        print(f"engine overhead: {res['median_ms_per_stage']:.4f} ms/stage median, "
              f"{res['p90_ms_per_stage']:.4f} ms p90 ({res['stages']} trivial stages x {res['runs']} runs)")
    return 0
