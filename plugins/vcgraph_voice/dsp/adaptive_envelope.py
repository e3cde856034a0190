"""Pitch-adaptive spectral envelope in torch (the recipe of WORLD's CheapTrick, vectorised).

Each frame is windowed over three pitch periods (a Hann window 3/F0 long), so the window is
short enough to follow the envelope's changes in time and long enough that, after smoothing
over one harmonic spacing, the harmonics leave no ripple:

  1. window 3 periods long (power-normalised), the windowed segment's DC removed;
  2. power spectrum, its part below F0 folded back (DC correction);
  3. linear smoothing over 2/3 F0 along frequency;
  4. cepstral liftering: ``sin(pi f0 q) / (pi f0 q)`` smoothing and the ``q1`` recovery lifter
     ``(1 - 2 q1) + 2 q1 cos(2 pi f0 q)`` that undoes part of the smoothing's loss of peaks.

Unvoiced frames use :data:`UNVOICED_F0` (as CheapTrick does). Frames lie every ``hop`` samples,
frame ``t`` centred at sample ``t * hop``, the grid of ``torch.stft(center=True)``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

UNVOICED_F0 = 500.0   # the pitch assumed for unvoiced frames (CheapTrick's default)
Q1 = -0.15            # CheapTrick's recovery-lifter coefficient
_EPS = 1e-12


def min_f0(sr: int, n_fft: int) -> float:
    """The lowest F0 whose three-period window fits in ``n_fft`` samples at ``sr``."""
    return 3.0 * sr / (n_fft - 3)


def _frames(audio: torch.Tensor, n_fft: int, hop: int, n_frames: int) -> torch.Tensor:
    pad = n_fft // 2
    x = F.pad(audio[None, None], (pad, pad + n_fft), mode="constant")[0, 0]
    return x.unfold(0, n_fft, hop)[:n_frames]  # [T, n_fft], frame t centred at index pad


def _windows(f0: torch.Tensor, sr: int, n_fft: int) -> torch.Tensor:
    """Power-normalised Hann windows 3 periods long, centred in ``n_fft`` samples: [T, n_fft]."""
    n = torch.arange(n_fft, device=f0.device, dtype=torch.float32) - n_fft // 2
    half = 1.5 * sr / f0[:, None]                                   # half length in samples
    w = torch.where(n[None].abs() <= half, 0.5 + 0.5 * torch.cos(math.pi * n[None] / half),
                    torch.zeros((), device=f0.device))
    return w / w.square().sum(1, keepdim=True).sqrt()


def _fold_below_f0(power: torch.Tensor, f0: torch.Tensor, df: float) -> torch.Tensor:
    """Add the mirror image of the power below F0 about DC (CheapTrick's DC correction)."""
    Fb = power.shape[1]
    k = torch.arange(Fb, device=power.device, dtype=torch.float32)[None]
    f0_bins = (f0 / df)[:, None]
    # the value at bin k gets the power at bin (f0_bins - k) mirrored, for k < f0_bins
    src = (f0_bins - k).clamp(0, Fb - 1.001)
    i0 = src.floor().long()
    w = src - i0.float()
    mirrored = power.gather(1, i0) * (1 - w) + power.gather(1, i0 + 1) * w
    return power + torch.where(k < f0_bins, mirrored, torch.zeros((), device=power.device))


def _linear_smoothing(power: torch.Tensor, width_hz: torch.Tensor, df: float) -> torch.Tensor:
    """Mean of the power over ``width_hz`` around every bin (cumulative sums; mirrored edges)."""
    T, Fb = power.shape
    half = (0.5 * width_hz / df)[:, None]
    m = int(math.ceil(float(half.max()))) + 2
    m = min(m, Fb - 2)
    p = torch.cat([power[:, 1:m + 1].flip(1), power, power[:, -m - 1:-1].flip(1)], 1)
    C = F.pad(torch.cumsum(p.double(), 1), (1, 0))
    pos = torch.arange(Fb, device=power.device, dtype=torch.float64)[None] + m + 0.5

    def at(u):
        u = u.clamp(0, C.shape[1] - 1.001)
        i0 = u.floor().long()
        w = u - i0.double()
        return C.gather(1, i0) * (1 - w) + C.gather(1, i0 + 1) * w

    h = half.double()
    return ((at(pos + h) - at(pos - h)) / (2 * h)).float().clamp_min(_EPS)


def _lifter(power: torch.Tensor, f0: torch.Tensor, sr: int, n_fft: int) -> torch.Tensor:
    """Natural-log amplitude envelope from the smoothed power: cepstral smoothing + recovery."""
    c = torch.fft.irfft(torch.log(power + _EPS), n_fft)             # real cepstrum, even
    q = torch.arange(n_fft // 2 + 1, device=power.device, dtype=torch.float32)[None] / sr  # seconds
    x = math.pi * f0[:, None] * q
    smoothing = torch.where(q > 0, torch.sin(x) / x.clamp_min(1e-12), torch.ones_like(x))
    recovery = (1 - 2 * Q1) + 2 * Q1 * torch.cos(2 * x)
    ch = c[:, :n_fft // 2 + 1] * smoothing * recovery
    ch[:, 1:n_fft // 2] *= 2.0
    return 0.5 * torch.fft.rfft(ch, n_fft).real                     # log power -> log amplitude


def envelope(audio: torch.Tensor, f0: torch.Tensor, sr: int, n_fft: int, hop: int) -> torch.Tensor:
    """Log-amplitude envelope ``[T, n_fft // 2 + 1]`` (natural log) for F0 ``f0`` ``[T]`` (Hz,
    0 = unvoiced), on the frame grid of ``torch.stft(center=True)`` with ``hop``."""
    T = f0.shape[0]
    f = torch.where(f0 > 0, f0, torch.full_like(f0, UNVOICED_F0)).float().clamp_min(min_f0(sr, n_fft))
    seg = _frames(audio.float(), n_fft, hop, T)
    T = seg.shape[0]
    f = f[:T]
    w = _windows(f, sr, n_fft)
    xw = seg * w
    xw = xw - w * (xw.sum(1, keepdim=True) / w.sum(1, keepdim=True))  # the segment's DC removed
    X = torch.fft.rfft(xw, n_fft)
    power = X.real.square() + X.imag.square()
    df = sr / n_fft
    power = _fold_below_f0(power, f, df)
    power = _linear_smoothing(power, f * 2.0 / 3.0, df)
    return _lifter(power, f, sr, n_fft)
