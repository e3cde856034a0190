"""The fast method, block by block: streaming analysis, causal mapping and HNM synthesis.

Frame grid: frame ``k`` is centred on global sample ``k * hop`` (the offline grid of
:mod:`.fast`). Three stateful objects, each fed what the previous one produced:

* :class:`StreamAnalyzer` keeps a ring of input history (its envelopes are put on the offline
  analysis window's level scale, which the profile statistics were measured on). When samples arrive it analyses
  one window (history + new samples) with the offline torch YIN and envelope analyser and
  returns every frame whose window, plus ``lookahead_frames`` of later frames (the F0
  median filters and aperiodicity smoothing read them), is complete. Look-ahead:
  ``lookahead_frames * hop + half_context`` samples.
* :class:`StreamMapper` maps F0 and envelope to the target like :func:`.fast.synthesize`,
  but every per-utterance statistic of the source is a causal running estimate
  (:mod:`.running`):

  - source log-F0 mean / std: a generic adult prior (150 Hz, 0.18) worth
    ``prior_mean_frames`` / ``prior_std_frames`` voiced frames, updated with every voiced
    frame (clipped to 4 deviations of the estimate so far: a stray octave error at a
    window's edge must not inflate a short stream's deviation) and forgotten with a ``tau_s``
    time constant;
  - source log-mel mean / std per class (voiced / unvoiced speech): the *target's* profile
    statistics as the prior (so the envelope starts unchanged and moves as evidence comes);
  - the speech mask (offline: 45 dB under the utterance's 98th-percentile energy) and the
    YIN silence gate (offline: 50 dB under the utterance's loudest frame): relative to a
    running peak level with a 3 dB/s decay;
  - the formant warp ``alpha`` (offline: from the utterance's mean voiced spectrum): 1 until
    ``min_warp_frames`` voiced speech frames were seen, then re-estimated every
    ``warp_every`` frames from the running mean (no prior), its log shrunk toward 0 by
    ``n / (n + warp_prior_frames)`` (``n`` voiced speech frames seen); the warp applied moves
    toward it frame by frame by at most ``warp_slew`` in log per frame, so formants glide
    instead of jumping mid-word;
  - the envelope mapping's strength grows as ``n / (n + env_ramp_frames)`` with the speech
    frames seen, so the first phones are not mapped by statistics of those phones alone.
  A cold stream's start cost a third of the words before these two (Whisper WER 0.22 against
  0.14 offline on 32 dev sentences; with them 0.13: README).
* :class:`StreamSynth` renders each frame as a windowed, envelope-shaped harmonic + noise
  grain and overlap-adds the grains (the inverse STFT of :class:`.vocoder.HarmonicNoiseSynth`
  done incrementally: numerator and window-power sums, so the output equals ``istft``'s).
  The oscillator phase is carried from frame to frame (``phi_k = phi_{k-1} + pi * hop *
  (f0_{k-1} + f0_k) / sr``) so block edges make no discontinuity; the noise is one
  continuous seeded signal. Samples are complete ``synth_fft / 2 - hop`` after the last
  frame's centre.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from .f0 import SILENCE_FLOOR_DBFS, track_f0
from .fast import (FastParams, _warp_mel, band_centres, log_f0_at_quantiles, log_mel, mel_matrix,
                   sorted_voiced_log_f0, warp_factor)
from .running import PeakTracker, RunningMoments
from .vocoder import EnvelopeAnalyzer

__all__ = ["StreamSettings", "StreamAnalyzer", "StreamMapper", "StreamSynth", "frame_grid"]

_YIN_RATE = 8000  # track_f0's analysis rate


@dataclass(frozen=True)
class StreamSettings:
    """Settings of the streaming fast method (the offline ones in ``fast``)."""

    fast: FastParams = field(default_factory=FastParams)
    window_ms: float = 24.0           # analysis window (offline: 1024 samples, 46 ms at 22 kHz)
    synth_window_ms: float = 0.0      # synthesis grain; 0: the analysis window
    env_smooth_frames: int = 1        # moving average of the log envelope over this many frames (odd)
    ap_window_ms: float = 48.0        # aperiodicity window (long enough to resolve low voices' harmonics),
                                      # centred earlier so that it reads no further ahead than the others
    lookahead_frames: int = 1         # later frames read before a frame is final
    context_frames: int = 3           # earlier frames re-analysed for the filters' history
    prior_mean_frames: float = 10.0   # weight of the priors' means, in frames
    prior_std_frames: float = 50.0    # weight of the priors' standard deviations
    tau_s: float = 30.0               # forgetting time constant of the running statistics
    min_warp_frames: int = 10         # voiced speech frames before the formant warp is estimated
    warp_every: int = 40              # frames between warp re-estimates
    # a cold stream's first phones must not be warped and mapped by statistics of those phones
    # alone, nor see the formants jump once an estimate exists (that cost a third of the words)
    warp_prior_frames: float = 40.0   # the warp's log factor is shrunk toward 0 by n / (n + this), n voiced speech frames
    warp_slew: float = 0.004          # most the warp's log factor moves per frame (0: it jumps to the estimate)
    env_ramp_frames: float = 60.0     # the envelope mapping's strength grows as n / (n + this), n speech frames
    silence_db: float = -50.0         # YIN gate under the running peak
    speech_db: float = 45.0           # speech mask under the running peak
    floor_dbfs: float = SILENCE_FLOOR_DBFS  # quieter frames are never voiced nor speech (digital silence)
    prior_f0_hz: float = 150.0
    prior_lf0_std: float = 0.18
    f0_quantile: float = 0.0          # weight of the target's pitch distribution (profile frame_lf0): each
                                      # voiced frame's running z-score taken to the target's log-F0 at that
                                      # normal quantile (a stream cannot rank the frames to come)


@dataclass(frozen=True)
class Geometry:
    """Integer sizes of the streaming grid at one sample rate."""

    sr: int
    hop: int
    n_fft: int
    synth_fft: int
    half_context: int   # samples either side of a frame centre that its analysis reads
    lookahead: int      # samples after a frame's centre needed before it is final
    ap_fft: int         # aperiodicity window
    ap_lag: int         # frames by which the aperiodicity analysis lags the frame it serves

    @property
    def synth_delay(self) -> int:
        """Samples between the last synthesised frame's centre and the last complete sample."""
        return self.synth_fft // 2 - self.hop


