"""The content synthesis's postfilter: cepstral formant emphasis of the output envelope, which
averaging the matched target frames flattens."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import voice_data
from test_band_blend import _band_frames
from test_content_method import profile  # noqa: F401 (fixture)
from test_content_method import _synthesis_pipeline as _pipeline


def _formant_envelopes(n_bins: int = 1025, sr: int = 22050) -> tuple[torch.Tensor, torch.Tensor]:
    """Three frames of natural-log amplitude: a falling tilt with formant bumps at 500 / 1500 /
    2500 Hz (shifted a little per frame), and the tilt alone."""
    hz = torch.arange(n_bins, dtype=torch.float64) * sr / (2 * (n_bins - 1))
    tilt = -hz / 3000.0
    frames = []
    for shift in (0.0, 80.0, -60.0):
        bumps = sum(1.5 * torch.exp(-0.5 * ((hz - f - shift) / 120.0) ** 2) for f in (500.0, 1500.0, 2500.0))
        frames.append(tilt + bumps)
    return torch.stack(frames).float(), tilt.float()


def spread_ratios(plain: np.ndarray, sharp: np.ndarray, sr: int) -> np.ndarray:
    """Per loud frame: how much further ``sharp``'s spectrum (250 Hz bands over 0.2-5 kHz,
    level removed) spreads about its mean than ``plain``'s (standard deviations' ratio)."""
    (p, energy), (s, _) = (_band_frames(y, sr, 200, 5000) for y in (plain, sharp))
    loud = energy > 0.1 * np.median(energy)
    return s[loud].std(1) / p[loud].std(1)


def test_no_emphasis_changes_nothing_and_the_frame_energy_is_kept():
    from vcgraph_voice.dsp.content import postfilter
    env, _ = _formant_envelopes()
    assert torch.allclose(postfilter(env, 0.0), env, atol=1e-5)
    energy = lambda e: 0.5 * torch.logsumexp(2 * e.double(), 1)
    for beta in (0.2, 0.5):
        assert torch.allclose(energy(postfilter(env, beta)), energy(env), atol=1e-4)


def test_it_is_the_cepstrum_scaled_from_quefrency_lo_on():
    """The closed form equals the definition: the real cepstrum (inverse FFT of the log
    envelope), quefrencies ``lo`` to ``n - lo`` scaled by ``1 + beta``, back to a spectrum, the
    frame's energy restored."""
    from vcgraph_voice.dsp.content import postfilter
    env = torch.randn(5, 1025) * 2 - 4
    for beta, lo in ((0.1, 2), (0.5, 4)):
        n = 2048
        c = torch.fft.irfft(env.double(), n=n, dim=1)
        w = torch.ones(n, dtype=torch.float64)
        w[lo:n - lo + 1] = 1 + beta
        ref = torch.fft.rfft(c * w, dim=1).real
        ref = ref + 0.5 * (torch.logsumexp(2 * env.double(), 1, keepdim=True) - torch.logsumexp(2 * ref, 1, keepdim=True))
        assert torch.allclose(postfilter(env, beta, lo).double(), ref, atol=1e-4)


def test_formants_stand_out_by_about_one_plus_beta_where_they_were():
    """Each bump's height over the valleys beside it grows by about ``1 + beta``; its peak stays
    at the same frequency."""
    from vcgraph_voice.dsp.content import postfilter
    env, _ = _formant_envelopes()
    hz = np.arange(env.shape[1]) * 22050 / 2048
    for beta in (0.2, 0.4):
        out = postfilter(env, beta)
        for frame in range(env.shape[0]):
            for f in (1500.0, 2500.0):
                band = (hz > f - 450) & (hz < f + 450)
                contrast = lambda e: float(e[frame, band].max() - e[frame, band].min())
                ratio = contrast(out) / contrast(env)
                assert 1 + 0.7 * beta < ratio < 1 + 1.3 * beta, (beta, frame, f, ratio)
                assert abs(int(out[frame, band].argmax()) - int(env[frame, band].argmax())) <= 1


def test_the_converted_audio_has_sharper_spectra_and_the_same_length(profile):  # noqa: F811
    """Measured on the audio: with the postfilter, the loud frames' spectra (250 Hz bands over
    0.2-5 kHz, level removed) spread further about their mean than without it, frame after frame,
    and the output keeps the source's length."""
    x, sr = voice_data.source()
    x = x[: 3 * sr]
    plain = _pipeline("postfilter=0").convert(x, profile, sample_rate=sr)
    sharp = _pipeline("postfilter=0.3").convert(x, profile, sample_rate=sr)
    assert len(sharp) == len(plain) == round(len(x) * 22050 / sr)
    ratio = spread_ratios(plain, sharp, 22050)
    assert np.median(ratio) > 1.05
    assert (ratio > 1).mean() > 0.8


def test_postfilter_is_checked_at_the_yaml_key():
    from vcgraph.pipeline import Pipeline
    from vcgraph_voice.api import preset_path
    with pytest.raises(Exception, match="voice_synthesis.*postfilter"):
        Pipeline.from_yaml(preset_path("content"), ["nodes.voice_synthesis.config.postfilter=-0.1"])
