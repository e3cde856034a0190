"""What a conversion method is, and the two graph stages every method has.

A method is one file in this folder (``quality.py``, ``fast.py``, ``content.py``) holding:

* its typed **analysis** of one utterance (a frozen dataclass),
* its typed **part of a profile** (a :class:`ProfilePart`: named arrays, saved in ``.vcp``
  files under ``<method>/<key>``),
* a :class:`Method` object: :meth:`~Method.analyze`, :meth:`~Method.enroll`,
  :meth:`~Method.synthesize`; it owns the tables and models those need,
* its two stage types, a :class:`FeatureStage` and a :class:`SynthesisStage`, which turn
  stage settings into the method's parameters and build the :class:`Method` in ``setup``.

The DSP itself stays in ``dsp/`` (kernels working on plain arrays and dicts), so a method
file is the composition, not the arithmetic.
"""
from __future__ import annotations

import dataclasses
import threading
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
from pydantic import Field

from vcgraph.errors import StageError
from vcgraph.stage import Port, StageConfig, implementation

from ..dsp import f0range
from ..dsp.mel import LogMelSpectrogram
from ..embedding import GE2EEncoder
from ..errors import VoiceInputError
from ..features import VoiceFeatures, resample_contour
from ..stages.owned import OwnsResources
from ..validation import check_pitch_shift, check_source_f0
from ..waveform import Waveform


# -- profile parts ---------------------------------------------------------------------------
def key(name: str, default: Any = dataclasses.MISSING) -> Any:
    """A :class:`ProfilePart` field stored under ``name`` in profiles (when that differs)."""
    return dataclasses.field(default=default, metadata={"key": name})


