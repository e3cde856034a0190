"""Preprocessing (caller audio → normalised mono waveform) and post-processing (→ output audio)."""
from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from vcgraph.audio import Audio
from vcgraph.stage import Port, Stage, StageConfig, implementation

from ..resample import Resampler, fit_length, resample_linear
from ..validation import as_mono, check_audio
from ..waveform import Waveform
from .owned import OwnsResources


def _split_input(audio, sample_rate, default_rate: int) -> tuple[np.ndarray, int]:
    if isinstance(audio, Audio):
        samples, rate = audio.samples, audio.sample_rate
    else:
        samples, rate = audio, sample_rate if sample_rate is not None else default_rate
    return samples, rate


class _Resampling(OwnsResources):
    """A stage that resamples: it builds its :class:`Resampler` in ``setup`` and keeps it."""

    def build(self, kind: str, device: str) -> None:
        if getattr(self, "_resampler", None) is None:
            self._resampler = Resampler()

    def resampler(self, ctx) -> Resampler:
        self.ready(ctx)
        return self._resampler


class Preprocess(_Resampling):
    """Mix to mono, resample, remove DC and peak-normalise the caller's audio."""

    name = "preprocess"

    class Config(StageConfig):
        sample_rate: int = Field(22050, ge=8000, le=96000, description="rate the pipeline works at (Hz)")
        peak: float = Field(0.95, gt=0, le=1.0, description="peak level after normalisation")
        remove_dc: bool = Field(True, description="subtract the mean (DC offset)")
        min_seconds: float = Field(0.1, ge=0.0, le=10.0, description="shorter input is an error")
        channels_last: bool | None = Field(None, description="layout of 2-D input: (samples, channels) "
                                           "when true, (channels, samples) when false, guessed when unset")

    inputs = {"audio": Port("audio", "vcgraph.audio.Audio, or samples (numpy/torch; 1-D or 2-D)"),
              "sample_rate": Port("int", "rate of bare samples (default: config.sample_rate)", optional=True)}
    outputs = {"audio": Port("waveform", "mono float32 tensor at config.sample_rate")}

    def _mono(self, audio, sample_rate) -> tuple[np.ndarray, int]:
        samples, rate = _split_input(audio, sample_rate, self.config.sample_rate)
        x = as_mono(samples, self.config.channels_last)
        check_audio(x, rate, self.config.min_seconds)
        return x, int(rate)

    def _torch(self, ctx, audio, sample_rate):
        x, rate = self._mono(audio, sample_rate)
        t = torch.from_numpy(np.ascontiguousarray(x)).to(ctx.device)
        t = self.resampler(ctx)(t, rate, self.config.sample_rate)
        if self.config.remove_dc:
            t = t - t.mean()
        t = t * (self.config.peak / t.abs().max().clamp_min(1e-9))
        return {"audio": Waveform(t, self.config.sample_rate, rate, len(x))}

    @implementation("cuda", "cpu")
    def run_torch(self, ctx, audio, sample_rate=None):
        return self._torch(ctx, audio, sample_rate)

    @implementation("simplified")
    def run_simplified(self, ctx, audio, sample_rate=None):
        x, rate = self._mono(audio, sample_rate)
        y = resample_linear(x, rate, self.config.sample_rate)
        if self.config.remove_dc:
            y = y - y.mean()
        y = y * (self.config.peak / max(float(np.abs(y).max()), 1e-9))
        return {"audio": Waveform(torch.from_numpy(y), self.config.sample_rate, rate, len(x))}


class Postprocess(_Resampling):
    """Resample to the output rate, keep the input's duration, normalise loudness, clip to [-1, 1]."""

    name = "postprocess"

    class Config(StageConfig):
        sample_rate: int | None = Field(None, ge=8000, le=96000,
                                        description="output rate (Hz); unset: the rate of the caller's input")
        loudness_dbfs: float = Field(-20.0, ge=-60.0, le=0.0,
                                     description="RMS level of the active (non-silent) part, dBFS")
        peak: float = Field(0.99, gt=0.0, le=1.0, description="peak limit after loudness normalisation")

    inputs = {"audio": Port("waveform")}
    outputs = {"audio": Port("audio", "vcgraph.audio.Audio: float32 numpy, input's duration")}

    def _level(self, y: np.ndarray) -> np.ndarray:
        y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
        frame = 512
        n = len(y) // frame * frame
        if n:
            rms = np.sqrt((y[:n].reshape(-1, frame) ** 2).mean(axis=1) + 1e-12)
            active = rms[rms > rms.max() * 10 ** (-40 / 20)]
            level = float(np.sqrt((active ** 2).mean())) if active.size else 0.0
        else:
            level = float(np.sqrt((y ** 2).mean()))
        if level > 1e-6:
            y = y * (10 ** (self.config.loudness_dbfs / 20) / level)
        peak = float(np.abs(y).max()) if y.size else 0.0
        if peak > self.config.peak:
            y = y * (self.config.peak / peak)
        return np.clip(y, -1.0, 1.0).astype(np.float32)

    def _target(self, w: Waveform) -> tuple[int, int]:
        rate = self.config.sample_rate or w.source_rate
        return rate, int(round(w.source_length * rate / w.source_rate))

    def _torch(self, ctx, audio: Waveform):
        rate, n = self._target(audio)
        y = self.resampler(ctx)(audio.samples.to(ctx.device).float(), audio.sample_rate, rate)
        y = fit_length(y, n).cpu().numpy()
        return {"audio": Audio(self._level(y), rate)}

    @implementation("cuda", "cpu")
    def run_torch(self, ctx, audio):
        return self._torch(ctx, audio)

    @implementation("simplified")
    def run_simplified(self, ctx, audio):
        rate, n = self._target(audio)
        y = resample_linear(audio.samples.detach().cpu().numpy(), audio.sample_rate, rate)
        return {"audio": Audio(self._level(fit_length(y, n)), rate)}


class SafeOutput(Stage):
    """The graph-level fallback: the caller's input, mono, at the output rate, peak-normalised."""

    name = "safe-output"

    class Config(StageConfig):
        sample_rate: int | None = Field(None, ge=8000, le=96000, description="output rate; unset: input's")
        peak: float = Field(0.95, gt=0, le=1.0)

    inputs = {"audio": Port("audio"), "sample_rate": Port("int", optional=True)}
    outputs = {"audio": Port("audio")}

    @implementation("passthrough")
    def run_passthrough(self, ctx, audio, sample_rate=None):
        samples, rate = _split_input(audio, sample_rate, self.config.sample_rate or 22050)
        x = as_mono(samples)
        check_audio(x, rate, 0.0)
        out_rate = self.config.sample_rate or int(rate)
        y = fit_length(resample_linear(x, int(rate), out_rate), int(round(len(x) * out_rate / rate)))
        y = np.clip(y * (self.config.peak / max(float(np.abs(y).max()), 1e-9)), -1, 1)
        return {"audio": Audio(y.astype(np.float32), out_rate)}
