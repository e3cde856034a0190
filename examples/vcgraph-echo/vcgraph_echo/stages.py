"""The plugin's stage types."""
from __future__ import annotations

import numpy as np
from pydantic import Field

from vcgraph.audio import Audio
from vcgraph.errors import CUDAKernelError, InputError
from vcgraph.stage import Port, Stage, StageConfig, implementation

from . import dsp


def _check(audio) -> Audio:
    if not isinstance(audio, Audio):
        raise InputError(f"expected an Audio value, got {type(audio).__name__}")
    samples = np.asarray(audio.samples)
    if samples.ndim not in (1, 2) or not np.issubdtype(samples.dtype, np.floating):
        raise InputError(f"expected float samples of shape (frames,) or (frames, channels), "
                            f"got {samples.dtype} {samples.shape}")
    return Audio(samples, int(audio.sample_rate))


class Echo(Stage):
    """A feedback delay: adds repeating, decaying copies of the signal."""

    name = "echo"

    class Config(StageConfig):
        delay_ms: float = Field(250.0, ge=1, le=2000, description="delay between echoes, in milliseconds")
        feedback: float = Field(0.4, ge=0, le=0.95, description="level of each echo relative to the previous one")
        mix: float = Field(0.5, ge=0, le=1, description="level of the echoes added to the dry signal")

    inputs = {"audio": Port("audio", "the dry signal")}
    outputs = {"audio": Port("audio", "the signal with echoes")}

    def _tail(self, ctx, audio: Audio):
        """The filter tail kept in the stream state (reset when the delay or channels change)."""
        delay = dsp.delay_samples(self.config.delay_ms, audio.sample_rate)
        key = (delay, audio.samples.shape[1:])
        if ctx.state.get("key") != key:
            ctx.state["key"], ctx.state["tail"] = key, None
        return delay, ctx.state["tail"]

    @implementation("cuda")
    def run_cuda(self, ctx, audio):
        audio = _check(audio)
        delay, tail = self._tail(ctx, audio)
        try:
            out, ctx.state["tail"] = dsp.echo_torch(audio.samples, delay, self.config.feedback,
                                                    self.config.mix, tail, device=ctx.device)
        except RuntimeError as exc:  # CUDA out of memory, launch failures
            raise CUDAKernelError(f"echo kernel failed: {exc}") from exc
        return {"audio": Audio(out, audio.sample_rate)}

    @implementation("cpu")
    def run_cpu(self, ctx, audio):
        audio = _check(audio)
        delay, tail = self._tail(ctx, audio)
        out, ctx.state["tail"] = dsp.echo_numpy(audio.samples, delay, self.config.feedback,
                                                self.config.mix, tail)
        return {"audio": Audio(out, audio.sample_rate)}

    @implementation("simplified")
    def run_simplified(self, ctx, audio):
        audio = _check(audio)
        delay, tail = self._tail(ctx, audio)
        out, ctx.state["tail"] = dsp.echo_single_tap(audio.samples, delay, self.config.mix, tail)
        return {"audio": Audio(out, audio.sample_rate)}


class Gain(Stage):
    """Change the level by a number of decibels."""

    name = "gain"

    class Config(StageConfig):
        gain_db: float = Field(0.0, ge=-120, le=40, description="gain in decibels")

    inputs = {"audio": Port("audio")}
    outputs = {"audio": Port("audio")}

    @implementation("cuda", "cpu")  # one body for both kinds: it runs on ctx.device
    def run(self, ctx, audio):
        audio = _check(audio)
        factor = 10.0 ** (self.config.gain_db / 20.0)
        if ctx.device.startswith("cuda"):  # e.g. after the cuda echo, on a GPU machine
            import torch
            samples = (torch.as_tensor(audio.samples, device=ctx.device) * factor).cpu().numpy()
        else:
            samples = audio.samples * factor
        return {"audio": Audio(samples.astype(audio.samples.dtype, copy=False), audio.sample_rate)}
