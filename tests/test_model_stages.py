"""The model stages: a user's exported ONNX or TorchScript model as a graph node, checked
before the run, with cuda/cpu implementations from the runtime."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from engine_helpers import make_registry

import vcgraph.models
import vcgraph.plugins
from vcgraph import Pipeline
from vcgraph.audio import Audio
from vcgraph.cli import main
from vcgraph.errors import ConfigError, InputError

ort = pytest.importorskip("onnxruntime", reason="the onnx-model stage needs onnxruntime (pip install 'vcgraph[onnx]')")


def registry():
    reg = make_registry()
    reg.register(vcgraph.models, "models")
    return reg


# -- tiny models, built here -----------------------------------------------------------------------
def onnx_affine(path, in_shape=(1, "n"), scale=2.0, bias=0.5, names=("x", "y")):
    """y = x * scale + bias, input 'x' and output 'y' (or ``names``), float32."""
    x, y = names
    onnx = pytest.importorskip("onnx", reason="building the test model needs the onnx package (the test extra)")
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        [helper.make_node("Mul", [x, "scale"], ["xs"]), helper.make_node("Add", ["xs", "bias"], [y])], "affine",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor("scale", TensorProto.FLOAT, [], [scale]), helper.make_tensor("bias", TensorProto.FLOAT, [], [bias])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def onnx_two_inputs(path):
    """s = a + b, p = a * b over (2, 3) float32 tensors."""
    onnx = pytest.importorskip("onnx", reason="building the test model needs the onnx package (the test extra)")
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Mul", ["a", "b"], ["p"])], "two",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3]) for n in ("a", "b")],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3]) for n in ("s", "p")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def graph(path, inputs=None, outputs=None, stage="onnx-model", **config):
    inputs = inputs or {"x": {"shape": [1, -1]}}
    outputs = outputs or {"y": {}}
    return {"inputs": {p: {"type": spec.get("type", "array")} for p, spec in inputs.items()},
            "nodes": {"m": {"stage": stage, "config": {"path": str(path), "inputs": inputs, "outputs": outputs, **config},
                            "inputs": {p: f"inputs.{p}" for p in inputs}}},
            "outputs": {p: f"m.{p}" for p in outputs}}


# -- ONNX ----------------------------------------------------------------------------------------------
def test_onnx_model_runs_on_cpu_and_reports_why_not_cuda(tmp_path):
    pipe = Pipeline.from_yaml(graph(onnx_affine(tmp_path / "affine.onnx")), registry=registry())
    x = np.arange(6, dtype=np.float32).reshape(1, 6)
    res = pipe.run({"x": x})
    np.testing.assert_allclose(res["y"], x * 2 + 0.5)
    node = res.report.nodes["m"]
    assert node.implementation == "cpu" and node.device == "cpu"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert "cuda" in node.skipped


def test_several_inputs_and_outputs_by_model_name(tmp_path):
    path = onnx_two_inputs(tmp_path / "two.onnx")
    spec = graph(path, inputs={"left": {"name": "a", "shape": [2, 3]}, "right": {"name": "b"}},
                 outputs={"total": {"name": "s"}, "product": {"name": "p"}})
    pipe = Pipeline.from_yaml(spec, registry=registry())
    a, b = np.ones((2, 3)) * 3, np.arange(6.0).reshape(2, 3)  # float64 in: converted to the declared float32
    res = pipe.run({"left": a, "right": b})
    np.testing.assert_allclose(res["total"], a + b)
    np.testing.assert_allclose(res["product"], a * b)
    assert res["total"].dtype == np.float32
    assert set(pipe.graph.nodes["m"].input_ports) == {"left", "right"}


def test_audio_ports(tmp_path):
    pipe = Pipeline.from_yaml(graph(onnx_affine(tmp_path / "a.onnx", bias=0.0, scale=0.5),
                                    inputs={"x": {"type": "audio", "shape": [1, -1]}},
                                    outputs={"y": {"type": "audio"}}), registry=registry())
    samples = np.linspace(-1, 1, 1600, dtype=np.float32)
    out = pipe.run({"x": Audio(samples, 16000)})["y"]
    assert isinstance(out, Audio) and out.sample_rate == 16000
    np.testing.assert_allclose(out.samples, samples * 0.5)


@pytest.mark.parametrize("change, key, words", [
    ({"inputs": {"z": {}}}, "inputs.z", "the model has no input 'z' (inputs: x)"),
    ({"inputs": {"x": {"shape": [1, 4, -1]}}}, "inputs.x.shape", "has shape [1, -1], not [1, 4, -1]"),
    ({"inputs": {"x": {"shape": [2, -1]}}}, "inputs.x.shape", "not [2, -1]"),
    ({"inputs": {"x": {"dtype": "int64"}}}, "inputs.x.dtype", "is float32, not int64"),
    ({"outputs": {"out": {}}}, "outputs.out", "the model has no output 'out' (outputs: y)"),
])
def test_declared_tensors_are_checked_against_the_model_before_any_run(tmp_path, change, key, words):
    spec = graph(onnx_affine(tmp_path / "affine.onnx"), **change)
    with pytest.raises(ConfigError) as info:
        Pipeline.from_yaml(spec, registry=registry())
    assert f"[nodes.m.config.{key}]" in str(info.value) and words in str(info.value)


def test_missing_file_undeclared_input_and_not_a_model(tmp_path):
    with pytest.raises(ConfigError, match=r"\[nodes.m.config.path\].*does not point to a file"):
        Pipeline.from_yaml(graph(tmp_path / "missing.onnx"), registry=registry())
    with pytest.raises(ConfigError, match="the model also needs input.s. b: declare them"):
        Pipeline.from_yaml(graph(onnx_two_inputs(tmp_path / "two.onnx"), inputs={"a": {}}, outputs={"s": {}}),
                           registry=registry())
    text = tmp_path / "text.onnx"
    text.write_text("not a model")
    with pytest.raises(ConfigError, match=r"\[nodes.m.config.path\]: cannot load .* as an ONNX model"):
        Pipeline.from_yaml(graph(text), registry=registry())


def test_input_of_the_wrong_shape_is_a_user_error(tmp_path):
    pipe = Pipeline.from_yaml(graph(onnx_two_inputs(tmp_path / "two.onnx"), inputs={"a": {"shape": [2, 3]},
                                                                                  "b": {"shape": [2, 3]}},
                                    outputs={"s": {}}), registry=registry())
    with pytest.raises(InputError, match=r"input 'a' has shape \(3, 2\); the model takes \(2, 3\)"):
        pipe.run({"a": np.ones((3, 2)), "b": np.ones((2, 3))})


def test_a_session_that_lands_on_another_provider_falls_back_visibly(tmp_path, fake_cuda, monkeypatch):
    """onnxruntime would quietly run a CUDA session on the CPU; the stage makes it an error."""
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime really has CUDA")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    res = Pipeline.from_yaml(graph(onnx_affine(tmp_path / "affine.onnx")), registry=registry()).run(
        {"x": np.ones((1, 3), np.float32)})
    node = res.report.nodes["m"]
    assert [(a.kind, a.ok) for a in node.attempts] == [("cuda", False), ("cpu", True)]
    np.testing.assert_allclose(res["y"], np.full((1, 3), 2.5))


# -- TorchScript -----------------------------------------------------------------------------------
try:
    import torch
except ImportError:  # the ONNX tests above still run
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="the torchscript-model stage needs torch")

if torch is not None:
    class Mix(torch.nn.Module):
        """Module-level so TorchScript can read its source."""

        def forward(self, a, b):
            return a * 2 + b, (a * b).sum()


@needs_torch
def test_torchscript_model_runs(tmp_path):
    path = tmp_path / "mix.ts"
    torch.jit.script(Mix()).save(str(path))
    spec = graph(path, stage="torchscript-model", inputs={"a": {}, "b": {}}, outputs={"mixed": {}, "dot": {}})
    res = Pipeline.from_yaml(spec, registry=registry()).run({"a": np.ones(3), "b": np.arange(3.0)})
    np.testing.assert_allclose(res["mixed"], 2 + np.arange(3.0))
    assert float(res["dot"]) == pytest.approx(3.0)
    from vcgraph.devices import cuda_available
    assert res.report.nodes["m"].implementation == ("cuda" if cuda_available() else "cpu")


@needs_torch
def test_torchscript_input_count_must_match_forward(tmp_path):
    path = tmp_path / "mix.ts"
    torch.jit.script(Mix()).save(str(path))
    pipe = Pipeline.from_yaml(graph(path, stage="torchscript-model", inputs={"a": {}}), registry=registry())
    with pytest.raises(InputError, match=r"forward takes 2 input\(s\) \(a, b\); the config declares 1"):
        pipe.run({"a": np.ones(3)})


@needs_torch
def test_a_torch_save_pickle_is_refused_before_torch_reads_it(tmp_path, monkeypatch):
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.ones(2)}, str(path))

    def no_load(*a, **k):
        raise AssertionError("torch read the file")
    monkeypatch.setattr(torch.jit, "load", no_load)
    monkeypatch.setattr(torch, "load", no_load)
    with pytest.raises(ConfigError, match=r"\[nodes.m.config.path\].*torch.save checkpoint \(a Python pickle\) is refused"):
        Pipeline.from_yaml(graph(path, stage="torchscript-model", inputs={"a": {}}), registry=registry())
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(b"\x80\x02}q\x00.")  # a bare pickle, not even a zip
    with pytest.raises(ConfigError, match="is not a TorchScript archive"):
        Pipeline.from_yaml(graph(legacy, stage="torchscript-model", inputs={"a": {}}), registry=registry())


# -- from the command line ------------------------------------------------------------------------
def test_vcgraph_run_and_inspect_with_a_model(tmp_path, monkeypatch, capsys):
    model = onnx_affine(tmp_path / "affine.onnx")
    yaml_path = tmp_path / "model.yaml"
    yaml_path.write_text(json.dumps(graph(model)))  # JSON is YAML
    np.save(tmp_path / "x.npy", np.ones((1, 4), np.float32))
    monkeypatch.setenv("VCGRAPH_DISABLE_PLUGIN_AUTOLOAD", "1")
    vcgraph.plugins.reset_registry()
    try:
        vcgraph.plugins.register_plugin(vcgraph.models, "models")
        assert main(["validate", str(yaml_path)]) == 0
        assert main(["run", str(yaml_path), "-i", f"x={tmp_path / 'x.npy'}", "-o", str(tmp_path / "y.npy"),
                     "--no-progress"]) == 0
        np.testing.assert_allclose(np.load(tmp_path / "y.npy"), np.full((1, 4), 2.5))
        assert main(["inspect", "onnx-model"]) == 0
        out = capsys.readouterr().out
        assert "path" in out and "providers" in out and "declared in the config" in out
    finally:
        vcgraph.plugins.reset_registry()


def test_the_readme_example_graph_runs(tmp_path, monkeypatch):
    """The README's onnx-model graph, with a model of the tensors it names."""
    import re
    import yaml
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "stage: onnx-model" in b)
    spec = yaml.safe_load(block)
    model = spec["nodes"]["enhance"]["config"]
    (tmp_path / "models").mkdir()
    onnx_affine(tmp_path / model["path"], scale=0.5, bias=0.0, names=("audio", "output"))
    monkeypatch.chdir(tmp_path)
    pipe = Pipeline.from_yaml(spec, registry=registry())
    samples = np.linspace(-1, 1, 800, dtype=np.float32)
    out = pipe.run({"audio": Audio(samples, 8000)})["audio"]
    assert out.sample_rate == 8000
    np.testing.assert_allclose(out.samples, samples * 0.5)
