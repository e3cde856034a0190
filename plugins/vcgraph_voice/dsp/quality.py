"""Quality zero-shot voice conversion on CPU: WORLD + phone-state-constrained kNN of target envelopes.

Pipeline stages (plain numpy in and out):
  analyze(audio, sr, cfg)          -> features of one utterance (F0, envelope, aperiodicity,
                                      pocketsphinx phone/state labels, matching features)
  target_frames([analyses])        -> the target part of a speaker profile
  synthesize(features, target, cfg) -> converted audio, exactly the source's length

Conversion: log-F0 Gaussian mapping to the target; per frame, the k nearest target frames
carrying the same phone+HMM-state label (falling back to the phone, then to all frames) are
found on per-speaker mean/variance-normalised log-mel envelopes; their *unnormalised* log
envelopes are averaged and blended with the source envelope mapped by mean/variance onto the
target's statistics (60/40 by default), a mild cepstral post-filter restores formant
contrast; the source aperiodicity is kept; WORLD synthesises the result.

Measured with tools/vc_score.py (default pairs, speech-dev) at these defaults:
sim_target 0.826, ident 1.00, wer_ratio 1.35. Options left off by default (join_weight,
temperature, keep_energy, smooth, conf_gamma, ctx_penalty, label_penalty, fallback_blend)
were tried and did not help clearly, except label_penalty≈20 (slightly fewer word errors at
blend 0.65-0.7) which is worth a proper re-score; join_weight runs a per-frame loop (slow).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from . import f0range, matching, mel, world
from .phones import FRAME_S, N_STATES, PhoneLabeler

SIL = 0


@dataclass
class QualityParams:
    frame_period_ms: float = 5.0   # WORLD frame shift
    k: int = 8                     # neighbours averaged per frame
    blend: float = 0.6             # weight of the kNN target envelope (rest: mean/var-mapped source)
    n_mels: int = 40               # matching features: log-mel bands of the WORLD envelope
    fmax: float = 8000.0           # upper edge of the matching features (same at 16 and 22.05 kHz)
    labels: str = "align"          # "align" (recognition + forced alignment) or "allphone"
    fast_asr: bool = False         # narrower word-recognition search for the labels (~4x quicker)
    join_weight: float = 0.0       # > 0: Viterbi continuity over the k candidates (picks one)
    temperature: float = 0.0       # > 0: softmax-weighted average of the k neighbours
    keep_energy: float = 0.0       # 0..1: how much of the source's frame-energy contour to keep
    label_penalty: float = 0.0     # > 0: soft label constraint (distance added to other labels)
    conf_gamma: float = 0.0        # > 0: lower the blend where the labelled match is far worse than a free one
    ctx_penalty: float = 0.0       # > 0: distance added where the senone/triphone context differs
    smooth: int = 0                # > 1: moving average (frames) of the kNN envelope over time
    postfilter: float = 0.2        # > 0: cepstral formant emphasis of the converted envelope
    fallback_blend: float = -1.0   # >= 0: blend used where the label fell back to all frames
    device: str = "cpu"            # where the kNN distance matrices are computed ("cuda" on a GPU)
    f0_floor: float = f0range.KERNEL.floor
    f0_ceil: float = f0range.KERNEL.ceil


class QualityResources:
    """What the quality analysis builds once and keeps: the phone labellers (pocketsphinx
    decoders, per label mode) and the matching features' mel bands (per layout).

    Held by its owner (the ``world-features`` stage builds one in ``setup``); building is under
    a lock and each labeller decodes under its own, so threads may share one object.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._labelers: dict[tuple[str, bool], PhoneLabeler] = {}
        self._mel: dict[tuple, np.ndarray] = {}

    def labeler(self, mode: str = "align", fast: bool = False) -> PhoneLabeler:
        """The labeller of ``mode`` (``align`` or ``allphone``); its decoders load on first use."""
        key = (mode, bool(fast))
        with self._lock:
            if key not in self._labelers:
                self._labelers[key] = PhoneLabeler(mode, fast)
            return self._labelers[key]

    def mel_basis(self, sr: int, n_bins: int, n_mels: int, fmax: float) -> np.ndarray:
        """Slaney mel filters ``(n_mels, n_bins)`` float64 from 50 Hz to ``fmax``."""
        key = (sr, n_bins, n_mels, fmax)
        with self._lock:
            if key not in self._mel:
                fb = mel.filterbank(sr, (n_bins - 1) * 2, n_mels, 50.0, min(fmax, sr / 2))
                self._mel[key] = fb.astype(np.float64)
            return self._mel[key]


def _frame_labels(phone10: np.ndarray, state10: np.ndarray, ctx10: np.ndarray, n: int, fp_ms: float):
    """Map 10 ms pocketsphinx labels onto ``n`` WORLD frames."""
    pos = np.minimum((np.arange(n) * fp_ms / 1000.0 / FRAME_S).round().astype(int), len(phone10) - 1)
    coarse = phone10[pos].astype(np.int32)
    fine = coarse * N_STATES + state10[pos].astype(np.int32)
    return fine, coarse, ctx10[pos].astype(np.int64)


