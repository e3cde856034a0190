"""Old import path of the fast method's stages (they live in ``methods/fast.py``)."""
from ..methods.fast import FastFeatures, FastSynthesis

__all__ = ["FastFeatures", "FastSynthesis"]
