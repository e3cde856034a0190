"""The engine's ``models`` plugin (entry point ``models``): registers the stage types of
:mod:`vcgraph.model_stages`, imported only when stage types are needed so that loading the
plugin stays cheap."""
from __future__ import annotations

from .hookspecs import hookimpl


@hookimpl
def register_stages(register):
    from .model_stages import OnnxModel, TorchScriptModel
    register(OnnxModel)
    register(TorchScriptModel)
