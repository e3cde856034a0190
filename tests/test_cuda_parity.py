"""cuda and cpu implementations agree, node by node, on identical inputs (vcgraph.parity).

The comparison itself is tested here on the CPU with the fault-injecting test plugin (its
``simplified`` implementation adds 0.5, so a real difference must be found). The per-preset
CUDA checks need a GPU and are skipped without one; ``scripts/gpu_check.py`` runs them there.

Stated tolerance: every output array of a node's cuda implementation is within a relative
RMS error of 1e-3 of its cpu implementation's (``||cuda - cpu|| / ||cpu||``), for the same
inputs; non-array outputs must be equal.
"""
from __future__ import annotations

import glob
import os
from typing import NamedTuple

import numpy as np
import pytest

from engine_helpers import chain_spec, pipeline
from vcgraph.parity import DEFAULT_RTOL, compare_kinds, differences, format_parity

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESETS = sorted(glob.glob(os.path.join(REPO, "configs", "*.yaml")))
RTOL = 1e-3


def _cuda() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


needs_cuda = pytest.mark.skipif(not _cuda(), reason="no CUDA device: the cuda/cpu comparison of each stage "
                                                   "needs a GPU (run scripts/gpu_check.py there)")


class Pair(NamedTuple):
    samples: np.ndarray
    rate: int


def test_differences_walks_values():
    a = {"audio": Pair(np.ones(100, np.float32), 16000), "labels": ["a", "b"], "n": 3}
    errs, bad = differences(a, {"audio": Pair(np.ones(100, np.float32) * 1.01, 16000), "labels": ["a", "b"], "n": 3})
    assert bad == [] and errs["['audio'].samples"] == pytest.approx(0.01, rel=1e-6)
    assert errs["['audio'].rate"] == 0.0
    _, bad = differences(a, {"audio": Pair(np.ones(99, np.float32), 16000), "labels": ["a", "c"], "n": 3})
    assert any("shape (100,) vs (99,)" in b for b in bad) and "['labels'][1]" in bad
    _, bad = differences(np.array([1.0, np.nan]), np.array([1.0, 2.0]))
    assert bad == [". (non-finite values differ)"]
    torch = pytest.importorskip("torch")
    errs, bad = differences(torch.zeros(3), np.zeros(3))  # tensors are compared on the host
    assert errs == {".": 0.0} and bad == []


def test_compare_kinds_finds_a_difference_and_agreement(registry):
    x = np.arange(8, dtype=np.float64) + 1
    rows = compare_kinds(pipeline(chain_spec({}, {}), registry), {"x": x}, kind="simplified")
    assert [r.ok for r in rows] == [False, False] and all(r.worst > 0.01 for r in rows)
    assert "FAIL" in format_parity(rows)
    # the reference's outputs feed every node: n1 sees exactly what n0's cpu implementation produced
    assert rows[1].worst == pytest.approx(0.5 * np.sqrt(8) / np.linalg.norm(x * 4), rel=1e-9)
    same = compare_kinds(pipeline(chain_spec({}), registry), {"x": x}, kind="cpu")
    assert same[0].ok and same[0].worst == 0.0 and same[0].rtol == DEFAULT_RTOL


def test_compare_kinds_skips_what_cannot_run_here(registry, monkeypatch):
    monkeypatch.setattr("vcgraph.devices.cuda_available", lambda: False)
    rows = compare_kinds(pipeline(chain_spec({}), registry), {"x": np.ones(4)}, kind="cuda")
    assert rows[0].ok is None and "CUDA" in rows[0].skipped
    rows = compare_kinds(pipeline(chain_spec({}), registry), {"x": np.ones(4)}, kind="nosuch")
    assert "no nosuch implementation" in rows[0].skipped


@pytest.fixture(scope="module")
def profile():
    from vcgraph_voice.enroll import enroll_files
    return enroll_files(sorted(glob.glob(os.path.join(REPO, "examples", "audio", "target_0*.wav"))))


@needs_cuda
@pytest.mark.parametrize("preset", PRESETS, ids=[os.path.basename(p) for p in PRESETS])
def test_cuda_matches_cpu_per_stage(preset, profile):
    from vcgraph.audio import read_audio
    audio = read_audio(os.path.join(REPO, "examples", "audio", "source.wav"))
    rows = compare_kinds(preset, {"audio": audio, "target": profile}, kind="cuda", reference="cpu", rtol=RTOL)
    compared = [r for r in rows if r.ok is not None]
    assert compared, "no node of this preset has both a cuda and a cpu implementation"
    bad = [r for r in compared if not r.ok]
    assert not bad, format_parity(rows)
