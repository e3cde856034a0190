"""vcgraph bench: figures for every node, kind and duration, with a baseline and engine overhead."""
from __future__ import annotations

import json
import time

import pytest

from vcgraph.audio import read_audio
from vcgraph.bench import bench_graph, fit_audio, format_rows
from vcgraph.cli import main
from vcgraph.overhead import engine_overhead

import voice_data

FAST = str(voice_data.ROOT / "configs" / "fast.yaml")
NODES = {"preprocessing", "feature_extraction", "speaker_encoding", "voice_synthesis", "postprocessing"}


@pytest.fixture(scope="module")
def profile_path(tmp_path_factory):
    from vcgraph_voice.enroll import enroll_files
    path = tmp_path_factory.mktemp("bench") / "voice.vcp"
    enroll_files(voice_data.target_paths()[:2], presets=["fast"]).save(path)
    return path


def test_fit_audio_tiles_and_cuts():
    audio = read_audio(voice_data.EXAMPLES / "source.wav")
    assert len(fit_audio(audio, 0.5).samples) == audio.sample_rate // 2
    long = fit_audio(audio, 10.0)
    assert len(long.samples) == 10 * audio.sample_rate
    assert (long.samples[: len(audio.samples)] == audio.samples).all()


def test_bench_json_has_every_node_kind_and_duration(profile_path, capsys):
    t0 = time.perf_counter()
    code = main(["bench", FAST, "-i", f"audio={voice_data.EXAMPLES / 'source.wav'}", "-i", f"target={profile_path}",
                 "--durations", "0.5,2", "--kinds", "cpu,simplified", "--repeat", "1", "--overhead-runs", "50",
                 "--json"])
    elapsed = time.perf_counter() - t0
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["engine_overhead"]["median_ms_per_stage"] > 0
    runs = out["runs"]
    assert {(r["kind"], r["seconds_audio"]) for r in runs} == {(k, d) for k in ("cpu", "simplified") for d in (0.5, 2.0)}
    for r in runs:
        assert r["error"] is None
        assert set(r["nodes_warm_s"]) == NODES and set(r["implementations"]) == NODES
        assert r["warm_s"] > 0 and r["baseline_s"] > 0 and r["peak_rss_mb"] > 0
        # RTF against independent clocks: the engine's own per-node times of the (single) warm
        # run fit inside it, and the whole command took at least every timed run
        assert sum(r["nodes_warm_s"].values()) <= r["rtf_warm"] * r["seconds_audio"] * 1.0001
        assert r["baseline"] == "stft-mel"
        forced = {n: impl.split("@")[0] for n, impl in r["implementations"].items()}
        assert forced["preprocessing"] == r["kind"]  # the kind really ran where offered
    timed = sum(r["rtf_first"] * r["seconds_audio"] + r["rtf_warm"] * r["seconds_audio"] for r in runs)
    assert timed <= elapsed


def test_bench_reports_a_kind_that_cannot_run(profile_path, cpu_only):
    rows = bench_graph(FAST, {"audio": read_audio(voice_data.EXAMPLES / "source.wav"),
                              "target": str(profile_path)}, durations=(0.5,), kinds=["cuda"], repeat=1)
    assert rows[0].error and "CUDA" in rows[0].error
    assert "error" in format_rows(rows)


def test_engine_overhead_is_measured():
    t0 = time.perf_counter()
    res = engine_overhead(n_stages=5, runs=30)
    elapsed_ms = (time.perf_counter() - t0) * 1e3
    assert res["stages"] == 5 and res["runs"] == 30 and res["median_ms_per_stage"] > 0
    # per stage, in milliseconds: 30 timed runs of 5 stages at the median fit in the call's wall time
    # (a figure per run, or in seconds, or over the warm-up runs only would not)
    assert res["median_ms_per_stage"] * 5 * 30 * 0.5 <= elapsed_ms
    assert res["p90_ms_per_stage"] * 5 * 30 * 0.1 <= elapsed_ms


def test_a_graph_without_a_baseline_says_so(capsys):
    """A graph of the fault plugin: no plugin of it offers a baseline; none is timed or invented."""
    from engine_helpers import chain_spec, make_registry
    from vcgraph.bench import BenchRow, choose_baseline
    from vcgraph.pipeline import Pipeline
    reg = make_registry()
    pipe = Pipeline.from_yaml(chain_spec({}), registry=reg)
    assert choose_baseline(pipe, None, reg) == (None, None)
    with pytest.raises(ValueError, match="no bench baseline 'nope'"):
        choose_baseline(pipe, "nope", reg)
    rows = [BenchRow("cpu", 1.0, 0.1, 0.1, 0.1, 0.1, None)]
    text = format_rows(rows)
    assert "baseline: none" in text and "nan" not in text
