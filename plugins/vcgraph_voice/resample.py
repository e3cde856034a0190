"""Resampling: torchaudio's windowed-sinc (cached per rate pair and device) and a numpy fallback."""
from __future__ import annotations

import threading

import numpy as np
import torch
import torchaudio

_cache: dict[tuple[int, int, str], torchaudio.transforms.Resample] = {}
_lock = threading.Lock()


def resample(x: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """Band-limited resampling of a 1-D tensor on its own device."""
    if orig == new:
        return x
    key = (int(orig), int(new), str(x.device))
    with _lock:
        tr = _cache.get(key)
        if tr is None:
            tr = _cache[key] = torchaudio.transforms.Resample(orig, new).to(x.device)
    return tr(x)


def resample_linear(x: np.ndarray, orig: int, new: int) -> np.ndarray:
    """Linear-interpolation resampling (the simplified path: no filter, some aliasing)."""
    if orig == new:
        return x.astype(np.float32, copy=False)
    n = max(1, int(round(len(x) * new / orig)))
    t = np.arange(n, dtype=np.float64) * (orig / new)
    return np.interp(t, np.arange(len(x)), x).astype(np.float32)


def fit_length(x, n: int):
    """Trim or zero-pad the last axis to exactly ``n`` samples (tensor or array)."""
    m = x.shape[-1]
    if m == n:
        return x
    if m > n:
        return x[..., :n]
    if isinstance(x, torch.Tensor):
        return torch.nn.functional.pad(x, (0, n - m))
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, n - m)])
