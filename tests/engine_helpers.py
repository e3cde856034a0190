"""A fault-injecting test plugin for the engine tests, and helpers to build graphs from it.

Module-level (not defined inside tests) so that a ``multiprocessing`` spawn worker can import
it. Stages work on numpy arrays (port type ``array``); behaviour is driven by their config so
one plugin serves every fallback, retry and error test.
"""
from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Any

import numpy as np
from pydantic import Field

from vcgraph.errors import CUDAKernelError, InputError, PipelineError, TransientError, UserError
from vcgraph.hookspecs import hookimpl
from vcgraph.pipeline import Pipeline
from vcgraph.plugins import Registry
from vcgraph.stage import Port, Stage, StageConfig, implementation

#: every (node, kind, device) that ran successfully, appended by Flaky (cleared by tests)
CALLS: list[tuple[str, str, str]] = []
#: setup() calls per (stage name, kind), guarded by SETUP_LOCK
SETUPS: dict[tuple[str, str], int] = {}
SETUP_LOCK = threading.Lock()
#: weak references to the Box objects made by the `boxer` stage
BOXES: list[weakref.ref] = []
#: ``ctx.outputs_read`` of each `boxer` call, appended by Boxer (cleared by tests)
OUTPUTS_READ: list = []
#: a Flaky kind listed in `hang` blocks until HANG_RELEASE is set, then sets HANG_DONE
HANG_RELEASE = threading.Event()
HANG_DONE = threading.Event()

_ERRORS = {
    "runtime": lambda msg: RuntimeError(msg),
    "cuda": lambda msg: CUDAKernelError(msg),
    "transient": lambda msg: TransientError(msg),
    "user": lambda msg: UserError(msg),
    "pipeline": lambda msg: PipelineError(msg),
    "input": lambda msg: InputError(msg),
    "value": lambda msg: ValueError(msg),
    "runtime-transient": lambda msg: _flagged(RuntimeError(msg)),
}


def _flagged(exc: BaseException) -> BaseException:
    exc.transient = True  # vcgraph.errors.is_transient honours this attribute
    return exc


class Flaky(Stage):
    """Multiplies an array by `factor`; fails on demand, per implementation kind."""

    name = "flaky"

    class Config(StageConfig):
        factor: float = Field(2.0, ge=0, le=10, description="multiplier")
        fail: list[str] = Field(default_factory=list, description="kinds that always fail")
        error: str = Field("runtime", description="exception raised by failing kinds: " + ", ".join(_ERRORS))
        transient_kinds: list[str] = Field(default_factory=list, description="kinds that raise TransientError first")
        transient_failures: int = Field(0, ge=0, description="transient failures per run before success")
        sleep: float = Field(0.0, ge=0, description="seconds to sleep per call")
        record: bool = Field(True, description="append successful calls to CALLS")
        hang: list[str] = Field(default_factory=list, description="kinds that write to ctx.state, then block "
                                "until HANG_RELEASE is set and return x * 1000")

    inputs = {"x": Port("array")}
    outputs = {"x": Port("array")}

    def setup(self, kind: str, device: str) -> None:
        with SETUP_LOCK:
            SETUPS[(self.name, kind)] = SETUPS.get((self.name, kind), 0) + 1

    def _go(self, ctx, x, offset: float = 0.0):
        cfg = self.config
        if cfg.sleep:
            time.sleep(cfg.sleep)
        if ctx.kind in cfg.hang:
            ctx.state["written_by"] = ctx.kind
            HANG_RELEASE.wait(60)
            ctx.state["finished_by"] = ctx.kind
            HANG_DONE.set()
            return {"x": np.asarray(x) * 1000}
        if ctx.kind in cfg.transient_kinds:
            seen = ctx.state.get("transient", 0)
            if seen < cfg.transient_failures:
                ctx.state["transient"] = seen + 1
                raise _ERRORS[cfg.error if cfg.error.endswith("transient") else "transient"](f"busy ({seen + 1})")
        if ctx.kind in cfg.fail:
            raise _ERRORS[cfg.error](f"injected {cfg.error} failure in {ctx.kind}")
        if cfg.record:
            CALLS.append((ctx.node, ctx.kind, ctx.device))
        return {"x": np.asarray(x) * cfg.factor + offset}

    @implementation("cuda", "cpu")
    def run(self, ctx, x):
        return self._go(ctx, x)

    @implementation("simplified")
    def run_simplified(self, ctx, x):
        return self._go(ctx, x, offset=0.5)  # a cheaper, slightly different result


class CudaOnly(Stage):
    """Only a cuda implementation (fails on demand)."""

    name = "cuda-only"

    class Config(StageConfig):
        fail: bool = False

    inputs = {"x": Port("array")}
    outputs = {"x": Port("array")}

    @implementation("cuda")
    def run_cuda(self, ctx, x):
        if self.config.fail:
            raise RuntimeError("an illegal memory access was encountered")
        return {"x": x}


class Add(Stage):
    """a + b (b optional)."""

    name = "add"
    inputs = {"a": Port("array"), "b": Port("array", optional=True)}
    outputs = {"sum": Port("array")}

    @implementation("cpu")
    def run_cpu(self, ctx, a, b):
        return {"sum": np.asarray(a) + (0 if b is None else np.asarray(b))}


