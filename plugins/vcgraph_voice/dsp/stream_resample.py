"""Block-wise resampling with the same windowed-sinc kernel as offline (torchaudio), exact
across block edges: each call resamples history + new samples and hands out only the output
samples whose kernel support has fully arrived."""
from __future__ import annotations

import math

import torch
import torchaudio

__all__ = ["StreamResampler"]


class StreamResampler:
    """``push(x)`` returns the output samples that became final; ``delay`` is the most input
    samples an output sample waits for (kernel half-width plus one polyphase unit)."""

    def __init__(self, orig: int, new: int, device="cpu", lowpass_filter_width: int = 6, rolloff: float = 0.99):
        g = math.gcd(int(orig), int(new))
        self.o, self.n = int(orig) // g, int(new) // g
        self.width = math.ceil(lowpass_filter_width * self.o / (min(self.o, self.n) * rolloff))
        self.tr = torchaudio.transforms.Resample(int(orig), int(new), lowpass_filter_width=lowpass_filter_width,
                                                 rolloff=rolloff).to(device)
        self.device = torch.device(device)
        self.buf = torch.zeros(0, device=self.device)
        self.buf_start = 0        # input index of buf[0]
        self.received = 0
        self.unit = 0             # next polyphase unit (o inputs -> n outputs) to hand out
        self.back = -(-self.width // self.o)  # units of history the kernel reads

    @property
    def delay(self) -> int:
        return self.width + self.o

    def push(self, x: torch.Tensor) -> torch.Tensor:
        self.buf = torch.cat([self.buf, x.to(self.device, torch.float32).reshape(-1)])
        self.received += int(x.numel())
        last = (self.received - self.width) // self.o - 1  # last unit whose support has arrived
        if last < self.unit:
            return torch.zeros(0, device=self.device)
        start = max(0, self.unit - self.back)
        seg = self.buf[start * self.o - self.buf_start:]
        y = self.tr(seg)
        out = y[(self.unit - start) * self.n:(last + 1 - start) * self.n]
        self.unit = last + 1
        keep = max(0, self.unit - self.back) * self.o
        if keep > self.buf_start:
            self.buf = self.buf[keep - self.buf_start:]
            self.buf_start = keep
        return out
