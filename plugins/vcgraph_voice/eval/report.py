"""The HTML report of an evaluation: one self-contained folder that opens from disk.

``write_report(result, "report/")`` writes::

    report/index.html        summary table on top, a table of items, then one section per item
    report/audio/*.wav       copies of every source, target and output wav it plays
    report/plots/*.png       per item: spectrograms (top) and F0 tracks (bottom) of source,
                             target and output side by side; plus a similarity overview

Every link is relative, so the folder can be zipped, moved and opened with a double click;
no server, no scripts, no network. Plots use matplotlib's object API (Agg), never pyplot.
"""
from __future__ import annotations

import html
import os
import re
import shutil
from urllib.parse import quote

import numpy as np

from . import metrics as M
from .runner import ITEM_COLUMNS, EvalResult, _fmt, summary_lines

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em auto;max-width:1280px;color:#222;padding:0 1em}
h1{margin-bottom:.2em} h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right} th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
.bad{color:#b00020;font-weight:600} .note{color:#7a5200} .muted{color:#777;font-size:.9em}
.cols{display:grid;grid-template-columns:repeat(3,1fr);gap:1em} .cols div{min-width:0}
audio{width:100%} img{max-width:100%} code{background:#f5f5f5;padding:0 .2em}
"""


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


class _Files:
    """Copies files into the report once each and returns their relative paths."""

    def __init__(self, root: str, sub: str):
        self.root, self.sub = root, sub
        self.map: dict[str, str] = {}
        os.makedirs(os.path.join(root, sub), exist_ok=True)

    def add(self, path: str | None, name: str) -> str | None:
        if not path or not os.path.isfile(path):
            return None
        key = os.path.realpath(path)
        if key in self.map:
            return self.map[key]
        root = os.path.realpath(self.root)
        if key.startswith(root + os.sep):  # already inside the report (outputs written there)
            self.map[key] = os.path.relpath(key, root).replace(os.sep, "/")
            return self.map[key]
        stem, ext = os.path.splitext(_safe(name))
        ext = ext or os.path.splitext(path)[1] or ".wav"
        rel, k = f"{self.sub}/{stem}{ext}", 2
        while rel in self.map.values():
            rel, k = f"{self.sub}/{stem}-{k}{ext}", k + 1
        dest = os.path.join(self.root, rel)
        if os.path.realpath(dest) != key:
            shutil.copyfile(path, dest)
        self.map[key] = rel
        return rel


def _spectrogram_db(x: np.ndarray, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft)
    mag = np.abs(np.fft.rfft(frames, axis=1)).T
    db = 20 * np.log10(np.maximum(mag, 1e-6))
    return np.maximum(db, db.max() - 80.0)


def plot_item(panels: list[tuple[str, np.ndarray | None]], path: str, title: str = "") -> None:
    """Spectrograms (top) and F0 (bottom) of up to three (label, 16 kHz audio) panels."""
    M.require("matplotlib")
    from matplotlib.figure import Figure
    fig = Figure(figsize=(15, 5.6), dpi=80)
    axes = fig.subplots(2, len(panels), squeeze=False, gridspec_kw={"height_ratios": [3, 2]})
    tracks = []
    for col, (label, x) in enumerate(panels):
        top, bot = axes[0][col], axes[1][col]
        if x is None or len(x) == 0:
            top.set_title(f"{label}: (none)"); top.axis("off"); bot.axis("off"); tracks.append(None)
            continue
        dur = len(x) / M.RATE
        top.imshow(_spectrogram_db(x), origin="lower", aspect="auto", cmap="magma",
                   extent=(0, dur, 0, M.RATE / 2000))
        top.set_title(label); top.set_ylabel("kHz")
        t, f0 = M.f0_track(x, M.RATE)
        tracks.append((t, f0))
        f = np.where(f0 > 0, f0, np.nan)
        bot.plot(t, f, ".", ms=2, color="tab:blue")
        voiced = f0[f0 > 0]
        if len(voiced):
            med = float(np.median(voiced))
            bot.axhline(med, color="tab:red", lw=1, ls="--")
            bot.text(0.01, 0.9, f"median {med:.0f} Hz", transform=bot.transAxes, fontsize=9, color="tab:red")
        bot.set_xlim(0, dur); bot.set_xlabel("s"); bot.set_ylabel("F0 Hz")
    voiced_all = np.concatenate([tr[1][tr[1] > 0] for tr in tracks if tr is not None] or [np.zeros(0)])
    if len(voiced_all):
        lo, hi = np.percentile(voiced_all, [1, 99])
        for col, tr in enumerate(tracks):
            if tr is not None:
                axes[1][col].set_ylim(max(lo * 0.8, 30), hi * 1.2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)


def plot_similarity(rows: list[dict], path: str) -> bool:
    """Per item: similarity to the target before (source) and after (output) conversion."""
    rows = [r for r in rows if r.get("sim_target") is not None]
    if not rows:
        return False
    M.require("matplotlib")
    from matplotlib.figure import Figure
    fig = Figure(figsize=(max(6, 0.55 * len(rows) + 2), 3.4), dpi=80)
    ax = fig.subplots()
    idx = np.arange(len(rows))
    ax.bar(idx - 0.2, [r.get("sim_target_before") or 0 for r in rows], 0.4, label="source (before)", color="#bbb")
    ax.bar(idx + 0.2, [r["sim_target"] for r in rows], 0.4, label="output", color="tab:blue")
    ax.set_xticks(idx, [r["id"] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1); ax.set_ylabel("cosine to target"); ax.legend(loc="lower right", fontsize=8)
    ax.set_title("speaker similarity to the target voice")
    fig.tight_layout()
    fig.savefig(path)
    return True


def _table(header: list[str], rows: list[list[str]], raw: bool = False) -> str:
    esc = (lambda s: s) if raw else html.escape
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows]
    return "\n".join(out) + "</table>"


def _target_file(row: dict, voices: dict) -> tuple[str | None, str]:
    if row.get("parallel_target"):
        return row["parallel_target"], "target (same sentence)"
    judge = (voices.get(row["target"]) or {}).get("judge") or []
    return (judge[0], "target (a reference)") if judge else (None, "target")


def write_report(result: EvalResult, out_dir: str, title: str = "vcgraph eval") -> str:
    """Write the report folder; returns the path of ``index.html``."""
    M.require("matplotlib")
    os.makedirs(out_dir, exist_ok=True)
    audio = _Files(out_dir, "audio")
    os.makedirs(os.path.join(out_dir, "plots"), exist_ok=True)
    s = result.summary
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>",
             f"<style>{CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<p class=\"muted\">{len(result.rows)} items; metrics: {html.escape(', '.join(result.meta.get('metrics', [])))}; "
             f"run time {result.meta.get('wall_s', 0):.1f} s</p>", "<h2 id=\"summary\">Summary</h2>",
             _table(["measure", "value"], [[t, v] for t, v in summary_lines(s)])]
    for w in s.get("warnings", []):
        parts.append(f"<p class=\"note\">Note: {html.escape(w)}</p>")
    parts.append("<p class=\"muted\">Similarity: GE2E (resemblyzer) cosine to the centroid of the target's judge "
                 "references; <i>before</i> is the unconverted source's similarity. WER: pocketsphinx against the "
                 "text, and the output's recognition against the source's. F0: pyworld DIO+StoneMask. DNSMOS: "
                 "P.835 overall quality (1–5). MCD: DTW-aligned mel-cepstral distortion (dB) to the target's "
                 "recording of the same sentence.</p>")
    if plot_similarity(result.rows, os.path.join(out_dir, "plots", "similarity.png")):
        parts.append('<img src="plots/similarity.png" alt="similarity per item">')

    # the table of items, linking to each item's section
    cols = [c for c in ITEM_COLUMNS if c[1] == "id" or any(r.get(c[1]) is not None for r in result.rows)]
    body = []
    for r in result.rows:
        cells = []
        for _, key, spec in cols:
            v = html.escape(_fmt(r.get(key), spec))
            if key == "id":
                v = f'<a href="#item-{html.escape(_safe(r["id"]))}">{v}</a>'
            elif key == "nearest" and r.get("ident") is False:
                v = f'<span class="bad">{v}</span>'
            cells.append(v)
        body.append(cells)
    parts += ["<h2>Items</h2>", _table([c[0] for c in cols], body, raw=True)]

    for r in result.rows:
        anchor = _safe(r["id"])
        parts.append(f'<h2 id="item-{html.escape(anchor)}">{html.escape(r["id"])}</h2>')
        parts.append(f'<p class="muted">source <code>{html.escape(r["source"])}</code> &rarr; voice '
                     f'<b>{html.escape(r["target"])}</b></p>')
        if r.get("error"):
            parts.append(f'<p class="bad">{html.escape(r["error"])}</p>')
        tgt_path, tgt_label = _target_file(r, result.voices)
        out_path = r.get("output") if not r.get("error") and r.get("output") and os.path.isfile(r["output"]) else None
        files = [("source", audio.add(r["source"], f"source_{os.path.basename(r['source'])}"), r["source"]),
                 (tgt_label, audio.add(tgt_path, f"target_{os.path.basename(tgt_path)}") if tgt_path else None, tgt_path),
                 ("output", audio.add(out_path, f"output_{r['id']}.wav") if out_path else None, out_path)]
        metrics_rows = [[title_, _fmt(r.get(key), spec)] for title_, key, spec in ITEM_COLUMNS[1:]
                        if r.get(key) is not None]
        if metrics_rows:
            parts.append(_table(["measure", "value"], metrics_rows))
        texts = [["text", r.get("text")], ["source recognised", r.get("hyp_source")],
                 ["output recognised", r.get("hyp_output")]]
        texts = [t for t in texts if t[1] is not None]
        if texts:
            parts.append(_table(["", "words"], texts))
        try:
            panels = [(label, M.load_audio(p) if p else None) for label, _, p in files]
            png = f"plots/{anchor}.png"
            plot_item(panels, os.path.join(out_dir, png), r["id"])
            parts.append(f'<img src="{html.escape(png)}" alt="spectrograms and F0 of source, target and output">')
        except Exception as exc:  # noqa: BLE001 - a plot failure must not lose the report
            parts.append(f'<p class="bad">plot failed: {html.escape(str(exc))}</p>')
        parts.append('<div class="cols">')
        for label, rel, _ in files:
            url = html.escape(quote(rel)) if rel else ""
            player = (f'<audio controls preload="none" src="{url}"></audio>'
                      f'<br><a href="{url}">{html.escape(os.path.basename(rel))}</a>') if rel else "(none)"
            parts.append(f"<div><b>{html.escape(label)}</b><br>{player}</div>")
        parts.append("</div>")
    parts.append("</body></html>\n")
    index = os.path.join(out_dir, "index.html")
    with open(index, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return index
