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

from . import metrics as M
from .manifest import EvalItem, EvalSet, Voice

METRICS = ("similarity", "wer", "f0", "dnsmos", "mcd")


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
        self.metrics = tuple(m for m in METRICS if m in set(metrics))
        unknown = set(metrics) - set(METRICS)
        if unknown:
            raise ValueError(f"unknown metric(s) {sorted(unknown)}; known: {', '.join(METRICS)}")
        M.require("librosa")
        if "f0" in self.metrics or "mcd" in self.metrics:
            M.require("pyworld")
        self.encoder = M.SpeakerEncoder(device) if "similarity" in self.metrics else None
        self.transcriber = M.Transcriber() if "wer" in self.metrics else None
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

    def embed(self, path: str) -> np.ndarray:
        return self._cached("emb", path, self.encoder.embed)

    def transcribe(self, path: str) -> str:
        return self._cached("asr", path, self.transcriber.transcribe)

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
    run goes on. ``scorers`` may be passed to reuse loaded models across runs.
    """
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

    # 1. voice prints (centroids) of every voice used, and target F0 statistics
    voice_info: dict[str, dict] = {}
    centroids: dict[str, np.ndarray] = {}
    warnings_: list[str] = []
    for name in sorted(used):
        v = voices[name]
        info = {"refs": v.refs, "judge": v.judge_files, "profile": v.profile,
                "judged_on": "held-out references" if v.held_out else ("enrollment references" if v.refs else None)}
        if "similarity" in mset:
            if v.judge_files:
                centroids[name] = scorers.encoder.centroid([scorers.embed(p) for p in v.judge_files])
            elif v.profile is not None and (e := _profile_embedding(v.profile)) is not None:
                centroids[name] = M._unit(e).astype(np.float32)
                info["judged_on"] = "the profile's own embedding"
        if "f0" in mset and v.judge_files:
            info["f0"] = M.f0_stats(f0=np.concatenate([scorers.f0(p) for p in v.judge_files]))
        voice_info[name] = info
        if name in {it.target for it in items} and v.refs and not v.held_out:
            warnings_.append(f"voice {name!r} is judged on its enrollment references; give held-out "
                             f"'judge' references so copying a reference cannot score as conversion")
    # anonymous sources take part in identification as themselves
    candidates = dict(centroids)
    if "similarity" in mset:
        for it in items:
            if not it.source_voice:
                candidates.setdefault(f"source:{os.path.basename(it.source)}", scorers.embed(it.source))

    # 2. enroll every target once
    profiles: dict[str, object] = {}
    enroll_errors: dict[str, str] = {}
    targets = sorted({it.target for it in items})
    for k, name in enumerate(targets):
        report(100.0 * k / (n + len(targets)), f"enroll {name}")
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

    # 3. convert and score every item
    rows: list[dict] = []
    for k, it in enumerate(items):
        report(100.0 * (len(targets) + k) / (n + len(targets)), f"convert {it.id}")
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

    summary = summarize(rows)
    summary["warnings"] = warnings_
    if len(targets) > 1:
        summary["by_target"] = {t: summarize([r for r in rows if r["target"] == t]) for t in targets}
    meta = {"metrics": sorted(mset), "out_dir": out_dir, "wall_s": time.perf_counter() - t_start,
            "identification_set": sorted(candidates)}
    return EvalResult(rows, summary, voice_info, meta)


def _score_item(row: dict, it: EvalItem, sc: Scorers, mset: set, centroids: dict, candidates: dict,
                voice_info: dict) -> None:
    out, src = row["output"], it.source
    if "similarity" in mset:
        e_out, e_src = sc.embed(out), sc.embed(src)
        tc = centroids.get(it.target)
        sc_src = centroids.get(it.source_voice) if it.source_voice else e_src
        row["sim_target"] = M.speaker_similarity(e_out, tc) if tc is not None else None
        row["sim_source"] = M.speaker_similarity(e_out, sc_src) if sc_src is not None else None
        row["sim_target_before"] = M.speaker_similarity(e_src, tc) if tc is not None else None
        row["nearest"] = M.nearest_voice(e_out, candidates)
        row["ident"] = (row["nearest"] == it.target) if tc is not None else None
    if "wer" in mset:
        hyp_out, hyp_src = sc.transcribe(out), sc.transcribe(src)
        row["hyp_output"], row["hyp_source"] = hyp_out, hyp_src
        w_src = M.normalize_words(hyp_src)
        row["wer_output_vs_source"] = M.word_error_rate(w_src, M.normalize_words(hyp_out)) if w_src else None
        if it.text:
            ref = M.normalize_words(it.text)
            row["words"] = len(ref)
            row["edits_output"] = M.word_edits(ref, M.normalize_words(hyp_out))
            row["edits_source"] = M.word_edits(ref, w_src)
            row["wer_output"] = row["edits_output"] / max(len(ref), 1)
            row["wer_source"] = row["edits_source"] / max(len(ref), 1)
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
    if "mcd" in mset and it.parallel_target:
        row["mcd"] = sc.mcd(it.parallel_target, out)
        row["mcd_source"] = sc.mcd(it.parallel_target, src)


def summarize(rows: list[dict]) -> dict:
    """Means over items; WER is pooled over words (total edits / total words), as is usual."""
    ok = [r for r in rows if not r.get("error")]
    col = lambda key: [r.get(key) for r in ok]  # noqa: E731
    s: dict = {"items": len(rows), "failed": len(rows) - len(ok)}
    sims = [x for x in col("sim_target") if x is not None]
    s["sim_target"] = _mean(sims)
    s["sim_target_min"] = float(min(sims)) if sims else None
    s["sim_target_before"] = _mean(col("sim_target_before"))
    s["sim_source"] = _mean(col("sim_source"))
    idents = [x for x in col("ident") if x is not None]
    s["ident"] = float(np.mean(idents)) if idents else None
    words = sum(r.get("words", 0) for r in ok if r.get("wer_output") is not None)
    if words:
        s["wer_output"] = sum(r["edits_output"] for r in ok if r.get("wer_output") is not None) / words
        s["wer_source"] = sum(r["edits_source"] for r in ok if r.get("wer_output") is not None) / words
        s["wer_ratio"] = s["wer_output"] / s["wer_source"] if s["wer_source"] > 0 else (
            1.0 if s["wer_output"] == 0 else math.inf)
    else:
        s["wer_output"] = s["wer_source"] = s["wer_ratio"] = None
    s["wer_output_vs_source"] = _mean(col("wer_output_vs_source"))
    offs = [abs(x) for x in col("f0_offset_st") if x is not None]
    s["f0_offset_st_abs"] = _mean(offs)
    s["source_f0_offset_st_abs"] = _mean([abs(x) for x in col("source_f0_offset_st") if x is not None])
    s["dnsmos_ovrl"] = _mean(col("dnsmos_ovrl"))
    s["source_dnsmos_ovrl"] = _mean(col("source_dnsmos_ovrl"))
    s["mcd"] = _mean(col("mcd"))
    s["mcd_source"] = _mean(col("mcd_source"))
    conv = sum(r.get("convert_s", 0.0) for r in ok)
    dur = sum(r.get("output_s", 0.0) for r in ok)
    s["rtf"] = conv / dur if dur > 0 else None
    return s


# -- terminal tables ---------------------------------------------------------------------------------
# (column title, row key, format) for the per-item table; summary rows below
ITEM_COLUMNS = [
    ("item", "id", "s"), ("sim_tgt", "sim_target", ".3f"), ("before", "sim_target_before", ".3f"),
    ("sim_src", "sim_source", ".3f"), ("nearest", "nearest", "s"), ("wer_out", "wer_output", ".2f"),
    ("wer_src", "wer_source", ".2f"), ("wer_o~s", "wer_output_vs_source", ".2f"),
    ("f0_out", "output_f0_median", ".0f"), ("f0_tgt", "target_f0_median", ".0f"),
    ("f0_src", "source_f0_median", ".0f"), ("mos", "dnsmos_ovrl", ".2f"), ("mos_src", "source_dnsmos_ovrl", ".2f"),
    ("mcd", "mcd", ".2f"), ("mcd_src", "mcd_source", ".2f"), ("rtf", "rtf", ".3f"),
]
SUMMARY_ROWS = [
    ("items (failed)", lambda s: f"{s['items']} ({s['failed']})"),
    ("similarity to target (mean / min)", lambda s: _pair(s["sim_target"], s["sim_target_min"], ".3f")),
    ("  source's similarity to target (before)", lambda s: _fmt(s["sim_target_before"], ".3f")),
    ("similarity to source", lambda s: _fmt(s["sim_source"], ".3f")),
    ("identified as target", lambda s: _fmt(s["ident"], ".0%")),
    ("WER output / source (vs text)", lambda s: _pair(s["wer_output"], s["wer_source"], ".3f")),
    ("  WER ratio output/source", lambda s: _fmt(s["wer_ratio"], ".2f")),
    ("WER output vs source's recognition", lambda s: _fmt(s["wer_output_vs_source"], ".3f")),
    ("|F0 median - target| st: output / source", lambda s: _pair(s["f0_offset_st_abs"], s["source_f0_offset_st_abs"], ".2f")),
    ("DNSMOS OVRL output / source", lambda s: _pair(s["dnsmos_ovrl"], s["source_dnsmos_ovrl"], ".2f")),
    ("MCD dB to parallel target: output / source", lambda s: _pair(s["mcd"], s["mcd_source"], ".2f")),
    ("convert time / output audio time (RTF)", lambda s: _fmt(s["rtf"], ".3f")),
]


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


def _pair(a, b, spec: str) -> str:
    return f"{_fmt(a, spec)} / {_fmt(b, spec)}"


def summary_lines(summary: dict) -> list[tuple[str, str]]:
    return [(title, fn(summary)) for title, fn in SUMMARY_ROWS]


def format_table(result: EvalResult) -> str:
    rows = result.rows
    cols = [c for c in ITEM_COLUMNS if c[1] == "id" or any(r.get(c[1]) is not None for r in rows)]
    table = [[title for title, _, _ in cols]]
    for r in rows:
        cells = [_fmt(r.get(key), spec) for _, key, spec in cols]
        if r.get("nearest") is not None and "nearest" in [c[1] for c in cols]:
            i = [c[1] for c in cols].index("nearest")
            cells[i] = ("" if r.get("ident") else "!") + cells[i]
        table.append(cells)
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in rows:
        if r.get("error"):
            lines.append(f"  {r['id']}: {r['error']}")
    lines.append("")
    sl = summary_lines(result.summary)
    w = max(len(t) for t, _ in sl)
    lines.append("summary")
    lines.extend(f"  {t.ljust(w)}  {v}" for t, v in sl)
    for warning in result.summary.get("warnings", []):
        lines.append(f"  note: {warning}")
    lines.append("  (before = the unconverted source's similarity to the target; ! = nearest voice is not the target)")
    return "\n".join(lines)
