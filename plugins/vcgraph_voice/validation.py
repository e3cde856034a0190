"""Checks on user audio and embeddings, with clear errors."""
from __future__ import annotations

import numpy as np

from .errors import VoiceInputError

MIN_RATE, MAX_RATE = 4000, 384000
EMBEDDING_SIZE = 256


def as_mono(samples, channels_last: bool | None = None) -> np.ndarray:
    """Mix ``samples`` to mono float32 numpy.

    Accepted layouts: ``(n,)``; ``(n, channels)`` as soundfile returns; ``(channels, n)`` as
    torchaudio returns. A 2-D array is read as channels-last when its second axis is the
    shorter one (≤ 16 channels), unless ``channels_last`` says otherwise.
    """
    if hasattr(samples, "detach"):
        samples = samples.detach().cpu().numpy()
    x = np.asarray(samples)
    if x.dtype.kind not in "fiu":
        raise VoiceInputError(f"audio must be numeric, got dtype {x.dtype}")
    if x.dtype.kind in "iu":  # integer PCM
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max)
    x = x.astype(np.float32, copy=False)
    if x.ndim == 2:
        if channels_last is None:
            channels_last = x.shape[1] <= x.shape[0] and x.shape[1] <= 16
            if not channels_last and x.shape[0] > 16:
                raise VoiceInputError(f"cannot tell channels from samples in audio of shape {x.shape}")
        x = x.mean(axis=1 if channels_last else 0)
    elif x.ndim != 1:
        raise VoiceInputError(f"audio must be 1-D (mono) or 2-D (multichannel), got shape {x.shape}")
    return x


def check_audio(x: np.ndarray, sample_rate, min_seconds: float = 0.05) -> None:
    """Raise :class:`VoiceInputError` for an unusable rate or signal."""
    if not isinstance(sample_rate, (int, np.integer)) or isinstance(sample_rate, bool):
        raise VoiceInputError(f"sample rate must be an integer, got {sample_rate!r}")
    if not MIN_RATE <= sample_rate <= MAX_RATE:
        raise VoiceInputError(f"sample rate {sample_rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")
    if x.size == 0:
        raise VoiceInputError("audio is empty")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise VoiceInputError(f"audio has {bad} NaN/Inf sample(s) of {x.size}")
    if x.size < min_seconds * sample_rate:
        raise VoiceInputError(f"audio is too short: {x.size / sample_rate * 1e3:.1f} ms "
                                   f"(at least {min_seconds * 1e3:.0f} ms needed)")
    if not np.any(x):
        raise VoiceInputError("audio is all zeros (silence)")


def normalize_embedding(embedding) -> np.ndarray:
    """A (256,) L2-normalised float32 embedding from (256,), (1, 256) or a list."""
    if hasattr(embedding, "detach"):
        embedding = embedding.detach().cpu().numpy()
    try:
        e = np.asarray(embedding, dtype=np.float32)
    except (TypeError, ValueError):
        raise VoiceInputError(f"target embedding must be numeric, got {type(embedding).__name__}") from None
    if e.ndim == 2 and e.shape[0] == 1:
        e = e[0]
    if e.shape != (EMBEDDING_SIZE,):
        raise VoiceInputError(f"target embedding must have shape ({EMBEDDING_SIZE},) or "
                                   f"(1, {EMBEDDING_SIZE}), got {tuple(e.shape)}")
    if not np.isfinite(e).all():
        raise VoiceInputError("target embedding has NaN/Inf values")
    norm = float(np.linalg.norm(e))
    if norm < 1e-8:
        raise VoiceInputError("target embedding is all zeros")
    return e / norm
