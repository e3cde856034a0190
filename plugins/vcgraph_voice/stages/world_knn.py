"""Quality method: WORLD analysis + pocketsphinx phone-state labels, label-constrained kNN synthesis.

Matching target frames on *content* labels rather than on spectra keeps the words while the
envelopes come from the target (see ``dsp/quality.py`` for the method and its measurements).
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field

from vcgraph.stage import StageConfig, implementation

from ..dsp import quality
from .feature_base import FeatureConfig, FeatureStage
from .synthesis import SynthesisStage
from ..features import VoiceFeatures, resample_contour
from ..waveform import Waveform

METHOD = "quality"


class WorldFeatures(FeatureStage):
    """Mel spectrogram, WORLD F0/envelope/aperiodicity and phone-state labels of the source.

    The cuda kind computes the mel on the GPU; WORLD and the recogniser have no GPU version
    and run on the CPU.
    """

    name = "world-features"
    method = METHOD

    class Config(FeatureConfig):
        frame_period_ms: float = Field(5.0, ge=1.0, le=20.0, description="WORLD frame shift (ms)")
        labels: Literal["align", "allphone"] = Field(
            "align", description="align: word recognition + forced alignment (cleaner); allphone: phone decoding (faster)")
        fast_asr: bool = Field(False, description="narrower recognition search: about 4x faster labelling, "
                               "slightly noisier labels (quality not yet scored)")

    def build(self, kind: str, device: str) -> None:
        super().build(kind, device)
        if getattr(self, "_quality", None) is None:
            self._quality = quality.QualityResources()
        c = self.config
        self._quality.labeler("allphone" if kind == "simplified" else c.labels, c.fast_asr)

    def _params(self, labels: str | None = None) -> "quality.QualityParams":
        c = self.config
        return quality.QualityParams(frame_period_ms=c.frame_period_ms, labels=labels or c.labels,
                                     fast_asr=c.fast_asr, f0_floor=c.f0_min, f0_ceil=c.f0_max)

    def analyze(self, ctx, audio: Waveform, source_f0, labels: str | None = None) -> dict:
        c = self.config
        self.ready(ctx)
        x = audio.samples.detach().float().cpu().numpy()
        given_f0 = None
        if source_f0 is not None:
            given_f0 = resample_contour(source_f0, quality.n_frames(len(x), audio.sample_rate, c.frame_period_ms))
        analysis = quality.analyze(x, audio.sample_rate, self._params(labels), f0=given_f0, resources=self._quality)
        return self.outputs_for(ctx, audio, analysis, analysis["f0"])

    @implementation("simplified")
    def run_simplified(self, ctx, audio, source_f0=None):
        """Phone decoding instead of recognition + alignment: faster, noisier labels."""
        return self.analyze(ctx, audio, source_f0, labels="allphone")


class KnnSynthesis(SynthesisStage):
    """Map F0 to the target, replace envelopes by label-matched target frames, synthesise with WORLD.

    The cuda kind computes the kNN distance matrices on the GPU; WORLD synthesis runs on the CPU.
    """

    name = "knn-synthesis"
    method = METHOD

    class Config(StageConfig):
        k: int = Field(8, ge=1, le=64, description="target frames averaged per source frame")
        blend: float = Field(0.6, ge=0.0, le=1.0, description="weight of the matched target envelope "
                             "(the rest: the source envelope mapped to the target's statistics); more is "
                             "closer to the target voice and loses more words")
        postfilter: float = Field(0.2, ge=0.0, le=1.0, description="cepstral formant emphasis of the "
                                  "converted envelope (undoes the averaging's smoothing)")


    def _params(self, device: str, k: int | None = None) -> "quality.QualityParams":
        c = self.config
        return quality.QualityParams(k=k or c.k, blend=c.blend, postfilter=c.postfilter, device=device)

    def convert(self, ctx, features, target, shift, k: int | None = None):
        y = quality.synthesize(features.analysis, target, self._params(ctx.device, k), shift)
        return torch.from_numpy(np.ascontiguousarray(y))

    @implementation("simplified")
    def run_simplified(self, ctx, features, speaker, pitch_shift=None):
        """Nearest single frame (k=1), no blending choices: cheaper, rougher."""
        return self.synthesize(ctx, features, speaker, pitch_shift, k=1)


def enroll(features: list[VoiceFeatures]) -> dict[str, np.ndarray]:
    """The quality method's part of a profile: target frames, labels and statistics."""
    return quality.target_frames([f.analysis for f in features])
