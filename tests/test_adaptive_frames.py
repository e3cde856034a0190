"""The content synthesis's ``adaptive_frames``: matched voiced target frames render their
pitch-adaptive envelope (analysed at enrolment) instead of the cepstral one they are found on."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import voice_data
from test_adaptive_envelope import SR, _vowel
from test_content_method import profile  # noqa: F401 (fixture)
from test_content_method import _synthesis_pipeline as _pipeline


def _energy(log_env: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.logsumexp(2 * log_env, 1)


def test_enrolment_keeps_each_frames_adaptive_envelope_nearer_a_low_voice_filter():
    """A low voice (a 100 Hz pulse train through three resonances) enrolled alone: its profile
    holds an adaptive envelope for every frame, on the cepstral envelope's grid, and in its
    voiced frames it is nearer the true filter (its shape, level aside) than the cepstral one."""
    from vcgraph.audio import Audio
    from vcgraph_voice.enroll import enroll_audio
    x, true = _vowel(100.0, seconds=2.0)
    part = enroll_audio([Audio(x, SR)], presets=["content"]).methods["content"]
    cep, ada = part["log_env"].astype(np.float32), part["adaptive_log_env"].astype(np.float32)
    assert ada.shape == cep.shape
    hz = np.arange(cep.shape[1]) * SR / (2 * (cep.shape[1] - 1))
    band = (hz > 150) & (hz < 4000)
    voiced = part["voiced"].copy()
    voiced[:40] = voiced[-40:] = False  # away from the edges
    assert voiced.sum() > 200

    def shape_error(env):
        d = (env[voiced].mean(0) - true)[band]
        return float(np.sqrt(((d - d.mean()) ** 2).mean()))

    # measured: 0.045 against 0.48 (natural-log amplitude, rms over 150 Hz - 4 kHz)
    assert shape_error(ada) < 0.3 * shape_error(cep), (shape_error(ada), shape_error(cep))


def test_voiced_frames_render_the_adaptive_envelope_at_their_own_energy_and_the_match_is_unchanged(profile):  # noqa: F811
    """Prepared with ``adaptive_frames: 1`` a voiced frame renders its adaptive envelope, brought
    to its cepstral envelope's energy; ``0.5`` renders half way (in log); an unvoiced frame and
    every matching key are as with ``0``."""
    from vcgraph_voice.dsp import content as kernels
    from vcgraph_voice.dsp.fast import FastParams
    target = profile.methods["content"]
    prepare = lambda w: kernels.prepare_target(target, kernels.ContentParams(
        spectral_match=0.6, refine=2, phone_states=0.5, content_shape=0.5, adaptive_frames=w), FastParams(), 22050, "cpu")
    off, full, half = prepare(0.0), prepare(1.0), prepare(0.5)
    voiced = torch.from_numpy(target["voiced"])
    ada = torch.from_numpy(target["adaptive_log_env"].astype(np.float32))
    assert torch.equal(off.match_keys, full.match_keys) and torch.equal(off.spectral, full.spectral)
    assert torch.equal(off.shape_map, full.shape_map)
    assert torch.equal(full.log_env[~voiced], off.log_env[~voiced])
    assert torch.allclose(_energy(full.log_env[voiced]), _energy(off.log_env[voiced]), atol=1e-3)
    shape = lambda e: e - e.mean(1, keepdim=True)
    assert torch.allclose(shape(full.log_env[voiced]), shape(ada[voiced]), atol=1e-3)
    assert not torch.allclose(shape(off.log_env[voiced]), shape(ada[voiced]), atol=0.05)
    assert torch.allclose(half.log_env, 0.5 * (off.log_env + full.log_env), atol=1e-4)


def test_the_output_changes_with_the_rendered_frames_and_keeps_duration(profile):  # noqa: F811
    """Converted with and without the adaptive frames: the same length, different audio (the
    frames found are the same, what they render is not)."""
    x, sr = voice_data.source()
    x = x[: 2 * sr]
    with_adaptive = _pipeline("adaptive_frames=1.0").convert(x, profile, sample_rate=sr)
    without = _pipeline("adaptive_frames=0.0").convert(x, profile, sample_rate=sr)
    assert len(with_adaptive) == len(without) and abs(len(without) / 22050 - len(x) / sr) < 0.001
    assert np.abs(with_adaptive - without).max() > 0.01


def test_a_profile_without_adaptive_envelopes_converts_as_before_with_a_warning(profile, caplog):  # noqa: F811
    """A profile enrolled before the adaptive frames (no ``adaptive_log_env``) converts exactly as
    with ``adaptive_frames: 0``, and the log says to enrol again."""
    from vcgraph_voice.methods import content as method
    from vcgraph_voice.profile import VoiceProfile
    part = {k: v for k, v in profile.methods["content"].items() if k != "adaptive_log_env"}
    old = VoiceProfile(profile.embedding, {**profile.methods, "content": part}, profile.seconds)
    x, sr = voice_data.source()
    x = x[: 2 * sr]
    method._warned.discard("no_adaptive_frames")
    with caplog.at_level(logging.WARNING, logger="vcgraph.voice.content"):
        y = _pipeline("adaptive_frames=1.0").convert(x, old, sample_rate=sr)
    assert np.array_equal(y, _pipeline("adaptive_frames=0.0").convert(x, profile, sample_rate=sr))
    assert any("pitch-adaptive" in r.getMessage() and "Enrol the voice again" in r.getMessage()
               for r in caplog.records)


def test_a_mis_shaped_adaptive_envelope_is_refused_when_loading(profile, tmp_path):  # noqa: F811
    from vcgraph_voice.errors import VoiceInputError
    from vcgraph_voice.profile import VoiceProfile
    part = dict(profile.methods["content"])
    part["adaptive_log_env"] = part["adaptive_log_env"][:-3]
    path = tmp_path / "bad.vcp"
    VoiceProfile(profile.embedding, {**profile.methods, "content": part}, profile.seconds).save(path)
    with pytest.raises(VoiceInputError, match="adaptive_log_env"):
        VoiceProfile.load(path)


def test_adaptive_frames_is_checked_at_the_yaml_key():
    from vcgraph.errors import ConfigError
    with pytest.raises(ConfigError, match=r"nodes\.voice_synthesis\.config\.adaptive_frames"):
        _pipeline("adaptive_frames=1.5")