def _speech_stats(x: np.ndarray, coarse: np.ndarray):
    sel = coarse != SIL
    if sel.sum() < 10:
        sel = np.ones(len(x), bool)
    mu = x[sel].mean(0)
    sd = x[sel].std(0) + 1e-5
    return mu, sd


def n_frames(n_samples: int, sr: int, frame_period_ms: float) -> int:
    """How many WORLD frames an utterance of ``n_samples`` has."""
    return int(n_samples / sr * 1000.0 / frame_period_ms) + 1


def analyze(audio: np.ndarray, sr: int, cfg: QualityParams | None = None,
            f0: np.ndarray | None = None, resources: QualityResources | None = None) -> dict[str, np.ndarray]:
    """Feature extraction for one mono utterance; ``f0`` (``n_frames`` values) skips F0 tracking.

    ``resources`` keeps the labeller and mel bands between calls (without it they are built for
    this call: pocketsphinx's decoders take a while to load)."""
    cfg = cfg or QualityParams()
    res = resources or QualityResources()
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    f0, sp, ap = world.analyze(x, sr, cfg.frame_period_ms, cfg.f0_floor, cfg.f0_ceil, given_f0=f0)
    n = len(f0)
    logsp = np.log(np.maximum(sp, 1e-16)).astype(np.float32)
    fb = res.mel_basis(sr, sp.shape[1], cfg.n_mels, cfg.fmax)
    logmel = np.log(np.maximum(sp @ fb.T, 1e-12)).astype(np.float32)
    phone10, state10, ctx10, how = res.labeler(cfg.labels, cfg.fast_asr).labels(x, sr)
    fine, coarse, ctx = _frame_labels(phone10, state10, ctx10, n, cfg.frame_period_ms)
    mu, sd = _speech_stats(logmel, coarse)
    return {
        "f0": f0.astype(np.float64),
        "vuv": (f0 > 0),
        "logsp": logsp,
        "ap": ap.astype(np.float64),
        "logmel": logmel,
        "feat": ((logmel - mu) / sd).astype(np.float32),
        "fine": fine,
        "coarse": coarse,
        "ctx": ctx,
        "aligned": np.array(how == "align"),
        "sr": np.array(int(sr)),
        "n_samples": np.array(len(x)),
        "frame_period_ms": np.array(float(cfg.frame_period_ms)),
    }


def _lf0_stats(f0: np.ndarray):
    v = f0[f0 > 0]
    if len(v) < 2:
        return np.log(120.0), 0.15
    l = np.log(v)
    return float(l.mean()), float(max(l.std(), 1e-3))


