"""Value types every vcgraph install understands on the command line."""
from __future__ import annotations

import json

from .hookspecs import hookimpl


def _read_audio(text: str):
    from .audio import read_audio
    return read_audio(text)


def _load_array(text: str):
    import numpy as np
    if text.endswith(".npy"):
        return np.load(text, allow_pickle=False)
    return np.asarray(json.loads(text), dtype=np.float64)


@hookimpl
def register_value_types(register):
    register("audio", _read_audio)
    register("array", _load_array)
    register("int", int)
    register("float", float)
    register("str", str)
    register("bool", lambda t: t.lower() in ("1", "true", "yes", "on"))
