"""vcgraph: declarative graphs of plugin stages, with a fallback-aware executor.

The engine (this package) knows stages, graphs, plugins and execution, nothing else: stage
types come from plugins (voice conversion from the ``vcgraph-voice`` distribution, whose
``vcgraph_voice`` package holds the seed API ``VoiceConversionPipeline``).
"""
from __future__ import annotations

from importlib import import_module as _import_module
from importlib import metadata as _metadata
from typing import TYPE_CHECKING

from .errors import (ConfigError, ConfigErrors, CUDAKernelError, InputError, PipelineError, PluginError, StageError,
                     TransientError, UserError, VCGraphError)
from .hookspecs import hookimpl

# The rest is imported on first use (PEP 562): `vcgraph --help` and plugin loading do not pay
# for pydantic, omegaconf or numpy.
_LAZY = {
    "GraphSpec": "config", "load_graph_spec": "config", "Executor": "executor", "RunResult": "executor",
    "Graph": "graph", "build_graph": "graph", "Pipeline": "pipeline", "Stream": "pipeline",
    "Registry": "plugins", "get_registry": "plugins", "register_plugin": "plugins",
    "Port": "stage", "RunContext": "stage", "Stage": "stage", "StageConfig": "stage", "implementation": "stage",
}
if TYPE_CHECKING:
    from .config import GraphSpec, load_graph_spec
    from .executor import Executor, RunResult
    from .graph import Graph, build_graph
    from .pipeline import Pipeline, Stream
    from .plugins import Registry, get_registry, register_plugin
    from .stage import Port, RunContext, Stage, StageConfig, implementation

try:
    __version__ = _metadata.version("vcgraph")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+source"

_MOVED_TO_VOICE = {"VoiceConversionPipeline", "PipelineConfig", "VoiceConversionError"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(_import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
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
