"""Thread-safe running statistics of a pipeline's runs."""
from __future__ import annotations

import threading


class RunStats:
    """Counts runs, successes and time; safe to update from many threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._total = self._ok = 0
            self._seconds = 0.0
            self._devices: dict[str, int] = {}

    def record(self, ok: bool, seconds: float, devices: set[str] | None = None) -> None:
        """Add one run."""
        with self._lock:
            self._total += 1
            self._ok += int(ok)
            self._seconds += seconds
            for d in devices or ():
                self._devices[d] = self._devices.get(d, 0) + 1

    def snapshot(self) -> dict:
        """Totals, success rate, mean seconds per run and devices used (with run counts)."""
        with self._lock:
            return {
                "total_runs": self._total,
                "successful_runs": self._ok,
                "failed_runs": self._total - self._ok,
                "success_rate": self._ok / self._total if self._total else 0.0,
                "average_processing_time": self._seconds / self._total if self._total else 0.0,
                "devices": dict(self._devices),
            }
