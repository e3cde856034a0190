"""The fallback-aware executor: runs a built graph's nodes in dependency order.

For each node it tries the implementation kinds in the node's order (``cuda`` dropped when
CUDA is off or absent), retrying a transient failure up to ``max_retries`` times, and moves
to the next kind on failure, logging a warning. Every choice lands in the run's
:class:`~vcgraph.report.RunReport`. A node's inputs are released as soon as the last
consumer has read them, so long graphs keep memory flat.

Errors a stage raises as :class:`~vcgraph.errors.UserError` (bad input data) stop the run
at once: another implementation would not fix the input. A node's ``timeout_s`` (or the
graph's ``settings.timeout_s``) bounds each implementation call: one that runs past it counts
as failed (:class:`~vcgraph.errors.NodeTimeoutError`) and the next kind is tried; its
outputs and state changes are discarded. Plugins observe runs through the
``before_node_run`` / ``after_node_run`` / ``on_node_error`` hooks.
"""
from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from .errors import (CUDAKernelError, InputError, NodeTimeoutError, PipelineError, StageError, UserError,
                     VCGraphError, is_transient)
from .graph import GRAPH_INPUTS, Graph, Node
from .plugins import get_registry
from .report import Attempt, NodeReport, RunReport
from .stage import RunContext, Stage

log = logging.getLogger("vcgraph.executor")

ProgressCallback = Callable[[float, str], None]
_OBSERVERS = ("before_node_run", "after_node_run", "on_node_error")


@dataclass
class RunResult:
    """A run's outputs (by graph output name) and its report."""

    outputs: dict[str, Any]
    report: RunReport

    def __getitem__(self, name: str) -> Any:
        return self.outputs[name]