@dataclasses.dataclass(frozen=True)
class ProfilePart:
    """A method's part of a speaker profile: numpy arrays, one per field.

    A field is saved under its own name, or under ``key(...)``'s (the names profiles have
    always used). Fields are the arrays the method's kernels read, in their order.
    """

    @classmethod
    def keys(cls) -> dict[str, str]:
        """field name -> profile key."""
        return {f.name: f.metadata.get("key", f.name) for f in dataclasses.fields(cls)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "ProfilePart":
        """The part from a profile's arrays for this method (unknown keys are ignored; a field
        with a default may be absent)."""
        optional = {f.name for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
        missing = [k for f, k in cls.keys().items() if k not in arrays and f not in optional]
        if missing:
            raise VoiceInputError(f"the profile's data for this method lacks {', '.join(missing)}")
        return cls(**{field: arrays[k] for field, k in cls.keys().items() if k in arrays})

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays as a profile stores them (and as the ``dsp`` kernels read them); absent
        optional fields are left out."""
        return {k: v for field, k in self.keys().items() if (v := getattr(self, field)) is not None}


# -- methods ---------------------------------------------------------------------------------
class Method:
    """One conversion method: analyse an utterance, condense reference analyses into a profile
    part, synthesise a source's analysis toward a profile part.

    An instance owns what its kernels build (tables, models) and may be shared by threads.
    ``params`` are the method's ``dsp`` parameter dataclass; the stages make them from their
    settings.
    """

    name: ClassVar[str] = ""
    Analysis: ClassVar[type] = object
    Target: ClassVar[type[ProfilePart]] = ProfilePart

    def analyze(self, audio: Waveform, params: Any, source_f0=None):
        """The typed analysis of ``audio``; ``source_f0`` (Hz, any frame rate) replaces the F0."""
        raise NotImplementedError

    def enroll(self, analyses: Sequence[Any]) -> ProfilePart:
        """The profile part of a target voice from analyses of its reference recordings."""
        raise NotImplementedError

    def enroll_features(self, features: Sequence[VoiceFeatures]) -> ProfilePart:
        """The profile part from the feature stage's outputs for the references (what
        enrolment calls): :meth:`enroll` of their analyses. A method that keeps more of a
        reference than its conversions analyse (it has the waveform here) overrides this."""
        return self.enroll([f.analysis for f in features])

    def synthesize(self, analysis, target: ProfilePart, params: Any, pitch_shift: float = 0.0) -> torch.Tensor:
        """The converted waveform (1-D float tensor, the source's length)."""
        raise NotImplementedError


# -- the stages ------------------------------------------------------------------------------
class FeatureConfig(StageConfig):
    """Settings shared by the feature-extraction stages."""

    n_fft: int = Field(2048, ge=64, le=16384, description="FFT size of the mel output")
    hop_length: int = Field(512, ge=16, le=8192, description="hop of the mel and f0 outputs")
    n_mels: int = Field(80, ge=8, le=256, description="mel bands of the mel output")
    f0_min: float = Field(f0range.PRESET.floor, ge=30.0, le=1000.0, description="lowest F0 searched (Hz)")
    f0_max: float = Field(f0range.PRESET.ceil, ge=60.0, le=2000.0, description="highest F0 searched (Hz)")
    source_embedding: bool = Field(True, description="also compute the source's 256-d speaker embedding")


class FeatureStage(OwnsResources):
    """Base of the feature stages: the method's analysis plus mel, F0 and the source embedding.

    ``Method`` is the method's class; ``setup`` builds one and keeps it as ``self.impl``.
    """

    Method: ClassVar[type[Method]] = Method
    method: ClassVar[str] = ""
    Config = FeatureConfig
    inputs = {"audio": Port("waveform"),
              "source_f0": Port("array", "F0 (Hz, 0 = unvoiced) spanning the audio, any frame rate", optional=True)}
    outputs = {"features": Port("voice_features"),
               "mel": Port("mel", "log-mel (n_mels, frames); computed only when something reads mel or f0"),
               "f0": Port("f0", "Hz per hop_length frame, 0 = unvoiced; computed only when something reads "
                                "mel or f0")}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls.method = cls.Method.name

    def build(self, kind: str, device: str) -> None:
        """The method object, the ``mel`` port's transforms (one per sample rate and device,
        made on first use) and, with ``source_embedding``, the speaker encoder (its weights
        load on first use). Subclasses add what their kind or device needs."""
        if getattr(self, "impl", None) is None:
            self._lock = threading.Lock()
            self._log_mels: dict[tuple[int, str], LogMelSpectrogram] = {}
            self.encoder = GE2EEncoder("cpu") if self.config.source_embedding else None
            self.impl = self.Method()

    def params(self, device: str, **options) -> Any:
        """The method's analysis parameters from this stage's settings."""
        raise NotImplementedError

    def _params(self, device: str, **options) -> Any:  # the name before methods/ (old callers)
        return self.params(device, **options)

    def log_mel(self, x: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """The ``mel`` port: log-mel ``(n_mels, frames)`` of ``x`` on its device."""
        c = self.config
        key = (int(sample_rate), str(x.device))
        with self._lock:
            tr = self._log_mels.get(key)
            if tr is None:
                tr = self._log_mels[key] = LogMelSpectrogram(sample_rate, c.n_fft, c.hop_length, c.n_mels).to(x.device)
        return tr(x)

    def call(self, kind, ctx, inputs):
        """Check a given ``source_f0`` against the audio before any implementation runs."""
        if inputs.get("source_f0") is not None and inputs.get("audio") is not None:
            inputs = dict(inputs, source_f0=check_source_f0(inputs["source_f0"], inputs["audio"].seconds))
        return super().call(kind, ctx, inputs)

    def analyze(self, ctx, audio: Waveform, source_f0, with_embedding: bool = True, **options) -> dict:
        """The method's analysis and the stage outputs around it (see :meth:`outputs_for`)."""
        self.ready(ctx)
        analysis = self.impl.analyze(audio, self.params(ctx.device, **options), source_f0)
        return self.outputs_for(ctx, audio, analysis, analysis.f0, with_embedding)

    @implementation("cuda", "cpu")
    def run_torch(self, ctx, audio, source_f0=None):
        return self.analyze(ctx, audio, source_f0)

    def outputs_for(self, ctx, audio: Waveform, analysis, method_f0, with_embedding: bool = True) -> dict:
        """The stage outputs around a method's ``analysis`` whose F0 contour is ``method_f0``."""
        c = self.config
        self.ready(ctx)
        mel = f0 = None
        if ctx.outputs_read is None or {"mel", "f0"} & ctx.outputs_read:  # the presets read neither
            mel = self.log_mel(audio.samples.to(ctx.device).float(), audio.sample_rate)
            f0 = torch.from_numpy(resample_contour(method_f0, mel.shape[-1])).float()
        emb = self.encoder.embed(audio.samples.detach().cpu().numpy(), audio.sample_rate) \
            if c.source_embedding and with_embedding else None
        features = VoiceFeatures(self.method, audio, c.hop_length, mel, f0, emb, analysis)
        return {"features": features, "mel": mel, "f0": f0}


class SynthesisStage(OwnsResources):
    """Base of the synthesis stages: ``Method`` names the features and profile part it needs.

    With a profile holding that method's part, the method synthesises. With a bare embedding
    the speaker stage has estimated a profile from the voice bank (``bank.py``: its ``fast``
    part): the fast method converts toward it exactly as toward an enrolled profile; the other
    methods, which need target frames an embedding cannot give, render the source with the
    fast kernels toward it (:meth:`convert_estimated`). Only when the speaker stage was set to
    ``bare_embedding: search`` does the old transform search run (``methods/embedding_only.py``).
    """

    Method: ClassVar[type[Method]] = Method
    method: ClassVar[str] = ""
    inputs = {"features": Port("voice_features"), "speaker": Port("target_voice"),
              "pitch_shift": Port("float", "semitones", optional=True)}
    outputs = {"audio": Port("waveform")}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls.method = cls.Method.name

    def build(self, kind: str, device: str) -> None:
        """The method object (the embedding-only search and the fast kernels for a bank
        estimate are built when first needed)."""
        if getattr(self, "impl", None) is None:
            self._embedding_only = None
            self._fast = None
            self.impl = self.Method()

    def embedding_search(self):
        """The embedding-only transform search (``bare_embedding: search``), built on first use."""
        with self._setup_lock:
            if self._embedding_only is None:
                from .embedding_only import EmbeddingOnlyConverter
                self._embedding_only = EmbeddingOnlyConverter()
            return self._embedding_only

    def convert_estimated(self, ctx, features: VoiceFeatures, estimated, shift: float, **options) -> torch.Tensor:
        """The converted waveform toward a profile the voice bank estimated from an embedding
        (its ``fast`` part only). The fast method converts as with an enrolled profile; another
        method's features are rendered by the fast kernels: its own analysis when it is a fast
        analysis (content), else a fast analysis of the source waveform (quality)."""
        part = estimated.methods["fast"]
        if self.method == "fast":
            return self.convert(ctx, features, part, shift, **options)
        from ..dsp.fast import FastParams
        from .fast import FastAnalysis, FastMethod, FastTarget
        with self._setup_lock:
            if self._fast is None:
                self._fast = FastMethod()
        params = FastParams(device=ctx.device)
        analysis = features.analysis
        if not isinstance(analysis, FastAnalysis):
            analysis = self._fast.analyze(features.waveform, params)
        return self._fast.synthesize(analysis, FastTarget.from_arrays(part), params, shift)

    def params(self, device: str, **options) -> Any:
        """The method's synthesis parameters from this stage's settings."""
        raise NotImplementedError

    def _params(self, device: str, **options) -> Any:  # the name before methods/ (old callers)
        return self.params(device, **options)

    def convert(self, ctx, features: VoiceFeatures, target: dict[str, np.ndarray], shift: float,
                **options) -> torch.Tensor:
        """The converted waveform (any device) from the source features and the profile's arrays."""
        return self.impl.synthesize(features.analysis, self.Method.Target.from_arrays(target),
                                    self.params(ctx.device, **options), shift)

    @implementation("cuda", "cpu")
    def run_torch(self, ctx, features, speaker, pitch_shift=None):
        return self.synthesize(ctx, features, speaker, pitch_shift)

    def synthesize(self, ctx, features: VoiceFeatures, speaker, pitch_shift, **options) -> dict:
        if features.method != self.method:
            raise VoiceInputError(f"{self.name} needs '{self.method}' features, got '{features.method}'")
        shift = check_pitch_shift(pitch_shift)
        self.ready(ctx)
        w = features.waveform
        if speaker.profile is not None and not speaker.profile.has(self.method):
            raise VoiceInputError(
                f"the target profile has no data for the '{self.method}' method (it was made by an "
                f"older vcgraph, or enrolled for other presets: {', '.join(sorted(speaker.profile.methods)) or 'none'}); "
                f"enrol it again with `vcgraph enroll REF.wav ... -o VOICE.vcp`, or convert with a preset it "
                f"has data for (--config NAME)")
        if speaker.profile is None and getattr(speaker, "estimated", None) is not None:
            y = self.convert_estimated(ctx, features, speaker.estimated, shift, **options)
        elif speaker.profile is None:
            y = self.embedding_search()(w, speaker.embedding, shift)
        else:
            y = self.convert(ctx, features, speaker.profile.methods[self.method], shift, **options)
        if not bool(torch.isfinite(y).all()):  # never pass NaN on: the next implementation is tried
            raise StageError(f"{ctx.kind} synthesis produced NaN/Inf samples")
        return {"audio": w.with_samples(y.to(ctx.device))}
