"""The voice bank: a bare 256-d embedding turned into the ``fast`` method's profile part.

An embedding says who the target is but not how to synthesise them. The shipped bank
(``models/voice-bank.npz``, built by ``scripts/voice_bank/build.py``, card in
``models/VOICE_BANK.md``) holds a few hundred synthetic voices, each with its GE2E embedding
and the fast statistics ``vcgraph enroll`` would store for it. A query embedding weighs the
bank voices by a softmax of cosine similarity over its ``k`` nearest (``temperature``), and the
statistics are blended in the domain they act in: log-F0 mean and band means (log amplitude)
linearly, standard deviations geometrically (in log). What comes out is a fast profile part,
so the fast synthesis converts toward it exactly as toward an enrolled profile, and nothing
runs an encoder or a search at conversion time (one 256 x N matrix product).

The file is an ``.npz`` loaded with ``allow_pickle=False``; shapes, dtypes and values are
checked on load, and any problem is a :class:`VoiceInputError` that names the file.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import VoiceInputError
from .validation import EMBEDDING_SIZE, normalize_embedding

FORMAT = "vcgraph-voice-bank"
VERSION = 1
DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "voice-bank.npz")
MAX_BANK_BYTES = 64 * 1024 * 1024
#: the fast statistics a bank voice has: name -> shape after the voice axis ("B": bands)
STATS = {"mel_mean_v": ("B",), "mel_std_v": ("B",), "mel_mean_u": ("B",), "mel_std_u": ("B",),
         "lf0_mean": (1,), "lf0_std": (1,)}
LOG_DOMAIN = ("mel_std_v", "mel_std_u", "lf0_std")  # blended geometrically


def blend_stats(stats: dict[str, np.ndarray], idx: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """The weighted blend (weights ``w`` over bank rows ``idx``) of per-voice statistics."""
    out = {}
    for name in STATS:
        rows = stats[name][idx].astype(np.float64)
        if name in LOG_DOMAIN:
            out[name] = np.exp(np.tensordot(w, np.log(np.maximum(rows, 1e-6)), 1)).astype(np.float32)
        else:
            out[name] = np.tensordot(w, rows, 1).astype(np.float32)
    return out


def neighbour_weights(sims: np.ndarray, k: int, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """(rows, weights): the ``k`` most similar rows of the cosine similarities ``sims`` and
    their softmax weights at ``temperature``."""
    k = max(1, min(int(k), sims.shape[-1]))
    idx = np.argpartition(-sims, k - 1)[:k]
    idx = idx[np.argsort(-sims[idx])]
    z = (sims[idx] - sims[idx[0]]) / max(float(temperature), 1e-4)
    w = np.exp(z)
    return idx, w / w.sum()


def stat_error_parts(pred: dict[str, np.ndarray], true: dict[str, np.ndarray]) -> dict[str, float]:
    """Squared errors of blended statistics against a voice's own, in what the fast synthesis
    reads: log-F0 level and log range, the shape of the voiced / unvoiced band means (not
    their overall level: the output is loudness-normalised) and their log spreads."""
    def shape(v):
        return v - v.mean(-1, keepdims=True)
    sq = lambda d: float(np.mean(d * d))
    return {
        "lf0_mean": sq(pred["lf0_mean"] - true["lf0_mean"]),
        "lf0_std": sq(np.log(pred["lf0_std"]) - np.log(true["lf0_std"])),
        "mel_mean_v": sq(shape(pred["mel_mean_v"]) - shape(true["mel_mean_v"])),
        "mel_mean_u": sq(shape(pred["mel_mean_u"]) - shape(true["mel_mean_u"])),
        "mel_std_v": sq(np.log(pred["mel_std_v"]) - np.log(true["mel_std_v"])),
        "mel_std_u": sq(np.log(pred["mel_std_u"]) - np.log(true["mel_std_u"])),
    }


WEIGHTS = {"lf0_mean": 2.0, "mel_mean_v": 2.0}  # log-F0 level and the voiced envelope count twice


def stat_error(pred: dict[str, np.ndarray], true: dict[str, np.ndarray], scale: dict[str, float]) -> float:
    """:func:`stat_error_parts`, each divided by its spread over the bank (``scale``), weighted
    (:data:`WEIGHTS`) and averaged: 1.0 is as good as predicting every voice by the bank mean."""
    parts = stat_error_parts(pred, true)
    total = sum(WEIGHTS.get(n, 1.0) for n in parts)
    return sum(WEIGHTS.get(n, 1.0) * v / scale[n] for n, v in parts.items()) / total


def error_scale(stats: dict[str, np.ndarray]) -> dict[str, float]:
    """Each statistic's error when every voice is predicted by the bank mean (its spread)."""
    mean = {n: (np.exp(np.log(v).mean(0, keepdims=True)) if n in LOG_DOMAIN else v.mean(0, keepdims=True))
            for n, v in stats.items() if n in STATS}
    parts = stat_error_parts({n: np.broadcast_to(mean[n], stats[n].shape) for n in STATS}, stats)
    return {n: max(v, 1e-9) for n, v in parts.items()}


