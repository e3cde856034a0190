"""The old conversion toward a bare 256-d embedding: search a voice transform.

Reached only with the speaker stage's ``bare_embedding: search``; by default a bare embedding
converts toward the voice bank's estimate (``bank.py``), with no search.

A d-vector says who the target is but not how to synthesise them. We search a small grid of
pitch shifts, formant warps and spectral tilts applied with the fast vocoder, scoring each
candidate with the same GE2E encoder against the embedding, and apply the best one to the
whole utterance. It moves the voice measurably toward the target, but less far than a profile.
The source's F0 is tracked in the kernels' own range (``dsp.f0range.KERNEL``, 60-500 Hz), not
the graph's ``f0_min`` / ``f0_max``: the path works from the waveform alone.
"""
from __future__ import annotations

import torch

from ..dsp import fast
from ..embedding import GE2EEncoder
from ..waveform import Waveform


class EmbeddingOnlyConverter:
    """What the embedding-only path keeps: the GE2E encoder that scores candidates and the
    fast method's tables. A synthesis stage builds one in ``setup``; threads may share it."""

    def __init__(self, encoder: GE2EEncoder | None = None):
        self.encoder = encoder or GE2EEncoder("cpu")
        self.fast = fast.FastResources()

    def __call__(self, w: Waveform, target_embedding: torch.Tensor, pitch_shift: float = 0.0) -> torch.Tensor:
        """The source ``w`` converted toward ``target_embedding``; same length, on ``w``'s device."""
        params = fast.FastParams(device=str(w.samples.device))
        x = w.samples.float()
        transform = fast.search_embedding_transform(x, w.sample_rate, target_embedding.detach().cpu().numpy(),
                                                    params, encoder=self.encoder, resources=self.fast)
        return fast.synthesize(fast.analyze(x, w.sample_rate, params, self.fast), transform, params, pitch_shift,
                               self.fast)


def convert_with_embedding(w: Waveform, target_embedding: torch.Tensor, pitch_shift: float = 0.0,
                           converter: EmbeddingOnlyConverter | None = None) -> torch.Tensor:
    """The source ``w`` converted toward ``target_embedding`` (with a converter built for this
    call unless one is given)."""
    return (converter or EmbeddingOnlyConverter())(w, target_embedding, pitch_shift)
