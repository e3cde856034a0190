"""Map a pipeline over many items (files in, files out), safely, on local worker processes or Ray.

    from vcgraph.batch import BatchItem, run_batch
    items = [BatchItem("in/a.wav", "a.wav", {"audio": "in/a.wav"}), ...]
    summary = run_batch(pipe, items, "out/", workers=2)     # engine="ray" for a Ray cluster
    summary.failed, summary.results                         # also out/results.jsonl

An item names its graph inputs: a text value is read by the input's declared type through the
plugins' value loaders (``audio`` → a sound file), anything else is passed as is. Each item's
single graph output (or ``output_name``) is written to ``item.output`` (relative to the output
folder) through a temporary file and a rename, so a file at an output path is always complete.

The guarantees: the output folder is created, and one that cannot be written is an error before
any work; ``OUTDIR/results.jsonl`` gets one line per item and run (``source``, ``output``,
``status`` ok|error|skipped, ``error``, ``seconds``, ``report`` summary, ``worker``); a failed
item is recorded and the others go on; ``resume=True`` skips items whose output exists; an
existing output is never replaced unless ``overwrite=True``; no output may be one of the inputs.
Each worker loads the pipeline once. The engine knows nothing about what the values mean.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .audio import Audio, write_audio
from .errors import UserError, VCGraphError

log = logging.getLogger("vcgraph.batch")

RESULTS_FILE = "results.jsonl"
LOCK_FILE = ".vcgraph-batch.lock"
PART_MARK = ".vcgraph-part-"  # in the names of temporary files, removed by the next run
ENGINES = ("local", "ray")
STATUSES = ("ok", "error", "skipped")


@dataclass
class BatchItem:
    """One unit of work: ``source`` names it in the results, ``output`` is the file to write
    (relative to the output folder), ``inputs`` are its graph inputs (text values are read by
    the input's type)."""

    source: str
    output: str
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchSummary:
    """What a batch run did: one result dict per item, as written to ``results.jsonl``."""

    outdir: str
    results: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r["status"] == status)

    @property
    def ok(self) -> int:
        return self.count("ok")

    @property
    def failed(self) -> int:
        return self.count("error")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def results_path(self) -> str:
        return os.path.join(self.outdir, RESULTS_FILE)

    def line(self) -> str:
        """``12 ok, 1 failed, 3 skipped in 40.2 s; results in OUT/results.jsonl``."""
        return (f"{self.ok} ok, {self.failed} failed, {self.skipped} skipped in {self.seconds:.1f} s; "
                f"results in {self.results_path}")

    def to_dict(self) -> dict:
        return {"outdir": self.outdir, "ok": self.ok, "failed": self.failed, "skipped": self.skipped,
                "seconds": round(self.seconds, 3), "results": self.results}


# -- preparing a run ---------------------------------------------------------------------------
def prepare_output_dir(outdir: str | os.PathLike) -> str:
    """Create ``outdir`` if needed and prove a file can be written there; the absolute path."""
    outdir = os.path.abspath(os.fspath(outdir))
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output folder {outdir}: {exc.strerror or exc}") from None
    if not os.path.isdir(outdir):
        raise UserError(f"the output folder {outdir} is not a folder")
    probe = os.path.join(outdir, f"{PART_MARK}probe-{uuid.uuid4().hex}")
    try:
        with open(probe, "wb") as fh:
            fh.write(b"x")
        os.remove(probe)
    except OSError as exc:
        raise UserError(f"cannot write to the output folder {outdir}: {exc.strerror or exc}") from None
    return outdir


