"""F0 trackers for the fast voice converter.

`track_f0` is a vectorised YIN (cumulative-mean-normalised difference function computed
with FFTs over all frames at once) in plain torch, so it runs on CPU or CUDA without
per-frame Python loops. `track_f0_world` wraps pyworld DIO + StoneMask (CPU, numpy) for
comparison. Both return `(f0_hz [frames], voiced [frames] bool)` on the frame grid
`t_i = i * hop_length / sr` with `frames = len(audio) // hop_length + 1`.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..resample import Resampler
from . import f0range

__all__ = ["track_f0", "track_f0_world", "n_frames"]


def n_frames(n_samples: int, hop_length: int) -> int:
    return n_samples // hop_length + 1


SILENCE_FLOOR_DBFS = -80.0  # frames quieter than this are never voiced (digital silence has no pitch)


def _median_filter(x: torch.Tensor, k: int) -> torch.Tensor:
    if k <= 1:
        return x
    p = k // 2
    xp = F.pad(x[None, None], (p, p), mode="replicate")[0, 0]
    return xp.unfold(0, k, 1).median(dim=-1).values


def track_f0(audio: torch.Tensor, sr: int, hop_length: int, f0_min: float = f0range.KERNEL.floor,
             f0_max: float = f0range.KERNEL.ceil, threshold: float = 0.2, voicing_threshold: float = 0.35,
             analysis_sr: int = 8000, silence_db: float = -50.0,
             floor_dbfs: float = SILENCE_FLOOR_DBFS, return_prob: bool = False, resampler=None):
    """YIN F0 in torch.

    audio: 1-D float tensor (any device). Returns f0 (Hz, 0 where unvoiced) and voiced
    (bool), both [n_frames(len(audio), hop_length)], on audio's device. With
    return_prob=True a third tensor (periodicity 1 - min CMNDF, in 0..1) is returned.
    The signal is first resampled to `analysis_sr` (8 kHz: enough for speech F0, and cheaper),
    by `resampler` (a :class:`~vcgraph_voice.resample.Resampler` that keeps its kernels; without
    one, a kernel is built for this call).
    """
    x = audio.float().reshape(-1)
    dev = x.device
    n_out = n_frames(x.numel(), hop_length)
    if analysis_sr and sr > analysis_sr:
        x = (resampler or Resampler(cache_size=1, kernel_dtype=torch.float32))(x, sr, analysis_sr)
        fs = analysis_sr
    else:
        fs = sr
    hop = hop_length * fs / sr  # fractional hop at the analysis rate
    tau_min = max(2, int(math.floor(fs / f0_max)))
    tau_max = int(math.ceil(fs / f0_min)) + 1
    W = tau_max  # integration window: one period of the lowest F0
    L = W + tau_max
    # frame centres at i*hop (in analysis samples), window [c - L/2, c + L/2)
    pad = L // 2 + 1
    xp = F.pad(x[None, None], (pad, pad + L), mode="constant")[0, 0]
    starts = (torch.arange(n_out, device=dev, dtype=torch.float64) * hop).round().long() + pad - L // 2
    idx = starts[:, None] + torch.arange(L, device=dev)[None, :]
    fr = xp[idx]  # [T, L]
    fr = fr - fr.mean(dim=1, keepdim=True)
    # difference function d(tau) = sum_{j<W} (x_j - x_{j+tau})^2
    #   = e0 + e_tau - 2 r(tau), r via FFT cross-correlation of first W samples with frame
    nfft = 1 << int(math.ceil(math.log2(L + W)))
    A = torch.fft.rfft(fr[:, :W], nfft)
    B = torch.fft.rfft(fr, nfft)
    r = torch.fft.irfft(B * A.conj(), nfft)[:, : tau_max + 1]  # r[tau] = sum_j a_j b_{j+tau}
    sq = fr * fr
    cs = F.pad(torch.cumsum(sq, dim=1), (1, 0))
    taus = torch.arange(tau_max + 1, device=dev)
    e0 = cs[:, W : W + 1]
    et = cs[:, taus + W] - cs[:, taus]
    d = (e0 + et - 2 * r).clamp_min(0)
    d[:, 0] = 0
    # cumulative mean normalised difference
    csum = torch.cumsum(d[:, 1:], dim=1)
    cmnd = torch.ones_like(d)
    cmnd[:, 1:] = d[:, 1:] * taus[1:].to(d) / csum.clamp_min(1e-12)
    cm = cmnd[:, tau_min : tau_max]  # candidate lags
    # first local minimum below threshold, else the global minimum
    left = cmnd[:, tau_min - 1 : tau_max - 1]
    right = cmnd[:, tau_min + 1 : tau_max + 1]
    is_min = (cm <= left) & (cm <= right)
    below = is_min & (cm < threshold)
    has = below.any(dim=1)
    first = torch.argmax(below.to(torch.int8), dim=1)
    gmin = torch.argmin(cm, dim=1)
    k = torch.where(has, first, gmin)
    # parabolic interpolation around the chosen lag
    kk = (k + tau_min).clamp(1, tau_max - 1)
    rows = torch.arange(cm.shape[0], device=dev)
    y0, y1, y2 = cmnd[rows, kk - 1], cmnd[rows, kk], cmnd[rows, kk + 1]
    den = y0 - 2 * y1 + y2
    delta = torch.where(den.abs() > 1e-9, 0.5 * (y0 - y2) / den, torch.zeros_like(den)).clamp(-1, 1)
    tau = kk.to(torch.float32) + delta
    f0 = fs / tau
    dmin = (y1 - 0.25 * (y0 - y2) * delta).clamp(0, 1)
    prob = 1.0 - dmin
    # voicing: periodic enough, inside range, not silent
    rms = torch.sqrt(sq[:, (L - W) // 2 : (L + W) // 2].mean(dim=1) + 1e-12)
    db = 20 * torch.log10(rms + 1e-9)
    gate = (db > db.max() + silence_db) & (db > floor_dbfs)  # relative gate alone voices an all-silent file
    voiced = (dmin < voicing_threshold) & gate & (f0 >= f0_min * 0.97) & (f0 <= f0_max * 1.03)
    # clean-up: remove octave errors by median filtering log-F0 over voiced runs,
    # and isolated voicing flips
    v = _median_filter(voiced.float(), 3) > 0.5
    lf = torch.log(f0.clamp(f0_min, f0_max))
    # fill unvoiced with neighbours' median so the median filter sees voiced values only
    med = lf[v].median() if bool(v.any()) else torch.tensor(math.log(120.0), device=dev)
    lf_fill = torch.where(v, lf, med)
    lf_s = _median_filter(lf_fill, 5)
    # keep the raw value unless it is an octave-ish outlier
    lf = torch.where((lf - lf_s).abs() > 0.25, lf_s, lf)
    f0 = torch.where(v, torch.exp(lf), torch.zeros_like(lf))
    if return_prob:
        return f0, v, prob
    return f0, v


def track_f0_world(audio, sr: int, hop_length: int, f0_min: float = f0range.KERNEL.floor,
                   f0_max: float = f0range.KERNEL.ceil):
    """pyworld DIO + StoneMask (:func:`dsp.world.f0`) on the same frame grid (CPU, for comparison)."""
    from .world import f0 as dio_stonemask

    dev = audio.device if isinstance(audio, torch.Tensor) else torch.device("cpu")
    x = audio.detach().cpu().double().numpy().reshape(-1) if isinstance(audio, torch.Tensor) else np.asarray(audio, np.float64)
    period = 1000.0 * hop_length / sr
    f0, _ = dio_stonemask(x, sr, period, f0_min, f0_max)
    n = n_frames(len(x), hop_length)
    out = np.zeros(n, np.float32)
    m = min(n, len(f0))
    out[:m] = f0[:m]
    f = torch.from_numpy(out).to(dev)
    return f, f > 0
