"""Untrusted profiles: crafted .vcp files (wrong shapes, huge declared sizes, wrong versions,
pickles, damaged archives) are refused with a VoiceInputError before their arrays are
allocated; what loads converts or fails with a typed error. Counts are printed at the end.
"""
from __future__ import annotations

import io
import os
import struct
import tempfile
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_support import count, fast_pipeline, fuzz_settings, synthetic_profile
from vcgraph_voice.errors import VoiceConversionError, VoiceInputError
from vcgraph_voice.profile import MAX_ARRAY_BYTES, VERSION, VoiceProfile, check_method_data
from vcgraph_voice.synthetic import speech_like

SOURCE = speech_like(0.5, 16000, seed=2)


def profile_arrays() -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "p.vcp")
        synthetic_profile().save(path)
        with np.load(path) as data:
            return {k: data[k] for k in data.files}


def npz_bytes(arrays: dict, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, value in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=allow_pickle)
            zf.writestr(name + ".npy", member.getvalue())
    return buf.getvalue()


def npy_with_header(shape, dtype: str = "<f8", payload: bytes = b"\0" * 64) -> bytes:
    """A .npy member whose header declares ``shape`` whatever the bytes that follow."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": tuple(shape)}).encode("latin1")
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


BASE = profile_arrays()
BASE_BYTES = npz_bytes(BASE)


def load_bytes(data: bytes):
    """Load ``data`` as a profile with allocations traced: (profile or error, peak bytes)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "p.vcp")
        with open(path, "wb") as fh:
            fh.write(data)
        tracemalloc.start()
        try:
            return VoiceProfile.load(path), tracemalloc.get_traced_memory()[1]
        except VoiceInputError as exc:
            return exc, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


def check_loaded(result, prop: str, convert: bool = False) -> None:
    value, peak = result
    assert peak < 64 * 2 ** 20 + 4 * len(BASE_BYTES), f"{peak} bytes allocated while loading"
    if isinstance(value, VoiceInputError):
        text = str(value)
        assert text.strip() and len(text.splitlines()) == 1 and len(text) < 600, text
        count(prop, "refused")
        return
    assert isinstance(value, VoiceProfile)
    assert value.embedding.shape == (256,) and np.isfinite(value.embedding).all()
    for method, data in value.methods.items():
        check_method_data(method, data)
    if convert:
        try:
            y = fast_pipeline().convert(SOURCE, value, sample_rate=16000)
        except VoiceConversionError as exc:  # typed, e.g. statistics that make the vocoder blow up
            assert str(exc).strip()
            count(prop, "loaded, typed conversion error")
            return
        assert np.isfinite(y).all() and np.abs(y).max() <= 1
    count(prop, "loaded")


# -- byte-level damage -----------------------------------------------------------------------
@fuzz_settings(40)
@given(st.data())
def test_damaged_profile_bytes_are_refused_or_load(data):
    raw = bytearray(BASE_BYTES)
    op = data.draw(st.sampled_from(["truncate", "flip", "insert", "prefix"]))
    if op == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    elif op == "flip":
        for _ in range(data.draw(st.integers(1, 30))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    elif op == "insert":
        pos = data.draw(st.integers(0, len(raw)))
        raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=64))
    else:
        raw = bytearray(data.draw(st.binary(max_size=64))) + raw
    check_loaded(load_bytes(bytes(raw)), "profile bytes", convert=True)


# -- structured damage -----------------------------------------------------------------------
weird_values = st.one_of(
    st.builds(lambda shape, dtype: np.ones(shape, dtype=dtype),
              st.lists(st.integers(0, 5), max_size=3).map(tuple),
              st.sampled_from(["float32", "float64", "int64", "int8", "bool", "complex64", "U3", "S2"])),
    st.sampled_from([np.array(np.nan), np.array([np.inf] * 40, np.float32), np.array(-1.0), np.array(10 ** 9),
                     np.array("vcgraph-profile"), np.array(2), np.array(0), np.zeros((0,)), np.zeros((40,), np.float32),
                     np.full(256, np.nan, np.float32), np.zeros(256, np.float32), -np.ones(40, np.float32)]),
)


