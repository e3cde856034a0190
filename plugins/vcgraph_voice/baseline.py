"""The ``vcgraph bench`` baseline of the voice plugin: the plain transforms its stages build
on (resample to 22.05 kHz, STFT, 80-band mel, inverse STFT), so a graph's time reads as a
multiple of them."""
from __future__ import annotations

import numpy as np

RATE, N_FFT, HOP, N_MELS = 22050, 1024, 256, 80


class StftMel:
    """The baseline workload; the window and mel filterbank are built once, on first use."""

    def __init__(self):
        self._window = self._mel = None

    def __call__(self, audio) -> None:
        import torch
        import torchaudio
        if self._mel is None:
            self._window = torch.hann_window(N_FFT)
            self._mel = torchaudio.transforms.MelSpectrogram(RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)
        x = np.asarray(audio.samples, dtype=np.float32)
        if x.ndim == 2:
            x = x.mean(axis=1)
        y = torchaudio.functional.resample(torch.from_numpy(x), audio.sample_rate, RATE)
        spec = torch.stft(y, N_FFT, HOP, window=self._window, return_complex=True)
        self._mel.mel_scale(spec.abs() ** 2)
        torch.istft(spec, N_FFT, HOP, window=self._window, length=y.shape[-1])
