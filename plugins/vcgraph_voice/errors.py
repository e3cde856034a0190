"""The voice pipeline's error type (the seed API's ``VoiceConversionError``)."""
from __future__ import annotations

from vcgraph.errors import CUDAKernelError, InputError, PipelineError

__all__ = ["VoiceConversionError", "VoiceInputError", "CUDAKernelError"]


class VoiceConversionError(PipelineError):
    """Voice conversion failed: bad input audio or embedding, or every implementation failed."""


class VoiceInputError(VoiceConversionError, InputError):
    """The audio, embedding or profile given is unusable (a user error: no fallback)."""
