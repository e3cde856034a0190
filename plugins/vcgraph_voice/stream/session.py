"""A streaming session: blocks in, blocks of the same length out, a fixed delay late.

    stream = VoiceStream(Pipeline.from_yaml(STREAM_CONFIG), "alice.vcp", sample_rate=16000, block_size=320)
    for block in blocks:
        out = stream.process(block)        # len(out) == len(block), stream.latency.delay_samples late
    tail = stream.flush()                  # the last delay_samples of output

Concatenated, the outputs are the converted input delayed by ``latency.delay_samples``
(zeros first); ``process`` + ``flush`` then dropping that many leading samples gives exactly
the input's length, time-aligned with it (:meth:`VoiceStream.convert`).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import VoiceInputError

STREAM_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "stream.yaml")
STREAM_CONTENT_CONFIG = os.path.join(os.path.dirname(STREAM_CONFIG), "stream-content.yaml")  # the content method


@dataclass(frozen=True)
class Latency:
    """The algorithmic latency of a stream: the block itself plus ``delay_samples`` (at the
    input's rate), split into its causes (ms)."""

    input_rate: int
    working_rate: int
    block_size: int
    delay_samples: int
    parts_ms: dict = field(default_factory=dict)

    @property
    def block_ms(self) -> float:
        return 1000.0 * self.block_size / self.input_rate

    @property
    def delay_ms(self) -> float:
        return 1000.0 * self.delay_samples / self.input_rate

    @property
    def algorithmic_ms(self) -> float:
        return self.block_ms + self.delay_ms


def _node(graph, cls):
    for node in graph.nodes.values():
        if issubclass(node.stage_cls, cls):
            return node
    raise VoiceInputError(f"graph '{graph.name}' has no {cls.name} node: it is not a streaming graph "
                          "(use configs/stream.yaml or a graph built like it)")


def stream_latency(graph, input_rate: int, block_size: int) -> Latency:
    """The fixed output delay that never runs short for blocks of ``block_size`` samples.

    After ``n`` input samples the analysis has finished frame ``floor((n - lookahead) / hop)``
    and synthesis has completed ``synthesis_delay`` samples less than that frame's centre; the
    worst case over block positions of ``n`` minus that is the delay.
    """
    from ..dsp.stream_resample import StreamResampler
    from ..stages.fast_stream import FastStreamFeatures, FastStreamSynthesis
    from ..stages.stream_io import StreamInput
    if block_size < 1:
        raise VoiceInputError(f"block size must be at least 1 sample, got {block_size}")
    inp, feat, syn = _node(graph, StreamInput), _node(graph, FastStreamFeatures), _node(graph, FastStreamSynthesis)
    work = inp.stage_cls.working_rate(inp.config, input_rate)
    g = feat.stage_cls.geometry(feat.config, work)
    synth = syn.stage_cls.delay(syn.config, g)
    ms = lambda n, rate: 1000.0 * n / rate  # noqa: E731
    if work == input_rate:
        framing = max(((b + 1) * block_size - g.lookahead) % g.hop for b in range(g.hop))
        delay = g.lookahead + framing + synth
        parts = {"lookahead": ms(g.lookahead, work), "framing": ms(framing, work), "synthesis": ms(synth, work)}
    else:  # block sizes at the working rate vary: the worst framing, plus both resamplers
        r_in = inp.stage_cls.delay(inp.config, input_rate)
        r_out = StreamResampler(work, input_rate)
        d_work = g.lookahead + g.hop - 1 + synth + r_out.delay
        delay = r_in + int(math.ceil(d_work * input_rate / work)) + r_out.n + 1
        parts = {"lookahead": ms(g.lookahead, work), "framing": ms(g.hop - 1, work), "synthesis": ms(synth, work),
                 "resampling": ms(r_in, input_rate) + ms(r_out.delay, work) + ms(r_out.n + 1, input_rate)}
    parts = {"block": ms(block_size, input_rate), **{k: round(v, 2) for k, v in parts.items()}}
    return Latency(int(input_rate), int(work), int(block_size), int(delay), parts)


def stream_method(graph) -> str:
    """The profile part a streaming graph's synthesis reads (``fast``, ``content``)."""
    from ..stages.fast_stream import FastStreamSynthesis
    return _node(graph, FastStreamSynthesis).stage_cls.method


def _target(target, method: str = "fast"):
    """A profile with ``method`` data from a profile, a .vcp path or reference audio (enrolled now)."""
    from vcgraph.audio import Audio
    from ..profile import VoiceProfile, load_target
    if target is None:
        raise VoiceInputError("no target voice given")
    value = load_target(target)
    if isinstance(value, Audio):
        from ..enroll import enroll_audio
        value = enroll_audio([value], presets=[method])
    if not isinstance(value, VoiceProfile):
        raise VoiceInputError("streaming needs a .vcp profile (a bare embedding cannot stream): "
                              "`vcgraph enroll REF.wav ... -o VOICE.vcp --presets fast`")
    if not value.has(method):
        raise VoiceInputError(f"the target profile has no '{method}' data (methods: {', '.join(value.methods) or 'none'}); "
                              f"enrol it with `vcgraph enroll REF.wav ... -o VOICE.vcp --presets {method}`")
    return value


class VoiceStream:
    """One live stream through a streaming pipeline (see the module docstring).

    ``threads`` sets torch's intra-op threads for the whole process (1 is fastest for
    10-80 ms blocks on a CPU; ``None`` leaves it). ``choice`` records how the settings were
    picked (:mod:`.adaptive`), for reports.
    """

    def __init__(self, pipeline, target, *, sample_rate: int, block_size: int, pitch_shift: float = 0.0,
                 threads: int | None = 1, choice: dict | None = None):
        from ..validation import check_pitch_shift
        if threads:
            import torch
            torch.set_num_threads(int(threads))
        if not isinstance(block_size, (int, np.integer)) or block_size < 1:
            raise VoiceInputError(f"block size must be a positive number of samples, got {block_size!r}")
        self.pipeline = pipeline
        self.sample_rate = int(sample_rate)
        self.block_size = int(block_size)
        self.threads = threads
        self.choice = dict(choice or {})
        self.latency = stream_latency(pipeline.graph, self.sample_rate, self.block_size)
        self.method = stream_method(pipeline.graph)
        self._inputs = {"target": _target(target, self.method), "pitch_shift": check_pitch_shift(pitch_shift),
                        "delay_samples": self.latency.delay_samples, "sample_rate": self.sample_rate}
        self._stream = pipeline.stream()
        self.seconds: list[float] = []   # processing time of each block (wall clock)
        self.cpu_seconds: list[float] = []  # ... and CPU time of this thread (what other processes do not inflate)
        self.sizes: list[int] = []
        self.last_report = None
        self.node_seconds: dict[str, list[float]] = {}  # per node, per block
        self._flushed = False
        self._underrun_offset = 0

    @property
    def target(self):
        return self._inputs["target"]

    @target.setter
    def target(self, value) -> None:
        """Switch the target voice mid-stream (the source statistics carry on)."""
        self._inputs["target"] = _target(value, self.method)

    def _run(self, block) -> np.ndarray:
        import torch
        with torch.inference_mode():  # less per-op overhead than no_grad, which matters at 10-20 ms
            result = self._stream.process({**self._inputs, "audio": block})
        self.last_report = result.report
        for name, rep in result.report.nodes.items():
            self.node_seconds.setdefault(name, []).append(rep.seconds or 0.0)
        return result["audio"].samples

    def process(self, block) -> np.ndarray:
        """Convert one block (samples at ``sample_rate``); returns as many samples.

        The delay is exact for blocks of ``block_size``; a block of another length (the last
        one of a file) may come back with up to one frame hop (5 ms) at its end not ready
        (zeros, counted in :attr:`underruns`) -- :meth:`convert` pads the last block instead."""
        if self._flushed:
            raise VoiceInputError("this stream was flushed; start a new one")
        t0, c0 = time.perf_counter(), time.thread_time()
        y = self._run(block)
        self.seconds.append(time.perf_counter() - t0)
        self.cpu_seconds.append(time.thread_time() - c0)
        self.sizes.append(len(y))
        return y

    def flush(self) -> np.ndarray:
        """The last ``latency.delay_samples`` of output (feeds silence through); ends the stream."""
        if self._flushed:
            raise VoiceInputError("this stream was already flushed")
        # one block of silence long enough that the last delay_samples are complete whatever
        # the last block's length was; the silence's own output (beyond them) is not needed
        need = self.latency.delay_samples
        hop = int(np.ceil(self.sample_rate * 0.005)) + 1
        before = self.underruns
        y = self._run(np.zeros(need + hop + self.block_size, np.float32))
        self._underrun_offset = self.underruns - before
        self._flushed = True
        return y[:need]

    def convert(self, samples) -> np.ndarray:
        """A whole signal block by block; the output time-aligned with it, of its length (a
        last, shorter block is completed with silence, so its end is ready in time too)."""
        x = np.asarray(samples, np.float32)
        n = self.block_size
        x_full = np.concatenate([x, np.zeros(-len(x) % n, np.float32)])
        outs = [self.process(x_full[i:i + n]) for i in range(0, len(x_full), n)]
        outs.append(self.flush())
        return np.concatenate(outs)[self.latency.delay_samples:][:len(x)]

    # -- reports ---------------------------------------------------------------------------
    @property
    def underruns(self) -> int:
        """Blocks whose output was not ready in time (0 unless blocks vary in size)."""
        st = self._stream.state.get("stream_output", {}).get("obj") or {}
        return int(st.get("underruns", 0)) - self._underrun_offset

    def block_ratios(self, cpu: bool = False) -> np.ndarray:
        """Processing time (wall clock, or this thread's CPU time) / block duration, per
        full-size block processed."""
        times = self.cpu_seconds if cpu else self.seconds
        s = np.array([t for t, n in zip(times, self.sizes) if n == self.block_size])
        return s / (self.block_size / self.sample_rate)

    def implementations(self) -> dict[str, str]:
        """The implementation kind each node ran with in the last block."""
        if self.last_report is None:
            return {}
        return {n: r.implementation for n, r in self.last_report.nodes.items()}

    def summary(self, skip: int = 2) -> dict:
        """Latency and timing figures (the first ``skip`` blocks, warm-up, left out)."""
        r, rc = self.block_ratios(), self.block_ratios(cpu=True)
        r = r[skip:] if r.size > skip else r
        rc = rc[skip:] if rc.size > skip else rc
        lat = self.latency
        return {"algorithmic_latency_ms": round(lat.algorithmic_ms, 2), "block_ms": round(lat.block_ms, 2),
                "p50_block_ratio": round(float(np.percentile(r, 50)), 4) if r.size else None,
                "p99_block_ratio": round(float(np.percentile(r, 99)), 4) if r.size else None,
                "max_block_ratio": round(float(r.max()), 4) if r.size else None,
                "p50_cpu_block_ratio": round(float(np.percentile(rc, 50)), 4) if rc.size else None,
                "p99_cpu_block_ratio": round(float(np.percentile(rc, 99)), 4) if rc.size else None,
                "blocks": int(r.size), "latency_parts_ms": lat.parts_ms, "sample_rate": lat.input_rate,
                "working_rate": lat.working_rate, "delay_samples": lat.delay_samples,
                "torch_threads": self.threads, "implementations": self.implementations(),
                "underruns": self.underruns,
                "node_p50_ms": {k: round(1000 * float(np.median(v[skip:] or v)), 3)
                                for k, v in self.node_seconds.items()},
                **({"choice": self.choice} if self.choice else {})}


def open_stream(target, *, sample_rate: int, block_size: int | None = None, latency_budget_ms: float | None = None,
                config: str = STREAM_CONFIG, overrides: list[str] | tuple = (), pitch_shift: float = 0.0,
                threads: int | None = 1, use_cuda: bool = False) -> VoiceStream:
    """A :class:`VoiceStream` with ``block_size`` samples per block (default 20 ms), or, given
    ``latency_budget_ms``, with the block size and settings :func:`.adaptive.choose` picks
    (recorded in ``stream.choice``)."""
    from vcgraph.pipeline import Pipeline
    if block_size is not None and latency_budget_ms is not None:
        raise VoiceInputError("give a block size or a latency budget, not both (the budget picks the block)")
    if threads:
        import torch
        torch.set_num_threads(int(threads))
    choice = None
    if latency_budget_ms is not None:
        from .adaptive import choose
        pipe, block_size, choice = choose(latency_budget_ms, sample_rate=sample_rate, target=target, config=config,
                                          overrides=overrides, use_cuda=use_cuda)
    else:
        cuda = [f"settings.use_cuda={'true' if use_cuda else 'false'}"]
        pipe = Pipeline.from_yaml(config, cuda + list(overrides))
        block_size = int(round(sample_rate * 0.020)) if block_size is None else block_size
    return VoiceStream(pipe, target, sample_rate=sample_rate, block_size=block_size, pitch_shift=pitch_shift,
                       threads=threads, choice=choice)
