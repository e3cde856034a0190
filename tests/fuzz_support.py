"""Shared pieces of the property-based (hypothesis) tests: settings, a case counter, a profile.

Default runs are small and derandomized (the same examples every time, so CI is not flaky);
the ``slow`` variants draw many more, at random. The counts of cases run are printed at the
end of the test session (see ``conftest.py``).
"""
from __future__ import annotations

import functools
import os
import tempfile
from collections import Counter

from hypothesis import HealthCheck, settings

#: examples run per property in this session ("property: outcome" -> count)
CASES: Counter = Counter()


def fuzz_settings(max_examples: int, *, slow: bool = False) -> settings:
    return settings(max_examples=max_examples, deadline=None, database=None, derandomize=not slow,
                    suppress_health_check=list(HealthCheck), print_blob=True)


def count(prop: str, outcome: str) -> None:
    CASES[f"{prop}: {outcome}"] += 1


@functools.lru_cache(maxsize=None)
def fast_pipeline():
    """The fast preset without the graph fallback, so every failure surfaces as an error."""
    from vcgraph_voice.api import PipelineConfig, VoiceConversionPipeline
    return VoiceConversionPipeline(PipelineConfig(preset="fast", fallback_on_error=False))


@functools.lru_cache(maxsize=None)
def synthetic_profile():
    """A fast-preset profile of synthetic speech (no data files needed)."""
    from vcgraph.audio import Audio
    from vcgraph_voice.enroll import enroll_audio
    from vcgraph_voice.synthetic import speech_like
    return enroll_audio([Audio(speech_like(2.0, 16000, f0=210.0, seed=3), 16000)], presets=["fast"])


@functools.lru_cache(maxsize=None)
def synthetic_profile_path() -> str:
    folder = tempfile.mkdtemp(prefix="vcgraph-fuzz-")
    path = os.path.join(folder, "voice.vcp")
    synthetic_profile().save(path)
    return path
