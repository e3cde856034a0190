"""enroll → convert through the real `vcgraph` command, as a user runs it."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from vcgraph_voice.profile import VoiceProfile

import voice_data


def vcgraph(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "vcgraph.cli", *map(str, args)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"vcgraph {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def profile_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "target.vcp"
    vcgraph("enroll", *voice_data.target_paths(), "-o", path, "--no-progress")
    return path


def test_enroll_writes_a_profile_loadable_without_pickle(profile_path):
    prof = VoiceProfile.load(profile_path)
    assert prof.embedding.shape == (256,) and prof.has("quality") and prof.has("fast")
    assert prof.seconds == pytest.approx(sum(sf.info(str(p)).duration for p in voice_data.target_paths()), rel=1e-3)
    with np.load(profile_path, allow_pickle=False) as data:  # plain arrays only
        assert "embedding" in data.files


@pytest.mark.parametrize("preset", [None, "quality", "fast"])
def test_convert_round_trip(profile_path, tmp_path, preset):
    out = tmp_path / f"{preset or 'default'}.wav"
    src = voice_data.EXAMPLES / "source.wav"
    config = ["--config", preset] if preset else []  # None: the default preset, content
    proc = vcgraph("convert", src, "--target", profile_path, "-o", out, *config, "--no-progress", "--json")
    import json
    report = json.loads(proc.stdout)
    assert report["ok"] and not report["fallback_used"]
    synthesis = {None: "content-synthesis", "quality": "quality-synthesis", "fast": "fast-synthesis"}[preset]
    assert report["nodes"]["voice_synthesis"]["stage"] == synthesis
    y, sr = sf.read(str(out), dtype="float32")
    x, sr_x = sf.read(str(src), dtype="float32")
    assert sr == sr_x and len(y) == len(x)
    centroid = voice_data.target_centroid()
    assert float(voice_data.embed(y, sr) @ centroid) > float(voice_data.embed(x, sr_x) @ centroid) + 0.05


def test_a_stereo_source_is_converted_as_its_mixdown_into_one_channel_in_the_format_asked(profile_path, tmp_path):
    """What --help promises: several channels are mixed to one, and the output's format follows
    its extension."""
    x, sr = sf.read(str(voice_data.EXAMPLES / "source.wav"), dtype="float32")
    other = 0.5 * x[::-1]  # another signal in the second channel: one channel alone converts otherwise
    sf.write(str(tmp_path / "stereo.wav"), np.stack([x, other], 1), sr, subtype="FLOAT")
    sf.write(str(tmp_path / "mono.wav"), (x + other) / 2, sr, subtype="FLOAT")
    for name in ("stereo.wav", "mono.wav"):
        vcgraph("convert", tmp_path / name, "--target", profile_path, "-o", tmp_path / f"out_{name}.flac",
                "--threads", "1", "--no-progress")
    info = sf.info(str(tmp_path / "out_stereo.wav.flac"))
    assert info.format == "FLAC" and info.channels == 1 and info.samplerate == sr and info.frames == len(x)
    a, _ = sf.read(str(tmp_path / "out_stereo.wav.flac"), dtype="float32")
    b, _ = sf.read(str(tmp_path / "out_mono.wav.flac"), dtype="float32")
    assert np.sqrt(np.mean((a - b) ** 2)) < 1e-3 * np.sqrt(np.mean(b ** 2))  # the mixdown's conversion


def test_convert_with_a_bare_npy_embedding(profile_path, tmp_path):
    emb = tmp_path / "emb.npy"
    np.save(emb, VoiceProfile.load(profile_path).embedding)
    out = tmp_path / "out.wav"
    proc = vcgraph("convert", voice_data.EXAMPLES / "source.wav", "--target", emb, "-o", out, "-c", "fast",
                   "--no-progress")
    assert "bare embedding" in proc.stderr
    assert sf.info(str(out)).frames == sf.info(str(voice_data.EXAMPLES / "source.wav")).frames


@pytest.mark.parametrize("args, message", [
    (["convert", "nope.wav", "--target", "x.vcp", "-o", "o.wav"], "audio file not found: nope.wav"),
    (["convert", str(voice_data.EXAMPLES / "source.wav"), "--target", "missing.vcp", "-o", "o.wav"], "profile not found"),
    (["convert", str(voice_data.EXAMPLES / "source.wav"), "--target", "x.npy", "-o", "o.wav", "-c", "nope.yaml"],
     "'nope.yaml' is neither a preset (content, quality, fast) nor a graph file"),
    (["enroll", "nope.wav", "-o", "x.vcp"], "audio file not found: nope.wav"),
])
def test_user_errors_are_one_line_without_traceback(args, message):
    proc = vcgraph(*args, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len([l for l in proc.stderr.splitlines() if l.startswith("vcgraph: error")]) == 1


def test_a_profile_that_is_not_a_profile_is_rejected(tmp_path):
    fake = tmp_path / "evil.vcp"
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    fake.write_bytes((tmp_path / "obj.npy").read_bytes())
    proc = vcgraph("convert", voice_data.EXAMPLES / "source.wav", "--target", fake, "-o", tmp_path / "o.wav",
                   check=False)
    assert proc.returncode == 2 and "not a vcgraph profile" in proc.stderr


@pytest.mark.parametrize("value, message", [("0", "expected at least 1 thread, got 0"),
                                            ("two", "expected a whole number of threads, got 'two'")])
def test_threads_must_be_a_whole_number_of_at_least_one(value, message):
    proc = vcgraph("convert", voice_data.EXAMPLES / "source.wav", "--target", "x.vcp", "-o", "o.wav",
                   "--threads", value, check=False)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", ["convert", "enroll"])
def test_threads_sets_torch_threads_before_the_work(profile_path, tmp_path, monkeypatch, command):
    """``--threads N`` reaches torch (recorded, so this test process's own threads stay as they are)."""
    import torch
    from vcgraph.cli import main
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    if command == "convert":
        out = tmp_path / "out.wav"
        args = ["convert", str(voice_data.EXAMPLES / "source.wav"), "--target", str(profile_path), "-o", str(out),
                "--config", "fast"]
    else:
        out = tmp_path / "voice.vcp"
        args = ["enroll", *map(str, voice_data.target_paths()[:1]), "-o", str(out), "--presets", "fast"]
    assert main([*args, "--threads", "1", "--no-progress"]) == 0
    assert calls == [1] and out.exists()


@pytest.mark.parametrize("threshold, noted", [(None, True), (1.0, False)])
def test_enrolment_notes_short_reference_audio(tmp_path, capsys, monkeypatch, threshold, noted):
    """Under SHORT_REFERENCE_S of reference audio (one 3.5 s example here) enrol says that about
    30 s converts nearer the voice; above it, nothing."""
    from vcgraph.cli import main
    from vcgraph_voice import cli
    if threshold is not None:
        monkeypatch.setattr(cli, "SHORT_REFERENCE_S", threshold)
    out = tmp_path / "voice.vcp"
    assert main(["enroll", str(voice_data.target_paths()[0]), "-o", str(out), "--presets", "content", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert ("about 30 s of reference audio" in err) is noted