def edited_profile(edits) -> dict:
    """BASE's arrays with each (op, key, value) edit applied: drop a key, or set/add it."""
    arrays = dict(BASE)
    for op, key, value in edits:
        if op == "drop":
            arrays.pop(key, None)
        else:
            arrays[key] = value
    return arrays


@fuzz_settings(50)
@given(st.lists(st.tuples(st.sampled_from(["drop", "set", "add"]), st.sampled_from(sorted(BASE) + ["x/y", "fast/new"]),
                          weird_values), min_size=1, max_size=4))
def test_crafted_profile_arrays_are_refused_or_load(edits):
    arrays = edited_profile(edits)
    check_loaded(load_bytes(npz_bytes(arrays)), "profile arrays", convert=True)


@pytest.mark.slow
@fuzz_settings(1000, slow=True)
@given(st.lists(st.tuples(st.sampled_from(["drop", "set", "add"]), st.sampled_from(sorted(BASE) + ["x/y"]),
                          weird_values), min_size=1, max_size=6))
def test_crafted_profile_arrays_slow(edits):
    arrays = edited_profile(edits)
    check_loaded(load_bytes(npz_bytes(arrays)), "profile arrays (slow)", convert=True)


# -- huge declared sizes, pickles, versions --------------------------------------------------
@fuzz_settings(20)
@given(st.sampled_from(sorted(BASE)), st.integers(20, 62), st.sampled_from(["<f8", "<f4", "|u1", "<c16"]),
       st.integers(1, 3))
def test_huge_declared_arrays_are_refused_before_allocation(key, log_size, dtype, dims):
    shape = (2 ** log_size,) if dims == 1 else (2 ** (log_size // dims),) * dims
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, value in BASE.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, value)
            zf.writestr(name + ".npy", npy_with_header(shape, dtype) if name == key else member.getvalue())
    value, peak = load_bytes(buf.getvalue())
    assert isinstance(value, VoiceInputError), "a huge declared array was accepted"
    assert peak < 16 * 2 ** 20, f"{peak} bytes allocated"
    count("profile huge arrays", "refused before allocation")


def test_the_declared_total_is_bounded():
    assert MAX_ARRAY_BYTES <= 2 ** 30
    members = {f"fast/m{i}": npy_with_header((2 ** 27,), "<f8", b"") for i in range(4)}  # 4 x 1 GiB declared
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, value in BASE.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, value)
            zf.writestr(name + ".npy", member.getvalue())
        for name, data in members.items():
            zf.writestr(name + ".npy", data + b"\0" * 1024)
    value, peak = load_bytes(buf.getvalue())
    assert isinstance(value, VoiceInputError) and peak < 16 * 2 ** 20


@pytest.mark.parametrize("edit, words", [
    ({"embedding": np.array([{"evil": 1}], dtype=object)}, "Python objects (a pickle)"),
    ({"version": np.array(VERSION + 1)}, "newer than this vcgraph"),
    ({"version": np.array(0)}, "not a valid version"),
    ({"version": np.array("1")}, "'version'"),
    ({"format": np.array("something-else")}, "no 'vcgraph-profile' marker"),
    ({"embedding": np.ones(128, np.float32)}, "shape (256,)"),
    ({"fast/mel_std_v": np.ones(7, np.float32)}, "'fast/mel_std_v' has shape (7,), which does not match "
                                                  "'fast/mel_mean_v' (size 40)"),
    ({"fast/lf0_std": np.ones(3, np.float32)}, "'fast/lf0_std' has shape (3,), expected size 1"),
    ({"fast/lf0_mean": np.array([np.nan], np.float32)}, "NaN/Inf"),
])
def test_crafted_profiles_name_what_is_wrong(edit, words):
    arrays = dict(BASE, **edit)
    value, _ = load_bytes(npz_bytes(arrays, allow_pickle=True))
    assert isinstance(value, VoiceInputError) and words in str(value), value


def test_a_pickle_is_never_unpickled(tmp_path):
    import pickle

    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    path = tmp_path / "p.vcp"
    path.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(VoiceInputError, match="not a vcgraph profile"):
        VoiceProfile.load(path)
    data = npz_bytes(dict(BASE, embedding=np.array([Boom()], dtype=object)), allow_pickle=True)
    path.write_bytes(data)
    with pytest.raises(VoiceInputError, match="a pickle"):
        VoiceProfile.load(path)
    assert not (tmp_path / "pwned").exists()
