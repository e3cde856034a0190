"""Metric functions for ``vcgraph eval`` (pure functions plus models that are loaded once).

Everything here works on mono float arrays; :func:`load_audio` reads a file and resamples to
16 kHz, the rate every scorer below expects.

- :class:`SpeakerEncoder` / :func:`speaker_similarity`: GE2E d-vectors (resemblyzer) and
  their cosine;
- :func:`word_error_rate` / :func:`word_edits` / :func:`normalize_words`: WER on word lists;
- :class:`Transcriber`: pocketsphinx recognition (its bundled US English model, loaded once);
- :func:`f0_stats` / :func:`f0_track`: pyworld DIO + StoneMask pitch and its statistics;
- :class:`DNSMOS` / :func:`dnsmos`: Microsoft's DNSMOS P.835 naturalness/quality estimate
  (``speechmos`` ships the ONNX models; runs offline);
- :func:`mel_cepstral_distortion`: DTW-aligned MCD in dB between two renderings of the
  same sentence.

The scoring packages are an optional extra; a missing one raises
:class:`MissingDependencyError` naming ``pip install 'vcgraph-voice[eval]'``.
"""
from __future__ import annotations

import importlib
import math
import re
import warnings
from typing import Sequence

import numpy as np

from vcgraph.errors import UserError

from ..dsp import f0range

RATE = 16000
INSTALL_HINT = "pip install 'vcgraph-voice[eval]'"
# The packages of the ``eval`` extra (module name -> what needs it).
EVAL_PACKAGES = {
    "resemblyzer": "speaker similarity",
    "pocketsphinx": "word error rate",
    "speechmos": "DNSMOS naturalness",
    "onnxruntime": "DNSMOS naturalness",
    "librosa": "resampling and alignment",
    "pyworld": "F0 and mel-cepstral distortion",
    "matplotlib": "the HTML report's plots",
}


class MissingDependencyError(UserError):
    """An optional scoring package is not installed."""


def require(module: str, feature: str | None = None):
    """Import ``module`` or raise :class:`MissingDependencyError` with the install hint."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = feature or EVAL_PACKAGES.get(module.split(".")[0], "evaluation")
        raise MissingDependencyError(
            f"vcgraph eval needs the '{module.split('.')[0]}' package for {what} "
            f"({exc.__class__.__name__}: {exc}); install the scoring extra: {INSTALL_HINT}") from exc


# -- audio -------------------------------------------------------------------------------------
def to_mono(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x.mean(axis=1) if x.ndim > 1 else x


def resample(x: np.ndarray, sr: int, target: int = RATE) -> np.ndarray:
    x = to_mono(x)
    if sr == target:
        return x
    librosa = require("librosa")
    return librosa.resample(x, orig_sr=sr, target_sr=target).astype(np.float32)


def load_audio(path: str, rate: int = RATE) -> np.ndarray:
    """A sound file as mono float32 at ``rate`` (16 kHz by default)."""
    import soundfile as sf
    x, sr = sf.read(path, dtype="float32", always_2d=False)
    return resample(x, sr, rate)


# -- speaker similarity --------------------------------------------------------------------------
def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).ravel()
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def speaker_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two speaker embeddings (1 = same direction)."""
    return float(_unit(a) @ _unit(b))


class SpeakerEncoder:
    """resemblyzer's GE2E encoder, loaded once; ``embed`` returns unit 256-d d-vectors.

    The encoder is a small LSTM: it runs with ``threads`` torch threads (restored afterwards),
    since on a busy CPU a multi-threaded LSTM stalls at its thread barriers (seen here: 0.1 s
    with one thread, 2-12 s with two while other processes used the cores).
    """

    def __init__(self, device: str = "cpu", threads: int | None = 1):
        from ..embedding import GE2EEncoder
        self.threads = threads
        require("resemblyzer")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from resemblyzer import preprocess_wav
        self._preprocess = preprocess_wav
        self.encoder = GE2EEncoder(device, threads)  # the plugin's one wrapper (lock, threads)
        self.encoder.model  # load now: a missing or broken install fails here, not mid-run

    def embed(self, samples: np.ndarray, sr: int = RATE) -> np.ndarray:
        x = resample(samples, sr)
        wav = self._preprocess(x, source_sr=RATE)
        if len(wav) < RATE // 4:  # voice-activity trimming left too little: use it untrimmed
            wav = x
        return _unit(self.encoder.embed_utterance(wav)).astype(np.float32)

    def centroid(self, embeddings: Sequence[np.ndarray]) -> np.ndarray:
        """The unit mean of several utterance embeddings (a speaker's voice print)."""
        return _unit(np.mean(np.stack([_unit(e) for e in embeddings]), axis=0)).astype(np.float32)


