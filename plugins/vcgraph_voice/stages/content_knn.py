"""Content method: a content encoder trained here picks the target's frames; torch vocoder.

Both stages own what they load: ``setup(kind, device)`` builds the encoder and its front end
once per stage instance (see ``dsp/content.py`` for the method and ``MODEL_CARD.md`` for the
model).
"""
from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from vcgraph.stage import StageConfig, implementation

from .. import content_model as cm
from ..dsp import content, fast
from ..features import VoiceFeatures, resample_contour
from .feature_base import FeatureConfig, FeatureStage
from .synthesis import SynthesisStage

METHOD = "content"


class ContentFeatures(FeatureStage):
    """Torch F0, envelope and aperiodicity plus content features from the trained encoder."""

    name = "content-features"
    method = METHOD

    class Config(FeatureConfig):
        weights: str = Field("", description="content-model safetensors file (empty: the shipped model)")

    def build(self, kind: str, device: str) -> None:
        super().build(kind, device)
        if getattr(self, "_fast", None) is None:
            self._fast = fast.FastResources()
            self._models: dict = {}
        if device not in self._models:
            self._models[device] = (cm.load_encoder(self.config.weights or cm.WEIGHTS, device),
                                    cm.ContentFrontend().to(device))

    def _params(self, device: str) -> "fast.FastParams":
        c = self.config
        return fast.FastParams(f0_min=c.f0_min, f0_max=c.f0_max, device=device)

    def analyze(self, ctx, audio, source_f0, with_embedding: bool = True) -> dict:
        self.ready(ctx)
        encoder, frontend = self._models[ctx.device]
        x = audio.samples.to(ctx.device).float()
        analysis = content.analyze(x, audio.sample_rate, encoder, frontend, self._params(ctx.device), self._fast)
        if source_f0 is not None:
            import torch
            n = analysis["f0"].shape[-1]
            f0 = torch.from_numpy(resample_contour(source_f0, n)).to(analysis["f0"])
            analysis = dict(analysis, f0=f0, voiced=f0 > 0)
        return self.outputs_for(ctx, audio, analysis, analysis["f0"], with_embedding)


class ContentSynthesis(SynthesisStage):
    """Replace each frame's envelope by the content-nearest target frames; map F0; torch vocoder."""

    name = "content-synthesis"
    method = METHOD

    class Config(StageConfig):
        k: int = Field(4, ge=1, le=64, description="target frames averaged per source frame")
        match_on: Literal["bottleneck", "posteriors"] = Field(
            "bottleneck", description="content features compared: the encoder's 64-d bottleneck or its "
            "log phone-state posteriors")
        context: int = Field(1, ge=0, le=8, description="neighbouring content frames (10 ms each side) "
                             "matched too, so chosen frames share the source's context")
        blend: float = Field(1.0, ge=0.0, le=1.0, description="weight of the matched target envelope (the "
                             "rest: the source's envelope mapped to the target's statistics)")
        replace: float = Field(1.0, ge=0.0, le=1.0, description="weight of the replaced envelope; the rest "
                               "is the source's own envelope shifted by how the target's frames of the same "
                               "content differ from the source's (keeps the source's transitions)")
        shift_k: int = Field(16, ge=1, le=128, description="frames averaged on each side for that shift")
        keep_energy: float = Field(1.0, ge=0.0, le=1.0, description="how much of the source's frame-energy "
                                   "contour is kept")
        smooth: int = Field(1, ge=0, le=8, description="frames (5 ms) each side of temporal smoothing of the "
                            "matched envelope")
        target_aperiodicity: bool = Field(True, description="aperiodicity from the matched target frames "
                                          "(else the source's)")

    def build(self, kind: str, device: str) -> None:
        super().build(kind, device)
        if getattr(self, "_fast", None) is None:
            self._fast = fast.FastResources()

    def _params(self, device: str, k: int | None = None) -> "content.ContentParams":
        c = self.config
        return content.ContentParams(k=k or c.k, match_on=c.match_on, context=c.context, blend=c.blend,
                                     replace=c.replace, shift_k=c.shift_k, keep_energy=c.keep_energy, smooth=c.smooth,
                                     target_ap=c.target_aperiodicity, device=device)

    def convert(self, ctx, features, target, shift, k: int | None = None):
        return content.synthesize(features.analysis, target, self._params(ctx.device, k),
                                  fast.FastParams(device=ctx.device), shift, self._fast)

    @implementation("simplified")
    def run_simplified(self, ctx, features, speaker, pitch_shift=None):
        """Nearest single frame (k=1): cheaper, rougher."""
        return self.synthesize(ctx, features, speaker, pitch_shift, k=1)


def enroll(features: list[VoiceFeatures]) -> dict[str, np.ndarray]:
    """The content method's part of a profile: every target frame's content, envelope, aperiodicity."""
    return content.target_frames([f.analysis for f in features])
