"""Conversion toward a bare 256-d embedding (no profile): search a voice transform.

A d-vector says who the target is but not how to synthesise them. We search a small grid of
pitch shifts, formant warps and spectral tilts applied with the fast vocoder, scoring each
candidate with the same GE2E encoder against the embedding, and apply the best one to the
whole utterance. It moves the voice measurably toward the target, but less far than a profile.
"""
from __future__ import annotations

import torch

from . import embedding
from .waveform import Waveform


def convert_with_embedding(w: Waveform, target_embedding: torch.Tensor, pitch_shift: float = 0.0) -> torch.Tensor:
    """The source ``w`` converted toward ``target_embedding``; same length, on ``w``'s device."""
    from .dsp import fast
    params = fast.FastParams(device=str(w.samples.device))
    x = w.samples.float()
    transform = fast.search_embedding_transform(x, w.sample_rate, target_embedding.detach().cpu().numpy(), params,
                                                encoder=embedding.encoder("cpu"))
    return fast.synthesize(fast.analyze(x, w.sample_rate, params), transform, params, pitch_shift)
