"""The content method: a content encoder trained here picks the target's own frames; torch vocoder.

Preset ``content`` (``configs/content.yaml``); stages ``content-features`` and
``content-synthesis``; profile part ``content/*``; kernels ``dsp/content.py`` (on top of the
fast method's analysis and vocoder); model ``content_model.py`` and ``models/MODEL_CARD.md``.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import weakref
from collections import OrderedDict
from typing import Callable, Literal, Sequence

import numpy as np
import torch
from pydantic import Field, model_validator

from vcgraph.stage import StageConfig, implementation

from .. import content_model as cm
from ..errors import VoiceInputError
from ..phone_states import load_phone_states
from ..dsp import content as kernels
from ..dsp import fast as fast_kernels
from ..dsp.content import ContentParams
from ..dsp.fast import FastParams
from ..features import resample_contour
from ..waveform import Waveform
from .base import FeatureConfig, FeatureStage, Method, SynthesisStage, key
from .fast import FastAnalysis, FastTarget

log = logging.getLogger("vcgraph.voice.content")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ContentAnalysis(FastAnalysis):
    """The fast method's analysis plus the content encoder's output on the same 5 ms grid."""

    content: torch.Tensor  # [T, 64 + N_CLASSES]: bottleneck, log phone-state posteriors
    encoder: np.ndarray    # [8] uint8: the identity of the encoder that made ``content``
    phone_states: torch.Tensor | None = None  # [T, 126] pocketsphinx's phone-state posteriors

    @classmethod
    def from_kernel(cls, a: dict) -> "ContentAnalysis":
        """From what :func:`dsp.content.analyze` returns."""
        fast = FastAnalysis.from_kernel(a)
        return cls(**{f.name: getattr(fast, f.name) for f in dataclasses.fields(FastAnalysis)},
                   content=a["content"], encoder=a["encoder"], phone_states=a.get("phone_states"))

    def kernel(self) -> dict:
        out = dict(super().kernel(), content=self.content, encoder=self.encoder)
        if self.phone_states is not None:
            out["phone_states"] = self.phone_states
        return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class ContentTarget(FastTarget):
    """The content method's part of a profile: the fast method's statistics plus every target
    frame's content features, envelope and aperiodicity (float16) and voicing."""

    content: np.ndarray          # [N, 64 + N_CLASSES] float16
    log_env: np.ndarray          # [N, F] float16
    ap: np.ndarray               # [N, F] float16
    voiced: np.ndarray           # [N] bool
    sample_rate: np.ndarray = key("sr")  # [1] int32: the rate the frames were analysed at
    encoder: np.ndarray          # [8] uint8: identity of the content encoder that made ``content``
    # [N, 126] float16: pocketsphinx's phone-state posteriors; absent from profiles enrolled
    # before 2026-12-04 (their conversions with phone_states > 0 ask for a new enrolment)
    phone_states: np.ndarray | None = None
    # [N] float32: each frame's natural-log F0, 0 where unvoiced; absent from profiles enrolled
    # before 2026-12-06 (their conversions keep the source's contour shape, with a warning)
    frame_lf0: np.ndarray | None = None
    # [N, F] float16: each frame's pitch-adaptive envelope, rendered by matched voiced frames with
    # adaptive_frames > 0; absent from profiles enrolled before 2026-12-07's sixth session (their
    # conversions render the cepstral envelope, with a warning)
    adaptive_log_env: np.ndarray | None = None


def check_same_encoder(profile_id: np.ndarray, source_id: np.ndarray) -> None:
    """:class:`VoiceInputError` when a profile's content part was made by another encoder than
    the source's content features (uint8[8] identities, :func:`dsp.content.encoder_identity`):
    they are not comparable, and matching them would pick wrong frames silently."""
    a, b = np.asarray(profile_id, np.uint8).tobytes(), np.asarray(source_id, np.uint8).tobytes()
    if a != b:
        raise VoiceInputError(
            f"this profile's content part was made by content encoder {a.hex()}, and this vcgraph's is "
            f"{b.hex()}: their content features do not match. Enrol the voice again "
            f"(vcgraph enroll REF.wav ... -o voice.vcp) to convert with the content preset; the fast and "
            f"quality presets can use the profile as it is")


#: the warnings :func:`_warn_once` has given in this process
_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    """Log ``message`` as a warning the first time ``key`` is warned of in this process."""
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


def warn_no_frame_pitch() -> None:
    """Log (once per process) that a profile without ``frame_lf0`` keeps the source's contour."""
    _warn_once("no_frame_pitch",
               "this profile has no per-frame pitch (enrolled before 2026-12-06): the output keeps the "
               "source's pitch contour mapped to the target's mean and spread, without the matched "
               "frames' contour shape (matched_pitch) or the target's pitch distribution (f0_quantile). "
               "Enrol the voice again to get them")