def _even(n: float) -> int:
    return max(16, int(round(n / 2.0)) * 2)


def frame_grid(sr: int, s: StreamSettings) -> Geometry:
    """The :class:`Geometry` of ``s`` at ``sr`` Hz."""
    p = s.fast
    hop = p.hop(sr)
    n_fft = _even(sr * s.window_ms / 1000.0)
    synth = _even(sr * (s.synth_window_ms or s.window_ms) / 1000.0)
    tau_max = int(math.ceil(_YIN_RATE / p.f0_min)) + 1  # YIN reads tau_max analysis samples each side
    yin = int(math.ceil((tau_max + 8) * sr / _YIN_RATE)) if sr > _YIN_RATE else tau_max + 8
    half = max(n_fft // 2, yin)
    ap_fft = max(n_fft, _even(sr * s.ap_window_ms / 1000.0))
    ap_lag = max(0, -(-(ap_fft // 2 - half) // hop))
    return Geometry(sr, hop, n_fft, synth, half, s.lookahead_frames * hop + half, ap_fft, ap_lag)


def window_log_gain(n_ref: int, n: int) -> float:
    """``0.5 * ln(sum(w_ref^2) / sum(w^2))`` for Hann windows of ``n_ref`` and ``n`` samples:
    what to add to a log envelope analysed with ``n`` to read it on ``n_ref``'s scale."""
    return 0.5 * math.log(float(torch.hann_window(n_ref).square().sum() / torch.hann_window(n).square().sum()))


def _rebin(n_from: int, n_to: int) -> torch.Tensor:
    """``[n_from//2+1, n_to//2+1]``: linear interpolation of a spectrum between FFT sizes."""
    pos = torch.arange(n_to // 2 + 1, dtype=torch.float32) * (n_from / n_to)
    i0 = pos.floor().long().clamp(0, n_from // 2)
    i1 = (i0 + 1).clamp(max=n_from // 2)
    w = pos - i0.float()
    R = torch.zeros(n_from // 2 + 1, n_to // 2 + 1)
    R[i0, torch.arange(n_to // 2 + 1)] += 1 - w
    R[i1, torch.arange(n_to // 2 + 1)] += w
    return R


class StreamAnalyzer:
    """Input samples in, finished analysis frames out (see the module docstring)."""

    def __init__(self, sr: int, settings: StreamSettings, device="cpu"):
        self.s, self.sr, self.device = settings, int(sr), torch.device(device)
        self.g = g = frame_grid(sr, settings)
        p = settings.fast
        self.ana = EnvelopeAnalyzer(sr, g.n_fft, g.hop, lifter_ratio=p.lifter_ratio, ap_floor=p.ap_floor,
                                    ap_power=p.ap_power).to(self.device)
        self.fb, _ = mel_matrix(sr, g.n_fft, p.n_mels, p.mel_fmax, self.device)
        # a band-smoothed envelope scales with the window's power: put it on the offline
        # analysis's scale, which the profile's statistics were measured on
        self.env_offset = window_log_gain(p.fft_size(sr), g.n_fft)
        self.ap_ana = None if g.ap_fft == g.n_fft else EnvelopeAnalyzer(
            sr, g.ap_fft, g.hop, lifter_ratio=p.lifter_ratio, ap_floor=p.ap_floor, ap_power=p.ap_power).to(self.device)
        self.ap_rebin = None if self.ap_ana is None else _rebin(g.ap_fft, g.n_fft).to(self.device)
        self.hc = -(-g.half_context // g.hop)  # half context, whole frames
        self.left = max(self.hc, g.ap_lag + -(-(g.ap_fft // 2) // g.hop))  # frames before the context
        self.buf = torch.zeros(0, device=self.device)
        self.buf_start = 0     # global index of buf[0]
        self.received = 0
        self.next_frame = 0
        self.peak = PeakTracker(sr / g.hop)
        # track_f0 resamples to 8 kHz on every call, rebuilding its sinc kernel; where the hop is
        # whole at 8 kHz, resample here with a kernel made once (the same kernel)
        self.to8k = None
        if sr > _YIN_RATE and (g.hop * _YIN_RATE) % sr == 0:
            import torchaudio
            self.to8k = torchaudio.transforms.Resample(sr, _YIN_RATE).to(self.device)

    def push(self, x: torch.Tensor) -> dict | None:
        """Append samples; the frames that became final (dict, ``k0`` = first frame index)."""
        g, s, p = self.g, self.s, self.s.fast
        self.buf = torch.cat([self.buf, x.to(self.device, torch.float32).reshape(-1)])
        self.received += int(x.numel())
        last = (self.received - g.lookahead) // g.hop
        k0 = self.next_frame
        if last < k0:
            return None
        first = k0 - s.context_frames - self.left  # first frame of the window (its start = centre)
        ws = first * g.hop
        lo = ws - self.buf_start
        win = self.buf[max(lo, 0):]
        if lo < 0:
            win = torch.cat([torch.zeros(-lo, device=self.device), win])
        if self.to8k is not None:
            yin_in, yin_sr, yin_hop = self.to8k(win), _YIN_RATE, g.hop * _YIN_RATE // self.sr
        else:
            yin_in, yin_sr, yin_hop = win, self.sr, g.hop
        f0, voiced = track_f0(yin_in, yin_sr, yin_hop, p.f0_min, p.f0_max, threshold=p.yin_threshold,
                              voicing_threshold=p.voicing_threshold, silence_db=-1000.0,
                              floor_dbfs=-1000.0)  # gated below, against the running peak
        if self.ap_ana is None:
            env, ap, _ = self.ana(win, f0)
        else:  # the envelope alone (EnvelopeAnalyzer.forward without its aperiodicity)
            X = self.ana.stft(win)
            T = min(X.shape[0], f0.shape[0])
            power = (X.real.square() + X.imag.square())[:T]
            env = self.ana.smooth(0.5 * torch.log(self.ana.band_smooth(power, f0[:T]) + 1e-7), f0[:T])
        if s.env_smooth_frames > 1:  # short windows see the glottal pulses: smooth over time
            n = s.env_smooth_frames
            env = F.avg_pool1d(env.t()[None], n, 1, n // 2, count_include_pad=False)[0].t()
        # frames of the window are j = 0.. at ws + j*hop; keep k0..last
        j0, j1 = k0 - first, last - first + 1
        if self.ap_ana is not None:  # frame k's aperiodicity from the long window centred on k - ap_lag
            X = self.ap_ana.stft(win)
            power = (X.real.square() + X.imag.square())[:f0.shape[0]]
            fl = f0[:power.shape[0]]
            ap_long = self.ap_ana.aperiodicity(power, fl, self.ap_ana.band_smooth(power, fl))
            ap = ap_long[j0 - g.ap_lag:j1 - g.ap_lag] @ self.ap_rebin
        else:
            ap = ap[j0:j1]
        f0, voiced, env = f0[j0:j1], voiced[j0:j1], env[j0:j1] + self.env_offset
        # level of each frame (rms over the analysis window, dBFS) against the running peak
        sq = F.pad(win * win, (g.n_fft // 2, g.n_fft // 2))
        cen = torch.arange(j0, j1, device=self.device) * g.hop
        cs = F.pad(torch.cumsum(sq.double(), 0), (1, 0))
        ms = ((cs[cen + g.n_fft] - cs[cen]) / g.n_fft).float()
        db = 10 * torch.log10(ms + 1e-12)
        ref = self.peak.update(db)
        gate = (db > ref + s.silence_db) & (db > s.floor_dbfs)
        voiced = voiced & gate
        f0 = torch.where(voiced, f0, torch.zeros_like(f0))
        speech = (db > ref - s.speech_db) & (db > s.floor_dbfs)
        # keep the history the next window needs
        keep = (last + 1 - s.context_frames - self.left) * g.hop
        if keep > self.buf_start:
            self.buf = self.buf[keep - self.buf_start:]
            self.buf_start = keep
        self.next_frame = last + 1
        return {"k0": k0, "f0": f0, "voiced": voiced, "log_env": env, "ap": ap,
                "log_mel": log_mel(env, self.fb), "speech": speech}


def _warp_frames(x: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """:func:`.fast.warp_envelope` of each frame of ``x`` ``[T, F]`` by its own factor ``alphas`` ``[T]``."""
    Fb = x.shape[-1]
    pos = (torch.arange(Fb, device=x.device, dtype=torch.float32)[None, :] / alphas[:, None]).clamp(0, Fb - 1.001)
    i0 = pos.floor().long()
    w = pos - i0.float()
    return torch.gather(x, 1, i0) * (1 - w) + torch.gather(x, 1, i0 + 1) * w


class StreamMapper:
    """Causal version of the fast method's F0 and envelope mapping (see the module docstring)."""

    def __init__(self, sr: int, settings: StreamSettings, device="cpu"):
        self.s, self.sr, self.device = settings, int(sr), torch.device(device)
        self.g = g = frame_grid(sr, settings)
        p = settings.fast
        self.fb, self.I = mel_matrix(sr, g.n_fft, p.n_mels, p.mel_fmax, self.device)
        self.centres = band_centres(self.fb, sr)
        frames_tau = settings.tau_s * sr / g.hop
        s = settings
        self.lf0 = RunningMoments(math.log(s.prior_f0_hz), s.prior_lf0_std, s.prior_mean_frames, s.prior_std_frames,
                                  frames_tau, self.device)
        self.mel: dict[str, RunningMoments] = {}
        self.alpha = 1.0        # the warp factor applied to the last frame
        self.log_alpha = 0.0    # ... its log
        self.alpha_est = 1.0    # the latest estimate from the running mean (before the evidence ramp)
        self.since_warp = 0
        self.target = None  # the profile part the tables were built from (held: its id is not reused)
        self.last_f0 = 120.0

    def _set_target(self, ts: dict) -> None:
        if ts is self.target:
            return
        self.target = ts
        dev, p = self.device, self.s.fast
        self.t = {k: torch.as_tensor(ts[k], device=dev, dtype=torch.float32) for k in
                  ("mel_mean_v", "mel_std_v", "mel_mean_u", "mel_std_u") if k in ts}
        self.t_lf0 = (float(ts["lf0_mean"][0]), float(ts["lf0_std"][0])) if "lf0_mean" in ts else None
        self.t_lf0_sorted = None
        if self.s.f0_quantile > 0 and ts.get("frame_lf0") is not None:
            lf_t = sorted_voiced_log_f0(ts["frame_lf0"], dev)
            self.t_lf0_sorted = lf_t if lf_t.numel() >= 2 else None
        if not self.mel and self.t:
            tau = self.s.tau_s * self.sr / self.g.hop
            s = self.s
            self.mel = {c: RunningMoments(self.t[f"mel_mean_{c}"], self.t[f"mel_std_{c}"], s.prior_mean_frames,
                                          s.prior_std_frames, tau, dev) for c in ("v", "u")}
        self.since_warp = self.s.warp_every  # a new target: re-estimate the warp now

    def _update_warp(self, n: int) -> float:
        """The warp factor the frames move toward: the estimate (re-made every ``warp_every``
        frames once ``min_warp_frames`` voiced speech frames were seen), its log shrunk toward 0
        by the evidence ramp ``n / (n + warp_prior_frames)``."""
        p, s = self.s.fast, self.s
        if not (p.warp and self.t) or self.mel["v"].count < s.min_warp_frames:
            return 1.0
        self.since_warp += n
        if self.since_warp >= s.warp_every:
            self.since_warp = 0
            src, tgt = self.mel["v"].data_mean, self.t["mel_mean_v"]  # the source's own mean: no prior
            self.alpha_est = warp_factor(src, tgt, self.centres, p.warp_range)
        c = self.mel["v"].count
        ramp = c / (c + s.warp_prior_frames) if s.warp_prior_frames > 0 else 1.0
        return math.exp(math.log(self.alpha_est) * ramp)

    def _alphas(self, T: int) -> torch.Tensor:
        """The warp factor of each of the ``T`` frames: toward :meth:`_update_warp`'s, moving at
        most ``warp_slew`` in log per frame (a jump with 0)."""
        goal = math.log(self._update_warp(T))
        k = torch.arange(1, T + 1, device=self.device, dtype=torch.float32)
        d = goal - self.log_alpha
        if self.s.warp_slew > 0:
            la = self.log_alpha + math.copysign(1.0, d) * torch.clamp(k * self.s.warp_slew, max=abs(d))
        else:
            la = torch.full((T,), goal, device=self.device)
        self.log_alpha = float(la[-1])
        self.alpha = math.exp(self.log_alpha)
        return torch.exp(la)

    @torch.no_grad()
    def map(self, fr: dict, ts: dict, shift_semitones: float = 0.0):
        """(oscillator F0 [T], log envelope [T, F], aperiodicity [T, F]) mapped to ``ts``."""
        p, s = self.s.fast, self.s
        self._set_target(ts)
        f0, voiced, env, ap, speech = fr["f0"], fr["voiced"], fr["log_env"], fr["ap"], fr["speech"]
        T = f0.shape[0]
        lf = torch.log(f0.clamp_min(1.0))
        self.lf0.update(lf, voiced, clip_sd=4.0)
        if self.t_lf0 is not None:
            mu_s, sd_s = self.lf0.mean, self.lf0.std.clamp_min(0.02)
            z = (lf - mu_s) / sd_s
            lf = z * self.t_lf0[1] + self.t_lf0[0]
            if self.t_lf0_sorted is not None:  # as offline's quantile_mapped_f0, the rank from the normal CDF
                q = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
                lf = (1 - s.f0_quantile) * lf + s.f0_quantile * log_f0_at_quantiles(self.t_lf0_sorted, q)
        shift = shift_semitones * math.log(2) / 12
        f0c = torch.exp(lf + shift).clamp(40.0, 0.45 * self.sr)
        # unvoiced frames: hold the last voiced F0 (muted by ap = 1; offline interpolates)
        idx = torch.arange(T, device=f0.device)
        lastv = torch.cummax(torch.where(voiced, idx, torch.full_like(idx, -1)), 0).values
        held = torch.tensor(self.last_f0, device=f0.device)
        f0_osc = torch.where(lastv >= 0, f0c[lastv.clamp_min(0)], held)
        if bool(voiced.any()):
            self.last_f0 = float(f0_osc[-1])
        lm_raw = fr["log_mel"]
        if self.t:
            for c, m in (("v", voiced & speech), ("u", (~voiced) & speech)):
                self.mel[c].update(lm_raw, m)
        alphas = self._alphas(T)
        warped = bool(((alphas - 1.0).abs() >= 1e-4).any())
        env2 = _warp_frames(env, alphas) if warped else env
        if warped:
            ap = _warp_frames(ap, alphas)
        if self.t:
            lm = log_mel(env2, self.fb)
            delta = torch.zeros_like(lm)
            for c, m in (("v", voiced), ("u", ~voiced)):
                mu_s, sd_s = self.mel[c].mean, self.mel[c].std.clamp_min(1e-3)
                if warped:  # statistics of the warped source: warp the source's statistics, frame by frame
                    mu_s = _warp_mel(mu_s, self.centres, alphas)
                    sd_s = _warp_mel(sd_s, self.centres, alphas).clamp_min(1e-3)
                ratio = (self.t[f"mel_std_{c}"] / sd_s) ** p.var_scale
                mapped = (lm - mu_s) * ratio + self.t[f"mel_mean_{c}"]
                delta = torch.where(m[:, None], mapped - lm, delta)
            lim = p.max_delta_db / 20 * math.log(10)
            strength = p.env_strength
            if s.env_ramp_frames > 0:
                n_sp = self.mel["v"].count + self.mel["u"].count
                strength *= n_sp / (n_sp + s.env_ramp_frames)
            env2 = env2 + (delta.clamp(-lim, lim) * strength) @ self.I
        gain_db = float(torch.as_tensor(ts.get("gain_db", 0.0)).reshape(-1)[0]) if "gain_db" in ts else 0.0
        if gain_db:
            env2 = env2 + gain_db / 20 * math.log(10)
        ap2 = torch.where(voiced[:, None], ap, torch.ones_like(ap))
        return f0_osc, env2, ap2


class StreamSynth:
    """Frames in, complete output samples out (see the module docstring)."""

    def __init__(self, sr: int, settings: StreamSettings, device="cpu", seed: int | None = None):
        self.s, self.sr, self.device = settings, int(sr), torch.device(device)
        self.g = g = frame_grid(sr, settings)
        S = g.synth_fft
        self.window = torch.hann_window(S, device=self.device)
        self.bin_hz = torch.arange(S // 2 + 1, device=self.device, dtype=torch.float32) * sr / S
        self.gn = torch.sqrt(self.window.square().sum())
        self.m = torch.arange(S, device=self.device, dtype=torch.float64) - S // 2
        self.rebin = _rebin(g.n_fft, S).to(self.device) if g.n_fft != S else None
        self.env_offset = -window_log_gain(settings.fast.fft_size(sr), S)  # envelopes come on the offline scale
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(settings.fast.seed if seed is None else seed)
        self.noise = torch.zeros(0, device=self.device)
        self.noise_start = -(S // 2)
        self.phase = 0.0          # oscillator phase at the last frame's centre (radians)
        self.prev_f0 = None
        self.ola = torch.zeros(0, device=self.device)
        self.olw = torch.zeros(0, device=self.device)
        self.ola_start = -(S // 2)  # global index of ola[0]
        self.done = 0               # global index of the next sample to hand out

    def _noise(self, start: int, end: int) -> torch.Tensor:
        have = self.noise_start + self.noise.numel()
        if end > have:
            new = torch.randn(end - have, device=self.device, generator=self.gen)
            self.noise = torch.cat([self.noise, new])
        return self.noise[start - self.noise_start:end - self.noise_start]

    @torch.no_grad()
    def push(self, f0: torch.Tensor, log_env: torch.Tensor, ap: torch.Tensor, k0: int) -> torch.Tensor:
        """Add frames ``k0 .. k0 + T - 1``; the output samples that became complete
        (global indices ``self.done`` onward before the call)."""
        g, S, sr = self.g, self.g.synth_fft, self.sr
        T = f0.shape[0]
        if self.rebin is not None:
            log_env = log_env @ self.rebin
            ap = ap @ self.rebin
        log_env = log_env + self.env_offset
        f = f0.double().clamp_min(20.0)
        prev = f[:1] if self.prev_f0 is None else torch.tensor([self.prev_f0], dtype=torch.float64,
                                                                device=self.device)
        inc = math.pi * g.hop * (torch.cat([prev, f[:-1]]) + f) / sr
        if self.prev_f0 is None:
            inc[0] = 0.0
        phi = self.phase + torch.cumsum(inc, 0)  # phase at each frame centre
        self.phase = float(phi[-1] % (2 * math.pi))
        self.prev_f0 = float(f[-1])
        ph = (phi[:, None] + (2 * math.pi / sr) * f[:, None] * self.m[None, :]) % (2 * math.pi)
        ph = ph.float()
        K = torch.floor(0.5 * sr / f.float()).clamp_min(1)[:, None]
        sh = torch.sin(0.5 * ph)
        small = sh.abs() < 1e-4
        D = torch.where(small, 2 * K + 1, torch.sin((K + 0.5) * ph) / torch.where(small, torch.ones_like(sh), sh))
        exc = 0.5 * (D - 1.0)  # [T, S]: sum_k cos(k phi)
        starts = (torch.arange(T, device=self.device) + k0) * g.hop - S // 2
        first, end = k0 * g.hop - S // 2, (k0 + T - 1) * g.hop + S - S // 2
        nz_all = self._noise(first, end)
        idx = (starts - first)[:, None] + torch.arange(S, device=self.device)[None, :]
        nz = nz_all[idx]
        H = torch.fft.rfft(exc * self.window, S)
        N = torch.fft.rfft(nz * self.window, S)
        phw = H.real.square() + H.imag.square()
        f0c = f.float()[:, None]
        band = (self.bin_hz[None, :] > 0.5 * f0c) & (self.bin_hz[None, :] < 0.5 * sr - f0c)
        gh = torch.sqrt((phw * band).sum(1, keepdim=True) / band.sum(1, keepdim=True).clamp_min(1) + 1e-12)
        apc = ap.clamp(0, 1)
        mix = torch.sqrt(1 - apc) * (H / gh) + (self.s.fast.noise_gain * torch.sqrt(apc)) * (N / self.gn)
        y = torch.fft.irfft(mix * torch.exp(log_env), S) * self.window  # [T, S]
        # overlap-add onto the running buffers
        need = end - self.ola_start
        if need > self.ola.numel():
            grow = need - self.ola.numel()
            self.ola = torch.cat([self.ola, torch.zeros(grow, device=self.device)])
            self.olw = torch.cat([self.olw, torch.zeros(grow, device=self.device)])
        flat = (idx + (first - self.ola_start)).reshape(-1)
        self.ola.index_add_(0, flat, y.reshape(-1))
        self.olw.index_add_(0, flat, self.window.square().expand(T, S).reshape(-1))
        complete = (k0 + T) * g.hop - S // 2  # later frames only touch samples from here on
        if complete <= self.done:
            return torch.zeros(0, device=self.device)
        a, b = self.done - self.ola_start, complete - self.ola_start
        out = self.ola[a:b] / torch.where(self.olw[a:b] > 1e-11, self.olw[a:b], torch.ones_like(self.olw[a:b]))
        out = torch.where(self.olw[a:b] > 1e-11, out, torch.zeros_like(out))
        self.ola, self.olw = self.ola[b:], self.olw[b:]
        self.ola_start = complete
        self.done = complete
        # noise older than the next frame's grain is no longer needed
        keep = (k0 + T) * g.hop - S // 2
        if keep > self.noise_start:
            self.noise = self.noise[keep - self.noise_start:]
            self.noise_start = keep
        return out


def with_fast(settings: StreamSettings, **fast) -> StreamSettings:
    """``settings`` with some of its :class:`FastParams` replaced."""
    return replace(settings, fast=replace(settings.fast, **fast))
