"""Fast zero-shot voice conversion in torch: analysis -> statistics mapping -> HNM synthesis.

Stages (each vectorised over frames, device-agnostic):
  analyze(audio, sr, params)            -> features (f0, voiced, log envelope, aperiodicity)
  target_stats([features, ...])         -> numpy float32 stats (profile part; npz-safe)
  synthesize(features, stats, params)   -> converted waveform, exactly len(source)
  search_embedding_transform(audio, sr, embedding, params) -> transform dict for the
        embedding-only mode (a 256-d GE2E d-vector instead of a profile); feed it to
        `synthesize(features, transform, params)` in place of target stats.

Each function takes an optional `resources=` (a `FastResources`: the analyser, vocoder and mel
bands, built once and kept by the caller, e.g. a stage from its `setup`); without it, the
function builds them for that one call.

Conversion = log-F0 Gaussian mapping (+ pitch_shift_semitones), optional formant warp of
the envelope (alpha, estimated from the target's average spectrum or searched), and
per-band mean/variance mapping of the log-mel envelope (separately for voiced and
unvoiced frames), applied as a smooth per-bin log-gain on the linear envelope.

With ``FastParams.adaptive_envelope`` the analysis also returns the pitch-adaptive envelope
(:mod:`.adaptive_envelope`) and ``target_stats`` its statistics (``adaptive_mel_*``);
``synthesize`` converts on it when both the features and the statistics have it, else on
the cepstral envelope (profiles enrolled before, voice-bank estimates, streaming).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import adaptive_envelope as adaptive, f0range, mel
from ..resample import Resampler
from .f0 import track_f0, track_f0_world
from .vocoder import EnvelopeAnalyzer, HarmonicNoiseSynth

__all__ = ["FastParams", "FastResources", "analyze", "target_stats", "with_adaptive_envelope", "synthesize", "convert",
           "search_embedding_transform", "mel_matrix", "log_mel", "warp_envelope",
           "warp_factor", "band_centres"]


@dataclass
class FastParams:
    hop_ms: float = 5.0             # frame hop; analysis and synthesis share the grid
    n_fft: int = 0                  # 0: 1024 for sr <= 24 kHz, 2048 above
    f0_min: float = f0range.KERNEL.floor
    f0_max: float = f0range.KERNEL.ceil
    f0_method: str = "yin"          # "yin" (torch) or "dio" (pyworld, CPU)
    yin_threshold: float = 0.2
    voicing_threshold: float = 0.4
    lifter_ratio: float = 0.7
    adaptive_envelope: bool = False # also the pitch-adaptive (3-period window) envelope: adaptive_log_env
    ap_floor: float = 0.1
    ap_power: float = 2.0
    n_mels: int = 40
    mel_fmax: float = 7600.0        # fixed band layout so 16 kHz profiles map 22/44 kHz sources
    var_scale: float = 1.0          # 1 = full std mapping of the log-mel envelope, 0 = mean only
    env_strength: float = 1.0       # fraction of the envelope mapping applied
    max_delta_db: float = 24.0      # clamp of the per-band envelope change
    warp: bool = True               # estimate a formant warp from the target's average envelope
    warp_range: float = 0.2         # alpha in [1/(1+r), 1+r]
    noise_gain: float = 1.0
    device: str = "cpu"
    seed: int = 0

    def fft_size(self, sr: int) -> int:
        return self.n_fft or (1024 if sr <= 24000 else 2048)

    def hop(self, sr: int) -> int:
        return max(1, int(round(sr * self.hop_ms / 1000.0)))


class FastResources:
    """What the fast method builds once and keeps: the envelope analyser and the vocoder
    (per sample rate, analysis settings and device), the mel bands (per layout and device) and
    the F0 tracker's resampling kernels.

    Built on first use and held by the owner (a stage, from ``setup``); the tables are only
    read afterwards, and building is under a lock, so threads may share one object. The
    public functions take ``resources=``; without it they build their own for the call.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._modules: dict[tuple, tuple[EnvelopeAnalyzer, HarmonicNoiseSynth]] = {}
        self._mel: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self.resampler = Resampler(kernel_dtype=torch.float32)  # to the F0 tracker's 8 kHz

    def modules(self, sr: int, p: "FastParams", device) -> tuple[EnvelopeAnalyzer, HarmonicNoiseSynth]:
        """(envelope analyser, harmonic-plus-noise vocoder) for ``sr`` and ``p`` on ``device``."""
        key = (sr, p.fft_size(sr), p.hop(sr), p.lifter_ratio, p.ap_floor, p.ap_power, p.noise_gain, str(device))
        with self._lock:
            m = self._modules.get(key)
            if m is None:
                ana = EnvelopeAnalyzer(sr, p.fft_size(sr), p.hop(sr), lifter_ratio=p.lifter_ratio,
                                       ap_floor=p.ap_floor, ap_power=p.ap_power).to(device)
                syn = HarmonicNoiseSynth(sr, p.fft_size(sr), p.hop(sr), noise_gain=p.noise_gain).to(device)
                m = self._modules[key] = (ana, syn)
            return m

    def mel(self, sr: int, n_fft: int, n_mels: int, fmax: float, device) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`mel_matrix`, built once per layout and device."""
        key = (sr, n_fft, n_mels, fmax, str(device))
        with self._lock:
            m = self._mel.get(key)
            if m is None:
                m = self._mel[key] = mel_matrix(sr, n_fft, n_mels, fmax, device)
            return m


def mel_matrix(sr: int, n_fft: int, n_mels: int, fmax: float, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(filterbank [F, n_mels], interpolation back to bins [n_mels, F]) for a fixed band layout.

    The bands are :func:`dsp.mel.filterbank`'s Slaney filters from 50 Hz, normalised to band
    averages. Built on each call: keep the result (:class:`FastResources` does)."""
    fmax = min(fmax, sr / 2)
    fb = torch.from_numpy(np.ascontiguousarray(mel.filterbank(sr, n_fft, n_mels, 50.0, fmax).T))
    fb = fb / fb.sum(0, keepdim=True).clamp_min(1e-8)  # band averages
    # band centres (Hz) -> per-bin linear interpolation weights, constant beyond the ends
    hz = torch.arange(n_fft // 2 + 1, dtype=torch.float32) * sr / n_fft
    cen = (fb * hz[:, None]).sum(0)
    pos = torch.from_numpy(np.interp(hz.numpy(), cen.numpy(), np.arange(n_mels))).float()
    i0 = pos.floor().long().clamp(0, n_mels - 1)
    i1 = (i0 + 1).clamp(max=n_mels - 1)
    w = pos - i0.float()
    I = torch.zeros(n_mels, n_fft // 2 + 1)
    I[i0, torch.arange(len(hz))] += 1 - w
    I[i1, torch.arange(len(hz))] += w
    return fb.to(device), I.to(device)


def log_mel(log_env: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
    """Log-mel bands ``[T, n_mels]`` (natural-log amplitude) of a log envelope through the
    filterbank ``fb`` ``[F, n_mels]`` from :func:`mel_matrix`."""
    return 0.5 * torch.log(torch.exp(2 * log_env) @ fb + 1e-10)


def _as_tensor(audio, device) -> torch.Tensor:
    if not isinstance(audio, torch.Tensor):
        audio = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    x = audio.to(device=device, dtype=torch.float32)
    return x.mean(-1) if x.ndim == 2 and x.shape[-1] <= 8 else x.reshape(-1)


def _fill_unvoiced(f0: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of log-F0 across unvoiced frames (constant at the ends)."""
    T = f0.shape[0]
    if not bool(voiced.any()):
        return torch.full_like(f0, 120.0)
    idx = torch.arange(T, device=f0.device)
    vi = idx[voiced]
    lf = torch.log(f0[voiced].clamp_min(1.0))
    j = torch.searchsorted(vi, idx).clamp(1, max(1, vi.numel() - 1))
    if vi.numel() == 1:
        return torch.full_like(f0, float(f0[voiced][0]))
    a, b = vi[j - 1].float(), vi[j].float()
    w = ((idx.float() - a) / (b - a).clamp_min(1)).clamp(0, 1)
    out = lf[j - 1] * (1 - w) + lf[j] * w
    return torch.exp(out)


def warp_envelope(log_env: torch.Tensor, alpha: float) -> torch.Tensor:
    """Formant warp: new(f) = old(f / alpha) on the bin axis (alpha > 1 raises formants)."""
    if abs(alpha - 1.0) < 1e-4:
        return log_env
    Fb = log_env.shape[-1]
    pos = (torch.arange(Fb, device=log_env.device, dtype=torch.float32) / alpha).clamp(0, Fb - 1.001)
    i0 = pos.floor().long()
    w = pos - i0.float()
    return log_env[..., i0] * (1 - w) + log_env[..., i0 + 1] * w


def _speech_mask(log_env: torch.Tensor, db: float = 45.0) -> torch.Tensor:
    e = torch.logsumexp(2 * log_env, dim=1)  # log frame energy (natural)
    thr = torch.quantile(e, 0.98) - db / 10 * math.log(10)
    return e > thr


@torch.no_grad()
def analyze(audio, sr: int, params: FastParams | None = None,
            resources: FastResources | None = None) -> dict[str, torch.Tensor]:
    """Feature extraction: f0 [T] (Hz, 0 unvoiced), voiced [T] bool, log_env [T, F]
    (natural-log amplitude envelope), ap [T, F] aperiodicity, log_mel [T, n_mels],
    speech [T] bool, plus scalars sr / n_samples as 0-d tensors; with
    ``params.adaptive_envelope`` also adaptive_log_env [T, F], adaptive_log_mel [T, n_mels] and
    adaptive_speech [T] (:mod:`.adaptive_envelope`)."""
    p = params or FastParams()
    dev = torch.device(p.device)
    x = _as_tensor(audio, dev)
    hop = p.hop(sr)
    res = resources or FastResources()
    if p.f0_method == "dio":
        f0, voiced = track_f0_world(x, sr, hop, p.f0_min, p.f0_max)
    else:
        f0, voiced = track_f0(x, sr, hop, p.f0_min, p.f0_max, threshold=p.yin_threshold,
                              voicing_threshold=p.voicing_threshold, resampler=res.resampler)
    ana, _ = res.modules(sr, p, dev)
    env, ap, _ = ana(x, f0)
    T = env.shape[0]
    f0, voiced = f0[:T], voiced[:T]
    fb, _ = res.mel(sr, p.fft_size(sr), p.n_mels, p.mel_fmax, dev)
    out = {"f0": f0, "voiced": voiced, "log_env": env, "ap": ap, "log_mel": log_mel(env, fb),
           "speech": _speech_mask(env), "sr": torch.tensor(sr), "n_samples": torch.tensor(x.numel())}
    if p.adaptive_envelope:
        a_env = adaptive.envelope(x, f0, sr, p.fft_size(sr), hop)
        out["adaptive_log_env"], out["adaptive_log_mel"] = a_env, log_mel(a_env, fb)
        out["adaptive_speech"] = _speech_mask(a_env)
    return out


def _class_stats(log_mel, voiced, speech):
    out = {}
    for name, m in (("v", voiced & speech), ("u", (~voiced) & speech)):
        if int(m.sum()) < 5:
            m = speech if int(speech.sum()) >= 5 else torch.ones_like(speech)
        sel = log_mel[m]
        out[f"mel_mean_{name}"] = sel.mean(0)
        out[f"mel_std_{name}"] = sel.std(0).clamp_min(1e-3)
    return out


def target_stats(analyses: list[dict]) -> dict[str, np.ndarray]:
    """Profile statistics of a target voice from analyses of its reference utterances."""
    lf0 = torch.cat([torch.log(a["f0"][a["voiced"]].float().cpu()) for a in analyses])
    mel = torch.cat([a["log_mel"].float().cpu() for a in analyses])
    v = torch.cat([a["voiced"].cpu() for a in analyses])
    s = torch.cat([a["speech"].cpu() for a in analyses])
    st = _class_stats(mel, v, s)
    out = {k: t.numpy().astype(np.float32) for k, t in st.items()}
    if all("adaptive_log_mel" in a for a in analyses):  # the same statistics of the adaptive envelope
        amel = torch.cat([a["adaptive_log_mel"].float().cpu() for a in analyses])
        s_a = torch.cat([a["adaptive_speech"].cpu() for a in analyses])
        out.update({ADAPTIVE + k: t.numpy().astype(np.float32) for k, t in _class_stats(amel, v, s_a).items()})
    if lf0.numel() < 5:
        lf0 = torch.tensor([math.log(120.0), math.log(130.0)])
    out["lf0_mean"] = np.array([float(lf0.mean())], np.float32)
    out["lf0_std"] = np.array([float(lf0.std().clamp_min(0.02))], np.float32)
    out["mel_fmax"] = np.array([analyses[0].get("mel_fmax", 7600.0)], np.float32)
    return out


ADAPTIVE = "adaptive_"  # prefix of the adaptive envelope's statistics in a profile part


def with_adaptive_envelope(features: dict, target_stats: dict) -> tuple[dict, dict] | None:
    """``(features, target_stats)`` reading the adaptive envelope and its statistics in place of
    the cepstral ones, or None when either lacks them (a profile enrolled before they existed,
    a voice-bank estimate, an analysis without ``adaptive_envelope``)."""
    if "adaptive_log_env" not in features or ADAPTIVE + "mel_mean_v" not in target_stats:
        return None
    f = dict(features, log_env=features["adaptive_log_env"], log_mel=features["adaptive_log_mel"],
             speech=features["adaptive_speech"])
    ts = dict(target_stats)
    for k in [k for k in target_stats if k.startswith(ADAPTIVE)]:
        ts[k[len(ADAPTIVE):]] = target_stats[k]
    return f, ts


def _detrend(v: torch.Tensor) -> torch.Tensor:
    """Remove mean and linear trend (spectral tilt) over the band index (the last axis)."""
    i = torch.linspace(-1, 1, v.shape[-1], device=v.device)
    v = v - v.mean(-1, keepdim=True)
    return v - i * (v * i).sum(-1, keepdim=True) / (i * i).sum()


def _warp_mel(lm: torch.Tensor, centres: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Warp a log-mel vector along frequency: new(f) = old(f / alpha) (band centres in Hz), for
    each of the factors ``alpha`` ``[A]`` at once: ``[A, bands]``."""
    q = (centres[None, :] / alpha[:, None]).clamp(float(centres[0]), float(centres[-1]))
    j = torch.searchsorted(centres, q).clamp(1, centres.numel() - 1)
    w = (q - centres[j - 1]) / (centres[j] - centres[j - 1])
    return lm[j - 1] * (1 - w) + lm[j] * w


def band_centres(fb: torch.Tensor, sr: int) -> torch.Tensor:
    """Centre frequency (Hz) of each band of the filterbank ``fb`` ``[bins, bands]``."""
    hz = torch.arange(fb.shape[0], device=fb.device, dtype=torch.float32) * sr / (2 * (fb.shape[0] - 1))
    return (fb * hz[:, None]).sum(0)


def warp_factor(src: torch.Tensor, tgt: torch.Tensor, centres: torch.Tensor, warp_range: float) -> float:
    """The formant warp aligning the source's average voiced log-mel shape ``src`` with the
    target's ``tgt`` (mean and tilt removed), symmetrised: warp source by alpha toward target and
    target by 1/alpha toward source, so A->B and B->A give reciprocal factors. 25 candidate
    factors in ``[1/(1+r), 1+r]``, scored together."""
    alphas = torch.exp(torch.linspace(-math.log1p(warp_range), math.log1p(warp_range), 25)).to(src.device)
    d1 = _detrend(_warp_mel(src, centres, alphas)) - _detrend(tgt)
    d2 = _detrend(src) - _detrend(_warp_mel(tgt, centres, 1 / alphas))
    cost = (d1 * d1).mean(-1) + (d2 * d2).mean(-1) + 0.05 * torch.log(alphas) ** 2
    return float(alphas[int(torch.argmin(cost))])


def _warp_alpha(feat, tstats, p: FastParams, fb) -> float:
    """:func:`warp_factor` of an utterance's voiced speech frames toward a profile's statistics."""
    m = feat["voiced"] & feat["speech"]
    if int(m.sum()) < 10:
        return 1.0
    src = feat["log_mel"][m].mean(0)
    tgt = torch.as_tensor(tstats["mel_mean_v"], device=src.device)
    return warp_factor(src, tgt, band_centres(fb, int(feat["sr"])), p.warp_range)


def mapped_envelope(features: dict, target_stats: dict, params: FastParams,
                    resources: FastResources | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The source's (log envelope, aperiodicity) formant-warped and mapped to the target's
    per-band statistics (the fast method's envelope conversion)."""
    p, ts = params, target_stats
    env, ap, voiced = features["log_env"], features["ap"], features["voiced"]
    dev = env.device
    sr = int(features["sr"])
    fb, I = (resources or FastResources()).mel(sr, p.fft_size(sr), p.n_mels, p.mel_fmax, dev)
    alpha = float(np.asarray(ts.get("alpha", 1.0)).reshape(-1)[0])
    if "mel_mean_v" in ts and p.warp and "alpha" not in ts:
        alpha = _warp_alpha(features, ts, p, fb)
    env2 = warp_envelope(env, alpha)
    if alpha != 1.0:
        ap = warp_envelope(ap, alpha)
    if "mel_mean_v" in ts:
        lm = log_mel(env2, fb)
        st = _class_stats(lm, voiced, features["speech"])
        delta = torch.zeros_like(lm)
        for c, m in (("v", voiced), ("u", ~voiced)):
            mu_s, sd_s = st[f"mel_mean_{c}"], st[f"mel_std_{c}"]
            mu_t = torch.as_tensor(ts[f"mel_mean_{c}"], device=dev)
            sd_t = torch.as_tensor(ts[f"mel_std_{c}"], device=dev)
            ratio = (sd_t / sd_s) ** p.var_scale
            mapped = (lm - mu_s) * ratio + mu_t
            delta = torch.where(m[:, None], mapped - lm, delta)
        lim = p.max_delta_db / 20 * math.log(10)
        delta = delta.clamp(-lim, lim) * p.env_strength
        env2 = env2 + delta @ I
    return env2, ap


def contour_stats(lf: torch.Tensor, voiced: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and spread (at least 0.02) of a log-F0 contour over its voiced frames (one voiced
    frame: no spread); what a source contour is standardised by before it is mapped."""
    src = lf[voiced]
    spread = src.std() if src.numel() > 1 else src.new_zeros(())
    return src.mean(), spread.clamp_min(0.02)


def mean_spread_mapped_log_f0(lf: torch.Tensor, voiced: torch.Tensor, lf0_mean: float,
                              lf0_std: float) -> torch.Tensor:
    """A log-F0 contour standardised by its voiced frames' :func:`contour_stats` and given the
    target's mean ``lf0_mean`` and spread ``lf0_std``: how every method maps a source's pitch."""
    mu_s, sd_s = contour_stats(lf, voiced)
    return (lf - mu_s) / sd_s * lf0_std + lf0_mean


def sorted_voiced_log_f0(frame_lf0, device) -> torch.Tensor:
    """A target's voiced frames' log-F0 (a profile's ``frame_lf0``, 0 where unvoiced), ascending:
    its pitch distribution, for :func:`log_f0_at_quantiles`."""
    lf = torch.as_tensor(np.asarray(frame_lf0, np.float32), device=device)
    return lf[lf > 0].sort().values


def log_f0_at_quantiles(sorted_lf0: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The target's log-F0 at quantiles ``q`` (0..1) of its distribution ``sorted_lf0`` (from
    :func:`sorted_voiced_log_f0`): the nearest of its sorted frames. Offline the quantile is a
    source frame's rank, streamed its running z-score read as normal."""
    return sorted_lf0[(q * (sorted_lf0.numel() - 1)).round().long()]


@torch.no_grad()
def synthesize(features: dict, target_stats: dict | None, params: FastParams | None = None,
               pitch_shift_semitones: float = 0.0, resources: FastResources | None = None) -> torch.Tensor:
    """Convert analysed source features toward `target_stats` and render the waveform.

    target_stats: output of `target_stats`, or a transform from `search_embedding_transform`
    (keys alpha / pitch_semitones / tilt_db_per_oct), or None (plain resynthesis).
    Returns a float32 tensor with exactly the source's number of samples."""
    p = params or FastParams()
    f0, voiced, env, ap = features["f0"], features["voiced"], features["log_env"], features["ap"]
    dev = env.device
    sr, n = int(features["sr"]), int(features["n_samples"])
    res = resources or FastResources()
    _, syn = res.modules(sr, p, dev)
    ts = target_stats or {}
    adaptive_pair = with_adaptive_envelope(features, ts)
    if adaptive_pair is not None:  # measured on the same envelope: use it
        features, ts = adaptive_pair
    lf = torch.log(f0.clamp_min(1.0))
    shift = pitch_shift_semitones * math.log(2) / 12
    if "lf0_mean" in ts and bool(voiced.any()):
        lf = mean_spread_mapped_log_f0(lf, voiced, float(ts["lf0_mean"][0]), float(ts["lf0_std"][0]))
    shift += float(np.asarray(ts.get("pitch_semitones", 0.0)).reshape(-1)[0]) * math.log(2) / 12
    f0c = torch.where(voiced, torch.exp(lf + shift), torch.zeros_like(lf))
    f0c = torch.where(voiced, f0c.clamp(40.0, 0.45 * sr), f0c)
    f0_osc = _fill_unvoiced(f0c, voiced)
    env2, ap = mapped_envelope(features, ts, p, res)
    tilt = float(np.asarray(ts.get("tilt_db_per_oct", 0.0)).reshape(-1)[0])
    if tilt:
        hz = torch.arange(env2.shape[1], device=dev, dtype=torch.float32) * sr / p.fft_size(sr)
        env2 = env2 + (tilt / 20 * math.log(10)) * torch.log2((hz / 500.0).clamp(0.25, 16))
    gain_db = float(np.asarray(ts.get("gain_db", 0.0)).reshape(-1)[0])
    if gain_db:
        env2 = env2 + gain_db / 20 * math.log(10)
    # aperiodicity: full noise where unvoiced
    ap2 = torch.where(voiced[:, None], ap, torch.ones_like(ap))
    g = torch.Generator(device=dev)
    g.manual_seed(p.seed)
    y = syn(f0_osc, env2, ap2, n, generator=g)
    return y


def convert(audio, sr: int, stats: dict | None, params: FastParams | None = None,
            pitch_shift_semitones: float = 0.0, resources: FastResources | None = None) -> torch.Tensor:
    """analyze + synthesize in one call."""
    p = params or FastParams()
    res = resources or FastResources()
    return synthesize(analyze(audio, sr, p, res), stats, p, pitch_shift_semitones, res)


def search_embedding_transform(audio, sr: int, embedding, params: FastParams | None = None,
                               excerpt_s: float = 4.0, encoder=None,
                               pitch_grid=(-8.0, -4.0, 0.0, 4.0, 8.0),
                               alpha_grid=(0.86, 0.93, 1.0, 1.07, 1.15),
                               tilt_grid=(-3.0, 0.0, 3.0), refine: bool = True,
                               resources: FastResources | None = None) -> dict:
    """Embedding-only mode: find a transform of the source whose GE2E embedding is most
    similar to `embedding` (256-d resemblyzer d-vector of the target).

    Transform = pitch shift (semitones, on the source's own contour) + formant warp alpha
    (envelope frequency scaling) + spectral tilt (dB/octave above 500 Hz). Coordinate search
    on the most energetic `excerpt_s` seconds: pitch grid (alpha=1), alpha grid at the best
    pitch, tilt grid, then (refine) a half-step pitch/alpha pass. Each candidate is one
    synthesis of the excerpt plus one embedding (~15-20 candidates).
    Returns npz-safe arrays {pitch_semitones, alpha, tilt_db_per_oct, similarity,
    similarity_source}; pass the dict to `synthesize` in place of target stats.
    `encoder`: anything with resemblyzer's `embed_utterance` (an `embedding.GE2EEncoder`;
    default: one built for this call)."""
    from resemblyzer import preprocess_wav

    p = params or FastParams()
    res = resources or FastResources()
    if encoder is None:
        from ..embedding import GE2EEncoder
        encoder = GE2EEncoder("cpu")
    enc = encoder
    x = _as_tensor(audio, torch.device(p.device))
    seg = int(excerpt_s * sr)
    if x.numel() > seg:
        step = sr // 4
        e = F.avg_pool1d((x * x)[None, None], step, step)[0, 0]
        w = max(1, seg // step)
        s = F.avg_pool1d(e[None, None], w, 1)[0, 0]
        i = int(torch.argmax(s)) * step
        x = x[i:i + seg]
    feats = analyze(x, sr, p, res)
    tgt = np.asarray(embedding, np.float32).reshape(-1)
    tgt = tgt / (np.linalg.norm(tgt) + 1e-9)

    def emb(y):
        y = y.detach().float().cpu().numpy()
        e = enc.embed_utterance(preprocess_wav(y, source_sr=sr))
        return e / (np.linalg.norm(e) + 1e-9)

    cache: dict = {}

    def score(k):
        key = (round(k[0], 3), round(k[1], 4), round(k[2], 3))
        if key not in cache:
            y = synthesize(feats, {"pitch_semitones": k[0], "alpha": k[1], "tilt_db_per_oct": k[2]}, p, resources=res)
            cache[key] = float(emb(y) @ tgt)
        return cache[key]

    sim_src = float(emb(x) @ tgt)
    best = (0.0, 1.0, 0.0)
    best = max([(ps, 1.0, 0.0) for ps in pitch_grid] + [best], key=score)
    best = max([(best[0], a, 0.0) for a in alpha_grid] + [best], key=score)
    best = max([(best[0], best[1], t) for t in tilt_grid] + [best], key=score)
    if refine:
        dp = (pitch_grid[1] - pitch_grid[0]) / 2 if len(pitch_grid) > 1 else 1.0
        da = (alpha_grid[1] / alpha_grid[0]) ** 0.5 if len(alpha_grid) > 1 else 1.03
        best = max([(best[0] + i * dp, best[1], best[2]) for i in (-1, 1)] + [best], key=score)
        best = max([(best[0], best[1] * da ** j, best[2]) for j in (-1, 1)] + [best], key=score)
    f = lambda v: np.array([v], np.float32)
    return {"pitch_semitones": f(best[0]), "alpha": f(best[1]), "tilt_db_per_oct": f(best[2]),
            "similarity": f(score(best)), "similarity_source": f(sim_src)}

