"""The example third-party plugin examples/vcgraph-echo, installed for real with pip and
discovered through its entry point; its DSP; streaming; pickling into a spawn worker."""
from __future__ import annotations

import multiprocessing
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from engine_helpers import subprocess_env

import vcgraph.plugins
from vcgraph import Pipeline
from vcgraph.audio import Audio
from vcgraph.errors import ConfigError, InputError
from vcgraph.stage import RunContext

ECHO_YAML = Path(__file__).resolve().parents[1] / "examples" / "vcgraph-echo" / "echo.yaml"
SR = 16000


def noise(seconds: float = 0.5, seed: int = 0, channels: int | None = None) -> Audio:
    shape = (int(SR * seconds),) if channels is None else (int(SR * seconds), channels)
    return Audio((0.1 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32), SR)


def reference_echo(x: np.ndarray, delay: int, feedback: float, mix: float) -> np.ndarray:
    """A plain per-sample loop of the feedback delay, independent of the plugin's code."""
    x = np.asarray(x, dtype=np.float64)
    w = np.zeros_like(x)
    for n in range(delay, len(x)):
        w[n] = x[n - delay] + feedback * w[n - delay]
    return x + mix * w


def delay_of_peak(out: np.ndarray, dry: np.ndarray, max_lag: int) -> int:
    """Lag (> a few samples) at which the output correlates most with the dry signal."""
    corr = [float(np.dot(out[lag:], dry[:len(dry) - lag])) for lag in range(max_lag)]
    return int(np.argmax(corr[5:])) + 5


# -- the installed distribution ----------------------------------------------------------------
def test_entry_point_discovery(echo_env, monkeypatch):
    monkeypatch.delenv("VCGRAPH_PLUGINS")  # discover every installed plugin
    vcgraph.plugins.reset_registry()
    reg = vcgraph.plugins.get_registry()
    info = {p.name: p for p in reg.plugins()}["echo"]
    assert info.error is None
    assert info.version == "0.1.0" and info.package == "vcgraph-echo"
    assert sorted(info.stages) == ["echo", "gain"]
    assert reg.plugin_of("echo") == "echo"
    import vcgraph_echo
    assert str(echo_env) in vcgraph_echo.__file__  # the pip-installed copy, not the source tree


def test_echo_graph_adds_a_delayed_copy(echo_env):
    pipe = Pipeline.from_yaml(ECHO_YAML, overrides=["vars.delay_ms=50", "nodes.echo.config.feedback=0"])
    assert list(pipe.graph.nodes) == ["echo", "level"] and pipe.graph.warnings == []
    audio = noise()
    res = pipe.run({"audio": audio})
    out = res["audio"]
    assert isinstance(out, Audio) and out.sample_rate == SR and out.samples.dtype == np.float32
    assert delay_of_peak(out.samples, audio.samples, 2000) == 800  # 50 ms at 16 kHz
    gain = 10 ** (-3 / 20)
    expected = gain * reference_echo(audio.samples, 800, 0.0, 0.5)
    np.testing.assert_allclose(out.samples, expected, atol=1e-6)
    assert res.report.nodes["echo"].implementation == "cpu"
    assert res.report.nodes["echo"].skipped == {"cuda": "CUDA is not available on this machine"}


def test_echo_yaml_defaults_and_validation(echo_env):
    pipe = Pipeline.from_yaml(ECHO_YAML)
    cfg = pipe.graph.nodes["echo"].config
    assert (cfg.delay_ms, cfg.feedback, cfg.mix) == (120.0, 0.3, 0.5)  # ${vars.delay_ms}
    with pytest.raises(ConfigError) as info:
        Pipeline.from_yaml(ECHO_YAML, overrides=["nodes.echo.config.feedback=0.99"])
    assert info.value.path == "nodes.echo.config.feedback" and "0.95" in str(info.value)
    assert info.value.source == "--set nodes.echo.config.feedback=0.99"  # where the bad value came from
    with pytest.raises(ConfigError) as info:
        Pipeline.from_yaml(ECHO_YAML, overrides=["nodes.echo.config.feedbak=0.5"])
    assert "unknown config key" in str(info.value) and info.value.source.startswith("--set ")
    with pytest.raises(ConfigError, match="delay_ms"):
        Pipeline.from_yaml(ECHO_YAML, overrides=["vars.delay_ms=0"])


