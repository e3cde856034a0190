"""Fast method: torch analysis, statistics mapping and a harmonic-plus-noise vocoder.

Every step is a torch op, so the ``cuda`` implementation runs the same code on the GPU.
"""
from __future__ import annotations

import numpy as np
import torch
from typing import Literal

from pydantic import Field

from vcgraph.stage import StageConfig, implementation

from ..features import VoiceFeatures, resample_contour
from .synthesis import SynthesisStage
from .feature_base import FeatureConfig, FeatureStage

METHOD = "fast"


def _fast():
    from ..dsp import fast
    return fast


class FastFeatures(FeatureStage):
    """Mel spectrogram, torch F0 and spectral envelope of the source."""

    name = "fast-features"
    method = METHOD

    class Config(FeatureConfig):
        f0_method: Literal["yin", "dio"] = Field("yin", description="yin: vectorised torch YIN (fast, any "
                                                 "device); dio: pyworld DIO + StoneMask (CPU, ~20x slower)")

    def build(self, kind: str, device: str) -> None:
        super().build(kind, device)
        if getattr(self, "_fast", None) is None:
            self._fast = _fast().FastResources()

    def _params(self, device: str):
        c = self.config
        return _fast().FastParams(f0_min=c.f0_min, f0_max=c.f0_max, f0_method=c.f0_method, device=device)

    def analyze(self, ctx, audio, source_f0, with_embedding: bool = True) -> dict:
        self.ready(ctx)
        x = audio.samples.to(ctx.device).float()
        analysis = _fast().analyze(x, audio.sample_rate, self._params(ctx.device), self._fast)
        if source_f0 is not None:  # the envelope was analysed with the tracked F0; synthesis uses the given one
            n = analysis["f0"].shape[-1]
            f0 = torch.from_numpy(resample_contour(source_f0, n)).to(analysis["f0"])
            analysis = dict(analysis, f0=f0)
        return self.outputs_for(ctx, audio, analysis, analysis["f0"], with_embedding)

    @implementation("simplified")
    def run_simplified(self, ctx, audio, source_f0=None):
        """Without the source embedding."""
        return self.analyze(ctx, audio, source_f0, with_embedding=False)


class FastSynthesis(SynthesisStage):
    """Map log-F0 and envelope statistics to the target and synthesise with the torch vocoder."""

    name = "fast-synthesis"
    method = METHOD

    class Config(StageConfig):
        envelope_strength: float = Field(1.0, ge=0.0, le=1.5,
                                         description="how far envelope statistics move to the target (0: keep source)")
        formant_warp: bool = Field(True, description="warp the frequency axis toward the target's formants "
                                   "(estimated from the profile's average envelope)")

    def build(self, kind: str, device: str) -> None:
        super().build(kind, device)
        if getattr(self, "_fast", None) is None:
            self._fast = _fast().FastResources()

    def _params(self, device: str, warp: bool | None = None):
        c = self.config
        return _fast().FastParams(env_strength=c.envelope_strength, warp=c.formant_warp if warp is None else warp,
                                  device=device)

    def convert(self, ctx, features, target, shift, warp: bool | None = None):
        return _fast().synthesize(features.analysis, target, self._params(ctx.device, warp), shift, self._fast)

    @implementation("simplified")
    def run_simplified(self, ctx, features, speaker, pitch_shift=None):
        """No formant warp: pitch and envelope statistics only."""
        return self.synthesize(ctx, features, speaker, pitch_shift, warp=False)


def enroll(features: list[VoiceFeatures]) -> dict[str, np.ndarray]:
    """The fast method's part of a profile: log-F0 and envelope statistics."""
    return _fast().target_stats([f.analysis for f in features])
