"""Speech-like test signals (a glottal pulse train through moving formants, plus noise)."""
from __future__ import annotations

import numpy as np


def speech_like(seconds: float, sample_rate: int, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """A voiced signal with a gliding F0 and three moving formant resonances, some noise bursts."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))  # n / sr * sr can fall a hair under n
    if n <= 0:
        return np.zeros(0, np.float32)
    t = np.arange(n) / sample_rate
    f0_track = f0 * (1 + 0.15 * np.sin(2 * np.pi * 1.3 * t))
    phase = 2 * np.pi * np.cumsum(f0_track) / sample_rate
    x = np.zeros(n)
    for h in range(1, 30):
        freq = h * f0_track
        amp = np.where(freq < sample_rate / 2 - 200, 1.0 / h, 0.0)
        for formant, bw in ((500 + 200 * np.sin(2 * np.pi * 2 * t), 90), (1500 + 300 * np.cos(2 * np.pi * 1.7 * t), 120), (2500, 160)):
            amp = amp + 3.0 / h / (1 + ((freq - formant) / bw) ** 2)
        x += amp * np.sin(h * phase)
    gate = (np.sin(2 * np.pi * 2.5 * t) > -0.6).astype(float)
    x = x * gate + 0.05 * rng.standard_normal(n) * (1 - gate)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)
