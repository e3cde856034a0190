"""The content preset's blend by frequency: above ``blend_split_hz`` the envelope takes
``blend_high`` of the matched target frames, below it ``blend``."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import voice_data
from test_content_method import profile  # noqa: F401 (fixture)
from test_content_method import _synthesis_pipeline as _pipeline


def _band_frames(x: np.ndarray, sr: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Per 10 ms frame of ``x`` (40 ms window): the spectrum between ``lo`` and ``hi`` Hz in dB,
    250 Hz bands, each frame's band mean removed (its shape, not its level); and the frames'
    energies."""
    n_fft = int(sr * 0.04)
    spec = torch.stft(torch.from_numpy(np.asarray(x, np.float32)), n_fft, n_fft // 4,
                      window=torch.hann_window(n_fft), return_complex=True).abs().T.numpy() ** 2
    hz = np.arange(spec.shape[1]) * sr / n_fft
    edges = np.arange(lo, hi + 1, 250.0)
    db = np.stack([10 * np.log10(spec[:, (hz >= a) & (hz < b)].mean(1) + 1e-10)
                   for a, b in zip(edges[:-1], edges[1:])], 1)
    return db - db.mean(1, keepdims=True), spec.sum(1)


def assert_split_by_band(split: np.ndarray, replaced: np.ndarray, blended: np.ndarray, sr: int) -> None:
    """Above 3.5 kHz ``split``'s spectrum, frame by frame, is near ``replaced``'s and below
    2.5 kHz near ``blended``'s: within a quarter of how far those two differ there."""
    for lo, hi, same_as in ((3500, 7500, "replaced"), (200, 2500, "blended")):
        (s, energy), (r, _), (b, _) = (_band_frames(y, sr, lo, hi) for y in (split, replaced, blended))
        loud = energy > 0.05 * np.median(energy)
        dist = lambda u, v: float(np.sqrt(((u - v)[loud] ** 2).mean()))  # dB rms
        apart = dist(r, b)                         # how far the two references differ in this band
        near = dist(s, r if same_as == "replaced" else b)
        assert apart > 0.3 and near < 0.25 * apart, (lo, hi, near, apart)


def test_the_weight_ramps_from_blend_to_blend_high_around_the_split():
    from vcgraph_voice.dsp.content import band_blend
    w = band_blend(1025, 22050, 0.8, 0.9, 3000.0, "cpu")
    hz = np.arange(1025) * 22050 / 2048
    assert torch.allclose(w[hz < 2500], torch.tensor(0.8)) and torch.allclose(w[hz > 3500], torch.tensor(0.9))
    assert bool((w[1:] >= w[:-1] - 1e-7).all())               # no step, no dip
    assert abs(float(w[int(np.argmin(abs(hz - 3000)))]) - 0.85) < 0.005


def test_above_the_split_the_output_is_the_replacement_below_it_the_blend(profile):  # noqa: F811
    """``blend: 0.8, blend_high: 1.0``: above 3.5 kHz the output's spectrum (measured on the
    audio, frame by frame) is that of full replacement (``blend: 1.0``), below 2.5 kHz that of
    the plain blend (``blend: 0.8`` at every frequency)."""
    x, sr = voice_data.source()
    split = _pipeline("blend=0.8", "blend_high=1.0").convert(x, profile, sample_rate=sr)
    replaced = _pipeline("blend=1.0", "blend_high=null").convert(x, profile, sample_rate=sr)
    blended = _pipeline("blend=0.8", "blend_high=null").convert(x, profile, sample_rate=sr)
    assert_split_by_band(split, replaced, blended, 22050)


def test_blend_high_equal_to_blend_changes_nothing(profile):  # noqa: F811
    x, sr = voice_data.source()
    x = x[: 2 * sr]
    plain = _pipeline("blend=0.8", "blend_high=null").convert(x, profile, sample_rate=sr)
    same = _pipeline("blend=0.8", "blend_high=0.8").convert(x, profile, sample_rate=sr)
    assert np.allclose(plain, same, atol=1e-5)
    assert not np.allclose(plain, _pipeline().convert(x, profile, sample_rate=sr), atol=1e-3)  # the preset's 0.9


def test_blend_high_is_checked_at_the_yaml_key():
    from vcgraph.pipeline import Pipeline
    from vcgraph_voice.api import preset_path
    with pytest.raises(Exception, match="voice_synthesis.*blend_high"):
        Pipeline.from_yaml(preset_path("content"), ["nodes.voice_synthesis.config.blend_high=1.2"])
