"""The quality method: WORLD analysis, pocketsphinx phone-state labels, label-constrained kNN of
the target's envelopes, WORLD synthesis.

Preset ``quality`` (``configs/quality.yaml``; the default until 2026-12-05); profile part ``quality/*``; kernels
``dsp/quality.py`` (the method and its measurements), ``dsp/world.py``, ``dsp/phones.py``,
``dsp/matching.py``. Its stage types: ``quality-features`` (:class:`QualityFeatures`) and
``quality-synthesis`` (:class:`QualitySynthesis`); the names graph files used before,
``world-features`` and ``knn-synthesis``, still work (:class:`WorldFeatures`, :class:`KnnSynthesis`).

Matching target frames on *content* labels rather than on spectra keeps the words while the
envelopes come from the target.
"""
from __future__ import annotations

import dataclasses
from typing import Literal, Sequence

import numpy as np
import torch
from pydantic import Field

from vcgraph.stage import StageConfig, implementation

from ..dsp import quality as kernels
from ..dsp.quality import QualityParams
from ..features import resample_contour
from ..waveform import Waveform
from .base import FeatureConfig, FeatureStage, Method, ProfilePart, SynthesisStage, key


@dataclasses.dataclass(frozen=True)
class QualityAnalysis:
    """The quality method's analysis of one utterance (numpy), one row per WORLD frame."""

    f0: np.ndarray              # [T] Hz, 0 where unvoiced (DIO + StoneMask, or the given contour)
    voiced: np.ndarray          # [T] bool
    log_sp: np.ndarray          # [T, K] natural-log CheapTrick power envelope
    ap: np.ndarray              # [T, K] D4C aperiodicity
    log_mel: np.ndarray         # [T, M] log mel bands of the power envelope
    match: np.ndarray           # [T, M] log_mel normalised by the utterance's speech statistics (kNN features)
    phone_state: np.ndarray     # [T] phone * 3 + HMM state label
    phone: np.ndarray           # [T] phone label (0 = silence)
    context: np.ndarray         # [T] senone id, or a triphone-state code after all-phone decoding
    aligned: bool               # labels from recognition + forced alignment (else all-phone decoding)
    sample_rate: int
    n_samples: int
    frame_period_ms: float

    _KERNEL = {"f0": "f0", "voiced": "vuv", "log_sp": "logsp", "ap": "ap", "log_mel": "logmel", "match": "feat",
               "phone_state": "fine", "phone": "coarse", "context": "ctx"}

    @classmethod
    def from_kernel(cls, a: dict) -> "QualityAnalysis":
        """From what :func:`dsp.quality.analyze` returns."""
        return cls(**{field: a[k] for field, k in cls._KERNEL.items()}, aligned=bool(a["aligned"]),
                   sample_rate=int(a["sr"]), n_samples=int(a["n_samples"]),
                   frame_period_ms=float(a["frame_period_ms"]))

    def kernel(self) -> dict:
        """What the ``dsp.quality`` kernels read."""
        return {**{k: getattr(self, field) for field, k in self._KERNEL.items()}, "aligned": np.array(self.aligned),
                "sr": np.array(self.sample_rate), "n_samples": np.array(self.n_samples),
                "frame_period_ms": np.array(self.frame_period_ms)}


@dataclasses.dataclass(frozen=True)
class QualityTarget(ProfilePart):
    """The quality method's part of a profile: every target frame's matching features, envelope
    and labels, and the target's envelope and log-F0 statistics."""

    match: np.ndarray = key("feat")             # [N, M] normalised log-mel (kNN features)
    log_sp: np.ndarray = key("logsp")           # [N, K] log power envelopes
    phone_state: np.ndarray = key("fine")       # [N]
    phone: np.ndarray = key("coarse")           # [N]
    context: np.ndarray = key("ctx")            # [N]
    log_sp_mean: np.ndarray = key("logsp_mean")  # [K] over speech frames
    log_sp_std: np.ndarray = key("logsp_std")    # [K]
    lf0_mean: np.ndarray = key("lf0_mean")      # () mean log-F0 of voiced frames
    lf0_std: np.ndarray = key("lf0_std")        # ()
    sample_rate: np.ndarray = key("sr")         # () the rate the envelopes were analysed at


