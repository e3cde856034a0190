"""Streaming with the content method (configs/stream-content.yaml): the encoder run block by
block computes what the offline encoder computes, its look-ahead is declared, and the stream
converts toward the target."""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import torch
import torchaudio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "plugins"))

from vcgraph.pipeline import Pipeline  # noqa: E402

from vcgraph_voice import content_model as cm  # noqa: E402
from vcgraph_voice.dsp import content_stream as cs  # noqa: E402
from vcgraph_voice.errors import VoiceInputError  # noqa: E402
from vcgraph_voice.stream import STREAM_CONFIG, VoiceStream, stream_latency  # noqa: E402

import voice_data  # noqa: E402

from vcgraph_voice.stream import STREAM_CONTENT_CONFIG as CONFIG  # noqa: E402
SR = 16000


@pytest.fixture(scope="module")
def encoder():
    return cm.load_encoder()


@pytest.fixture(scope="module")
def src():
    x, sr = voice_data.source()
    assert sr == SR
    return x


def _push_all(sc, x, block=320):
    t = torch.from_numpy(x)
    for i in range(0, len(x), block):
        sc.push(t[i:i + block])


@pytest.mark.parametrize("block", [160, 333])
def test_streamed_log_mel_equals_the_offline_front_end(encoder, src, block):
    """Each 10 ms frame is computed once, from the samples its window covers, with the
    offline reflect padding at the start: the same values as the offline front end."""
    sc = cs.StreamContent(SR, encoder, 80)
    raw, norm = [], sc._normalise
    sc._normalise = lambda lm: (raw.append(lm), norm(lm))[1]
    _push_all(sc, src, block)
    got = torch.cat(raw)
    want = cm.ContentFrontend().log_mel(torch.from_numpy(src), SR)
    assert got.shape[0] >= want.shape[0] - 3  # all but the last frames (their window is not complete)
    assert torch.allclose(got, want[:got.shape[0]], atol=1e-4), float((got - want[:got.shape[0]]).abs().max())


def test_incremental_encoder_equals_the_offline_encoder(encoder, src):
    """Given the same normalised input, the block-by-block encoder (a window covering each
    frame's receptive field) gives the offline encoder's features."""
    fe = cm.ContentFrontend()
    norm = fe.normalise(fe.log_mel(torch.from_numpy(src), SR))
    with torch.no_grad():
        logits, z = encoder(norm[None])
    want = torch.cat([z[0], torch.log_softmax(logits[0], -1)], -1)
    sc = cs.StreamContent(SR, encoder, 80)
    sc._normalise = lambda lm: norm[sc.n_mel - lm.shape[0]:sc.n_mel]
    _push_all(sc, src)
    n, start = sc.n_content, sc.content_start
    assert n > RECEPTIVE_MIN
    assert torch.allclose(sc.content, want[start:n], atol=1e-4), float((sc.content - want[start:n]).abs().max())


RECEPTIVE_MIN = cs.RECEPTIVE_LEFT + 10  # enough frames that the window slides


def test_streamed_normalisation_approaches_the_offline_labels(encoder):
    """Offline normalisation reads the whole utterance; the stream starts from the training
    voices' average and follows its own frames. On a longer stream (four sentences) most
    frames get the offline label, more than without the prior at the start."""
    x = np.concatenate([voice_data.read(p)[0] for p in voice_data.target_paths()])
    fe = cm.ContentFrontend()
    with torch.no_grad():
        logits, _ = encoder(fe(torch.from_numpy(x), SR)[None])
    want = logits[0].argmax(1)
    agreement = {}
    for name, frames in (("prior", 200.0), ("no prior", 1e-3)):
        sc = cs.StreamContent(SR, encoder, 80, prior_frames=frames)
        _push_all(sc, x)
        got = sc.content[:, cm.BOTTLENECK:].argmax(1)
        ref = want[sc.content_start:sc.content_start + got.shape[0]]
        agreement[name] = (float((got[:50] == ref[:50]).float().mean()), float((got == ref).float().mean()))
    assert agreement["prior"][1] > 0.6, agreement
    assert agreement["prior"][0] > agreement["no prior"][0], agreement  # the first half second


