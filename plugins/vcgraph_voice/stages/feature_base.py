"""Old import path of the feature-stage base (it lives in ``methods/base.py``)."""
from ..methods.base import FeatureConfig, FeatureStage

__all__ = ["FeatureConfig", "FeatureStage"]
