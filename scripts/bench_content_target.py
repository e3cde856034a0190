#!/usr/bin/env python3
"""1 s clips converted with the content preset toward a profile held in memory (the API's
way, and a batch's): the profile's frames and keys prepared once (``prepared_targets: 4``, the
default) against prepared on every call (``prepared_targets: 0``, as before), alternated in one
process. The cost saved grows with the profile's length: a profile of the bundled clips and,
where ../shared is present, one of 16 dev sentences.

  python scripts/bench_content_target.py [--threads 2] [--rounds 6]
"""
import argparse, glob, os, statistics, sys, time

import soundfile as sf
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "plugins"))
from vcgraph_voice.api import PipelineConfig, VoiceConversionPipeline  # noqa: E402
from vcgraph_voice.enroll import enroll_files  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--rounds", type=int, default=6, help="alternations (5 timed calls each)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x, sr = sf.read(os.path.join(ROOT, "examples", "audio", "source.wav"), dtype="float32")
    x = x[:sr]
    pipes = {n: VoiceConversionPipeline(PipelineConfig(preset="content", overrides=[
        f"nodes.voice_synthesis.config.prepared_targets={n}"])) for n in (0, 4)}
    refs = {"bundled target clips": sorted(glob.glob(os.path.join(ROOT, "examples", "audio", "target_*.wav")))}
    dev = sorted(glob.glob(os.path.join(ROOT, "..", "shared", "data", "speech-dev", "slt_*.wav")))[:16]
    if dev:
        refs["16 dev sentences (slt)"] = dev
    for name, paths in refs.items():
        profile = enroll_files(paths, presets=["content"])
        times = {n: [] for n in pipes}
        for _ in range(args.rounds):
            for n, pipe in pipes.items():
                for _ in range(2):
                    pipe.convert(x, profile, sample_rate=sr)
                for _ in range(5):
                    t0 = time.perf_counter()
                    pipe.convert(x, profile, sample_rate=sr)
                    times[n].append(time.perf_counter() - t0)
        frames = profile.methods["content"]["log_env"].shape[0]
        print(f"{name} ({profile.seconds:.0f} s, {frames} frames): 1 s clip warm, median of "
              f"{len(times[0])}: prepared every call {1000 * statistics.median(times[0]):.1f} ms, "
              f"once {1000 * statistics.median(times[4]):.1f} ms")


if __name__ == "__main__":
    main()
