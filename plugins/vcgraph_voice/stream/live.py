"""Live audio (microphone in, speakers out) through the optional ``sounddevice`` package.

``pip install 'vcgraph-voice[live]'`` installs it; it needs the PortAudio library and an audio
device. Without either, :func:`open_sounddevice` raises a :class:`VoiceInputError` that says
what is missing.
"""
from __future__ import annotations

import time

import numpy as np

from ..errors import VoiceInputError

INSTALL_HINT = "pip install 'vcgraph-voice[live]' (the sounddevice package; on Linux also the PortAudio library, e.g. apt install libportaudio2)"


def open_sounddevice():
    """The ``sounddevice`` module, checked to have an input and an output device."""
    try:
        import sounddevice as sd
    except ImportError:
        raise VoiceInputError(f"live audio needs the optional sounddevice package: {INSTALL_HINT}") from None
    except OSError as exc:  # the package is there, PortAudio is not
        raise VoiceInputError(f"live audio: sounddevice cannot load PortAudio ({exc}): {INSTALL_HINT}") from None
    try:
        devices = sd.query_devices()
        sd.check_input_settings()
        sd.check_output_settings()
    except Exception as exc:  # noqa: BLE001 - PortAudioError, ValueError: no usable device
        n = len(devices) if "devices" in locals() else 0
        raise VoiceInputError(f"live audio: no usable input and output device ({n} device(s) found: "
                              f"{type(exc).__name__}: {exc}); connect a microphone and speakers, or stream "
                              "a file: `vcgraph stream SRC.wav --target VOICE.vcp -o OUT.wav`") from None
    return sd


def default_rate(sd) -> int:
    """The default input device's sample rate."""
    return int(sd.query_devices(kind="input")["default_samplerate"])


def run_live(stream, sd, seconds: float | None = None, on_block=None) -> int:
    """Microphone -> ``stream`` -> speakers, block by block, until ``seconds`` (or Ctrl-C).
    Returns the number of blocks whose output came late (device underflows)."""
    n = stream.block_size
    late = 0
    t_end = None if seconds is None else time.monotonic() + seconds
    with sd.Stream(samplerate=stream.sample_rate, blocksize=n, channels=1, dtype="float32", latency="low") as dev:
        try:
            while t_end is None or time.monotonic() < t_end:
                block, overflowed = dev.read(n)
                y = stream.process(block[:, 0])
                underflowed = dev.write(np.ascontiguousarray(y, np.float32)[:, None])
                late += int(bool(overflowed or underflowed))
                if on_block is not None:
                    on_block(stream)
        except KeyboardInterrupt:
            pass
    return late
