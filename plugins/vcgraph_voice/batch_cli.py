"""``vcgraph batch``: convert a folder or a manifest of recordings, resumably, locally or on Ray."""
from __future__ import annotations

import argparse
import json
import os
import sys

from .presets import DEFAULT_PRESET

BATCH_EPILOG = """\
examples:
  vcgraph batch corpus/ --target alice.vcp -o corpus_alice/ --config fast --workers 2
  vcgraph batch corpus/ --target alice.vcp -o corpus_alice/ --resume          (after a stop)
  vcgraph batch jobs.csv -o dubbed/ --engine ray --address ray://head:10001

A manifest (.csv with a header, or .jsonl) has columns source, target, pitch_shift, output;
target may be left out when --target is given, output defaults to TARGET_NAME/SOURCE (relative
to OUTDIR). Relative paths in a manifest are relative to its folder.

OUTDIR/results.jsonl gets one line per item (status ok, error or skipped). Outputs appear only
complete (written to a temporary file, then renamed); existing outputs are kept unless
--overwrite; --resume skips items whose output exists. Exit status: 0 all ok, 1 some failed.
--engine ray needs `pip install 'vcgraph[ray]'`; on a cluster of several machines, inputs and
OUTDIR must be on a file system every node sees.
"""


def add_batch_command(sub) -> None:
    p = sub.add_parser("batch", help="convert a folder or manifest of recordings (local workers or Ray)",
                       description="Convert many recordings toward target voices, safely and resumably.",
                       epilog=BATCH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="INPUT", help="a folder of audio files (recursive) or a .csv/.jsonl manifest")
    p.add_argument("--target", "-t", metavar="VOICE",
                   help="target for every item: a .vcp profile or a 256-d .npy embedding "
                        "(optional with a manifest that names targets)")
    p.add_argument("-o", "--output-dir", "--output", dest="outdir", required=True, metavar="OUTDIR",
                   help="output folder (created if missing); results.jsonl is written there")
    p.add_argument("--config", "-c", default=DEFAULT_PRESET, metavar="PRESET|YAML",
                   help=f"{DEFAULT_PRESET} (default), quality, fast, or a graph YAML file")
    p.add_argument("--set", "-s", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                   help="graph override, e.g. settings.use_cuda=false (repeatable)")
    p.add_argument("--pitch-shift", type=float, default=0.0, metavar="N",
                   help="pitch shift in semitones for items whose manifest row gives none")
    p.add_argument("--workers", "-j", type=int, metavar="N",
                   help="parallel workers, each loading the pipeline once (local default 1; "
                        "ray default: one per GPU, or per CPU, of the cluster)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local worker processes (default) or Ray Data actors")
    p.add_argument("--address", metavar="ADDR",
                   help="Ray cluster to join (e.g. ray://head:10001 or auto); default: a new local one")
    p.add_argument("--resume", action="store_true", help="skip items whose output exists (an earlier run's)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_batch)


def cmd_batch(args: argparse.Namespace) -> int:
    from vcgraph.errors import UserError
    from vcgraph.pipeline import Pipeline
    from vcgraph.progress import CountProgress
    from .api import preset_path
    from .batch import convert_items, input_items
    from .profile import load_target
    if args.address and args.engine != "ray":
        raise UserError("--address is for --engine ray")
    if args.engine == "ray":
        from vcgraph.batch_ray import import_ray
        import_ray()  # says what to install before any work
    pipe = Pipeline.from_yaml(preset_path(args.config), args.overrides)
    target = os.path.abspath(args.target) if args.target else None
    items, common_target = input_items(args.input, args.outdir, target, args.pitch_shift)
    if target and not hasattr(load_target(target), "methods"):  # a bad profile fails here, before any work
        print("vcgraph: note: the target is a bare embedding: the voice moves toward it, but a profile "
              "from `vcgraph enroll` converts much better", file=sys.stderr)
    bar = None if args.no_progress else CountProgress(len(items), "batch")
    summary = convert_items(pipe, items, args.outdir, target=common_target, workers=args.workers,
                            engine=args.engine, address=args.address, resume=args.resume,
                            overwrite=args.overwrite, progress=(lambda r, done, total: bar.update(r["status"]))
                            if bar else None)
    if bar:
        bar.close()
    failed = [r for r in summary.results if r["status"] == "error"]
    for r in failed[:5]:
        print(f"vcgraph: failed: {r['source']}: {r['error']}", file=sys.stderr)
    if len(failed) > 5:
        print(f"vcgraph: ... and {len(failed) - 5} more (see {summary.results_path})", file=sys.stderr)
    if args.json:
        out = summary.to_dict()
        out.pop("results")
        out["results_file"] = summary.results_path
        print(json.dumps(out, indent=2))
    else:
        print(summary.line())
    return 1 if failed else 0
