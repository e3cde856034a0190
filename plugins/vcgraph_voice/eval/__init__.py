"""``vcgraph eval``: convert sources toward target voices and measure how well it went.

- :mod:`.manifest`: what to evaluate (:class:`EvalSet` of :class:`EvalItem` and :class:`Voice`)
  from a CSV/JSONL manifest, the command line, or a speech-dev style folder;
- :mod:`.runner`: :func:`evaluate` drives a :class:`Converter` and returns an
  :class:`EvalResult` (``rows``, ``summary``, ``to_json()``, ``format_table()``);
- :mod:`.metrics`: the metric functions (speaker similarity, WER, F0, DNSMOS, MCD);
- :mod:`.campp`, :mod:`.whisper_asr`: the second, independent judges (CAM++ speaker encoder with
  a Kaldi-style fbank front end; Whisper tiny.en), optional;
- :mod:`.ceilings`: the target's own speech scored as a ceiling beside each figure;
- :mod:`.columns`: what each column means (unit, better direction, judge) and the verdicts;
- :mod:`.align`, :mod:`.loudness`: word alignment (wrong words marked) and level-matched copies;
- :mod:`.report`: :func:`write_report`, a self-contained HTML folder with audio and plots;
- :mod:`.cli`: the ``vcgraph eval`` subcommand.

The scoring packages are the optional extra ``pip install 'vcgraph-voice[eval]'``; they are imported
only when a scorer is built, so importing this package needs none of them.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from .manifest import EvalItem, EvalSet, ManifestError, Voice, dataset_items, items_from_args, read_manifest

# metrics and runner (numpy, the converter) load on first use: `vcgraph --help` imports this
# package to add the `eval` command.
_LAZY = {"EVAL_PACKAGES": "metrics", "INSTALL_HINT": "metrics", "MissingDependencyError": "metrics",
         "METRICS": "runner", "Converter": "runner", "EvalResult": "runner", "Scorers": "runner",
         "evaluate": "runner", "format_table": "runner"}
if TYPE_CHECKING:
    from .metrics import EVAL_PACKAGES, INSTALL_HINT, MissingDependencyError
    from .runner import METRICS, Converter, EvalResult, Scorers, evaluate, format_table


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["EvalItem", "EvalSet", "Voice", "ManifestError", "read_manifest", "items_from_args", "dataset_items",
           "Converter", "EvalResult", "Scorers", "evaluate", "format_table", "METRICS",
           "MissingDependencyError", "EVAL_PACKAGES", "INSTALL_HINT", "write_report"]


def write_report(result, out_dir, title="vcgraph eval", plots=True):
    """See :func:`vcgraph_voice.eval.report.write_report` (imported lazily: it needs matplotlib)."""
    from .report import write_report as _write
    return _write(result, out_dir, title, plots)
