#!/usr/bin/env python3
"""Soak: many conversions in one process, resident memory sampled, growth after warm-up printed.

Converts the bundled example sentence (examples/audio/source.wav) toward a profile enrolled
from the bundled target sentences, with the fast preset, --n times through the seed API
(``VoiceConversionPipeline.convert``), cycling through a few input sample rates and a
bare-embedding target every --embedding-every conversions so the caches see some variety.
RSS is read from /proc/self/status every --every conversions; the growth reported is from
the end of the warm-up (--warmup conversions) to the end.

  PYTHONPATH=.:plugins OMP_NUM_THREADS=1 python scripts/soak.py [--n 1000] [--warmup 100]
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, os.path.join(ROOT, "plugins")]

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux /proc; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="conversions (default 1000)")
    ap.add_argument("--warmup", type=int, default=100, help="conversions before the baseline sample")
    ap.add_argument("--every", type=int, default=50, help="sample RSS every N conversions")
    ap.add_argument("--embedding-every", type=int, default=0,
                    help="use the bare embedding as target every N conversions (0: never; slow search)")
    ap.add_argument("--seconds", type=float, default=1.0, help="length of each input clip")
    args = ap.parse_args()

    from vcgraph_voice.api import PipelineConfig, VoiceConversionPipeline
    from vcgraph_voice.enroll import enroll_files
    from vcgraph_voice.resample import resample

    audio_dir = os.path.join(ROOT, "examples", "audio")
    refs = sorted(os.path.join(audio_dir, f) for f in os.listdir(audio_dir) if f.startswith("target_"))
    profile = enroll_files(refs, presets=["fast"])
    x, sr = sf.read(os.path.join(audio_dir, "source.wav"), dtype="float32")
    x = x[: int(args.seconds * sr)]
    rates = list(dict.fromkeys((sr, 22050, 44100, 8000)))
    inputs = [(resample(torch.from_numpy(x), sr, rate).numpy(), rate) for rate in rates]

    pipe = VoiceConversionPipeline(PipelineConfig(preset="fast"))
    print(f"soak: {args.n} conversions of {args.seconds:.1f} s clips (fast preset, rates "
          f"{', '.join(str(r) for _, r in inputs)}), RSS every {args.every}", flush=True)
    samples: list[tuple[int, float]] = [(0, rss_mib())]
    baseline = None
    t0 = time.perf_counter()
    for i in range(1, args.n + 1):
        clip, rate = inputs[i % len(inputs)]
        target = profile.embedding if args.embedding_every and i % args.embedding_every == 0 else profile
        y = pipe.convert(clip, target, sample_rate=rate)
        if not np.isfinite(y).all():
            print(f"soak: conversion {i} returned NaN/Inf", file=sys.stderr)
            return 1
        if i == args.warmup:
            gc.collect()
            baseline = rss_mib()
            samples.append((i, baseline))
        elif i % args.every == 0 or i == args.n:
            samples.append((i, rss_mib()))
            print(f"  {i:5d}  RSS {samples[-1][1]:8.1f} MiB", flush=True)
    gc.collect()
    end = rss_mib()
    seconds = time.perf_counter() - t0
    stats = pipe.get_stats()
    peak_after = max(r for i, r in samples if i >= args.warmup)
    growth = 100.0 * (end - baseline) / baseline if baseline else float("nan")
    print(f"soak: {stats['successful_conversions']}/{stats['total_conversions']} conversions ok in {seconds:.1f} s "
          f"({1e3 * seconds / args.n:.1f} ms each)")
    print(f"soak: RSS start {samples[0][1]:.1f} MiB, after {args.warmup} warm-up conversions {baseline:.1f} MiB, "
          f"end {end:.1f} MiB, peak after warm-up {peak_after:.1f} MiB")
    print(f"soak: RSS growth after warm-up {end - baseline:+.1f} MiB ({growth:+.2f} %)")
    return 0 if stats["failed_conversions"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
