"""Conversion methods by name: what enrolment calls to condense reference analyses.

A method pairs a feature-extraction stage with a synthesis stage (``content``:
content-features + content-synthesis; ``quality``: world-features + knn-synthesis; ``fast``: fast-features + fast-synthesis) and stores its
own part of a profile under its name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import VoiceInputError


@dataclass(frozen=True)
class Method:
    name: str
    enroll: Callable[[list], dict[str, np.ndarray]]


def get_method(name: str) -> Method:
    """The conversion method called ``name``."""
    if name == "content":
        from .stages.content_knn import enroll
    elif name == "quality":
        from .stages.world_knn import enroll
    elif name == "fast":
        from .stages.fast_torch import enroll
    else:
        raise VoiceInputError(f"unknown conversion method '{name}' (known: content, quality, fast)")
    return Method(name, enroll)
