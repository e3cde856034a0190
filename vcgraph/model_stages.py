"""Stage types that run a user's exported model: ``onnx-model`` and ``torchscript-model``.

A node declares the model's tensors as its ports, so a model drops into a YAML graph without
any Python::

    nodes:
      denoise:
        stage: onnx-model
        config:
          path: models/denoiser.onnx
          inputs:  {audio: {type: audio, shape: [1, -1]}}       # port name = the model's input name
          outputs: {enhanced: {type: audio, name: output}}       # or name the model's tensor
        inputs: {audio: inputs.audio}

Before any run the file must exist and, for ONNX, every declared input must match the
model's own inputs (names, rank, fixed sizes, dtype). ``cuda`` / ``cpu`` implementations
follow the runtime: onnxruntime's ``CUDAExecutionProvider`` (or ``providers`` from the
config) and ``CPUExecutionProvider``; TorchScript on ``cuda`` or ``cpu``. A session that
silently lands on another provider than asked for is an error, so the executor falls back
visibly instead.

Security: an ONNX file is a protobuf graph of standard operators; no custom-operator library
is loaded. ``torch.jit.load`` reads a TorchScript archive: its code is TorchScript (compiled
and run by torch's interpreter, which can call only registered torch operators) and its data
pickles are read by torch's C++ unpickler, which rebuilds tensors and TorchScript objects and
imports no Python module, so loading executes no Python code from the file. A plain pickle
written by ``torch.save`` (a ``.pt`` checkpoint, which ``torch.load`` would unpickle with
Python's pickle) is refused before torch reads it. Treat a model as code all the same: it
decides what the node outputs.

These are registered by the engine's own plugin :mod:`vcgraph.models` (entry point
``models``); they need ``onnxruntime``
(``pip install 'vcgraph[onnx]'``) or ``torch``, imported only when a model is checked or run.
"""
from __future__ import annotations

import os
import zipfile
from typing import Any, Literal

import numpy as np
from pydantic import Field, FilePath

from .audio import Audio
from .errors import InputError
from .stage import Port, Stage, StageConfig, implementation

DTYPES = ("float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")
_ORT_TYPES = {f"tensor({'float' if d == 'float32' else 'double' if d == 'float64' else d})": d for d in DTYPES}


class TensorSpec(StageConfig):
    """One model input or output, declared as a port of the node."""

    name: str | None = Field(None, description="the model's tensor name (default: the port name)")
    type: Literal["array", "audio"] = Field("array", description="port type: array (numpy) or audio "
                                            "(mono samples, reshaped to the tensor's rank)")
    shape: list[int | str | None] | None = Field(None, description="expected shape; -1, null or a name "
                                                 "for a size that may vary")
    dtype: Literal[DTYPES] = Field("float32", description="element type the model takes or gives")

    def fixed(self) -> list[int | None] | None:
        """The shape with every variable size as None."""
        if self.shape is None:
            return None
        return [d if isinstance(d, int) and d >= 0 else None for d in self.shape]


class ModelConfig(StageConfig):
    path: FilePath = Field(..., description="the exported model file")
    inputs: dict[str, TensorSpec] = Field(..., min_length=1, description="port name -> model input")
    outputs: dict[str, TensorSpec] = Field(..., min_length=1, description="port name -> model output")
    sample_rate: int | None = Field(None, ge=1000, le=768000, description="rate of audio outputs "
                                    "(default: the first audio input's)")


