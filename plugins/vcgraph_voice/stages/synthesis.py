"""Old import path of the synthesis-stage base (it lives in ``methods/base.py``)."""
from ..methods.base import SynthesisStage

__all__ = ["SynthesisStage"]
