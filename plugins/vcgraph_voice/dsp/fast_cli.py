"""Experiment CLI for the fast torch voice converter.

  python -m vcgraph_voice.dsp.fast_cli enroll OUT.npz REF.wav [REF.wav ...]
  python -m vcgraph_voice.dsp.fast_cli convert SRC.wav PROFILE.npz OUT.wav
        [--embedding-only] [--pitch-shift ST] [--f0 yin|dio] [--device cpu|cuda]
        [--set key=value ...]

The profile npz holds the target statistics of `fast.target_stats` plus a 256-d
resemblyzer embedding of the references under `embedding` (loads with allow_pickle=False).
With --embedding-only the converter uses nothing but that embedding.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np
import soundfile as sf
import torch


def _read(path):
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    return x.mean(1), sr


def _params(a):
    from .fast import FastParams

    p = FastParams(device=a.device, f0_method=a.f0)
    types = {f.name: f.type for f in dataclasses.fields(FastParams)}
    for kv in a.set or []:
        k, v = kv.split("=", 1)
        cur = getattr(p, k)
        setattr(p, k, type(cur)(v) if not isinstance(cur, bool) else v.lower() in ("1", "true", "yes"))
    return p


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("enroll")
    e.add_argument("out")
    e.add_argument("refs", nargs="+")
    c = sub.add_parser("convert")
    c.add_argument("src")
    c.add_argument("profile")
    c.add_argument("out")
    c.add_argument("--embedding-only", action="store_true")
    c.add_argument("--pitch-shift", type=float, default=0.0)
    for s in (e, c):
        s.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
        s.add_argument("--f0", default="yin", choices=["yin", "dio"])
        s.add_argument("--set", action="append", help="FastParams override key=value")
        s.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    from . import fast

    p = _params(a)
    t0 = time.perf_counter()
    if a.cmd == "enroll":
        from resemblyzer import preprocess_wav

        feats, embs = [], []
        enc = fast._encoder()
        for r in a.refs:
            x, sr = _read(r)
            feats.append(fast.analyze(x, sr, p))
            embs.append(enc.embed_utterance(preprocess_wav(x, source_sr=sr)))
        st = fast.target_stats(feats)
        emb = np.mean(embs, 0)
        st["embedding"] = (emb / np.linalg.norm(emb)).astype(np.float32)
        np.savez(a.out if a.out.endswith(".npz") else a.out, **st)
        # np.savez appends .npz when missing; keep the exact requested name
        if not a.out.endswith(".npz"):
            import os
            os.replace(a.out + ".npz", a.out)
    else:
        x, sr = _read(a.src)
        with np.load(a.profile, allow_pickle=False) as z:
            prof = {k: z[k] for k in z.files}
        if a.embedding_only:
            stats = fast.search_embedding_transform(x, sr, prof["embedding"], p)
            if a.verbose:
                print({k: float(v[0]) for k, v in stats.items()}, file=sys.stderr)
        else:
            stats = prof
        y = fast.convert(x, sr, stats, p, pitch_shift_semitones=a.pitch_shift)
        y = y.detach().cpu().numpy()
        peak = float(np.abs(y).max()) if y.size else 0.0
        if peak > 0.99:
            y = y * (0.99 / peak)
        sf.write(a.out, y, sr)
    if a.verbose:
        print(f"{a.cmd}: {time.perf_counter() - t0:.3f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
