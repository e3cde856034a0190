"""The F0 search ranges of the voice plugin, in one place.

The methods use different ranges on purpose, so each has a name here instead of a literal
where it is used:

* :data:`PRESET` (80-800 Hz): what the presets (``vars.f0_min`` / ``vars.f0_max`` in
  ``configs/*.yaml``), :class:`~vcgraph_voice.api.PipelineConfig` and every feature stage's
  ``f0_min`` / ``f0_max`` default search: all three methods (quality, fast, content) in a graph.
* :data:`KERNEL` (60-500 Hz): the DSP kernels' own defaults (``dsp/f0.py``, ``FastParams``,
  ``QualityParams``), used when a kernel is called without a range: the embedding-only
  transform search (``methods/embedding.py``) and direct Python use of ``dsp``.
* :data:`CHEAPTRICK_FLOOR` (60 Hz): not a search range: the F0 floor CheapTrick is given,
  which sets its FFT size and so the envelope's frequency grid (kept fixed, whatever the
  search range, so profiles and sources share one grid).
* :data:`EVAL` (50-800 Hz): the F0 statistics ``vcgraph eval`` reports on any audio;
  :data:`MCD` (71-800 Hz, pyworld's defaults) its mel-cepstral distortion, as the usual MCD
  scripts compute it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class F0Range:
    """An F0 search range in Hz."""

    floor: float
    ceil: float


PRESET = F0Range(80.0, 800.0)
KERNEL = F0Range(60.0, 500.0)
EVAL = F0Range(50.0, 800.0)
MCD = F0Range(71.0, 800.0)
CHEAPTRICK_FLOOR = 60.0
