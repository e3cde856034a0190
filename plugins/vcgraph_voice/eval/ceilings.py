"""Reference points beside each figure: what the target's own speech scores (the ceilings).

The floor of every figure is the unconverted source, scored in each item row (``before``,
``wer_src``, ``mos_src``, ...). The ceilings come from the target voice itself:

- ``held_out``: each of the target's judge references against the centroid of the *other*
  judge references (leave one out, so no clip is compared with itself): the similarity and
  identification a real recording of the target gets, and its DNSMOS;
- ``self_conversion``: one judge reference converted into its own voice by the converter
  under test (one extra conversion per target): what the method's analysis and resynthesis
  cost even when there is no voice to change — similarity, identification, DNSMOS, words
  (against the recognition of the unconverted clip) and mel-cepstral distortion to it.
"""
from __future__ import annotations

import os

import numpy as np

from . import metrics as M
from .columns import ENCODERS, RECOGNISERS


def _loo_centroid(sc, files: list[str], leave: str, metric: str) -> np.ndarray:
    return sc.centroid([p for p in files if p != leave], metric)


def held_out(name: str, files: list[str], sc, mset: set, candidates: dict) -> dict:
    """Leave-one-out similarity and identification of the target's judge references, and their DNSMOS."""
    out: dict = {"clips": len(files)}
    if len(files) >= 2:
        for metric, (prefix, _) in ENCODERS.items():
            if metric not in mset:
                continue
            sims, idents = [], []
            for f in files:
                c = _loo_centroid(sc, files, f, metric)
                e = sc.embed(f, metric)
                sims.append(M.speaker_similarity(e, c))
                idents.append(M.nearest_voice(e, {**candidates[metric], name: c}) == name)
            out[f"{prefix}sim_target"] = float(np.mean(sims))
            out[f"{prefix}ident"] = float(np.mean(idents))
    if "dnsmos" in mset:
        out["dnsmos_ovrl"] = float(np.mean([sc.dnsmos(f)["ovrl"] for f in files]))
    return out


def self_conversion(name: str, files: list[str], sc, mset: set, candidates: dict, convert, out_path: str,
                    target_f0: float | None) -> dict:
    """Convert ``files[0]`` into its own voice with ``convert(src, out)`` and score it like an item."""
    clip = files[0]
    res: dict = {"source": clip, "output": out_path, "error": None}
    sc.forget(out_path)
    try:
        convert(clip, out_path)
        y = sc.audio(out_path)
        if len(y) == 0 or not np.isfinite(y).all():
            raise ValueError("the output is empty or not finite")
    except Exception as exc:  # noqa: BLE001 - a reference point must not stop the run
        res["error"] = f"{type(exc).__name__}: {exc}"
        return res
    for metric, (prefix, _) in ENCODERS.items():
        if metric in mset and len(files) >= 2:
            c = _loo_centroid(sc, files, clip, metric)
            e = sc.embed(out_path, metric)
            res[f"{prefix}sim_target"] = M.speaker_similarity(e, c)
            res[f"{prefix}ident"] = float(M.nearest_voice(e, {**candidates[metric], name: c}) == name)
    for metric, (prefix, _) in RECOGNISERS.items():
        if metric in mset:
            ref = M.normalize_words(sc.transcribe(clip, metric))
            hyp = M.normalize_words(sc.transcribe(out_path, metric))
            res[f"{prefix}wer_output_vs_source"] = M.word_error_rate(ref, hyp) if ref else None
    if "dnsmos" in mset:
        res["dnsmos_ovrl"] = sc.dnsmos(out_path)["ovrl"]
        res["source_dnsmos_ovrl"] = sc.dnsmos(clip)["ovrl"]
    if "f0" in mset:
        res["f0_offset_st"] = M.semitones(M.f0_stats(f0=sc.f0(out_path))["f0_median"], target_f0)
    if "mcd" in mset:
        res["mcd"] = sc.mcd(clip, out_path)
    return res


def voice_ceilings(name: str, voice, sc, mset: set, candidates: dict, convert=None, out_dir: str | None = None,
                   target_f0: float | None = None) -> dict:
    """``{"held_out": {...}, "self_conversion": {...} or None}`` for one target voice."""
    files = list(voice.judge_files)
    if not files:
        return {}
    result = {"held_out": held_out(name, files, sc, mset, candidates), "self_conversion": None}
    if convert is not None and out_dir is not None:
        out = os.path.join(out_dir, f"ceiling-{name}-self.wav")
        result["self_conversion"] = self_conversion(name, files, sc, mset, candidates, convert, out, target_f0)
    return result
