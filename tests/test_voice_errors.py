"""Every user mistake around conversion is one clear line (CLI) or a VoiceConversionError (API)."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from vcgraph.cli import main
from vcgraph_voice import api
from vcgraph_voice.enroll import enroll_files
from vcgraph_voice.errors import VoiceConversionError, VoiceInputError
from vcgraph_voice.methods.fast import FastSynthesis

import voice_data

SOURCE = voice_data.EXAMPLES / "source.wav"


@pytest.fixture(scope="module")
def profile():
    return enroll_files(voice_data.target_paths()[:2], presets=["fast"])


@pytest.fixture(scope="module")
def profile_path(profile, tmp_path_factory):
    path = tmp_path_factory.mktemp("voice-errors") / "voice.vcp"
    profile.save(path)
    return path


@pytest.fixture(scope="module")
def pipe():
    return api.VoiceConversionPipeline(api.PipelineConfig(preset="fast", fallback_on_error=False))


@pytest.fixture
def cli(capsys):
    def run(*argv):
        status = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return status, out, err
    return run


def error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith("vcgraph: note:")]
    assert len(lines) == 1 and lines[0].startswith("vcgraph: error: ") and "Traceback" not in err, err
    return lines[0]


# -- command line ----------------------------------------------------------------------------
@pytest.mark.parametrize("out, words", [
    ("out", ["no extension to tell the sound format"]),
    ("out.xyz", ["extension '.xyz'"]),
])
def test_convert_checks_the_output_before_converting(cli, profile_path, tmp_path, monkeypatch, out, words):
    monkeypatch.setattr("vcgraph.pipeline.Pipeline.run", lambda *a, **k: pytest.fail("ran before the check"))
    status, _, err = cli("convert", SOURCE, "--target", profile_path, "-o", tmp_path / out, "-c", "fast",
                         "--no-progress")
    assert status == 2
    for word in words:
        assert word in error_line(err)


def test_convert_refuses_a_rate_the_format_cannot_store(cli, profile_path, tmp_path, monkeypatch):
    monkeypatch.setattr("vcgraph.pipeline.Pipeline.run", lambda *a, **k: pytest.fail("ran before the check"))
    status, _, err = cli("convert", SOURCE, "--target", profile_path, "-o", tmp_path / "o.mp3", "-c", "fast",
                         "--output-rate", "96000", "--no-progress")
    assert status == 2 and "cannot write MP3 at 96000 Hz" in error_line(err)


def test_convert_writes_mp3(cli, profile_path, tmp_path):
    out = tmp_path / "o.mp3"
    status, _, err = cli("convert", SOURCE, "--target", profile_path, "-o", out, "-c", "fast", "--no-progress")
    assert status == 0, err
    info = sf.info(str(out))
    assert info.format == "MP3" and abs(info.duration - sf.info(str(SOURCE)).duration) < 0.1


def test_reference_audio_as_target_is_enrolled_on_the_fly(cli, tmp_path):
    out = tmp_path / "o.wav"
    ref = voice_data.target_paths()[0]
    status, _, err = cli("convert", SOURCE, "--target", ref, "-o", out, "-c", "fast", "--no-progress")
    assert status == 0, err
    assert f"enrolling {ref} on the fly" in err and "vcgraph enroll" in err
    assert sf.info(str(out)).frames == sf.info(str(SOURCE)).frames


@pytest.mark.parametrize("config, words", [
    ("medium", ["'medium' is neither a preset (content, quality, fast) nor a graph file"]),
])
def test_unknown_preset_lists_the_presets(cli, profile_path, tmp_path, config, words):
    status, _, err = cli("convert", SOURCE, "--target", profile_path, "-o", tmp_path / "o.wav", "-c", config)
    assert status == 2
    for word in words:
        assert word in error_line(err)


@pytest.mark.parametrize("make, words", [
    (lambda p: p.write_bytes(b""), ["the file is empty"]),
    (lambda p: p.write_text("not a profile\n"), ["not a vcgraph profile", "--target takes a .vcp profile"]),
])
def test_odd_target_files(cli, tmp_path, make, words):
    target = tmp_path / "voice.vcp"
    make(target)
    status, _, err = cli("convert", SOURCE, "--target", target, "-o", tmp_path / "o.wav", "-c", "fast")
    assert status == 2
    line = error_line(err)
    assert any(w in line for w in words), line


def test_a_run_that_fell_back_to_the_safe_output_exits_1(cli, profile_path, tmp_path, monkeypatch):
    monkeypatch.setattr(FastSynthesis, "convert", lambda self, ctx, f, t, s, **kw: _nan_like(f))
    out = tmp_path / "o.wav"
    status, _, err = cli("convert", SOURCE, "--target", profile_path, "-o", out, "-c", "fast", "--no-progress")
    assert status == 1
    assert err.strip().splitlines()[-1].startswith("vcgraph: failed: the graph failed ([voice_synthesis]")
    assert "NaN/Inf" in err
    y, _ = sf.read(str(out), dtype="float32")  # the fallback's output: the input, normalised
    assert np.isfinite(y).all() and np.abs(y).max() > 0.5


def _nan_like(features):
    import torch
    return torch.full_like(features.waveform.samples, float("nan"))


# -- Python API ------------------------------------------------------------------------------
@pytest.mark.parametrize("shift, words", [
    (float("nan"), "pitch_shift is nan"), (float("inf"), "pitch_shift is inf"), (30.0, "outside ±24"),
    ("high", "must be a number of semitones"),
])
def test_bad_pitch_shift_is_an_error_not_silence(pipe, profile, shift, words):
    x, sr = voice_data.source()
    with pytest.raises(VoiceInputError, match=words):
        pipe.convert(x, profile, pitch_shift_semitones=shift, sample_rate=sr)


@pytest.mark.parametrize("f0, words", [
    (np.full(200, np.nan), "source_f0 has 200 NaN value"),
    (np.full(3, 120.0), "source_f0 has 3 frames for"),
    (np.full(10 ** 6, 120.0), "is it the contour of another recording"),
    (np.full(200, -5.0), "must lie in 0..4000 Hz"),
    (np.ones((4, 200)), "must be 1-D"),
    (np.array(["a", "b"]), "must be numeric"),
])
def test_bad_source_f0_is_named(pipe, profile, f0, words):
    x, sr = voice_data.source()
    with pytest.raises(VoiceInputError, match=words) as info:
        pipe.convert(x, profile, source_f0=f0, sample_rate=sr)
    assert info.value.node == "feature_extraction"


def test_nan_from_synthesis_never_reaches_the_output(pipe, profile, monkeypatch):
    monkeypatch.setattr(FastSynthesis, "convert", lambda self, ctx, f, t, s, **kw: _nan_like(f))
    x, sr = voice_data.source()
    with pytest.raises(VoiceConversionError, match="NaN/Inf samples") as info:
        pipe.convert(x, profile, sample_rate=sr)
    assert info.value.node == "voice_synthesis"
    assert "cpu: StageError" in str(info.value) and "simplified: StageError" in str(info.value)


def test_reference_audio_path_as_target_in_python(pipe, tmp_path):
    x, sr = voice_data.source()
    y = pipe.convert(x, str(voice_data.target_paths()[0]), sample_rate=sr)
    assert np.isfinite(y).all() and len(y) == round(len(x) * 22050 / sr)


# -- odd sample rates ------------------------------------------------------------------------
def test_coprime_rates_resample_without_a_huge_kernel():
    import math
    import torch
    from vcgraph_voice import resample as rs
    assert rs.kernel_taps(17123, 22050) > 100 * rs.MAX_KERNEL_TAPS  # ~1.5 GB of taps as a sinc kernel
    sr = 17123
    x = torch.sin(2 * math.pi * 440 * torch.arange(sr) / sr)
    y = rs.resample(x, sr, 22050)
    assert y.shape == (22050,) and torch.isfinite(y).all()
    spectrum = torch.fft.rfft(y).abs()
    assert int(spectrum.argmax()) == 440  # 1 s of audio: bin = Hz
    for rate in (8000, 16000, 44100, 48000, 96000, 192000):  # the usual rates keep the sinc kernel
        assert rs.kernel_taps(rate, 22050) <= rs.MAX_KERNEL_TAPS


def test_resampler_cache_stays_bounded():
    import torch
    from vcgraph_voice import resample as rs
    x = torch.zeros(1000)
    resampler = rs.Resampler()  # what the pre- and post-processing stages keep
    for rate in range(8000, 8000 + 50 * 100, 100):  # 50 rate pairs
        resampler(x, rate, 22050)
    assert len(resampler._cache) <= resampler.cache_size
