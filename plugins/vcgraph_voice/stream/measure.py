"""Measures of streamed audio: block-edge clicks, and distance to the offline conversion.

Used by ``scripts/bench_stream.py`` and the tests (which also check that a broken
crossfade fails :func:`edge_click_ratio`).
"""
from __future__ import annotations

import numpy as np


def convert_with_edges(stream, x) -> tuple[np.ndarray, np.ndarray]:
    """``stream.convert(x)`` and the output positions where synthesis chunks met (one per
    block that completed samples): where a block-edge click would be."""
    from ..dsp.fast_stream import StreamSynth
    edges, push = [], StreamSynth.push

    def recording(self, *a, **kw):
        out = push(self, *a, **kw)
        edges.append(self.done)
        return out

    StreamSynth.push = recording
    try:
        y = stream.convert(x)
    finally:
        StreamSynth.push = push
    return y, np.array(edges[:-1], dtype=np.int64)


def edge_energies(y: np.ndarray, edges: np.ndarray, sample_rate: int, hop: int, half: int = 2,
                  cutoff_hz: float = 2000.0) -> tuple[np.ndarray, np.ndarray]:
    """(energy at each chunk edge, energy at the reference positions) for
    :func:`edge_click_ratio`, to pool over many signals."""
    from scipy.signal import butter, sosfilt
    hp = sosfilt(butter(4, cutoff_hz, "highpass", fs=sample_rate, output="sos"), np.asarray(y, np.float64))
    e = np.convolve(hp ** 2, np.ones(2 * half), mode="same")
    edges = edges[(edges > 4 * hop) & (edges < len(y) - 4 * hop)]
    ref = np.concatenate([edges + k * hop for k in (-1, 1, 2)])
    active = e > np.percentile(e, 30)  # silence left out of both
    return e[edges][active[edges]], e[ref][active[ref]]


def edge_click_ratio(y: np.ndarray, edges: np.ndarray, sample_rate: int, hop: int, half: int = 2,
                     cutoff_hz: float = 2000.0) -> float:
    """Energy of the high-passed output in +-``half`` samples at the chunk ``edges``, over the
    same measure one hop before and one and two hops after each edge: the same place on the
    frame grid, inside a chunk (ratio of medians over positions not in silence). A click (a
    step or kink of the waveform) is broadband and spikes there; ~1 means the edges cannot be
    told from anywhere else."""
    ea, er = edge_energies(y, edges, sample_rate, hop, half, cutoff_hz)
    # medians: a click raises (nearly) every edge, a plosive that happens to sit on one does not
    return float(np.median(ea) / np.median(er)) if ea.size and er.size else float("nan")


def log_spectral_distance(a: np.ndarray, b: np.ndarray, n_fft: int = 512, hop: int = 80) -> float:
    """Log-spectral distance (dB) over frames within 40 dB of ``a``'s loudest, each frame's
    mean log level removed (level control is not spectrum)."""
    import torch

    def spec(x):
        X = torch.stft(torch.from_numpy(np.ascontiguousarray(x, np.float32)), n_fft, hop,
                       window=torch.hann_window(n_fft), return_complex=True).abs()
        return 20 * torch.log10(X + 1e-5), 10 * torch.log10((X ** 2).sum(0) + 1e-9)

    n = min(len(a), len(b))
    la, ea = spec(a[:n])
    lb, _ = spec(b[:n])
    act = ea > ea.max() - 40
    la, lb = la - la.mean(0, keepdim=True), lb - lb.mean(0, keepdim=True)
    return float(torch.sqrt(((la - lb) ** 2).mean(0))[act].mean())


def f0_cents_difference(a: np.ndarray, b: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """(median |F0 difference| in cents over frames voiced in both, voicing agreement), by the
    torch YIN tracker on a 5 ms grid."""
    import torch
    from ..dsp.f0 import track_f0
    hop = max(1, sample_rate // 200)
    n = min(len(a), len(b))

    def track(x):
        f, v = track_f0(torch.from_numpy(np.ascontiguousarray(x[:n], np.float32)), sample_rate, hop, 60.0, 500.0)
        return f.numpy(), v.numpy()

    fa, va = track(a)
    fb, vb = track(b)
    both = va & vb
    cents = np.abs(1200 * np.log2(fa[both] / fb[both])) if both.any() else np.array([np.nan])
    return float(np.median(cents)), float((va == vb).mean())