def test_a_corrupt_normalisation_prior_is_a_clear_error(tmp_path):
    bad = tmp_path / "prior.json"
    bad.write_text("{not json")
    with pytest.raises(VoiceInputError, match="normalisation prior"):
        cs.norm_prior(str(bad))
    bad.write_text(json.dumps({"mean": [0.0] * 3, "std": [1.0] * 3}))
    with pytest.raises(VoiceInputError, match="80 means"):
        cs.norm_prior(str(bad))


def test_spectra_move_between_sample_rates_by_frequency():
    R = cs.rebin_hz(22050, 1024, 16000, 384)
    f_from = torch.arange(513) * 22050 / 1024
    spectrum = torch.sin(f_from / 1000)  # any smooth function of frequency
    f_to = torch.arange(193) * 16000 / 384
    assert torch.allclose(spectrum @ R, torch.sin(f_to / 1000), atol=1e-3)


# -- the stream ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def profile():
    from vcgraph_voice.enroll import enroll_files
    return enroll_files([str(p) for p in voice_data.target_paths()], presets=["content"])


@pytest.fixture(scope="module")
def pipe():
    return Pipeline.from_yaml(CONFIG)


def test_declared_latency_covers_the_content_lookahead(pipe):
    fast = stream_latency(Pipeline.from_yaml(STREAM_CONFIG).graph, SR, 320)
    lat = stream_latency(pipe.graph, SR, 320)
    need_ms = 1000 * cs.content_lookahead(SR, 1, 80) / SR
    assert lat.parts_ms["lookahead"] >= need_ms > fast.parts_ms["lookahead"]
    assert lat.algorithmic_ms < 100


@pytest.mark.parametrize("rate", [16000, 22050])
def test_content_stream_converts_in_time_toward_the_target(pipe, profile, src, rate):
    """Every block's output is ready in time (no frame waited for its content), the output has
    the input's length, and it moves toward the target voice (GE2E) with F0 near the target's."""
    x = src if rate == SR else torchaudio.functional.resample(torch.from_numpy(src), SR, rate).numpy()
    vs = VoiceStream(pipe, profile, sample_rate=rate, block_size=int(rate * 0.02))
    y = vs.convert(x)
    assert len(y) == len(x) and np.isfinite(y).all() and np.abs(y).max() > 0.05
    assert vs.underruns == 0
    assert vs._stream.state["feature_extraction"]["obj"]["late"] == 0
    centroid = voice_data.target_centroid()
    before, after = float(voice_data.embed(x, rate) @ centroid), float(voice_data.embed(y, rate) @ centroid)
    assert after > before + 0.1, (before, after)
    f_tgt = float(np.exp(profile.methods["content"]["lf0_mean"][0]))
    f_src, f_out = voice_data.median_f0(x, rate), voice_data.median_f0(y, rate)
    assert abs(np.log2(f_out / f_tgt)) < 0.5 * abs(np.log2(f_src / f_tgt)), (f_src, f_out, f_tgt)


