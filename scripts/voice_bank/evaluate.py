#!/usr/bin/env python3
"""Score conversion toward a bare embedding on the dev set, beside an enrolled profile.

The judges, pairs and sentence split of ``../shared/tools/vc_score.py`` (imported from there):
GE2E and CAM++ similarity to the target's centroid (utterances 17-24) and to the source's,
identification, pocketsphinx and Whisper WER. Per target, the embedding is the normalised mean
resemblyzer d-vector of utterances 1-8 (what ``vcgraph enroll -o E.npy`` writes); the profile
is enrolled from the same utterances. Variants:

  source   the unconverted source
  profile  the enrolled profile (fast part), fast preset
  bank     the bare embedding, fast preset (the voice bank's estimate)
  search   the bare embedding, fast preset, ``bare_embedding=search`` (the old transform search)
  quality-bank  the bare embedding, quality preset

    python scripts/voice_bank/evaluate.py --variants source,profile,bank --test-utts 9-16
    python scripts/voice_bank/evaluate.py --variants search --test-utts 9-12
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
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TOOLS = os.path.join(ROOT, "..", "shared", "tools")
sys.path.insert(0, os.path.join(ROOT, "plugins"))
sys.path.insert(0, ROOT)
sys.path.insert(0, TOOLS)
sys.path.insert(0, os.path.join(HERE, ".."))  # scripts/: dev_judges

VARIANTS = {"profile": ("fast", [], "profile"), "bank": ("fast", [], "embedding"),
            "search": ("fast", ["nodes.speaker_encoding.config.bare_embedding=search"], "embedding"),
            "quality-bank": ("quality", [], "embedding"), "source": (None, [], None)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="source,profile,bank")
    ap.add_argument("--set", action="append", default=[], metavar="VARIANT:OVERRIDE",
                    help="an extra graph override for one variant (e.g. bank:nodes.x.config.y=1)")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "speech-dev"))
    ap.add_argument("--pairs", default="rms:slt,slt:rms,awb:kal16,kal16:awb,slt:awb,kal16:rms")
    ap.add_argument("--test-utts", default="9-16")
    ap.add_argument("--ref-utts", default="1-8")
    ap.add_argument("--bank", default="", help="voice bank file (default: the shipped one)")
    ap.add_argument("--no-whisper", action="store_true")
    ap.add_argument("--out", default="", help="also write the rows as JSON lines here")
    a = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    import vc_score as vs
    from vcgraph.audio import read_audio, write_audio
    from vcgraph.pipeline import Pipeline
    from vcgraph_voice.presets import preset_path
    from vcgraph_voice.embedding import GE2EEncoder, normalized_mean
    from vcgraph_voice.enroll import Enroller

    from dev_judges import dev_judges  # vc_score's judges of the dev set, set up once
    j = dev_judges(a.data, whisper=not a.no_whisper)
    sents, voices, wav, emb, emb2, asr, asr2 = j.sents, j.voices, j.wav, j.emb, j.emb2, j.asr, j.asr2
    cent, cent2 = j.cent, j.cent2

    encoder = GE2EEncoder("cpu")
    enroller = Enroller(encoder)
    targets = {}
    refs = lambda t: [wav(t, i) for i in vs.span(a.ref_utts)]
    for pair in a.pairs.split(","):
        t = pair.split(":")[1]
        if t not in targets:
            auds = [read_audio(p) for p in refs(t)]
            e = normalized_mean([encoder.embed(x.samples, x.sample_rate) for x in auds])
            targets[t] = {"embedding": e, "profile": enroller.enroll_audio(auds, presets=("fast",))}
            print(f"target {t}: embedding and fast profile from {len(auds)} references", file=sys.stderr, flush=True)
    extra = {}
    for s in a.set:
        v, _, o = s.partition(":")
        extra.setdefault(v, []).append(o)
    tmp_dir = tempfile.TemporaryDirectory(prefix="vb-eval-")  # removed when the run ends
    tmp = tmp_dir.name
    src_cache = {}
    rows = []
    for name in a.variants.split(","):
        preset, overrides, kind = VARIANTS[name.split("+")[0]]
        overrides = overrides + extra.get(name, [])
        if a.bank:
            overrides.append(f"nodes.speaker_encoding.config.bank={a.bank}")
        pipe = Pipeline.from_yaml(preset_path(preset), overrides) if preset else None
        agg = {k: [] for k in ("sim", "ssim", "id", "sim2", "ssim2", "id2")}
        e_c = e_s = e2_c = e2_s = n = 0
        secs = dur = 0.0
        for pair in a.pairs.split(","):
            s, t = pair.split(":")
            for i in vs.span(a.test_utts):
                src = wav(s, i)
                out = os.path.join(tmp, f"{name}-{s}2{t}-{i}.wav")
                t0 = time.perf_counter()
                if pipe is None:
                    out = src
                else:
                    target = targets[t]["profile"] if kind == "profile" else targets[t]["embedding"]
                    y = pipe.run({"audio": read_audio(src), "target": target})["audio"]
                    secs += time.perf_counter() - t0
                    write_audio(out, y)
                dur += sf.info(src).duration
                e = vs.unit(emb(out)); agg["sim"].append(float(e @ cent[t])); agg["ssim"].append(float(e @ cent[s]))
                agg["id"].append(max(voices, key=lambda v: e @ cent[v]) == t)
                if emb2:
                    e2 = vs.unit(emb2(out)); agg["sim2"].append(float(e2 @ cent2[t])); agg["ssim2"].append(float(e2 @ cent2[s]))
                    agg["id2"].append(max(voices, key=lambda v: e2 @ cent2[v]) == t)
                r = vs.words(sents[i - 1]); n += len(r)
                if src not in src_cache:
                    src_cache[src] = (vs.edits(r, vs.words(asr(src))), vs.edits(r, vs.words(asr2(src))) if asr2 else 0)
                e_s += src_cache[src][0]; e2_s += src_cache[src][1]
                e_c += vs.edits(r, vs.words(asr(out))) if pipe else src_cache[src][0]
                if asr2: e2_c += vs.edits(r, vs.words(asr2(out))) if pipe else src_cache[src][1]
                print(f"  {name} {s}->{t} {i}: sim {agg['sim'][-1]:.3f} (src {agg['ssim'][-1]:.3f})"
                      + (f" sim2 {agg['sim2'][-1]:.3f}" if emb2 else "") + f"  {time.perf_counter() - t0:.1f} s",
                      file=sys.stderr, flush=True)
        mean = lambda k: round(float(np.mean(agg[k])), 3) if agg[k] else None
        row = {"variant": name, "sim_target": mean("sim"), "sim_source": mean("ssim"), "ident": mean("id"),
               "sim2_target": mean("sim2"), "sim2_source": mean("ssim2"), "ident2": mean("id2"),
               "wer_conv": round(e_c / n, 3), "wer_src": round(e_s / n, 3),
               "wer_ratio": round(e_c / max(e_s, 1e-9), 3),
               "wer2_conv": round(e2_c / n, 3) if asr2 else None, "wer2_src": round(e2_s / n, 3) if asr2 else None,
               "wer2_ratio": round((e2_c / n) / max(e2_s / n, 0.02), 3) if asr2 else None,
               "s_per_audio_s": round(secs / dur, 3) if pipe else None, "overrides": overrides,
               "test_utts": a.test_utts}
        rows.append(row)
        print(json.dumps(row), flush=True)
        if a.out:
            with open(a.out, "a") as fh:
                fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
