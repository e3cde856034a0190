"""The echo filter, in numpy/scipy and in torch.

The wet signal ``w`` of a feedback delay of ``d`` samples is the comb filter
``w[n] = x[n - d] + feedback * w[n - d]``; the output is ``x + mix * w``.

Streaming state is the *tail*: the next ``d`` samples of ``w`` that earlier blocks already
determine (``tail[i] = x[n_end + 1 + i - d] + feedback * w[n_end + 1 + i - d]``). It is exactly
the ``zi``/``zf`` state of ``scipy.signal.lfilter`` for this filter (transposed direct form II),
so every implementation reads and writes the same state and a stream may switch between them.
"""
from __future__ import annotations

import numpy as np


def delay_samples(delay_ms: float, sample_rate: int) -> int:
    """The delay in whole samples (at least one)."""
    return max(1, int(round(delay_ms * sample_rate / 1000.0)))


def zero_tail(delay: int, samples: np.ndarray) -> np.ndarray:
    return np.zeros((delay,) + samples.shape[1:], dtype=np.float64)


def echo_numpy(x: np.ndarray, delay: int, feedback: float, mix: float,
               tail: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Feedback echo with ``scipy.signal.lfilter``; returns ``(output, new tail)``.

    The comb filter of order ``delay`` is run as ``delay`` interleaved first-order filters
    (one per phase ``n mod delay``), which is the same filter at O(len(x)) cost instead of
    O(len(x) * delay) for a direct order-``delay`` ``lfilter``.
    """
    from scipy.signal import lfilter
    x64 = np.asarray(x, dtype=np.float64)
    tail = zero_tail(delay, x64) if tail is None else np.asarray(tail, dtype=np.float64)
    n = len(x64)
    rows, rest = divmod(n, delay)
    wet = np.empty_like(x64)
    if rows:
        # phase r: u_k = x[k*delay + r], w_k = u_{k-1} + feedback * w_{k-1}
        u = x64[:rows * delay].reshape((rows, delay) + x64.shape[1:])
        w, zf = lfilter([0.0, 1.0], [1.0, -feedback], u, axis=0, zi=tail[np.newaxis])
        wet[:rows * delay] = w.reshape((rows * delay,) + x64.shape[1:])
        tail = zf[0]
    if rest:  # a partial row: its wet samples are already pending in the tail
        wet[rows * delay:] = tail[:rest]
        tail = np.concatenate([tail[rest:], x64[rows * delay:] + feedback * tail[:rest]], axis=0)
    return (x64 + mix * wet).astype(x.dtype, copy=False), tail


def echo_single_tap(x: np.ndarray, delay: int, mix: float,
                    tail: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One echo tap, no feedback (``w[n] = x[n - d]``); same tail convention."""
    x64 = np.asarray(x, dtype=np.float64)
    if tail is None:
        tail = zero_tail(delay, x64)
    n = len(x64)
    buf = np.concatenate([np.asarray(tail, dtype=np.float64), np.zeros_like(x64)], axis=0)
    buf[delay:delay + n] += x64  # x[n] reaches the output d samples later
    return (x64 + mix * buf[:n]).astype(x.dtype, copy=False), buf[n:n + delay].copy()


def echo_torch(x: np.ndarray, delay: int, feedback: float, mix: float,
               tail: np.ndarray | None = None, device: str = "cuda") -> tuple[np.ndarray, np.ndarray]:
    """The feedback echo in torch on ``device``: the recursion runs one delay-long chunk at a
    time (each chunk only depends on the previous one), so it is ``len(x) / delay`` vector
    operations instead of a per-sample loop."""
    import torch
    x64 = np.asarray(x, dtype=np.float64)
    if tail is None:
        tail = zero_tail(delay, x64)
    n = len(x64)
    xt = torch.as_tensor(x64, device=device)
    z = torch.zeros((n + delay,) + tuple(x64.shape[1:]), dtype=torch.float64, device=device)
    z[:delay] = torch.as_tensor(np.asarray(tail, dtype=np.float64), device=device)
    for start in range(0, n, delay):
        end = min(start + delay, n)
        z[start + delay:end + delay] += xt[start:end] + feedback * z[start:end]
    out = xt + mix * z[:n]
    return out.cpu().numpy().astype(x.dtype, copy=False), z[n:n + delay].cpu().numpy()
