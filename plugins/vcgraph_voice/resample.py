"""Resampling: torchaudio's windowed-sinc (kernels kept by a :class:`Resampler`), the FFT, and a numpy fallback."""
from __future__ import annotations

import math
import threading
from collections import OrderedDict

import numpy as np
import torch
import torchaudio

#: torchaudio's polyphase kernel has (new/g) x (orig/g + filter) taps, g = gcd(orig, new): for
#: coprime rates (17123 -> 22050 Hz) that is billions of values, so such pairs use the FFT
MAX_KERNEL_TAPS = 1_000_000
def kernel_taps(orig: int, new: int, lowpass_filter_width: int = 6, rolloff: float = 0.99) -> int:
    """How many values torchaudio's resampling kernel for ``orig -> new`` holds."""
    g = math.gcd(int(orig), int(new))
    o, n = int(orig) // g, int(new) // g
    width = math.ceil(lowpass_filter_width * o / (min(o, n) * rolloff))
    return n * (2 * width + o)


class Resampler:
    """Band-limited resampling of 1-D tensors on their own device, keeping the windowed-sinc
    kernels of the last ``cache_size`` rate pairs (per device) it built.

    Held by its owner (the pre- and post-processing stages build one in ``setup``); building
    and the cache are under a lock, so threads may share one. ``kernel_dtype``: the kernels'
    precision (``None``: torchaudio.transforms' float64; ``torch.float32``: that of
    ``torchaudio.functional.resample`` on float32 audio, whose output it then equals bit for bit).
    """

    def __init__(self, cache_size: int = 32, kernel_dtype: torch.dtype | None = None):
        self.cache_size = int(cache_size)
        self.kernel_dtype = kernel_dtype
        self._cache: "OrderedDict[tuple[int, int, str], torchaudio.transforms.Resample]" = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, x: torch.Tensor, orig: int, new: int) -> torch.Tensor:
        if orig == new:
            return x
        if kernel_taps(orig, new) > MAX_KERNEL_TAPS:
            return resample_fft(x, orig, new)
        key = (int(orig), int(new), str(x.device))
        with self._lock:
            tr = self._cache.get(key)
            if tr is None:
                tr = self._cache[key] = torchaudio.transforms.Resample(orig, new, dtype=self.kernel_dtype).to(x.device)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(key)
        return tr(x)


def resample(x: torch.Tensor, orig: int, new: int, resampler: Resampler | None = None) -> torch.Tensor:
    """Band-limited resampling of a 1-D tensor on its own device (windowed sinc for rate pairs
    with a small kernel, the FFT for the others); ``resampler`` keeps the kernels it builds
    (without one, the kernel is built for this call)."""
    return (resampler or Resampler(cache_size=1))(x, orig, new)


def resample_fft(x: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """Resampling in the frequency domain: any rate pair, memory linear in the length."""
    n = x.shape[-1]
    m = max(1, int(round(n * new / orig)))
    if n == 0:
        return x.new_zeros(x.shape[:-1] + (0,))
    spec = torch.fft.rfft(x.double() if x.device.type == "cpu" else x)
    bins = m // 2 + 1
    if spec.shape[-1] >= bins:
        spec = spec[..., :bins]
    else:
        spec = torch.nn.functional.pad(spec, (0, bins - spec.shape[-1]))
    return (torch.fft.irfft(spec, n=m) * (m / n)).to(x.dtype)


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
