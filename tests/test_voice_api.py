"""The seed API on the graph: conversion moves the voice, keeps duration; progress, stats, errors."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from vcgraph import CUDAKernelError
from vcgraph_voice import PipelineConfig, VoiceConversionError, VoiceConversionPipeline
from vcgraph_voice.enroll import enroll_files
from vcgraph_voice.methods.fast import FastSynthesis
from vcgraph_voice.methods.quality import QualitySynthesis

import voice_data

STAGES = ["preprocessing", "feature_extraction", "speaker_encoding", "voice_synthesis", "postprocessing"]


@pytest.fixture(scope="module")
def profile():
    return enroll_files(voice_data.target_paths())


@pytest.fixture(scope="module")
def fast_pipeline():
    return VoiceConversionPipeline(PipelineConfig(preset="fast"))


@pytest.fixture(scope="module")
def quality_pipeline():
    return VoiceConversionPipeline(PipelineConfig(preset="quality"))


@pytest.fixture(scope="module")
def default_pipeline():
    return VoiceConversionPipeline(PipelineConfig())


@pytest.fixture(scope="module")
def source():
    return voice_data.source()


def test_config_has_the_seed_fields_and_defaults():
    c = PipelineConfig()
    assert (c.sample_rate, c.n_fft, c.hop_length, c.n_mels) == (22050, 2048, 512, 80)
    assert (c.f0_min, c.f0_max, c.chunk_size, c.batch_size) == (80.0, 800.0, 8192, 4)
    with pytest.warns(UserWarning, match="chunk_size has no effect"):
        PipelineConfig(chunk_size=4096)
    assert (c.use_cuda, c.max_retries, c.fallback_on_error) == (True, 3, True)
    assert c.preset == "content"  # the default preset (a vcgraph addition to the seed fields)


def _applied(pipe: VoiceConversionPipeline) -> tuple:
    graph, ex = pipe.pipeline.graph, pipe.pipeline.executor
    feat = graph.nodes["feature_extraction"].config
    return (graph.nodes["preprocessing"].config.sample_rate, graph.nodes["postprocessing"].config.sample_rate,
            graph.fallback.config.sample_rate, feat.n_fft, feat.hop_length, feat.n_mels, feat.f0_min, feat.f0_max,
            ex.use_cuda, ex.max_retries, ex.fallback_on_error)


@pytest.mark.parametrize("preset", ["quality", "fast"])
def test_config_fields_reach_the_graph(preset):
    """The seed defaults are what the preset graphs run with, and every field changes them."""
    assert _applied(VoiceConversionPipeline(PipelineConfig(preset=preset))) == (
        22050, 22050, 22050, 2048, 512, 80, 80.0, 800.0, True, 3, True)
    custom = PipelineConfig(preset=preset, sample_rate=16000, n_fft=1024, hop_length=256, n_mels=64, f0_min=60.0,
                            f0_max=500.0, use_cuda=False, max_retries=1, fallback_on_error=False)
    assert _applied(VoiceConversionPipeline(custom)) == (
        16000, 16000, 16000, 1024, 256, 64, 60.0, 500.0, False, 1, False)


@pytest.mark.parametrize("preset", ["default", "fast", "quality"])
def test_conversion_moves_voice_to_target_and_keeps_duration(preset, profile, source, fast_pipeline,
                                                             quality_pipeline, default_pipeline):
    pipe = {"default": default_pipeline, "fast": fast_pipeline, "quality": quality_pipeline}[preset]
    if preset == "default":  # the seed API's default graph is the content preset's
        assert pipe.pipeline.graph.nodes["voice_synthesis"].stage_cls.name == "content-synthesis"
    x, sr = source
    y = pipe.convert(x, profile, sample_rate=sr)
    out_sr = pipe.config.sample_rate
    assert y.dtype == np.float32 and np.isfinite(y).all() and np.abs(y).max() <= 1.0
    assert len(y) == round(len(x) * out_sr / sr)  # duration kept (to the sample)
    # F0 lands in the target's range: closer to the target's median than to the source's
    f_src, f_out = voice_data.median_f0(x, sr), voice_data.median_f0(y, out_sr)
    f_tgt = np.median([voice_data.median_f0(*voice_data.read(p)) for p in voice_data.target_paths()])
    assert abs(np.log(f_out / f_tgt)) < 0.5 * abs(np.log(f_src / f_tgt)), (f_src, f_out, f_tgt)
    # speaker similarity to the target rises over the unconverted source's
    centroid = voice_data.target_centroid()
    sim_src = float(voice_data.embed(x, sr) @ centroid)
    sim_out = float(voice_data.embed(y, out_sr) @ centroid)
    assert sim_out > sim_src + 0.05, (sim_src, sim_out)
    report = pipe.last_report
    assert report.ok and all(report.nodes[n].implementation in ("cpu", "cuda") for n in STAGES)


def test_bare_embedding_still_moves_toward_the_target(fast_pipeline, profile, source):
    x, sr = source
    y = fast_pipeline.convert(x, profile.embedding, sample_rate=sr)
    centroid = voice_data.target_centroid()
    assert len(y) == round(len(x) * 22050 / sr)
    assert float(voice_data.embed(y, 22050) @ centroid) > float(voice_data.embed(x, sr) @ centroid) + 0.02


def test_pitch_shift_raises_f0_by_the_requested_interval(fast_pipeline, profile, source):
    x, sr = source
    base = fast_pipeline.convert(x, profile, sample_rate=sr)
    up = fast_pipeline.convert(x, profile, pitch_shift_semitones=4.0, sample_rate=sr)
    ratio = voice_data.median_f0(up, 22050) / voice_data.median_f0(base, 22050)
    assert ratio == pytest.approx(2 ** (4 / 12), rel=0.06)


def test_source_f0_is_used_instead_of_tracking(fast_pipeline, profile, source):
    x, sr = source
    flat = np.full(200, 150.0)  # a monotone contour at 150 Hz
    y = fast_pipeline.convert(x, profile, source_f0=flat, sample_rate=sr)
    import pyworld as pw
    d = y.astype(np.float64)
    f0 = pw.stonemask(d, *pw.dio(d, 22050, f0_floor=50.0, f0_ceil=600.0), 22050)
    voiced = np.log(f0[f0 > 0])
    # a constant source F0 maps to a constant target F0: almost no spread left (interquartile
    # range under half a semitone; the tracker's octave errors in pauses sit outside it)
    q1, q3 = np.percentile(voiced, [25, 75])
    assert q3 - q1 < 0.5 * np.log(2) / 12, (q1, q3)
    tracked = fast_pipeline.convert(x, profile, sample_rate=sr)
    d2 = tracked.astype(np.float64)
    f0t = pw.stonemask(d2, *pw.dio(d2, 22050, f0_floor=50.0, f0_ceil=600.0), 22050)
    t1, t3 = np.percentile(np.log(f0t[f0t > 0]), [25, 75])
    assert t3 - t1 > 4 * (q3 - q1)  # with tracking, the intonation is there


def test_progress_reports_the_seed_stages_in_order(fast_pipeline, profile, source):
    seen = []
    fast_pipeline.convert(source[0], profile, sample_rate=source[1], progress_callback=lambda p, s: seen.append((p, s)))
    assert seen == [(0.0, "preprocessing"), (20.0, "feature_extraction"), (40.0, "speaker_encoding"),
                    (60.0, "voice_synthesis"), (80.0, "postprocessing"), (100.0, "completed")]


def test_stats_count_successes_failures_and_time(profile, source):
    pipe = VoiceConversionPipeline(PipelineConfig(preset="fast"))
    x, sr = source
    pipe.convert(x, profile, sample_rate=sr)
    pipe.convert(x[: sr], profile, sample_rate=sr)
    with pytest.raises(VoiceConversionError, match="empty"):
        pipe.convert(np.zeros(0, np.float32), profile, sample_rate=sr)
    s = pipe.get_stats()
    assert (s["total_conversions"], s["successful_conversions"], s["failed_conversions"]) == (3, 2, 1)
    assert s["success_rate"] == pytest.approx(2 / 3)
    assert 0 < s["average_processing_time"] < 60
    assert s["device"] == "cpu" and s["cuda_available"] is False


def test_bad_inputs_raise_voice_conversion_error(fast_pipeline, profile, source):
    x, sr = source
    with pytest.raises(VoiceConversionError, match="NaN"):
        fast_pipeline.convert(np.full(sr, np.nan, np.float32), profile, sample_rate=sr)
    with pytest.raises(VoiceConversionError, match="shape"):
        fast_pipeline.convert(x, np.ones(128), sample_rate=sr)
    with pytest.raises(VoiceConversionError, match="outside"):
        fast_pipeline.convert(x, profile, sample_rate=50)
    err = None
    try:
        fast_pipeline.convert(x, np.ones(10), sample_rate=sr)
    except VoiceConversionError as exc:
        err = exc
    assert err is not None and err.node == "speaker_encoding"


def test_synthesis_failure_falls_back_to_simplified_and_is_reported(monkeypatch, profile, source):
    def broken(self, ctx, **kw):
        raise RuntimeError("injected CPU failure")
    monkeypatch.setattr(QualitySynthesis, "run_torch", broken)
    pipe = VoiceConversionPipeline(PipelineConfig(preset="quality"))
    x, sr = source
    y = pipe.convert(x, profile, sample_rate=sr)
    node = pipe.last_report.nodes["voice_synthesis"]
    assert node.implementation == "simplified" and "injected CPU failure" in node.errors[0]
    assert len(y) == round(len(x) * 22050 / sr)


def test_total_failure_returns_the_normalised_input_when_configured(monkeypatch, profile, source):
    def broken(self, ctx, **kw):
        raise CUDAKernelError("injected kernel failure")
    monkeypatch.setattr(FastSynthesis, "run_torch", broken)
    monkeypatch.setattr(FastSynthesis, "run_simplified", broken)
    x, sr = source
    pipe = VoiceConversionPipeline(PipelineConfig(preset="fast", sample_rate=sr))
    y = pipe.convert(x, profile, sample_rate=sr)
    assert pipe.last_report.fallback_used
    assert np.corrcoef(y, x)[0, 1] > 0.99  # the source itself, normalised
    strict = VoiceConversionPipeline(PipelineConfig(preset="fast", fallback_on_error=False))
    with pytest.raises(VoiceConversionError) as info:
        strict.convert(x, profile, sample_rate=sr)
    assert info.value.node == "voice_synthesis" and "injected kernel failure" in str(info.value)


def test_batch_convert_continues_past_failures(fast_pipeline, profile, source):
    x, sr = source
    items = [x[: 2 * sr], np.zeros(0, np.float32), x[sr: 3 * sr]]
    seen = []
    out = fast_pipeline.batch_convert(items, profile, sample_rate=sr, progress_callback=lambda p, s: seen.append(p))
    assert out[1] is None and all(len(o) == 2 * 22050 for o in (out[0], out[2]))
    assert seen == sorted(seen) and seen[-1] == 100.0
    with pytest.raises(VoiceConversionError):
        fast_pipeline.batch_convert(items, [profile] * 3, sample_rate=sr, continue_on_error=False)
    with pytest.raises(VoiceConversionError, match="3 audio items but 2"):
        fast_pipeline.batch_convert(items, [profile.embedding, profile.embedding], sample_rate=sr)


def test_batch_size_items_are_converted_at_once_and_results_keep_their_order(profile, source, monkeypatch):
    """``PipelineConfig.batch_size``: that many in-memory items at once, outputs in input order,
    the same outputs as one at a time."""
    import time
    x, sr = source
    items = [x[: sr // 2], x[sr // 2: sr], x[sr: 2 * sr], x[: sr]]
    outs, peaks = {}, {}
    for size in (1, 3):
        vc = VoiceConversionPipeline(PipelineConfig(preset="fast", batch_size=size))
        active, peak, lock = [0], [0], threading.Lock()
        convert = vc.convert

        def counting(*args, **kwargs):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            try:
                time.sleep(0.05)
                return convert(*args, **kwargs)
            finally:
                with lock:
                    active[0] -= 1

        monkeypatch.setattr(vc, "convert", counting)
        outs[size], peaks[size] = vc.batch_convert(items, profile, sample_rate=sr), peak[0]
    assert peaks == {1: 1, 3: 3}
    assert [len(o) for o in outs[3]] == [round(len(i) * 22050 / sr) for i in items]
    for a, b in zip(outs[1], outs[3]):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_concurrent_conversions_share_one_pipeline(fast_pipeline, profile, source):
    x, sr = source
    ref = fast_pipeline.convert(x[: sr], profile, sample_rate=sr)
    results, errors = [None] * 4, []

    def work(i):
        try:
            results[i] = fast_pipeline.convert(x[: sr], profile, sample_rate=sr)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    for r in results:
        np.testing.assert_allclose(r, ref, atol=1e-4)


def test_warmup_leaves_stats_as_they_were(profile, source):
    pipe = VoiceConversionPipeline(PipelineConfig(preset="fast"))
    pipe.convert(source[0][: source[1]], profile, sample_rate=source[1])
    pipe.warmup(num_iterations=2)
    assert pipe.get_stats()["total_conversions"] == 1
