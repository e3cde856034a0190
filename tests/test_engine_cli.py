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
from vcgraph.errors import ConfigError
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


def test_inspect_json_schema(cli):
    status, out, _ = cli("inspect", "--json", "echo")
    assert status == 0
    schema = json.loads(out)
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
    assert status == 0, err
    assert "outputs are the fallback's" in err
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
    (["run", ECHO_YAML, "--input", "audio=/no/such.wav"], ["cannot read audio file /no/such.wav"]),
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


def test_debug_raises_with_traceback(cli, tmp_path):
    with pytest.raises(ConfigError, match="graph file not found"):
        main(["--debug", "validate", str(tmp_path / "missing.yaml")])


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
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert "vcgraph.errors.ConfigError" in debug.stderr and "[nodes.echo.config.mix]" in debug.stderr
