"""The waveform value passed between voice stages."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class Waveform:
    """Mono samples as a 1-D float32 tensor (on any device) with their rate.

    ``source_rate`` and ``source_length`` remember the caller's original audio, so the last
    stage can return the input's duration at the input's rate.
    """

    samples: torch.Tensor
    sample_rate: int
    source_rate: int
    source_length: int

    @property
    def seconds(self) -> float:
        return self.samples.shape[-1] / float(self.sample_rate)

    def with_samples(self, samples: torch.Tensor, sample_rate: int | None = None) -> "Waveform":
        """The same metadata around new samples."""
        return replace(self, samples=samples, sample_rate=sample_rate or self.sample_rate)
