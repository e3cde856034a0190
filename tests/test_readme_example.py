"""The plugin guide's example stage, taken from README.md, fits between the built-in stages."""
from __future__ import annotations

import re
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import vcgraph.plugins
from vcgraph import Pipeline
from vcgraph.audio import Audio
from vcgraph.stage import RunContext
from vcgraph_voice.enroll import enroll_files
from vcgraph_voice.waveform import Waveform

import voice_data

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_plugin() -> types.ModuleType:
    """The first Python block of the README section 'Writing a stage plugin', as a module."""
    section = README.read_text(encoding="utf-8").split("## Writing a stage plugin", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    module = types.ModuleType("readme_plugin")
    exec(compile(code, str(README), "exec"), module.__dict__)  # noqa: S102 - our own README
    return module


@pytest.fixture
def example():
    vcgraph.plugins.reset_registry()
    module = readme_plugin()
    vcgraph.plugins.register_plugin(module, "readme-example")
    yield module
    vcgraph.plugins.reset_registry()


def test_readme_stage_scales_a_waveform(example):
    stage = example.WaveformGain(example.WaveformGain.Config(gain_db=-6.0))
    w = Waveform(torch.ones(100), 22050, 16000, 73)
    out = stage.run_cpu(RunContext("n", "cpu", "cpu"), w)["audio"]
    assert isinstance(out, Waveform) and (out.source_rate, out.source_length) == (16000, 73)
    assert torch.allclose(out.samples, torch.full((100,), 10 ** (-6 / 20)))


def test_readme_stage_runs_between_preprocess_and_features(example):
    overrides = ["nodes.louder.stage=waveform-gain", "nodes.louder.config.gain_db=-6",
                 "nodes.louder.inputs.audio=preprocessing.audio",
                 "nodes.feature_extraction.inputs.audio=louder.audio"]
    pipe = Pipeline.from_yaml(str(README.parent / "configs" / "fast.yaml"), overrides)
    order = list(pipe.graph.nodes)
    assert order.index("preprocessing") < order.index("louder") < order.index("feature_extraction")
    profile = enroll_files(voice_data.target_paths()[:1], presets=["fast"])
    x, sr = voice_data.source()
    result = pipe.run({"audio": Audio(x, sr), "target": profile})
    assert result.report.ok and result.report.nodes["louder"].implementation == "cpu"
    y = result["audio"].samples
    assert len(y) == len(x) and np.isfinite(y).all()
