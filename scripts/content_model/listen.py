#!/usr/bin/env python3
"""Where a conversion loses words: one sentence converted by each variant, Whisper's transcript
of each beside the sentence's text, the source's and the target's own reading, and their
spectrograms in one image; ``--zoom`` also prints each one's energy every 5 ms over a stretch
(how a filled stop closure was found: docs/content-preset.md, "Five more ways of rendering").

    python scripts/content_model/listen.py --pair slt:rms --utt 11 --variant preset= \
        --variant "blend5=nodes.voice_synthesis.config.blend=0.5" --zoom 0.50-0.60 --out listen.png

Needs the development set (``--data``), ``../shared/tools/vc_score.py``'s Whisper and matplotlib.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np
import soundfile as sf

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "plugins"))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "..", "shared", "tools"))

HOP_S = 0.005


def energy_db(x: np.ndarray, sr: int, start: float, end: float) -> np.ndarray:
    """Energy (dB, relative to the whole signal's mean power) of each 5 ms from ``start`` to ``end`` s."""
    x = x / np.sqrt(np.mean(x ** 2) + 1e-12)
    edges = np.arange(start, end, HOP_S)
    return np.array([10 * np.log10(np.mean(x[int(t * sr):int((t + HOP_S) * sr)] ** 2) + 1e-10) for t in edges])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", default="slt:rms", help="SOURCE:TARGET voices of the development set")
    ap.add_argument("--utt", type=int, default=11, help="the sentence converted (1-based)")
    ap.add_argument("--config", default="content", help="preset the variants override")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=OVERRIDE[;OVERRIDE...]")
    ap.add_argument("--ref-utts", default="1-8", help="the target's reference sentences")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "speech-dev"))
    ap.add_argument("--zoom", default="", metavar="START-END", help="print each one's 5 ms energy over this stretch (s)")
    ap.add_argument("--out", default="listen.png", help="the spectrograms' image")
    a = ap.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.signal import stft
    import vc_score as vs
    from vcgraph.audio import read_audio, write_audio
    from vcgraph.pipeline import Pipeline
    from vcgraph_voice.api import PRESETS, preset_path
    from vcgraph_voice.enroll import enroll_files

    src_voice, tgt_voice = a.pair.split(":")
    wav = lambda voice, i: os.path.join(a.data, f"{voice}_{i:02d}.wav")
    sentences = [line.strip() for line in open(os.path.join(a.data, "sentences.txt")) if line.strip()]
    presets = {"presets": [a.config]} if a.config in PRESETS else {}
    profile = enroll_files([wav(tgt_voice, i) for i in vs.span(a.ref_utts)], **presets)
    asr = vs.whisper_asr()
    tmp = tempfile.TemporaryDirectory(prefix="listen-")
    rows = [("source " + src_voice, wav(src_voice, a.utt))]
    for name, ov in [v.split("=", 1) for v in a.variant] or [["preset", ""]]:
        pipe = Pipeline.from_yaml(preset_path(a.config), [o for o in ov.split(";") if o])
        out = os.path.join(tmp.name, f"{name}.wav")
        write_audio(out, pipe.run({"audio": read_audio(wav(src_voice, a.utt)), "target": profile})["audio"])
        rows.append((name, out))
    rows.append((f"target {tgt_voice}'s own reading", wav(tgt_voice, a.utt)))

    print(f"text: {sentences[a.utt - 1]}")
    fig, axes = plt.subplots(len(rows), 1, figsize=(14, 2.8 * len(rows)), squeeze=False)
    for ax, (name, path) in zip(axes[:, 0], rows):
        x, sr = sf.read(path, always_2d=True)
        x = x.mean(1)
        print(f"{name:>28}: {asr(path)}")
        if a.zoom:
            start, end = (float(v) for v in a.zoom.split("-"))
            print(f"{'':>28}  dB {' '.join(f'{v:4.0f}' for v in energy_db(x, sr, start, end))}")
        f, t, Z = stft(x, sr, nperseg=int(0.025 * sr), noverlap=int(0.020 * sr))
        S = 20 * np.log10(np.abs(Z) + 1e-6)
        ax.pcolormesh(t, f, S - S.max(), vmin=-80, vmax=0, shading="auto", cmap="magma")
        ax.set_ylim(0, 8000)
        ax.set_title(name)
    fig.tight_layout()
    fig.savefig(a.out, dpi=60)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
