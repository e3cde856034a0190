"""The plugin's one mel filterbank, and the log-mel spectrogram built on it.

:func:`filterbank` is librosa's ``filters.mel`` arithmetic (float64, stored as float32) for
both mel scales: ``slaney`` with Slaney area normalisation (the quality and fast methods'
matching and statistics bands) and ``htk`` without normalisation (the feature stages'
``mel`` port, which is torchaudio's ``MelSpectrogram`` default). Owners build the tables they
need once and keep them (:class:`LogMelSpectrogram` is an ``nn.Module`` like torchaudio's
transforms). The content model's front end keeps torchaudio's own transform: it is part of
the trained model (``content_model.py``).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

_F_SP = 200.0 / 3            # Slaney scale: linear below 1 kHz ...
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0  # ... logarithmic above


def hz_to_mel(hz, htk: bool = False) -> np.ndarray:
    hz = np.asanyarray(hz, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    mel = hz / _F_SP
    return np.where(hz >= _MIN_LOG_HZ, _MIN_LOG_MEL + np.log(np.maximum(hz, 1e-300) / _MIN_LOG_HZ) / _LOGSTEP, mel)


def mel_to_hz(mel, htk: bool = False) -> np.ndarray:
    mel = np.asanyarray(mel, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    hz = _F_SP * mel
    return np.where(mel >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL)), hz)


def filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None,
               htk: bool = False, norm: str | None = "slaney") -> np.ndarray:
    """Triangular mel filters ``(n_mels, n_fft // 2 + 1)`` float32 (rows: bands)."""
    fmax = float(sr) / 2 if fmax is None else float(fmax)
    freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, freqs)
    lower = -ramps[:n_mels] / fdiff[:n_mels, None]
    upper = ramps[2:n_mels + 2] / fdiff[1:n_mels + 1, None]
    weights = np.maximum(0, np.minimum(lower, upper)).astype(np.float32)
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    elif norm is not None:
        raise ValueError(f"unknown mel norm {norm!r}")
    return weights


class LogMelSpectrogram(nn.Module):
    """Waveform ``[n]`` -> natural-log power mel spectrogram ``(n_mels, frames)``.

    Centred Hann STFT (reflect padding), power 2, HTK-scale filters from 0 Hz to Nyquist,
    ``log(mel + 1e-6)``: what the feature stages' ``mel`` port carries.
    """

    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, n_mels: int) -> None:
        super().__init__()
        self.sample_rate, self.n_fft, self.hop_length = int(sample_rate), int(n_fft), int(hop_length)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        fb = filterbank(self.sample_rate, self.n_fft, n_mels, 0.0, self.sample_rate / 2, htk=True, norm=None)
        self.register_buffer("fb", torch.from_numpy(fb.T.copy()), persistent=False)  # (bins, n_mels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(x, self.n_fft, self.hop_length, window=self.window, center=True, pad_mode="reflect",
                          return_complex=True).abs().pow(2.0)
        return torch.log(torch.matmul(spec.transpose(-1, -2), self.fb).transpose(-1, -2) + 1e-6)
