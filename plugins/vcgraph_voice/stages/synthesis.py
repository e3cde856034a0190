"""What every voice-synthesis stage shares: input checks and the embedding-only path."""
from __future__ import annotations

import torch

from vcgraph.errors import StageError
from vcgraph.stage import Port, implementation

from ..errors import VoiceInputError
from ..features import VoiceFeatures
from ..validation import check_pitch_shift
from .owned import OwnsResources


class SynthesisStage(OwnsResources):
    """Base of the synthesis stages: ``method`` names the features and profile data it needs.

    With a profile holding that method's data, :meth:`convert` runs; with a bare embedding
    (or a profile without it), the embedding-only transform search runs instead.
    """

    method: str = ""
    inputs = {"features": Port("voice_features"), "speaker": Port("target_voice"),
              "pitch_shift": Port("float", "semitones", optional=True)}
    outputs = {"audio": Port("waveform")}

    def build(self, kind: str, device: str) -> None:
        """The embedding-only converter (its encoder loads on first use); subclasses add their
        method's resources."""
        if getattr(self, "_embedding_only", None) is None:
            from ..embedding_only import EmbeddingOnlyConverter
            self._embedding_only = EmbeddingOnlyConverter()

    def convert(self, ctx, features: VoiceFeatures, target: dict, shift: float, **options) -> torch.Tensor:
        """The converted waveform (any device) from the source features and the profile's data."""
        raise NotImplementedError

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
                f"enrol it again with `vcgraph enroll REF.wav ... -o VOICE.vcp`")
        if speaker.profile is None:
            y = self._embedding_only(w, speaker.embedding, shift)
        else:
            y = self.convert(ctx, features, speaker.profile.methods[self.method], shift, **options)
        if not bool(torch.isfinite(y).all()):  # never pass NaN on: the next implementation is tried
            raise StageError(f"{ctx.kind} synthesis produced NaN/Inf samples")
        return {"audio": w.with_samples(y.to(ctx.device))}