def test_plugins_command_in_a_subprocess_lists_echo(echo_target):
    proc = subprocess.run([sys.executable, "-m", "vcgraph.cli", "plugins"], capture_output=True, text=True,
                          env=subprocess_env(echo_target), timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "echo 0.1.0" in lines
    assert any(line.split()[:1] == ["echo"] and "feedback delay" in line for line in lines)
    assert any(line.split()[:1] == ["gain"] for line in lines)


# -- the DSP -----------------------------------------------------------------------------------
@pytest.mark.parametrize("delay, feedback, channels", [(37, 0.6, None), (800, 0.95, None), (5, 0.3, 2),
                                                       (9000, 0.5, None)])
def test_cpu_torch_and_reference_agree(echo_env, delay, feedback, channels):
    from vcgraph_echo import dsp
    x = noise(0.5, seed=delay, channels=channels).samples
    ref = reference_echo(x, delay, feedback, 0.7) if channels is None else np.stack(
        [reference_echo(x[:, c], delay, feedback, 0.7) for c in range(channels)], axis=1)
    cpu, cpu_tail = dsp.echo_numpy(x, delay, feedback, 0.7)
    gpu, gpu_tail = dsp.echo_torch(x, delay, feedback, 0.7, device="cpu")  # the cuda code path, on cpu
    np.testing.assert_allclose(cpu, ref, atol=1e-6)
    np.testing.assert_allclose(gpu, cpu, atol=1e-6)
    np.testing.assert_allclose(gpu_tail, cpu_tail, atol=1e-9)
    assert cpu.shape == x.shape and gpu.dtype == x.dtype


def test_simplified_is_a_single_tap(echo_env):
    from vcgraph_echo import dsp
    x = noise(0.2).samples
    out, _ = dsp.echo_single_tap(x, 100, 0.5)
    np.testing.assert_allclose(out, reference_echo(x, 100, 0.0, 0.5), atol=1e-7)


def test_cuda_implementation_runs_the_torch_code(echo_env):
    from vcgraph_echo.stages import Echo
    stage = Echo(Echo.Config(delay_ms=10, feedback=0.5, mix=0.4))
    audio = noise(0.3)
    via_torch = stage.call("cuda", RunContext("echo", "cuda", "cpu"), {"audio": audio})["audio"]
    via_cpu = stage.call("cpu", RunContext("echo", "cpu", "cpu"), {"audio": audio})["audio"]
    np.testing.assert_allclose(via_torch.samples, via_cpu.samples, atol=1e-6)
    np.testing.assert_allclose(via_cpu.samples, reference_echo(audio.samples, 160, 0.5, 0.4), atol=1e-6)


def test_cuda_failure_falls_back_to_cpu(echo_env, fake_cuda):
    pipe = Pipeline.from_yaml(ECHO_YAML)
    audio = noise(0.2)
    res = pipe.run({"audio": audio})
    echo = res.report.nodes["echo"]
    assert [(a.kind, a.ok) for a in echo.attempts] == [("cuda", False), ("cpu", True)]
    assert echo.attempts[0].error.startswith("CUDAKernelError")
    expected = 10 ** (-3 / 20) * reference_echo(audio.samples, 1920, 0.3, 0.5)
    np.testing.assert_allclose(res["audio"].samples, expected, atol=1e-6)


@pytest.mark.parametrize("kind", ["cpu", "simplified"])
def test_streaming_in_blocks_equals_whole(echo_env, kind):
    pipe = Pipeline.from_yaml(ECHO_YAML, overrides=[f"nodes.echo.implementations=[{kind}]",
                                                    "vars.delay_ms=30"])
    audio = noise(0.5, seed=3)
    whole = pipe.run({"audio": audio})["audio"].samples
    stream = pipe.stream()
    blocks = [stream.process({"audio": Audio(part, SR)})["audio"].samples
              for part in np.array_split(audio.samples, [1000, 1200, 5000])]  # 4 blocks, one shorter than the delay
    assert [len(b) for b in blocks] == [1000, 200, 3800, 3000]
    assert stream.pipeline.stats.snapshot()["successful_runs"] == 5
    np.testing.assert_allclose(np.concatenate(blocks), whole, atol=1e-6)
    # without the stream, the echo of earlier blocks would be lost
    separate = np.concatenate([pipe.run({"audio": Audio(p, SR)})["audio"].samples
                               for p in np.array_split(audio.samples, 4)])
    assert np.abs(separate - whole).max() > 1e-3


def test_torch_implementation_streams_with_the_same_state(echo_env):
    from vcgraph_echo.stages import Echo
    stage = Echo(Echo.Config(delay_ms=30, feedback=0.8, mix=0.5))
    audio = noise(0.5, seed=4)
    whole = stage.call("cpu", RunContext("echo", "cpu", "cpu"), {"audio": audio})["audio"].samples
    state: dict = {}
    parts = []
    for i, part in enumerate(np.array_split(audio.samples, [300, 2000, 6000])):
        kind = ("cuda", "cpu")[i % 2]  # switching implementations mid-stream keeps the tail
        ctx = RunContext("echo", kind, "cpu", state)
        parts.append(stage.call(kind, ctx, {"audio": Audio(part, SR)})["audio"].samples)
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-6)


def test_bad_input_is_a_user_error(echo_env):
    pipe = Pipeline.from_yaml(ECHO_YAML)
    with pytest.raises(InputError) as info:
        pipe.run({"audio": Audio(np.zeros(100, dtype=np.int16), SR)})
    assert info.value.node == "echo" and "float samples" in str(info.value)
    assert pipe.stats.snapshot()["failed_runs"] == 1


# -- pickling into a worker process (as a Ray actor would get it) -------------------------------
def test_pickled_pipeline_runs_in_a_spawn_worker(echo_env):
    from engine_helpers import run_pickled
    pipe = Pipeline.from_yaml(ECHO_YAML, overrides=["vars.delay_ms=20"], use_cuda=False)
    audio = noise(0.25, seed=7)
    local = pipe.run({"audio": audio})
    payload = pickle.dumps(pipe)
    assert len(payload) < 20_000  # the graph spec, not stage instances or models
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        outputs, report = pool.apply(run_pickled, (payload, {"audio": audio}))
    np.testing.assert_array_equal(outputs["audio"].samples, local["audio"].samples)
    assert report["ok"] and report["nodes"]["echo"]["skipped"] == {"cuda": "use_cuda is off"}
    clone = pickle.loads(payload)  # in this process too
    assert clone.graph.nodes["echo"].config.delay_ms == 20.0 and clone.executor.use_cuda is False
