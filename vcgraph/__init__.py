"""vcgraph: declarative graphs of plugin stages, with a fallback-aware executor.

The engine (this package) knows stages, graphs, plugins and execution, nothing else: stage
types come from plugins (voice conversion from the ``vcgraph-voice`` distribution, whose
``vcgraph_voice`` package holds the seed API ``VoiceConversionPipeline``).
"""
from __future__ import annotations

from importlib import metadata as _metadata

from .config import GraphSpec, load_graph_spec
from .errors import (ConfigError, ConfigErrors, CUDAKernelError, InputError, PipelineError, PluginError, StageError,
                     TransientError, UserError, VCGraphError)
from .executor import Executor, RunResult
from .graph import Graph, build_graph
from .hookspecs import hookimpl
from .pipeline import Pipeline, Stream
from .plugins import Registry, get_registry, register_plugin
from .stage import Port, RunContext, Stage, StageConfig, implementation

try:
    __version__ = _metadata.version("vcgraph")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+source"

_MOVED_TO_VOICE = {"VoiceConversionPipeline", "PipelineConfig", "VoiceConversionError"}


def __getattr__(name: str):
    if name in _MOVED_TO_VOICE:  # a hint only: the engine never imports a plugin
        raise AttributeError(f"vcgraph.{name} is part of the voice plugin: "
                             f"`from vcgraph_voice import {name}` (pip install vcgraph-voice)")
    raise AttributeError(f"module 'vcgraph' has no attribute {name!r}")

__all__ = [
    "ConfigError", "ConfigErrors", "CUDAKernelError", "Executor", "InputError", "Graph", "GraphSpec", "Pipeline",
    "PipelineError", "PluginError", "Port", "Registry", "RunContext", "RunResult", "Stage", "StageConfig",
    "StageError", "Stream", "TransientError", "UserError", "VCGraphError", "build_graph", "get_registry",
    "hookimpl", "implementation", "load_graph_spec", "register_plugin",
]
