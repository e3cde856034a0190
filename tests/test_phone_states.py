"""pocketsphinx's phone-state posteriors (``vcgraph_voice.phone_states``) and their use in the
content preset's match."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from vcgraph_voice import phone_states as ps
from vcgraph_voice.errors import VoiceInputError

import voice_data
from test_content_method import _dtw_cost, _saved_with, content_pipeline, profile  # noqa: F401 (fixtures)


def _at_16k(x: np.ndarray, sr: int) -> torch.Tensor:
    import torchaudio
    return torchaudio.functional.resample(torch.from_numpy(x).float(), sr, ps.SAMPLE_RATE)


@pytest.fixture(scope="module")
def model():
    return ps.load_phone_states()


def test_posteriors_hear_silence_as_silence_and_speech_as_phones(model):
    x = _at_16k(*voice_data.source())
    quiet = torch.randn(ps.SAMPLE_RATE // 2, generator=torch.Generator().manual_seed(0)) * 1e-4
    post = model(torch.cat([quiet, x, quiet]))
    assert post.shape[1] == ps.N_PHONE_STATES
    torch.testing.assert_close(post.sum(1), torch.ones(post.shape[0]))
    phone = post.argmax(1) // ps.N_STATES
    edges = torch.cat([phone[5:45], phone[-45:-5]])           # inside the quiet half seconds
    assert float((edges == ps.SILENCE).float().mean()) > 0.8
    frames = model.cepstra(torch.cat([quiet, x, quiet]))
    loud = frames[:, 0] > frames[:, 0].quantile(0.6)            # the loudest 40 %: speech
    assert float((phone[loud] != ps.SILENCE).float().mean()) > 0.9
    assert len(set(phone[loud].tolist())) >= 15                 # many phones, not one


def test_posteriors_follow_the_words_more_than_the_speaker(model):
    """One sentence read by two dev voices aligns better than two sentences read by one voice."""
    if not voice_data.DEV.exists():
        pytest.skip("needs the development set (../shared/data/speech-dev)")

    def post(name):
        return model(_at_16k(*voice_data.read(voice_data.DEV / name))).numpy()
    same_words = _dtw_cost(post("rms_09.wav"), post("slt_09.wav"))
    same_voice = _dtw_cost(post("rms_09.wav"), post("rms_13.wav"))
    assert same_words < 0.6 * same_voice


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_posteriors_are_the_same_on_cuda_and_cpu(model):
    x = _at_16k(*voice_data.source())
    torch.testing.assert_close(ps.load_phone_states("cuda")(x.cuda()).cpu(), model(x), atol=2e-3, rtol=1e-3)


def test_a_damaged_acoustic_model_gives_a_clear_error(tmp_path):
    for name, damage in (("means", lambda b: b[: len(b) // 2]), ("sendump", lambda b: b[:-1000]),
                         ("variances", lambda b: b"not a sphinx file" + b[40:])):
        d = tmp_path / name
        shutil.copytree(ps.model_dir(), d)
        (d / name).write_bytes(damage((d / name).read_bytes()))
        with pytest.raises(VoiceInputError, match=name):
            ps.read_model(str(d))
    (d / "means").unlink()
    with pytest.raises(VoiceInputError, match="missing .*means"):
        ps.read_model(str(d))


def test_the_profile_holds_the_posteriors_of_every_target_frame(profile):  # noqa: F811
    part = profile.methods["content"]
    assert part["phone_states"].shape == (part["log_env"].shape[0], ps.N_PHONE_STATES)
    np.testing.assert_allclose(part["phone_states"].astype(np.float32).sum(1), 1.0, atol=0.02)


def test_phone_states_change_which_frames_are_chosen(content_pipeline, profile):  # noqa: F811
    """The preset matches on them (the output differs from the bottleneck-only match); with
    ``phone_states: 0`` the posteriors are not read at all: removing them changes nothing."""
    from vcgraph_voice import PipelineConfig, VoiceConversionPipeline
    from vcgraph_voice.profile import VoiceProfile
    x, sr = voice_data.source()
    x = x[: sr * 2]
    off = VoiceConversionPipeline(PipelineConfig(preset="content", sample_rate=22050, fallback_on_error=False,
                                                 overrides=["nodes.voice_synthesis.config.phone_states=0"]))
    without = {k: v for k, v in profile.methods["content"].items() if k != "phone_states"}
    bare = VoiceProfile(profile.embedding, {**profile.methods, "content": without}, profile.seconds)
    a, b = off.convert(x, profile, sample_rate=sr), off.convert(x, bare, sample_rate=sr)
    assert np.array_equal(a, b)
    assert not np.allclose(content_pipeline.convert(x, profile, sample_rate=sr), a, atol=1e-3)


def test_a_profile_without_posteriors_says_to_enrol_again(content_pipeline, profile, tmp_path):  # noqa: F811
    from vcgraph_voice import VoiceConversionError
    from vcgraph_voice.profile import VoiceProfile
    old = VoiceProfile.load(_saved_with(profile, tmp_path, **{"content/phone_states": None}))
    assert "phone_states" not in old.methods["content"]
    x, sr = voice_data.source()
    with pytest.raises(VoiceConversionError, match="no phone-state posteriors.*enrol the voice again"):
        content_pipeline.convert(x[: sr], old, sample_rate=sr)
    with pytest.raises(VoiceInputError, match="'content/phone_states' has shape"):
        VoiceProfile.load(_saved_with(profile, tmp_path, **{
            "content/phone_states": profile.methods["content"]["phone_states"][:-2]}))


def test_phone_states_weight_is_checked_at_the_yaml_key():
    from vcgraph.pipeline import Pipeline
    from vcgraph_voice.api import preset_path
    with pytest.raises(Exception, match="voice_synthesis.*phone_states"):
        Pipeline.from_yaml(preset_path("content"), ["nodes.voice_synthesis.config.phone_states=1.5"])


def test_a_source_analysed_without_posteriors_says_which_stage_to_turn_on(profile):  # noqa: F811
    """The features stage's phone_states off and the synthesis matching on them: the error
    names the setting to change (it is not the profile's fault), offline and streamed."""
    from vcgraph.pipeline import Pipeline
    from vcgraph_voice import PipelineConfig, VoiceConversionError, VoiceConversionPipeline
    from vcgraph_voice.stream import STREAM_CONTENT_CONFIG, VoiceStream
    x, sr = voice_data.source()
    off = VoiceConversionPipeline(PipelineConfig(preset="content", sample_rate=22050, fallback_on_error=False,
                                                 overrides=["nodes.feature_extraction.config.phone_states=false"]))
    with pytest.raises(VoiceConversionError, match="source's content features have none: turn on the features "
                                                   "stage's phone_states"):
        off.convert(x[:sr], profile, sample_rate=sr)
    stream = Pipeline.from_yaml(STREAM_CONTENT_CONFIG, overrides=["nodes.feature_extraction.config.phone_states=false"])
    with pytest.raises(Exception, match="source's content features have none"):
        VoiceStream(stream, profile, sample_rate=sr, block_size=320).convert(x[:sr])
