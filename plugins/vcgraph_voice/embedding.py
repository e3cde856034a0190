"""256-d GE2E speaker embeddings, compatible with resemblyzer's ``VoiceEncoder``.

resemblyzer ships its weights, so this works offline. One encoder per device is loaded on
first use and shared (its forward pass is guarded by a lock).
"""
from __future__ import annotations

import threading

import numpy as np

_encoders: dict[str, object] = {}
_lock = threading.Lock()
ENCODER_RATE = 16000


def encoder(device: str = "cpu"):
    """The shared resemblyzer ``VoiceEncoder`` on ``device``."""
    with _lock:
        if device not in _encoders:
            from resemblyzer import VoiceEncoder
            _encoders[device] = VoiceEncoder(device, verbose=False)
        return _encoders[device]


def embed(samples: np.ndarray, sample_rate: int, device: str = "cpu") -> np.ndarray:
    """The L2-normalised 256-d d-vector of one utterance (mono float numpy)."""
    from resemblyzer import preprocess_wav
    wav = preprocess_wav(np.asarray(samples, dtype=np.float32), source_sr=sample_rate)
    if len(wav) < ENCODER_RATE // 4:  # voice activity trimming left too little: use it untrimmed
        import librosa
        wav = librosa.resample(np.asarray(samples, dtype=np.float32), orig_sr=sample_rate, target_sr=ENCODER_RATE)
    enc = encoder(device)
    with _lock:
        e = enc.embed_utterance(wav)
    return (e / max(np.linalg.norm(e), 1e-8)).astype(np.float32)


def normalized_mean(embeddings) -> np.ndarray:
    """The L2-normalised mean of several utterance embeddings of one speaker."""
    mean = np.stack(embeddings).mean(axis=0)
    return (mean / max(np.linalg.norm(mean), 1e-8)).astype(np.float32)
