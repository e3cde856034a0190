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
Version 3 records which content encoder made the content part (``content/encoder``: 8 bytes of
its weights' SHA-256, :func:`~vcgraph_voice.content_model.weights_identity`): features of two
encoders are not comparable. A version-2 profile's content part was made by the encoder shipped
until then (:data:`LEGACY_CONTENT_ENCODER`, filled in on load); converting it with another
encoder is a clear error that says to enrol again.
The fast part may also hold ``adaptive_mel_*``: its statistics measured on the pitch-adaptive
envelope (the fast preset enrols them since 2026-12-03). They are optional, so the version
did not change: a profile without them converts on the cepstral envelope as before, and an
older vcgraph ignores them.

Loading treats the file as untrusted: every member's ``.npy`` header is read first, and a
pickle (object dtype), a declared size beyond :data:`MAX_ARRAY_BYTES` in all, a header that
claims more data than the archive holds, a wrong version or shape is refused before any
array is allocated.
"""
from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from .errors import VoiceInputError
from .validation import EMBEDDING_SIZE, normalize_embedding

FORMAT = "vcgraph-profile"
VERSION = 3
#: the content encoder that made every version-2 profile's content part
LEGACY_CONTENT_ENCODER = bytes.fromhex("3efaedce2c5c78d8")
MAX_PROFILE_BYTES = 512 * 1024 * 1024
MAX_ARRAY_BYTES = 1024 * 1024 * 1024  # all arrays together, as their headers declare them
MAX_MEMBERS = 4096
NOT_A_PROFILE_HINT = ("--target takes a .vcp profile from `vcgraph enroll`, a 256-d .npy embedding "
                      "or a sound file")


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
        """Read a profile; never unpickles, checks sizes before reading, then format, version
        and shapes. Any problem is a :class:`VoiceInputError` naming the file."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise VoiceInputError(f"profile not found: {path}")
        if os.path.getsize(path) > MAX_PROFILE_BYTES:
            raise VoiceInputError(f"{path}: larger than {MAX_PROFILE_BYTES >> 20} MiB, not a profile")
        if os.path.getsize(path) == 0:
            raise VoiceInputError(f"{path}: the file is empty (0 bytes), not a profile")
        with open(path, "rb") as fh:
            magic = fh.read(4)
        if magic != b"PK\x03\x04":
            raise VoiceInputError(f"{path}: not a vcgraph profile ({NOT_A_PROFILE_HINT})")
        try:
            arrays = _read_arrays(path)
        except VoiceInputError as exc:
            raise VoiceInputError(f"{path}: not a usable vcgraph profile: {exc.message}") from None
        except Exception as exc:  # zipfile and numpy raise many types for damaged archives
            raise VoiceInputError(f"{path}: not a vcgraph profile (damaged archive: {type(exc).__name__}: "
                                  f"{str(exc)[:200]})") from None
        try:
            return _from_arrays(cls, arrays)
        except VoiceInputError as exc:
            raise VoiceInputError(f"{path}: {exc.message}") from None


def _read_arrays(path: str) -> dict[str, np.ndarray]:
    """Every array of an npz archive, after checking each member's header: no pickles, no
    declared size beyond the limits or beyond the bytes the archive holds."""
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise VoiceInputError(f"{len(infos)} members (at most {MAX_MEMBERS})")
        total = 0
        for info in infos:
            if not info.filename.endswith(".npy"):
                raise VoiceInputError(f"member '{info.filename}' is not an array")
            with zf.open(info) as fh:
                shape, dtype, header = _npy_header(fh, info.filename)
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes > info.file_size - header:
                raise VoiceInputError(f"array '{info.filename}' declares {nbytes} bytes but holds "
                                      f"{max(info.file_size - header, 0)}")
            total += nbytes
            if total > MAX_ARRAY_BYTES:
                raise VoiceInputError(f"arrays declare more than {MAX_ARRAY_BYTES >> 20} MiB")
        arrays = {}
        for info in infos:
            with zf.open(info) as fh:
                arrays[info.filename[:-4]] = np.lib.format.read_array(fh, allow_pickle=False)
    return arrays


def _npy_header(fh, name: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header bytes) of one ``.npy`` member, refusing object (pickle) dtypes."""
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, _, dtype = fmt.read_array_header_2_0(fh)
    else:
        raise VoiceInputError(f"array '{name}': unsupported .npy version {version}")
    if dtype.hasobject:
        raise VoiceInputError(f"array '{name}' holds Python objects (a pickle): refused")
    return tuple(int(n) for n in shape), dtype, fh.tell()


def _scalar(arrays: dict, key: str, kinds: str):
    value = arrays.get(key)
    if value is None or value.shape not in ((), (1,)) or value.dtype.kind not in kinds:
        raise VoiceInputError(f"'{key}' is missing or not a scalar of the right type")
    return value.reshape(()).item()


def _from_arrays(cls, arrays: dict[str, np.ndarray]) -> "VoiceProfile":
    if "format" not in arrays or arrays["format"].dtype.kind != "U" or str(arrays["format"]) != FORMAT:
        raise VoiceInputError(f"not a vcgraph profile (no '{FORMAT}' marker)")
    version = _scalar(arrays, "version", "iu")
    if version > VERSION:
        raise VoiceInputError(f"profile version {version} is newer than this vcgraph ({VERSION})")
    if version < 1:
        raise VoiceInputError(f"profile version {version} is not a valid version")
    seconds = float(_scalar(arrays, "seconds", "iuf")) if "seconds" in arrays else 0.0
    if not (math.isfinite(seconds) and seconds >= 0):
        raise VoiceInputError(f"'seconds' is {seconds}")
    if "embedding" not in arrays:
        raise VoiceInputError("no 'embedding'")
    methods: dict[str, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        method, slash, name = key.partition("/")
        if not slash:
            continue
        if value.dtype.kind not in "biuf":
            raise VoiceInputError(f"'{key}' is not numeric (dtype {value.dtype})")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise VoiceInputError(f"'{key}' has NaN/Inf values")
        methods.setdefault(method, {})[name] = value
    if version < 3 and "content" in methods:  # migrate: made by the encoder of that time
        methods["content"].setdefault("encoder", np.frombuffer(LEGACY_CONTENT_ENCODER, np.uint8).copy())
    for method, data in methods.items():
        check_method_data(method, data)
    return cls(arrays["embedding"], methods, seconds)


#: the shapes each known method's profile data must have: name → dims, where a letter is a
#: size shared by the arrays of one method and a number a fixed size
METHOD_SHAPES: dict[str, dict[str, tuple]] = {
    "fast": {"mel_mean_v": ("B",), "mel_std_v": ("B",), "mel_mean_u": ("B",), "mel_std_u": ("B",),
             "lf0_mean": (1,), "lf0_std": (1,), "mel_fmax": (1,)},
    "content": {"mel_mean_v": ("B",), "mel_std_v": ("B",), "mel_mean_u": ("B",), "mel_std_u": ("B",),
                "lf0_mean": (1,), "lf0_std": (1,), "mel_fmax": (1,),
                "content": ("N", "C"), "log_env": ("N", "F"), "ap": ("N", "F"), "voiced": ("N",), "sr": (1,),
                "encoder": (8,)},
    "quality": {"feat": ("N", "M"), "logsp": ("N", "K"), "fine": ("N",), "coarse": ("N",), "ctx": ("N",),
                "logsp_mean": ("K",), "logsp_std": ("K",), "lf0_mean": (), "lf0_std": (), "sr": ()},
}


#: groups of arrays a method's data may hold, each all or none (checked when present): the fast
#: statistics of the pitch-adaptive envelope, which profiles enrolled before it (and voice-bank
#: estimates) lack (the content part shares the fast part's statistics fields; the content
#: preset does not enrol them); the content part's phone-state posteriors, which profiles
#: enrolled before 2026-12-04 lack, its per-frame log-F0, which profiles enrolled before
#: 2026-12-06 lack, and its frames' pitch-adaptive envelopes, which profiles enrolled before
#: 2026-12-07 lack
_ADAPTIVE_STATS = {"adaptive_mel_mean_v": ("B",), "adaptive_mel_std_v": ("B",), "adaptive_mel_mean_u": ("B",),
                   "adaptive_mel_std_u": ("B",)}
_PHONE_STATES = {"phone_states": ("N", 126)}
_FRAME_PITCH = {"frame_lf0": ("N",)}
_ADAPTIVE_FRAMES = {"adaptive_log_env": ("N", "F")}
OPTIONAL_SHAPES: dict[str, tuple[dict[str, tuple], ...]] = {
    "fast": (_ADAPTIVE_STATS,), "content": (_ADAPTIVE_STATS, _PHONE_STATES, _FRAME_PITCH, _ADAPTIVE_FRAMES)}


def check_method_data(method: str, data: dict[str, np.ndarray]) -> None:
    """Raise :class:`VoiceInputError` when a known method's data lacks a key or has a wrong shape
    (methods this vcgraph does not know are kept as they are)."""
    shapes = METHOD_SHAPES.get(method)
    if shapes is None:
        return
    checked = dict(shapes)
    for group in OPTIONAL_SHAPES.get(method, ()):
        present = [n for n in group if n in data]
        if present and len(present) != len(group):
            raise VoiceInputError(f"'{method}' has {', '.join(present)} but not "
                                  f"{', '.join(n for n in group if n not in data)}")
        checked.update({n: group[n] for n in present})
    sizes: dict[str, tuple[int, str]] = {}  # size letter -> (size, the array that set it)
    for name, dims in checked.items():
        value = data.get(name)
        if value is None:
            raise VoiceInputError(f"'{method}/{name}' is missing")
        if value.ndim != len(dims):
            raise VoiceInputError(f"'{method}/{name}' has shape {value.shape}, expected {len(dims)} dimension(s)")
        for dim, n in zip(dims, value.shape):
            if n == 0:
                raise VoiceInputError(f"'{method}/{name}' is empty (shape {value.shape})")
            if isinstance(dim, int):
                if n != dim:
                    raise VoiceInputError(f"'{method}/{name}' has shape {value.shape}, expected size {dim}")
                continue
            want, other = sizes.setdefault(dim, (n, name))
            if n != want:
                raise VoiceInputError(f"'{method}/{name}' has shape {value.shape}, which does not match "
                                      f"'{method}/{other}' (size {want})")


def is_sound_file(path: str) -> bool:
    """Whether ``path``'s extension names a sound format (``.wav``, ``.flac``, ...)."""
    from vcgraph.audio import audio_format
    return audio_format(path) is not None


def load_target(value) -> "VoiceProfile | np.ndarray | Audio":
    """A target from a CLI string or Python value: a ``.vcp`` profile, a ``.npy`` embedding,
    a sound file (returned as :class:`~vcgraph.audio.Audio`, for the speaker encoder to enrol
    on the fly), or the value as is."""
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if path.endswith(".npy"):
            if not os.path.isfile(path):
                raise VoiceInputError(f"embedding file not found: {path}")
            try:
                with open(path, "rb") as fh:  # the header first: refuse a huge declared size unread
                    shape, _, _ = _npy_header(fh, os.path.basename(path))
                if math.prod(shape) > 4 * EMBEDDING_SIZE:
                    raise VoiceInputError(f"target embedding must have shape ({EMBEDDING_SIZE},) or "
                                          f"(1, {EMBEDDING_SIZE}), got {shape}")
                data = np.load(path, allow_pickle=False)
            except VoiceInputError as exc:
                raise VoiceInputError(f"{path}: {exc.message}") from None
            except Exception as exc:
                raise VoiceInputError(f"{path}: not a .npy embedding ({type(exc).__name__}: "
                                      f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
            try:
                return normalize_embedding(data)
            except VoiceInputError as exc:
                raise VoiceInputError(f"{path}: {exc.message}") from None
        if is_sound_file(path):
            from vcgraph.audio import read_audio
            from vcgraph.errors import UserError
            try:
                return read_audio(path)
            except UserError as exc:
                raise VoiceInputError(str(exc)) from None
        return VoiceProfile.load(path)
    return value