class _ModelStage(Stage):
    """Shared by the two runtimes: ports from the config, value conversion, shape checks."""

    Config = ModelConfig

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self._models: dict[str, Any] = {}  # kind -> loaded session / module (set up once)

    @classmethod
    def ports(cls, config: ModelConfig):
        return ({p: Port(t.type, f"model input {t.name or p}") for p, t in config.inputs.items()},
                {p: Port(t.type, f"model output {t.name or p}") for p, t in config.outputs.items()})

    @classmethod
    def check(cls, config: ModelConfig) -> list[tuple[str, str]]:
        if any(t.type == "audio" for t in config.outputs.values()) and config.sample_rate is None \
                and not any(t.type == "audio" for t in config.inputs.values()):
            return [("sample_rate", "an audio output needs sample_rate (or an audio input to take it from)")]
        return []

    def _arrays(self, values: dict[str, Any]) -> tuple[list[np.ndarray], int | None]:
        """Port values as the model's arrays (declared order), and the first audio rate."""
        arrays, rate = [], None
        for port, spec in self.config.inputs.items():
            value = values[port]
            if spec.type == "audio":
                if not isinstance(value, Audio):
                    raise InputError(f"input '{port}' takes audio, got {type(value).__name__}")
                rate = rate or int(value.sample_rate)
                x = np.asarray(value.samples)
                x = x.mean(axis=1) if x.ndim == 2 else x
                rank = len(spec.shape) if spec.shape else 1
                x = x.reshape((1,) * (rank - 1) + (-1,))
            else:
                x = np.asarray(value)
            x = x.astype(spec.dtype, copy=False)
            want = spec.fixed()
            if want is not None and (x.ndim != len(want) or any(w is not None and w != d for w, d in zip(want, x.shape))):
                raise InputError(f"input '{port}' has shape {tuple(x.shape)}; the model takes "
                                 f"{tuple(-1 if w is None else w for w in want)}")
            arrays.append(x)
        return arrays, rate

    def _outputs(self, arrays: list, rate: int | None) -> dict[str, Any]:
        if len(arrays) < len(self.config.outputs):
            raise RuntimeError(f"the model gave {len(arrays)} output(s); the config declares "
                               f"{len(self.config.outputs)}")
        outs = {}
        for (port, spec), value in zip(self.config.outputs.items(), arrays):
            y = np.asarray(value).astype(spec.dtype, copy=False)
            if spec.type == "audio":
                y = Audio(np.ascontiguousarray(y.reshape(-1), dtype=np.float32), self.config.sample_rate or rate)
            outs[port] = y
        return outs


class OnnxModel(_ModelStage):
    """Run an exported ONNX model with onnxruntime."""

    name = "onnx-model"

    class Config(ModelConfig):
        providers: list[str] | None = Field(None, min_length=1, description="onnxruntime execution providers "
                                            "for the cuda kind, in order (default: CUDAExecutionProvider)")

    @classmethod
    def unavailable_reason(cls, kind: str) -> str | None:
        why = super().unavailable_reason(kind)
        if why:
            return why
        try:
            import onnxruntime
        except ImportError:
            return "onnxruntime is not installed (pip install 'vcgraph[onnx]')"
        if kind == "cuda" and "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return "this onnxruntime has no CUDAExecutionProvider (pip install onnxruntime-gpu)"
        return None

    @classmethod
    def check(cls, config) -> list[tuple[str, str]]:
        problems = super().check(config)
        try:
            session = _ort_session(config.path, ["CPUExecutionProvider"])
        except ImportError:
            return problems  # reported as unavailable implementations
        except Exception as exc:  # noqa: BLE001 - not an ONNX model, or a broken one
            return problems + [("path", f"cannot load {config.path} as an ONNX model: {str(exc).splitlines()[0]}")]
        return problems + _match(config.inputs, {i.name: i for i in session.get_inputs()}, "inputs", True) \
            + _match(config.outputs, {o.name: o for o in session.get_outputs()}, "outputs", False)

    def _providers(self, kind: str) -> list[str]:
        if kind == "cpu":
            return ["CPUExecutionProvider"]
        return [p for p in (self.config.providers or ["CUDAExecutionProvider"]) if p != "CPUExecutionProvider"]

    def setup(self, kind: str, device: str) -> None:
        providers = self._providers(kind)
        session = _ort_session(self.config.path, providers)
        used = session.get_providers()
        if not used or used[0] != providers[0]:  # onnxruntime falls back to CPU without a word
            raise RuntimeError(f"onnxruntime did not start {providers[0]} (it offered {', '.join(used)})")
        self._models[kind] = session

    @implementation("cuda", "cpu")
    def run(self, ctx, **inputs):
        session = self._models[ctx.kind]
        arrays, rate = self._arrays(inputs)
        feed = {spec.name or port: x for (port, spec), x in zip(self.config.inputs.items(), arrays)}
        names = [spec.name or port for port, spec in self.config.outputs.items()]
        return self._outputs(session.run(names, feed), rate)


