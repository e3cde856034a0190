"""Batch runs on Ray Data: actors that load the pipeline once, GPU actors when the cluster has GPUs.

Ray is optional (``pip install 'vcgraph[ray]'``). ``run_on_ray`` is the engine behind
``run_batch(..., engine="ray")``: the actors read inputs and write outputs themselves, so on a
multi-machine cluster inputs and the output folder must be on a file system every node sees;
this process writes ``results.jsonl`` as results arrive. ``map_dataset`` maps a user's own
Ray dataset through a pipeline.
"""
from __future__ import annotations

import json
import logging
import math
import pickle
from typing import Callable

import numpy as np

from .batch import BatchItem, FatalWorkerError, WorkerSpec, _result
from .errors import UserError

log = logging.getLogger("vcgraph.batch")

INSTALL_HINT = "pip install 'vcgraph[ray]'  (or: pip install 'ray[data]')"


def import_ray():
    """``ray`` with Ray Data, or a clear error saying what to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise UserError(f"the ray engine needs Ray Data, which is not installed ({exc}): {INSTALL_HINT}") from None
    return ray


def connect(address: str | None = None) -> bool:
    """Join the cluster at ``address`` (or start a local one) unless Ray is already initialised
    in this process; True when this call started the connection (and should close it)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, log_to_driver=False, include_dashboard=False, logging_level=logging.WARNING)
    except (ConnectionError, ValueError) as exc:
        raise UserError(f"cannot connect to the Ray cluster at {address or 'a new local cluster'}: {exc}") from None
    return True


def actor_resources(workers: int | None, spare_cpus: int = 0) -> tuple[int, dict]:
    """How many actors and what each one asks for: a GPU each when the cluster has GPUs,
    else one CPU each; by default as many actors as the cluster has GPUs (or CPUs, less
    ``spare_cpus`` left for the tasks that read a dataset: actors holding every CPU starve them)."""
    ray = import_ray()
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    if gpus:
        return workers or gpus, {"num_gpus": 1}
    return workers or max(1, cpus - spare_cpus), {"num_cpus": 1}


def _quiet_ray_data() -> None:
    import ray.data
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


class _BatchActor:
    """A Ray Data actor: loads the pipeline once, then converts the items of each batch."""

    def __init__(self, spec: bytes):
        try:
            self.worker = pickle.loads(spec).build()
            self.error = None
        except Exception as exc:  # noqa: BLE001 - reported with each item, then the run stops
            self.worker, self.error = None, f"{type(exc).__name__}: {exc}"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = []
        for task in batch["task"]:
            item: BatchItem = pickle.loads(task)
            if self.worker is None:
                result = {**_result(item, "error", error=self.error), "fatal": True}
            else:
                result = self.worker(item)
            out.append(json.dumps(result, default=str))
        return {"result": np.array(out, dtype=object)}


def run_on_ray(pipeline, items: list[BatchItem], options: dict, record: Callable[[dict], None], *,
               workers: int | None = None, address: str | None = None,
               worker_init: Callable[[], None] | None = None) -> None:
    """Map the items over an actor pool and ``record`` each result as it comes back."""
    ray = import_ray()
    started = connect(address)
    try:
        _quiet_ray_data()
        size, resources = actor_resources(workers)
        size = min(size, len(items))
        threads = int(resources.get("num_cpus", 0)) or None
        spec = WorkerSpec.make(pipeline, options, worker_init, threads, dumps=ray.cloudpickle.dumps)
        blocks = min(len(items), max(4 * size, math.ceil(len(items) / 64)))
        ds = ray.data.from_items([{"task": pickle.dumps(item)} for item in items], override_num_blocks=blocks)
        out = ds.map_batches(_BatchActor, fn_constructor_args=(spec,), batch_size=1,
                             compute=ray.data.ActorPoolStrategy(size=size), **resources)
        for row in out.iter_rows():
            result = json.loads(row["result"])
            if result.pop("fatal", False):
                raise FatalWorkerError(f"a Ray actor could not load the pipeline: {result['error']}")
            record(result)
    finally:
        if started:
            ray.shutdown()


# -- a user's dataset ---------------------------------------------------------------------------
class _MapActor:
    """Runs the pipeline on each row: ``to_inputs(row)`` → run → ``to_row(row, outputs)``."""

    def __init__(self, spec: bytes, to_inputs, to_row, common_inputs: dict | None, keep_going: bool):
        from .batch import InputReader
        self.pipeline = pickle.loads(spec).load_pipeline()
        self.common = InputReader(self.pipeline).read_all(common_inputs)
        self.to_inputs, self.to_row, self.keep_going = to_inputs, to_row, keep_going

    def __call__(self, row: dict) -> dict:
        try:
            result = self.pipeline.run({**self.common, **self.to_inputs(row)})
            if result.report.fallback_used:
                raise RuntimeError(f"the graph failed ({result.report.error})")
            out = self.to_row(row, result.outputs)
            out.update(vcgraph_status="ok", vcgraph_error="")
        except Exception as exc:  # noqa: BLE001
            if not self.keep_going:
                raise
            out = self.to_row(row, None)
            out.update(vcgraph_status="error", vcgraph_error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return out


def map_dataset(ds, pipeline, to_inputs: Callable[[dict], dict], to_row: Callable[[dict, dict | None], dict], *,
                common_inputs: dict | None = None, workers: int | None = None, keep_going: bool = True,
                worker_init: Callable[[], None] | None = None):
    """A lazy Ray dataset: each row of ``ds`` run through ``pipeline`` on an actor pool (GPU actors
    when the cluster has GPUs). ``to_inputs(row)`` gives the graph inputs; ``to_row(row, outputs)``
    the output row (``outputs`` is None for a failed row, then ``vcgraph_status`` is ``error`` and
    ``vcgraph_error`` says why; ``keep_going=False`` raises instead). ``common_inputs`` go to every
    run, read once per actor. By default one actor per GPU, or per CPU but one (the dataset's
    read tasks need a CPU: with actors on every CPU they would wait forever). Connect to Ray
    (``ray.init``) before calling this."""
    ray = import_ray()
    size, resources = actor_resources(workers, spare_cpus=1)
    spec = WorkerSpec.make(pipeline, {}, worker_init, dumps=ray.cloudpickle.dumps)
    return ds.map(_MapActor, fn_constructor_args=(spec, to_inputs, to_row, common_inputs, keep_going),
                  compute=ray.data.ActorPoolStrategy(size=size), **resources)

