"""Label-constrained kNN selection of target frames and envelope blending (vectorised, torch on CPU)."""
from __future__ import annotations

import numpy as np
import torch


def label_levels(src_fine: np.ndarray, src_coarse: np.ndarray, tgt_fine: np.ndarray,
                 tgt_coarse: np.ndarray, k: int) -> np.ndarray:
    """Per source frame: 0 = match on the fine label, 1 = on the coarse label, 2 = on all frames.

    A level is used when the target has at least ``k`` frames carrying that label."""
    nf = np.bincount(tgt_fine, minlength=int(max(tgt_fine.max(), src_fine.max())) + 1)
    nc = np.bincount(tgt_coarse, minlength=int(max(tgt_coarse.max(), src_coarse.max())) + 1)
    lvl = np.full(len(src_fine), 2, np.int8)
    lvl[nc[src_coarse] >= k] = 1
    lvl[nf[src_fine] >= k] = 0
    return lvl


def knn_candidates(src_feat: np.ndarray, tgt_feat: np.ndarray, src_fine: np.ndarray,
                   src_coarse: np.ndarray, tgt_fine: np.ndarray, tgt_coarse: np.ndarray,
                   k: int, chunk: int = 2048, src_ctx: np.ndarray | None = None,
                   tgt_ctx: np.ndarray | None = None, ctx_penalty: float = 0.0,
                   label_penalty: float = 0.0, device: str = "cpu"):
    """Indices (n_src, k) of the ``k`` nearest target frames among those with the source frame's
    label (fine -> coarse -> any fallback), and their squared distances (n_src, k).

    ``label_penalty`` > 0 makes the label a soft constraint (that distance is added to
    frames with another label instead of excluding them); ``ctx_penalty`` > 0 adds a
    distance to frames whose context label (senone) differs. The distance matrix is computed
    on ``device`` (``"cuda"`` on a GPU)."""
    k = int(min(k, len(tgt_feat)))
    def dev(a: np.ndarray, dtype) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=dtype)).to(device)
    lvl = dev(label_levels(src_fine, src_coarse, tgt_fine, tgt_coarse, k), np.int64)
    S, T = dev(src_feat, np.float32), dev(tgt_feat, np.float32)
    sf_, sc_ = dev(src_fine, np.int64), dev(src_coarse, np.int64)
    tf_, tc_ = dev(tgt_fine, np.int64), dev(tgt_coarse, np.int64)
    t2 = (T * T).sum(1)
    use_ctx = ctx_penalty > 0 and src_ctx is not None and tgt_ctx is not None
    if use_ctx:
        sx, tx = dev(src_ctx, np.int64), dev(tgt_ctx, np.int64)
    idx_out, d_out = [], []
    for a in range(0, len(S), chunk):
        s = S[a:a + chunk]
        d = (s * s).sum(1, keepdim=True) - 2.0 * s @ T.T + t2[None, :]
        if use_ctx:
            d = d + ctx_penalty * (sx[a:a + chunk, None] != tx[None, :]).float()
        l = lvl[a:a + chunk, None]
        ok = torch.where(l == 0, sf_[a:a + chunk, None] == tf_[None, :],
                         torch.where(l == 1, sc_[a:a + chunk, None] == tc_[None, :],
                                     torch.ones_like(d, dtype=torch.bool)))
        if label_penalty > 0:
            d = d + label_penalty * (~ok).float()
        else:
            d = torch.where(ok, d, torch.full_like(d, float("inf")))
        dv, di = torch.topk(d, k, dim=1, largest=False)
        idx_out.append(di)
        d_out.append(dv.clamp_min(0))
    return torch.cat(idx_out).cpu().numpy(), torch.cat(d_out).cpu().numpy()


def viterbi_select(idx: np.ndarray, dist: np.ndarray, tgt_feat: np.ndarray, join_weight: float,
                   contiguous_bonus: float = 0.0) -> np.ndarray:
    """Pick one candidate per frame minimising target cost + join_weight * ||feat_i - feat_j||^2
    between consecutive choices (a unit-selection pass; vectorised over candidates)."""
    n, k = idx.shape
    F = torch.from_numpy(np.ascontiguousarray(tgt_feat, dtype=np.float32))
    I = torch.from_numpy(idx.astype(np.int64))
    cost = torch.from_numpy(dist.astype(np.float32)).clone()
    back = torch.zeros((n, k), dtype=torch.long)
    acc = cost[0]
    feats = F[I]  # (n, k, d)
    for t in range(1, n):
        j = torch.cdist(feats[t - 1], feats[t]) ** 2  # (k_prev, k)
        if contiguous_bonus:
            j = j - contiguous_bonus * ((I[t - 1][:, None] + 1) == I[t][None, :]).float()
        tot = acc[:, None] + join_weight * j
        best, arg = tot.min(0)
        back[t] = arg
        acc = best + cost[t]
    path = torch.empty(n, dtype=torch.long)
    path[-1] = int(acc.argmin())
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return idx[np.arange(n), path.numpy()]


def average_envelopes(tgt_logsp: np.ndarray, idx: np.ndarray, dist: np.ndarray | None = None,
                      temperature: float = 0.0) -> np.ndarray:
    """Mean (log domain) of the selected target envelopes per frame; softmax-weighted when
    ``temperature`` > 0."""
    T = torch.from_numpy(np.ascontiguousarray(tgt_logsp, dtype=np.float32))
    I = torch.from_numpy(idx.astype(np.int64))
    g = T[I]  # (n, k, F)
    if temperature > 0 and dist is not None:
        w = torch.softmax(-torch.from_numpy(dist.astype(np.float32)) / temperature, dim=1)
        return (g * w[..., None]).sum(1).numpy()
    return g.mean(1).numpy()


def map_meanvar(x: np.ndarray, mu_s: np.ndarray, sd_s: np.ndarray, mu_t: np.ndarray,
                sd_t: np.ndarray) -> np.ndarray:
    """Per-dimension mean/variance mapping of source frames onto target statistics."""
    return (x - mu_s) / np.maximum(sd_s, 1e-5) * sd_t + mu_t


def regrid(logsp: np.ndarray, sr_from: int, sr_to: int, n_bins_to: int):
    """Resample envelopes (frames x bins, 0..sr_from/2) onto the 0..sr_to/2 grid with
    ``n_bins_to`` bins. Returns (envelopes, valid mask over the new bins)."""
    n_from = logsp.shape[-1]
    if sr_from == sr_to and n_from == n_bins_to:
        return logsp, np.ones(n_bins_to, bool)
    f_to = np.arange(n_bins_to) * (sr_to / 2) / (n_bins_to - 1)
    pos = f_to / ((sr_from / 2) / (n_from - 1))
    valid = pos <= n_from - 1
    pos = np.clip(pos, 0, n_from - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_from - 1)
    w = (pos - lo).astype(np.float32)
    out = logsp[..., lo] * (1 - w) + logsp[..., hi] * w
    return out.astype(np.float32), valid