def nearest_voice(embedding: np.ndarray, centroids: dict[str, np.ndarray]) -> str | None:
    """The name whose centroid is most similar to ``embedding``."""
    if not centroids:
        return None
    return max(centroids, key=lambda name: speaker_similarity(embedding, centroids[name]))


# -- word error rate -----------------------------------------------------------------------------
def normalize_words(text: str | None) -> list[str]:
    """Lower-case words; punctuation dropped, apostrophes kept (as in the recogniser's output)."""
    return re.sub(r"[^a-z0-9' ]", " ", (text or "").lower()).split()


def word_edits(ref_words: Sequence[str], hyp_words: Sequence[str]) -> int:
    """Levenshtein distance in words (substitutions + deletions + insertions)."""
    ref, hyp = list(ref_words), list(hyp_words)
    d = list(range(len(hyp) + 1))
    for i, rw in enumerate(ref, 1):
        nd = [i] + [0] * len(hyp)
        for j, hw in enumerate(hyp, 1):
            nd[j] = min(d[j] + 1, nd[j - 1] + 1, d[j - 1] + (rw != hw))
        d = nd
    return d[-1]


def word_error_rate(ref_words: Sequence[str] | str, hyp_words: Sequence[str] | str) -> float:
    """Word edits / reference words. Strings are split with :func:`normalize_words`.

    An empty reference gives 0.0 for an empty hypothesis and ``inf`` otherwise.
    """
    ref = normalize_words(ref_words) if isinstance(ref_words, str) else list(ref_words)
    hyp = normalize_words(hyp_words) if isinstance(hyp_words, str) else list(hyp_words)
    if not ref:
        return 0.0 if not hyp else math.inf
    return word_edits(ref, hyp) / len(ref)


