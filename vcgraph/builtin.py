"""Value types every vcgraph install understands on the command line."""
from __future__ import annotations

import json

import numpy as np

from .audio import read_audio
from .hookspecs import hookimpl


def _load_array(text: str) -> np.ndarray:
    if text.endswith(".npy"):
        return np.load(text, allow_pickle=False)
    return np.asarray(json.loads(text), dtype=np.float64)


@hookimpl
def register_value_types(register):
    register("audio", read_audio)
    register("array", _load_array)
    register("int", int)
    register("float", float)
    register("str", str)
    register("bool", lambda t: t.lower() in ("1", "true", "yes", "on"))
