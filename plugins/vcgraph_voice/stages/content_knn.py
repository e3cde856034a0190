"""Old import path of the content method's stages (they live in ``methods/content.py``)."""
from ..methods.content import ContentFeatures, ContentSynthesis

__all__ = ["ContentFeatures", "ContentSynthesis"]