class Executor:
    """Runs one graph; holds one stage instance per node, shared by concurrent runs.

    ``use_cuda``, ``max_retries`` and ``fallback_on_error`` default to the graph's settings.
    ``only_kind`` (benchmarks) makes every node that offers that kind use it alone.
    """

    def __init__(self, graph: Graph, *, use_cuda: bool | None = None, max_retries: int | None = None,
                 fallback_on_error: bool | None = None, only_kind: str | None = None):
        s = graph.spec.settings
        self.only_kind = only_kind
        self.graph = graph
        self.use_cuda = s.use_cuda if use_cuda is None else use_cuda
        self.max_retries = s.max_retries if max_retries is None else max_retries
        self.fallback_on_error = s.fallback_on_error if fallback_on_error is None else fallback_on_error
        self._instances: dict[str, Stage] = {}
        self._ready: set[tuple[str, str]] = set()
        self._lock = threading.RLock()
        self._counts = graph.consumer_counts()
        self._read = {n.name: frozenset(p for p in n.output_ports if self._counts.get((n.name, p)))
                      for n in graph.nodes.values()}  # the fallback's outputs are all read
        self._hooks = (graph.registry or get_registry()).pm.hook
        self._plans = {n.name: self._plan(n) for n in self._all_nodes()}

    def _all_nodes(self) -> list[Node]:
        return list(self.graph.nodes.values()) + ([self.graph.fallback] if self.graph.fallback else [])

    def _plan(self, node: Node) -> tuple[list[tuple[str, str]], dict[str, str]]:
        """(kind, device) pairs to try, and kinds skipped with the reason."""
        impls = node.stage_cls.implementations()
        tries, skipped = [], {}
        kinds = (self.only_kind,) if self.only_kind in impls else node.kinds
        for kind in kinds:
            if kind == "cuda" and not self.use_cuda:
                skipped[kind] = "use_cuda is off"
                continue
            reason = node.stage_cls.unavailable_reason(kind)
            if reason:
                skipped[kind] = reason
            else:
                tries.append((kind, impls[kind].device))
        return tries, skipped

    # -- stage instances -------------------------------------------------------------------
    def stage(self, node: Node, kind: str, device: str) -> Stage:
        """The node's stage instance, set up for ``kind`` (once, under a lock)."""
        inst = self._instances.get(node.name)
        if inst is not None and (node.name, kind) in self._ready:
            return inst
        with self._lock:
            inst = self._instances.get(node.name)
            if inst is None:
                inst = self._instances[node.name] = node.stage_cls(node.config)
            if (node.name, kind) not in self._ready:
                inst.setup(kind, device)
                self._ready.add((node.name, kind))
        return inst

    # -- running ---------------------------------------------------------------------------
    def run(self, inputs: dict[str, Any] | None = None, *, progress_callback: ProgressCallback | None = None,
            state: dict[str, dict] | None = None) -> RunResult:
        """Run the graph on ``inputs`` (graph input name → value).

        ``state`` maps node names to per-node state dicts kept by the caller across runs
        (streaming); by default every run starts with empty state.
        """
        graph = self.graph
        inputs = dict(inputs or {})
        self._check_inputs(inputs)
        state = {} if state is None else state
        report = RunReport(graph.name)
        values: dict[Any, Any] = {}
        for name, value in inputs.items():
            values[(GRAPH_INPUTS, name)] = value
        remaining = dict(self._counts)
        observed = self._observed()
        total = len(graph.nodes)
        t0 = time.perf_counter()
        try:
            for i, node in enumerate(graph.nodes.values()):
                if progress_callback is not None:
                    progress_callback(100.0 * i / total, node.name)
                args = {}
                for port, ref in node.inputs.items():
                    args[port] = values.get(ref)
                    left = remaining[ref] = remaining[ref] - 1
                    if left == 0:
                        values.pop(ref, None)
                for port, spec in node.input_ports.items():
                    if port not in args:
                        args[port] = None
                outs = self._run_node(node, args, state, report, observed)
                for port, value in outs.items():
                    if self._counts.get((node.name, port)):  # keep only values something reads
                        values[(node.name, port)] = value
                del args, outs
            outputs = {name: values[(ref.node, ref.port)] if ref.node != GRAPH_INPUTS else inputs.get(ref.port)
                       for name, ref in graph.outputs.items()}
            report.ok = True
        except VCGraphError as exc:
            report.error = str(exc)
            # bad input (a UserError) stops the run; a node whose implementations all failed
            # may still get the graph fallback
            if isinstance(exc, UserError) or not (self.fallback_on_error and graph.fallback is not None):
                report.seconds = time.perf_counter() - t0
                raise
            log.warning("graph '%s' failed (%s); producing the fallback output", graph.name, exc)
            fb = self._run_node(graph.fallback, {p: inputs.get(r.port) for p, r in graph.fallback.inputs.items()},
                                state, report, observed)
            outputs = {name: fb[name] for name in graph.outputs}
            report.fallback_used = True
        report.seconds = time.perf_counter() - t0
        if progress_callback is not None:
            progress_callback(100.0, "completed")
        return RunResult(outputs, report)

    def _check_inputs(self, inputs: dict[str, Any]) -> None:
        declared = self.graph.spec.inputs
        unknown = [k for k in inputs if k not in declared]
        if unknown:
            raise InputError(f"unknown graph input(s) {', '.join(unknown)} "
                                f"(inputs: {', '.join(declared) or 'none'})")
        missing = [k for k, spec in declared.items() if not spec.optional and inputs.get(k) is None]
        if missing:
            raise InputError(f"missing graph input(s): {', '.join(missing)}")

    def _observed(self) -> frozenset[str]:
        """The observer hooks some plugin implements (looked up once per run)."""
        return frozenset(h for h in _OBSERVERS if getattr(self._hooks, h).get_hookimpls())

    def _notify(self, observed: frozenset[str], hook: str, **kwargs: Any) -> None:
        """Call the plugins' observer ``hook``; one that raises is logged, the run goes on."""
        if hook not in observed:  # nobody observes: no cost
            return
        try:
            getattr(self._hooks, hook)(graph=self.graph, **kwargs)
        except Exception as exc:  # noqa: BLE001 - an observer must not change the run
            log.warning("a plugin's %s hook failed (%s: %s); the run goes on", hook, type(exc).__name__, exc)

    def _run_node(self, node: Node, args: dict[str, Any], state: dict[str, dict], report: RunReport,
                  observed: frozenset[str] = frozenset()) -> dict:
        rep = NodeReport(node.name, node.stage_cls.name, skipped=dict(self._plans[node.name][1]))
        report.nodes[node.name] = rep
        if not observed:  # the common case: no observer plugin
            return self._try_kinds(node, args, state, rep)
        self._notify(observed, "before_node_run", node=node, inputs=args)
        try:
            outs = self._try_kinds(node, args, state, rep)
        except Exception as exc:
            self._notify(observed, "on_node_error", node=node, inputs=args, error=exc, report=rep)
            raise
        self._notify(observed, "after_node_run", node=node, inputs=args, outputs=outs, report=rep)
        return outs

    def _call(self, node: Node, stage: Stage, kind: str, device: str, node_state: dict,
              args: dict[str, Any]) -> Any:
        """One call of one implementation; with the node's ``timeout_s``, in a daemon thread
        on a copy of the node's state that replaces it only when the call finishes in time."""
        read = self._read.get(node.name)
        if node.timeout_s is None:
            return stage.call(kind, RunContext(node.name, kind, device, node_state, outputs_read=read), args)
        ctx = RunContext(node.name, kind, device, copy.deepcopy(node_state), cancel_event=threading.Event(),
                         outputs_read=read)
        box: dict[str, Any] = {}
        finished = threading.Event()

        def work() -> None:
            try:
                box["outs"] = stage.call(kind, ctx, args)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                box["error"] = exc
            finally:
                finished.set()

        threading.Thread(target=work, name=f"vcgraph:{node.name}:{kind}", daemon=True).start()
        if not finished.wait(node.timeout_s):
            ctx.cancel_event.set()  # the thread runs on; its results and state are dropped
            raise NodeTimeoutError(f"{kind} implementation ran past timeout_s={node.timeout_s:g} s; abandoned",
                                   node=node.name, kind=kind)
        if "error" in box:
            raise box["error"]
        node_state.clear()
        node_state.update(ctx.state)
        return box["outs"]

    def _try_kinds(self, node: Node, args: dict[str, Any], state: dict[str, dict], rep: NodeReport) -> dict:
        tries, skipped = self._plans[node.name]
        node_state = state.setdefault(node.name, {})
        last: BaseException | None = None
        t_node = time.perf_counter()
        for position, (kind, device) in enumerate(tries):
            for attempt in range(self.max_retries + 1):
                t0 = time.perf_counter()
                try:
                    stage = self.stage(node, kind, device)
                    outs = self._call(node, stage, kind, device, node_state, args)
                    _check_outputs(node, kind, outs)
                except UserError as exc:
                    rep.attempts.append(Attempt(kind, device, False, time.perf_counter() - t0, str(exc)))
                    rep.seconds = time.perf_counter() - t_node
                    raise _with_node(exc, node.name, kind)
                except Exception as exc:  # noqa: BLE001 - every failure is recorded, then retried or fallen back
                    transient = is_transient(exc)  # before wrapping: the wrapper has no `transient` flag
                    if device.startswith("cuda") and not isinstance(exc, VCGraphError):
                        exc = _chain(CUDAKernelError(f"{type(exc).__name__}: {exc}", node=node.name, kind=kind), exc)
                    rep.attempts.append(Attempt(kind, device, False, time.perf_counter() - t0,
                                                f"{type(exc).__name__}: {exc}"))
                    last = exc
                    if transient and attempt < self.max_retries:
                        log.warning("node '%s': %s failed with a transient error (%s); retry %d of %d",
                                    node.name, kind, exc, attempt + 1, self.max_retries)
                        continue
                    nxt = tries[position + 1][0] if position + 1 < len(tries) else None
                    log.warning("node '%s': %s implementation failed (%s: %s); %s", node.name, kind,
                                type(exc).__name__, exc, f"falling back to {nxt}" if nxt else "no fallback left")
                    break
                else:
                    rep.attempts.append(Attempt(kind, device, True, time.perf_counter() - t0))
                    rep.implementation, rep.device = kind, device
                    rep.seconds = time.perf_counter() - t_node
                    return outs
        rep.seconds = time.perf_counter() - t_node
        rerun = ", ".join(self.graph.downstream_of(node.name)) if node.name in self.graph.nodes else node.name
        if not tries:
            why = "; ".join(f"{k}: {r}" for k, r in skipped.items())
            raise PipelineError(f"no implementation can run here ({why})", node=node.name)
        summary = "; ".join(rep.errors)
        all_cuda = all(d.startswith("cuda") for _, d in tries)
        cls = CUDAKernelError if all_cuda else PipelineError
        raise _chain(cls(f"every implementation failed ({summary}); re-run from: {rerun}", node=node.name), last)


def _check_outputs(node: Node, kind: str, outs: Any) -> None:
    if not isinstance(outs, dict):
        raise StageError(f"implementation returned {type(outs).__name__}, not a dict of outputs",
                         node=node.name, kind=kind)
    missing = [p for p in node.output_ports if p not in outs]
    if missing:
        raise StageError(f"implementation did not produce output(s) {', '.join(missing)}",
                         node=node.name, kind=kind)


def _chain(new: BaseException, cause: BaseException | None) -> BaseException:
    new.__cause__ = cause
    return new


def _with_node(exc: BaseException, node: str, kind: str) -> BaseException:
    """Attach the node name to a stage's error that lacks it."""
    if isinstance(exc, StageError) and exc.node is None:
        exc.node, exc.kind = node, kind
        exc.args = (f"[{node}] {exc.message}",) + exc.args[1:]
    return exc
