"""Speaker encoding: the target voice as an L2-normalised 256-d d-vector plus its profile data."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from vcgraph.audio import Audio
from vcgraph.stage import Port, RunContext, StageConfig, implementation

from ..errors import VoiceInputError
from ..profile import VoiceProfile, load_target
from ..validation import normalize_embedding
from .owned import OwnsResources


@dataclass(frozen=True)
class TargetVoice:
    """What synthesis knows of the target: the d-vector (a tensor on the stage's device) and,
    when a profile was given, its per-method data. For a bare embedding, ``estimated`` is the
    profile the voice bank estimated from it (its ``fast`` part; ``bank.py``), or ``None``
    when the graph asks for the old transform search instead."""

    embedding: torch.Tensor
    profile: VoiceProfile | None
    estimated: VoiceProfile | None = None

    @property
    def embedding_only(self) -> bool:
        return self.profile is None


class SpeakerEncoder(OwnsResources):
    """Turn a target (profile, embedding, or reference audio) into a normalised speaker encoding."""

    name = "speaker-encoder"

    class Config(StageConfig):
        require_profile: bool = Field(False, description="reject a bare embedding (profiles convert better)")
        bare_embedding: Literal["bank", "search"] = Field(
            "bank", description="what a bare embedding converts toward: bank: the fast statistics the voice "
            "bank blends from its voices nearest the embedding (no search, as fast as a profile); search: "
            "the old grid search of pitch / formant / tilt transforms scored by the GE2E encoder (seconds "
            "per clip)")
        bank: str = Field("", description="voice bank file (.npz; empty: the shipped models/voice-bank.npz)")

    inputs = {"target": Port("speaker", "VoiceProfile, .vcp/.npy path, 256-d embedding ((256,), (1, 256) or "
                                        "list), or reference Audio to enrol on the fly")}
    outputs = {"speaker": Port("target_voice")}

    def build(self, kind: str, device: str) -> None:
        """The enroller for reference audio given as the target (it loads models on first use)."""
        if getattr(self, "_enroller", None) is None:
            from ..enroll import Enroller
            self._enroller = Enroller()
        if self.config.bare_embedding == "bank" and getattr(self, "_bank", None) is None:
            from ..bank import DEFAULT_PATH, VoiceBank
            self._bank = VoiceBank.load(self.config.bank or DEFAULT_PATH)

    def _profile(self, ctx, target) -> VoiceProfile | np.ndarray:
        target = load_target(target)
        if isinstance(target, Audio):
            self.ready(ctx)
            return self._enroller.enroll_audio([target])
        return target

    def _encode(self, ctx, target) -> dict:
        if target is None:
            raise VoiceInputError("no target voice given")
        value = self._profile(ctx, target)
        profile = value if isinstance(value, VoiceProfile) else None
        if profile is None and self.config.require_profile:
            raise VoiceInputError("this graph needs a speaker profile (.vcp from `vcgraph enroll`), "
                                       "not a bare embedding")
        emb = profile.embedding if profile else normalize_embedding(value)
        estimated = None
        if profile is None and self.config.bare_embedding == "bank":
            self.ready(ctx)
            estimated = self._bank.profile(emb)
        return {"speaker": TargetVoice(torch.from_numpy(emb).to(ctx.device), profile, estimated)}

    @implementation("cuda", "cpu")
    def run_torch(self, ctx, target):
        return self._encode(ctx, target)

    @implementation("simplified")
    def run_simplified(self, ctx, target):
        """On the CPU whatever the run's device (no device transfer)."""
        return self._encode(RunContext(ctx.node, ctx.kind, "cpu", ctx.state), target)
