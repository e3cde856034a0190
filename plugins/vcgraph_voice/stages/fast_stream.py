"""The fast method as streaming stages: analysis frames and synthesis, state kept per stream.

``fast-stream-features`` turns input chunks into finished analysis frames (declaring its
look-ahead with :meth:`FastStreamFeatures.geometry`); ``fast-stream-synthesis`` maps them to
the target with causal running statistics and renders them by overlap-add, carrying the
oscillator phase (see :mod:`vcgraph_voice.dsp.fast_stream`). Both run the same torch code on
``cuda`` or ``cpu``; the ``simplified`` synthesis skips the formant warp.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from pydantic import Field

from vcgraph.errors import StageError
from vcgraph.stage import Port, Stage, StageConfig, implementation

from ..errors import VoiceInputError
from ..validation import check_pitch_shift
from .stream_io import StreamChunk, _state

METHOD = "fast"


@dataclass(frozen=True)
class FrameBlock:
    """Finished analysis frames of a stream (``frames`` None when none finished this block)."""

    frames: dict | None
    settings: object
    sample_rate: int
    encoder: np.ndarray | None = None  # uint8[8]: the content encoder's identity, where frames hold its features


def _dsp():
    from ..dsp import fast_stream
    return fast_stream


class FastStreamFeatures(Stage):
    """Streaming torch F0 (YIN) and envelope / aperiodicity analysis on a ring of input history."""

    name = "fast-stream-features"

    class Config(StageConfig):
        f0_min: float = Field(80.0, ge=50.0, le=400.0, description="lowest F0 searched (Hz); sets YIN's look-ahead")
        f0_max: float = Field(800.0, ge=100.0, le=2000.0, description="highest F0 searched (Hz)")
        hop_ms: float = Field(5.0, ge=2.0, le=20.0, description="frame hop")
        window_ms: float = Field(24.0, ge=8.0, le=80.0, description="envelope analysis window (look-ahead: half)")
        ap_window_ms: float = Field(48.0, ge=8.0, le=128.0,
                                    description="aperiodicity window, centred earlier so it adds no look-ahead")
        lookahead_frames: int = Field(1, ge=0, le=6, description="later frames read before a frame is final")

    inputs = {"audio": Port("stream_chunk")}
    outputs = {"frames": Port("voice_frames")}

    @classmethod
    def settings(cls, config):
        d = _dsp()
        from ..dsp.fast import FastParams
        fast = FastParams(f0_min=config.f0_min, f0_max=config.f0_max, hop_ms=config.hop_ms)
        return d.StreamSettings(fast=fast, window_ms=config.window_ms, ap_window_ms=config.ap_window_ms,
                                lookahead_frames=config.lookahead_frames)

    @classmethod
    def geometry(cls, config, sample_rate: int):
        """Frame hop, windows and look-ahead in samples at ``sample_rate``."""
        return _dsp().frame_grid(sample_rate, cls.settings(config))

    @implementation("cuda", "cpu")
    def run_torch(self, ctx, audio: StreamChunk):
        s = self.settings(self.config)
        ana = _state(ctx, lambda: _dsp().StreamAnalyzer(audio.sample_rate, s, ctx.device))
        with torch.inference_mode():
            frames = ana.push(audio.samples) if audio.samples.numel() else None
        return {"frames": FrameBlock(frames, s, audio.sample_rate)}


class FastStreamSynthesis(Stage):
    """Causal log-F0 and envelope-statistics mapping to the profile, and overlap-add HNM synthesis."""

    name = "fast-stream-synthesis"
    method = METHOD  # the profile part it reads

    class Config(StageConfig):
        envelope_strength: float = Field(1.0, ge=0.0, le=1.5, description="how far envelope statistics move")
        formant_warp: bool = Field(True, description="warp formants toward the target (estimated as the stream goes)")
        synth_window_ms: float = Field(24.0, ge=8.0, le=80.0,
                                       description="synthesis grain (delay: half of it minus a hop)")
        prior_mean_frames: float = Field(10.0, ge=0.0, le=10000.0, description="weight of the priors' means (frames)")
        prior_std_frames: float = Field(50.0, ge=0.0, le=10000.0, description="weight of the priors' deviations")
        tau_s: float = Field(30.0, gt=0.0, le=3600.0, description="forgetting time constant of the source statistics")
        seed: int = Field(0, description="noise seed")

    inputs = {"frames": Port("voice_frames"), "speaker": Port("target_voice"),
              "pitch_shift": Port("float", "semitones", optional=True)}
    outputs = {"audio": Port("stream_chunk")}

    def settings(self, upstream, warp: bool | None = None):
        c = self.config
        s = replace(upstream, synth_window_ms=c.synth_window_ms, prior_mean_frames=c.prior_mean_frames,
                    prior_std_frames=c.prior_std_frames, tau_s=c.tau_s)
        return _dsp().with_fast(s, env_strength=c.envelope_strength, seed=c.seed,
                                warp=c.formant_warp if warp is None else warp)

    @classmethod
    def delay(cls, config, geometry) -> int:
        """Samples between the last frame's centre and the last complete output sample."""
        S = max(16, int(round(geometry.sr * config.synth_window_ms / 1000.0 / 2.0)) * 2)
        return S // 2 - geometry.hop

    def _run(self, ctx, frames: FrameBlock, speaker, pitch_shift, warp: bool | None = None):
        profile = getattr(speaker, "profile", None)
        if profile is None or not profile.has(self.method):
            have = ", ".join(sorted(profile.methods)) if profile is not None else "a bare embedding"
            raise VoiceInputError(f"streaming needs a profile with '{self.method}' data (got {have}); "
                                  f"enrol with `vcgraph enroll REF.wav ... -o VOICE.vcp --presets {self.method}`")
        shift = check_pitch_shift(pitch_shift)
        s = self.settings(frames.settings, warp)
        sr = frames.sample_rate
        st = _state(ctx, lambda: {"map": _dsp().StreamMapper(sr, s, ctx.device),
                                  "syn": _dsp().StreamSynth(sr, s, ctx.device)})
        syn = st["syn"]
        if frames.frames is None:
            y = torch.zeros(0, device=syn.device)
            return {"audio": StreamChunk(y, sr, syn.done)}
        start = syn.done
        ts = profile.methods[self.method]
        f0, env, ap = st["map"].map(frames.frames, ts, shift)
        env, ap = self._envelope(st, frames, ts, env, ap)
        y = syn.push(f0, env, ap, frames.frames["k0"])
        if not bool(torch.isfinite(y).all()):
            raise StageError(f"{ctx.kind} streaming synthesis produced NaN/Inf samples")
        return {"audio": StreamChunk(y, sr, start)}

    def _envelope(self, state: dict, frames: FrameBlock, target: dict, env: torch.Tensor, ap: torch.Tensor):
        """The (log envelope, aperiodicity) to render from the mapped ones (a hook for subclasses)."""
        return env, ap

    @implementation("cuda", "cpu")
    def run_torch(self, ctx, frames, speaker, pitch_shift=None):
        with torch.inference_mode():
            return self._run(ctx, frames, speaker, pitch_shift)

    @implementation("simplified")
    def run_simplified(self, ctx, frames, speaker, pitch_shift=None):
        """No formant warp: pitch and envelope statistics only (less work per block)."""
        with torch.inference_mode():
            return self._run(ctx, frames, speaker, pitch_shift, warp=False)