def held_out_error(emb: np.ndarray, stats: dict, family: np.ndarray, k: int, temperature: float,
                   scale: dict) -> float:
    """Mean :func:`stat_error` over the bank, each voice predicted from the voices of the other
    families only (leave one family out)."""
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sims_all = emb @ emb.T
    errs = []
    for i in range(len(emb)):
        keep = np.flatnonzero(family != family[i])
        idx, w = neighbour_weights(sims_all[i, keep], k, temperature)
        pred = blend_stats(stats, keep[idx], w)
        errs.append(stat_error(pred, {n: stats[n][i] for n in STATS}, scale))
    return float(np.mean(errs))


def tune(emb: np.ndarray, stats: dict, family: np.ndarray, ks=(1, 2, 4, 8, 16, 32, 64),
         temperatures=(0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.3),
         progress: Callable[[str], None] | None = None) -> tuple[dict, dict]:
    """The ``k`` and temperature with the lowest leave-one-family-out error, and the table."""
    scale = error_scale({n: stats[n] for n in STATS})
    table = {"grid": []}
    best = None
    for j, k in enumerate(ks):
        for t in temperatures:
            e = held_out_error(emb, stats, family, k, t, scale)
            table["grid"].append({"k": k, "temperature": t, "error": round(e, 5)})
            if best is None or e < best["error"]:
                best = {"k": k, "temperature": t, "error": e}
        if progress:
            progress(f"k={k} done ({j + 1}/{len(ks)}); best so far k={best['k']} T={best['temperature']} "
                     f"error {best['error']:.4f}")
    table["nearest1"] = held_out_error(emb, stats, family, 1, 1.0, scale)
    table["mean"] = 1.0  # the bank mean's error, by construction of the scale
    table["best"] = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in best.items()}
    return best, table


def write(path: str, emb: np.ndarray, stats: dict, family: np.ndarray, names, families, k: int,
          temperature: float, meta: dict, mel_fmax: float | None = None) -> None:
    """Write a bank file (float32 statistics, unit embeddings)."""
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    arrays = {"format": np.array(FORMAT), "version": np.array(VERSION),
              "embedding": emb, "family": np.asarray(family, np.int32),
              "names": np.array(list(names)), "families": np.array(list(families)),
              "k": np.array(int(k)), "temperature": np.array(float(temperature), np.float32),
              "mel_fmax": np.array(float(mel_fmax if mel_fmax is not None else
                                         np.asarray(stats.get("mel_fmax", [[7600.0]])).reshape(-1)[0]), np.float32),
              "meta": np.array(json.dumps(meta))}
    for n in STATS:
        v = np.asarray(stats[n], np.float32)
        arrays[f"stats/{n}"] = v.reshape(len(emb), *([-1] if STATS[n] == ("B",) else [1]))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)


