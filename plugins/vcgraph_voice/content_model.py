"""The content encoder: speaker-normalised log-mel frames -> phone-state posteriors and a
64-d bottleneck (a PPG), trained here on synthetic voices (``scripts/content_model/``).

``ContentFrontend`` owns its tables like a ``torchaudio.transforms`` module: 16 kHz log-mel,
10 ms frames (pocketsphinx's grid, so labels line up one to one), normalised per utterance.
``ContentEncoder`` is a small convolutional network with a bounded look-ahead
(``LOOKAHEAD_FRAMES``), so it can run block by block later. Weights are safetensors, loaded
without pickle; ``load_encoder`` checks names and shapes and says what is wrong, and gives the
model its ``identity`` (:func:`weights_identity`), which profiles record beside the content
features it made: features of two different encoders are not comparable.
"""
from __future__ import annotations

import hashlib
import json
import os

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from .errors import VoiceInputError
from .resample import Resampler

SAMPLE_RATE = 16000
HOP = 160                       # 10 ms
N_FFT = 512
WIN = 400
N_MELS = 80
N_PHONES = 40                   # pocketsphinx's 39 phones + silence (dsp/phones.PHONES)
N_STATES = 3
N_CLASSES = N_PHONES * N_STATES
BOTTLENECK = 64
CHANNELS = 128
DILATIONS = (1, 2, 4, 8, 1)
LOOKAHEAD_FRAMES = 3            # 2 in the input conv + 1 in the last block
WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "content-encoder.safetensors")


class ContentFrontend(nn.Module):
    """Waveform at any rate -> normalised log-mel ``(frames, N_MELS)`` at 100 frames/s."""

    def __init__(self) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=N_FFT, win_length=WIN,
                                                        hop_length=HOP, n_mels=N_MELS, f_min=20.0,
                                                        f_max=7600.0, power=2.0)
        self.resampler = Resampler(kernel_dtype=torch.float32)  # kept kernels, each rate to 16 kHz

    def log_mel(self, audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Un-normalised log-mel ``(frames, N_MELS)``; ``audio`` is 1-d."""
        x = audio.float().reshape(-1)
        if sample_rate != SAMPLE_RATE:
            x = self.resampler(x, int(sample_rate), SAMPLE_RATE)
        return torch.log(self.mel(x) + 1e-6).transpose(0, 1)

    @staticmethod
    def normalise(log_mel: torch.Tensor) -> torch.Tensor:
        """Per-utterance mean/variance normalisation over the louder frames (speaker and
        channel normalisation; silence does not set the statistics)."""
        energy = log_mel.mean(1)
        speech = energy > torch.quantile(energy, 0.3)
        ref = log_mel[speech] if int(speech.sum()) >= 10 else log_mel
        return (log_mel - ref.mean(0)) / ref.std(0).clamp_min(0.1)

    def forward(self, audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
        return self.normalise(self.log_mel(audio, sample_rate))


class _Block(nn.Module):
    def __init__(self, dilation: int, lookahead: int) -> None:
        super().__init__()
        self.pad = (2 * dilation - lookahead * dilation, lookahead * dilation)
        self.conv = nn.Conv1d(CHANNELS, CHANNELS, 3, dilation=dilation)
        self.norm = nn.LayerNorm(CHANNELS)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        y = self.conv(F.pad(h, self.pad))
        y = self.norm(y.transpose(1, 2)).transpose(1, 2)
        return h + F.gelu(y)


class ContentEncoder(nn.Module):
    """``(B, T, N_MELS)`` normalised log-mel -> ``(logits (B, T, N_CLASSES), bottleneck (B, T, 64))``."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Conv1d(N_MELS, CHANNELS, 5)
        self.blocks = nn.ModuleList(_Block(d, 1 if i == len(DILATIONS) - 1 else 0)
                                    for i, d in enumerate(DILATIONS))
        self.bottleneck = nn.Conv1d(CHANNELS, BOTTLENECK, 1)
        self.classifier = nn.Conv1d(BOTTLENECK, N_CLASSES, 1)

    def forward(self, mel: torch.Tensor):
        h = F.gelu(self.inp(F.pad(mel.transpose(1, 2), (2, 2))))
        for block in self.blocks:
            h = block(h)
        z = torch.tanh(self.bottleneck(h))
        return self.classifier(z).transpose(1, 2), z.transpose(1, 2)


def save_encoder(model: ContentEncoder, path: str, metadata: dict) -> None:
    """Write weights as safetensors with JSON-able ``metadata`` (recipe, accuracy)."""
    from safetensors.torch import save_file
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, path, metadata={"vcgraph": json.dumps(metadata)})


def load_encoder(path: str = WEIGHTS, device: str | torch.device = "cpu") -> ContentEncoder:
    """The trained encoder in eval mode; a missing or corrupt file is a clear error."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    if not os.path.isfile(path):
        raise VoiceInputError(f"content-model weights not found: {path} (reinstall vcgraph-voice, "
                              f"or train them: python scripts/content_model/train.py)")
    try:
        state = load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise VoiceInputError(f"{path}: not a valid content-model weights file ({exc})") from None
    model = ContentEncoder()
    expected = model.state_dict()
    problems = [k for k in expected if k not in state or state[k].shape != expected[k].shape]
    if problems or set(state) - set(expected):
        raise VoiceInputError(f"{path}: weights do not fit this content model "
                              f"(mismatched: {', '.join(sorted(problems or set(state) - set(expected))[:4])})")
    model.load_state_dict(state)
    model = model.eval().to(device)
    model.identity = weights_identity(state)
    return model


def weights_identity(state: dict[str, torch.Tensor]) -> bytes:
    """8 bytes of the SHA-256 of the weights (names, shapes, float32 values): the same for the
    same network whatever file or metadata carries it."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu", torch.float32).contiguous()
        h.update(name.encode()); h.update(str(tuple(t.shape)).encode()); h.update(t.numpy().tobytes())
    return h.digest()[:8]


def weights_metadata(path: str = WEIGHTS) -> dict:
    """The metadata saved with the weights (recipe, data, accuracy)."""
    from safetensors import safe_open
    with safe_open(path, "pt") as fh:
        return json.loads((fh.metadata() or {}).get("vcgraph", "{}"))
