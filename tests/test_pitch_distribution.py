"""The content preset's pitch distribution: the source's voiced frames mapped onto the target's
own log-F0 distribution by rank (``content-synthesis`` ``f0_quantile``), not only onto its mean
and spread."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import voice_data
from test_content_method import profile  # noqa: F401 (fixture)
from test_content_method import _synthesis_pipeline as _pipeline


def _skew(lf: np.ndarray) -> float:
    """How far a log-F0 distribution reaches above its median against below it: (q90 - q50) /
    (q50 - q10); 1 for a symmetric one."""
    q10, q50, q90 = np.quantile(lf, [0.1, 0.5, 0.9])
    return float((q90 - q50) / (q50 - q10))


def _with_skewed_pitch(profile, sign: float):  # noqa: F811
    """``profile`` whose voiced frames' log-F0 keep their mean and spread but are skewed: most
    frames a little below the mean and a long tail far above it (``sign`` -1: the mirror image,
    a long tail below). The order of the frames' pitches is kept, so only the distribution changes."""
    from vcgraph_voice.profile import VoiceProfile
    part = dict(profile.methods["content"])
    lf = part["frame_lf0"].astype(np.float64)
    voiced = lf > 0
    mu, sd = float(part["lf0_mean"][0]), float(part["lf0_std"][0])
    n = int(voiced.sum())
    e = -np.log1p(-(np.arange(n) + 0.5) / n)  # exponential quantiles: mean 1, spread 1, long upper tail
    z = np.empty(n)
    z[np.argsort(sign * lf[voiced])] = e - 1.0
    skewed = np.zeros(lf.shape, np.float32)
    skewed[voiced] = mu + sign * sd * z
    part["frame_lf0"] = skewed
    return VoiceProfile(profile.embedding, {**profile.methods, "content": part}, profile.seconds)


def _skews(profile, convert, out_sr: int) -> tuple[tuple[float, float], tuple[float, float]]:  # noqa: F811
    """((off, on) toward the long-upper-tail voice, (off, on) toward its mirror image): the
    :func:`_skew` of the tracked F0 of ``convert(target, f0_quantile)`` (audio at ``out_sr``)
    with ``f0_quantile`` 0 and 1."""
    skew = {}
    for sign in (1.0, -1.0):
        target = _with_skewed_pitch(profile, sign)
        f_off, f_on = (voice_data.f0_track(convert(target, q), out_sr) for q in (0, 1))
        assert (f_off > 0).sum() > 200 and (f_on > 0).sum() > 200
        skew[sign] = (_skew(np.log(f_off[f_off > 0])), _skew(np.log(f_on[f_on > 0])))
    return skew[1.0], skew[-1.0]


def test_quantile_mapping_gives_the_targets_distribution_and_keeps_the_sources_order():
    from vcgraph_voice.dsp import fast
    from vcgraph_voice.dsp.content import quantile_mapped_f0
    g = torch.Generator().manual_seed(0)
    f0, voiced = voice_data.random_f0_contour(500, 150.0, 0.12, slice(100, 140), g)
    target = torch.log(torch.tensor(90.0) + 40.0 * torch.rand(2000, generator=g) ** 3).sort().values
    mean, std = float(target.mean()), float(target.std())
    full = quantile_mapped_f0(f0, voiced, target, mean, std, 1.0)
    assert torch.equal(full[~voiced], torch.zeros(40))
    out, src = torch.log(full[voiced]), torch.log(f0[voiced])
    assert bool((out[src.argsort()].diff() >= 0).all())  # the source's order kept
    probs = torch.tensor([0.1, 0.5, 0.9])
    assert torch.allclose(torch.quantile(out, probs), torch.quantile(target, probs), atol=0.01)
    none = quantile_mapped_f0(f0, voiced, target, mean, std, 0.0)
    lf = torch.log(f0.clamp_min(1.0))
    mu, sd = fast.contour_stats(lf, voiced)
    assert torch.allclose(none[voiced], torch.exp((lf - mu) / sd * std + mean)[voiced], rtol=1e-5)  # the usual mapping
    half = quantile_mapped_f0(f0, voiced, target, mean, std, 0.5)
    assert torch.allclose(half[voiced], torch.sqrt(none * full)[voiced], rtol=1e-4)  # half way in log-F0
    one_voiced = torch.zeros(500, dtype=torch.bool)
    one_voiced[3] = True
    assert quantile_mapped_f0(f0, one_voiced, target, mean, std, 1.0) is None


def test_the_output_pitch_takes_the_skew_of_the_targets_distribution(profile):  # noqa: F811
    """Toward a voice whose pitch has a long upper tail, the output's tracked F0 (pyworld) reaches
    further above its median than below it, more than with the mean-and-spread mapping alone;
    toward the mirror-image voice, less. Both voices have the same mean and spread."""
    x, sr = voice_data.source()
    pipes = {q: _pipeline(f"f0_quantile={q}") for q in (0, 1)}
    skew = _skews(profile, lambda target, q: pipes[q].convert(x, target, sample_rate=sr), 22050)
    (off_up, on_up), (off_down, on_down) = skew
    assert on_up > 1.3 * off_up and on_down < off_down / 1.3, skew
    assert on_up > 1.5 > 0.67 > on_down, skew


def test_f0_quantile_is_checked_at_the_yaml_key():
    from vcgraph.pipeline import Pipeline
    from vcgraph_voice.api import preset_path
    with pytest.raises(Exception, match="voice_synthesis.*f0_quantile"):
        Pipeline.from_yaml(preset_path("content"), ["nodes.voice_synthesis.config.f0_quantile=1.5"])


def test_a_stream_takes_the_skew_of_the_targets_distribution_too(profile):  # noqa: F811
    """``stream-content`` with ``f0_quantile``: a stream cannot rank the frames to come, so each
    voiced frame's z-score under the running source statistics is read as a normal quantile;
    toward the long-upper-tail voice the streamed output reaches further above its median than
    with the mean-and-spread mapping alone, toward the mirror image less; the length is kept."""
    from vcgraph.pipeline import Pipeline
    from vcgraph_voice.stream import STREAM_CONTENT_CONFIG, VoiceStream
    x, sr = voice_data.source()
    def run(target, q):
        y = VoiceStream(Pipeline.from_yaml(STREAM_CONTENT_CONFIG, overrides=[f"nodes.voice_synthesis.config.f0_quantile={q}"]),
                        target, sample_rate=sr, block_size=320).convert(x)
        assert len(y) == len(x)
        return y
    skew = _skews(profile, run, sr)
    (off_up, on_up), (off_down, on_down) = skew
    assert on_up > 1.3 * off_up and on_down < off_down / 1.3, skew