def warn_no_adaptive_frames() -> None:
    """Log (once per process) that a profile without ``adaptive_log_env`` renders the cepstral envelope."""
    _warn_once("no_adaptive_frames",
               "this profile has no pitch-adaptive envelopes of its frames (enrolled before 2026-12-07): "
               "the matched frames render their cepstral envelope (adaptive_frames has no effect). "
               "Enrol the voice again to get them")


class PreparedTargets:
    """The prepared keys of the last few targets (:func:`dsp.content.prepare_target`), found
    again by the identity of the profile's arrays, so that a profile converted toward again is
    not prepared again. Profile arrays are treated as read-only; safe to share between threads."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, arrays: Sequence[np.ndarray], settings: tuple,
            build: Callable[[], kernels.PreparedTarget]) -> kernels.PreparedTarget:
        """The prepared target of ``arrays`` under ``settings``, built by ``build`` if not held."""
        key = (tuple(id(a) for a in arrays), settings)
        with self._lock:
            held = self._entries.get(key)
            if held is not None and all(ref() is a for ref, a in zip(held[0], arrays)):
                self._entries.move_to_end(key)
                return held[1]
        prepared = build()  # outside the lock: other targets need not wait
        with self._lock:
            self._entries[key] = ([weakref.ref(a) for a in arrays], prepared)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return prepared


class ContentMethod(Method):
    """Content-matched target frames for the envelope and aperiodicity; log-F0 mapped."""

    name = "content"
    Analysis = ContentAnalysis
    Target = ContentTarget

    def __init__(self) -> None:
        self.resources = fast_kernels.FastResources()
        self._models: dict[str, tuple[cm.ContentEncoder, cm.ContentFrontend]] = {}
        self._phone_states: dict[str, object] = {}
        self.prepared = PreparedTargets()

    def load(self, device: str, weights: str = "", phone_states: bool = True) -> None:
        """Load the encoder and its front end onto ``device`` (once per device), and
        pocketsphinx's phone-state model unless ``phone_states`` is false."""
        if device not in self._models:
            self._models[device] = (cm.load_encoder(weights or cm.WEIGHTS, device), cm.ContentFrontend().to(device))
        if phone_states and device not in self._phone_states:
            self._phone_states[device] = load_phone_states(device)

    def analyze(self, audio: Waveform, params: FastParams, source_f0=None) -> ContentAnalysis:
        encoder, frontend = self._models[params.device]
        x = audio.samples.to(params.device).float()
        a = ContentAnalysis.from_kernel(kernels.analyze(x, audio.sample_rate, encoder, frontend, params,
                                                        self.resources, self._phone_states.get(params.device)))
        if source_f0 is not None:
            f0 = torch.from_numpy(resample_contour(source_f0, a.f0.shape[-1])).to(a.f0)
            a = dataclasses.replace(a, f0=f0, voiced=f0 > 0)
        return a

    def enroll(self, analyses: Sequence[ContentAnalysis]) -> ContentTarget:
        """The profile part from the analyses alone (no pitch-adaptive envelopes: those need the
        waveforms, :meth:`enroll_features`)."""
        return ContentTarget.from_arrays(kernels.target_frames([a.kernel() for a in analyses]))

    def enroll_features(self, features) -> ContentTarget:
        """The profile part, with every frame's pitch-adaptive envelope from the references' waveforms."""
        analyses = [f.analysis.kernel() for f in features]
        return ContentTarget.from_arrays(kernels.target_frames(analyses, [f.waveform.samples for f in features]))

    def synthesize(self, analysis: ContentAnalysis, target: ContentTarget, params: ContentParams,
                   pitch_shift: float = 0.0) -> torch.Tensor:
        check_same_encoder(target.encoder, analysis.encoder)
        if (params.matched_pitch > 0 or params.f0_quantile > 0) and target.frame_lf0 is None:
            warn_no_frame_pitch()
        if params.adaptive_frames > 0 and target.adaptive_log_env is None:
            warn_no_adaptive_frames()
        features, arrays = analysis.kernel(), target.to_arrays()
        fast_params, sr, device = FastParams(device=params.device), int(features["sr"]), features["log_env"].device
        prepared = self.prepared.get(
            [a for a in (target.content, target.log_env, target.ap, target.phone_states, target.frame_lf0,
                         target.adaptive_log_env) if a is not None],
            kernels.PreparedTarget.settings(params, fast_params, sr, device),
            lambda: kernels.prepare_target(arrays, params, fast_params, sr, device, self.resources))
        return kernels.synthesize(features, arrays, params, fast_params, pitch_shift, self.resources, prepared)


