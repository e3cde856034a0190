"""The HTML report of an evaluation: one self-contained folder that opens from disk.

``write_report(result, "report/")`` writes::

    report/index.html          what was run; the summary with floors, ceilings and verdicts; the
                               voices (clips enrolled, clips judged); a table of items with a
                               legend; then one compact section per item
    report/results.json        everything, machine-readable (linked from the page)
    report/audio/*.wav         copies of every source, target and output wav (the originals)
    report/audio/listen/*.wav  loudness-matched copies, which the players play
    report/plots/*.webp        per item: spectrograms and F0 of source, target and output
                               (JPEG where Pillow has no WebP); a similarity overview

Every link is relative, so the folder can be zipped, moved and opened with a double click;
no server, no scripts, no network. The page has a viewport and a layout that fits a phone
(tables become cards below 700 px); images load lazily. Plots use matplotlib's object API
(Agg), never pyplot.
"""
from __future__ import annotations

import datetime as _dt
import html
import os
import re
import shutil
from urllib.parse import quote

import numpy as np

from . import columns as C
from . import metrics as M
from .align import align_words
from .loudness import LISTEN_LEVEL_DBFS, normalise_for_listening
from .runner import SUMMARY_HEADER, EvalResult, _fmt, summary_table

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1em auto;max-width:1280px;color:#222;
 padding:0 .8em;line-height:1.4;font-size:16px;overflow-wrap:anywhere}