@contextlib.contextmanager
def output_lock(outdir: str) -> Iterator[None]:
    """Refuse a second batch run writing into the same folder at the same time."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(os.path.join(outdir, LOCK_FILE), "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UserError(f"another vcgraph batch run is writing to {outdir}") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def remove_stale_parts(outdir: str) -> int:
    """Delete temporary files a killed run left behind; how many."""
    removed = 0
    for folder, _dirs, files in os.walk(outdir):
        for name in files:
            if PART_MARK in name:
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(folder, name))
                    removed += 1
    return removed


def resolve_output(outdir: str, output: str) -> str:
    """``output`` as an absolute path inside ``outdir`` (an error if it points outside)."""
    path = os.path.abspath(os.path.join(outdir, os.fspath(output)))
    if os.path.commonpath([path, outdir]) != outdir or path == outdir:
        raise UserError(f"output {output} is not inside the output folder {outdir}")
    return path


def plan(items: Sequence[BatchItem], outdir: str, *, resume: bool, overwrite: bool,
         common_inputs: dict | None = None) -> tuple[list[BatchItem], list[dict]]:
    """Check the items and split them into work to do and skipped results.

    Errors (before any work): two items with one output, an output that is one of the inputs,
    existing outputs without ``resume`` or ``overwrite``. With ``resume``, an item whose output
    exists is skipped: outputs appear only by rename, so an existing one is complete.
    """
    if resume and overwrite:
        raise UserError("--resume keeps finished outputs and --overwrite replaces them: choose one")
    seen: dict[str, str] = {}
    values = [v for item in items for v in item.inputs.values()] + list((common_inputs or {}).values())
    inputs_on_disk = {os.path.realpath(os.fspath(v)) for v in values if isinstance(v, (str, os.PathLike))}
    todo, skipped, existing = [], [], []
    for item in items:
        path = resolve_output(outdir, item.output)
        if path in seen:
            raise UserError(f"two items write the same output {path}: {seen[path]} and {item.source}")
        seen[path] = item.source
        if os.path.realpath(path) in inputs_on_disk:
            raise UserError(f"output {path} is also an input: inputs are never overwritten")
        item = BatchItem(item.source, path, item.inputs)
        if os.path.lexists(path):
            if resume:
                skipped.append(_result(item, "skipped", note="output exists"))
                continue
            if not overwrite:
                existing.append(path)
        todo.append(item)
    if existing:
        raise UserError(f"{len(existing)} output(s) already exist (first: {existing[0]}): "
                        "--resume to keep them and do the rest, --overwrite to replace them")
    return todo, skipped


def _result(item: BatchItem, status: str, *, error: str | None = None, seconds: float = 0.0,
            report: dict | None = None, note: str | None = None) -> dict:
    out = {"source": item.source, "output": item.output, "status": status, "error": error,
           "seconds": round(seconds, 4), "report": report, "worker": _worker_id()}
    if note:
        out["note"] = note
    return out


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# -- the results file --------------------------------------------------------------------------
class ResultsLog:
    """``results.jsonl``: one JSON line per item, appended and flushed as each one finishes."""

    def __init__(self, outdir: str):
        self.path = os.path.join(outdir, RESULTS_FILE)
        self._fh = open(self.path, "a+", encoding="utf-8")
        self._fh.seek(0, os.SEEK_END)
        if self._fh.tell():  # a killed run may have left half a line: start on a new one
            self._fh.seek(self._fh.tell() - 1)
            last = self._fh.read(1)
            self._fh.seek(0, os.SEEK_END)
            if last != "\n":
                self._fh.write("\n")

    def write(self, result: dict) -> None:
        self._fh.write(json.dumps(result, default=str) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def read_results(path: str | os.PathLike) -> list[dict]:
    """Every complete line of a results file (a torn last line is ignored)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
    return out


# -- one worker ---------------------------------------------------------------------------------
class InputReader:
    """Reads text graph inputs by their declared type (the plugins' value loaders); other values
    pass as they are. Values of ``shared`` inputs are kept, a few at a time, for the next item."""

    CACHE_SIZE = 16

    def __init__(self, pipeline, shared: Sequence[str] = ()):
        from .plugins import get_registry
        self.declared = pipeline.graph.spec.inputs
        self.loaders = (pipeline.registry or get_registry()).value_loaders()
        self.shared = set(shared)
        self._cache: dict[tuple[str, str], Any] = {}

    def read(self, name: str, value: Any) -> Any:
        if not isinstance(value, (str, os.PathLike)) or name not in self.declared:
            return value
        key = (name, os.fspath(value))
        if key in self._cache:
            return self._cache[key]
        load = self.loaders.get(self.declared[name].type)
        loaded = load(key[1]) if load else key[1]
        if name in self.shared:
            if len(self._cache) >= self.CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = loaded
        return loaded

    def read_all(self, inputs: dict | None) -> dict:
        return {name: self.read(name, value) for name, value in (inputs or {}).items()}


