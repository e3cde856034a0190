"""The fast method: torch analysis, statistics mapping to the target, harmonic-plus-noise vocoder.

Preset ``fast`` (``configs/fast.yaml``); stages ``fast-features`` and ``fast-synthesis``;
profile part ``fast/*``; kernels ``dsp/fast.py``. Every step is a torch op, so the ``cuda``
implementation runs the same code on the GPU. Real time on a laptop CPU; lower similarity
than the quality method.
"""
from __future__ import annotations

import dataclasses
from typing import Literal, Sequence

import numpy as np
import torch
from pydantic import Field

from vcgraph.stage import StageConfig, implementation

from ..dsp import fast as kernels
from ..dsp.fast import FastParams
from ..features import resample_contour
from ..waveform import Waveform
from .base import FeatureConfig, FeatureStage, Method, ProfilePart, SynthesisStage


@dataclasses.dataclass(frozen=True)
class FastAnalysis:
    """The fast method's analysis of one utterance: tensors on the analysis device, one row
    per 5 ms frame."""

    f0: torch.Tensor        # [T] Hz, 0 where unvoiced
    voiced: torch.Tensor    # [T] bool
    log_env: torch.Tensor   # [T, F] natural-log amplitude envelope (F0-adaptive cepstral smoothing)
    ap: torch.Tensor        # [T, F] aperiodicity, 0..1
    log_mel: torch.Tensor   # [T, n_mels] log band averages of the envelope (the statistics' bands)
    speech: torch.Tensor    # [T] bool: frames within 45 dB of the loudest
    sample_rate: int
    n_samples: int
    adaptive_log_env: torch.Tensor | None = None  # [T, F] the pitch-adaptive envelope (adaptive_envelope)
    adaptive_log_mel: torch.Tensor | None = None  # [T, n_mels] its band averages
    adaptive_speech: torch.Tensor | None = None   # [T] bool: speech frames by its energy

    @classmethod
    def from_kernel(cls, a: dict) -> "FastAnalysis":
        """From what :func:`dsp.fast.analyze` returns."""
        return cls(a["f0"], a["voiced"], a["log_env"], a["ap"], a["log_mel"], a["speech"], int(a["sr"]),
                   int(a["n_samples"]), a.get("adaptive_log_env"), a.get("adaptive_log_mel"), a.get("adaptive_speech"))

    def kernel(self) -> dict:
        """What the ``dsp.fast`` kernels read."""
        out = {"f0": self.f0, "voiced": self.voiced, "log_env": self.log_env, "ap": self.ap,
               "log_mel": self.log_mel, "speech": self.speech, "sr": torch.tensor(self.sample_rate),
               "n_samples": torch.tensor(self.n_samples)}
        if self.adaptive_log_env is not None:
            out.update(adaptive_log_env=self.adaptive_log_env, adaptive_log_mel=self.adaptive_log_mel,
                       adaptive_speech=self.adaptive_speech)
        return out


@dataclasses.dataclass(frozen=True)
class FastTarget(ProfilePart):
    """The fast method's part of a profile: the target's log-F0 and envelope-band statistics."""

    mel_mean_v: np.ndarray  # [B] mean log band level of voiced speech frames
    mel_std_v: np.ndarray   # [B] its standard deviation
    mel_mean_u: np.ndarray  # [B] the same for unvoiced speech frames
    mel_std_u: np.ndarray   # [B]
    lf0_mean: np.ndarray    # [1] mean log-F0 of voiced frames
    lf0_std: np.ndarray     # [1]
    mel_fmax: np.ndarray    # [1] upper edge of the bands (Hz)
    # the same band statistics of the pitch-adaptive envelope; absent from profiles enrolled
    # without it (before 2026-12-03, or by another preset), which convert on the cepstral one
    adaptive_mel_mean_v: np.ndarray | None = None
    adaptive_mel_std_v: np.ndarray | None = None
    adaptive_mel_mean_u: np.ndarray | None = None
    adaptive_mel_std_u: np.ndarray | None = None


class FastMethod(Method):
    """Analyse with torch YIN (or DIO) and the cepstral envelope (plus, where the preset asks,
    the pitch-adaptive one); map log-F0 and band statistics, on the adaptive envelope when the
    profile was enrolled with it."""

    name = "fast"
    Analysis = FastAnalysis
    Target = FastTarget

    def __init__(self) -> None:
        self.resources = kernels.FastResources()

    def analyze(self, audio: Waveform, params: FastParams, source_f0=None) -> FastAnalysis:
        x = audio.samples.to(params.device).float()
        a = FastAnalysis.from_kernel(kernels.analyze(x, audio.sample_rate, params, self.resources))
        if source_f0 is not None:  # the envelope was analysed with the tracked F0; synthesis uses the given one
            f0 = torch.from_numpy(resample_contour(source_f0, a.f0.shape[-1])).to(a.f0)
            a = dataclasses.replace(a, f0=f0)
        return a

    def enroll(self, analyses: Sequence[FastAnalysis]) -> FastTarget:
        return FastTarget.from_arrays(kernels.target_stats([a.kernel() for a in analyses]))

    def synthesize(self, analysis: FastAnalysis, target: FastTarget, params: FastParams,
                   pitch_shift: float = 0.0) -> torch.Tensor:
        return kernels.synthesize(analysis.kernel(), target.to_arrays(), params, pitch_shift, self.resources)


class FastFeatures(FeatureStage):
    """Mel spectrogram, torch F0 and spectral envelope of the source."""

    name = "fast-features"
    Method = FastMethod

    class Config(FeatureConfig):
        f0_method: Literal["yin", "dio"] = Field("yin", description="yin: vectorised torch YIN (fast, any "
                                                 "device); dio: pyworld DIO + StoneMask (CPU, ~20x slower)")

        adaptive_envelope: bool = Field(False, description="also analyse the pitch-adaptive envelope (a window "
                                        "three pitch periods long, CheapTrick's recipe; ~+0.006 RTF) and convert "
                                        "on it toward profiles enrolled with it: keeps more words")

    def params(self, device: str) -> FastParams:
        c = self.config
        return FastParams(f0_min=c.f0_min, f0_max=c.f0_max, f0_method=c.f0_method,
                          adaptive_envelope=c.adaptive_envelope, device=device)

    @implementation("simplified")
    def run_simplified(self, ctx, audio, source_f0=None):
        """Without the source embedding."""
        return self.analyze(ctx, audio, source_f0, with_embedding=False)


class FastSynthesis(SynthesisStage):
    """Map log-F0 and envelope statistics to the target and synthesise with the torch vocoder."""

    name = "fast-synthesis"
    Method = FastMethod

    class Config(StageConfig):
        envelope_strength: float = Field(1.0, ge=0.0, le=1.5,
                                         description="how far envelope statistics move to the target (0: keep source)")
        formant_warp: bool = Field(True, description="warp the frequency axis toward the target's formants "
                                   "(estimated from the profile's average envelope)")

    def params(self, device: str, warp: bool | None = None) -> FastParams:
        c = self.config
        return FastParams(env_strength=c.envelope_strength, warp=c.formant_warp if warp is None else warp,
                          device=device)

    @implementation("simplified")
    def run_simplified(self, ctx, features, speaker, pitch_shift=None):
        """No formant warp: pitch and envelope statistics only."""
        return self.synthesize(ctx, features, speaker, pitch_shift, warp=False)


METHOD = FastMethod
STAGES = (FastFeatures, FastSynthesis)
