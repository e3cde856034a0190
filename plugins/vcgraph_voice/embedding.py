"""256-d GE2E speaker embeddings, compatible with resemblyzer's ``VoiceEncoder``.

resemblyzer ships its weights, so this works offline. :class:`GE2EEncoder` is the one wrapper
of its encoder: whoever needs embeddings (a feature or synthesis stage in ``setup``, an
:class:`~vcgraph_voice.enroll.Enroller`, ``vcgraph eval``'s scorers) builds one and keeps it.
The model loads on first use; its forward pass runs under the object's lock, so one encoder
may serve several threads.
"""
from __future__ import annotations

import threading

import numpy as np

ENCODER_RATE = 16000


class GE2EEncoder:
    """resemblyzer's ``VoiceEncoder`` on ``device``, loaded on first use, used under a lock.

    ``threads`` (when set) is the torch thread count during a forward pass (restored after):
    on a busy CPU a multi-threaded LSTM can stall at its thread barriers.
    """

    def __init__(self, device: str = "cpu", threads: int | None = None):
        self.device = device
        self.threads = threads
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):
        """The resemblyzer ``VoiceEncoder`` (loaded now if it was not yet)."""
        with self._lock:
            return self._load()

    def _load(self):
        if self._model is None:
            from resemblyzer import VoiceEncoder
            self._model = VoiceEncoder(self.device, verbose=False)
        return self._model

    def embed_utterance(self, wav: np.ndarray) -> np.ndarray:
        """resemblyzer's ``embed_utterance`` of a preprocessed 16 kHz ``wav`` (unit norm)."""
        with self._lock:
            model = self._load()
            if not self.threads:
                return model.embed_utterance(wav)
            import torch
            before = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            try:
                return model.embed_utterance(wav)
            finally:
                torch.set_num_threads(before)

    def embed(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """The L2-normalised 256-d d-vector of one utterance (mono float numpy).

        resemblyzer's preprocessing (resampling to 16 kHz, voice-activity trimming); where the
        trimming leaves less than 0.25 s, the untrimmed utterance.
        """
        from resemblyzer import preprocess_wav
        wav = preprocess_wav(np.asarray(samples, dtype=np.float32), source_sr=sample_rate)
        if len(wav) < ENCODER_RATE // 4:  # voice activity trimming left too little: use it untrimmed
            import librosa
            wav = librosa.resample(np.asarray(samples, dtype=np.float32), orig_sr=sample_rate, target_sr=ENCODER_RATE)
        e = self.embed_utterance(wav)
        return (e / max(np.linalg.norm(e), 1e-8)).astype(np.float32)


def normalized_mean(embeddings) -> np.ndarray:
    """The L2-normalised mean of several utterance embeddings of one speaker."""
    mean = np.stack(embeddings).mean(axis=0)
    return (mean / max(np.linalg.norm(mean), 1e-8)).astype(np.float32)
