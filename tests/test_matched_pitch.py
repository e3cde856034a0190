"""The content preset's matched pitch: the output's contour shape follows the pitch of the
target frames matched to each source frame (``content-synthesis`` ``matched_pitch``)."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from vcgraph_voice.errors import VoiceInputError

import voice_data
from test_content_method import _saved_with, profile  # noqa: F401 (fixture)
from test_content_method import _synthesis_pipeline as _pipeline


def _brightness(log_amp: np.ndarray, hz: np.ndarray) -> np.ndarray:
    """Per frame: mean log amplitude over 2-5 kHz minus over 0.1-1 kHz."""
    return log_amp[:, (hz > 2000) & (hz < 5000)].mean(1) - log_amp[:, (hz > 100) & (hz < 1000)].mean(1)


def source_brightness(x: np.ndarray, sr: int) -> np.ndarray:
    """:func:`_brightness` of ``x`` every 5 ms (1024-point STFT frames)."""
    hop, n_fft = int(sr * 0.005), 1024
    spec = torch.stft(torch.from_numpy(x).float(), n_fft, hop, window=torch.hann_window(n_fft),
                      return_complex=True).abs().clamp_min(1e-5).log().T.numpy()
    return _brightness(spec, np.arange(spec.shape[1]) * sr / n_fft)


def _with_bright_frames_pitched(profile, sign: float):  # noqa: F811
    """``profile`` whose voiced target frames are pitched 1.5 standard deviations high where
    their spectrum is brighter than the median and as far low elsewhere (``sign`` -1: the
    other way round): a voice whose pitch depends on the sound it makes."""
    from vcgraph_voice.profile import VoiceProfile
    part = dict(profile.methods["content"])
    env = part["log_env"].astype(np.float32)
    hz = np.arange(env.shape[1]) * int(part["sr"][0]) / (2 * (env.shape[1] - 1))
    bright = _brightness(env, hz)
    voiced = part["frame_lf0"] > 0
    mu, sd = float(part["lf0_mean"][0]), float(part["lf0_std"][0])
    high = bright > np.median(bright[voiced])
    part["frame_lf0"] = np.where(voiced, mu + sign * np.where(high, 1.5, -1.5) * sd, 0.0).astype(np.float32)
    return VoiceProfile(profile.embedding, {**profile.methods, "content": part}, profile.seconds)


def test_the_output_pitch_follows_the_pitch_of_the_matched_target_frames(profile):  # noqa: F811
    """Toward a voice that is high on bright sounds and low on dull ones, the output (its F0
    tracked from the audio) rises on the source's bright frames against the matched pitch off,
    and falls on its dull ones; toward the voice pitched the other way round, the reverse."""
    x, sr = voice_data.source()
    source_bright = source_brightness(x, sr)
    off, on = _pipeline("matched_pitch=0"), _pipeline("matched_pitch=1", "matched_pitch_smooth=2")
    rise = {}
    for sign in (1.0, -1.0):
        target = _with_bright_frames_pitched(profile, sign)
        f_off, f_on = (voice_data.f0_track(p.convert(x, target, sample_rate=sr), 22050) for p in (off, on))
        n = min(len(source_bright), len(f_off), len(f_on))
        both = (f_off[:n] > 0) & (f_on[:n] > 0)
        assert both.sum() > 200
        moved = np.log(f_on[:n][both]) - np.log(f_off[:n][both])
        bright = source_bright[:n][both] > np.median(source_bright[:n][both])
        rise[sign] = float(moved[bright].mean() - moved[~bright].mean())
    assert rise[1.0] > 0.03 and rise[-1.0] < -0.03, rise  # 3 % of F0; measured about +-9 %


def test_matched_pitch_keeps_unvoiced_frames_and_frames_without_a_voiced_match():
    from vcgraph_voice.dsp.content import ContentParams, matched_pitch_contour
    g = torch.Generator().manual_seed(0)
    f0, voiced = voice_data.random_f0_contour(400, 120.0, 0.1, slice(50, 80), g)
    z_matched = torch.sin(torch.arange(400) / 20.0)
    share = torch.ones(400)
    share[200:220] = 0.0   # no voiced frame among these frames' matches
    matched = torch.stack([z_matched * share, share], -1)
    same = matched_pitch_contour(f0, voiced, matched, ContentParams(matched_pitch=0.0, matched_pitch_smooth=0))
    assert torch.allclose(same, f0, rtol=1e-5)
    out = matched_pitch_contour(f0, voiced, matched, ContentParams(matched_pitch=1.0, matched_pitch_smooth=0))
    assert torch.equal(out[50:80], f0[50:80])                       # unvoiced: untouched
    assert torch.allclose(out[200:220], f0[200:220], rtol=1e-5)     # no voiced match: the source's
    lf, sel = torch.log(f0[voiced]), voiced.clone()
    sel[200:220] = False
    z_out = (torch.log(out[sel]) - lf.mean()) / lf.std()
    assert torch.allclose(z_out, z_matched[sel], atol=1e-4)           # fully the matched shape
    half = matched_pitch_contour(f0, voiced, matched, ContentParams(matched_pitch=0.5, matched_pitch_smooth=0))
    mid = torch.sqrt(f0 * out)  # half way in log-F0
    assert torch.allclose(half[voiced], mid[voiced], rtol=1e-4)


@pytest.mark.parametrize("option", ["matched_pitch=0.5", "f0_quantile=0.5"])
def test_a_profile_without_frame_pitch_converts_as_before_and_says_so(profile, tmp_path, caplog,  # noqa: F811
                                                                      monkeypatch, option):
    """A profile enrolled before the per-frame pitch converts exactly as without the matched
    pitch or the target's pitch distribution (the source's contour mapped to the target's mean
    and spread), with a warning to enrol again."""
    from vcgraph_voice.methods import content as method
    from vcgraph_voice.profile import VoiceProfile
    old = VoiceProfile.load(_saved_with(profile, tmp_path, **{"content/frame_lf0": None}))
    assert "frame_lf0" not in old.methods["content"]
    x, sr = voice_data.source()
    x = x[: 2 * sr]
    default, off = _pipeline(option), _pipeline("matched_pitch=0", "f0_quantile=0")
    monkeypatch.setattr(method, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="vcgraph.voice.content"):
        off.convert(x, old, sample_rate=sr)
        assert not caplog.text  # neither option on: nothing to warn about
        converted_old = default.convert(x, old, sample_rate=sr)
    assert "no per-frame pitch" in caplog.text and "Enrol the voice again" in caplog.text
    assert np.array_equal(converted_old, off.convert(x, profile, sample_rate=sr))
    assert not np.allclose(default.convert(x, profile, sample_rate=sr), converted_old, atol=1e-3)


def test_mis_shaped_frame_pitch_is_refused(profile, tmp_path):  # noqa: F811
    from vcgraph_voice.profile import VoiceProfile
    with pytest.raises(VoiceInputError, match="'content/frame_lf0' has shape"):
        VoiceProfile.load(_saved_with(profile, tmp_path, **{
            "content/frame_lf0": profile.methods["content"]["frame_lf0"][:, None]}))


def test_matched_pitch_is_checked_at_the_yaml_key():
    from vcgraph.pipeline import Pipeline
    from vcgraph_voice.api import preset_path
    with pytest.raises(Exception, match="voice_synthesis.*matched_pitch"):
        Pipeline.from_yaml(preset_path("content"), ["nodes.voice_synthesis.config.matched_pitch=1.5"])
