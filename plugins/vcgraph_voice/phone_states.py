"""Phone-state posteriors from pocketsphinx's shipped English acoustic model, in torch.

The content encoder of this repository was trained on synthetic voices; pocketsphinx's en-us
model (a phonetically tied mixture model: 42 phone codebooks of 128 Gaussians over three
13-d streams, cepstra and their deltas) was trained on the speech of many real speakers. Its
126 context-independent phone-state (senone) posteriors per 10 ms frame are a second,
independent view of what is being said, which the content preset matches on beside the
encoder's bottleneck (``phone_states`` in its config).

Only the model's files are read (``means``, ``variances``, ``sendump``); no recogniser runs,
nothing is decoded, and it works on any torch device. The front end follows the model's
``feat.params``: 16 kHz, 25.6 ms Hamming windows every 10 ms, pre-emphasis 0.97, 25 mel filters
over 130-6800 Hz, DCT to 13 cepstra liftered by 22, the utterance's cepstral mean removed,
deltas over +-2 frames and double deltas (so each frame looks 30 ms ahead).

    model = load_phone_states()
    post = model(audio_16k)            # (frames, 126) posteriors, frame t centred at t * 10 ms
"""
from __future__ import annotations

import math
import os
import struct
from functools import lru_cache

import numpy as np
import torch
import torch.nn as nn

from .errors import VoiceInputError

SAMPLE_RATE = 16000
HOP = 160
WINDOW = 410
N_FFT = 512
N_CODEBOOKS = 42            # base phones of the model (fillers and SIL included)
N_STATES = 3
N_PHONE_STATES = N_CODEBOOKS * N_STATES   # the context-independent senones, first in the model
SILENCE = 32                # the model's phone index of SIL
_LOG_BASE = 1024 * math.log(1.0001)       # sendump stores -log weights, logmath base 1.0001, >> 10


def model_dir() -> str:
    """The en-us acoustic model shipped in the pocketsphinx wheel."""
    try:
        import pocketsphinx
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise VoiceInputError("phone-state posteriors need pocketsphinx (pip install pocketsphinx)") from e
    return os.path.join(pocketsphinx.get_model_path(), "en-us", "en-us")


def _read_gaussians(path: str) -> np.ndarray:
    """A sphinx ``means``/``variances`` file: ``(streams, codebooks, densities, 13)``."""
    with open(path, "rb") as f:
        data = f.read()
    end = data.find(b"endhdr\n")
    if end < 0:
        raise VoiceInputError(f"{path}: not a sphinx parameter file (no header)")
    pos = end + len(b"endhdr\n")
    magic, n_cb, n_stream, n_dens = struct.unpack("<IIII", data[pos:pos + 16])
    if magic != 0x11223344:
        raise VoiceInputError(f"{path}: unexpected byte order mark {magic:#x}")
    pos += 16
    lens = struct.unpack(f"<{n_stream}I", data[pos:pos + 4 * n_stream])
    pos += 4 * n_stream
    (n,) = struct.unpack("<I", data[pos:pos + 4])
    pos += 4
    if (n_cb, n_stream, n_dens, lens) != (N_CODEBOOKS, 3, 128, (13, 13, 13)) or len(data) < pos + 4 * n:
        raise VoiceInputError(f"{path}: not the expected PTM model (codebooks {n_cb}, streams {lens}, "
                              f"{len(data) - pos} bytes of values for {n})")
    values = np.frombuffer(data[pos:pos + 4 * n], "<f4").reshape(n_cb, n_stream, n_dens, 13)
    return values.transpose(1, 0, 2, 3).copy()


