"""Old import path of the quality method's stages (they live in ``methods/quality.py``)."""
from ..methods.quality import KnnSynthesis, QualityFeatures, QualitySynthesis, WorldFeatures

__all__ = ["KnnSynthesis", "QualityFeatures", "QualitySynthesis", "WorldFeatures"]
