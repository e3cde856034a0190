"""Property-based tests of the command line on odd files: a truncated or corrupted WAV, text
named .wav, 0-byte files, random bytes, odd output names. Every run ends with status 0 and a
readable output, or status 2 and exactly one ``vcgraph: error:`` line — never a traceback.
"""
from __future__ import annotations

import contextlib
import io
import os
import struct
import tempfile

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from fuzz_support import count, fuzz_settings, synthetic_profile_path
from vcgraph.cli import main
from vcgraph_voice.synthetic import speech_like


def _wav_bytes(seconds: float = 0.5, sr: int = 16000, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    samples = speech_like(seconds, sr, seed=5) if int(seconds * sr) > 1 else np.zeros(int(seconds * sr), np.float32)
    sf.write(buf, samples, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


VALID_WAV = _wav_bytes()


@st.composite
def input_files(draw):
    """(bytes, what): a sound file damaged in one of several ways."""
    kind = draw(st.sampled_from(["truncated", "flipped", "empty", "text", "random", "header-lies", "valid",
                                 "valid", "float-wav", "tiny"]))
    if kind == "truncated":
        return VALID_WAV[:draw(st.integers(0, len(VALID_WAV) - 1))], kind
    if kind == "flipped":
        data = bytearray(VALID_WAV)
        for _ in range(draw(st.integers(1, 20))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data), kind
    if kind == "empty":
        return b"", kind
    if kind == "text":
        return draw(st.text(max_size=200)).encode("utf-8"), kind
    if kind == "random":
        return draw(st.binary(max_size=4000)), kind
    if kind == "header-lies":  # a RIFF header declaring far more data than follows
        data = bytearray(VALID_WAV)
        data[4:8] = struct.pack("<I", draw(st.integers(0, 2 ** 32 - 1)))
        idx = data.find(b"data")
        data[idx + 4: idx + 8] = struct.pack("<I", draw(st.integers(0, 2 ** 32 - 1)))
        return bytes(data), kind
    if kind == "float-wav":
        return _wav_bytes(0.3, draw(st.sampled_from([8000, 22050, 44100])), "FLOAT"), kind
    if kind == "tiny":
        return _wav_bytes(draw(st.sampled_from([0.0, 0.001, 0.05])), 16000), kind
    return VALID_WAV, kind


GOOD_NAMES = ["out.wav", "out.flac", "out.ogg", "out.mp3", "out.WAV", "sub/dir/out.wav", "out.aiff"]
ODD_NAMES = ["out", "out.xyz", ".wav", "out.wav.txt"]
OUTPUT_NAMES = st.one_of(st.sampled_from(GOOD_NAMES * 3 + ODD_NAMES),
                         st.from_regex(r"[a-z]{1,8}\.[a-z0-9]{0,4}", fullmatch=True))


def run_cli(argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main([str(a) for a in argv])
    return status, err.getvalue()


def check_run(status: int, err: str, out_path: str, prop: str) -> None:
    assert "Traceback" not in err, err
    if status == 0:
        y, _ = sf.read(out_path, dtype="float32")
        assert y.size and np.isfinite(y).all()
        count(prop, "converted")
        return
    assert status == 2, (status, err)
    errors = [line for line in err.splitlines() if line.startswith("vcgraph: error: ")]
    assert len(errors) == 1 and len(errors[0]) < 500, err
    assert not os.path.exists(out_path), "a failed run left an output behind"
    count(prop, "one-line error")


def _convert_case(data: bytes, out_name: str, prop: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "in.wav")
        with open(src, "wb") as fh:
            fh.write(data)
        out = os.path.join(tmp, "o", out_name)
        status, err = run_cli(["convert", src, "--target", synthetic_profile_path(), "-o", out,
                               "-c", "fast", "--no-progress"])
        check_run(status, err, out, prop)


@fuzz_settings(25)
@given(input_files(), OUTPUT_NAMES)
def test_convert_on_odd_files_is_a_result_or_one_line(case, out_name):
    _convert_case(case[0], out_name, "cli convert odd files")


@pytest.mark.slow
@fuzz_settings(300, slow=True)
@given(input_files(), OUTPUT_NAMES)
def test_convert_on_odd_files_slow(case, out_name):
    _convert_case(case[0], out_name, "cli convert odd files (slow)")


@fuzz_settings(15)
@given(input_files())
def test_odd_files_as_target_are_enrolled_or_one_line(case):
    data, _ = case
    with tempfile.TemporaryDirectory() as tmp:
        ref = os.path.join(tmp, "ref.wav")
        with open(ref, "wb") as fh:
            fh.write(data)
        src = os.path.join(tmp, "src.wav")
        with open(src, "wb") as fh:
            fh.write(VALID_WAV)
        out = os.path.join(tmp, "o.wav")
        status, err = run_cli(["convert", src, "--target", ref, "-o", out, "-c", "fast", "--no-progress"])
        check_run(status, err, out, "cli odd target files")
