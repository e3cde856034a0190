"""Causal running estimates for streaming: what offline conversion measures over a whole
utterance, estimated from the frames seen so far.

* :class:`RunningMoments`: exponentially forgetting mean / standard deviation of scalars or
  vectors over the frames a mask selects, shrunk toward a prior that rules the first frames.
* :class:`PeakTracker`: a running level reference in dB (instant attack, slow linear decay),
  the streaming stand-in for "the loudest part of the utterance".
"""
from __future__ import annotations

import math

import torch

__all__ = ["RunningMoments", "PeakTracker"]


class RunningMoments:
    """Forgetting weighted mean / std of ``x`` (scalar or ``[D]`` per frame), shrunk to a prior.

    ``mean = (S1 + n_mean * prior_mean) / (W + n_mean)`` and the variance likewise with
    ``n_std``, where ``W``, ``S1``, ``S2`` are the frames' forgetting sums (time constant
    ``tau_frames`` counted frames): the prior rules until about ``n_*`` frames were counted
    and fades as ``W`` grows (``W`` tends to ``tau_frames``).
    """

    def __init__(self, mean, std, n_mean: float, n_std: float, tau_frames: float, device="cpu"):
        self.mean0 = torch.as_tensor(mean, dtype=torch.float32, device=device)
        self.var0 = torch.as_tensor(std, dtype=torch.float32, device=device) ** 2
        self.n_mean, self.n_std = float(n_mean), float(n_std)
        self.lam = math.exp(-1.0 / max(tau_frames, 1.0))
        self.w = torch.zeros((), device=device)
        self.s1 = torch.zeros_like(self.mean0)
        self.s2 = torch.zeros_like(self.mean0)
        self.count = 0.0  # counted frames, without forgetting

    def update(self, x: torch.Tensor, mask: torch.Tensor, clip_sd: float | None = None) -> None:
        """Add the frames of ``x`` (``[T]`` or ``[T, D]``) where ``mask`` (``[T]`` bool) is true;
        with ``clip_sd``, each value clipped to the current mean +- that many deviations first
        (one octave error must not move a short stream's estimate far)."""
        if clip_sd is not None:
            mu, sd = self.mean, self.std
            x = torch.minimum(torch.maximum(x, mu - clip_sd * sd), mu + clip_sd * sd)
        m = mask.to(x.dtype)
        after = torch.flip(torch.cumsum(torch.flip(m, [0]), 0), [0]) - m  # counted frames after each
        wj = (self.lam ** after) * m  # [T]: recent frames weigh most
        n = m.sum()
        dec = self.lam ** n
        wx = wj[:, None] if x.ndim == 2 else wj
        self.w = self.w * dec + wj.sum()
        self.s1 = self.s1 * dec + (wx * x).sum(0)
        self.s2 = self.s2 * dec + (wx * x * x).sum(0)
        self.count += float(n)

    @property
    def data_mean(self) -> torch.Tensor:
        """The frames' own mean (no prior; zero before any frame)."""
        return self.s1 / self.w.clamp_min(1e-6)

    @property
    def mean(self) -> torch.Tensor:
        return (self.s1 + self.n_mean * self.mean0) / (self.w + self.n_mean).clamp_min(1e-6)

    @property
    def std(self) -> torch.Tensor:
        mu = self.data_mean
        var = (self.s2 / self.w.clamp_min(1e-6) - mu * mu).clamp_min(0)
        return torch.sqrt((self.w * var + self.n_std * self.var0) / (self.w + self.n_std).clamp_min(1e-6))


class PeakTracker:
    """Running peak level in dB: jumps up to a louder frame, decays ``decay_db_per_s``."""

    def __init__(self, frames_per_s: float, decay_db_per_s: float = 3.0, floor_db: float = -120.0):
        self.decay = decay_db_per_s / frames_per_s
        self.level = floor_db

    def update(self, db: torch.Tensor) -> torch.Tensor:
        """The reference level after each frame of ``db`` (``[T]``), as a tensor on its device."""
        vals = db.detach().float().cpu().tolist()
        out = []
        level = self.level
        for v in vals:
            level = max(v, level - self.decay)
            out.append(level)
        self.level = level
        return torch.tensor(out, dtype=torch.float32, device=db.device)
