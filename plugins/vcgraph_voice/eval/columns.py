"""What each figure of ``vcgraph eval`` means: columns, units, better direction, judge, verdicts.

One table (:data:`ITEM_COLUMNS`) drives the terminal table, the HTML table and its legend,
so a column cannot appear without its explanation. Verdicts (``good`` / ``fair`` / ``poor``)
compare a figure with its reference points — the unconverted source and the target's own
speech — using the thresholds written in :data:`THRESHOLDS` (also printed in the legend).
"""
from __future__ import annotations

from dataclasses import dataclass

# the thresholds the verdicts use (stated in the report's legend)
THRESHOLDS = {
    "progress_good": 0.75,   # similarity: share of the way from the source to the target's own speech
    "progress_fair": 0.40,
    "moved_margin": 0.05,    # "nearer the target" needs sim_target - sim_source >= this (and identification)
    "wer_good": 0.05,        # WER increase over the source's WER (absolute)
    "wer_fair": 0.15,
    "wos_good": 0.10,        # WER of the output against the source's recognition
    "wos_fair": 0.25,
    "mos_good": 0.20,        # DNSMOS drop below the source's
    "mos_fair": 0.50,
    "f0_good": 1.0,          # |F0 median - target voice median| in semitones
    "f0_fair": 2.5,
}
T = THRESHOLDS


@dataclass(frozen=True)
class Column:
    key: str        # row key
    title: str      # short header
    fmt: str        # format spec
    unit: str
    better: str     # "higher", "lower", "= target", "" (information)
    judge: str      # the tool that measured it
    meaning: str


GE2E, CAMPP, PS, WHISPER = "GE2E (resemblyzer)", "CAM++ (3D-Speaker)", "pocketsphinx", "Whisper tiny.en"
# the speaker encoders and recognisers: metric name -> (row key prefix, the judge)
ENCODERS = {"similarity": ("", GE2E), "campp": ("campp_", CAMPP)}
RECOGNISERS = {"wer": ("", PS), "whisper": ("whisper_", WHISPER)}
ITEM_COLUMNS: list[Column] = [
    Column("id", "item", "s", "", "", "", "source -> target voice"),
    Column("sim_target", "sim_tgt", ".3f", "cosine", "higher", GE2E,
           "similarity of the output to the target voice's centroid (its judge references)"),
    Column("sim_target_before", "before", ".3f", "cosine", "(floor)", GE2E,
           "the unconverted source's similarity to the target: where the output started"),
    Column("sim_source", "sim_src", ".3f", "cosine", "lower", GE2E,
           "similarity of the output to the source voice (its centroid, or the source clip)"),
    Column("nearest", "nearest", "s", "voice", "= target", GE2E,
           "the voice whose centroid is nearest the output (! when it is not the target)"),
    Column("campp_sim_target", "cam_tgt", ".3f", "cosine", "higher", CAMPP, "as sim_tgt, by CAM++"),
    Column("campp_sim_target_before", "cam_bef", ".3f", "cosine", "(floor)", CAMPP, "as before, by CAM++"),
    Column("campp_sim_source", "cam_src", ".3f", "cosine", "lower", CAMPP, "as sim_src, by CAM++"),
    Column("campp_nearest", "cam_near", "s", "voice", "= target", CAMPP, "as nearest, by CAM++"),
    Column("wer_output", "wer_out", ".2f", "errors/word", "lower", PS,
           "word error rate of the output against the text"),
    Column("wer_source", "wer_src", ".2f", "errors/word", "(floor)", PS,
           "word error rate of the unconverted source against the text: what the recogniser itself misses"),
    Column("wer_output_vs_source", "wer_o~s", ".2f", "errors/word", "lower", PS,
           "the output's recognition against the source's recognition (needs no text)"),
    Column("whisper_wer_output", "wh_out", ".2f", "errors/word", "lower", WHISPER, "as wer_out, by Whisper"),
    Column("whisper_wer_source", "wh_src", ".2f", "errors/word", "(floor)", WHISPER, "as wer_src, by Whisper"),
    Column("whisper_wer_output_vs_source", "wh_o~s", ".2f", "errors/word", "lower", WHISPER,
           "as wer_o~s, by Whisper"),
    Column("output_f0_median", "f0_out", ".0f", "Hz", "= f0_tgt", "pyworld DIO+StoneMask",
           "median F0 of the output's voiced frames"),
    Column("target_f0_median", "f0_tgt", ".0f", "Hz", "(reference)", "pyworld DIO+StoneMask",
           "target F0: the median F0 of the target VOICE over all its judge references (not of one sentence)"),
    Column("source_f0_median", "f0_src", ".0f", "Hz", "(floor)", "pyworld DIO+StoneMask",
           "median F0 of the unconverted source"),
    Column("dnsmos_ovrl", "mos", ".2f", "MOS 1-5", "higher", "DNSMOS P.835 (speechmos)",
           "predicted overall quality of the output (naturalness, noise, distortion)"),
    Column("source_dnsmos_ovrl", "mos_src", ".2f", "MOS 1-5", "(reference)", "DNSMOS P.835 (speechmos)",
           "the same for the unconverted source: a drop is what conversion costs"),
    Column("mcd", "mcd", ".2f", "dB", "lower", "WORLD mel-cepstra + DTW",
           "mel-cepstral distortion to the target's recording of the same sentence"),
    Column("mcd_source", "mcd_src", ".2f", "dB", "(floor)", "WORLD mel-cepstra + DTW",
           "the same for the unconverted source"),
    Column("rtf", "rtf", ".3f", "s per s of audio", "lower", "wall clock",
           "conversion time / output duration (< 1: faster than real time)"),
]
COLUMNS = {c.key: c for c in ITEM_COLUMNS}


