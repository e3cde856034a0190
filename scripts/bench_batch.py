#!/usr/bin/env python3
"""Batch throughput: seconds of audio converted per wall second, by `vcgraph batch`'s runner,
for 1 and 2 local workers and Ray Data on a local 2-CPU cluster, in one run; then checks that
the three modes wrote identical outputs.

Inputs: the files of ../shared/data/speech-dev (or --data DIR), converted toward a profile
enrolled from one voice's first sentences. Wall time counts everything a user waits for after
the command starts working (worker processes or actors starting and loading the pipeline,
reading, converting, writing); starting the Ray cluster itself is printed apart. "after first"
is the rate from the first finished item to the last (start-up left out).

  PYTHONPATH=.:plugins python scripts/bench_batch.py [--config fast|quality] [--files N] [--no-ray]
"""
import argparse
import glob
import os
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, ".."), os.path.join(HERE, "..", "plugins")]

from vcgraph.batch import BatchItem, read_results  # noqa: E402
from vcgraph.pipeline import Pipeline  # noqa: E402
from vcgraph_voice.api import preset_path  # noqa: E402
from vcgraph_voice.batch import convert_items  # noqa: E402
from vcgraph_voice.enroll import enroll_files  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data", "speech-dev"))
    ap.add_argument("--config", default="fast", help="preset or graph YAML (default: fast)")
    ap.add_argument("--files", type=int, default=0, help="use the first N files (default: all)")
    ap.add_argument("--target-voice", default="slt", help="voice enrolled as the target (its _0[1-4] files)")
    ap.add_argument("--no-ray", action="store_true", help="local modes only")
    args = ap.parse_args()

    files = sorted(glob.glob(os.path.join(args.data, "*.wav")))
    refs = [f for f in files if os.path.basename(f).startswith(f"{args.target_voice}_0")][:4]
    if not files or not refs:
        sys.exit(f"no speech in {args.data} (give --data DIR with NAME_NN.wav files)")
    files = files[: args.files or None]
    audio_seconds = sum(sf.info(f).duration for f in files)
    work = tempfile.mkdtemp(prefix="bench-batch-")
    target = os.path.join(work, "target.vcp")
    presets = [args.config] if args.config in ("fast", "quality") else ["quality", "fast"]
    enroll_files(refs, presets=presets).save(target)
    pipe = Pipeline.from_yaml(preset_path(args.config))
    items = [BatchItem(f, os.path.basename(f), {"audio": f, "pitch_shift": 0.0}) for f in files]
    print(f"{len(files)} files, {audio_seconds:.1f} s of audio, config {args.config}, {os.cpu_count()} CPUs; "
          f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")

    modes = [("local, 1 worker", dict(engine="local", workers=1)),
             ("local, 2 workers", dict(engine="local", workers=2))]
    if not args.no_ray:
        try:
            import ray
            t0 = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(sys.path[:2] + [os.environ.get("PYTHONPATH", "")])}})
            print(f"ray: local 2-CPU cluster started in {time.perf_counter() - t0:.1f} s (not counted below)")
            modes.append(("ray, 2-CPU local cluster", dict(engine="ray", workers=2)))
        except ImportError:
            print("ray: not installed (pip install 'vcgraph[ray]'): ray mode left out")

    print(f"{'mode':<26} {'wall s':>7} {'audio s / wall s':>17} {'after first':>12} {'ok':>4} {'failed':>6}")
    outdirs = []
    for name, opts in modes:
        outdir = os.path.join(work, name.split(",")[0] + opts["engine"] + str(opts["workers"]))
        finished = []
        t0 = time.perf_counter()
        summary = convert_items(pipe, items, outdir, target=target,
                                progress=lambda r, done, total: finished.append((time.perf_counter(), r)), **opts)
        wall = time.perf_counter() - t0
        after = ""
        if len(finished) > 1:
            span = finished[-1][0] - finished[0][0]
            later = sum(sf.info(r["source"]).duration for _, r in finished[1:] if r["status"] == "ok")
            after = f"{later / span:.1f}" if span > 0 else ""
        print(f"{name:<26} {wall:7.1f} {audio_seconds / wall:17.1f} {after:>12} {summary.ok:>4} {summary.failed:>6}")
        outdirs.append((name, outdir))

    base_name, base = outdirs[0]
    differing, worst = 0, 0
    for name, outdir in outdirs[1:]:
        for r in read_results(os.path.join(base, "results.jsonl")):
            rel = os.path.basename(r["output"])
            a, _ = sf.read(os.path.join(base, rel), dtype="int16")
            b, _ = sf.read(os.path.join(outdir, rel), dtype="int16")
            if a.shape != b.shape or not np.array_equal(a, b):
                differing += 1
                worst = max(worst, int(np.abs(a.astype(int) - b.astype(int)).max()) if a.shape == b.shape else 1 << 16)
    if differing:
        print(f"outputs: {differing} file(s) differ from {base_name}'s (largest difference {worst} LSB of 16 bits)")
    else:
        print(f"outputs: identical in all {len(outdirs)} modes ({len(files)} files each)")
    print(f"(outputs in {work})")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
