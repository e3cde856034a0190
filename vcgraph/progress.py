"""A dependency-free progress bar for the terminal (stderr)."""
from __future__ import annotations

import sys
import time


class ProgressBar:
    """Callable as a ``progress_callback(percent, stage)``; draws only on a terminal."""

    def __init__(self, title: str = "", stream=None, width: int = 30, force: bool = False):
        self.title, self.width = title, width
        self.stream = stream or sys.stderr
        self.enabled = force or self.stream.isatty()
        self.t0 = time.perf_counter()

    def __call__(self, percent: float, stage: str) -> None:
        if not self.enabled:
            return
        filled = int(self.width * percent / 100)
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.perf_counter() - self.t0
        self.stream.write(f"\r{self.title} [{bar}] {percent:5.1f}% {stage:<24} {elapsed:6.1f}s")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