class QualityMethod(Method):
    """WORLD + phone-state-constrained kNN (see ``dsp/quality.py``)."""

    name = "quality"
    Analysis = QualityAnalysis
    Target = QualityTarget

    def __init__(self) -> None:
        self.resources = kernels.QualityResources()

    def analyze(self, audio: Waveform, params: QualityParams, source_f0=None) -> QualityAnalysis:
        x = audio.samples.detach().float().cpu().numpy()
        given_f0 = None
        if source_f0 is not None:
            n = kernels.n_frames(len(x), audio.sample_rate, params.frame_period_ms)
            given_f0 = resample_contour(source_f0, n)
        return QualityAnalysis.from_kernel(kernels.analyze(x, audio.sample_rate, params, f0=given_f0,
                                                           resources=self.resources))

    def enroll(self, analyses: Sequence[QualityAnalysis]) -> QualityTarget:
        return QualityTarget.from_arrays(kernels.target_frames([a.kernel() for a in analyses]))

    def synthesize(self, analysis: QualityAnalysis, target: QualityTarget, params: QualityParams,
                   pitch_shift: float = 0.0) -> torch.Tensor:
        y = kernels.synthesize(analysis.kernel(), target.to_arrays(), params, pitch_shift)
        return torch.from_numpy(np.ascontiguousarray(y))


class QualityFeatures(FeatureStage):
    """Mel spectrogram, WORLD F0/envelope/aperiodicity and phone-state labels of the source.

    The cuda kind computes the mel on the GPU; WORLD and the recogniser have no GPU version
    and run on the CPU.
    """

    name = "quality-features"
    Method = QualityMethod

    class Config(FeatureConfig):
        frame_period_ms: float = Field(5.0, ge=1.0, le=20.0, description="WORLD frame shift (ms)")
        labels: Literal["align", "allphone"] = Field(
            "align", description="align: word recognition + forced alignment (cleaner); allphone: phone decoding (faster)")
        fast_asr: bool = Field(False, description="narrower recognition search: about 4x faster labelling, "
                               "slightly noisier labels (quality not yet scored)")

    def build(self, kind: str, device: str) -> None:
        super().build(kind, device)
        c = self.config
        self.impl.resources.labeler("allphone" if kind == "simplified" else c.labels, c.fast_asr)

    def params(self, device: str, labels: str | None = None) -> QualityParams:
        c = self.config
        return QualityParams(frame_period_ms=c.frame_period_ms, labels=labels or c.labels,
                             fast_asr=c.fast_asr, f0_floor=c.f0_min, f0_ceil=c.f0_max)

    @implementation("simplified")
    def run_simplified(self, ctx, audio, source_f0=None):
        """Phone decoding instead of recognition + alignment: faster, noisier labels."""
        return self.analyze(ctx, audio, source_f0, labels="allphone")


class QualitySynthesis(SynthesisStage):
    """Map F0 to the target, replace envelopes by label-matched target frames, synthesise with WORLD.

    The cuda kind computes the kNN distance matrices on the GPU; WORLD synthesis runs on the CPU.
    """

    name = "quality-synthesis"
    Method = QualityMethod

    class Config(StageConfig):
        k: int = Field(8, ge=1, le=64, description="target frames averaged per source frame")
        blend: float = Field(0.6, ge=0.0, le=1.0, description="weight of the matched target envelope "
                             "(the rest: the source envelope mapped to the target's statistics); more is "
                             "closer to the target voice and loses more words")
        postfilter: float = Field(0.2, ge=0.0, le=1.0, description="cepstral formant emphasis of the "
                                  "converted envelope (undoes the averaging's smoothing)")

    def params(self, device: str, k: int | None = None) -> QualityParams:
        c = self.config
        return QualityParams(k=k or c.k, blend=c.blend, postfilter=c.postfilter, device=device)

    @implementation("simplified")
    def run_simplified(self, ctx, features, speaker, pitch_shift=None):
        """Nearest single frame (k=1), no blending choices: cheaper, rougher."""
        return self.synthesize(ctx, features, speaker, pitch_shift, k=1)


class WorldFeatures(QualityFeatures):
    """Old name of ``quality-features`` (graph files written before the method had one name)."""

    name = "world-features"


class KnnSynthesis(QualitySynthesis):
    """Old name of ``quality-synthesis`` (graph files written before the method had one name)."""

    name = "knn-synthesis"


METHOD = QualityMethod
STAGES = (QualityFeatures, QualitySynthesis, WorldFeatures, KnnSynthesis)
