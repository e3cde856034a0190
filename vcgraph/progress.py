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


class CountProgress:
    """Progress of many items, with counts, rate and ETA, on stderr; call ``update(status)``.

    On a terminal it redraws one line; elsewhere (a log file) it prints a line at most every
    ``every`` seconds, and one at the end.
    """

    def __init__(self, total: int, title: str = "batch", stream=None, width: int = 24, every: float = 30.0,
                 force: bool = False):
        self.total, self.title, self.width, self.every = total, title, width, every
        self.stream = stream or sys.stderr
        self.tty = force or self.stream.isatty()
        self.counts = {"ok": 0, "error": 0, "skipped": 0}
        self.t0 = self._last = time.perf_counter()

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def update(self, status: str) -> None:
        self.counts[status] = self.counts.get(status, 0) + 1
        now = time.perf_counter()
        if self.tty:
            self.stream.write("\r" + self.line(now))
            self.stream.flush()
        elif now - self._last >= self.every:
            self.stream.write(self.line(now) + "\n")
            self.stream.flush()
            self._last = now

    def line(self, now: float | None = None) -> str:
        """``batch [#####-----] 12/100 ok 11 error 1 skipped 0  2.40 items/s  ETA 0:00:37``."""
        elapsed = (now or time.perf_counter()) - self.t0
        worked = self.counts["ok"] + self.counts["error"]  # skipped items cost nothing: not in the rate
        rate = worked / elapsed if elapsed > 0 else 0.0
        left = self.total - self.done
        eta = _clock(left / rate) if rate > 0 else "--:--:--"
        filled = int(self.width * self.done / max(self.total, 1))
        bar = "#" * filled + "-" * (self.width - filled)
        counts = " ".join(f"{k} {v}" for k, v in self.counts.items())
        return f"{self.title} [{bar}] {self.done}/{self.total} {counts}  {rate:.2f} items/s  ETA {eta}"

    def close(self) -> None:
        self.stream.write(("\r" if self.tty else "") + self.line() + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
