"""The `vcgraph` command line, in-process (vcgraph.cli.main) and as a real subprocess."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from engine_helpers import FaultPlugin, subprocess_env

import vcgraph
from vcgraph.cli import main
from vcgraph.hookspecs import hookimpl
from vcgraph.plugins import register_plugin

ECHO_YAML = Path(__file__).resolve().parents[1] / "examples" / "vcgraph-echo" / "echo.yaml"
SR = 16000


@pytest.fixture
def cli(echo_env, capsys):
    """Run ``vcgraph ARGS`` in-process with the echo plugin; returns (status, stdout, stderr)."""

    def run(*argv: str):
        status = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return status, out, err

    return run


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("vcgraph: error: ")
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def wav(tmp_path) -> tuple[Path, np.ndarray]:
    x = (0.2 * np.random.default_rng(1).standard_normal(SR // 2)).astype(np.float32)
    path = tmp_path / "in.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    return path, x


# -- listing and inspecting ------------------------------------------------------------------
def test_plugins(cli):
    status, out, err = cli("plugins")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "echo 0.1.0"
    assert lines[1].split()[0] == "echo" and "feedback delay" in lines[1]
    assert "implementations: cuda (unavailable: CUDA is not available on this machine), cpu, simplified" in lines[2]
    assert any(line.split()[:1] == ["gain"] for line in lines)


def test_plugins_json(cli):
    status, out, _ = cli("plugins", "--json")
    assert status == 0
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["echo"]
    echo = rows[0]
    assert echo["version"] == "0.1.0" and echo["package"] == "vcgraph-echo" and echo["error"] is None
    stages = {s["name"]: s for s in echo["stages"]}
    assert set(stages) == {"echo", "gain"}
    assert stages["echo"]["implementations"] == {"cuda": "CUDA is not available on this machine",
                                                 "cpu": "available", "simplified": "available"}


def test_inspect(cli):
    status, out, _ = cli("inspect", "echo")
    assert status == 0
    assert out.startswith("echo: A feedback delay")
    assert "(plugin: echo)" in out.splitlines()[0]
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and "(float" in line}
    assert set(lines) == {"delay_ms", "feedback", "mix"}
    for key, words in {"delay_ms": ["default 250.0", ">= 1", "<= 2000"],
                       "feedback": ["default 0.4", ">= 0", "<= 0.95"]}.items():
        for word in words:
            assert word in lines[key]
    assert "delay between echoes, in milliseconds" in out
    assert "  audio (audio): the dry signal" in out
    assert "  cpu: available" in out and "  cuda: unavailable: CUDA is not available" in out


def test_inspect_json_schema_ports_and_implementations(cli):
    status, out, _ = cli("inspect", "--json", "echo")
    assert status == 0
    info = json.loads(out)
    assert (info["name"], info["plugin"]) == ("echo", "echo")
    assert info["inputs"] == {"audio": {"type": "audio", "optional": False, "description": "the dry signal"}}
    assert set(info["outputs"]) == {"audio"} and info["outputs"]["audio"]["type"] == "audio"
    assert info["implementations"]["cpu"] == {"device": "cpu", "available": True, "reason": None}
    assert info["implementations"]["cuda"]["device"] == "cuda"
    schema = info["config"]
    props = schema["properties"]
    assert set(props) == {"delay_ms", "feedback", "mix"}
    assert props["delay_ms"]["default"] == 250.0
    assert (props["delay_ms"]["minimum"], props["delay_ms"]["maximum"]) == (1, 2000)
    assert props["feedback"]["maximum"] == 0.95 and props["mix"]["default"] == 0.5
    assert props["mix"]["description"]
    assert schema.get("additionalProperties") is False


# -- validate and graph ----------------------------------------------------------------------
def test_validate(cli):
    status, out, err = cli("validate", ECHO_YAML)
    assert status == 0
    assert out.strip() == f"{ECHO_YAML}: ok (2 nodes: echo -> level)"
    assert err == ""


def test_validate_strict_warnings(cli, tmp_path):
    text = ECHO_YAML.read_text().replace("outputs:", "  spare:\n    stage: gain\n    inputs: {audio: inputs.audio}\noutputs:")
    path = tmp_path / "spare.yaml"
    path.write_text(text)
    status, _, err = cli("validate", path)
    assert status == 0 and "warning: node 'spare' does not contribute to any graph output" in err
    status, _, err = cli("validate", "--strict", path)
    assert status == 2 and "vcgraph: error: 1 warning(s) with --strict" in err


def test_graph_mermaid_and_dot(cli):
    status, out, _ = cli("graph", ECHO_YAML)
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "flowchart LR"
    assert '    echo["echo<br/><i>echo</i>"]' in lines
    assert "    in_audio -->|audio| echo" in lines and "    echo -->|audio| level" in lines
    assert "    level -->|audio| out_audio" in lines
    status, out, _ = cli("graph", "--format", "dot", ECHO_YAML)
    assert status == 0
    assert out.startswith('digraph "echo" {') and out.rstrip().endswith("}")
    assert '    "echo" -> "level" [label="audio"];' in out.splitlines()


# -- run -------------------------------------------------------------------------------------
def test_run_writes_the_echoed_audio(cli, wav, tmp_path):
    path, x = wav
    out_path = tmp_path / "out" / "out.wav"
    status, out, err = cli("run", ECHO_YAML, "--input", f"audio={path}", "-o", out_path, "--no-progress",
                           "--set", "vars.delay_ms=25", "--set", "nodes.echo.config.feedback=0",
                           "--set", "nodes.level.config.gain_db=0", "--report")
    assert status == 0, err
    y, rate = sf.read(out_path, dtype="float32")
    assert rate == SR and y.shape == x.shape
    expected = x.astype(np.float64).copy()
    expected[400:] += 0.5 * x[:-400]  # 25 ms at 16 kHz, one tap
    np.testing.assert_allclose(y, expected, atol=2e-4)  # 16-bit PCM
    lags = [float(np.dot(y[lag:], x[:len(x) - lag])) for lag in range(10, 1000)]
    assert int(np.argmax(lags)) + 10 == 400
    assert "echo" in out and "cpu" in out and out.splitlines()[-1].startswith("total ")


def test_run_json_report_and_output_dir(cli, wav, tmp_path):
    path, _ = wav
    status, out, _ = cli("run", ECHO_YAML, "-i", f"audio={path}", "--output-dir", tmp_path / "all", "--json")
    assert status == 0
    report = json.loads(out)
    assert report["ok"] is True and report["nodes"]["echo"]["implementation"] == "cpu"
    assert (tmp_path / "all" / "audio.wav").exists()


def test_run_failure_and_graph_fallback(cli, tmp_path):
    register_plugin(FaultPlugin(), "faults")  # the process-wide registry; echo_env resets it afterwards
    graph = {"name": "bad", "settings": {"fallback_on_error": False}, "inputs": {"x": {"type": "array"}},
             "nodes": {"n": {"stage": "flaky", "config": {"fail": ["cpu", "simplified"]}, "inputs": {"x": "inputs.x"}}},
             "outputs": {"x": "n.x"}}
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(graph))  # JSON is YAML
    status, _, err = cli("run", path, "--input", "x=[1, 2]", "-o", tmp_path / "x.npy", "--no-progress")
    assert status == 1
    assert err.strip().splitlines()[-1].startswith("vcgraph: failed: [n] every implementation failed")
    status, _, err = cli("run", path, "--input", "x=[1, 2]", "-o", tmp_path / "x.npy",
                         "--set", "settings.fallback_on_error=true", "--set", "fallback.stage=safe",
                         "--set", "fallback.inputs.x=inputs.x")
    assert status == 1, err  # the fallback's output is written, but the run failed: not a success
    last = err.strip().splitlines()[-1]
    assert last.startswith("vcgraph: failed: the graph failed ([n] every implementation failed")
    assert last.endswith("the outputs written are the fallback's")
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), [0.0, 0.0])


# -- user errors: status 2, one line, no traceback --------------------------------------------
def test_bad_yaml_key(cli, tmp_path):
    text = ECHO_YAML.read_text().replace("feedback: 0.3", "feedbak: 0.3")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    line_no = text.splitlines().index("      feedbak: 0.3") + 1
    status, _, err = cli("validate", path)
    assert status == 2
    line = one_error_line(err)
    assert f"{path}:{line_no}" in line and "[nodes.echo.config.feedbak]" in line
    assert "unknown config key for stage 'echo'" in line


@pytest.mark.parametrize("argv, words", [
    (["validate", "missing.yaml"], ["graph file not found: missing.yaml"]),
    (["inspect", "nosuch"], ["unknown stage type 'nosuch'", "echo, gain"]),
    (["run", ECHO_YAML, "--set", "nodes.echo.config.feedback"], ["not of the form key.path=value"]),
    (["graph", ECHO_YAML, "--set", "vars.delay_ms=[1"], ["cannot parse the value"]),
    (["validate", ECHO_YAML, "-s", "nodes.echo.stage=nosuch"], ["[nodes.echo.stage]", "unknown stage type 'nosuch'"]),
    (["validate", ECHO_YAML, "-s", "vars.delay_ms=5000"], ["[nodes.echo.config.delay_ms]", "2000"]),
    (["run", ECHO_YAML, "--input", "audio=/no/such.wav"], ["audio file not found: /no/such.wav"]),
    (["run", ECHO_YAML, "--input", "voice=x.wav"], ["the graph has no input 'voice'"]),
    (["run", ECHO_YAML], ["missing graph input(s): audio"]),
])
def test_user_errors(cli, argv, words):
    status, out, err = cli(*argv)
    assert status == 2
    line = one_error_line(err)
    for word in words:
        assert word in line


def test_unknown_stage_in_a_graph_file(cli, tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(ECHO_YAML.read_text().replace("stage: gain", "stage: gian"))
    status, _, err = cli("graph", path)
    assert status == 2
    line = one_error_line(err)
    assert "unknown stage type 'gian'" in line and f"{path}:" in line and "[nodes.level.stage]" in line


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback_and_keeps_the_status(cli, tmp_path, where):
    missing = str(tmp_path / "missing.yaml")
    argv = ["--debug", "validate", missing] if where == "before" else ["validate", missing, "--debug"]
    status, _, err = cli(*argv)
    assert status == 2  # a user error stays a user error with --debug
    assert "Traceback (most recent call last)" in err and "vcgraph.errors.ConfigError" in err
    assert err.strip().splitlines()[-1] == f"vcgraph: error: graph file not found: {missing}"


def test_no_command_prints_help(cli):
    status, out, _ = cli()
    assert status == 2 and "usage: vcgraph" in out and "vcgraph plugins" in out


class _BrokenCommands:
    """A plugin whose register_commands hook fails on a lazy import."""

    @hookimpl
    def register_commands(self, subparsers):
        import vcgt_no_such_cli_module  # noqa: F401


class _HelloCommand:
    @hookimpl
    def register_commands(self, subparsers):
        p = subparsers.add_parser("hello", help="say hello")
        p.add_argument("name")
        p.set_defaults(func=lambda args: print(f"hello {args.name}") or 3)


def test_plugin_commands_and_a_broken_one(cli):
    register_plugin(_HelloCommand(), "hello")
    register_plugin(_BrokenCommands(), "broken-cli")
    status, out, _ = cli("hello", "world")
    assert (status, out) == (3, "hello world\n")
    status, out, _ = cli("plugins", "--json")  # the CLI still works, and says what broke
    assert status == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["broken-cli"]["error"] == "ModuleNotFoundError: No module named 'vcgt_no_such_cli_module'"
    assert rows["echo"]["error"] is None and rows["hello"]["error"] is None


# -- real subprocesses -----------------------------------------------------------------------
def _vcgraph_command() -> list[str]:
    script = Path(sys.executable).with_name("vcgraph")
    return [str(script)] if script.exists() else [sys.executable, "-m", "vcgraph.cli"]


def test_version_subprocess():
    proc = subprocess.run(_vcgraph_command() + ["--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"vcgraph {vcgraph.__version__}"
    assert vcgraph.__version__ == "0.1.0"


def test_debug_traceback_subprocess(tmp_path, echo_target):
    path = tmp_path / "bad.yaml"
    path.write_text(ECHO_YAML.read_text().replace("mix: 0.5", "mix: 2"))
    env = subprocess_env(echo_target, VCGRAPH_PLUGINS="echo")
    plain = subprocess.run(_vcgraph_command() + ["validate", str(path)], capture_output=True, text=True,
                           env=env, timeout=60)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert "[nodes.echo.config.mix]" in plain.stderr
    debug = subprocess.run(_vcgraph_command() + ["--debug", "validate", str(path)], capture_output=True, text=True,
                           env=env, timeout=60)
    assert debug.returncode == 2
    assert "Traceback (most recent call last)" in debug.stderr
    assert "vcgraph.errors.ConfigError" in debug.stderr and "[nodes.echo.config.mix]" in debug.stderr


# -- hardening: each mistake is one line, found before any work -------------------------------
@pytest.mark.parametrize("text, where, words", [
    ("vcgraph: 1\nnodes:\n  a: {stage: x\n  b: 2\n", ":4:4:", ["not valid YAML", "expected ',' or '}'"]),
    ("vcgraph: 1\nnodes: [1, 2\n", ":3:1:", ["not valid YAML", "flow sequence"]),
    ("name: a: b\n", ":1:8:", ["not valid YAML", "mapping values are not allowed here"]),
])
def test_yaml_syntax_error_has_line_and_column(cli, tmp_path, text, where, words):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    status, _, err = cli("validate", path)
    assert status == 2
    line = one_error_line(err)
    assert f"{path}{where}" in line, line
    for word in words:
        assert word in line


def test_set_naming_a_missing_node_says_so(cli):
    status, _, err = cli("validate", ECHO_YAML, "--set", "nodes.ecoh.config.mix=1")
    assert status == 2
    line = one_error_line(err)
    assert "--set nodes.ecoh.config.mix=1" in line and "the graph has no node 'ecoh' (nodes: echo, level)" in line
    assert "required key is missing" not in line


def test_set_errors_point_at_the_override_not_the_file(cli):
    status, _, err = cli("validate", ECHO_YAML, "--set", "nodes.echo.config.mixx=1")
    line = one_error_line(err)
    assert status == 2 and line.startswith("vcgraph: error: --set nodes.echo.config.mixx=1 [nodes.echo.config.mixx]")
    assert "unknown config key for stage 'echo'" in line and f"{ECHO_YAML}:" not in line
    status, _, err = cli("validate", ECHO_YAML, "--set", "fallback.config.x=1")
    assert status == 2 and "the graph has no fallback node" in one_error_line(err)


def test_set_may_create_a_node_that_names_its_stage(cli):
    status, out, err = cli("validate", ECHO_YAML, "--set", "nodes.extra.stage=gain",
                           "--set", "nodes.extra.inputs.audio=level.audio", "--set", "outputs.audio=extra.audio")
    assert status == 0, err
    assert "3 nodes: echo -> level -> extra" in out


@pytest.mark.parametrize("name, words", [
    ("out.xyz", ["extension '.xyz' names no sound format", ".wav, .flac"]),
    ("out", ["no extension to tell the sound format"]),
])
def test_a_bad_output_path_stops_the_run_before_it_starts(cli, wav, tmp_path, monkeypatch, name, words):
    ran = []
    monkeypatch.setattr("vcgraph.pipeline.Pipeline.run", lambda *a, **k: ran.append(1))
    status, _, err = cli("run", ECHO_YAML, "-i", f"audio={wav[0]}", "-o", tmp_path / name, "--no-progress")
    assert status == 2 and not ran
    line = one_error_line(err)
    for word in words:
        assert word in line
    status, _, err = cli("run", ECHO_YAML, "-i", f"audio={wav[0]}", "-o", tmp_path, "--no-progress")
    assert status == 2 and not ran and "is a directory" in one_error_line(err)


@pytest.mark.parametrize("ext, subtype", [("flac", "PCM_16"), ("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")])
def test_run_writes_other_sound_formats(cli, wav, tmp_path, ext, subtype):
    out = tmp_path / f"out.{ext}"
    status, _, err = cli("run", ECHO_YAML, "-i", f"audio={wav[0]}", "-o", out, "--no-progress")
    assert status == 0, err
    info = sf.info(str(out))
    assert info.subtype == subtype and info.samplerate == SR
    assert not list(tmp_path.glob("*.part"))  # written whole, through a temporary name


@pytest.mark.parametrize("content, words", [
    (b"", ["the file is empty"]),
    (b"just some text\n", ["cannot read audio file", "is it a sound file?"]),
    (b"RIFF\x24\x08\x00\x00WAVEfmt ", ["cannot read audio file"]),  # a WAV cut off in its header
])
def test_odd_input_files_are_one_line_errors(cli, tmp_path, content, words):
    path = tmp_path / "in.wav"
    path.write_bytes(content)
    status, _, err = cli("run", ECHO_YAML, "-i", f"audio={path}", "-o", tmp_path / "o.wav")
    assert status == 2
    line = one_error_line(err)
    for word in words:
        assert word in line


def test_help_examples_name_files_that_exist(cli):
    import re
    from vcgraph.cli import EXAMPLES
    root = Path(__file__).resolve().parents[1]
    named = re.findall(r"configs/[\w.-]+\.yaml", EXAMPLES)
    assert named and all((root / n).is_file() for n in named), named
