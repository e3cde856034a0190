"""Matching in the target keys' principal directions (``content-synthesis`` ``match_rank``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import voice_data
from test_content_method import _synthesis_pipeline, profile  # noqa: F401 (fixture)


def _keys_and_queries(profile, rank: int):  # noqa: F811
    """The preset's matching keys of the first half of the bundled profile's frames (prepared
    with ``rank``), and the second half's frames as queries."""
    from vcgraph_voice.dsp import content as kernels
    from vcgraph_voice.dsp.fast import FastParams
    part = profile.methods["content"]
    n = part["log_env"].shape[0] // 2
    half = {k: (v[:n] if getattr(v, "ndim", 0) and v.shape[0] == part["log_env"].shape[0] else v)
            for k, v in part.items()}
    params = kernels.ContentParams(spectral_match=0.6, phone_states=0.5, match_rank=rank)
    pt = kernels.prepare_target(half, params, FastParams(), 22050, "cpu")
    content = torch.from_numpy(part["content"][n:2 * n].astype(np.float32))
    states = torch.from_numpy(part["phone_states"][n:2 * n].astype(np.float32))
    q = kernels._matching_features(content, params, states)
    spectral = kernels.spectral_queries(torch.from_numpy(part["log_env"][n:2 * n].astype(np.float32)),
                                        kernels._spectral_fb(22050, FastParams(), "cpu", None), pt.spectral_norm)
    return pt, kernels.joint_keys(q, spectral, 0.6)


def test_the_frames_found_are_nearly_those_of_the_full_keys(profile):  # noqa: F811
    full, queries = _keys_and_queries(profile, 0)
    assert full.basis is None and full.match_keys.shape[1] > 600
    found = (queries @ full.match_keys.T).topk(4, dim=1).indices
    shared = {}
    for rank in (256, 16):
        low, _ = _keys_and_queries(profile, rank)
        assert low.match_keys.shape[1] == rank
        got = (low.project(queries) @ low.match_keys.T).topk(4, dim=1).indices
        shared[rank] = float((got[:, :, None] == found[:, None, :]).any(2).float().mean())
    assert shared[256] > 0.8 and shared[16] < shared[256] - 0.2, shared  # and the test can tell


def test_a_rank_not_below_the_keys_width_matches_exactly(profile):  # noqa: F811
    full, queries = _keys_and_queries(profile, 0)
    same, _ = _keys_and_queries(profile, 4096)
    assert same.basis is None and torch.equal(same.match_keys, full.match_keys)


def test_the_preset_converts_nearly_as_exact_matching_does(profile):  # noqa: F811
    """The output's spectrum, frame by frame, with the preset's ``match_rank`` against exact
    matching: near it (0.3 dB on average), and much nearer than with too few directions."""
    x, sr = voice_data.source()
    run = lambda *o: _synthesis_pipeline(*o).convert(x, profile, sample_rate=sr)
    ranked, exact, coarse = run(), run("match_rank=0"), run("match_rank=16")
    spec = lambda y: torch.stft(torch.from_numpy(y), 1024, 256, window=torch.hann_window(1024),
                                return_complex=True).abs().clamp_min(1e-4).log()
    d = lambda a, b: float((spec(a) - spec(b)).abs().mean())
    assert d(ranked, exact) < 0.04 and d(ranked, exact) < 0.5 * d(coarse, exact), (d(ranked, exact), d(coarse, exact))


def test_match_rank_is_checked_at_the_yaml_key():
    from vcgraph.pipeline import Pipeline
    from vcgraph_voice.api import preset_path
    with pytest.raises(Exception, match="voice_synthesis.*match_rank"):
        Pipeline.from_yaml(preset_path("content"), ["nodes.voice_synthesis.config.match_rank=-1"])