class ContentFeatures(FeatureStage):
    """Torch F0, envelope and aperiodicity plus content features from the trained encoder."""

    name = "content-features"
    Method = ContentMethod

    class Config(FeatureConfig):
        weights: str = Field("", description="content-model safetensors file (empty: the shipped model)")
        phone_states: bool = Field(True, description="also compute pocketsphinx's phone-state posteriors "
                                   "(its shipped English acoustic model, no recogniser; about 10-20 ms per "
                                   "second of audio), which content-synthesis's phone_states matches on")

    def build(self, kind: str, device: str) -> None:
        super().build(kind, device)
        self.impl.load(device, self.config.weights, self.config.phone_states)

    def params(self, device: str) -> FastParams:
        c = self.config
        return FastParams(f0_min=c.f0_min, f0_max=c.f0_max, device=device)


class RefineSettings(StageConfig):
    """The spectral query's settings (its refinement, and the target's shape predicted from the
    content beside it), shared by the offline and streaming content synthesis stages (each
    declares ``spectral_match``, which both need)."""

    refine: int = Field(0, ge=0, le=8, description="rounds of refining the spectral match by a linear map of "
                        "the source's spectra fitted to the frames its queries find (INCA-style; streamed: "
                        "to those found so far; needs spectral_match > 0)")
    refine_context: int = Field(2, ge=0, le=8, description="frames (5 ms) of the source's spectra that map sees "
                                "on each side (streamed: before each frame)")
    refine_ridge: float = Field(100.0, gt=0.0, description="ridge penalty of that map's fit")
    content_shape: float = Field(0.0, ge=0.0, le=1.0, description="weight, in the spectral query, of "
                                 "the target's spectral shape predicted from the source's content (a ridge "
                                 "map from the profile's content keys to its own spectra, fitted once per "
                                 "profile); the rest: the source's spectra mapped to the target (needs "
                                 "spectral_match > 0)")
    content_shape_ridge: float = Field(3.0, gt=0.0, description="ridge penalty of that map's fit")

    @model_validator(mode="after")
    def _spectral_settings_need_a_spectral_match(self):
        if self.refine and self.spectral_match == 0:
            raise ValueError("refine refines the spectral match, and spectral_match is 0: set "
                             "spectral_match above 0, or refine to 0")
        if self.content_shape and self.spectral_match == 0:
            raise ValueError("content_shape is a part of the spectral match, and spectral_match is 0: "
                             "set spectral_match above 0, or content_shape to 0")
        return self


class EnvelopeSettings(StageConfig):
    """How the output envelope is made from the matched one, shared by the offline and streaming
    content synthesis stages (each declares ``blend``, the matched envelope's weight below the
    split): more of it above a split frequency, formant emphasis, and how much of the source's
    frame energy is kept."""

    blend_high: float | None = Field(None, ge=0.0, le=1.0, description="the matched envelope's weight above "
                                     "blend_split_hz (the weight ramps from blend over 1 kHz around it); "
                                     "unset: blend at every frequency")
    blend_split_hz: float = Field(3000.0, ge=500.0, le=20000.0, description="centre (Hz) of that 1 kHz ramp")
    postfilter: float = Field(0.0, ge=0.0, le=1.0, description="cepstral formant emphasis of the output "
                              "envelope (quefrencies from the second scaled by 1 + postfilter; the frame's "
                              "energy kept): sharpens the formants that averaging matched frames flattens")
    keep_energy: float = Field(1.0, ge=0.0, le=1.0, description="how much of the source's frame-energy "
                               "contour is kept (in log); the rest is the matched target frames' own, so "
                               "below 1 their loudness from sound to sound, part of the voice, comes too")


# ContentParams fields named otherwise in the stage's config, and those it does not set
_CONFIG_NAME = {"target_ap": "target_aperiodicity"}
_NOT_CONFIG = {"chunk", "device"}