def test_streamed_refinement_learns_a_spectral_difference_block_by_block(profile):
    """The causal refinement (``refine: 2``) fits its maps on the frames seen so far: on a
    stream whose spectra all differ from the target's in one way the mapping left (formants 20 %
    higher, a falling tilt), the later frames match the undistorted frames better than without
    it, and its maps do not drift (a map fitted on its own matches did: worse than none). Source:
    the target's second half so distorted, with noisy content features, twice over in 20 ms
    blocks (14 s); target: its first half; judged on the second pass."""
    from vcgraph_voice.dsp import content as kernels
    from vcgraph_voice.dsp import fast
    part = profile.methods["content"]
    n = part["log_env"].shape[0] // 2
    half = {k: part[k][:n] for k in ("content", "log_env", "ap")}
    half["sr"] = part["sr"]
    true_env = torch.from_numpy(part["log_env"][n:2 * n].astype(np.float32)).repeat(2, 1)
    seen = fast.warp_envelope(true_env, 1.2) + torch.linspace(0.0, -1.5, true_env.shape[1])[None]
    c = torch.from_numpy(part["content"][n:2 * n].astype(np.float32))
    g = torch.Generator().manual_seed(0)
    c = (c + 0.5 * c.std() * torch.randn(c.shape, generator=g)).repeat(2, 1)
    T = c.shape[0]
    blocks = torch.stack([c[(torch.arange(T) + 2 * s).clamp(0, T - 1)] for s in (-1, 0, 1)], 1)  # context 1
    speech = fast._speech_mask(true_env)
    fb, _ = fast.FastResources().mel(22050, 1024, 40, 7600.0, torch.device("cpu"))
    shape = lambda e: (lambda m: m - m.mean(1, keepdim=True))(fast.log_mel(e, fb))
    second = speech.clone()
    second[:T // 2] = False
    err = {}
    for refine in (0, 2):
        matcher = cs.StreamMatcher(kernels.ContentParams(spectral_match=0.6, context=1, refine=refine),
                                   int(part["sr"][0]), 2 * (true_env.shape[1] - 1), refine_after_s=0.5)
        matcher.set_target(half)
        out = torch.cat([matcher.match(blocks[a:a + 4], seen[a:a + 4], seen[a:a + 4], speech[a:a + 4])[0]
                         for a in range(0, T, 4)])
        err[refine] = float(((shape(out) - shape(true_env))[second] ** 2).mean())
    assert err[2] < 0.85 * err[0], err


def test_streamed_content_shape_is_the_offline_map_and_finds_frames_a_distorted_spectrum_misses(profile):
    """``content_shape`` in a stream: the map from the profile's content keys to its spectra is
    the one offline synthesis fits, and from the first block on (it needs no source statistics)
    the frames found for a stream whose spectra the mapping left distorted (formants 25 %
    higher, a falling tilt) are nearer the true ones than with the spectral query alone.
    Source: the target's second half so distorted, in 20 ms blocks; target: its first half."""
    from vcgraph_voice.dsp import content as kernels
    from vcgraph_voice.dsp import fast
    part = profile.methods["content"]
    n = part["log_env"].shape[0] // 2
    half = {k: part[k][:n] for k in ("content", "log_env", "ap")}
    half["sr"] = part["sr"]
    true_env = torch.from_numpy(part["log_env"][n:2 * n].astype(np.float32))
    seen = fast.warp_envelope(true_env, 1.25) + torch.linspace(0.0, -1.5, true_env.shape[1])[None]
    c = torch.from_numpy(part["content"][n:2 * n].astype(np.float32))
    T = c.shape[0]
    blocks = torch.stack([c[(torch.arange(T) + 2 * s).clamp(0, T - 1)] for s in (-1, 0, 1)], 1)  # context 1
    speech = fast._speech_mask(true_env)
    fb, _ = fast.FastResources().mel(22050, 1024, 40, 7600.0, torch.device("cpu"))
    shape = lambda e: (lambda m: m - m.mean(1, keepdim=True))(fast.log_mel(e, fb))
    err = {}
    for w in (0.0, 0.7):
        p = kernels.ContentParams(spectral_match=0.6, context=1, content_shape=w)
        matcher = cs.StreamMatcher(p, int(part["sr"][0]), 2 * (true_env.shape[1] - 1))
        matcher.set_target(half)
        if w:
            offline = kernels.prepare_target(half, p, fast.FastParams(), int(part["sr"][0]), "cpu")
            torch.testing.assert_close(matcher.shape_map, offline.shape_map, rtol=1e-4, atol=1e-4)
        out = torch.cat([matcher.match(blocks[a:a + 4], seen[a:a + 4])[0] for a in range(0, T, 4)])
        err[w] = float(((shape(out) - shape(true_env))[speech] ** 2).mean())
    assert err[0.7] < 0.8 * err[0.0], err


def test_a_stream_shorter_than_the_refinement_warm_up_is_converted_as_unrefined(pipe, profile, src):
    """Maps fitted on a few seconds lose words (README), so ``stream-content`` uses them only
    after ``refine_after_s`` of speech: a 3.4 s clip comes out as it would without refinement,
    and with the warm-up lowered it does not."""
    out = {}
    for name, overrides in (("preset", []), ("unrefined", ["nodes.voice_synthesis.config.refine=0"]),
                            ("early", ["nodes.voice_synthesis.config.refine_after_s=0.5"])):
        p = pipe if not overrides else Pipeline.from_yaml(CONFIG, overrides=overrides)
        out[name] = VoiceStream(p, profile, sample_rate=SR, block_size=320).convert(src)
    assert pipe.graph.nodes["voice_synthesis"].config.refine == 2
    np.testing.assert_array_equal(out["preset"], out["unrefined"])
    assert np.abs(out["early"] - out["unrefined"]).max() > 1e-3


def test_stream_refine_without_a_spectral_match_is_refused():
    from vcgraph.errors import ConfigError
    with pytest.raises(ConfigError, match="spectral_match is 0"):
        Pipeline.from_yaml(CONFIG, overrides=["nodes.voice_synthesis.config.spectral_match=0",
                                              "nodes.voice_synthesis.config.refine=2"])


def test_a_profile_without_content_data_is_refused(pipe):
    from vcgraph_voice.enroll import enroll_files
    fast_only = enroll_files([str(voice_data.target_paths()[0])], presets=["fast"])
    with pytest.raises(VoiceInputError, match="--presets content"):
        VoiceStream(pipe, fast_only, sample_rate=SR, block_size=320)


def test_a_profile_of_another_content_encoder_is_refused_by_the_stream(pipe, profile, src):
    """Matching a stream's content features against another encoder's would pick wrong frames
    silently; the stream says to enrol again instead."""
    from vcgraph_voice.profile import VoiceProfile
    content = dict(profile.methods["content"], encoder=np.arange(8, dtype=np.uint8))
    other = VoiceProfile(profile.embedding, dict(profile.methods, content=content), profile.seconds)
    vs = VoiceStream(pipe, other, sample_rate=SR, block_size=320)
    with pytest.raises(Exception, match="made by content encoder 0001020304050607.*Enrol the voice again"):
        vs.convert(src[:SR])


# -- pocketsphinx's phone states, streamed ----------------------------------------------------



@pytest.mark.parametrize("block", [211, 320])
def test_streamed_phone_states_equal_the_offline_ones_given_the_same_cepstral_mean(src, block):
    """Framing, pre-emphasis and padding as offline: with the utterance's cepstral mean in place
    of the running one, every final frame's posteriors are the offline ones; with the running
    mean, the frames after the first second mostly agree."""
    from vcgraph_voice.phone_states import load_phone_states
    model = load_phone_states()
    x = torch.from_numpy(src)
    offline = model(x)

    class UtteranceMean:
        data_mean = model.cepstra(x).mean(0)

        def update(self, *_):
            pass
    exact = cs.StreamPhoneStates(model)
    exact.mean = UtteranceMean()
    _push_all(exact, src, block)
    assert exact.n_post >= offline.shape[0] - 5
    torch.testing.assert_close(exact.post, offline[:exact.n_post], atol=1e-4, rtol=1e-3)
    running = cs.StreamPhoneStates(model)
    _push_all(running, src, block)
    late = slice(100, running.n_post)
    agree = (running.post[late].argmax(1) == offline[late].argmax(1)).float().mean()
    assert float(agree) > 0.8


def test_phone_states_in_a_stream_are_declared_and_change_the_match(pipe, profile, src):
    """The graph matches on them (+-10 ms, no look-ahead beyond the encoder's); a wider context
    declares its longer look-ahead, no frame waits for them, the frames chosen change, and a
    profile enrolled without them is a clear error."""
    from vcgraph_voice.profile import VoiceProfile
    assert pipe.graph.nodes["voice_synthesis"].config.phone_states == 0.5
    lat = stream_latency(pipe.graph, SR, 320).parts_ms["lookahead"]
    assert lat >= 1000 * cs.phone_state_lookahead(SR, 1, 80) / SR
    wide = Pipeline.from_yaml(CONFIG, overrides=["nodes.feature_extraction.config.phone_state_context=2"])
    assert stream_latency(wide.graph, SR, 320).parts_ms["lookahead"] >= 1000 * cs.phone_state_lookahead(SR, 2, 80) / SR > lat
    plain = Pipeline.from_yaml(CONFIG, overrides=["nodes.voice_synthesis.config.phone_states=0",
                                                  "nodes.feature_extraction.config.phone_states=false"])
    out = {}
    for name, p in (("graph", pipe), ("wide", wide), ("plain", plain)):
        vs = VoiceStream(p, profile, sample_rate=SR, block_size=320)
        out[name] = vs.convert(src)
        assert vs._stream.state["feature_extraction"]["obj"]["late"] == 0 and len(out[name]) == len(src)
    assert np.abs(out["graph"] - out["plain"]).max() > 1e-3 and np.abs(out["graph"] - out["wide"]).max() > 1e-3
    content = {k: v for k, v in profile.methods["content"].items() if k != "phone_states"}
    old = VoiceProfile(profile.embedding, dict(profile.methods, content=content), profile.seconds)
    with pytest.raises(Exception, match="no phone-state posteriors.*enrol the voice again"):
        VoiceStream(pipe, old, sample_rate=SR, block_size=320).convert(src[:SR])


def test_stream_blend_high_takes_more_of_the_matched_frames_above_the_split(profile, src):
    """As offline (tests/test_band_blend.py): with ``blend: 0.8, blend_high: 1.0`` the streamed
    output's spectrum above 3.5 kHz is that of full replacement, below 2.5 kHz the plain blend's
    (measured on the audio, frame by frame); ``blend_high`` equal to ``blend`` changes nothing."""
    from test_band_blend import assert_split_by_band
    V = "nodes.voice_synthesis.config."
    run = lambda *o: VoiceStream(Pipeline.from_yaml(CONFIG, overrides=[V + s for s in o]), profile,
                                 sample_rate=SR, block_size=320).convert(src)
    split, replaced, blended = run("blend=0.8", "blend_high=1.0"), run("blend=1.0"), run("blend=0.8")
    assert_split_by_band(split, replaced, blended, SR)
    np.testing.assert_allclose(run("blend=0.8", "blend_high=0.8"), blended, atol=1e-5)


def test_stream_postfilter_sharpens_the_streamed_spectra(profile, src):
    """As offline (tests/test_postfilter.py): with ``postfilter`` the streamed output's loud
    frames have spectra (250 Hz bands over 0.2-5 kHz, level removed) that spread further about
    their mean, and the stream keeps the input's length."""
    from test_postfilter import spread_ratios
    run = lambda pf: VoiceStream(Pipeline.from_yaml(CONFIG, overrides=[f"nodes.voice_synthesis.config.postfilter={pf}"]),
                                 profile, sample_rate=SR, block_size=320).convert(src)
    plain, sharp = run(0), run(0.3)
    assert len(sharp) == len(src)
    ratio = spread_ratios(plain, sharp, SR)
    assert np.median(ratio) > 1.05 and (ratio > 1).mean() > 0.8, (np.median(ratio), (ratio > 1).mean())


def test_a_stream_renders_the_matched_frames_adaptive_envelope_as_offline(profile):
    """``adaptive_frames`` in a stream: the target frames it renders are the ones offline
    synthesis prepares (the adaptive envelope in voiced frames at the cepstral energy), and the
    keys it matches on are as without it."""
    from vcgraph_voice.dsp import content as kernels
    from vcgraph_voice.dsp import fast
    part = profile.methods["content"]
    assert "adaptive_log_env" in part
    sr, n_fft = int(part["sr"][0]), 2 * (part["log_env"].shape[1] - 1)
    matchers = {}
    for w in (0.0, 1.0):
        p = kernels.ContentParams(spectral_match=0.6, context=1, adaptive_frames=w)
        matchers[w] = cs.StreamMatcher(p, sr, n_fft)
        matchers[w].set_target(part)
    offline = kernels.prepare_target(part, kernels.ContentParams(spectral_match=0.6, context=1, adaptive_frames=1.0),
                                     fast.FastParams(), sr, "cpu")
    torch.testing.assert_close(matchers[1.0].env, offline.log_env, rtol=1e-4, atol=1e-4)
    assert torch.equal(matchers[1.0].keys, matchers[0.0].keys)
    assert not torch.allclose(matchers[1.0].env, matchers[0.0].env, atol=0.05)