class TorchScriptModel(_ModelStage):
    """Run an exported TorchScript model (torch.jit.save) with torch."""

    name = "torchscript-model"

    @classmethod
    def unavailable_reason(cls, kind: str) -> str | None:
        why = super().unavailable_reason(kind)
        if why:
            return why
        try:
            import torch  # noqa: F401
        except ImportError:
            return "torch is not installed"
        return None

    @classmethod
    def check(cls, config) -> list[tuple[str, str]]:
        problems = super().check(config)
        why = torchscript_problem(config.path)
        return problems + ([("path", why)] if why else [])

    def setup(self, kind: str, device: str) -> None:
        import torch
        why = torchscript_problem(self.config.path)  # the file may have changed since the check
        if why:
            raise InputError(why)
        module = torch.jit.load(os.fspath(self.config.path), map_location=device)
        module.eval()
        args = [a.name for a in module.forward.schema.arguments][1:]  # after self
        if len(args) != len(self.config.inputs):
            raise InputError(f"the model's forward takes {len(args)} input(s) ({', '.join(args)}); "
                             f"the config declares {len(self.config.inputs)}")
        self._models[kind] = module

    @implementation("cuda", "cpu")
    def run(self, ctx, **inputs):
        import torch
        module = self._models[ctx.kind]
        arrays, rate = self._arrays(inputs)
        with torch.inference_mode():
            out = module(*[torch.as_tensor(x, device=ctx.device) for x in arrays])
        if isinstance(out, dict):
            out = [out[spec.name or port] for port, spec in self.config.outputs.items()]
        elif not isinstance(out, (list, tuple)):
            out = [out]
        return self._outputs([o.detach().cpu().numpy() for o in out], rate)


def torchscript_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a TorchScript archive (a ``torch.save`` pickle, say), or None."""
    if not zipfile.is_zipfile(path):
        return f"{path} is not a TorchScript archive (a legacy pickle? export with torch.jit.script(m).save(path))"
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if not any("/code/" in n for n in names) or not any(n.endswith("/constants.pkl") for n in names):
        return (f"{path} holds no TorchScript code: a torch.save checkpoint (a Python pickle) is refused; "
                "export the model with torch.jit.script(model).save(path) or torch.jit.trace")
    return None


def _ort_session(path, providers: list[str]):
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: the provider check above reports fallbacks
    return onnxruntime.InferenceSession(os.fspath(path), options, providers=providers)


def _match(declared: dict[str, TensorSpec], model: dict[str, Any], key: str, all_needed: bool) -> list:
    """Declared tensors against the model's own (onnxruntime NodeArg: name, shape, type)."""
    problems = []
    for port, spec in declared.items():
        name = spec.name or port
        arg = model.get(name)
        where = f"{key}.{port}"
        if arg is None:
            problems.append((where, f"the model has no {key[:-1]} '{name}' ({key}: {', '.join(model)})"))
            continue
        dtype = _ORT_TYPES.get(arg.type)
        if dtype is not None and dtype != spec.dtype:
            problems.append((f"{where}.dtype", f"the model's {key[:-1]} '{name}' is {dtype}, not {spec.dtype}"))
        shape = [d if isinstance(d, int) and d >= 0 else None for d in (arg.shape or [])]
        want = spec.fixed()
        if want is not None and (len(want) != len(shape) or any(
                a is not None and b is not None and a != b for a, b in zip(want, shape))):
            shown = [-1 if d is None else d for d in shape]
            problems.append((f"{where}.shape", f"the model's {key[:-1]} '{name}' has shape {shown}, "
                                               f"not {[-1 if d is None else d for d in want]}"))
    if all_needed:
        missing = [n for n in model if n not in {s.name or p for p, s in declared.items()}]
        if missing:
            problems.append((key, f"the model also needs input(s) {', '.join(missing)}: declare them"))
    return problems
