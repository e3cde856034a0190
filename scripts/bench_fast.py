#!/usr/bin/env python3
"""Real-time factor of the fast torch voice converter (vcgraph_voice.dsp.fast).

Times the whole chain (analysis incl. F0, conversion, HNM synthesis) on 1 s / 5 s / 30 s of
22.05 kHz speech built from data/speech-dev (utterances concatenated and resampled), first
call and after warm-up (median of --repeats), wall clock and process CPU time, next to a
baseline timed in the same run (torchaudio resample there and back + 80-band mel +
pseudo-inverse mel), so numbers from a loaded machine can be read relative to it.

  PYTHONPATH=plugins python scripts/bench_fast.py [--device cuda] [--f0 yin|dio]
"""
import argparse, glob, os, statistics, sys, time

import numpy as np
import soundfile as sf
import torch
import torchaudio

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "plugins"))
from vcgraph_voice.dsp import fast  # noqa: E402

SR = 22050


def load_speech(data, seconds, voice):
    xs, n = [], 0
    for p in sorted(glob.glob(os.path.join(data, f"{voice}_[0-9][0-9].wav"))):
        x, sr = sf.read(p, dtype="float32")
        x = torchaudio.functional.resample(torch.from_numpy(x), sr, SR)
        xs.append(x)
        n += x.numel()
        if n >= seconds * SR:
            break
    return torch.cat(xs)[: int(seconds * SR)]


def timed(fn, sync):
    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    sync()
    return time.perf_counter() - t0, time.process_time() - c0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("VCGRAPH_DEV_DATA", os.path.join(HERE, "..", "..", "shared", "data", "speech-dev")))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--f0", default="yin")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave as is)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    p = fast.FastParams(device=a.device, f0_method=a.f0)
    res = fast.FastResources()  # what a stage keeps: the "warm" rows reuse its tables
    ref = load_speech(a.data, 20, "slt")
    stats = fast.target_stats([fast.analyze(ref, SR, p, res)])
    src = load_speech(a.data, 30, "rms")
    mel = torchaudio.transforms.MelSpectrogram(SR, n_fft=1024, hop_length=256, n_mels=80).to(dev)
    pinv = torch.linalg.pinv(mel.mel_scale.fb.to(dev))

    def baseline(x):
        y = torchaudio.functional.resample(x, SR, 16000)
        y = torchaudio.functional.resample(y, 16000, SR)
        return mel(y).transpose(0, 1) @ pinv

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {a.device}, f0 {a.f0}")
    print(f"{'dur':>5} {'call':>6} {'wall_s':>8} {'cpu_s':>8} {'RTF':>7} {'base_RTF':>9} {'ratio':>6}")
    for dur in (1, 5, 30):
        x = src[: dur * SR].to(dev)
        run = lambda: fast.convert(x, SR, stats, p, resources=res)
        base = lambda: baseline(x)
        first = timed(run, sync)
        bfirst = timed(base, sync)
        for _ in range(2):
            timed(run, sync)
        ws = [timed(run, sync) for _ in range(a.repeats)]
        bs = [timed(base, sync) for _ in range(a.repeats)]
        w = statistics.median(t for t, _ in ws)
        c = statistics.median(t for _, t in ws)
        b = statistics.median(t for t, _ in bs)
        print(f"{dur:>4}s {'first':>6} {first[0]:8.3f} {first[1]:8.3f} {first[0]/dur:7.4f} {bfirst[0]/dur:9.4f} {first[0]/max(bfirst[0],1e-9):6.1f}")
        print(f"{dur:>4}s {'warm':>6} {w:8.3f} {c:8.3f} {w/dur:7.4f} {b/dur:9.4f} {w/max(b,1e-9):6.1f}")
    # stage split on 30 s, warm
    x = src.to(dev)
    ta = statistics.median(timed(lambda: fast.analyze(x, SR, p, res), sync)[0] for _ in range(3))
    feats = fast.analyze(x, SR, p, res)
    tsy = statistics.median(timed(lambda: fast.synthesize(feats, stats, p, resources=res), sync)[0] for _ in range(3))
    print(f"30 s split (warm): analyze {ta:.3f}s (RTF {ta/30:.4f}), synthesize {tsy:.3f}s (RTF {tsy/30:.4f})")
    if os.path.exists("/proc/loadavg"):
        print("loadavg", open("/proc/loadavg").read().split()[:3], "(other processes share these cores)")


if __name__ == "__main__":
    main()
