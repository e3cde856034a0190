"""The shipped preset graphs (``configs/*.yaml``) by name."""
from __future__ import annotations

import os

from vcgraph.errors import ConfigError

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
PRESETS = ("content", "quality", "fast")
# what `vcgraph convert`, `batch`, `eval` and PipelineConfig use when no preset is named: the
# content preset (nearer the target than quality by both speaker encoders, fewer words lost by
# Whisper, ten times faster; more lost by pocketsphinx: README, "Which preset")
DEFAULT_PRESET = "content"


def preset_path(name_or_path: str) -> str:
    """The YAML file of a preset name (``quality``, ``fast``, ``content``) or a path given as is.

    A name that is neither a preset nor an existing file is a :class:`ConfigError` listing
    the presets.
    """
    if name_or_path in PRESETS:
        return os.path.join(CONFIG_DIR, f"{name_or_path}.yaml")
    if not os.path.exists(os.fspath(name_or_path)):
        raise ConfigError(f"'{name_or_path}' is neither a preset ({', '.join(PRESETS)}) nor a graph file")
    return name_or_path
