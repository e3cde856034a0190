"""A plain audio value and file I/O (soundfile), for graph inputs and outputs."""
from __future__ import annotations

import os
import re
import tempfile
from typing import NamedTuple

import numpy as np

#: extensions soundfile knows under another name
_ALIASES = {"aif": "AIFF", "aifc": "AIFF", "wave": "WAV", "oga": "OGG", "opus": "OGG", "snd": "AU"}
COMMON_EXTENSIONS = ".wav, .flac, .ogg, .mp3, .aiff"


class Audio(NamedTuple):
    """Samples with their rate. ``samples`` is ``(frames,)`` mono or ``(frames, channels)``."""

    samples: np.ndarray
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / float(self.sample_rate)


def audio_format(path: str | os.PathLike) -> str | None:
    """The soundfile format (``WAV``, ``FLAC``, ...) that ``path``'s extension names, or None."""
    import soundfile as sf
    ext = os.path.splitext(os.fspath(path))[1][1:].lower()
    fmt = _ALIASES.get(ext, ext.upper())
    return fmt if ext and fmt in sf.available_formats() else None


def read_audio(path: str | os.PathLike) -> Audio:
    """Read a sound file (wav, flac, ogg, ...) as float32; a :class:`UserError` when it cannot."""
    import soundfile as sf
    from .errors import UserError
    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserError(f"audio file not found: {path}")
    if os.path.isdir(path):
        raise UserError(f"{path} is a directory, not an audio file")
    if os.path.getsize(path) == 0:
        raise UserError(f"cannot read audio file {path}: the file is empty (0 bytes)")
    try:
        samples, rate = sf.read(path, dtype="float32", always_2d=False)
    except Exception as exc:  # soundfile raises several types for unreadable files
        why = str(exc).replace(f"Error opening {path!r}: ", "").strip() or type(exc).__name__
        raise UserError(f"cannot read audio file {path}: {why} (is it a sound file? "
                        f"soundfile reads {COMMON_EXTENSIONS}, ...)") from None
    return Audio(samples, int(rate))


def _subtype(fmt: str) -> str:
    import soundfile as sf
    return "PCM_16" if sf.check_format(fmt, "PCM_16") else sf.default_subtype(fmt)


def check_audio_output(path: str | os.PathLike, sample_rate: int | None = None, channels: int = 1) -> None:
    """Fail now, before any work, when ``path`` cannot take audio: an extension that names no
    sound format, a folder in the way, no permission, or (given ``sample_rate``) a rate the
    format cannot store. Creates the missing parent folders; leaves no file behind."""
    from .errors import UserError
    path = os.fspath(path)
    if os.path.isdir(path):
        raise UserError(f"output {path} is a directory; give a file name")
    fmt = audio_format(path)
    if fmt is None:
        ext = os.path.splitext(path)[1]
        what = f"the extension '{ext}' names no sound format" if ext else "no extension to tell the sound format"
        raise UserError(f"output {path}: {what} (use {COMMON_EXTENSIONS}, ...)")
    _check_folder(path)
    if sample_rate is not None:
        import soundfile as sf
        fd, probe = tempfile.mkstemp(suffix=".probe", dir=os.path.dirname(os.path.abspath(path)))
        os.close(fd)
        try:
            sf.write(probe, np.zeros((16, channels), np.float32), int(sample_rate), subtype=_subtype(fmt), format=fmt)
        except Exception as exc:
            why = re.sub(r"^Error opening .*?: (Error : )?", "", str(exc))
            raise UserError(f"output {path}: cannot write {fmt} at {sample_rate} Hz: {why}") from None
        finally:
            os.unlink(probe)


def check_output_path(path: str | os.PathLike) -> None:
    """Fail now when ``path`` cannot be written as a file (a folder in the way, no permission)."""
    _check_folder(os.fspath(path))


def _check_folder(path: str) -> None:
    from .errors import UserError
    if os.path.isdir(path):
        raise UserError(f"output {path} is a directory; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise UserError(f"output {path}: cannot create the folder {folder}: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UserError(f"output {path}: no permission to write there")


def write_audio(path: str | os.PathLike, audio: Audio) -> None:
    """Write ``audio`` (format from the extension: 16-bit PCM where the format has it, else the
    format's own encoding, e.g. Vorbis or MP3). The file appears whole or not at all."""
    import soundfile as sf
    from .errors import UserError
    path = os.fspath(path)
    check_audio_output(path)
    fmt = audio_format(path)
    tmp = f"{path}.{os.getpid()}.part"  # created by soundfile, so with the usual permissions
    try:
        sf.write(tmp, np.asarray(audio.samples, dtype=np.float32), int(audio.sample_rate),
                 subtype=_subtype(fmt), format=fmt)
        os.replace(tmp, path)
    except Exception as exc:
        raise UserError(f"cannot write {path}: {exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
