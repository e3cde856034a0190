"""The voice bank: a bare embedding converts toward blended bank statistics, with no search."""
from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest
import soundfile as sf

from vcgraph.audio import Audio
from vcgraph_voice import bank as vb
from vcgraph_voice.errors import VoiceInputError
from vcgraph_voice.profile import check_method_data

import voice_data


@pytest.fixture(scope="module")
def shipped():
    return vb.VoiceBank.load()


@pytest.fixture(scope="module")
def target_embedding():
    return voice_data.target_centroid().astype(np.float32)


def test_shipped_bank_loads_with_checked_shapes(shipped):
    assert os.path.getsize(vb.DEFAULT_PATH) < 4 * 1024 * 1024
    n = len(shipped)
    assert n >= 200 and shipped.embedding.shape == (n, 256)
    np.testing.assert_allclose(np.linalg.norm(shipped.embedding, axis=1), 1.0, atol=1e-4)
    bands = shipped.stats["mel_mean_v"].shape[1]
    for name, dims in vb.STATS.items():
        assert shipped.stats[name].shape == (n, bands if dims == ("B",) else 1)
    assert 1 <= shipped.k <= n and shipped.temperature > 0
    assert len(set(shipped.family.tolist())) >= 50  # many espeak variants
    dev = {"rms", "slt", "awb", "kal16"}
    assert not any(part in dev for name in shipped.names for part in str(name).replace("+", "/").split("/"))
    with np.load(vb.DEFAULT_PATH, allow_pickle=False) as z:  # plain arrays only
        assert "embedding" in z.files


def test_blend_is_a_valid_fast_profile_part(shipped, target_embedding):
    part = shipped.fast_part(target_embedding)
    check_method_data("fast", part)
    from vcgraph_voice.methods.fast import FastTarget
    FastTarget.from_arrays(part)
    idx, w = shipped.weights(target_embedding)
    assert len(idx) == shipped.k and w.sum() == pytest.approx(1.0) and (np.diff(w) <= 1e-7).all()
    # a bank voice's own embedding, nearest-only, gives back its own statistics
    own = shipped.fast_part(shipped.embedding[7], k=1)
    np.testing.assert_allclose(own["lf0_mean"], shipped.stats["lf0_mean"][7], rtol=1e-6)


def test_tuned_blend_beats_the_bank_mean_on_held_out_families(shipped):
    """Leave one espeak variant out: predicting a voice from other variants' voices by
    embedding similarity is better than predicting the bank mean (error 1.0) and than the
    single nearest voice."""
    scale = vb.error_scale(shipped.stats)
    tuned = vb.held_out_error(shipped.embedding, shipped.stats, shipped.family, shipped.k, shipped.temperature, scale)
    nearest = vb.held_out_error(shipped.embedding, shipped.stats, shipped.family, 1, 1.0, scale)
    assert tuned < 0.8 and tuned < nearest


def _write_bank(path, **change):
    with np.load(vb.DEFAULT_PATH, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for k, v in list(change.items()):
        if isinstance(v, str) and v == "negative":
            change[k] = -arrays[k]
        elif isinstance(v, str) and v == "nan":
            change[k] = np.where(np.arange(len(arrays[k]))[:, None] == 3, np.nan, arrays[k]).astype(np.float32)
    arrays.update(change)
    for k in [k for k, v in change.items() if v is None]:
        del arrays[k]
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


@pytest.mark.parametrize("change, message", [
    ({"stats/lf0_mean": None}, "'stats/lf0_mean' is missing"),
    ({"embedding": np.ones((3, 128), np.float32)}, r"expected \(N, 256\)"),
    ({"stats/mel_std_v": -np.ones((5, 40), np.float32)}, "shape"),
    ({"stats/mel_std_v": "negative"}, "<= 0"),
    ({"stats/lf0_mean": "nan"}, "NaN"),
    ({"format": np.array("something-else")}, "marker"),
    ({"k": np.array(0)}, "not valid"),
])
def test_a_damaged_bank_is_a_clear_error(tmp_path, change, message):
    path = tmp_path / "bank.npz"
    _write_bank(path, **change)
    with pytest.raises(VoiceInputError, match=message) as err:
        vb.VoiceBank.load(path)
    assert str(path) in str(err.value)


def test_a_truncated_or_pickled_bank_is_refused(tmp_path):
    data = open(vb.DEFAULT_PATH, "rb").read()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VoiceInputError, match="voice bank"):
        vb.VoiceBank.load(cut)
    pickled = tmp_path / "pickle.npz"
    with open(pickled, "wb") as fh:
        np.savez(fh, format=np.array(vb.FORMAT), embedding=np.array([{"a": 1}], dtype=object))
    with pytest.raises(VoiceInputError, match="pickle"):
        vb.VoiceBank.load(pickled)
    with pytest.raises(VoiceInputError, match="not found"):
        vb.VoiceBank.load(tmp_path / "missing.npz")


