"""The features value passed from feature extraction to synthesis, and shared analysis helpers."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torchaudio

from .waveform import Waveform


@dataclass
class VoiceFeatures:
    """What feature extraction found in the source utterance.

    ``mel`` is a log-mel spectrogram ``(n_mels, frames)`` and ``f0`` the F0 in Hz (0 where
    unvoiced) on the same ``hop_length`` grid; ``analysis`` holds what the named conversion
    ``method`` needs (its own frame rate and features).
    """

    method: str
    waveform: Waveform
    hop_length: int
    mel: torch.Tensor
    f0: torch.Tensor
    source_embedding: np.ndarray | None
    analysis: dict[str, Any] = field(default_factory=dict)


_mel_cache: dict[tuple, torchaudio.transforms.MelSpectrogram] = {}
_lock = threading.Lock()


def log_mel(x: torch.Tensor, sample_rate: int, n_fft: int, hop_length: int, n_mels: int) -> torch.Tensor:
    """Log-mel spectrogram ``(n_mels, frames)`` on ``x``'s device (transform cached)."""
    key = (sample_rate, n_fft, hop_length, n_mels, str(x.device))
    with _lock:
        tr = _mel_cache.get(key)
        if tr is None:
            tr = _mel_cache[key] = torchaudio.transforms.MelSpectrogram(
                sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, f_max=sample_rate / 2).to(x.device)
    return torch.log(tr(x) + 1e-6)


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
