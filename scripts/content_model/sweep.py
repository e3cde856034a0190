#!/usr/bin/env python3
"""Score variants of a preset side by side on the development set, in one process.

The same judges, pairs and sentence split as ``../shared/tools/vc_score.py`` (imported from
there): GE2E and CAM++ similarity and identification, pocketsphinx and Whisper WER. Each
variant is a list of graph overrides; profiles are enrolled once per target.

    python scripts/content_model/sweep.py --config content \
        --variant base= --variant k8=nodes.voice_synthesis.config.k=8
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
TOOLS = os.path.join(ROOT, "..", "shared", "tools")
sys.path.insert(0, os.path.join(ROOT, "plugins"))
sys.path.insert(0, ROOT)
sys.path.insert(0, TOOLS)
sys.path.insert(0, os.path.join(HERE, ".."))  # scripts/: dev_judges


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="content")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=OVERRIDE[;OVERRIDE...]")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "speech-dev"))
    ap.add_argument("--pairs", default="rms:slt,slt:rms,awb:kal16,kal16:awb,slt:awb,kal16:rms")
    ap.add_argument("--test-utts", default="9-12")
    ap.add_argument("--ref-utts", default="1-8", help="reference sentences enrolled per target (vc_score's "
                    "default 1-8; the judges' centroids use 17-24, so a range that overlaps them flatters similarity)")
    ap.add_argument("--no-whisper", action="store_true")
    a = ap.parse_args()
    import vc_score as vs
    from vcgraph.audio import read_audio, write_audio
    from vcgraph.pipeline import Pipeline
    from vcgraph_voice.api import preset_path, PRESETS
    from vcgraph_voice.enroll import enroll_files

    from dev_judges import dev_judges  # vc_score's judges of the dev set, set up once
    j = dev_judges(a.data, whisper=not a.no_whisper)
    sents, voices, wav, emb, emb2, asr, asr2 = j.sents, j.voices, j.wav, j.emb, j.emb2, j.asr, j.asr2
    cent, cent2 = j.cent, j.cent2
    presets = [a.config] if a.config in PRESETS else None
    profiles = {}
    tmp_dir = tempfile.TemporaryDirectory(prefix="sweep-")  # removed when the run ends (~40 MB)
    tmp = tmp_dir.name
    src_cache = {}
    variants = [v.split("=", 1) for v in a.variant] or [["base", ""]]
    for name, ov in variants:
        overrides = [o for o in ov.split(";") if o]
        pipe = Pipeline.from_yaml(preset_path(a.config), overrides)
        agg = {k: [] for k in ("sim", "ssim", "id", "sim2", "ssim2", "id2")}
        e_c = e_s = e2_c = e2_s = n = 0
        secs = dur = 0.0
        for pair in a.pairs.split(","):
            s, t = pair.split(":")
            if t not in profiles:
                profiles[t] = enroll_files([wav(t, i) for part in a.ref_utts.split(",") for i in vs.span(part)], **({"presets": presets} if presets else {}))
            for i in vs.span(a.test_utts):
                src = wav(s, i)
                out = os.path.join(tmp, f"{name}-{s}2{t}-{i}.wav")
                t0 = time.perf_counter()
                y = pipe.run({"audio": read_audio(src), "target": profiles[t]})["audio"]
                secs += time.perf_counter() - t0
                write_audio(out, y)
                dur += sf.info(src).duration
                e = vs.unit(emb(out)); agg["sim"].append(float(e @ cent[t])); agg["ssim"].append(float(e @ cent[s]))
                agg["id"].append(max(voices, key=lambda v: e @ cent[v]) == t)
                e2 = vs.unit(emb2(out)); agg["sim2"].append(float(e2 @ cent2[t])); agg["ssim2"].append(float(e2 @ cent2[s]))
                agg["id2"].append(max(voices, key=lambda v: e2 @ cent2[v]) == t)
                r = vs.words(sents[i - 1]); n += len(r)
                e_c += vs.edits(r, vs.words(asr(out)))
                if src not in src_cache:
                    src_cache[src] = (vs.edits(r, vs.words(asr(src))), vs.edits(r, vs.words(asr2(src))) if asr2 else 0)
                e_s += src_cache[src][0]; e2_s += src_cache[src][1]
                if asr2: e2_c += vs.edits(r, vs.words(asr2(out)))
                print(f"  {name} {s}->{t} {i}: sim {agg['sim'][-1]:.3f} sim2 {agg['sim2'][-1]:.3f}", file=sys.stderr, flush=True)
        row = {"variant": name, "sim_target": round(float(np.mean(agg["sim"])), 3),
               "sim_source": round(float(np.mean(agg["ssim"])), 3), "ident": round(float(np.mean(agg["id"])), 3),
               "sim2_target": round(float(np.mean(agg["sim2"])), 3), "sim2_source": round(float(np.mean(agg["ssim2"])), 3),
               "ident2": round(float(np.mean(agg["id2"])), 3), "wer_ratio": round(e_c / max(e_s, 1e-9), 3),
               "wer2_conv": round(e2_c / n, 3) if asr2 else None, "wer2_src": round(e2_s / n, 3) if asr2 else None,
               "wer2_ratio": round((e2_c / n) / max(e2_s / n, 0.02), 3) if asr2 else None,
               "rtf_in_process": round(secs / dur, 3), "overrides": overrides}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
