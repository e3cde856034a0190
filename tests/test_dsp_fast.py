"""Tests of the fast torch voice converter (vcgraph_voice.dsp.fast / f0 / vocoder)."""
import math
import os
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "plugins"))

from vcgraph_voice.dsp import fast  # noqa: E402
from vcgraph_voice.dsp.f0 import track_f0  # noqa: E402

import voice_data  # noqa: E402

DATA = os.environ.get("VCGRAPH_DEV_DATA", os.path.join(ROOT, "..", "shared", "data", "speech-dev"))
HAVE_DATA = os.path.exists(os.path.join(DATA, "rms_01.wav"))
needs_data = pytest.mark.skipif(not HAVE_DATA, reason=voice_data.DEV_REASON)
SR = 22050


@pytest.mark.parametrize("f0", [85.0, 150.0, 240.0, 400.0])
@pytest.mark.parametrize("kind", ["sine", "pulse"])
def test_f0_tracker_synthetic(f0, kind):
    t = torch.arange(SR) / SR
    if kind == "sine":
        x = 0.5 * torch.sin(2 * math.pi * f0 * t)
    else:
        ph = (f0 * t) % 1.0
        x = torch.zeros_like(t)
        x[1:] = (ph[1:] < ph[:-1]).float()
    est, voiced = track_f0(x, SR, 110, 60.0, 500.0)
    assert est.shape[0] == SR // 110 + 1
    assert voiced.float().mean() > 0.9
    med = float(est[voiced].median())
    assert abs(med / f0 - 1) < 0.02, (kind, f0, med)


def test_f0_tracker_silence_unvoiced():
    x = torch.zeros(SR)
    x[: SR // 2] = 0.3 * torch.sin(2 * math.pi * 120 * torch.arange(SR // 2) / SR)
    _, voiced = track_f0(x, SR, 110)
    n = voiced.shape[0]
    assert voiced[: n // 2 - 5].float().mean() > 0.9
    assert voiced[n // 2 + 5:].float().mean() < 0.05


def test_f0_tracker_digital_silence_unvoiced():
    # a gate relative to the loudest frame alone would call an all-zero file voiced at f0_max
    f0, voiced = track_f0(torch.zeros(SR), SR, 110)
    assert not bool(voiced.any()) and bool((f0 == 0).all())


def test_conversion_with_a_single_voiced_frame_is_finite():
    # the source's log-F0 spread over one voiced frame is undefined (std of one value is NaN)
    p = fast.FastParams()
    feats = fast.analyze(0.1 * torch.randn(SR, generator=torch.Generator().manual_seed(0)), SR, p)
    voiced = torch.zeros_like(feats["voiced"])
    voiced[len(voiced) // 2] = True
    feats = {**feats, "voiced": voiced, "f0": torch.where(voiced, torch.full_like(feats["f0"], 110.0),
                                                          torch.zeros_like(feats["f0"]))}
    target = {"lf0_mean": np.array([math.log(220.0)], np.float32), "lf0_std": np.array([0.2], np.float32)}
    y = fast.synthesize(feats, target, p)
    assert y.shape[0] == SR and bool(torch.isfinite(y).all())


def _load(voice, i):
    import soundfile as sf

    x, sr = sf.read(os.path.join(DATA, f"{voice}_{i:02d}.wav"), dtype="float32")
    return x, sr


def _logmel(x, sr):
    import torchaudio

    m = torchaudio.transforms.MelSpectrogram(sr, n_fft=1024, hop_length=sr // 100, n_mels=40)
    return torch.log(m(torch.as_tensor(x, dtype=torch.float32)) + 1e-5)


@pytest.fixture(scope="module")
def profiles():
    if not HAVE_DATA:
        pytest.skip(voice_data.DEV_REASON)
    p = fast.FastParams()
    return {v: fast.target_stats([fast.analyze(*_load(v, i), p) for i in range(1, 4)]) for v in ("rms", "slt")}


@needs_data
def test_resynthesis_keeps_logmel():
    x, sr = _load("awb", 9)
    y = fast.convert(x, sr, None)
    assert y.shape[0] == len(x) and torch.isfinite(y).all()
    a, b = _logmel(x, sr), _logmel(y, sr)
    speech = a.mean(0) > a.mean(0).max() - 8
    c = np.corrcoef(a[:, speech].flatten().numpy(), b[:, speech].flatten().numpy())[0, 1]
    assert c > 0.9, c


@needs_data
def test_conversion_f0_duration_nan(profiles):
    x, sr = _load("rms", 10)
    p = fast.FastParams()
    feats = fast.analyze(x, sr, p)
    y = fast.synthesize(feats, profiles["slt"], p)
    assert y.shape[0] == len(x)
    assert torch.isfinite(y).all()
    # converted F0 median moves to the target range (slt ~175 Hz, rms ~100 Hz)
    f0y, vy = track_f0(y, sr, p.hop(sr))
    tgt = math.exp(float(profiles["slt"]["lf0_mean"][0]))
    src = float(feats["f0"][feats["voiced"]].median())
    got = float(f0y[vy].median())
    assert abs(math.log(got / tgt)) < abs(math.log(src / tgt)) / 3, (src, got, tgt)
    # odd lengths and pitch shift keep the exact length
    y2 = fast.convert(x[:12345], sr, profiles["slt"], p, pitch_shift_semitones=3.0)
    assert y2.shape[0] == 12345 and torch.isfinite(y2).all()


@needs_data
def test_similarity_rises_toward_target(profiles):
    from resemblyzer import preprocess_wav

    from vcgraph_voice.embedding import GE2EEncoder
    enc = GE2EEncoder()
    e = lambda x, sr: enc.embed_utterance(preprocess_wav(np.asarray(x, np.float32), source_sr=sr))
    tgt = e(*_load("slt", 17))
    tgt /= np.linalg.norm(tgt)
    x, sr = _load("rms", 11)
    y = fast.convert(x, sr, profiles["slt"]).numpy()
    assert float(e(y, sr) @ tgt) > float(e(x, sr) @ tgt) + 0.05


@needs_data
def test_embedding_only_mode_moves_toward_target():
    from resemblyzer import preprocess_wav

    from vcgraph_voice.embedding import GE2EEncoder
    enc = GE2EEncoder()
    e = lambda x, sr: enc.embed_utterance(preprocess_wav(np.asarray(x, np.float32), source_sr=sr))
    tgt = e(*_load("slt", 1))
    x, sr = _load("rms", 12)
    tr = fast.search_embedding_transform(x, sr, tgt, fast.FastParams(), excerpt_s=3.0,
                                         pitch_grid=(0.0, 8.0), alpha_grid=(1.0, 1.15),
                                         tilt_grid=(0.0,), refine=False)
    assert float(tr["similarity"][0]) >= float(tr["similarity_source"][0])
    y = fast.convert(x, sr, tr)
    assert y.shape[0] == len(x) and torch.isfinite(y).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_length():
    t = torch.arange(SR) / SR
    x = 0.3 * torch.sin(2 * math.pi * 140 * t) + 0.01 * torch.randn(SR)
    p = fast.FastParams(device="cuda")
    y = fast.convert(x, SR, None, p)
    assert y.device.type == "cuda" and y.shape[0] == SR and torch.isfinite(y).all()