class ItemWorker:
    """Holds one pipeline and converts items with it: read inputs, run, write atomically.

    ``common_inputs`` go to every item (read once); values of ``shared_inputs`` are read once
    per distinct value (a target used by many items, say).
    """

    def __init__(self, pipeline, *, common_inputs: dict | None = None, shared_inputs: Sequence[str] = (),
                 output_name: str | None = None, overwrite: bool = False, accept_fallback: bool = False,
                 write: Callable[[str, Any], None] | None = None):
        self.pipeline = pipeline
        self.overwrite, self.accept_fallback = overwrite, accept_fallback
        self.write_value = write or save_value
        outputs = list(pipeline.graph.spec.outputs)
        if output_name is None and len(outputs) != 1:
            raise UserError(f"the graph has {len(outputs)} outputs ({', '.join(outputs)}): name one to write")
        if output_name is not None and output_name not in outputs:
            raise UserError(f"the graph has no output '{output_name}' (outputs: {', '.join(outputs)})")
        self.output_name = output_name or outputs[0]
        self.reader = InputReader(pipeline, shared_inputs)
        self.common = self.reader.read_all(common_inputs)

    def __call__(self, item: BatchItem) -> dict:
        t0 = time.perf_counter()
        try:
            inputs = {**self.common, **self.reader.read_all(item.inputs)}
            result = self.pipeline.run(inputs)
            summary = report_summary(result.report)
            if result.report.fallback_used and not self.accept_fallback:
                return _result(item, "error", seconds=time.perf_counter() - t0, report=summary,
                               error=f"the graph failed ({result.report.error}); its fallback output was not written")
            write_atomic(item.output, result.outputs[self.output_name], self.write_value, overwrite=self.overwrite)
        except Exception as exc:  # noqa: BLE001 - a bad item is recorded, the others go on
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return _result(item, "error", seconds=time.perf_counter() - t0, error=text)
        return _result(item, "ok", seconds=time.perf_counter() - t0, report=summary)


def report_summary(report) -> dict:
    """The part of a run report worth one line per item: what ran where, and what fell back."""
    return {"ok": report.ok, "fallback_used": report.fallback_used, "seconds": round(report.seconds, 4),
            "implementations": {n.node: f"{n.implementation}@{n.device}" for n in report.nodes.values()
                                if n.implementation},
            "fell_back": {n.node: (n.errors[0] if n.errors else "skipped: " + "; ".join(n.skipped.values()))
                          for n in report.nodes.values() if n.attempts and not n.attempts[0].ok}}


def save_value(path: str, value: Any) -> None:
    """Write one output value by its type: audio by the file's extension, arrays as .npy, else JSON."""
    if isinstance(value, Audio):
        write_audio(path, value)
    elif isinstance(value, np.ndarray) or hasattr(value, "numpy"):
        with open(path, "wb") as fh:  # np.save(path) would append .npy to any other name
            np.save(fh, np.asarray(value))
    else:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(value, fh, indent=2, default=str)


