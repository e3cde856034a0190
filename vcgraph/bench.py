"""Benchmark a graph: wall time and real-time factor per node and per implementation kind.

For each kind (``cpu``, ``simplified``, ``cuda`` where present) a fresh pipeline runs with
every node that offers the kind forced onto it; audio inputs are tiled or cut to each
duration. The first call (cold: models loaded, caches empty) and the median of the warm
calls are reported, with peak memory and a baseline timed on the same audio in the same
run, so figures read as ratios on a noisy machine. Baselines come from plugins (the
``register_bench_baselines`` hook: the voice plugin's is resample + STFT + mel + inverse
STFT); by default the first node's plugin that offers one is used.
"""
from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from .audio import Audio
from .devices import cuda_available
from .pipeline import Pipeline
from .plugins import Registry, get_registry


@dataclass
class BenchRow:
    """Timings of one kind at one input duration."""

    kind: str
    seconds_audio: float
    first_s: float
    warm_s: float
    rtf_first: float
    rtf_warm: float
    baseline_s: float | None
    baseline: str | None = None
    nodes_warm_s: dict[str, float] = field(default_factory=dict)
    implementations: dict[str, str] = field(default_factory=dict)
    peak_rss_mb: float | None = None
    cuda_peak_mb: float | None = None
    error: str | None = None


def fit_audio(audio: Audio, seconds: float) -> Audio:
    """``audio`` repeated or cut to ``seconds``."""
    n = int(round(seconds * audio.sample_rate))
    x = np.asarray(audio.samples)
    reps = int(np.ceil(n / max(len(x), 1)))
    tiled = np.concatenate([x] * max(reps, 1), axis=0)[:n]
    return Audio(tiled, audio.sample_rate)


def _rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def baseline_seconds(audio: Audio, run: Callable[[Audio], Any], repeat: int = 3) -> float:
    """Median time of ``run(audio)`` over ``repeat`` calls, after one warm-up call."""
    times = []
    for _ in range(repeat + 1):
        t0 = time.perf_counter()
        run(audio)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def choose_baseline(pipe: Pipeline, name: str | None, registry: Registry | None = None):
    """``(name, run)`` of the baseline to time: ``name``, ``"none"``, or (``None``) the first
    one offered by a plugin of the graph's nodes, in run order; ``(None, None)`` if none is."""
    baselines = (registry or get_registry()).bench_baselines()
    if name == "none":
        return None, None
    if name is not None:
        if name not in baselines:
            raise ValueError(f"no bench baseline '{name}' (baselines: {', '.join(sorted(baselines)) or 'none'})")
        return name, baselines[name][0]
    for node in pipe.graph.nodes.values():
        for base, (run, plugin) in baselines.items():
            if plugin == node.plugin:
                return base, run
    return None, None


def default_kinds() -> list[str]:
    return (["cuda"] if cuda_available() else []) + ["cpu", "simplified"]