def _count_encoder_calls(monkeypatch) -> list:
    calls = []
    import resemblyzer
    from vcgraph_voice.embedding import GE2EEncoder
    real_u, real_e = GE2EEncoder.embed_utterance, resemblyzer.VoiceEncoder.embed_utterance
    monkeypatch.setattr(GE2EEncoder, "embed_utterance", lambda self, *a, **k: calls.append("ge2e") or real_u(self, *a, **k))
    monkeypatch.setattr(resemblyzer.VoiceEncoder, "embed_utterance",
                        lambda self, *a, **k: calls.append("resemblyzer") or real_e(self, *a, **k))
    return calls


@pytest.mark.parametrize("preset", ["fast", "quality"])
def test_embedding_conversion_moves_toward_the_voice_without_an_encoder(preset, target_embedding, monkeypatch,
                                                                       cpu_only):
    """Toward a bare embedding of the example target voice (not a bank voice): the output's
    GE2E similarity to that voice rises over the unconverted source's, the duration is kept,
    and no speaker encoder runs during the conversion (nothing is searched; the quality preset's
    feature stage computes the source's own d-vector once, as it does with a profile)."""
    from vcgraph.pipeline import Pipeline
    from vcgraph_voice.presets import preset_path
    x, sr = voice_data.source()
    pipe = Pipeline.from_yaml(preset_path(preset))
    calls = _count_encoder_calls(monkeypatch)
    result = pipe.run({"audio": Audio(x, sr), "target": target_embedding})
    assert calls.count("resemblyzer") == (0 if preset == "fast" else 1), calls
    assert not result.report.fallback_used
    y = result["audio"]
    assert y.sample_rate == sr and len(y.samples) == len(x)
    monkeypatch.undo()
    before = float(voice_data.embed(x, sr) @ target_embedding)
    after = float(voice_data.embed(y.samples, sr) @ target_embedding)
    assert after > before + 0.03, (before, after)


def test_fast_embedding_conversion_is_the_profile_path(target_embedding, cpu_only):
    """--config fast toward an embedding is bit-identical to converting toward the profile the
    bank estimates from it (the same conversion path as an enrolled profile)."""
    from vcgraph.pipeline import Pipeline
    from vcgraph_voice.presets import preset_path
    x, sr = voice_data.source()
    pipe = Pipeline.from_yaml(preset_path("fast"))
    a = pipe.run({"audio": Audio(x, sr), "target": target_embedding})["audio"].samples
    from vcgraph_voice.validation import normalize_embedding
    prof = vb.VoiceBank.load().profile(normalize_embedding(target_embedding))  # as the speaker stage does
    b = pipe.run({"audio": Audio(x, sr), "target": prof})["audio"].samples
    np.testing.assert_array_equal(a, b)


def test_the_old_search_stays_reachable_as_an_option(target_embedding, monkeypatch, cpu_only):
    from vcgraph.pipeline import Pipeline
    from vcgraph_voice.presets import preset_path
    x, sr = voice_data.source()
    x = x[: sr]  # 1 s: the search embeds ~20 candidates
    pipe = Pipeline.from_yaml(preset_path("fast"), ["nodes.speaker_encoding.config.bare_embedding=search"])
    calls = _count_encoder_calls(monkeypatch)
    y = pipe.run({"audio": Audio(x, sr), "target": target_embedding})["audio"]
    assert len(calls) > 5 and len(y.samples) == len(x)


def test_enroll_embedding_only_writes_the_npy_the_enroller_would(tmp_path):
    from test_voice_cli import vcgraph
    out = tmp_path / "voice.npy"
    proc = vcgraph("enroll", *voice_data.target_paths(), "-o", out, "--no-progress")
    assert "embedding" in proc.stdout
    e = np.load(out, allow_pickle=False)
    assert e.shape == (256,) and e.dtype == np.float32
    assert float(np.linalg.norm(e)) == pytest.approx(1.0, abs=1e-5)
    assert float(e @ voice_data.target_centroid()) > 0.99
    conv = tmp_path / "out.wav"
    vcgraph("convert", voice_data.EXAMPLES / "source.wav", "--target", out, "-o", conv, "-c", "fast", "--no-progress")
    assert sf.info(str(conv)).frames == sf.info(str(voice_data.EXAMPLES / "source.wav")).frames
