#!/usr/bin/env python3
"""Does a ridge regression from GE2E embedding to fast statistics beat the shipped bank's
similarity blend on real voices? Scored on the 4 dev voices (embedding and statistics from
utterances 1-8, as ``vcgraph enroll`` makes them) with the bank's own statistics error
(``bank.stat_error``; 1.0 = predicting the bank mean). No conversion is run.

    PYTHONPATH=.:plugins python scripts/voice_bank/compare_ridge.py
"""
from __future__ import annotations

import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def ridge(X, Y, lam):
    """Closed-form ridge regression; returns the predictor."""
    Xm, Ym = X.mean(0), Y.mean(0)
    Xc = X - Xm
    W = np.linalg.solve(Xc.T @ Xc + lam * np.eye(X.shape[1]), Xc.T @ (Y - Ym))
    return lambda q: (q - Xm) @ W + Ym


def main():
    from vcgraph_voice import bank as B
    from vcgraph_voice.enroll import enroll_files
    data = os.path.join(ROOT, "..", "shared", "data", "speech-dev")
    with np.load(B.DEFAULT_PATH) as z:
        emb, k, T = z["embedding"], int(z["k"]), float(z["temperature"])
        stats = {n: z["stats/" + n] for n in B.STATS}
    scale = B.error_scale(stats)
    sizes = [stats[n].shape[1] for n in B.STATS]
    Y = np.concatenate([np.log(stats[n]) if n in B.LOG_DOMAIN else stats[n] for n in B.STATS], -1)

    def unpack(y):
        out, i = {}, 0
        for n, s in zip(B.STATS, sizes):
            out[n] = np.exp(y[i:i + s]) if n in B.LOG_DOMAIN else y[i:i + s]
            i += s
        return out

    dev = []
    for v in ("awb", "kal16", "rms", "slt"):
        prof = enroll_files([os.path.join(data, f"{v}_{i:02d}.wav") for i in range(1, 9)], presets=["fast"])
        e = prof.embedding / np.linalg.norm(prof.embedding)
        dev.append((v, e, {n: np.asarray(prof.methods["fast"][n]).reshape(-1) for n in B.STATS}))
    blend = [B.stat_error(B.blend_stats(stats, *B.neighbour_weights(emb @ e, k, T)), st, scale) for _, e, st in dev]
    print(f"bank blend (shipped, k={k}, T={T:.3g}): {np.mean(blend):.3f}  per voice {np.round(blend, 3).tolist()}")
    for lam in (0.1, 1.0, 3.0, 10.0):
        f = ridge(emb, Y, lam)
        r, h = [], []
        for _, e, st in dev:
            pr = unpack(f(e))
            r.append(B.stat_error(pr, st, scale))
            pb = B.blend_stats(stats, *B.neighbour_weights(emb @ e, k, T))
            pb["mel_mean_v"] = pr["mel_mean_v"].astype(np.float32)  # ridge for the voiced band means only
            h.append(B.stat_error(pb, st, scale))
        print(f"ridge lambda={lam:<4}: {np.mean(r):.3f}   hybrid (ridge voiced means, blend the rest): {np.mean(h):.3f}")


if __name__ == "__main__":
    main()