def write_atomic(path: str, value: Any, write: Callable[[str, Any], None], *, overwrite: bool) -> None:
    """Write to a temporary file beside ``path`` (same extension), sync it, then rename it into
    place; without ``overwrite`` an existing file is kept and this raises ``FileExistsError``."""
    folder, name = os.path.split(path)
    os.makedirs(folder, exist_ok=True)
    stem, ext = os.path.splitext(name)
    tmp = os.path.join(folder, f".{stem}{PART_MARK}{uuid.uuid4().hex[:12]}{ext}")
    try:
        write(tmp, value)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if path exists: no window between check and rename
            except FileExistsError:
                raise FileExistsError(f"output exists, kept: {path} (--overwrite to replace it)") from None
            except OSError:  # no hard links on this file system
                if os.path.lexists(path):
                    raise FileExistsError(f"output exists, kept: {path} (--overwrite to replace it)") from None
                os.rename(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


# -- running ------------------------------------------------------------------------------------
@dataclass
class WorkerSpec:
    """What a worker process or actor needs, picklable. The pipeline travels pickled apart (as
    its graph) so ``worker_init`` can register plugins before it is rebuilt."""

    pipeline: bytes
    options: dict = field(default_factory=dict)
    worker_init: Callable[[], None] | None = None
    threads: int | None = None

    @classmethod
    def make(cls, pipeline, options: dict, worker_init=None, threads: int | None = None,
             dumps: Callable[[Any], bytes] = pickle.dumps) -> bytes:
        """The pickled spec (Ray passes ``cloudpickle.dumps``, which also takes lambdas)."""
        return dumps(cls(dumps(pipeline), options, worker_init, threads))

    def load_pipeline(self):
        if self.threads and _has_torch():
            import torch
            torch.set_num_threads(self.threads)
        if self.worker_init:
            self.worker_init()
        return pickle.loads(self.pipeline)

    def build(self) -> ItemWorker:
        return ItemWorker(self.load_pipeline(), **self.options)


def _has_torch() -> bool:
    import importlib.util
    return importlib.util.find_spec("torch") is not None


class FatalWorkerError(VCGraphError):
    """A worker could not load the pipeline: no item can run."""


def run_batch(pipeline, items: Iterable[BatchItem], outdir: str | os.PathLike, *, workers: int = 1,
              engine: str = "local", address: str | None = None, resume: bool = False, overwrite: bool = False,
              common_inputs: dict | None = None, shared_inputs: Sequence[str] = (), output_name: str | None = None,
              accept_fallback: bool = False, worker_init: Callable[[], None] | None = None,
              progress: Callable[[dict, int, int], None] | None = None) -> BatchSummary:
    """Run ``pipeline`` on every item; see the module docstring for the guarantees.

    ``workers``: local processes (1: in this process) or Ray actors (default for Ray: one per
    CPU, or per GPU when the cluster has GPUs). ``address``: a Ray cluster (``ray.init``'s).
    ``worker_init`` runs once in each worker process or actor before it rebuilds the pipeline
    (to register plugins made in Python there; not in this process).
    ``progress(result, done, total)`` is called after each item.
    """
    if engine not in ENGINES:
        raise UserError(f"unknown engine '{engine}' (engines: {', '.join(ENGINES)})")
    if workers < 1 and not (engine == "ray" and workers == 0):
        raise UserError(f"--workers must be at least 1 (got {workers})")
    if engine == "ray":
        from .batch_ray import import_ray
        import_ray()  # what to install, before any work
    items = list(items)
    t0 = time.perf_counter()
    outdir = prepare_output_dir(outdir)
    options = dict(common_inputs=common_inputs, shared_inputs=tuple(shared_inputs), output_name=output_name,
                   overwrite=overwrite, accept_fallback=accept_fallback)
    ItemWorker(pipeline, **{**options, "common_inputs": None})  # checks the output choice before any work
    summary = BatchSummary(outdir)
    with output_lock(outdir):
        removed = remove_stale_parts(outdir)
        if removed:
            log.info("removed %d temporary file(s) of an interrupted run", removed)
        todo, skipped = plan(items, outdir, resume=resume, overwrite=overwrite, common_inputs=common_inputs)
        total = len(items)
        results = ResultsLog(outdir)

        def record(result: dict) -> None:
            results.write(result)
            summary.results.append(result)
            if progress:
                progress(result, len(summary.results), total)

        try:
            for result in skipped:
                record(result)
            if todo:
                if engine == "ray":
                    from .batch_ray import run_on_ray
                    run_on_ray(pipeline, todo, options, record, workers=workers or None, address=address,
                               worker_init=worker_init)
                else:
                    run_local(pipeline, todo, options, record, workers=workers, worker_init=worker_init)
        finally:
            results.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def run_local(pipeline, items: list[BatchItem], options: dict, record: Callable[[dict], None], *,
              workers: int = 1, worker_init: Callable[[], None] | None = None) -> None:
    """Items on this machine: in this process (``workers=1``) or a pool of spawned processes,
    each with its own copy of the pipeline and ``cpu_count // workers`` torch threads."""
    workers = min(workers, len(items))
    if workers <= 1:  # the pipeline as it is: worker_init is for other processes
        worker = ItemWorker(pipeline, **options)
        for item in items:
            record(worker(item))
        return
    import multiprocessing
    threads = max(1, (os.cpu_count() or 1) // workers)
    spec = WorkerSpec.make(pipeline, options, worker_init, threads)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_pool_init, initargs=(spec,)) as pool:
        for result in pool.imap_unordered(_pool_run, items, chunksize=1):
            if result.get("fatal"):
                pool.terminate()
                raise FatalWorkerError(f"a worker could not load the pipeline: {result['error']}")
            record(result)


_POOL_WORKER: list = []  # [ItemWorker] or [exception text], per worker process


def _pool_init(spec: bytes) -> None:
    try:
        _POOL_WORKER.append(pickle.loads(spec).build())
    except Exception as exc:  # noqa: BLE001 - reported with the first item (a raising initializer respawns forever)
        _POOL_WORKER.append(f"{type(exc).__name__}: {exc}")


def _pool_run(item: BatchItem) -> dict:
    worker = _POOL_WORKER[0]
    if isinstance(worker, str):
        return {**_result(item, "error", error=worker), "fatal": True}
    return worker(item)