def target_frames(analyses: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The target part of a speaker profile, from analyses of its reference utterances."""
    if not analyses:
        raise ValueError("target_frames needs at least one analysed utterance")
    srs = {int(a["sr"]) for a in analyses}
    sr = int(analyses[0]["sr"])
    logsp = []
    for a in analyses:  # bring every reference onto the first one's frequency grid
        e = a["logsp"]
        if int(a["sr"]) != sr or e.shape[1] != analyses[0]["logsp"].shape[1]:
            e, _ = matching.regrid(e, int(a["sr"]), sr, analyses[0]["logsp"].shape[1])
        logsp.append(e)
    logsp = np.concatenate(logsp).astype(np.float32)
    logmel = np.concatenate([a["logmel"] for a in analyses])
    coarse = np.concatenate([a["coarse"] for a in analyses]).astype(np.int32)
    fine = np.concatenate([a["fine"] for a in analyses]).astype(np.int32)
    ctx = np.concatenate([a.get("ctx", np.full(len(a["fine"]), -1)) for a in analyses]).astype(np.int64)
    f0 = np.concatenate([a["f0"] for a in analyses])
    mu, sd = _speech_stats(logmel, coarse)
    sp_mu, sp_sd = _speech_stats(logsp, coarse)
    lm, ls = _lf0_stats(f0)
    del srs
    return {
        "feat": ((logmel - mu) / sd).astype(np.float32),
        "logsp": logsp,
        "fine": fine,
        "coarse": coarse,
        "ctx": ctx,
        "logsp_mean": sp_mu.astype(np.float32),
        "logsp_std": sp_sd.astype(np.float32),
        "lf0_mean": np.array(lm),
        "lf0_std": np.array(ls),
        "sr": np.array(sr),
    }


def map_f0(f0: np.ndarray, target: dict, pitch_shift_semitones: float = 0.0) -> np.ndarray:
    sm, ss = _lf0_stats(f0)
    out = np.zeros_like(f0, dtype=np.float64)
    v = f0 > 0
    out[v] = np.exp((np.log(f0[v]) - sm) / ss * float(target["lf0_std"]) + float(target["lf0_mean"]))
    out[v] *= 2.0 ** (pitch_shift_semitones / 12.0)
    return out


def convert_envelope(features: dict, target: dict, cfg: QualityParams) -> np.ndarray:
    """Converted log envelope on the source's frequency grid."""
    sr = int(features["sr"])
    src = features["logsp"]
    nb = src.shape[1]
    tgt_logsp, valid = matching.regrid(target["logsp"], int(target["sr"]), sr, nb)
    t_mu, _ = matching.regrid(target["logsp_mean"][None], int(target["sr"]), sr, nb)
    t_sd, _ = matching.regrid(target["logsp_std"][None], int(target["sr"]), sr, nb)
    s_mu, s_sd = _speech_stats(src, features["coarse"])
    # beyond the target's band, keep the source's own statistics
    t_mu = np.where(valid, t_mu[0], s_mu)
    t_sd = np.where(valid, t_sd[0], s_sd)
    mapped = matching.map_meanvar(src, s_mu, s_sd, t_mu, t_sd)
    idx, dist = matching.knn_candidates(features["feat"], target["feat"], features["fine"],
                                        features["coarse"], target["fine"], target["coarse"], cfg.k,
                                        src_ctx=features.get("ctx"), tgt_ctx=target.get("ctx"),
                                        ctx_penalty=cfg.ctx_penalty, label_penalty=cfg.label_penalty,
                                        device=cfg.device)
    if cfg.join_weight > 0:
        sel = matching.viterbi_select(idx, dist, target["feat"], cfg.join_weight)
        knn = tgt_logsp[sel]
    else:
        knn = matching.average_envelopes(tgt_logsp, idx, dist, cfg.temperature)
    if cfg.smooth > 1:
        pad = cfg.smooth // 2
        kp = np.pad(knn, ((pad, cfg.smooth - 1 - pad), (0, 0)), mode="edge")
        knn = _moving_average(kp, cfg.smooth)
    w = np.where(valid, cfg.blend, 0.0).astype(np.float32)[None, :].repeat(len(src), 0)
    if cfg.conf_gamma > 0:
        # label confidence: labelled-match distance vs the unconstrained nearest frames
        n_all = len(target["feat"])
        _, d_free = matching.knn_candidates(features["feat"], target["feat"], features["fine"] * 0,
                                            features["coarse"] * 0, np.zeros(n_all, np.int32),
                                            np.zeros(n_all, np.int32), cfg.k)
        rho = (dist.mean(1) + 1.0) / (d_free.mean(1) + 1.0)
        c = np.exp(-cfg.conf_gamma * np.maximum(rho - 1.0, 0.0))
        c = _moving_average(np.pad(c[:, None], ((2, 2), (0, 0)), mode="edge").astype(np.float32), 5)
        w = w * c
    if cfg.fallback_blend >= 0:
        lvl = matching.label_levels(features["fine"], features["coarse"], target["fine"],
                                    target["coarse"], cfg.k)
        w[lvl == 2] = np.where(valid, cfg.fallback_blend, 0.0)
    out = w * knn + (1.0 - w) * mapped
    if cfg.postfilter > 0:
        out = _postfilter(out, cfg.postfilter)
    if cfg.keep_energy > 0:
        # re-impose (partly) the source's frame-energy contour relative to the mapped envelope
        e_src = np.log(np.exp(mapped).mean(1))
        e_out = np.log(np.exp(out).mean(1))
        out = out + cfg.keep_energy * (e_src - e_out)[:, None]
    return out


def _moving_average(x: np.ndarray, n: int) -> np.ndarray:
    c = np.cumsum(np.concatenate([np.zeros((1, x.shape[1]), x.dtype), x]), 0)
    return ((c[n:] - c[:-n]) / n).astype(np.float32)


def _postfilter(logsp: np.ndarray, beta: float, lo: int = 2) -> np.ndarray:
    """Cepstral emphasis (quefrency >= lo) with the frame energy preserved."""
    nb = logsp.shape[1]
    c = np.fft.irfft(logsp.astype(np.float64), axis=1)
    w = np.ones(c.shape[1])
    w[lo:c.shape[1] - lo + 1] = 1.0 + beta
    out = np.fft.rfft(c * w, axis=1).real[:, :nb]
    e0 = np.log(np.exp(logsp.astype(np.float64)).sum(1))
    e1 = np.log(np.exp(out).sum(1))
    return (out + (e0 - e1)[:, None]).astype(np.float32)


def synthesize(features: dict, target: dict, cfg: QualityParams | None = None,
               pitch_shift_semitones: float = 0.0) -> np.ndarray:
    """Voice synthesis: F0 mapping + envelope conversion + WORLD; exactly the source's length."""
    cfg = cfg or QualityParams()
    sr = int(features["sr"])
    fp = float(features["frame_period_ms"])
    f0 = map_f0(features["f0"], target, pitch_shift_semitones)
    env = convert_envelope(features, target, cfg)
    sp = np.exp(env.astype(np.float64))
    y = world.synthesize(f0, sp, features["ap"], sr, fp, int(features["n_samples"]))
    peak = float(np.abs(y).max()) if len(y) else 0.0
    if peak > 0.99:
        y = y * (0.99 / peak)
    return y.astype(np.float32)
