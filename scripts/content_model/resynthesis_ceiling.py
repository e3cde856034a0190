#!/usr/bin/env python3
"""How much identity and how many words survive analysis + resynthesis alone (no conversion).

Each dev voice's utterances 9-12 at 22.05 kHz, analysed and resynthesised with mixes of the fast
analysis (torch YIN F0, cepstral envelope, aperiodicity) and WORLD's (DIO + StoneMask,
CheapTrick, D4C) on one frame grid, through WORLD's synthesis or the torch harmonic-plus-noise
vocoder; judged by vc_score's GE2E and CAM++ (similarity to the voice's own centroid of
utterances 17-24) and Whisper. It separates what the analysis costs from what the vocoder costs.

    python scripts/content_model/resynthesis_ceiling.py
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import soundfile as sf
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "plugins"))
sys.path.insert(0, os.path.join(ROOT, "..", "shared", "tools"))
sys.path.insert(0, os.path.join(HERE, ".."))  # scripts/: dev_judges
SR = 22050


def renderings(x: np.ndarray, p, res) -> dict[str, np.ndarray]:
    """The utterance ``x`` (22.05 kHz) resynthesised from each mix of features."""
    import pyworld
    from vcgraph_voice.dsp import fast
    c = lambda a: np.ascontiguousarray(a, dtype=np.float64)
    f = fast.analyze(torch.from_numpy(x), SR, p, res)
    hop, n = p.hop(SR), p.fft_size(SR)
    fp = 1000.0 * hop / SR
    xd = x.astype(np.float64)
    f0w, t = pyworld.dio(xd, SR, frame_period=fp)
    f0w = pyworld.stonemask(xd, f0w, t, SR)
    spw, apw = pyworld.cheaptrick(xd, f0w, t, SR, fft_size=n), pyworld.d4c(xd, f0w, t, SR, fft_size=n)
    T = min(len(f0w), f["log_env"].shape[0])
    f0f = (f["f0"].double().numpy() * f["voiced"].numpy())[:T]
    spf = np.exp(2 * f["log_env"].double().numpy())[:T]
    apf = np.where(f["voiced"].numpy()[:, None], f["ap"].double().numpy(), 1.0).clip(0, 1)[:T]
    f0w, spw, apw = f0w[:T], spw[:T], apw[:T]
    world = lambda f0, sp, ap: pyworld.synthesize(c(f0), c(sp), c(ap), SR, fp)
    out = {"original": x,
           "fast analysis, HNM vocoder": fast.synthesize(f, None, p, resources=res).numpy(),
           "fast analysis, WORLD synthesis": world(f0f, spf, apf),
           "WORLD F0 + envelope, fast aperiodicity, WORLD synthesis": world(f0w, spw, apf),
           "WORLD F0 + aperiodicity, fast envelope, WORLD synthesis": world(f0w, spf, apw),
           "fast F0, WORLD envelope + aperiodicity, WORLD synthesis": world(f0f, spw, apw),
           "WORLD analysis, WORLD synthesis": world(f0w, spw, apw)}
    g = {k: v[:T] if torch.is_tensor(v) and v.dim() else v for k, v in f.items()}
    g["f0"] = torch.from_numpy(f0w).float()
    g["voiced"] = g["f0"] > 0
    g["log_env"] = torch.from_numpy(0.5 * np.log(np.maximum(spw, 1e-20))).float()
    g["ap"] = torch.from_numpy(apw).float()
    out["WORLD analysis, HNM vocoder"] = fast.synthesize(g, None, p, resources=res).numpy()
    return out


def main():
    import argparse
    import tempfile
    import librosa
    import vc_score as vs
    from dev_judges import dev_judges
    from vcgraph_voice.dsp import fast
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "speech-dev"))
    ap.add_argument("--utts", default="9-12")
    a = ap.parse_args()
    j = dev_judges(a.data)
    p, res = fast.FastParams(), fast.FastResources()
    tmp_dir = tempfile.TemporaryDirectory(prefix="resynthesis-")  # removed when the run ends
    tmp = tmp_dir.name
    agg: dict[str, dict] = {}
    for v in j.voices:
        for i in vs.span(a.utts):
            x, sr = sf.read(j.wav(v, i), dtype="float32")
            ref = vs.words(j.sents[i - 1])
            for name, y in renderings(librosa.resample(x, orig_sr=sr, target_sr=SR), p, res).items():
                fn = os.path.join(tmp, "out.wav")
                sf.write(fn, (0.9 * y / max(1e-6, float(np.abs(y).max()))).astype(np.float32), SR)
                s = agg.setdefault(name, {"ge2e": [], "campp": [], "errors": 0, "words": 0})
                s["ge2e"].append(float(vs.unit(j.emb(fn)) @ j.cent[v]))
                s["campp"].append(float(vs.unit(j.emb2(fn)) @ j.cent2[v]))
                s["errors"] += vs.edits(ref, vs.words(j.asr2(fn)))
                s["words"] += len(ref)
            print(f"  {v} {i}", file=sys.stderr, flush=True)
    for name, s in agg.items():
        print(json.dumps({"rendering": name, "ge2e_own": round(float(np.mean(s["ge2e"])), 3),
                          "campp_own": round(float(np.mean(s["campp"])), 3),
                          "whisper_wer": round(s["errors"] / s["words"], 3)}), flush=True)


if __name__ == "__main__":
    main()
