"""A file-to-file converter around a preset graph (what ``vcgraph eval`` drives by default)."""
from __future__ import annotations

from typing import Sequence

from vcgraph.audio import read_audio, write_audio
from vcgraph.pipeline import Pipeline

from .enroll import DEFAULT_PRESETS, Enroller
from .presets import DEFAULT_PRESET, PRESETS, preset_path
from .profile import load_target


class PipelineConverter:
    """``enroll(refs) -> profile``, ``convert(src, profile, out)`` with one graph, built once."""

    def __init__(self, config: str = DEFAULT_PRESET, overrides: Sequence[str] = ()):
        self.pipeline = Pipeline.from_yaml(preset_path(config), list(overrides))
        self.presets = (config,) if config in PRESETS else DEFAULT_PRESETS
        self.overrides = tuple(overrides)
        self.enroller = Enroller()

    def enroll(self, reference_paths: Sequence[str]):
        return self.enroller.enroll_files(reference_paths, presets=self.presets)

    def load_profile(self, path: str):
        return load_target(path)

    def convert(self, source_path: str, profile, out_path: str) -> None:
        result = self.pipeline.run({"audio": read_audio(source_path), "target": profile})
        write_audio(out_path, result["audio"])