def bench_graph(config: str | os.PathLike | dict, inputs: dict[str, Any], durations=(1.0, 5.0, 30.0),
                kinds: list[str] | None = None, repeat: int = 3, overrides: list[str] | None = None,
                progress=None, baseline: str | None = None) -> list[BenchRow]:
    """Time ``config`` on ``inputs`` for each kind and duration (see the module docstring).

    ``baseline`` names the baseline workload (``"none"`` for none; default: see
    :func:`choose_baseline`)."""
    kinds = kinds or default_kinds()
    audio_names = [k for k, v in inputs.items() if isinstance(v, Audio)]
    if not audio_names:
        raise ValueError("benchmarking needs at least one audio input")
    base_name, base_run = choose_baseline(Pipeline.from_yaml(config, overrides), baseline)
    rows: list[BenchRow] = []
    steps, done = len(kinds) * len(durations), 0
    for kind in kinds:
        if kind == "cuda" and not cuda_available():
            rows += [BenchRow(kind, s, 0.0, 0.0, 0.0, 0.0, 0.0, error="CUDA is not available on this machine")
                     for s in durations]
            done += len(durations)
            continue
        pipe = Pipeline.from_yaml(config, overrides, only_kind=kind, fallback_on_error=False, max_retries=0)
        for seconds in durations:
            if progress:
                progress(100.0 * done / steps, f"{kind} {seconds:g}s")
            done += 1
            run_inputs = dict(inputs)
            for name in audio_names:
                run_inputs[name] = fit_audio(inputs[name], seconds)
            base = baseline_seconds(run_inputs[audio_names[0]], base_run) if base_run else None
            row = BenchRow(kind, seconds, 0.0, 0.0, 0.0, 0.0, base, base_name)
            try:
                _reset_peak_rss()
                if kind == "cuda":
                    import torch
                    torch.cuda.reset_peak_memory_stats()
                t0 = time.perf_counter()
                first = pipe.run(run_inputs)
                row.first_s = time.perf_counter() - t0
                warm, per_node = [], []
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    res = pipe.run(run_inputs)
                    warm.append(time.perf_counter() - t0)
                    per_node.append({n: r.seconds for n, r in res.report.nodes.items()})
                row.warm_s = statistics.median(warm) if warm else row.first_s
                row.nodes_warm_s = {n: statistics.median(p[n] for p in per_node) for n in per_node[0]} if per_node \
                    else {n: r.seconds for n, r in first.report.nodes.items()}
                row.implementations = {n: f"{r.implementation}@{r.device}" for n, r in first.report.nodes.items()}
                row.rtf_first, row.rtf_warm = row.first_s / seconds, row.warm_s / seconds
                row.peak_rss_mb = _rss_mb()
                if kind == "cuda":
                    import torch
                    row.cuda_peak_mb = torch.cuda.max_memory_allocated() / 2 ** 20
            except Exception as exc:  # a kind that cannot run here is reported, not fatal
                row.error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            rows.append(row)
    if progress:
        progress(100.0, "completed")
    return rows


def rows_to_dicts(rows: list[BenchRow]) -> list[dict]:
    return [asdict(r) for r in rows]


def format_rows(rows: list[BenchRow]) -> str:
    """A terminal table: one line per kind and duration, then per-node warm times."""
    head = f"{'kind':<11}{'audio s':>8}{'first s':>9}{'warm s':>9}{'RTF warm':>10}{'baseline s':>11}" \
           f"{'x baseline':>11}{'peak RSS MB':>12}{'CUDA MB':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.error:
            lines.append(f"{r.kind:<11}{r.seconds_audio:>8g}  error: {r.error}")
            continue
        ratio = f"{r.warm_s / r.baseline_s:>11.1f}" if r.baseline_s else f"{'-':>11}"
        base = f"{r.baseline_s:>11.4f}" if r.baseline_s is not None else f"{'-':>11}"
        cuda = f"{r.cuda_peak_mb:>9.0f}" if r.cuda_peak_mb is not None else f"{'-':>9}"
        rss = f"{r.peak_rss_mb:>12.0f}" if r.peak_rss_mb is not None else f"{'-':>12}"
        lines.append(f"{r.kind:<11}{r.seconds_audio:>8g}{r.first_s:>9.3f}{r.warm_s:>9.3f}{r.rtf_warm:>10.4f}"
                     f"{base}{ratio}{rss}{cuda}")
    names = sorted({r.baseline for r in rows if r.baseline})
    lines.append(f"baseline: {', '.join(names)}" if names else "baseline: none (no plugin of this graph offers one)")
    lines.append("")
    lines.append("per node, warm median ms (implementation@device):")
    for r in rows:
        if r.error:
            continue
        parts = ", ".join(f"{n} {s * 1e3:.1f} ({r.implementations.get(n, '?')})" for n, s in r.nodes_warm_s.items())
        lines.append(f"  {r.kind} {r.seconds_audio:g}s: {parts}")
    return "\n".join(lines)
