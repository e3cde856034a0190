"""Measure the engine's own cost per stage: a chain of trivial stages, median over many runs."""
from __future__ import annotations

import statistics
import time

from .hookspecs import hookimpl
from .pipeline import Pipeline
from .plugins import Registry
from .stage import Port, Stage, implementation


class _Identity(Stage):
    """Returns its input (engine overhead probe; not registered globally)."""

    name = "overhead-probe"
    inputs = {"x": Port("any")}
    outputs = {"x": Port("any")}

    @implementation("cpu")
    def run_cpu(self, ctx, x):
        return {"x": x}


class _ProbePlugin:
    @hookimpl
    def register_stages(self, register):
        register(_Identity)


def engine_overhead(n_stages: int = 20, runs: int = 500) -> dict:
    """Median and p90 engine time per stage, in milliseconds, over ``runs`` runs."""
    registry = Registry(autoload=False)
    registry.register(_ProbePlugin(), "overhead-probe")
    nodes = {f"n{i}": {"stage": "overhead-probe", "inputs": {"x": f"n{i - 1}.x" if i else "inputs.x"}}
             for i in range(n_stages)}
    spec = {"name": "overhead", "inputs": {"x": {}}, "nodes": nodes, "outputs": {"x": f"n{n_stages - 1}.x"}}
    pipe = Pipeline.from_yaml(spec, registry=registry)
    for _ in range(20):
        pipe.run({"x": 1})
    per_stage = []
    for _ in range(runs):
        t0 = time.perf_counter()
        pipe.run({"x": 1})
        per_stage.append((time.perf_counter() - t0) / n_stages * 1e3)
    per_stage.sort()
    return {"stages": n_stages, "runs": runs, "median_ms_per_stage": statistics.median(per_stage),
            "p90_ms_per_stage": per_stage[int(0.9 * len(per_stage))]}
