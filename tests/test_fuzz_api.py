"""Property-based tests of the Python API: any audio, target, pitch shift or F0 contour ends in
a valid output (float32, finite, in [-1, 1], the input's duration) or a VoiceInputError —
never another exception, never NaN. Counts of cases run are printed at the end of the session.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from fuzz_support import count, fast_pipeline, fuzz_settings, synthetic_profile
from vcgraph_voice.errors import VoiceConversionError, VoiceInputError
from vcgraph_voice.synthetic import speech_like

OUT_RATE = 22050
GOOD_RATES = [8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000, 176400, 192000]
BAD_RATES = [0, -16000, 3999, 400_000, 16000.5, float("nan"), "16000", True]
DTYPES = ["float32", "float64", "float16", "int16", "int32", "int8", "uint8", "bool", "complex64"]
CONTENTS = ["speech", "noise", "sine", "dc", "silence", "clipped", "impulse", "tiny", "huge"]


def _signal(content: str, n: int, sr: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    if content == "speech":
        return speech_like(n / sr, sr, seed=seed)[:n] if n else np.zeros(0, np.float32)
    if content == "noise":
        return 0.3 * rng.standard_normal(n)
    if content == "sine":
        return 0.5 * np.sin(2 * np.pi * rng.uniform(50, 4000) * t)
    if content == "dc":
        return np.full(n, rng.uniform(-1, 1))
    if content == "silence":
        return np.zeros(n)
    if content == "clipped":
        return np.clip(5 * np.sin(2 * np.pi * 220 * t) + rng.standard_normal(n), -1, 1)
    if content == "impulse":
        x = np.zeros(n)
        x[n // 2 if n else 0:][:1] = 1.0
        return x
    if content == "tiny":
        return 1e-7 * rng.standard_normal(n)
    return 1e6 * rng.standard_normal(n)  # huge


def _as_dtype(x: np.ndarray, dtype: str) -> np.ndarray:
    if dtype in ("int16", "int32", "int8"):
        info = np.iinfo(dtype)
        return np.clip(np.nan_to_num(x) * info.max, info.min, info.max).astype(dtype)
    if dtype == "uint8":
        return np.clip((np.nan_to_num(x) + 1) * 127.5, 0, 255).astype(np.uint8)
    if dtype == "bool":
        return x > 0
    return x.astype(dtype)


RATES = GOOD_RATES * 3 + BAD_RATES  # bad rates are one draw in five or so
WEIGHTED_DTYPES = ["float32"] * 3 + ["float64"] * 2 + ["int16"] * 2 + DTYPES
INJECTS = ["none"] * 8 + ["nan", "inf", "-inf", "all-nan"]


@st.composite
def audio_cases(draw, max_seconds: float, only_valid: bool = False):
    """(samples, sample_rate, frames, valid): ``valid`` is what the documented checks accept.
    ``only_valid`` draws only usable rates, lengths, dtypes and contents."""
    sr = draw(st.one_of(st.sampled_from(GOOD_RATES if only_valid else RATES), st.integers(8000, 192000)))
    good_rate = isinstance(sr, int) and not isinstance(sr, bool) and 8000 <= sr <= 192000
    rate = sr if good_rate else 16000
    seconds = draw(st.one_of(st.sampled_from([0.1, 0.11, 0.5] if only_valid else [0.0, 0.01, 0.05, 0.0999, 0.1]),
                             st.floats(0.1 if only_valid else 0.0, max_seconds)))
    n = int(seconds * rate)
    if n > 0 and not only_valid and draw(st.integers(0, 4)) == 0:
        n = draw(st.integers(0, min(n, 4000)))  # odd lengths, down to a single sample
    content = draw(st.sampled_from([c for c in CONTENTS if c != "silence"] if only_valid else CONTENTS))
    x = _signal(content, n, rate, draw(st.integers(0, 2 ** 16))).astype(np.float64)
    inject = "none" if only_valid else draw(st.sampled_from(INJECTS))
    if n and inject != "none":
        if inject == "all-nan":
            x[:] = np.nan
        else:
            x[draw(st.integers(0, n - 1))] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}[inject]
    channels = draw(st.sampled_from([None, None, None, 1, 2, 3, 6, 8]))
    if channels is not None:
        x = np.stack([x * (0.5 + 0.5 * c / channels) for c in range(channels)], axis=1)
        if draw(st.booleans()):
            x = x.T  # (channels, frames), as torchaudio gives it
    dtype = draw(st.sampled_from([d for d in WEIGHTED_DTYPES if d not in ("bool", "complex64")] if only_valid
                                 else WEIGHTED_DTYPES))
    with np.errstate(all="ignore"):
        x = _as_dtype(x, dtype)
    valid = (good_rate and dtype not in ("bool", "complex64") and n >= 0.1 * rate
             and bool(np.isfinite(x.astype(np.float64)).all()) and bool(np.any(x)))
    container = draw(st.sampled_from(["numpy", "numpy", "torch", "list"]))
    if container == "torch" and x.dtype.kind != "c":
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif container == "list" and x.size <= 20000:
        x = x.tolist()
    return x, sr, n, valid


def check_output(y, frames: int, sr) -> None:
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.ndim == 1
    assert np.isfinite(y).all(), "NaN/Inf in the output"
    assert np.abs(y).max(initial=0.0) <= 1.0
    assert len(y) == round(frames * OUT_RATE / sr)


def check_error(exc: BaseException) -> None:
    """A typed, readable error: a VoiceInputError with a message of one short line."""
    assert isinstance(exc, VoiceInputError), f"not an input error: {type(exc).__name__}: {exc}"
    text = str(exc)
    assert text.strip() and len(text.splitlines()) == 1 and len(text) < 400, text


def run_case(prop: str, valid: bool, frames: int, sr, convert) -> None:
    """Valid input must give a valid output; invalid input a VoiceInputError; nothing else."""
    try:
        y = convert()
    except VoiceConversionError as exc:
        check_error(exc)
        assert not valid, f"valid input refused: {exc}"
        count(prop, "typed error")
        return
    assert valid, "invalid input was accepted"
    check_output(y, frames, sr)
    for node in fast_pipeline().last_report.nodes.values():  # and no implementation failed on the way
        assert all(a.ok for a in node.attempts), (node.node, node.errors)
    count(prop, "valid output")


def run_audio_case(case, prop: str) -> None:
    x, sr, frames, valid = case
    run_case(prop, valid, frames, sr, lambda: fast_pipeline().convert(x, synthetic_profile(), sample_rate=sr))


@fuzz_settings(40)
@given(audio_cases(max_seconds=1.5))
def test_any_audio_gives_valid_output_or_a_typed_error(case):
    run_audio_case(case, "api audio")


@fuzz_settings(30)
@given(audio_cases(max_seconds=1.5, only_valid=True))
def test_usable_audio_of_any_rate_layout_and_dtype_converts(case):
    run_audio_case(case, "api usable audio")


@pytest.mark.slow
@fuzz_settings(100, slow=True)
@given(audio_cases(max_seconds=120.0))
# found by this test in CI: a DC offset whose edges gave one voiced frame (NaN log-F0 spread)
@example((np.full(310600, 0.02364325, np.float32), 8000, 310600, True))
def test_any_audio_up_to_minutes_slow(case):
    run_audio_case(case, "api audio (slow)")


# -- targets, pitch shifts, F0 contours --------------------------------------------------------
SOURCE = speech_like(1.0, 16000, seed=11)

embeddings = st.one_of(
    st.tuples(st.sampled_from([(256,), (256,), (1, 256), (255,), (257,), (0,), (2, 256), (16, 16), (256, 1), ()]),
              st.sampled_from(["normal", "normal", "zeros", "nan", "inf", "huge", "tiny", "negative"]),
              st.sampled_from(["float32", "float64", "int64", "float16", "complex64", "bool"]),
              st.sampled_from(["numpy", "torch", "list"])),
    st.sampled_from([None, "", "missing.vcp", "missing.npy", 3, 2.5, {}, [], ["a"] * 256, b"\x00" * 256]),
)


def _embedding(shape, fill, dtype, container):
    """(embedding, valid)."""
    rng = np.random.default_rng(0)
    e = rng.standard_normal(shape) if shape else np.array(rng.standard_normal())
    e = {"zeros": 0 * e, "nan": np.where(e > 0, np.nan, e), "inf": np.where(e > 1, np.inf, e),
         "huge": 1e300 * e, "tiny": 1e-300 * e, "negative": -np.abs(e)}.get(fill, e)
    with np.errstate(all="ignore"):
        e = e.astype(dtype)
        as32 = e.astype(np.float32) if dtype != "complex64" else None
    valid = (shape in ((256,), (1, 256)) and dtype != "complex64" and bool(np.isfinite(as32).all())
             and float(np.abs(as32.astype(np.float64)).max()) > 1e-30)
    if container == "torch" and dtype != "complex64":
        e = torch.from_numpy(np.ascontiguousarray(e))
    elif container == "list":
        e = e.tolist()
    return e, valid


def run_target_case(target, valid: bool, prop: str, **kw) -> None:
    run_case(prop, valid, len(SOURCE), 16000,
             lambda: fast_pipeline().convert(SOURCE, target, sample_rate=16000, **kw))


@fuzz_settings(40)
@given(embeddings)
def test_any_target_embedding_gives_valid_output_or_a_typed_error(case):
    target, valid = _embedding(*case) if isinstance(case, tuple) else (case, False)
    run_target_case(target, valid, "api target embedding")


@fuzz_settings(30)
@given(st.one_of(st.floats(-30, 30), st.floats(allow_nan=True, allow_infinity=True),
                 st.integers(-10 ** 30, 10 ** 30),
                 st.sampled_from([None, "2", "high", [1.0], np.float32(3), torch.tensor(-2.0), np.array([1, 2])])))
def test_any_pitch_shift_gives_valid_output_or_a_typed_error(shift):
    try:
        value = 0.0 if shift is None else float(np.asarray(shift, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        value = float("nan")
    valid = bool(np.isfinite(value)) and abs(value) <= 24
    run_target_case(synthetic_profile(), valid, "api pitch shift", pitch_shift_semitones=shift)


f0_contours = st.tuples(
    st.one_of(st.integers(0, 12), st.integers(5, 2000), st.sampled_from([100, 200, 100_000])),
    st.floats(-500, 1000), st.floats(0, 6000), st.sampled_from(["none", "none", "nan", "inf", "zeros"]),
    st.integers(0, 1000), st.sampled_from([1, 1, 2]))


def _f0(n, lo, hi, inject, seed, dims):
    """(contour for 1 s of audio, valid)."""
    f = np.random.default_rng(seed).uniform(min(lo, hi), max(lo, hi), n)
    if n and inject == "nan":
        f[::3] = np.nan
    elif n and inject == "inf":
        f[0] = np.inf
    elif inject == "zeros":
        f[:] = 0
    valid = 10 <= n <= 1000 and bool(np.isfinite(f).all()) and (f.size == 0 or (f.min() >= 0 and f.max() <= 4000))
    return (f.reshape(1, -1) if dims == 2 else f), valid


@fuzz_settings(30)
@given(f0_contours)
def test_any_source_f0_gives_valid_output_or_a_typed_error(case):
    f0, valid = _f0(*case)
    run_target_case(synthetic_profile(), valid, "api source_f0", source_f0=f0)
