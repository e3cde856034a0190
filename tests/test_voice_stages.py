"""The voice stages one by one: real audio in, measured properties out."""
from __future__ import annotations

import numpy as np
import pytest

from vcgraph.audio import Audio
from vcgraph.stage import RunContext
from vcgraph_voice.errors import VoiceConversionError
from vcgraph_voice.stages.audio_io import Postprocess, Preprocess, SafeOutput
from vcgraph_voice.stages.speaker import SpeakerEncoder
from vcgraph_voice.validation import normalize_embedding

import voice_data

CTX = RunContext("test", "cpu", "cpu")


def pre(**cfg) -> Preprocess:
    return Preprocess(Preprocess.Config(**cfg))


def test_preprocess_resamples_and_normalises_real_speech():
    x, sr = voice_data.source()
    out = pre(sample_rate=22050).run_torch(CTX, Audio(x + 0.1, sr))["audio"]
    y = out.samples.numpy()
    assert out.sample_rate == 22050 and out.source_rate == sr and out.source_length == len(x)
    assert abs(len(y) - len(x) * 22050 / sr) <= 1
    assert abs(float(y.mean())) < 1e-3          # the +0.1 DC offset is gone
    assert np.abs(y).max() == pytest.approx(0.95, abs=1e-4)
    # the content survives resampling: the spectral centroid of speech stays put
    def centroid(sig, rate):
        spec = np.abs(np.fft.rfft(sig))
        return float((np.fft.rfftfreq(len(sig), 1 / rate) * spec).sum() / spec.sum())
    assert centroid(y, 22050) == pytest.approx(centroid(x, sr), rel=0.05)


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_preprocess_mixes_stereo(layout):
    x, sr = voice_data.source()
    stereo = np.stack([x, -0.5 * x], axis=1)  # mean = 0.25 x
    if layout == "channels_first":
        stereo = stereo.T
    out = pre(sample_rate=sr, peak=1.0, remove_dc=False).run_torch(CTX, Audio(stereo, sr))["audio"].samples.numpy()
    expected = 0.25 * x / np.abs(0.25 * x).max()
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_simplified_preprocess_matches_cpu_roughly():
    x, sr = voice_data.source()
    a = pre(sample_rate=22050).run_torch(CTX, Audio(x, sr))["audio"].samples.numpy()
    b = pre(sample_rate=22050).run_simplified(CTX, Audio(x, sr))["audio"].samples.numpy()
    n = min(len(a), len(b))
    assert np.corrcoef(a[:n], b[:n])[0, 1] > 0.95


@pytest.mark.parametrize("audio, sr, message", [
    (np.zeros(0, np.float32), 16000, "empty"),
    (np.full(16000, np.nan, np.float32), 16000, "NaN"),
    (np.r_[np.ones(8000), np.inf].astype(np.float32), 16000, "NaN/Inf"),
    (np.ones(100, np.float32), 16000, "too short"),
    (np.ones(16000, np.float32), 100, "outside"),
    (np.ones(16000, np.float32), 10_000_000, "outside"),
    (np.ones((2, 2, 4000), np.float32), 16000, "shape"),
    (np.zeros(16000, np.float32), 16000, "silence"),
    (np.array(["a"] * 16000), 16000, "numeric"),
])
def test_preprocess_rejects_bad_input(audio, sr, message):
    for run in (pre().run_torch, pre().run_simplified):
        with pytest.raises(VoiceConversionError, match=message):
            run(CTX, Audio(audio, sr))


def test_postprocess_keeps_duration_rate_and_range():
    x, sr = voice_data.source()
    w = pre(sample_rate=22050).run_torch(CTX, Audio(x, sr))["audio"]
    loud = w.with_samples(w.samples * 40.0)  # far out of range
    for run in (Postprocess(Postprocess.Config()).run_torch, Postprocess(Postprocess.Config()).run_simplified):
        out = run(CTX, loud)["audio"]
        assert isinstance(out, Audio) and out.sample_rate == sr and len(out.samples) == len(x)
        assert np.isfinite(out.samples).all() and np.abs(out.samples).max() <= 0.99 + 1e-6
    out = Postprocess(Postprocess.Config(sample_rate=44100)).run_torch(CTX, w)["audio"]
    assert out.sample_rate == 44100 and len(out.samples) == round(len(x) * 44100 / sr)


