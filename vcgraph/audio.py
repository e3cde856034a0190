"""A plain audio value and file I/O (soundfile), for graph inputs and outputs."""
from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np


class Audio(NamedTuple):
    """Samples with their rate. ``samples`` is ``(frames,)`` mono or ``(frames, channels)``."""

    samples: np.ndarray
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / float(self.sample_rate)


def read_audio(path: str | os.PathLike) -> Audio:
    """Read a sound file (wav, flac, ogg, ...) as float32."""
    import soundfile as sf
    from .errors import UserError
    try:
        samples, rate = sf.read(os.fspath(path), dtype="float32", always_2d=False)
    except Exception as exc:  # soundfile raises several types for unreadable files
        raise UserError(f"cannot read audio file {os.fspath(path)}: {exc}") from None
    return Audio(samples, int(rate))


def write_audio(path: str | os.PathLike, audio: Audio) -> None:
    """Write ``audio`` as a 16-bit PCM file (format from the extension; wav by default)."""
    import soundfile as sf
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
    sf.write(os.fspath(path), np.asarray(audio.samples, dtype=np.float32), int(audio.sample_rate),
             subtype="PCM_16")