def _read_mixture_weights(path: str) -> np.ndarray:
    """``sendump``: quantised mixture weights; the CI senones' as ``(streams, 126, 128)`` weights."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while True:  # length-prefixed header strings, ended by a zero length
        if pos + 4 > len(data):
            raise VoiceInputError(f"{path}: truncated header")
        (n,) = struct.unpack("<i", data[pos:pos + 4])
        pos += 4
        if n == 0:
            break
        pos += n
    n_dens, n_sen = struct.unpack("<ii", data[pos:pos + 8])
    pos += 8
    if n_dens != 128 or n_sen < N_PHONE_STATES or len(data) - pos != 3 * n_dens * n_sen:
        raise VoiceInputError(f"{path}: unexpected mixture weights ({n_dens} densities, {n_sen} senones, "
                              f"{len(data) - pos} bytes)")
    raw = np.frombuffer(data[pos:], np.uint8).reshape(3, n_dens, n_sen)[:, :, :N_PHONE_STATES]
    return np.exp(-raw.astype(np.float64) * _LOG_BASE).transpose(0, 2, 1).astype(np.float32)


class PhoneStates(nn.Module):
    """16 kHz audio -> ``(frames, 126)`` phone-state posteriors (the model's own front end)."""

    def __init__(self, means: np.ndarray, variances: np.ndarray, weights: np.ndarray) -> None:
        super().__init__()
        var = torch.from_numpy(variances).clamp_min(1e-4).reshape(3, -1, 13)   # (3, 42*128, 13)
        mu = torch.from_numpy(means).reshape(3, -1, 13)
        const = -0.5 * ((mu * mu / var).sum(-1, keepdim=True) + torch.log(2 * math.pi * var).sum(-1, keepdim=True))
        # log N(x) = [x^2, x, 1] . [-1/(2 var), mu/var, const]: one product per stream
        self.register_buffer("gauss", torch.cat([-0.5 / var, mu / var, const], -1).transpose(1, 2).contiguous())
        self.register_buffer("weights", torch.from_numpy(weights))   # (3, 126, 128)
        self.register_buffer("window", torch.hamming_window(WINDOW, periodic=False))
        self.register_buffer("mel", torch.from_numpy(_mel_filters()))
        self.register_buffer("dct", torch.from_numpy(_liftered_dct()))

    def cepstra(self, audio: torch.Tensor) -> torch.Tensor:
        """``(frames, 13)`` liftered mel cepstra, frame ``t`` centred at sample ``t * 160``."""
        x = audio.float().reshape(-1) * 32768.0
        x = torch.cat([x[:1], x[1:] - 0.97 * x[:-1]])
        pad = WINDOW // 2
        if x.numel() <= pad:
            x = nn.functional.pad(x, (0, pad + 1 - x.numel()))
        return self.framed_cepstra(nn.functional.pad(x[None, None], (pad, pad), mode="reflect")[0, 0])

    def framed_cepstra(self, padded: torch.Tensor) -> torch.Tensor:
        """Cepstra of every whole window of pre-emphasised, 16-bit-scaled samples (windows
        ``HOP`` apart from ``padded``'s first sample)."""
        frames = padded.unfold(0, WINDOW, HOP) * self.window
        power = torch.fft.rfft(frames, N_FFT).abs() ** 2
        return torch.log((power @ self.mel.T).clamp_min(1e-5)) @ self.dct.T

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        c = self.cepstra(audio)
        return self.posteriors(c - c.mean(0))   # the utterance's cepstral mean ("cmn batch")

    def posteriors(self, c: torch.Tensor, first: int = 0, last: int | None = None) -> torch.Tensor:
        """Posteriors of frames ``first .. last - 1`` of mean-removed cepstra ``c`` (deltas
        read up to 3 frames each side, clamped at ``c``'s ends)."""
        n = c.shape[0]
        last = n if last is None else last
        t = torch.arange(first, last, device=c.device)
        at = lambda o: c[(t + o).clamp(0, n - 1)]
        streams = (at(0), at(2) - at(-2), (at(3) - at(-1)) - (at(1) - at(-3)))
        T = last - first
        score = 0.0
        for j, x in enumerate(streams):
            g = (torch.cat([x * x, x, torch.ones_like(x[:, :1])], 1) @ self.gauss[j]).reshape(T, N_CODEBOOKS, 128)
            top = g.max(2, keepdim=True).values
            # each phone's three states mix its own codebook's densities
            mix = torch.einsum("tck,csk->tcs", (g - top).exp(), self.weights[j].reshape(N_CODEBOOKS, N_STATES, 128))
            score = score + (torch.log(mix.clamp_min(1e-30)) + top).reshape(T, N_PHONE_STATES)
        return torch.softmax(score, -1)


def _mel_filters(n_filters: int = 25, low: float = 130.0, high: float = 6800.0) -> np.ndarray:
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)
    hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    edges = hz(np.linspace(mel(low), mel(high), n_filters + 2))
    freqs = np.arange(N_FFT // 2 + 1) * SAMPLE_RATE / N_FFT
    out = np.zeros((n_filters, freqs.size), np.float32)
    for i in range(n_filters):
        lo, mid, hi = edges[i:i + 3]
        out[i] = np.maximum(0.0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid))) * 2 / (hi - lo)
    return out


def _liftered_dct(n_ceps: int = 13, n_filters: int = 25, lifter: int = 22) -> np.ndarray:
    n = np.arange(n_filters)
    dct = np.cos(np.pi * np.arange(n_ceps)[:, None] * (n[None] + 0.5) / n_filters) * np.sqrt(2.0 / n_filters)
    dct[0] *= np.sqrt(0.5)
    lift = 1.0 + lifter / 2.0 * np.sin(np.pi * np.arange(n_ceps) / lifter)
    return (dct * lift[:, None]).astype(np.float32)


def read_model(directory: str | None = None) -> PhoneStates:
    """The model from ``directory`` (default: pocketsphinx's en-us); a clear error if its files
    are missing or not what this reader expects."""
    d = directory or model_dir()
    paths = {name: os.path.join(d, name) for name in ("means", "variances", "sendump")}
    missing = [p for p in paths.values() if not os.path.isfile(p)]
    if missing:
        raise VoiceInputError(f"pocketsphinx's acoustic model is incomplete: missing {', '.join(missing)}")
    try:
        model = PhoneStates(_read_gaussians(paths["means"]), _read_gaussians(paths["variances"]),
                            _read_mixture_weights(paths["sendump"]))
    except (struct.error, ValueError) as e:
        raise VoiceInputError(f"cannot read pocketsphinx's acoustic model in {d}: {e}") from e
    return model.eval()


@lru_cache(maxsize=4)
def load_phone_states(device: str = "cpu") -> PhoneStates:
    """The shipped model on ``device``, read once per process."""
    return read_model().to(device)