def test_postprocess_normalises_loudness_and_removes_nan():
    x, sr = voice_data.source()
    w = pre(sample_rate=sr).run_torch(CTX, Audio(x, sr))["audio"]
    quiet = w.with_samples(w.samples * 0.01)
    y = Postprocess(Postprocess.Config(loudness_dbfs=-20)).run_torch(CTX, quiet)["audio"].samples
    frames = y[: len(y) // 512 * 512].reshape(-1, 512)
    rms = np.sqrt((frames ** 2).mean(1))
    active = rms[rms > rms.max() * 0.01]
    assert 20 * np.log10(np.sqrt((active ** 2).mean())) == pytest.approx(-20, abs=1.5)
    bad = w.samples.clone()
    bad[100:200] = float("nan")
    y = Postprocess(Postprocess.Config()).run_torch(CTX, w.with_samples(bad))["audio"].samples
    assert np.isfinite(y).all()


@pytest.mark.parametrize("shape", [(256,), (1, 256), "list"])
def test_speaker_encoder_accepts_embedding_shapes(shape):
    rng = np.random.default_rng(1)
    e = rng.standard_normal(256).astype(np.float32) * 3
    value = e.tolist() if shape == "list" else e.reshape(shape)
    out = SpeakerEncoder(SpeakerEncoder.Config()).run_torch(CTX, value)["speaker"]
    assert out.embedding.shape == (256,) and out.embedding_only
    assert float(out.embedding.norm()) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(out.embedding.numpy(), e / np.linalg.norm(e), rtol=1e-5)


@pytest.mark.parametrize("bad, message", [(np.ones(128), r"shape \(256,\)"), (np.ones((2, 256)), "shape"),
                                          (np.zeros(256), "all zeros"), (np.full(256, np.nan), "NaN"),
                                          ("missing.npy", "not found"), (None, "no target")])
def test_speaker_encoder_rejects_bad_embeddings(bad, message):
    with pytest.raises(VoiceConversionError, match=message):
        SpeakerEncoder(SpeakerEncoder.Config()).run_torch(CTX, bad)


def test_speaker_encoder_can_require_a_profile():
    with pytest.raises(VoiceConversionError, match="profile"):
        SpeakerEncoder(SpeakerEncoder.Config(require_profile=True)).run_torch(CTX, np.ones(256))


def test_safe_output_is_the_normalised_input():
    x, sr = voice_data.source()
    y = SafeOutput(SafeOutput.Config()).run_passthrough(CTX, Audio(x * 0.1, sr))["audio"]
    assert y.sample_rate == sr and len(y.samples) == len(x)
    assert np.abs(y.samples).max() == pytest.approx(0.95, abs=1e-4)
    assert np.corrcoef(y.samples, x)[0, 1] > 0.999


def test_normalize_embedding_is_unit_length():
    e = normalize_embedding([[3.0] * 256])
    assert e.shape == (256,) and np.linalg.norm(e) == pytest.approx(1.0)


# -- the feature stages' mel and f0 outputs ----------------------------------------------------
def test_mel_and_f0_outputs_are_computed_only_when_read():
    """A graph that reads ``f0`` gets the source's pitch on the hop grid; one that reads only
    the features (the presets) skips the mel spectrogram and that F0 (``None``)."""
    from vcgraph.pipeline import Pipeline
    from vcgraph_voice.presets import preset_path
    x, sr = voice_data.source()
    full = Pipeline.from_yaml(preset_path("fast"), ["settings.use_cuda=false"])
    read = full.cut({"features": "feature_extraction.features", "f0": "feature_extraction.f0",
                     "mel": "feature_extraction.mel"}).run({"audio": Audio(x, sr)})
    f0, mel, feats = read["f0"], read["mel"], read["features"]
    assert mel.shape[0] == 80 and f0.shape == (mel.shape[1],)
    assert f0.shape[0] == pytest.approx(len(x) / sr * 22050 / 512, abs=2)  # the hop_length grid
    assert feats.mel is mel and feats.f0 is f0
    voiced = f0[f0 > 0].numpy()
    assert 0.3 < len(voiced) / len(f0) and 70 < float(np.median(voiced)) < 300  # speech, a speaking pitch
    unread = full.cut({"features": "feature_extraction.features"}).run({"audio": Audio(x, sr)})["features"]
    assert unread.mel is None and unread.f0 is None
    assert unread.analysis.f0.shape == feats.analysis.f0.shape  # the method's own analysis is all there


def test_each_preset_runs_the_method_of_its_name():
    """One name from preset to stage to method module to profile part (plugin README)."""
    import importlib
    from vcgraph.pipeline import Pipeline
    from vcgraph_voice.methods import get_method, method_names
    from vcgraph_voice.presets import PRESETS, preset_path
    assert set(method_names()) == set(PRESETS)
    for name in PRESETS:
        graph = Pipeline.from_yaml(preset_path(name)).graph
        features, synthesis = graph.nodes["feature_extraction"].stage_cls, graph.nodes["voice_synthesis"].stage_cls
        assert features.Method is synthesis.Method is get_method(name)
        assert get_method(name).name == name and features.__module__ == f"vcgraph_voice.methods.{name}"
        assert (features.name, synthesis.name) == (f"{name}-features", f"{name}-synthesis")
        assert importlib.import_module(f"vcgraph_voice.methods.{name}").STAGES[:2] == (features, synthesis)


def test_old_quality_stage_names_still_load(tmp_path):
    """Graph files written with ``world-features`` / ``knn-synthesis`` keep working, with the same
    config keys and the same method as ``quality-features`` / ``quality-synthesis``."""
    from vcgraph.errors import ConfigError
    from vcgraph.pipeline import Pipeline
    from vcgraph_voice.methods.quality import QualityFeatures, QualitySynthesis
    from vcgraph_voice.presets import preset_path
    text = open(preset_path("quality")).read()
    assert "stage: quality-features" in text and "stage: quality-synthesis" in text
    old = tmp_path / "old.yaml"
    old.write_text(text.replace("stage: quality-features", "stage: world-features")
                   .replace("stage: quality-synthesis", "stage: knn-synthesis"))
    graph = Pipeline.from_yaml(str(old), ["nodes.voice_synthesis.config.blend=0.3"]).graph
    features, synthesis = graph.nodes["feature_extraction"], graph.nodes["voice_synthesis"]
    assert (features.stage_cls.name, synthesis.stage_cls.name) == ("world-features", "knn-synthesis")
    assert issubclass(features.stage_cls, QualityFeatures) and issubclass(synthesis.stage_cls, QualitySynthesis)
    assert synthesis.config.blend == 0.3
    with pytest.raises(ConfigError, match="postfilter"):  # the same keys are checked
        Pipeline.from_yaml(str(old), ["nodes.voice_synthesis.config.kk=1"])


def test_profile_shape_table_covers_each_methods_profile_part():
    """What loading checks (``profile.METHOD_SHAPES``, plus ``OPTIONAL_SHAPES`` where present) is
    what each method's typed part stores (optional fields: the ones with a default)."""
    import dataclasses

    from vcgraph_voice.methods import get_method, method_names
    from vcgraph_voice.profile import METHOD_SHAPES, OPTIONAL_SHAPES
    for name in method_names():
        target = get_method(name).Target
        keys = target.keys()
        optional = {keys[f.name] for f in dataclasses.fields(target) if f.default is not dataclasses.MISSING}
        assert set(METHOD_SHAPES[name]) == set(keys.values()) - optional, name
        assert {n for group in OPTIONAL_SHAPES.get(name, ()) for n in group} == optional, name