class ContentSynthesis(SynthesisStage):
    """Replace each frame's envelope by the content-nearest target frames; map F0; torch vocoder."""

    name = "content-synthesis"
    Method = ContentMethod

    class Config(RefineSettings, EnvelopeSettings):
        k: int = Field(4, ge=1, le=64, description="target frames averaged per source frame")
        match_on: Literal["bottleneck", "posteriors"] = Field(
            "bottleneck", description="content features compared: the encoder's 64-d bottleneck or its "
            "log phone-state posteriors")
        context: int = Field(1, ge=0, le=8, description="neighbouring content frames (10 ms each side) "
                             "matched too, so chosen frames share the source's context")
        blend: float = Field(1.0, ge=0.0, le=1.0, description="weight of the matched target envelope (the "
                             "rest: the source's envelope mapped to the target's statistics); below "
                             "blend_split_hz when blend_high is set")
        replace: float = Field(1.0, ge=0.0, le=1.0, description="weight of the replaced envelope; the rest "
                               "is the source's own envelope shifted by how the target's frames of the same "
                               "content differ from the source's (keeps the source's transitions)")
        shift_k: int = Field(16, ge=1, le=128, description="frames averaged on each side for that shift")
        smooth: int = Field(1, ge=0, le=8, description="frames (5 ms) each side of temporal smoothing of the "
                            "matched envelope")
        spectral_match: float = Field(0.0, ge=0.0, le=1.0, description="weight of a spectral match beside "
                                      "the content match when choosing target frames: the source's envelope "
                                      "mapped to the target's statistics, against the target's frames (keeps "
                                      "more words where content labels are wrong)")
        target_aperiodicity: bool = Field(True, description="aperiodicity from the matched target frames "
                                          "(else the source's)")
        phone_states: float = Field(0.0, ge=0.0, le=1.0, description="weight of pocketsphinx's phone-state "
                                    "posteriors (a model trained on real speakers) in the content match, beside "
                                    "the encoder's bottleneck (0: the bottleneck alone; needs a profile enrolled "
                                    "with them, and content-features' phone_states on)")
        phone_state_context: int = Field(2, ge=0, le=8, description="neighbouring content frames (10 ms each "
                                         "side) of those posteriors matched too")
        matched_pitch: float = Field(0.0, ge=0.0, le=1.0, description="how far the output's pitch contour "
                                     "takes the shape of the matched target frames' own pitch (standardised "
                                     "log-F0), beside the source's contour mapped to the target's mean and "
                                     "spread (0: the mapped source contour alone; needs a profile enrolled "
                                     "since 2026-12-06, with frame_lf0)")
        matched_pitch_smooth: int = Field(10, ge=0, le=200, description="frames (5 ms) each side over which "
                                          "that matched pitch is smoothed")
        f0_quantile: float = Field(0.0, ge=0.0, le=1.0, description="how far each voiced frame's log-F0 "
                                   "goes to the target's own at the same rank (the source's voiced frames "
                                   "mapped onto the profile's pitch distribution: its range and skew), from "
                                   "the source's contour mapped to the target's mean and spread (0: that "
                                   "alone; needs a profile enrolled since 2026-12-06, with frame_lf0)")
        adaptive_frames: float = Field(0.0, ge=0.0, le=1.0, description="how far the matched voiced target "
                                       "frames render their pitch-adaptive envelope (CheapTrick's recipe, "
                                       "analysed at enrolment) instead of the cepstral one, which they are still "
                                       "found on: more of the target's fine spectral detail (0: the cepstral "
                                       "envelope; needs a profile enrolled since 2026-12-07, with adaptive_log_env)")
        match_rank: int = Field(0, ge=0, le=4096, description="match in the target keys' top principal "
                                "directions, this many (of the preset's 862): 256 keeps the frames found "
                                "nearly as they are in a third of the matching time; 0: every dimension")
        prepared_targets: int = Field(4, ge=0, le=64, description="profiles whose float32 frames and matching "
                                      "keys are kept between conversions (about 12 MB per 10 s of reference "
                                      "audio each; 0: prepared again on every call)")

    def build(self, kind: str, device: str) -> None:
        super().build(kind, device)
        self.impl.prepared.size = self.config.prepared_targets

    def params(self, device: str, k: int | None = None) -> ContentParams:
        """The kernels' settings from this stage's config: every :class:`ContentParams` field
        but the engine's own (``chunk``, ``device``) is the config field of the same name
        (``target_ap``: ``target_aperiodicity``)."""
        c = self.config
        values = {f.name: getattr(c, _CONFIG_NAME.get(f.name, f.name)) for f in dataclasses.fields(ContentParams)
                  if f.name not in _NOT_CONFIG}
        return ContentParams(**{**values, "k": k or c.k, "device": device})

    @implementation("simplified")
    def run_simplified(self, ctx, features, speaker, pitch_shift=None):
        """Nearest single frame (k=1): cheaper, rougher."""
        return self.synthesize(ctx, features, speaker, pitch_shift, k=1)


METHOD = ContentMethod
STAGES = (ContentFeatures, ContentSynthesis)
