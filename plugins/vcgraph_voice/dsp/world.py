"""WORLD analysis/synthesis helpers around pyworld.

All arrays are float64 as pyworld expects; ``sp`` is the CheapTrick power envelope
(frames x fft_size//2+1), ``ap`` the D4C band aperiodicity on the same grid.
"""
from __future__ import annotations

import functools

import numpy as np

from . import f0range

F0_FLOOR = f0range.KERNEL.floor
F0_CEIL = f0range.KERNEL.ceil


@functools.cache
def _pw():
    """pyworld, imported on first use: only the quality preset needs it, and importing it (with
    the pkg_resources it loads) costs every other command about 0.1-0.2 s of start-up."""
    import pyworld
    return pyworld


def fft_size(sr: int) -> int:
    """The FFT size CheapTrick uses at ``sr`` (with :data:`f0range.CHEAPTRICK_FLOOR`)."""
    return int(_pw().get_cheaptrick_fft_size(sr, f0range.CHEAPTRICK_FLOOR))


def f0(audio: np.ndarray, sr: int, frame_period_ms: float = 5.0,
       f0_floor: float = F0_FLOOR, f0_ceil: float = F0_CEIL):
    """DIO + StoneMask F0 (Hz, 0 where unvoiced) and the frame times (s).

    The plugin's one DIO/StoneMask wrapper (the fast method's ``f0_method: dio`` and
    ``vcgraph eval``'s F0 statistics call it too)."""
    x = np.ascontiguousarray(audio, dtype=np.float64)
    f, t = _pw().dio(x, sr, f0_floor=f0_floor, f0_ceil=f0_ceil, frame_period=frame_period_ms)
    f = _pw().stonemask(x, f, t, sr)
    return f, t


def analyze(audio: np.ndarray, sr: int, frame_period_ms: float = 5.0,
            f0_floor: float = F0_FLOOR, f0_ceil: float = F0_CEIL, given_f0: np.ndarray | None = None):
    """Return ``(f0, sp, ap)``: DIO/StoneMask F0, CheapTrick envelope, D4C aperiodicity.

    ``given_f0`` (Hz per frame, 0 = unvoiced, on this frame grid) replaces the F0 tracking.
    """
    x = np.ascontiguousarray(audio, dtype=np.float64)
    if given_f0 is None:
        f, t = f0(x, sr, frame_period_ms, f0_floor, f0_ceil)
    else:
        f = np.ascontiguousarray(given_f0, dtype=np.float64)
        t = np.arange(len(f)) * frame_period_ms / 1000.0
    n_fft = fft_size(sr)
    sp = _pw().cheaptrick(x, f, t, sr, f0_floor=f0range.CHEAPTRICK_FLOOR, fft_size=n_fft)
    ap = _pw().d4c(x, f, t, sr, fft_size=n_fft)
    return f, sp, ap


def synthesize(f0: np.ndarray, sp: np.ndarray, ap: np.ndarray, sr: int,
               frame_period_ms: float = 5.0, n_samples: int | None = None) -> np.ndarray:
    """WORLD synthesis; trimmed or zero-padded to ``n_samples`` when given. Returns float32."""
    y = _pw().synthesize(np.ascontiguousarray(f0, dtype=np.float64),
                         np.ascontiguousarray(sp, dtype=np.float64),
                         np.ascontiguousarray(ap, dtype=np.float64), sr, frame_period_ms)
    if n_samples is not None:
        if len(y) >= n_samples:
            y = y[:n_samples]
        else:
            y = np.concatenate([y, np.zeros(n_samples - len(y))])
    return y.astype(np.float32)
