"""The voice pipeline's error type (the seed API's ``VoiceConversionError``)."""
from __future__ import annotations

from vcgraph.errors import CUDAKernelError, PipelineError

__all__ = ["VoiceConversionError", "CUDAKernelError"]


class VoiceConversionError(PipelineError):
    """Voice conversion failed: bad input audio or embedding, or every implementation failed."""
