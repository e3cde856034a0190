"""The pitch-adaptive envelope (vcgraph_voice.dsp.adaptive_envelope) and how the fast method
uses it: enrolled beside the cepstral statistics, chosen only when the profile has them."""
import os
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "plugins"))

from vcgraph_voice.errors import VoiceInputError  # noqa: E402
from vcgraph_voice.dsp import adaptive_envelope, fast  # noqa: E402
from vcgraph_voice.profile import VoiceProfile  # noqa: E402

import voice_data  # noqa: E402

SR = 22050


def _vowel(f0: float, formants=((700, 80), (1200, 100), (2600, 150)), seconds: float = 1.0):
    """A pulse train at ``f0`` through three resonances, and the filter's log amplitude on the
    1024-point FFT grid."""
    import scipy.signal as ss

    x = np.zeros(int(SR * seconds))
    x[::int(round(SR / f0))] = 1.0
    a = np.array([1.0])
    for f, bw in formants:
        r = np.exp(-np.pi * bw / SR)
        a = np.convolve(a, [1, -2 * r * np.cos(2 * np.pi * f / SR), r * r])
    y = ss.lfilter([1.0], a, x)
    _, h = ss.freqz([1.0], a, worN=513, fs=SR)
    return (0.5 * y / np.abs(y).max()).astype(np.float32), np.log(np.abs(h))


@pytest.mark.parametrize("f0", [100.0, 140.0])
def test_adaptive_envelope_finds_a_low_voice_filter_better_and_steadier(f0):
    x, true = _vowel(f0)
    a = fast.analyze(torch.from_numpy(x), SR, fast.FastParams(adaptive_envelope=True))
    hz = np.arange(513) * SR / 1024
    band = (hz > 150) & (hz < 4000)
    mid = slice(50, -50)  # away from the edges

    def error_and_jitter(env):
        e = env[mid].numpy()
        d = (e.mean(0) - true)[band]
        return float(np.sqrt(((d - d.mean()) ** 2).mean())), float(e[:, band].std(0).mean())

    err_c, jit_c = error_and_jitter(a["log_env"])
    err_a, jit_a = error_and_jitter(a["adaptive_log_env"])
    assert err_a < 0.6 * err_c, (err_a, err_c)     # nearer the true filter
    assert jit_a < 0.2 * jit_c, (jit_a, jit_c)     # and it does not flicker with the pulses


def test_adaptive_envelope_matches_cheaptrick():
    pw = pytest.importorskip("pyworld")
    import torchaudio.functional as AF

    x16, sr16 = voice_data.source()
    x = AF.resample(torch.from_numpy(x16), sr16, SR).numpy().astype(np.float64)
    p = fast.FastParams()
    a = fast.analyze(torch.from_numpy(x).float(), SR, p)
    f0 = (a["f0"] * a["voiced"]).double().numpy()
    n, hop = p.fft_size(SR), p.hop(SR)
    t = np.arange(len(f0)) * hop / SR
    sp = pw.cheaptrick(x, f0, t, SR, fft_size=n, f0_floor=pw.get_cheaptrick_f0_floor(SR, n) + 1)
    ours = adaptive_envelope.envelope(torch.from_numpy(x).float(), torch.from_numpy(f0).float(), SR, n, hop).numpy()
    theirs = 0.5 * np.log(sp)
    T = min(len(ours), len(theirs))
    below = np.arange(n // 2 + 1) * SR / n < 6000  # the recording is band-limited at 8 kHz
    speech = a["speech"].numpy()[:T]
    d = (ours[:T] - theirs[:T])[speech][:, below]
    assert np.abs(d).max() < 0.05, np.abs(d).max()


def test_fast_profile_carries_adaptive_statistics_and_an_old_one_converts_as_before():
    from vcgraph.audio import read_audio
    from vcgraph.pipeline import Pipeline
    from vcgraph_voice.api import preset_path
    from vcgraph_voice.enroll import enroll_files

    profile = enroll_files(voice_data.target_paths()[:2], presets=["fast"])
    part = profile.methods["fast"]
    assert {"adaptive_mel_mean_v", "adaptive_mel_std_u"} <= set(part)
    assert not np.allclose(part["adaptive_mel_mean_v"], part["mel_mean_v"])  # measured on another envelope
    old = VoiceProfile(profile.embedding, {"fast": {k: v for k, v in part.items() if not k.startswith("adaptive_")}},
                       seconds=profile.seconds)
    src = read_audio(voice_data.EXAMPLES / "source.wav")
    run = lambda overrides, target: Pipeline.from_yaml(preset_path("fast"), overrides).run(
        {"audio": src, "target": target})["audio"].samples
    cepstral = run(["nodes.feature_extraction.config.adaptive_envelope=false"], old)
    assert np.array_equal(run([], old), cepstral)           # no adaptive statistics: exactly as before
    y = run([], profile)
    assert y.shape == cepstral.shape and np.isfinite(y).all()
    assert not np.allclose(y, cepstral)                    # with them, the adaptive envelope is used


def test_profile_refuses_partial_or_misshapen_adaptive_statistics(tmp_path):
    from vcgraph_voice.enroll import enroll_files

    profile = enroll_files(voice_data.target_paths()[:1], presets=["fast"])
    path = tmp_path / "v.vcp"
    profile.save(path)
    back = VoiceProfile.load(path)
    assert np.array_equal(back.methods["fast"]["adaptive_mel_std_v"], profile.methods["fast"]["adaptive_mel_std_v"])
    part = dict(profile.methods["fast"])
    del part["adaptive_mel_std_u"]
    with pytest.raises(VoiceInputError, match="adaptive_mel_std_u"):
        VoiceProfile(profile.embedding, {"fast": part}).save(tmp_path / "partial.vcp")
        VoiceProfile.load(tmp_path / "partial.vcp")
    part = dict(profile.methods["fast"], adaptive_mel_mean_u=np.zeros(3, np.float32))
    with pytest.raises(VoiceInputError, match="adaptive_mel_mean_u"):
        VoiceProfile(profile.embedding, {"fast": part}).save(tmp_path / "shape.vcp")
        VoiceProfile.load(tmp_path / "shape.vcp")
