"""Speaker profiles: what a converter knows about a target voice, saved without code.

A profile is a ``.vcp`` file: an ``.npz`` archive of plain arrays (loaded with
``allow_pickle=False``, so opening an untrusted profile runs no code). Keys:

- ``format``, ``version``: ``"vcgraph-profile"`` and the format version;
- ``embedding``: the 256-d GE2E d-vector (resemblyzer compatible);
- ``seconds``: how much reference audio was enrolled;
- ``content/<name>``, ``fast/<name>``, ``quality/<name>``: what each conversion method needs
  (statistics, target frames), as returned by that method's enrollment.

Version 2 added the ``content`` method's part; a version-1 profile still loads and serves the
methods it has, and converting with a method it lacks is a clear error that says to enrol again.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

import numpy as np

from .errors import VoiceInputError
from .validation import normalize_embedding

FORMAT = "vcgraph-profile"
VERSION = 2
MAX_PROFILE_BYTES = 512 * 1024 * 1024


@dataclass
class VoiceProfile:
    """A target voice: its embedding plus per-method data (method → name → array)."""

    embedding: np.ndarray
    methods: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.embedding = normalize_embedding(self.embedding)

    def has(self, method: str) -> bool:
        return bool(self.methods.get(method))

    def save(self, path: str | os.PathLike) -> None:
        """Write the profile as an npz archive (``.vcp``)."""
        arrays = {"format": np.array(FORMAT), "version": np.array(VERSION),
                  "embedding": self.embedding, "seconds": np.array(self.seconds, dtype=np.float64)}
        for method, data in self.methods.items():
            for name, value in data.items():
                arrays[f"{method}/{name}"] = np.asarray(value)
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as fh:  # np.savez would append .npz to the name
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "VoiceProfile":
        """Read a profile; never unpickles, and checks format and version."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise VoiceInputError(f"profile not found: {path}")
        if os.path.getsize(path) > MAX_PROFILE_BYTES:
            raise VoiceInputError(f"{path}: larger than {MAX_PROFILE_BYTES >> 20} MiB, not a profile")
        try:
            with open(path, "rb") as fh:
                data = np.load(io.BytesIO(fh.read()), allow_pickle=False)
                arrays = {k: data[k] for k in data.files}
        except Exception as exc:
            raise VoiceInputError(f"{path}: not a vcgraph profile ({type(exc).__name__}: {exc})") from None
        if str(arrays.get("format", "")) != FORMAT:
            raise VoiceInputError(f"{path}: not a vcgraph profile (no '{FORMAT}' marker)")
        version = int(arrays["version"])
        if version > VERSION:
            raise VoiceInputError(f"{path}: profile version {version} is newer than this vcgraph ({VERSION})")
        methods: dict[str, dict[str, np.ndarray]] = {}
        for key, value in arrays.items():
            method, slash, name = key.partition("/")
            if slash:
                methods.setdefault(method, {})[name] = value
        return cls(arrays["embedding"], methods, float(arrays.get("seconds", 0.0)))


def load_target(value) -> "VoiceProfile | np.ndarray":
    """A target from a CLI string or Python value: a ``.vcp`` profile, a ``.npy`` embedding, or as is."""
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if path.endswith(".npy"):
            if not os.path.isfile(path):
                raise VoiceInputError(f"embedding file not found: {path}")
            return normalize_embedding(np.load(path, allow_pickle=False))
        return VoiceProfile.load(path)
    return value
