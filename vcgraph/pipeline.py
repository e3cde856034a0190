"""A runnable pipeline: a built graph, its executor and running statistics.

    from vcgraph import Pipeline
    pipe = Pipeline.from_yaml("configs/echo.yaml", overrides=["nodes.echo.config.delay_ms=120"])
    result = pipe.run({"audio": audio})
    result.outputs["audio"], result.report.format_table(), pipe.stats.snapshot()

A pipeline pickles as its graph file and settings: a Ray actor or worker process unpickles
it and resolves the stage types through its own plugin registry.
"""
from __future__ import annotations

import os
import time
from typing import Any

from .config import GraphSpec, load_graph_spec
from .executor import Executor, ProgressCallback, RunResult
from .graph import Graph, build_graph
from .plugins import Registry
from .stats import RunStats


class Pipeline:
    """A graph ready to run, with thread-safe statistics of its runs."""

    def __init__(self, graph: Graph, *, use_cuda: bool | None = None, max_retries: int | None = None,
                 fallback_on_error: bool | None = None, only_kind: str | None = None):
        self.graph = graph
        self._options = dict(use_cuda=use_cuda, max_retries=max_retries, fallback_on_error=fallback_on_error,
                             only_kind=only_kind)
        self.executor = Executor(graph, **self._options)
        self.stats = RunStats()
        self.registry: Registry | None = None  # None: the process-wide registry

    @classmethod
    def from_spec(cls, spec: GraphSpec, registry: Registry | None = None, **options: Any) -> "Pipeline":
        pipe = cls(build_graph(spec, registry), **options)
        pipe.registry = registry
        return pipe

    @classmethod
    def from_yaml(cls, source: str | os.PathLike | dict, overrides: list[str] | dict | None = None,
                  registry: Registry | None = None, **options: Any) -> "Pipeline":
        """Load, validate and build a graph file (or dict), applying omegaconf ``overrides``."""
        return cls.from_spec(load_graph_spec(source, overrides), registry, **options)

    def run(self, inputs: dict[str, Any] | None = None, *, progress_callback: ProgressCallback | None = None,
            state: dict[str, dict] | None = None) -> RunResult:
        """Run once; see :meth:`vcgraph.executor.Executor.run`. Failures are counted, then raised."""
        t0 = time.perf_counter()
        try:
            result = self.executor.run(inputs, progress_callback=progress_callback, state=state)
        except Exception:
            self.stats.record(False, time.perf_counter() - t0)
            raise
        self.stats.record(result.report.ok, result.report.seconds, result.report.devices())
        return result

    def cut(self, outputs: dict[str, str]) -> "Pipeline":
        """A pipeline computing only ``outputs`` (``name → node.port``) of this graph."""
        return self.slice(outputs=outputs)

    def slice(self, outputs: dict[str, str] | None = None, from_nodes: list[str] | None = None) -> "Pipeline":
        """A pipeline of part of this graph: to ``outputs``, and/or from ``from_nodes`` (see
        :meth:`vcgraph.graph.Graph.slice`)."""
        return Pipeline.from_spec(self.graph.slice(outputs, from_nodes), self.registry, **self._options)

    def stream(self) -> "Stream":
        """A session that keeps every node's state across successive runs (blocks)."""
        return Stream(self)

    # -- pickling (worker processes, Ray actors) -------------------------------------------
    def __getstate__(self) -> dict:
        spec = self.graph.spec
        return {"spec": spec.model_dump(), "locations": spec.locations, "options": self._options}

    def __setstate__(self, data: dict) -> None:
        spec = GraphSpec.model_validate(data["spec"])
        spec.locations = data["locations"]
        self.__init__(build_graph(spec), **data["options"])


class Stream:
    """Successive runs of one pipeline that share per-node state (live, block-wise use)."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self.state: dict[str, dict] = {}

    def process(self, inputs: dict[str, Any]) -> RunResult:
        """Run one block."""
        return self.pipeline.run(inputs, state=self.state)

    def reset(self) -> None:
        """Forget all state (start of a new stream)."""
        self.state.clear()