h1{margin:.2em 0;font-size:1.6em} h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em;font-size:1.3em}
h3{margin:1.2em 0 .3em;font-size:1.1em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.2em .5em;text-align:right;vertical-align:top} th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
table.cards td,table.cards th,table.compact td{white-space:nowrap;overflow-wrap:normal}
table.compact td:first-child,table.cards.text td{white-space:normal;overflow-wrap:anywhere} table.text td{text-align:left}
.wrap{max-width:100%;overflow-x:auto}
.good{background:#e3f4e1} .fair{background:#fff3cd} .poor{background:#f9dcdc}
.chip{display:inline-block;border-radius:.8em;padding:0 .6em;margin:.1em .2em .1em 0;font-size:.85em;border:1px solid #ccc}
.bad{color:#b00020;font-weight:600} .note{color:#7a5200} .muted{color:#666;font-size:.9em}
.alert{border-left:4px solid #b00020;background:#fdf0f0;padding:.4em .7em}
.ok{border-left:4px solid #2e7d32;background:#eef7ee;padding:.4em .7em}
.players{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,250px),1fr));gap:.6em;margin:.5em 0}
.players>div{min-width:0;border:1px solid #ddd;border-radius:6px;padding:.4em .5em}
audio{width:100%;min-width:0;height:2.4em} img{max-width:100%;height:auto;display:block}
code{background:#f5f5f5;padding:0 .2em} pre{white-space:pre-wrap;word-break:break-all;background:#f5f5f5;padding:.4em;margin:0}
dl.run{display:grid;grid-template-columns:max-content 1fr;gap:.1em .8em;margin:.4em 0} dl.run dt{font-weight:600}
dl.run dd{margin:0;min-width:0}
dl.legend{display:grid;grid-template-columns:max-content 1fr;gap:.15em .8em;font-size:.9em}
dl.legend dt{font-weight:600} dl.legend dd{margin:0;min-width:0} dl.legend .muted{font-size:.95em}
.w-sub{background:#f9dcdc;text-decoration:underline wavy #b00020} .w-del{color:#b00020;text-decoration:line-through}
.w-ins{background:#fff3cd;font-style:italic}
.words td,.words th{text-align:left} table.compact th{overflow-wrap:normal}
@media (max-width:700px){
 body{font-size:15px}
 table.compact{font-size:.78em} table.compact td,table.compact th{padding:.15em .3em}
 table.cards,table.cards tbody,table.cards td{display:block;width:100%}
 table.cards thead{display:none}
 table.cards tr{display:grid;grid-template-columns:1fr 1fr;border:1px solid #ccc;margin:.5em 0;border-radius:6px}
 table.cards td{border:none;border-bottom:1px solid #eee;display:flex;justify-content:space-between;gap:.5em;
  text-align:right;min-width:0;white-space:normal;overflow-wrap:anywhere}
 table.cards td:first-child{grid-column:1/-1}
 table.cards td::before{content:attr(data-label);font-weight:600;text-align:left}
 table.cards td:empty{display:none}
 table.cards.text tr{grid-template-columns:1fr}
 dl.run,dl.legend{grid-template-columns:1fr} dl.run dd,dl.legend dd{margin-bottom:.3em}
}
"""


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _e(x) -> str:
    return html.escape(str(x))


class _Files:
    """Copies files into the report once each and returns their relative paths."""

    def __init__(self, root: str, sub: str):
        self.root, self.sub = root, sub
        self.map: dict[str, str] = {}
        os.makedirs(os.path.join(root, sub), exist_ok=True)

    def _name(self, name: str, ext: str) -> str:
        stem, e = os.path.splitext(_safe(name))
        ext = e or ext
        rel, k = f"{self.sub}/{stem}{ext}", 2
        while rel in self.map.values():
            rel, k = f"{self.sub}/{stem}-{k}{ext}", k + 1
        return rel

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
        rel = self._name(name, os.path.splitext(path)[1] or ".wav")
        dest = os.path.join(self.root, rel)
        if os.path.realpath(dest) != key:
            shutil.copyfile(path, dest)
        self.map[key] = rel
        return rel


class _Listening:
    """Loudness-matched 16-bit copies of the played files (one per original), with their levels."""

    def __init__(self, root: str):
        self.files = _Files(root, "audio/listen")
        self.info: dict[str, dict] = {}

    def add(self, path: str | None, name: str) -> dict | None:
        if not path or not os.path.isfile(path):
            return None
        key = os.path.realpath(path)
        if key not in self.info:
            import soundfile as sf
            x, sr = sf.read(path, dtype="float32", always_2d=False)
            x = M.to_mono(x)
            y, level, gain = normalise_for_listening(x, sr)
            rel = self.files._name(name, ".wav")
            self.files.map[key] = rel
            sf.write(os.path.join(self.files.root, rel), y, sr, subtype="PCM_16")
            self.info[key] = {"rel": rel, "level": level, "gain": gain, "duration": len(x) / sr}
        return self.info[key]


# -- plots ---------------------------------------------------------------------------------------
def _image_ext() -> str:
    try:
        from PIL import features
        return ".webp" if features.check("webp") else ".jpg"
    except Exception:  # noqa: BLE001 - Pillow is matplotlib's dependency; be safe anyway
        return ".png"


def _save(fig, path: str) -> None:
    kwargs = {"pil_kwargs": {"quality": 72}} if path.endswith((".webp", ".jpg")) else {}
    fig.savefig(path, **kwargs)


def _spectrogram_db(x: np.ndarray, n_fft: int = 512, hop: int = 160) -> np.ndarray:
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft)
    mag = np.abs(np.fft.rfft(frames, axis=1)).T
    db = 20 * np.log10(np.maximum(mag, 1e-6))
    return np.maximum(db, db.max() - 80.0)


def plot_item(panels: list[tuple[str, np.ndarray | None]], path: str, title: str = "",
              target_f0: float | None = None) -> None:
    """Spectrograms (top) and F0 (bottom) of up to three (label, 16 kHz audio) panels.

    ``target_f0`` (the target voice's median, as in the table's ``f0_tgt``) is drawn as a red
    dashed line in every F0 panel; each clip's own median is a grey dotted line.
    """
    M.require("matplotlib")
    from matplotlib.figure import Figure
    fig = Figure(figsize=(9.6, 4.2), dpi=72)
    axes = fig.subplots(2, len(panels), squeeze=False, gridspec_kw={"height_ratios": [3, 2]})
    tracks = []
    for col, (label, x) in enumerate(panels):
        top, bot = axes[0][col], axes[1][col]
        if x is None or len(x) == 0:
            top.set_title(f"{label}: (none)", fontsize=9); top.axis("off"); bot.axis("off"); tracks.append(None)
            continue
        dur = len(x) / M.RATE
        top.imshow(_spectrogram_db(x), origin="lower", aspect="auto", cmap="magma", extent=(0, dur, 0, M.RATE / 2000))
        top.set_title(label, fontsize=9); top.set_ylabel("kHz", fontsize=8); top.tick_params(labelsize=7)
        t, f0 = M.f0_track(x, M.RATE)
        tracks.append((t, f0))
        bot.plot(t, np.where(f0 > 0, f0, np.nan), ".", ms=1.5, color="tab:blue")
        voiced = f0[f0 > 0]
        if len(voiced):
            bot.axhline(float(np.median(voiced)), color="0.4", lw=1, ls=":")
        if target_f0:
            bot.axhline(target_f0, color="tab:red", lw=1, ls="--")
        bot.set_xlim(0, dur); bot.set_xlabel("s", fontsize=8); bot.set_ylabel("F0 Hz", fontsize=8)
        bot.tick_params(labelsize=7)
    voiced_all = np.concatenate([tr[1][tr[1] > 0] for tr in tracks if tr is not None] or [np.zeros(0)])
    if len(voiced_all):
        lo, hi = np.percentile(voiced_all, [1, 99])
        lo, hi = min(lo, target_f0 or lo), max(hi, target_f0 or hi)
        for col, tr in enumerate(tracks):
            if tr is not None:
                axes[1][col].set_ylim(max(lo * 0.8, 30), hi * 1.2)
    if title:
        fig.suptitle(title + ("   (red dashed: target voice median F0; grey dotted: this clip's median)"
                              if target_f0 else "   (grey dotted: each clip's median F0)"), fontsize=9)
    fig.subplots_adjust(left=0.06, right=0.99, top=0.88, bottom=0.11, wspace=0.22, hspace=0.32)  # no extra draw
    _save(fig, path)


def plot_similarity(rows: list[dict], path: str) -> bool:
    """Per item and encoder: similarity to the target before (source) and after (output)."""
    rows = [r for r in rows if r.get("sim_target") is not None or r.get("campp_sim_target") is not None]
    if not rows:
        return False
    M.require("matplotlib")
    from matplotlib.figure import Figure
    prefixes = [(p, name) for p, name in (("", "GE2E"), ("campp_", "CAM++")) if any(r.get(f"{p}sim_target") is not None
                                                                                      for r in rows)]
    fig = Figure(figsize=(max(5, 0.5 * len(rows) * len(prefixes) + 2), 3.0), dpi=72)
    ax = fig.subplots()
    idx = np.arange(len(rows))
    w = 0.8 / (2 * len(prefixes))
    colours = {"": ("#bbb", "tab:blue"), "campp_": ("#ddd", "tab:orange")}
    for k, (p, name) in enumerate(prefixes):
        off = (2 * k) * w - 0.4 + w / 2
        ax.bar(idx + off, [r.get(f"{p}sim_target_before") or 0 for r in rows], w, color=colours[p][0],
               label=f"source ({name})")
        ax.bar(idx + off + w, [r.get(f"{p}sim_target") or 0 for r in rows], w, color=colours[p][1],
               label=f"output ({name})")
    ax.set_xticks(idx, [r["id"] for r in rows], rotation=30, ha="right", fontsize=7)
    ax.set_ylim(0, 1); ax.set_ylabel("cosine to target", fontsize=8); ax.legend(loc="lower right", fontsize=7, ncol=2)
    ax.set_title("speaker similarity to the target voice, before and after", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return True


# -- html pieces ----------------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[str]], cls: str = "cards", raw: bool = False,
           classes: list[list[str]] | None = None, titles: list[list[str]] | None = None) -> str:
    """A table; with ``cls="cards"`` each row becomes a card on a narrow screen (labels from the header)."""
    esc = (lambda s: s) if raw else html.escape
    out = [f'<div class="wrap"><table class="{cls}"><thead><tr>'
           + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    for i, r in enumerate(rows):
        cells = []
        for j, c in enumerate(r):
            k = classes[i][j] if classes else ""
            t = titles[i][j] if titles else ""
            attrs = f' data-label="{html.escape(header[j])}"'
            attrs += f' class="{k}"' if k else ""
            attrs += f' title="{html.escape(t)}"' if t else ""
            cells.append(f"<td{attrs}>{esc(c)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out) + "</tbody></table></div>"


def marked_words(ref: list[str], hyp: list[str]) -> str:
    """The hypothesis as HTML with its errors against ``ref`` marked (substituted, missed, inserted)."""
    out = []
    for op, r, h in align_words(ref, hyp):
        if op == "ok":
            out.append(_e(h))
        elif op == "sub":
            out.append(f'<span class="w-sub" title="expected: {_e(r)}">{_e(h)}</span>')
        elif op == "del":
            out.append(f'<span class="w-del" title="not heard">{_e(r)}</span>')
        else:
            out.append(f'<span class="w-ins" title="not in the reference">{_e(h)}</span>')
    return " ".join(out) or '<span class="muted">(nothing recognised)</span>'


def _words_block(r: dict) -> str:
    lines = []
    ref_text = r.get("text")
    if ref_text:
        lines.append(["text (reference)", _e(ref_text)])
    for metric, (prefix, judge) in C.RECOGNISERS.items():
        if r.get(f"{prefix}hyp_output") is None:
            continue
        hyp_out = M.normalize_words(r[f"{prefix}hyp_output"])
        hyp_src = M.normalize_words(r.get(f"{prefix}hyp_source"))
        if ref_text:
            ref = M.normalize_words(ref_text)
            lines.append([f"output, heard by {judge}", marked_words(ref, hyp_out)])
            lines.append([f"source, heard by {judge}", marked_words(ref, hyp_src)])
        else:
            lines.append([f"source, heard by {judge}", _e(" ".join(hyp_src)) or "(nothing)"])
            lines.append([f"output vs source, {judge}", marked_words(hyp_src, hyp_out)])
    if not lines:
        return ""
    return _table(["", "words"], lines, cls="words", raw=True) + (
        '<p class="muted">Marked: <span class="w-sub">wrong word</span> (hover: expected), '
        '<span class="w-del">missed word</span>, <span class="w-ins">extra word</span>'
        + ("" if ref_text else "; without a text, against what the source was heard to say") + ".</p>")


def _player(label: str, listen: dict | None, original: str | None) -> str:
    if not listen:
        return f"<div><b>{_e(label)}</b><br><span class=\"muted\">(none)</span></div>"
    level = f"{listen['level']:.1f} dBFS" if listen.get("level") is not None else "silent"
    orig = (f' · <a href="{_e(quote(original))}">original</a> ({level})') if original else f" ({level})"
    return (f"<div><b>{_e(label)}</b> <span class=\"muted\">{listen['duration']:.2f} s</span>"
            f'<audio controls preload="metadata" src="{_e(quote(listen["rel"]))}"></audio>'
            f'<span class="muted">level-matched{orig}</span></div>')


def _target_file(row: dict, voices: dict) -> tuple[str | None, str]:
    if row.get("parallel_target"):
        return row["parallel_target"], "target, same sentence"
    judge = (voices.get(row["target"]) or {}).get("judge") or []
    return (judge[0], "target, a judge clip") if judge else (None, "target")


def _chips(r: dict) -> str:
    chips = []
    for prefix, name in (("", "GE2E"), ("campp_", "CAM++")):
        m = r.get(f"{prefix}moved")
        if m:
            cls = {"target": "good", "between": "fair", "source": "poor"}[m]
            chips.append(f'<span class="chip {cls}">{name}: {"nearer the " + m if m != "between" else "between"}</span>')
    if r.get("moved") and r.get("campp_moved") and r["moved"] != r["campp_moved"]:
        chips.append('<span class="chip poor">encoders disagree</span>')
    for prefix, name in (("", "pocketsphinx"), ("whisper_", "Whisper")):
        v, why = C.cell_verdict(f"{prefix}wer_output", r)
        if v:
            chips.append(f'<span class="chip {v}">words ({name}): {_e(why)}</span>')
    if r.get("dnsmos_drop"):
        chips.append(f'<span class="chip poor">DNSMOS drop {r["dnsmos_drop"]:.2f}</span>')
    return " ".join(chips)


def _cells(r: dict, cols: list, voices: dict) -> tuple[list[str], list[str], list[str]]:
    ceilings = ((voices.get(r.get("target")) or {}).get("ceilings") or {}).get("held_out") or {}
    cells, classes, titles = [], [], []
    for c in cols:
        v = _e(_fmt(r.get(c.key), c.fmt))
        verdict, why = C.cell_verdict(c.key, r, ceilings)
        if c.key == "id":
            v = f'<a href="#item-{_e(_safe(r["id"]))}">{v}</a>'
        elif c.key in ("nearest", "campp_nearest") and verdict == "poor":
            v = "!" + v
        cells.append(v)
        classes.append(verdict or "")
        titles.append(why)
    return cells, classes, titles


def _versions() -> dict:
    import platform
    from importlib import metadata
    out = {"python": platform.python_version()}
    for pkg in ("vcgraph", "torch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _header(result: EvalResult, json_rel: str) -> list[str]:
    meta = result.meta
    run = meta.get("run") or {}
    versions = {**_versions(), **(run.get("versions") or {})}
    date = run.get("date") or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    items = [("converter", _e(run.get("converter") or "(not recorded)")),
             ("command", f"<pre>{_e(run['command'])}</pre>" if run.get("command") else "(not recorded)"),
             ("date", _e(date)),
             ("versions", _e(", ".join(f"{k} {v}" for k, v in versions.items()))),
             ("judges", _e("; ".join(f"{m}: {j}" for m, j in (meta.get("judges") or {}).items())) or "none"),
             ("items", _e(f"{len(result.rows)} ({result.summary.get('failed', 0)} failed); "
                          f"run time {meta.get('wall_s', 0):.1f} s")),
             ("results", f'<a href="{_e(json_rel)}">{_e(json_rel)}</a> (everything, machine-readable)')]
    for m, why in (meta.get("left_out") or {}).items():
        items.append(("left out", _e(why)))
    return ['<dl class="run">'] + [f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items] + ["</dl>"]


def _voices_section(result: EvalResult, audio: _Files, listen: _Listening) -> list[str]:
    parts = ["<h2 id=\"voices\">Voices: what was enrolled, what was judged</h2>"]
    rows = []
    for name, v in sorted(result.voices.items()):
        refs = ", ".join(os.path.basename(p) for p in v.get("refs") or []) or (
            f"profile {os.path.basename(v['profile'])}" if v.get("profile") else "-")
        judge = ", ".join(os.path.basename(p) for p in v.get("judge") or []) or "-"
        f0 = (v.get("f0") or {}).get("f0_median")
        rows.append([name, refs, judge, v.get("judged_on") or "-", _fmt(f0, ".0f")])
    parts.append(_table(["voice", "enrolled on", "judged on", "judge clips are", "target F0 (voice median, Hz)"],
                        rows, cls="cards text"))
    for name, v in sorted(result.voices.items()):
        ceil = v.get("ceilings") or {}
        held, self_ = ceil.get("held_out") or {}, ceil.get("self_conversion")
        if not held:
            continue
        bits = [f"{k.replace('campp_', 'CAM++ ').replace('_', ' ')} {_fmt(x, '.3f')}" for k, x in held.items()
                if k != "clips" and x is not None]
        parts.append(f"<h3>{_e(name)}: ceilings</h3><p>Its own {held.get('clips')} judge clips, each against the "
                     f"centroid of the others: {_e('; '.join(bits))}.</p>")
        if self_:
            if self_.get("error"):
                parts.append(f'<p class="bad">target → target conversion failed: {_e(self_["error"])}</p>')
            else:
                bits = [f"{k.replace('campp_', 'CAM++ ').replace('_', ' ')} {_fmt(x, '.3f')}" for k, x in self_.items()
                        if k not in ("source", "output", "error") and x is not None]
                parts.append(f"<p>{_e(os.path.basename(self_['source']))} converted into its own voice: "
                             f"{_e('; '.join(bits))}.</p>")
                parts.append('<div class="players">' + "".join(
                    _player(label, listen.add(p, f"{name}-{tag}.wav"), audio.add(p, f"{name}-{tag}.wav"))
                    for label, p, tag in (("target clip", self_["source"], "clip"),
                                          ("target → target", self_["output"], "self"))) + "</div>")
    return parts


def _legend(cols: list) -> list[str]:
    out = ['<details open id="legend"><summary><b>Legend</b>: what each column means</summary><dl class="legend">']
    for c in cols:
        if c.key == "id":
            continue
        better = (f"a reference point: the {c.better.strip('()')}" if c.better.startswith("(") else
                  f"better: {c.better}" if c.better else "")
        facts = " · ".join(x for x in (c.unit, better, c.judge) if x)
        out.append(f"<dt>{_e(c.title)}</dt><dd>{_e(c.meaning)} <span class=\"muted\">({_e(facts)})</span></dd>")
    out.append("</dl><p>Colours: <span class=\"chip good\">good</span> <span class=\"chip fair\">fair</span> "
               "<span class=\"chip poor\">poor</span>, by these rules:</p><ul>")
    out += [f"<li>{_e(t)}</li>" for t in C.legend_thresholds()]
    out.append("</ul></details>")
    return out


def write_report(result: EvalResult, out_dir: str, title: str = "vcgraph eval", plots: bool = True) -> str:
    """Write the report folder; returns the path of ``index.html``. ``plots=False``: no images (quicker)."""
    M.require("matplotlib")
    os.makedirs(out_dir, exist_ok=True)
    audio, listen = _Files(out_dir, "audio"), _Listening(out_dir)
    os.makedirs(os.path.join(out_dir, "plots"), exist_ok=True)
    ext = _image_ext()
    json_rel = "results.json"
    with open(os.path.join(out_dir, json_rel), "w", encoding="utf-8") as fh:
        fh.write(result.to_json() + "\n")
    s = result.summary
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{_e(title)}</title><style>{CSS}</style></head><body>", f"<h1>{_e(title)}</h1>"]
    parts += _header(result, json_rel)

    # summary: verdict sentences, then the figures with their floors and ceilings
    parts.append('<h2 id="summary">Summary</h2>')
    enc = s.get("encoders")
    if enc:
        parts.append(f'<p class="{"alert" if enc["disagree"] else "ok"}">{_e(enc["text"][0].upper() + enc["text"][1:])}'
                     + (f" Items: {_e(', '.join(enc['disagree']))}." if enc["disagree"] else "") + "</p>")
    if s.get("dnsmos_drops"):
        parts.append(f'<p class="alert">DNSMOS drop of more than {C.THRESHOLDS["mos_fair"]} below the source '
                     f'in {len(s["dnsmos_drops"])} item(s): {_e(", ".join(s["dnsmos_drops"]))}.</p>')
    for w in s.get("warnings", []):
        parts.append(f'<p class="note">Note: {_e(w)}</p>')
    header = ["measure", "output", "source (floor)", "target itself", "target → target", "better", "verdict"]
    assert len(header) == len(SUMMARY_HEADER)
    srows = summary_table(s)
    verdicts = [r[6].split(":")[0] if r[6] else "" for r in srows]
    cells = [[_e(x) for x in r[:6]] + [_e(r[6].split(": ", 1)[1]) if ": " in r[6] else _e(r[6])] for r in srows]
    parts.append(_table(header, cells, cls="compact", raw=True,
                        classes=[[v if j in (1, 6) else "" for j in range(7)] for v in verdicts]))
    parts.append("<p class=\"muted\"><i>source</i>: the unconverted source, where the output starts. "
                 "<i>target itself</i>: the target's held-out judge clips, each scored against the centroid "
                 "of the others (the best a real recording of the target does). <i>target → target</i>: one of "
                 "those clips converted into its own voice by the same converter (what analysis and "
                 "resynthesis cost when there is no voice to change; its WER is against the recognition of the "
                 "unconverted clip).</p>")
    sim_img = f"plots/similarity{ext}"
    if plots and plot_similarity(result.rows, os.path.join(out_dir, sim_img)):
        parts.append(f'<img src="{sim_img}" alt="similarity per item" loading="lazy">')

    parts += _voices_section(result, audio, listen)

    # the table of items (coloured), and its legend
    cols = [c for c in C.ITEM_COLUMNS if c.key == "id" or any(r.get(c.key) is not None for r in result.rows)]
    body, classes, titles = [], [], []
    for r in result.rows:
        cells, k, t = _cells(r, cols, result.voices)
        body.append(cells); classes.append(k); titles.append(t)
    parts += ['<h2 id="items">Items</h2>', _table([c.title for c in cols], body, raw=True, classes=classes,
                                                   titles=titles)]
    parts += _legend(cols)

    for r in result.rows:
        anchor = _safe(r["id"])
        parts.append(f'<h2 id="item-{_e(anchor)}">{_e(r["id"])}</h2>')
        parts.append(f'<p class="muted">source <code>{_e(r["source"])}</code> &rarr; voice <b>{_e(r["target"])}</b></p>')
        if r.get("error"):
            parts.append(f'<p class="bad">{_e(r["error"])}</p>')
        else:
            parts.append(f"<p>{_chips(r)}</p>")
        tgt_path, tgt_label = _target_file(r, result.voices)
        out_path = r.get("output") if not r.get("error") and r.get("output") and os.path.isfile(r["output"]) else None
        files = [("source", r["source"], f"source_{os.path.basename(r['source'])}"),
                 (tgt_label, tgt_path, f"target_{os.path.basename(tgt_path)}" if tgt_path else ""),
                 ("output", out_path, f"output_{r['id']}.wav")]
        parts.append('<div class="players">' + "".join(
            _player(label, listen.add(p, name), audio.add(p, name)) for label, p, name in files) + "</div>")
        parts.append(_words_block(r))
        cells, k, t = _cells(r, cols, result.voices)
        parts.append(_table([c.title for c in cols[1:]], [cells[1:]], raw=True, classes=[k[1:]], titles=[t[1:]]))
        if not plots:
            continue
        try:
            target_f0 = ((result.voices.get(r["target"]) or {}).get("f0") or {}).get("f0_median")
            panels = [(label, M.load_audio(p) if p else None) for label, p, _ in files]
            img = f"plots/{anchor}{ext}"
            plot_item(panels, os.path.join(out_dir, img), r["id"], target_f0)
            parts.append(f'<img src="{_e(img)}" alt="spectrograms and F0 of source, target and output" '
                         f'loading="lazy" width="691" height="302">')
        except Exception as exc:  # noqa: BLE001 - a plot failure must not lose the report
            parts.append(f'<p class="bad">plot failed: {_e(exc)}</p>')
    parts.append(f'<p class="muted">Players play copies brought to {LISTEN_LEVEL_DBFS:.0f} dBFS speech level '
                 "(peaks kept below -1 dBFS) so that loudness does not bias listening; the original files and "
                 "their levels are linked under each player.</p>")
    parts.append("</body></html>\n")
    index = os.path.join(out_dir, "index.html")
    with open(index, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return index