class Needs(Stage):
    """A stage with a required config key."""

    name = "needs"

    class Config(StageConfig):
        level: int = Field(..., ge=1, le=5, description="required level")

    inputs = {"x": Port("array")}
    outputs = {"x": Port("array")}

    @implementation("cpu")
    def run_cpu(self, ctx, x):
        return {"x": np.asarray(x) * self.config.level}


class TextOut(Stage):
    """Produces a value of type `text` (for type-mismatch tests)."""

    name = "text-out"
    inputs = {"x": Port("array")}
    outputs = {"text": Port("text")}

    @implementation("cpu")
    def run_cpu(self, ctx, x):
        return {"text": str(np.asarray(x).tolist())}


class Safe(Stage):
    """The graph fallback: returns zeros shaped like the input."""

    name = "safe"
    inputs = {"x": Port("array")}
    outputs = {"y": Port("array"), "x": Port("array")}

    @implementation("cpu")
    def run_cpu(self, ctx, x):
        return {"y": np.zeros_like(np.asarray(x, dtype=float)), "x": np.zeros_like(np.asarray(x, dtype=float))}


class Box:
    """A weak-referenceable intermediate value."""

    def __init__(self, data):
        self.data = data


class Boxer(Stage):
    """Wraps its input in a Box (recorded in BOXES); also emits an unread Box on `extra`."""

    name = "boxer"
    inputs = {"x": Port("array")}
    outputs = {"box": Port("box"), "extra": Port("box")}

    @implementation("cpu")
    def run_cpu(self, ctx, x):
        OUTPUTS_READ.append(ctx.outputs_read)
        box, extra = Box(np.asarray(x)), Box(np.zeros(10_000))
        BOXES.extend([weakref.ref(box), weakref.ref(extra)])
        return {"box": box, "extra": extra}


class Unbox(Stage):
    name = "unbox"
    inputs = {"box": Port("box")}
    outputs = {"x": Port("array")}

    @implementation("cpu")
    def run_cpu(self, ctx, box):
        return {"x": box.data + 0}


class AliveProbe(Stage):
    """Passes x through and reports how many Boxes are still alive when it runs."""

    name = "alive-probe"
    inputs = {"x": Port("array")}
    outputs = {"x": Port("array"), "alive": Port("int")}

    @implementation("cpu")
    def run_cpu(self, ctx, x):
        return {"x": x, "alive": sum(r() is not None for r in BOXES)}


class Accumulate(Stage):
    """Running sum across stream blocks, kept in ctx.state; sleeps to interleave threads."""

    name = "accumulate"
    inputs = {"x": Port("array")}
    outputs = {"x": Port("array")}

    @implementation("cpu")
    def run_cpu(self, ctx, x):
        total = ctx.state.get("total", 0) + np.asarray(x)
        ctx.state["total"] = total
        time.sleep(0.0005)
        return {"x": ctx.state["total"]}


STAGES = (Flaky, CudaOnly, Add, Needs, TextOut, Safe, Boxer, Unbox, AliveProbe, Accumulate)


class FaultPlugin:
    """The test plugin (an object: registered under an explicit name)."""

    __version__ = "9.9"

    @hookimpl
    def register_stages(self, register):
        for stage in STAGES:
            register(stage)


def make_registry() -> Registry:
    """A fresh registry holding only the fault plugin (no entry points)."""
    registry = Registry(autoload=False)
    registry.register(FaultPlugin(), "faults")
    return registry


def chain_spec(*node_configs: dict[str, Any], stage: str = "flaky", **top: Any) -> dict:
    """A linear graph inputs.x -> n0 -> n1 -> ... -> outputs.y, one node per config dict."""
    nodes = {}
    for i, cfg in enumerate(node_configs or ({},)):
        nodes[f"n{i}"] = {"stage": stage, "config": dict(cfg), "inputs": {"x": f"n{i - 1}.x" if i else "inputs.x"}}
    spec = {"name": "chain", "inputs": {"x": {"type": "array"}}, "nodes": nodes,
            "outputs": {"y": f"n{len(nodes) - 1}.x"}}
    spec.update(top)
    return spec


def pipeline(spec: dict, registry: Registry | None = None, **options: Any) -> Pipeline:
    return Pipeline.from_yaml(spec, registry=registry or make_registry(), **options)


# -- for the spawn-worker pickling test -------------------------------------------------------
def run_pickled(payload: bytes, inputs: dict) -> Any:
    """Unpickle a Pipeline in this (worker) process and run it."""
    import pickle
    pipe = pickle.loads(payload)
    result = pipe.run(inputs)
    return result.outputs, result.report.to_dict()


def subprocess_env(pythonpath: str | os.PathLike | None = None, **extra: str) -> dict:
    """os.environ with ``pythonpath`` put first on PYTHONPATH, plus ``extra`` variables."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([os.fspath(pythonpath)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.update(extra)
    return env


def register_faults() -> None:
    """Register the fault plugin with the process-wide registry (a batch worker's ``worker_init``)."""
    from vcgraph.plugins import get_registry
    if not get_registry().pm.has_plugin("faults"):
        get_registry().register(FaultPlugin(), "faults")
