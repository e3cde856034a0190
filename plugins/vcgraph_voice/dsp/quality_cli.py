"""Tiny experiment CLI for the quality converter (PYTHONPATH=plugins).

  python -m vcgraph_voice.dsp.quality_cli enroll OUT.npz REF.wav [REF.wav ...]
  python -m vcgraph_voice.dsp.quality_cli convert SRC.wav PROFILE.npz OUT.wav [--semitones S]

A profile is an ``np.savez`` archive (loads with ``allow_pickle=False``): the arrays of
``quality.target_frames`` plus ``embedding`` (256-d resemblyzer d-vector of the references).
"""
from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np
import soundfile as sf


def _read(path: str):
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    return x.mean(1).astype(np.float32), int(sr)


def enroll(out: str, refs: list[str], cfg=None) -> None:
    from . import quality
    cfg = cfg or quality.QualityParams()
    wavs = [_read(p) for p in refs]
    prof = quality.target_frames([quality.analyze(x, sr, cfg) for x, sr in wavs])
    try:
        warnings.filterwarnings("ignore")
        from resemblyzer import VoiceEncoder, preprocess_wav
        enc = VoiceEncoder("cpu", verbose=False)
        e = np.mean([enc.embed_utterance(preprocess_wav(x, source_sr=sr)) for x, sr in wavs], 0)
        prof["embedding"] = (e / np.linalg.norm(e)).astype(np.float32)
    except ImportError:  # embedding is informative only; conversion does not need it
        prof["embedding"] = np.zeros(256, np.float32)
    with open(out, "wb") as f:  # a file object keeps the exact name (no ".npz" appended)
        np.savez(f, **prof)


def load_profile(path: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def convert(src: str, profile: str, out: str, semitones: float = 0.0, cfg=None) -> None:
    from . import quality
    cfg = cfg or quality.QualityParams()
    x, sr = _read(src)
    y = quality.synthesize(quality.analyze(x, sr, cfg), load_profile(profile), cfg, semitones)
    sf.write(out, y, sr, subtype="PCM_16")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="quality_cli", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("enroll"); e.add_argument("out"); e.add_argument("refs", nargs="+")
    c = sub.add_parser("convert"); c.add_argument("src"); c.add_argument("profile"); c.add_argument("out")
    c.add_argument("--semitones", type=float, default=0.0)
    a = ap.parse_args(argv)
    if a.cmd == "enroll":
        enroll(a.out, a.refs)
    else:
        convert(a.src, a.profile, a.out, a.semitones)
    return 0


if __name__ == "__main__":
    sys.exit(main())
