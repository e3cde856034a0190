"""vcgraph's built-in voice-conversion plugin.

Registered through the ``vcgraph`` entry point group like any third-party plugin. Stage
types: ``preprocess``, ``content-features`` / ``quality-features`` / ``fast-features``, ``speaker-encoder``,
``content-synthesis`` / ``quality-synthesis`` / ``fast-synthesis``, ``postprocess`` and the fallback ``safe-output``;
streaming: ``stream-input``, ``fast-stream-features``, ``fast-stream-synthesis``, ``stream-output``;
commands: ``enroll``, ``convert``, ``batch``, ``stream``, ``eval``;
value type ``speaker`` (a ``.vcp`` profile or a ``.npy`` embedding); a ``vcgraph bench``
baseline ``stft-mel``. The seed API is importable from here::

    from vcgraph_voice import VoiceConversionPipeline, PipelineConfig, VoiceConversionError

Everything is imported on first use, so loading the plugin (every ``vcgraph`` command does)
stays cheap.
"""
from __future__ import annotations

import warnings

from vcgraph.hookspecs import hookimpl

# resemblyzer (webrtcvad) and pyworld import pkg_resources, which warns on every start.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

__version__ = "0.1.0"

_SEED_API = {"VoiceConversionPipeline": "api", "PipelineConfig": "api", "VoiceConversionError": "errors"}
__all__ = sorted(_SEED_API)


def __getattr__(name: str):
    if name in _SEED_API:
        import importlib
        return getattr(importlib.import_module(f".{_SEED_API[name]}", __name__), name)
    raise AttributeError(f"module 'vcgraph_voice' has no attribute {name!r}")


@hookimpl
def register_stages(register):
    from .methods import stage_types
    from .stages.audio_io import Postprocess, Preprocess, SafeOutput
    from .stages.speaker import SpeakerEncoder
    for stage in (Preprocess, SpeakerEncoder, *stage_types(), Postprocess, SafeOutput):
        register(stage)
    from .stages.fast_stream import FastStreamFeatures, FastStreamSynthesis
    from .stages.content_stream import ContentStreamFeatures, ContentStreamSynthesis
    from .stages.stream_io import StreamInput, StreamOutput
    for stage in (StreamInput, FastStreamFeatures, FastStreamSynthesis, StreamOutput):  # streaming (configs/stream.yaml)
        register(stage)
    for stage in (ContentStreamFeatures, ContentStreamSynthesis):  # configs/stream-content.yaml
        register(stage)


@hookimpl
def register_commands(subparsers):
    from .cli import add_commands
    add_commands(subparsers)


@hookimpl
def register_bench_baselines(register):
    from .baseline import StftMel
    register("stft-mel", StftMel())


@hookimpl
def register_value_types(register):
    from .profile import load_target
    register("speaker", load_target)
