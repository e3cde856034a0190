"""`vcgraph batch` and batch_convert over files: folders and manifests of tiny clips, the fast
preset; a corrupt file among good ones, several targets, an unwritable output folder, Ray."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vcgraph.audio import read_audio
from vcgraph.batch import read_results
from vcgraph.pipeline import Pipeline
from vcgraph_voice.api import PipelineConfig, VoiceConversionPipeline, preset_path
from vcgraph_voice.enroll import enroll_files
from vcgraph_voice.errors import VoiceConversionError
from vcgraph_voice.profile import load_target

import voice_data

LSB = 1 / 32768  # outputs are 16-bit PCM


def vcgraph(*args):
    return subprocess.run([sys.executable, "-m", "vcgraph.cli", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Three short clips of the example source (one a FLAC in a subfolder) and one corrupt file."""
    folder = tmp_path_factory.mktemp("clips")
    x, sr = voice_data.source()
    (folder / "sub").mkdir()
    sf.write(str(folder / "a.wav"), x[: sr], sr)
    sf.write(str(folder / "b.wav"), x[sr: 2 * sr], sr)
    sf.write(str(folder / "sub" / "c.flac"), x[sr // 2: 3 * sr // 2], sr)
    (folder / "sub" / "broken.wav").write_bytes(b"RIFF\x00\x00not really a wave file")
    return folder


@pytest.fixture(scope="module")
def voices(tmp_path_factory) -> dict[str, Path]:
    """Two target profiles (fast data only): the example target voice, and the source's own voice."""
    folder = tmp_path_factory.mktemp("voices")
    paths = {"alice": folder / "alice.vcp", "bob": folder / "bob.vcp"}
    enroll_files(voice_data.target_paths(), presets=["fast"]).save(paths["alice"])
    enroll_files([voice_data.EXAMPLES / "source.wav"], presets=["fast"]).save(paths["bob"])
    return paths


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def direct(source: Path, target: Path, pitch_shift: float = 0.0) -> np.ndarray:
    """The same conversion run directly through the fast graph, as `vcgraph convert` runs it."""
    pipe = Pipeline.from_yaml(preset_path("fast"))
    result = pipe.run({"audio": read_audio(source), "target": load_target(str(target)), "pitch_shift": pitch_shift})
    return np.asarray(result["audio"].samples, dtype=np.float32)


def test_a_folder_with_a_corrupt_file_converts_the_rest(clips, voices, tmp_path):
    before = digest(clips)
    out = tmp_path / "out"
    proc = vcgraph("batch", clips, "--target", voices["alice"], "-o", out, "--config", "fast")
    assert proc.returncode == 1, proc.stderr
    assert "broken.wav" in proc.stderr and "items/s" in proc.stderr and "ETA" in proc.stderr
    lines = read_results(out / "results.jsonl")
    status = {str(Path(r["source"]).relative_to(clips)): r["status"] for r in lines}
    assert status == {"a.wav": "ok", "b.wav": "ok", "sub/c.flac": "ok", "sub/broken.wav": "error"}
    bad = next(r for r in lines if r["status"] == "error")
    assert "cannot read audio" in bad["error"] and not (out / "sub" / "broken.wav").exists()
    for rel in ("a.wav", "b.wav", "sub/c.flac"):
        y, sr = sf.read(str(out / rel), dtype="float32")
        info = sf.info(str(clips / rel))
        assert sr == info.samplerate and len(y) == info.frames
        np.testing.assert_allclose(y, direct(clips / rel, voices["alice"]), atol=2 * LSB)
    assert sf.info(str(out / "sub" / "c.flac")).format == "FLAC"
    assert digest(clips) == before  # inputs never modified

    again = vcgraph("batch", clips, "--target", voices["alice"], "-o", out, "-c", "fast", "--no-progress")
    assert again.returncode == 2 and "already exist" in again.stderr and "--resume" in again.stderr
    resumed = vcgraph("batch", clips, "--target", voices["alice"], "-o", out, "-c", "fast", "--resume",
                      "--no-progress", "--json")
    assert resumed.returncode == 1 and "items/s" not in resumed.stderr
    summary = json.loads(resumed.stdout)
    assert (summary["ok"], summary["failed"], summary["skipped"]) == (0, 1, 3)


def test_a_manifest_with_several_targets(clips, voices, tmp_path):
    manifest = tmp_path / "jobs.csv"
    vdir = voices["alice"].parent
    manifest.write_text("source,target,pitch_shift,output\n"
                        f"{clips / 'a.wav'},{vdir / 'alice.vcp'},,\n"
                        f"{clips / 'a.wav'},{vdir / 'bob.vcp'},,\n"
                        f"{clips / 'b.wav'},,2,shifted/b_up.wav\n")
    out = tmp_path / "out"
    proc = vcgraph("batch", manifest, "--target", voices["bob"], "-o", out, "-c", "fast", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    a_alice, a_bob, b_up = out / "alice" / "a.wav", out / "bob" / "a.wav", out / "shifted" / "b_up.wav"
    np.testing.assert_allclose(sf.read(str(a_alice), dtype="float32")[0], direct(clips / "a.wav", voices["alice"]),
                               atol=2 * LSB)
    np.testing.assert_allclose(sf.read(str(a_bob), dtype="float32")[0], direct(clips / "a.wav", voices["bob"]),
                               atol=2 * LSB)
    np.testing.assert_allclose(sf.read(str(b_up), dtype="float32")[0], direct(clips / "b.wav", voices["bob"], 2.0),
                               atol=2 * LSB)
    assert np.abs(sf.read(str(a_alice))[0] - sf.read(str(a_bob))[0]).max() > 0.05  # two targets, two voices
    assert [r["status"] for r in read_results(out / "results.jsonl")] == ["ok"] * 3


def test_manifest_mistakes_are_errors_before_any_work(clips, voices, tmp_path):
    jsonl = tmp_path / "jobs.jsonl"
    jsonl.write_text(json.dumps({"source": str(clips / "a.wav")}) + "\n")
    proc = vcgraph("batch", jsonl, "-o", tmp_path / "o1")
    assert proc.returncode == 2 and "jobs.jsonl:1: no target" in proc.stderr
    jsonl.write_text(json.dumps({"source": str(clips / "a.wav"), "voice": "x.vcp"}) + "\n")
    proc = vcgraph("batch", jsonl, "-o", tmp_path / "o2", "--target", voices["alice"])
    assert proc.returncode == 2 and "unknown column(s) voice" in proc.stderr
    jsonl.write_text(json.dumps({"source": str(clips / "a.wav"), "target": "missing.vcp"}) + "\n")
    proc = vcgraph("batch", jsonl, "-o", tmp_path / "o3")
    assert proc.returncode == 2 and "target file(s) not found" in proc.stderr
    assert not any((tmp_path / d).exists() for d in ("o1", "o2", "o3"))


def test_an_output_folder_that_cannot_be_made_fails_before_any_work(clips, voices, tmp_path):
    # Root ignores chmod, so the folder is put below a regular file: nobody can create that.
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")
    proc = vcgraph("batch", clips, "--target", voices["alice"], "-o", blocker / "out", "-c", "fast")
    assert proc.returncode == 2
    assert "vcgraph: error: cannot create the output folder" in proc.stderr and "Traceback" not in proc.stderr
    assert "items/s" not in proc.stderr  # no work started


def test_batch_convert_over_paths(clips, voices, tmp_path):
    vc = VoiceConversionPipeline(PipelineConfig(preset="fast"))
    profile = load_target(str(voices["alice"]))
    paths = [clips / "a.wav", clips / "sub" / "broken.wav", clips / "b.wav"]
    seen = []
    summary = vc.batch_convert(paths, profile, output_dir=tmp_path / "out", progress_callback=lambda p, s: seen.append(p))
    assert [r["status"] for r in summary.results] == ["ok", "error", "ok"] and seen[-1] == 100.0
    y, sr_y = sf.read(str(tmp_path / "out" / "b.wav"), dtype="float32")
    x, sr = sf.read(str(clips / "b.wav"), dtype="float32")
    assert sr_y == vc.config.sample_rate  # like convert(): at the config's rate
    np.testing.assert_allclose(y, vc.convert(x, profile, sample_rate=sr), atol=2 * LSB)
    with pytest.raises(VoiceConversionError, match="1 of 3 items failed.*broken.wav"):
        vc.batch_convert(paths, profile, output_dir=tmp_path / "out", resume=True, continue_on_error=False)
    x, sr = voice_data.source()  # arrays in memory: a list back, None for a failed item, as before
    out = vc.batch_convert([x[:sr], np.zeros(0, np.float32)], profile, sample_rate=sr)
    assert out[0].shape[0] > 0 and out[1] is None


def test_ray_engine_and_a_ray_dataset_give_the_local_outputs(clips, voices, tmp_path, ray_cluster):
    vc = VoiceConversionPipeline(PipelineConfig(preset="fast"))
    good = tmp_path / "good"
    good.mkdir()
    for rel in ("a.wav", "b.wav"):
        (good / rel).write_bytes((clips / rel).read_bytes())
    local = vc.batch_convert(str(good), str(voices["alice"]), output_dir=tmp_path / "local")
    on_ray = vc.batch_convert(str(good), str(voices["alice"]), output_dir=tmp_path / "ray", engine="ray")
    assert local.ok == on_ray.ok == 2
    for rel in ("a.wav", "b.wav"):
        assert (tmp_path / "ray" / rel).read_bytes() == (tmp_path / "local" / rel).read_bytes()

    ds = ray_cluster.data.read_audio(str(good), include_paths=True)
    rows = sorted(vc.convert_ray_dataset(ds, str(voices["alice"])).take_all(), key=lambda r: r["path"])
    assert [Path(r["path"]).name for r in rows] == ["a.wav", "b.wav"]
    for row in rows:
        assert row["vcgraph_status"] == "ok" and row["sample_rate"] == vc.config.sample_rate
        x, sr = sf.read(row["path"], dtype="float32")
        expected = vc.convert(x, load_target(str(voices["alice"])), sample_rate=sr)
        np.testing.assert_allclose(row["converted"], expected, atol=1e-3)