class Transcriber:
    """pocketsphinx with its bundled US English model (loaded once; not thread-safe).

    The feature front end (noise tracking, cepstral mean) is reset before every utterance, so
    a recording is recognised the same whatever was recognised before it.
    """

    def __init__(self):
        ps = require("pocketsphinx")
        self.decoder = ps.Decoder(samprate=RATE, logfn="/dev/null")

    def transcribe(self, samples: np.ndarray, sr: int = RATE) -> str:
        x = resample(samples, sr).astype(np.float64)
        pcm = (np.clip(x, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        self.decoder.reinit_feat()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr if hyp else ""


# -- F0 ------------------------------------------------------------------------------------------
def f0_track(samples: np.ndarray, sr: int = RATE, frame_period_ms: float = 5.0,
             f0_floor: float = f0range.EVAL.floor, f0_ceil: float = f0range.EVAL.ceil) -> tuple[np.ndarray, np.ndarray]:
    """(times in s, F0 in Hz with 0 for unvoiced) by pyworld DIO + StoneMask."""
    require("pyworld")
    from ..dsp.world import f0 as dio_stonemask
    x = to_mono(samples).astype(np.float64)
    if len(x) == 0:
        return np.zeros(0), np.zeros(0)
    f0, t = dio_stonemask(x, sr, frame_period_ms, f0_floor, f0_ceil)
    return t, f0


def f0_stats(samples: np.ndarray | None = None, sr: int = RATE, *, f0: np.ndarray | None = None) -> dict:
    """Median F0 (Hz), mean and std of log-F0 over voiced frames, and the voiced share.

    Pass audio, or an F0 track (``f0=``; several utterances may be concatenated).
    Values are None when nothing is voiced.
    """
    if f0 is None:
        _, f0 = f0_track(samples, sr)
    f0 = np.asarray(f0, dtype=np.float64)
    voiced = f0[f0 > 0]
    if len(voiced) == 0:
        return {"f0_median": None, "logf0_mean": None, "logf0_std": None,
                "voiced": 0.0 if len(f0) else None}
    lf = np.log(voiced)
    return {"f0_median": float(np.median(voiced)), "logf0_mean": float(lf.mean()),
            "logf0_std": float(lf.std()), "voiced": float(len(voiced) / len(f0))}


def semitones(a_hz: float | None, b_hz: float | None) -> float | None:
    """12 * log2(a / b): how far ``a`` is above ``b`` in semitones."""
    if not a_hz or not b_hz:
        return None
    return float(12.0 * math.log2(a_hz / b_hz))


# -- DNSMOS ----------------------------------------------------------------------------------------
class DNSMOS:
    """DNSMOS P.835 (SIG, BAK, OVRL) and P.808 MOS from ``speechmos``'s bundled ONNX models.

    Scored as Microsoft's reference script does (9.01 s windows, 1 s hop, short clips looped to
    9.01 s), except that a clip shorter than one window is scored on one window: the reference
    script's further windows over a looped clip only rotate the same audio.
    """

    WINDOW_S = 9.01

    def __init__(self, threads: int = 2):
        ort = require("onnxruntime")
        mod = require("speechmos.dnsmos", "DNSMOS naturalness")
        import os
        base = os.path.dirname(os.path.abspath(mod.__file__))
        # speechmos's own constructor makes sessions whose idle threads spin on every core;
        # build them here with a small, non-spinning pool (the converter shares the CPU)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = max(1, threads)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        model = mod.DNSMOS.__new__(mod.DNSMOS)
        model.primary_model_path = os.path.join(base, "dnsmos_models", "sig_bak_ovr.onnx")
        model.onnx_sess = ort.InferenceSession(model.primary_model_path, opts, providers=["CPUExecutionProvider"])
        model.p808_onnx_sess = ort.InferenceSession(os.path.join(base, "dnsmos_models", "model_v8.onnx"), opts,
                                                    providers=["CPUExecutionProvider"])
        self.model = model

    def __call__(self, samples: np.ndarray, sr: int = RATE) -> dict:
        x = np.clip(resample(samples, sr), -1.0, 1.0).astype(np.float32)
        if len(x) == 0:
            raise ValueError("empty audio")
        win = int(self.WINDOW_S * RATE)
        if len(x) < win:
            x = np.tile(x, int(math.ceil(win / len(x))))[:win]
        hops = int(np.floor(len(x) / RATE - self.WINDOW_S)) + 1
        sig, bak, ovr, p808 = [], [], [], []
        for k in range(max(hops, 1)):
            seg = x[k * RATE:k * RATE + win]
            if len(seg) < win:
                continue
            mel = self.model.audio_melspec(audio=seg[:-160]).astype(np.float32)[None]
            p808.append(float(self.model.p808_onnx_sess.run(None, {"input_1": mel})[0][0][0]))
            raw = self.model.onnx_sess.run(None, {"input_1": seg[None]})[0][0]
            s, b, o = self.model.get_polyfit_val(raw[0], raw[1], raw[2], False)
            sig.append(float(s)); bak.append(float(b)); ovr.append(float(o))
        return {"ovrl": float(np.mean(ovr)), "sig": float(np.mean(sig)), "bak": float(np.mean(bak)),
                "p808": float(np.mean(p808))}


def dnsmos(samples: np.ndarray, sr: int = RATE) -> dict:
    """DNSMOS of one clip: keys ovrl, sig, bak, p808 (1–5). Loads the model for this call;
    to score many clips, build one :class:`DNSMOS` and keep it (``Scorers`` does)."""
    return DNSMOS()(samples, sr)


# -- mel-cepstral distortion -------------------------------------------------------------------------
_ALPHA = {8000: 0.31, 11025: 0.35, 16000: 0.41, 22050: 0.455, 24000: 0.466, 44100: 0.544, 48000: 0.554}


def mel_cepstrum(samples: np.ndarray, sr: int = RATE, order: int = 24, frame_period_ms: float = 5.0,
                 alpha: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mel-cepstra [frames, order+1], frame log-energy in dB) from the WORLD envelope.

    The CheapTrick envelope is resampled on an all-pass-warped frequency axis (``alpha`` by the
    sample rate, as SPTK's defaults) and turned into a real cepstrum.
    """
    pw = require("pyworld")
    from ..dsp.world import f0 as dio_stonemask
    x = to_mono(samples).astype(np.float64)
    f0, t = dio_stonemask(x, sr, frame_period_ms, f0range.MCD.floor, f0range.MCD.ceil)
    sp = pw.cheaptrick(x, f0, t, sr)  # [frames, fft/2+1], power
    if alpha is None:
        alpha = _ALPHA.get(sr, 0.41)
    n_bins = sp.shape[1]
    omega = np.linspace(0.0, np.pi, n_bins)
    # warped = omega + 2 atan(a sin w / (1 - a cos w)); sample the envelope uniformly in warped freq
    warped = omega + 2.0 * np.arctan(alpha * np.sin(omega) / (1.0 - alpha * np.cos(omega)))
    uniform = np.linspace(0.0, np.pi, n_bins)
    log_sp = np.log(np.maximum(sp, 1e-16))
    log_w = np.stack([np.interp(uniform, warped, row) for row in log_sp])
    # half the log power = log magnitude; its real cepstrum via the inverse real FFT
    cep = np.fft.irfft(0.5 * log_w, axis=1)[:, :order + 1]
    cep[:, 1:] *= 2.0
    energy_db = 10.0 * np.log10(np.maximum(sp.sum(axis=1), 1e-16))
    return cep, energy_db


def _trim_silence(cep: np.ndarray, energy_db: np.ndarray, floor_db: float = 40.0) -> np.ndarray:
    keep = energy_db > energy_db.max() - floor_db
    return cep[keep] if keep.sum() >= 2 else cep


def dtw_path(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The minimum-cost monotonic alignment of frame sequences ``a`` [N, D] and ``b`` [M, D].

    Euclidean frame distance, steps (1,0), (0,1), (1,1); returns [(i, j), ...] from (0, 0) to
    (N-1, M-1). Vectorised over anti-diagonals (no compiled code needed).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n, m = len(a), len(b)
    sq = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None, :] - 2.0 * a @ b.T
    cost = np.sqrt(np.maximum(sq, 0.0))
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for k in range(2, n + m + 1):  # cells (i, j) with i + j == k, 1-based
        i = np.arange(max(1, k - m), min(n, k - 1) + 1)
        j = k - i
        best = np.minimum(np.minimum(acc[i - 1, j], acc[i, j - 1]), acc[i - 1, j - 1])
        acc[i, j] = cost[i - 1, j - 1] + best
    i, j, path = n, m, [(n - 1, m - 1)]
    while (i, j) != (1, 1):
        steps = ((acc[i - 1, j - 1], i - 1, j - 1), (acc[i - 1, j], i - 1, j), (acc[i, j - 1], i, j - 1))
        _, i, j = min(steps, key=lambda s: s[0])
        path.append((i - 1, j - 1))
    return np.array(path[::-1], dtype=np.int64)


def mel_cepstral_distortion(ref: np.ndarray, hyp: np.ndarray, sr: int = RATE, hyp_sr: int | None = None,
                            order: int = 24) -> float:
    """DTW-aligned mel-cepstral distortion in dB (coefficients 1..order; c0, i.e. loudness, excluded).

    ``10/ln10 * sqrt(2 * sum_d (c_d - c'_d)^2)`` averaged over the DTW path of the two
    utterances (frames more than 40 dB below each one's loudest frame are dropped first).
    Identical audio gives 0.
    """
    hyp_sr = hyp_sr or sr
    if hyp_sr != sr:
        hyp = resample(hyp, hyp_sr, sr)
    return mcd_from_cepstra(speech_cepstra(ref, sr, order), speech_cepstra(hyp, sr, order))


def speech_cepstra(samples: np.ndarray, sr: int = RATE, order: int = 24) -> np.ndarray:
    """Mel-cepstra 1..order of the frames within 40 dB of the loudest (MCD's input)."""
    return _trim_silence(*mel_cepstrum(samples, sr, order))[:, 1:]


def mcd_from_cepstra(a: np.ndarray, b: np.ndarray) -> float:
    """DTW-aligned MCD (dB) of two :func:`speech_cepstra` sequences."""
    if len(a) == 0 or len(b) == 0:
        raise ValueError("empty audio")
    path = dtw_path(a, b)
    diff = a[path[:, 0]] - b[path[:, 1]]
    return float(np.mean(10.0 / np.log(10.0) * np.sqrt(2.0 * np.sum(diff ** 2, axis=1))))
