"""Quality converter (WORLD + phone-state kNN) on real speech from the dev data set."""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("VCGRAPH_DEV_DATA", REPO.parent / "shared" / "data" / "speech-dev"))
if str(REPO / "plugins") not in sys.path:
    sys.path.insert(0, str(REPO / "plugins"))

import voice_data  # noqa: E402

pytestmark = pytest.mark.skipif(not (DATA / "slt_01.wav").exists(), reason=voice_data.DEV_REASON)

sf = pytest.importorskip("soundfile")
pytest.importorskip("pyworld")
pytest.importorskip("pocketsphinx")

SRC, TGT = "rms", "slt"   # low male -> high female: F0 and timbre both have far to go


def _read(name: str, sr: int = 16000) -> np.ndarray:
    x, file_sr = sf.read(str(DATA / f"{name}.wav"), dtype="float32")
    if x.ndim > 1:
        x = x.mean(1)
    if sr != file_sr:
        from scipy.signal import resample_poly
        g = np.gcd(sr, file_sr)
        x = resample_poly(x, sr // g, file_sr // g).astype(np.float32)
    return x


@pytest.fixture(scope="module")
def q():
    from vcgraph_voice.dsp import quality
    return quality


@pytest.fixture(scope="module")
def target16(q):
    cfg = q.QualityParams()
    return q.target_frames([q.analyze(_read(f"{TGT}_{i:02d}"), 16000, cfg) for i in range(1, 4)])


@pytest.fixture(scope="module")
def converted16(q, target16):
    x = _read(f"{SRC}_09")
    return x, q.synthesize(q.analyze(x, 16000), target16)


def _median_f0(y: np.ndarray, sr: int) -> float:
    from vcgraph_voice.dsp import world
    f0, _ = world.f0(y, sr)
    return float(np.median(f0[f0 > 0]))


def test_length_kept_exactly_and_finite(converted16):
    x, y = converted16
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.isfinite(y).all() and 0.01 < np.abs(y).max() <= 1.0


def test_f0_moves_to_target_range(converted16, target16):
    x, y = converted16
    f_src, f_out = _median_f0(x, 16000), _median_f0(y, 16000)
    f_tgt = float(np.exp(target16["lf0_mean"]))
    assert abs(np.log(f_out / f_tgt)) < abs(np.log(f_src / f_tgt)) / 3
    assert abs(np.log(f_out / f_tgt)) < np.log(2 ** (3 / 12))  # within 3 semitones of the target mean


def test_pitch_shift_semitones(q, target16):
    x = _read(f"{SRC}_10")[:16000 * 2]
    f = q.analyze(x, 16000)
    up = q.synthesize(f, target16, pitch_shift_semitones=4.0)
    assert len(up) == len(x)
    ratio = _median_f0(up, 16000) / _median_f0(q.synthesize(f, target16), 16000)
    assert 2 ** (2 / 12) < ratio < 2 ** (6 / 12)


def test_speaker_similarity_rises(converted16):
    warnings.filterwarnings("ignore")
    res = pytest.importorskip("resemblyzer")
    enc = res.VoiceEncoder("cpu", verbose=False)
    emb = lambda w: enc.embed_utterance(res.preprocess_wav(w, source_sr=16000))
    cent = np.mean([emb(_read(f"{TGT}_{i:02d}")) for i in (17, 18, 19)], 0)
    cent /= np.linalg.norm(cent)
    x, y = converted16
    s_src, s_out = float(emb(x) @ cent), float(emb(y) @ cent)
    # rms->slt is the hardest default pair (vc_score: 0.75 with 8 references); 3 here
    assert s_out > s_src + 0.08 and s_out > 0.68, (s_src, s_out)


def test_22050_and_profile_from_other_rate(q, target16):
    """22.05 kHz input works, also against a profile enrolled at 16 kHz (and vice versa)."""
    sr = 22050
    x = _read(f"{SRC}_11", sr)[: sr * 2]
    f = q.analyze(x, sr)
    y = q.synthesize(f, target16)
    assert y.shape == x.shape and np.isfinite(y).all()
    t22 = q.target_frames([q.analyze(_read(f"{TGT}_{i:02d}", sr), sr) for i in (1,)])
    y2 = q.synthesize(q.analyze(_read(f"{SRC}_11")[:32000], 16000), t22)
    assert len(y2) == 32000 and np.isfinite(y2).all()
    assert abs(np.log(_median_f0(y, sr) / float(np.exp(target16["lf0_mean"])))) < np.log(2 ** (3 / 12))
