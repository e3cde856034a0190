"""Level of speech and loudness-matched copies for listening.

Comparing a quiet source with a loud output biases a listener toward the louder one, so the
report plays copies brought to one speech level. The level is the RMS of the active frames
(50 ms frames no more than 30 dB below the loudest one, and above -70 dBFS), in dBFS — a
simple stand-in for ITU-R BS.1770 loudness that needs no extra package.
"""
from __future__ import annotations

import numpy as np

LISTEN_LEVEL_DBFS = -20.0
PEAK_CEILING_DBFS = -1.0


def speech_level_dbfs(x: np.ndarray, sr: int, frame_s: float = 0.05, gate_db: float = 30.0) -> float | None:
    """RMS of the active frames in dBFS (None for silence)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    n = max(1, int(sr * frame_s))
    if len(x) < n:
        frames = x[None, :]
    else:
        frames = x[: len(x) // n * n].reshape(-1, n)
    power = (frames ** 2).mean(axis=1)
    db = 10 * np.log10(np.maximum(power, 1e-20))
    active = power[(db > db.max() - gate_db) & (db > -70.0)]
    if len(active) == 0:
        return None
    return float(10 * np.log10(active.mean()))


def normalise_for_listening(x: np.ndarray, sr: int, level_dbfs: float = LISTEN_LEVEL_DBFS,
                            peak_dbfs: float = PEAK_CEILING_DBFS) -> tuple[np.ndarray, float | None, float]:
    """(copy at ``level_dbfs`` speech level, original level, gain in dB applied).

    The gain is lowered when it would push a peak above ``peak_dbfs`` (no clipping, no
    limiter), so a very peaky clip may stay a little below the level.
    """
    x = np.asarray(x, dtype=np.float32)
    level = speech_level_dbfs(x, sr)
    if level is None:
        return x.copy(), None, 0.0
    gain_db = level_dbfs - level
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 0:
        gain_db = min(gain_db, peak_dbfs - 20 * np.log10(peak))
    return (x * 10 ** (gain_db / 20)).astype(np.float32), level, float(gain_db)