@dataclass
class VoiceBank:
    """Bank voices' unit embeddings ``[N, 256]`` and fast statistics, with the blending settings."""

    embedding: np.ndarray
    stats: dict[str, np.ndarray]
    k: int
    temperature: float
    mel_fmax: float
    names: np.ndarray
    family: np.ndarray
    meta: dict

    def __len__(self) -> int:
        return len(self.embedding)

    def weights(self, embedding, k: int | None = None, temperature: float | None = None,
                exclude_family: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(bank rows, weights) for ``embedding`` (optionally without one family's voices)."""
        e = normalize_embedding(embedding).astype(np.float32)
        sims = self.embedding @ e
        rows = np.arange(len(self))
        if exclude_family is not None:
            rows = np.flatnonzero(self.family != exclude_family)
            sims = sims[rows]
        idx, w = neighbour_weights(sims, self.k if k is None else k,
                                   self.temperature if temperature is None else temperature)
        return rows[idx], w

    def fast_part(self, embedding, **kw) -> dict[str, np.ndarray]:
        """The fast method's profile part (``FastTarget`` arrays) for ``embedding``."""
        idx, w = self.weights(embedding, **kw)
        out = blend_stats(self.stats, idx, w)
        out["mel_fmax"] = np.array([self.mel_fmax], np.float32)
        return out

    def profile(self, embedding, **kw):
        """A :class:`~vcgraph_voice.profile.VoiceProfile` with the embedding and the fast part
        estimated from the bank (what a bare embedding converts toward)."""
        from .profile import VoiceProfile
        return VoiceProfile(normalize_embedding(embedding), {"fast": self.fast_part(embedding, **kw)})

    @classmethod
    def load(cls, path: str | os.PathLike = DEFAULT_PATH) -> "VoiceBank":
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise VoiceInputError(f"voice bank not found: {path} (build it with scripts/voice_bank/build.py)")
        if os.path.getsize(path) > MAX_BANK_BYTES:
            raise VoiceInputError(f"{path}: larger than {MAX_BANK_BYTES >> 20} MiB, not a voice bank")
        try:
            from .profile import _read_arrays
            arrays = _read_arrays(path)
        except VoiceInputError as exc:
            raise VoiceInputError(f"{path}: not a usable voice bank: {exc.message}") from None
        except Exception as exc:
            raise VoiceInputError(f"{path}: not a voice bank (damaged: {type(exc).__name__}: "
                                  f"{str(exc)[:200]})") from None
        try:
            return cls._from_arrays(arrays)
        except VoiceInputError as exc:
            raise VoiceInputError(f"{path}: not a usable voice bank: {exc.message}") from None

    @classmethod
    def _from_arrays(cls, a: dict) -> "VoiceBank":
        if "format" not in a or a["format"].dtype.kind != "U" or str(a["format"]) != FORMAT:
            raise VoiceInputError(f"no '{FORMAT}' marker")
        if int(a.get("version", np.array(-1))) != VERSION:
            raise VoiceInputError(f"version {a.get('version')} (this vcgraph reads {VERSION})")
        for name in ("embedding", "family", "k", "temperature", "mel_fmax", "names"):
            if name not in a:
                raise VoiceInputError(f"'{name}' is missing")
        emb = a["embedding"]
        if emb.ndim != 2 or emb.shape[1] != EMBEDDING_SIZE or emb.shape[0] < 1 or emb.dtype.kind != "f":
            raise VoiceInputError(f"'embedding' has shape {emb.shape} {emb.dtype}, expected (N, {EMBEDDING_SIZE}) float")
        n = emb.shape[0]
        stats, bands = {}, None
        for name, dims in STATS.items():
            v = a.get(f"stats/{name}")
            if v is None:
                raise VoiceInputError(f"'stats/{name}' is missing")
            if v.ndim != 2 or v.shape[0] != n or v.dtype.kind != "f":
                raise VoiceInputError(f"'stats/{name}' has shape {v.shape} {v.dtype}, expected ({n}, ...) float")
            if dims == ("B",):
                bands = v.shape[1] if bands is None else bands
                if v.shape[1] != bands:
                    raise VoiceInputError(f"'stats/{name}' has {v.shape[1]} bands, the others {bands}")
            elif v.shape[1] != dims[0]:
                raise VoiceInputError(f"'stats/{name}' has shape {v.shape}, expected ({n}, {dims[0]})")
            if not np.isfinite(v).all():
                raise VoiceInputError(f"'stats/{name}' has NaN/Inf values")
            if name in LOG_DOMAIN and (v <= 0).any():
                raise VoiceInputError(f"'stats/{name}' has values <= 0 (a standard deviation)")
            stats[name] = v.astype(np.float32)
        if not np.isfinite(emb).all():
            raise VoiceInputError("'embedding' has NaN/Inf values")
        norms = np.linalg.norm(emb, axis=1)
        if (np.abs(norms - 1) > 1e-3).any():
            raise VoiceInputError("'embedding' rows are not unit vectors")
        k, t = int(a["k"]), float(a["temperature"])
        if not (1 <= k <= n) or not (np.isfinite(t) and t > 0):
            raise VoiceInputError(f"blending settings k={k}, temperature={t} are not valid for {n} voices")
        fam = a["family"]
        if fam.shape != (n,) or fam.dtype.kind not in "iu":
            raise VoiceInputError(f"'family' has shape {fam.shape} {fam.dtype}, expected ({n},) int")
        try:
            meta = json.loads(str(a["meta"])) if "meta" in a else {}
        except ValueError:
            meta = {}
        return cls(emb.astype(np.float32), stats, k, t, float(a["mel_fmax"]), a["names"], fam, meta)
