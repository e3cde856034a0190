"""Pick streaming settings for a latency budget, and say which were picked.

Candidates are (quality tier, block size, implementation kind). A tier is a set of graph
overrides, best first; larger blocks cost less per second of audio but add their length to
the latency. :func:`choose` keeps the candidates whose algorithmic latency fits the budget
(computed, not measured: :func:`~.session.stream_latency`), then runs a short calibration of
each, best first, and takes the first whose p99 block time is under ``max_ratio`` of the
block's duration. The choice, and every candidate tried, is returned for reports (nothing
falls back silently).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..errors import VoiceInputError
from .session import STREAM_CONFIG, VoiceStream, stream_latency

BLOCKS_MS = (80.0, 40.0, 20.0, 10.0)


@dataclass(frozen=True)
class Tier:
    name: str
    description: str
    overrides: tuple[str, ...]


FEAT, SYN = "nodes.feature_extraction.config", "nodes.voice_synthesis.config"
TIERS = (
    Tier("full", "48 ms analysis and synthesis windows, 2 frames look-ahead (closest to offline)",
         (f"{FEAT}.window_ms=48", f"{FEAT}.lookahead_frames=2", f"{SYN}.synth_window_ms=48")),
    Tier("standard", "32 ms envelope window, 1 frame look-ahead, 24 ms grains",
         (f"{FEAT}.window_ms=32", f"{FEAT}.lookahead_frames=1", f"{SYN}.synth_window_ms=24")),
    Tier("low-latency", "24 ms envelope window, 1 frame look-ahead, 24 ms grains (stream.yaml)",
         (f"{FEAT}.window_ms=24", f"{FEAT}.lookahead_frames=1", f"{SYN}.synth_window_ms=24")),
    Tier("minimal", "24 ms envelope window, no look-ahead frame, 16 ms grains, no formant warp",
         (f"{FEAT}.window_ms=24", f"{FEAT}.lookahead_frames=0", f"{SYN}.synth_window_ms=16",
          f"{SYN}.formant_warp=false")),
)


def _kinds(use_cuda: bool) -> list[str]:
    from vcgraph.devices import cuda_available
    return (["cuda"] if use_cuda and cuda_available() else []) + ["cpu"]


def _calibrate(pipe, target, sample_rate: int, block: int, seconds: float) -> float:
    """p99 block time / block duration on synthetic speech (first blocks, warm-up, left out)."""
    from ..synthetic import speech_like
    x = speech_like(seconds, sample_rate).astype(np.float32)
    vs = VoiceStream(pipe, target, sample_rate=sample_rate, block_size=block, threads=None)
    for i in range(0, len(x) - block + 1, block):
        vs.process(x[i:i + block])
    r = vs.block_ratios()[3:]
    return float(np.percentile(r, 99)) if r.size else float("inf")


def choose(budget_ms: float, *, sample_rate: int, target, config: str = STREAM_CONFIG,
           overrides: list[str] | tuple = (), use_cuda: bool = False, max_ratio: float = 0.5,
           calibrate_s: float = 1.5, max_calibrations: int = 6):
    """``(pipeline, block_size, choice)`` for the best setting that fits ``budget_ms``.

    Raises :class:`VoiceInputError` when no setting's latency fits the budget. When none
    keeps up (p99 under ``max_ratio``), the fastest tried is returned with
    ``choice["realtime"] = False``.
    """
    from vcgraph.pipeline import Pipeline
    from .session import _target, stream_method
    target = _target(target, stream_method(Pipeline.from_yaml(config, list(overrides)).graph))
    fits, lowest = [], None
    for tier in TIERS:
        graph = Pipeline.from_yaml(config, list(overrides) + list(tier.overrides)).graph
        for block_ms in BLOCKS_MS:
            block = max(1, int(round(sample_rate * block_ms / 1000.0)))
            lat = stream_latency(graph, sample_rate, block)
            if lowest is None or lat.algorithmic_ms < lowest[0]:
                lowest = (lat.algorithmic_ms, tier.name, block_ms)
            if lat.algorithmic_ms <= budget_ms:
                fits.append((tier, block_ms, block, lat))
    if not fits:
        raise VoiceInputError(f"no streaming setting fits a latency budget of {budget_ms:g} ms: the lowest is "
                              f"{lowest[0]:.1f} ms ({lowest[1]}, {lowest[2]:g} ms blocks)")
    tried, best = [], None
    for tier, block_ms, block, lat in fits:
        for kind in _kinds(use_cuda):
            if len(tried) >= max_calibrations:
                break
            opts = list(overrides) + list(tier.overrides) + [f"settings.use_cuda={'true' if kind == 'cuda' else 'false'}"]
            pipe = Pipeline.from_yaml(config, opts, only_kind=kind)
            t0 = time.perf_counter()
            ratio = _calibrate(pipe, target, sample_rate, block, calibrate_s)
            entry = {"tier": tier.name, "block_ms": block_ms, "kind": kind, "algorithmic_latency_ms":
                     round(lat.algorithmic_ms, 2), "p99_block_ratio": round(ratio, 4),
                     "calibration_s": round(time.perf_counter() - t0, 2)}
            tried.append(entry)
            if best is None or ratio < best[0]["p99_block_ratio"]:
                best = (entry, pipe, block, tier)
            if ratio <= max_ratio:
                return pipe, block, _choice(entry, tier, budget_ms, True, tried)
    entry, pipe, block, tier = best
    return pipe, block, _choice(entry, tier, budget_ms, False, tried)


def _choice(entry: dict, tier: Tier, budget_ms: float, realtime: bool, tried: list) -> dict:
    return {"budget_ms": budget_ms, "tier": tier.name, "description": tier.description, "block_ms": entry["block_ms"],
            "kind": entry["kind"], "algorithmic_latency_ms": entry["algorithmic_latency_ms"],
            "calibration_p99_block_ratio": entry["p99_block_ratio"], "realtime": realtime,
            "overrides": list(tier.overrides), "tried": list(tried)}
