"""Torch spectral-envelope analysis and harmonic-plus-noise synthesis (fast VC path).

Small `torch.nn.Module`s in the style of `torchaudio.transforms`: typed constructor
arguments, windows / lifters / index tables as buffers, `forward` fully vectorised over
frames (no per-frame Python loops), so the same code runs on CPU or CUDA.

Frame grid: centred STFT frames `t_i = i * hop_length`, `T = n_samples // hop_length + 1`,
identical to `f0.track_f0`'s grid.

* `EnvelopeAnalyzer`: log-amplitude spectral envelope by F0-adaptive cepstral smoothing
  (the lifter cut-off follows the pitch period, so harmonics never leak into the envelope)
  and a per-bin aperiodicity from the harmonic peak / inter-harmonic valley power ratio.
* `HarmonicNoiseSynth`: band-limited harmonic excitation (closed-form Dirichlet kernel of
  the running phase: every harmonic below Nyquist at unit amplitude, O(1) per sample) plus
  white noise, each STFT'd, mixed per bin by the aperiodicity, shaped by the envelope,
  inverse STFT to exactly `n_samples`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EnvelopeAnalyzer", "HarmonicNoiseSynth", "interp_frames_to_samples"]

_LOG_EPS = 1e-7


def interp_frames_to_samples(x: torch.Tensor, hop_length: int, n_samples: int) -> torch.Tensor:
    """Linear interpolation of a frame-rate track [T] (frame i at sample i*hop) to [n_samples]."""
    T = x.shape[0]
    pos = torch.arange(n_samples, device=x.device, dtype=torch.float32) / hop_length
    i0 = pos.floor().long().clamp(0, T - 1)
    i1 = (i0 + 1).clamp(max=T - 1)
    w = (pos - i0.to(pos.dtype)).clamp(0, 1)
    return x[i0] * (1 - w) + x[i1] * w


class EnvelopeAnalyzer(nn.Module):
    """STFT -> (log-amplitude envelope [T, F], aperiodicity [T, F], log|X| [T, F]).

    Args:
        sample_rate: audio rate in Hz.
        n_fft: FFT size (= window length, Hann).
        hop_length: frame hop in samples.
        lifter_ratio: cepstral cut-off as a fraction of the pitch period (voiced frames).
        unvoiced_f0: pitch assumed for the lifter of unvoiced frames (Hz).
        ap_floor: valley/band power ratio treated as fully periodic (window leakage, F0 drift).
        ap_power: exponent of the (floored, rescaled) ratio -> aperiodicity curve.
    """

    def __init__(self, sample_rate: int, n_fft: int = 1024, hop_length: int = 110,
                 lifter_ratio: float = 0.7, unvoiced_f0: float = 180.0,
                 ap_floor: float = 0.1, ap_power: float = 2.0, max_harmonics: int = 200) -> None:
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.lifter_ratio = float(lifter_ratio)
        self.unvoiced_f0 = float(unvoiced_f0)
        self.ap_floor = float(ap_floor)
        self.ap_power = float(ap_power)
        self.max_harmonics = int(max_harmonics)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        q = torch.arange(self.n_fft // 2 + 1, dtype=torch.float32)
        self.register_buffer("quefrency", q, persistent=False)  # in samples
        self.register_buffer("bin_hz", q * self.sample_rate / self.n_fft, persistent=False)

    def stft(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.stft(audio, self.n_fft, self.hop_length, window=self.window, center=True,
                          return_complex=True).transpose(0, 1)  # [T, F]

    def band_smooth(self, power: torch.Tensor, f0: torch.Tensor) -> torch.Tensor:
        """Average power over a band one F0 wide around every bin (fills harmonic valleys;
        CheapTrick's first smoothing), vectorised via a cumulative sum along frequency."""
        T, Fb = power.shape
        df = self.sample_rate / self.n_fft
        f = torch.where(f0 > 0, f0, torch.full_like(f0, self.unvoiced_f0))
        half = (0.5 * f / df)[:, None]  # half width in bins [T,1]
        # mirror a few bins below DC so the lowest bins average over a full band
        m = int(math.ceil(0.5 * 2 * self.sample_rate / 2 / 50.0 / df)) + 2
        m = min(m, Fb - 1)
        pw = torch.cat([power[:, 1 : m + 1].flip(1), power, power[:, -m - 1 : -1].flip(1)], 1)
        C = F.pad(torch.cumsum(pw.double(), 1), (1, 0)).float()  # C[i] = sum pw[:i]
        pos = torch.arange(Fb, device=power.device, dtype=torch.float32)[None, :] + m + 0.5

        def at(u):  # C at fractional position u (linear interpolation)
            u = u.clamp(0, C.shape[1] - 1.001)
            i0 = u.floor().long()
            w = u - i0.to(u.dtype)
            return C.gather(1, i0) * (1 - w) + C.gather(1, i0 + 1) * w

        return ((at(pos + half) - at(pos - half)) / (2 * half)).clamp_min(1e-12)

    def smooth(self, log_mag: torch.Tensor, f0: torch.Tensor) -> torch.Tensor:
        """F0-adaptive cepstral smoothing of a log spectrum [T, F] (f0 [T], 0 = unvoiced)."""
        n = self.n_fft
        c = torch.fft.irfft(log_mag, n)  # real cepstrum, symmetric
        f = torch.where(f0 > 0, f0, torch.full_like(f0, self.unvoiced_f0))
        cut = (self.lifter_ratio * self.sample_rate / f)[:, None]  # [T,1] in samples
        q = self.quefrency[None, :]
        # raised-cosine taper between 0.6*cut and cut
        lo = 0.6 * cut
        w = torch.where(q <= lo, torch.ones_like(q),
                        torch.where(q >= cut, torch.zeros_like(q),
                                    0.5 + 0.5 * torch.cos(math.pi * (q - lo) / (cut - lo))))
        c_half = c[:, : n // 2 + 1] * w
        c_half[:, 1 : n // 2] *= 2.0  # fold the symmetric half (cepstrum is even)
        return torch.fft.rfft(c_half, n).real

    def aperiodicity(self, power: torch.Tensor, f0: torch.Tensor, band: torch.Tensor) -> torch.Tensor:
        """Per-bin aperiodicity in [0, 1] from harmonic peak vs. inter-harmonic valley power."""
        T, Fb = power.shape
        df = self.sample_rate / self.n_fft
        nyq = self.sample_rate / 2
        voiced = f0 > 0
        fv = torch.where(voiced, f0, torch.full_like(f0, 100.0))
        K = min(self.max_harmonics, int(nyq / 50.0))
        k = torch.arange(1, K + 1, device=power.device, dtype=torch.float32)
        fk = fv[:, None] * k[None, :]  # [T, K]

        def at(freq):
            pos = (freq / df).clamp(0, Fb - 1.001)
            i0 = pos.floor().long()
            w = pos - i0.to(pos.dtype)
            return power.gather(1, i0) * (1 - w) + power.gather(1, i0 + 1) * w

        valley = 0.5 * (at(fk - 0.5 * fv[:, None]) + at(fk + 0.5 * fv[:, None]))
        power = band
        mean = at(fk)
        r = (valley / (mean + 1e-12)).clamp(0, 1)  # noise share of the band's power
        ap_k = ((r - self.ap_floor) / (1.0 - self.ap_floor)).clamp(0, 1) ** self.ap_power
        # smooth across neighbouring harmonics
        ap_k = F.avg_pool1d(ap_k[:, None], 3, 1, 1, count_include_pad=False)[:, 0]
        # interpolate harmonic-indexed values onto bins
        hpos = (self.bin_hz[None, :] / fv[:, None] - 1.0).clamp(0, K - 1.001)  # [T, F]
        i0 = hpos.floor().long()
        w = hpos - i0.to(hpos.dtype)
        ap = ap_k.gather(1, i0) * (1 - w) + ap_k.gather(1, i0 + 1) * w
        ap = torch.where(self.bin_hz[None, :] > fk[:, -1:], torch.ones_like(ap), ap)
        ap = torch.where(voiced[:, None], ap, torch.ones_like(ap))
        # light temporal smoothing (3 frames)
        ap = F.avg_pool1d(ap.t()[None], 3, 1, 1, count_include_pad=False)[0].t()
        return ap

    def forward(self, audio: torch.Tensor, f0: torch.Tensor):
        X = self.stft(audio)
        power = X.real.square() + X.imag.square()
        log_mag = 0.5 * torch.log(power + _LOG_EPS)
        T = min(X.shape[0], f0.shape[0])
        log_mag, power, f0 = log_mag[:T], power[:T], f0[:T]
        band = self.band_smooth(power, f0)
        env = self.smooth(0.5 * torch.log(band + _LOG_EPS), f0)
        ap = self.aperiodicity(power, f0, band)
        return env, ap, log_mag


class HarmonicNoiseSynth(nn.Module):
    """(f0 [T], log envelope [T, F], aperiodicity [T, F]) -> waveform [n_samples].

    Args:
        sample_rate, n_fft, hop_length: must match the analysis that produced the envelope.
        noise_gain: scale of the aperiodic component relative to the envelope.
    """

    def __init__(self, sample_rate: int, n_fft: int = 1024, hop_length: int = 110,
                 noise_gain: float = 1.0) -> None:
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.noise_gain = float(noise_gain)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        fb = torch.arange(self.n_fft // 2 + 1, dtype=torch.float32) * self.sample_rate / self.n_fft
        self.register_buffer("bin_hz", fb, persistent=False)

    def excitation(self, f0_frames: torch.Tensor, n_samples: int) -> torch.Tensor:
        """Band-limited pulse train (unit-amplitude harmonics up to Nyquist) following f0."""
        f0s = interp_frames_to_samples(f0_frames, self.hop_length, n_samples).clamp_min(20.0)
        inc = (f0s / self.sample_rate).double()
        cyc = torch.cumsum(inc, 0)
        phi = (2 * math.pi) * (cyc - torch.floor(cyc)).float()
        K = torch.floor(0.5 * self.sample_rate / f0s).clamp_min(1)
        s = torch.sin(0.5 * phi)
        num = torch.sin((K + 0.5) * phi)
        small = s.abs() < 1e-4
        D = torch.where(small, 2 * K + 1, num / torch.where(small, torch.ones_like(s), s))
        return 0.5 * (D - 1.0)  # sum_{k=1..K} cos(k phi)

    def forward(self, f0: torch.Tensor, log_env: torch.Tensor, ap: torch.Tensor,
                n_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        dev = log_env.device
        T = log_env.shape[0]
        stft = lambda x: torch.stft(x, self.n_fft, self.hop_length, window=self.window,
                                    center=True, return_complex=True)[:, :T].transpose(0, 1)
        # continuous f0 track for the oscillator (unvoiced frames are muted via ap = 1)
        h = stft(self.excitation(f0, n_samples))
        noise = torch.randn(n_samples, device=dev, generator=generator)
        nz = stft(noise)
        # normalise each excitation to unit geometric-mean magnitude per frame (what the
        # cepstral c0 of the analysis measures), below the highest harmonic for the comb
        # normalise each excitation to unit mean power per bin (what the band-smoothed
        # envelope measures): the comb over the bins its harmonics cover, the noise by its
        # expected value sum(w^2)
        ph = h.real.square() + h.imag.square()
        f0c = f0.clamp_min(20.0)[:, None]
        band = (self.bin_hz[None, :] > 0.5 * f0c) & (self.bin_hz[None, :] < 0.5 * self.sample_rate - f0c)
        gh = torch.sqrt((ph * band).sum(1, keepdim=True) / band.sum(1, keepdim=True).clamp_min(1) + 1e-12)
        gn = torch.sqrt(self.window.square().sum())
        apc = ap.clamp(0, 1)
        mix = torch.sqrt(1 - apc) * (h / gh) + (self.noise_gain * torch.sqrt(apc)) * (nz / gn)
        Y = mix * torch.exp(log_env)
        return torch.istft(Y.transpose(0, 1), self.n_fft, self.hop_length, window=self.window,
                           center=True, length=n_samples)
