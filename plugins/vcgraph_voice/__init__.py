"""vcgraph's built-in voice-conversion plugin.

Registered through the ``vcgraph`` entry point group like any third-party plugin. Stage
types: ``preprocess``, ``content-features`` / ``world-features`` / ``fast-features``, ``speaker-encoder``,
``content-synthesis`` / ``knn-synthesis`` / ``fast-synthesis``, ``postprocess`` and the fallback ``safe-output``; commands: ``enroll``, ``convert``, ``eval``;
value type ``speaker`` (a ``.vcp`` profile or a ``.npy`` embedding).
"""
from __future__ import annotations

import warnings

from vcgraph.hookspecs import hookimpl

# resemblyzer (webrtcvad) and pyworld import pkg_resources, which warns on every start.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

__version__ = "0.1.0"


@hookimpl
def register_stages(register):
    from .stages.audio_io import Postprocess, Preprocess, SafeOutput
    from .stages.content_knn import ContentFeatures, ContentSynthesis
    from .stages.fast_torch import FastFeatures, FastSynthesis
    from .stages.speaker import SpeakerEncoder
    from .stages.world_knn import KnnSynthesis, WorldFeatures
    for stage in (Preprocess, ContentFeatures, WorldFeatures, FastFeatures, SpeakerEncoder, ContentSynthesis,
                  KnnSynthesis, FastSynthesis, Postprocess, SafeOutput):
        register(stage)


@hookimpl
def register_commands(subparsers):
    from .cli import add_commands
    add_commands(subparsers)


@hookimpl
def register_value_types(register):
    from .profile import load_target
    register("speaker", load_target)
