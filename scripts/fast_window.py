#!/usr/bin/env python3
"""The fast method's envelope analysis window against its words and voice, kernel level.

Why does the pitch-adaptive envelope keep words offline but not in the stream? This converts
the dev set with the fast kernels alone (``dsp.fast.convert``; no graph, no output stage),
each variant enrolling its own target statistics, and scores every output with vc_score's
judges (GE2E and CAM++ similarity to centroids of utterances 17-24, Whisper and pocketsphinx
word errors). Variants: ``cep1024`` (the cepstral envelope on the default 1024-sample window:
64 ms at 16 kHz), ``cep384`` / ``cep512`` (24 / 32 ms, the stream's window is 24 ms),
``ad1024`` (the pitch-adaptive envelope, the preset's now); ``source`` scores the unconverted
sources.

    python scripts/fast_window.py cep1024 cep384 ad1024      # ~3 min per variant on 2 cores
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np
import soundfile as sf
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared")
sys.path[:0] = [HERE, os.path.join(HERE, "..", "plugins"), os.path.join(SHARED, "tools")]

VARIANTS = {"source": None, "cep1024": {}, "cep384": {"n_fft": 384}, "cep512": {"n_fft": 512}, "ad1024": {"adaptive_envelope": True}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="+", choices=sorted(VARIANTS))
    ap.add_argument("--data", default=os.path.join(SHARED, "data", "speech-dev"))
    ap.add_argument("--pairs", default="rms:slt,slt:awb,awb:kal16,kal16:rms")
    ap.add_argument("--test-utts", default="9-16")
    a = ap.parse_args()
    torch.set_num_threads(1)
    import vc_score as vs
    from dev_judges import dev_judges, judge, means
    from vcgraph_voice.dsp import fast
    j = dev_judges(a.data)
    scratch = tempfile.TemporaryDirectory(prefix="fast-window-")  # per run, removed at its end
    out = os.path.join(scratch.name, "converted.wav")
    pairs = [p.split(":") for p in a.pairs.split(",")]
    for name in a.variants:
        p = fast.FastParams(**(VARIANTS[name] or {}))
        stats = {} if VARIANTS[name] is None else {
            t: fast.target_stats([fast.analyze(*sf.read(j.wav(t, i), dtype="float32"), p) for i in vs.span("1-8")])
            for t in {t for _, t in pairs}}
        rows = []
        for s, t in pairs:
            for i in vs.span(a.test_utts):
                x, sr = sf.read(j.wav(s, i), dtype="float32")
                y = x if VARIANTS[name] is None else fast.convert(x, sr, stats[t], p).numpy()
                sf.write(out, y / (np.abs(y).max() + 1e-9) * 0.5, sr)
                rows.append(judge(j, out, s, t, j.sents[i - 1]))
        n = sum(r["n"] for r in rows)
        m = means(rows)
        print(f"{name:8s} GE2E {m['sim']:.3f} / {m['sim_src']:.3f}, ident {m['ident']:.2f}; CAM++ {m['sim2']:.3f} / "
              f"{m['sim2_src']:.3f}, ident2 {m['ident2']:.2f}; WER Whisper {sum(r['e_wh'] for r in rows) / n:.3f}, "
              f"pocketsphinx {sum(r['e_ps'] for r in rows) / n:.3f}  ({len(rows)} sentences)", flush=True)


if __name__ == "__main__":
    main()
