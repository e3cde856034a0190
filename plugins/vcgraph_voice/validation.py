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
    if x.ndim == 2 and x.size == 0:
        return np.zeros(0, np.float32)
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
        raw = np.asarray(embedding)
        if raw.dtype.kind == "c":
            raise VoiceInputError("target embedding must be real, got complex values")
        with np.errstate(over="ignore"):  # values beyond float32 become Inf: refused below
            e = raw.astype(np.float32)
    except (TypeError, ValueError):
        raise VoiceInputError(f"target embedding must be numeric, got {type(embedding).__name__}") from None
    if e.ndim == 2 and e.shape[0] == 1:
        e = e[0]
    if e.shape != (EMBEDDING_SIZE,):
        raise VoiceInputError(f"target embedding must have shape ({EMBEDDING_SIZE},) or "
                                   f"(1, {EMBEDDING_SIZE}), got {tuple(e.shape)}")
    if not np.isfinite(e).all():
        raise VoiceInputError("target embedding has NaN/Inf values")
    peak = float(np.abs(e).max())
    if peak == 0.0 or float(np.linalg.norm(e / peak)) * peak < 1e-8:
        raise VoiceInputError("target embedding is all zeros")
    e = e / peak  # no overflow in the norm of large values
    return (e / np.linalg.norm(e)).astype(np.float32)


MAX_PITCH_SHIFT = 24.0  # semitones: two octaves either way
F0_FRAME_PERIOD_MS = (1.0, 100.0)  # what a source F0 contour's frames may span
MAX_F0_HZ = 4000.0


def check_pitch_shift(value) -> float:
    """``value`` as a finite float within ±:data:`MAX_PITCH_SHIFT` semitones (None: 0)."""
    if value is None:
        return 0.0
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        shift = float(np.asarray(value, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        raise VoiceInputError(f"pitch_shift must be a number of semitones, got {value!r}") from None
    if not np.isfinite(shift):
        raise VoiceInputError(f"pitch_shift is {shift}: give a finite number of semitones")
    if abs(shift) > MAX_PITCH_SHIFT:
        raise VoiceInputError(f"pitch_shift {shift:g} is outside ±{MAX_PITCH_SHIFT:g} semitones")
    return shift


def check_source_f0(f0, seconds: float) -> np.ndarray:
    """A given F0 contour (Hz, 0 = unvoiced) as 1-D float64, checked against the audio's length.

    NaN is refused rather than read as unvoiced (say so with 0: ``np.nan_to_num(f0)`` for
    librosa's pyin output); a contour whose frames would span less than 1 ms or more than
    100 ms of this audio belongs to another recording.
    """
    if hasattr(f0, "detach"):
        f0 = f0.detach().cpu().numpy()
    try:
        x = np.asarray(f0)
    except Exception:
        raise VoiceInputError(f"source_f0 must be an array of Hz values, got {type(f0).__name__}") from None
    if x.dtype.kind not in "biuf":
        raise VoiceInputError(f"source_f0 must be numeric, got dtype {x.dtype}")
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise VoiceInputError(f"source_f0 must be 1-D (one value per frame), got shape {x.shape}")
    x = x.astype(np.float64)
    if x.size < 2:
        raise VoiceInputError(f"source_f0 has {x.size} frame(s); an F0 contour needs at least 2")
    if np.isnan(x).any():
        raise VoiceInputError(f"source_f0 has {int(np.isnan(x).sum())} NaN value(s) of {x.size}; "
                              "mark unvoiced frames with 0 (np.nan_to_num(f0))")
    if not np.isfinite(x).all() or (x < 0).any() or x.max() > MAX_F0_HZ:
        raise VoiceInputError(f"source_f0 values must lie in 0..{MAX_F0_HZ:g} Hz (0 = unvoiced); "
                              f"got {x.min():g}..{x.max():g}")
    period_ms = seconds * 1e3 / x.size
    lo, hi = F0_FRAME_PERIOD_MS
    if not lo <= period_ms <= hi:
        raise VoiceInputError(f"source_f0 has {x.size} frames for {seconds:.2f} s of audio ({period_ms:.2f} ms "
                              f"per frame, expected {lo:g}..{hi:g} ms): is it the contour of another recording?")
    return x
