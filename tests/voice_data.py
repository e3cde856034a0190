"""Audio for the voice tests: the bundled example (always there) and the dev set (if present)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "audio"
DEV = Path(os.environ.get("VCGRAPH_DEV_DATA", ROOT.parent / "shared" / "data" / "speech-dev"))
#: the one skip reason of every test that needs the development data (users do not have it)
DEV_REASON = f"needs the speech-dev data set (../shared/data/speech-dev or $VCGRAPH_DEV_DATA), not found at {DEV}"


def read(path) -> tuple[np.ndarray, int]:
    x, sr = sf.read(str(path), dtype="float32")
    return x, sr


def source() -> tuple[np.ndarray, int]:
    return read(EXAMPLES / "source.wav")


def target_paths() -> list[Path]:
    return sorted(EXAMPLES.glob("target_0*.wav"))


def f0_track(x: np.ndarray, sr: int) -> np.ndarray:
    """F0 every 5 ms (0: unvoiced) by pyworld DIO + StoneMask (an independent tracker)."""
    import pyworld as pw
    d = np.ascontiguousarray(x, dtype=np.float64)
    f0, t = pw.dio(d, sr, f0_floor=50.0, f0_ceil=600.0, frame_period=5.0)
    return pw.stonemask(d, f0, t, sr)


def median_f0(x: np.ndarray, sr: int) -> float:
    """Median voiced F0 of :func:`f0_track`."""
    f0 = f0_track(x, sr)
    return float(np.median(f0[f0 > 0]))


def similarity(a: np.ndarray, sr_a: int, b: np.ndarray, sr_b: int) -> float:
    """GE2E cosine between two utterances (resemblyzer, independent of vcgraph's own wrapper)."""
    from resemblyzer import preprocess_wav
    enc = _encoder()
    ea = enc.embed_utterance(preprocess_wav(a, source_sr=sr_a))
    eb = enc.embed_utterance(preprocess_wav(b, source_sr=sr_b))
    return float(ea @ eb / np.linalg.norm(ea) / np.linalg.norm(eb))


def target_centroid() -> np.ndarray:
    from resemblyzer import preprocess_wav
    enc = _encoder()
    embs = [enc.embed_utterance(preprocess_wav(*read(p))) for p in target_paths()]
    c = np.mean(embs, axis=0)
    return c / np.linalg.norm(c)


def embed(x: np.ndarray, sr: int) -> np.ndarray:
    from resemblyzer import preprocess_wav
    e = _encoder().embed_utterance(preprocess_wav(x, source_sr=sr))
    return e / np.linalg.norm(e)


_ENC = []


def _encoder():
    if not _ENC:
        from resemblyzer import VoiceEncoder
        _ENC.append(VoiceEncoder("cpu", verbose=False))
    return _ENC[0]


def random_f0_contour(n: int, hz: float, spread: float, unvoiced: slice, generator):
    """(f0, voiced): a log-normal F0 contour of ``n`` frames about ``hz`` (log spread ``spread``,
    drawn from the torch ``generator``), 0 and unvoiced over the frames ``unvoiced``."""
    import torch
    f0 = hz * torch.exp(spread * torch.randn(n, generator=generator))
    voiced = torch.ones(n, dtype=torch.bool)
    voiced[unvoiced] = False
    return torch.where(voiced, f0, torch.zeros_like(f0)), voiced
