"""Which devices this machine offers (torch is imported only when asked)."""
from __future__ import annotations

import functools
import os


@functools.lru_cache(maxsize=None)
def cuda_available() -> bool:
    """True when torch is installed and sees a CUDA device.

    ``VCGRAPH_DISABLE_CUDA=1`` hides CUDA, to test CPU paths on a GPU machine.
    """
    if os.environ.get("VCGRAPH_DISABLE_CUDA", "") not in ("", "0"):
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def device_name(device: str) -> str:
    """A readable name for a device string: ``cuda:0 (NVIDIA H200)`` or ``cpu``."""
    if device.startswith("cuda") and cuda_available():
        import torch
        index = torch.device(device).index or 0
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return device