# -- verdicts --------------------------------------------------------------------------------------
def _band(value: float | None, good: float, fair: float, lower_is_better: bool = True) -> str | None:
    if value is None:
        return None
    if lower_is_better:
        return "good" if value <= good else "fair" if value <= fair else "poor"
    return "good" if value >= good else "fair" if value >= fair else "poor"


def progress(value: float | None, floor: float | None, ceiling: float | None) -> float | None:
    """How far ``value`` went from ``floor`` (0) toward ``ceiling`` (1); None without both."""
    if value is None or floor is None or ceiling is None or ceiling - floor <= 1e-6:
        return None
    return (value - floor) / (ceiling - floor)


def moved(sim_target: float | None, sim_source: float | None, ident: bool | None) -> str | None:
    """Where an encoder puts the output: ``target``, ``source`` or ``between`` the two."""
    if sim_target is None or sim_source is None:
        return None
    d = sim_target - sim_source
    if d >= T["moved_margin"] and ident is not False:
        return "target"
    if d <= -T["moved_margin"]:
        return "source"
    return "between"


def dnsmos_drop(out: float | None, src: float | None) -> float | None:
    return None if out is None or src is None else src - out


def cell_verdict(key: str, row: dict, ceilings: dict | None = None) -> tuple[str | None, str]:
    """(good|fair|poor|None, why) for one cell of an item row; ``ceilings``: the target's held-out figures."""
    ceilings = ceilings or {}
    g = row.get
    if key in ("sim_target", "campp_sim_target"):
        prefix = key[: -len("sim_target")]
        p = progress(g(key), g(f"{prefix}sim_target_before"), ceilings.get(key))
        if p is None:
            return None, ""
        return _band(p, T["progress_good"], T["progress_fair"], lower_is_better=False), \
            f"{p:.0%} of the way from the source to the target's own speech"
    if key in ("nearest", "campp_nearest"):
        ident = g("ident" if key == "nearest" else "campp_ident")
        return (None, "") if ident is None else ("good", "the target") if ident else ("poor", "not the target")
    if key in ("wer_output", "whisper_wer_output"):
        src = g(key.replace("output", "source"))
        if g(key) is None or src is None:
            return None, ""
        d = g(key) - src
        return _band(d, T["wer_good"], T["wer_fair"]), f"{d:+.2f} against the source"
    if key in ("wer_output_vs_source", "whisper_wer_output_vs_source"):
        return _band(g(key), T["wos_good"], T["wos_fair"]), ""
    if key == "dnsmos_ovrl":
        d = dnsmos_drop(g("dnsmos_ovrl"), g("source_dnsmos_ovrl"))
        if d is None:
            return None, ""
        return _band(d, T["mos_good"], T["mos_fair"]), (f"DNSMOS drop {d:.2f}" if d > T["mos_good"] else "")
    if key == "output_f0_median":
        off = g("f0_offset_st")
        return (None, "") if off is None else (_band(abs(off), T["f0_good"], T["f0_fair"]),
                                               f"{off:+.1f} semitones from the target voice")
    if key == "mcd":
        if g("mcd") is None or g("mcd_source") is None:
            return None, ""
        return ("good" if g("mcd") < g("mcd_source") - 0.5 else "fair" if g("mcd") < g("mcd_source") else "poor"), ""
    return None, ""


def legend_thresholds() -> list[str]:
    """The verdict rules, in words (for the report's legend)."""
    return [
        f"similarity (sim_tgt, cam_tgt): good when the output went at least {T['progress_good']:.0%} of the way "
        f"from the unconverted source ('before') to the target's own held-out speech (its ceiling), fair from "
        f"{T['progress_fair']:.0%}, else poor",
        "nearest: good when it is the target voice",
        f"WER (wer_out, wh_out): good when at most {T['wer_good']:.2f} above the source's WER, fair up to "
        f"{T['wer_fair']:.2f}; wer_o~s, wh_o~s: good up to {T['wos_good']:.2f}, fair up to {T['wos_fair']:.2f}",
        f"DNSMOS (mos): good when at most {T['mos_good']:.1f} below the source's, fair up to {T['mos_fair']:.1f}, "
        f"else poor and flagged as a DNSMOS drop",
        f"F0 (f0_out): good within {T['f0_good']:.0f} semitone of the target voice's median, fair within "
        f"{T['f0_fair']} semitones",
        "MCD: good when 0.5 dB below the source's distance to the parallel target, fair when below it",
        f"voice moved (per encoder): 'target' when the output is at least {T['moved_margin']} nearer the target "
        f"than the source and identified as the target, 'source' when {T['moved_margin']} nearer the source, "
        f"else 'between'; the encoders disagree when they put an item in different places",
    ]

