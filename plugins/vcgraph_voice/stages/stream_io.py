"""Streaming input and output stages: blocks of caller audio in, blocks of equal length out.

Every node keeps its state in ``ctx.state`` (one stream's, across blocks). Values passed on:
:class:`StreamChunk`, samples with the global index of the first one at their rate.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from pydantic import Field

from vcgraph.audio import Audio
from vcgraph.stage import Port, Stage, StageConfig, implementation

from ..errors import VoiceInputError
from ..validation import MAX_RATE, MIN_RATE, as_mono


@dataclass(frozen=True)
class StreamChunk:
    """Consecutive samples of a stream: ``samples`` (1-D tensor) from global index ``start``
    at ``sample_rate``; ``source_rate`` / ``source_length``: the caller's block."""

    samples: torch.Tensor
    sample_rate: int
    start: int
    source_rate: int = 0
    source_length: int = 0


def _state(ctx, factory):
    """The node's per-stream state object, made on first use (and again on another device)."""
    obj = ctx.state.get("obj")
    if obj is None or ctx.state.get("device") != ctx.device:
        obj = ctx.state["obj"] = factory()
        ctx.state["device"] = ctx.device
    return obj


class StreamInput(Stage):
    """Mix a block to mono, remove DC (one-pole high-pass, state carried) and resample it to the
    working rate block by block."""

    name = "stream-input"

    class Config(StageConfig):
        sample_rate: int | None = Field(None, ge=8000, le=48000,
                                        description="working rate (Hz); unset: the input's, up to max_rate")
        max_rate: int = Field(24000, ge=8000, le=48000, description="highest working rate when sample_rate is unset")
        dc_cutoff_hz: float = Field(20.0, ge=0.0, le=200.0, description="DC-blocking high-pass corner (0: off)")

    inputs = {"audio": Port("audio", "a block: vcgraph.audio.Audio or samples (numpy/torch, mono or 2-D)"),
              "sample_rate": Port("int", "rate of bare samples", optional=True)}
    outputs = {"audio": Port("stream_chunk", "the block at the working rate")}

    @classmethod
    def working_rate(cls, config, input_rate: int) -> int:
        """The rate the stream works at for input at ``input_rate``."""
        if config.sample_rate:
            return int(config.sample_rate)
        return int(input_rate) if input_rate <= config.max_rate else int(config.max_rate)

    @classmethod
    def delay(cls, config, input_rate: int) -> int:
        """Input samples the resampler holds back (0 at the input's own rate)."""
        work = cls.working_rate(config, input_rate)
        if work == input_rate:
            return 0
        from ..dsp.stream_resample import StreamResampler
        return StreamResampler(input_rate, work).delay

    def _split(self, audio, sample_rate) -> tuple[np.ndarray, int]:
        if isinstance(audio, Audio):
            samples, rate = audio.samples, audio.sample_rate
        else:
            samples, rate = audio, sample_rate
        if rate is None:
            raise VoiceInputError("a stream block needs its sample rate (pass Audio or sample_rate)")
        if not isinstance(rate, (int, np.integer)) or not MIN_RATE <= int(rate) <= MAX_RATE:
            raise VoiceInputError(f"sample rate must be an integer in {MIN_RATE}..{MAX_RATE} Hz, got {rate!r}")
        x = as_mono(samples)
        if x.ndim != 1:
            raise VoiceInputError("a stream block must be 1-D or 2-D audio")
        if not np.isfinite(x).all():
            raise VoiceInputError(f"audio block has {int((~np.isfinite(x)).sum())} NaN/Inf sample(s)")
        return x, int(rate)

    @implementation("cuda", "cpu")
    def run_torch(self, ctx, audio, sample_rate=None):
        with torch.inference_mode():
            return self._run(ctx, audio, sample_rate)

    def _run(self, ctx, audio, sample_rate):
        x, rate = self._split(audio, sample_rate)
        work = self.working_rate(self.config, rate)

        def make():
            st = {"rate": rate, "zi": None, "position": 0, "resampler": None}
            if work != rate:
                from ..dsp.stream_resample import StreamResampler
                st["resampler"] = StreamResampler(rate, work, ctx.device)
            return st

        st = _state(ctx, make)
        if st["rate"] != rate:
            raise VoiceInputError(f"the stream's sample rate changed from {st['rate']} to {rate} Hz; start a new stream")
        if self.config.dc_cutoff_hz > 0 and x.size:
            from scipy.signal import lfilter
            a = float(np.exp(-2 * np.pi * self.config.dc_cutoff_hz / rate))
            b, den = [1.0, -1.0], [1.0, -a]
            zi = st["zi"] if st["zi"] is not None else np.zeros(1)
            x, st["zi"] = lfilter(b, den, x.astype(np.float64), zi=zi)
            x = x.astype(np.float32)
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(ctx.device)
        if st["resampler"] is not None:
            t = st["resampler"].push(t)
        chunk = StreamChunk(t, work, st["position"], rate, int(x.size))
        st["position"] += int(t.numel())
        return {"audio": chunk}


