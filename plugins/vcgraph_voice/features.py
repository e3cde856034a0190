"""The features value passed from feature extraction to synthesis, and the F0 contour helper."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .waveform import Waveform


@dataclass
class VoiceFeatures:
    """What feature extraction found in the source utterance.

    ``mel`` is a log-mel spectrogram ``(n_mels, frames)`` and ``f0`` the F0 in Hz (0 where
    unvoiced) on the same ``hop_length`` grid, the feature stage's ``mel`` and ``f0`` outputs:
    ``None`` when nothing in the graph reads those (the presets do not); ``analysis`` is the named conversion
    ``method``'s typed analysis (``methods/<method>.py``: ``QualityAnalysis``,
    ``FastAnalysis``, ``ContentAnalysis``), on its own frame grid.
    """

    method: str
    waveform: Waveform
    hop_length: int
    mel: torch.Tensor | None
    f0: torch.Tensor | None
    source_embedding: np.ndarray | None
    analysis: Any = None


def resample_contour(f0, n_frames: int) -> np.ndarray:
    """Stretch an F0 contour (Hz, 0 = unvoiced) to ``n_frames`` frames over the same duration.

    Voiced values are interpolated in log-F0; a frame is voiced when the nearest input
    frame is.
    """
    if hasattr(f0, "detach"):
        f0 = f0.detach().cpu().numpy()
    f0 = np.nan_to_num(np.asarray(f0, dtype=np.float64).reshape(-1), nan=0.0)
    if f0.size == 0:
        raise ValueError("F0 contour is empty")
    if f0.size == n_frames:
        return np.maximum(f0, 0.0)
    pos = np.linspace(0, f0.size - 1, n_frames)
    voiced = f0 > 0
    nearest = voiced[np.clip(np.round(pos).astype(int), 0, f0.size - 1)]
    if not voiced.any():
        return np.zeros(n_frames)
    idx = np.flatnonzero(voiced)
    lf = np.interp(pos, idx, np.log(f0[idx]))
    return np.where(nearest, np.exp(lf), 0.0)