class StreamOutput(Stage):
    """Hand out exactly one block's worth of samples per block, ``delay_samples`` late, at the
    input's rate, with a slow automatic gain toward ``loudness_dbfs`` and a peak limit."""

    name = "stream-output"

    class Config(StageConfig):
        loudness_dbfs: float = Field(-20.0, ge=-60.0, le=0.0, description="target RMS of active speech, dBFS")
        agc_time_s: float = Field(1.0, gt=0.0, le=30.0, description="time constant of the level estimate")
        peak: float = Field(0.99, gt=0.0, le=1.0, description="peak limit")
        floor_dbfs: float = Field(-60.0, ge=-120.0, le=0.0, description="quieter frames never count as active")
        max_gain_db: float = Field(30.0, ge=0.0, le=60.0, description="most the level control amplifies")

    inputs = {"audio": Port("stream_chunk", "converted samples at the working rate"),
              "block": Port("stream_chunk", "the input block (its length and rate)"),
              "delay_samples": Port("int", "fixed output delay in samples at the input's rate", optional=True)}
    outputs = {"audio": Port("audio", "vcgraph.audio.Audio: exactly the input block's length")}

    def _make(self, ctx, chunk: StreamChunk, block: StreamChunk, delay: int) -> dict:
        st = {"queue": np.zeros(0, np.float32), "queue_start": 0, "next": -int(delay), "gain": None, "ms": None,
              "peak_db": -120.0, "resampler": None, "underruns": 0}
        if chunk.sample_rate != block.source_rate:
            from ..dsp.stream_resample import StreamResampler
            st["resampler"] = StreamResampler(chunk.sample_rate, block.source_rate, "cpu")
        return st

    def _agc(self, st: dict, y: np.ndarray, rate: int) -> np.ndarray:
        """Gain ramped linearly across the chunk from the last gain to the new one (no steps);
        numpy: a few small operations per block, cheaper than torch's per-call overhead."""
        c = self.config
        n = y.size
        if n == 0:
            return y
        frame = max(1, rate // 100)
        m = n // frame * frame
        if m:
            ms = (y[:m].reshape(-1, frame) ** 2).mean(1)
            db = 10 * np.log10(ms + 1e-12)
            st["peak_db"] = max(float(db.max()), st["peak_db"] - 3.0 * m / rate)
            active = ms[db > max(st["peak_db"] - 40.0, c.floor_dbfs)]
            if active.size:
                a = float(np.exp(-active.size * frame / (c.agc_time_s * rate)))
                cur = float(active.mean())
                st["ms"] = cur if st["ms"] is None else a * st["ms"] + (1 - a) * cur
        target = 10 ** (c.loudness_dbfs / 20)
        new = min(target / max(np.sqrt(st["ms"]), 1e-6) if st["ms"] else 1.0, 10 ** (c.max_gain_db / 20))
        old = new if st["gain"] is None else st["gain"]
        out = y * np.linspace(old, new, n + 1, dtype=np.float32)[1:]
        peak = float(np.abs(out).max())
        if peak > c.peak:  # limit: scale the chunk down and remember the lower gain
            out = out * (c.peak / peak)
            new = new * c.peak / peak
        st["gain"] = new
        return out

    @implementation("cuda", "cpu")
    def run_torch(self, ctx, audio: StreamChunk, block: StreamChunk, delay_samples=None):
        with torch.inference_mode():
            return self._run(ctx, audio, block, delay_samples)

    def _run(self, ctx, audio, block, delay_samples):
        if delay_samples is None:
            raise VoiceInputError("stream-output needs the graph input delay_samples (a VoiceStream sets it)")
        st = ctx.state.get("obj")
        if st is None:
            st = ctx.state["obj"] = self._make(ctx, audio, block, delay_samples)
        y = self._agc(st, audio.samples.detach().float().cpu().numpy(), audio.sample_rate)
        if st["resampler"] is not None:
            y = st["resampler"].push(torch.from_numpy(y)).numpy()
        q = np.concatenate([st["queue"], y.astype(np.float32, copy=False)])
        n, start = block.source_length, st["next"]
        out = np.zeros(n, np.float32)
        lo, hi = max(start, st["queue_start"]), min(start + n, st["queue_start"] + q.size)
        if hi > lo:
            out[lo - start:hi - start] = q[lo - st["queue_start"]:hi - st["queue_start"]]
        if start + n > st["queue_start"] + q.size and start + n > 0:
            st["underruns"] += 1  # not ready: zeros now; those samples are skipped when they come
        drop = min(q.size, max(0, start + n - st["queue_start"]))
        st["queue"], st["queue_start"] = q[drop:], st["queue_start"] + drop
        st["next"] = start + n
        return {"audio": Audio(np.clip(out, -1.0, 1.0), block.source_rate)}
