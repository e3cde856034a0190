#!/usr/bin/env python3
"""Streaming conversion figures (configs/stream.yaml): latency, per-block cost, quality.

Timing: for each block size, the algorithmic latency (block + look-ahead + synthesis grain)
and the per-block processing time as a fraction of the block's duration, p50 / p99 / max,
wall clock and this thread's CPU time (CPU time is what other processes on a shared machine
do not inflate), on --seconds of dev-set speech fed as fast as possible. A fixed torch
baseline (a tiny op, µs) timed in the same run lets a loaded machine be read relative to a
quiet one. Quality (--quality): on the dev test utterances (9-12 of each voice, converted
toward the next voice, enrolled from its utterances 1-8), streamed against the offline fast
preset: median |F0 difference| (cents), log-spectral distance (dB; the source's distance to
the offline output beside it) and the block-edge click ratio (~1: edges invisible; per
sentence and pooled over all edges).

  PYTHONPATH=.:plugins python scripts/bench_stream.py [--blocks 10,20,40,80] [--threads 1]
      [--quality] [--device cuda] [--config stream|stream-content] [--json]
"""
import argparse, glob, json, os, sys, time

import numpy as np
import soundfile as sf
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "plugins"))
sys.path.insert(0, os.path.join(HERE, ".."))
from vcgraph.pipeline import Pipeline  # noqa: E402
from vcgraph_voice.stream import STREAM_CONFIG, STREAM_CONTENT_CONFIG, VoiceStream  # noqa: E402
from vcgraph_voice.stream import measure  # noqa: E402

DATA = os.path.join(HERE, "..", "..", "shared", "data", "speech-dev")


def speech(data, seconds):
    """Dev utterances of all voices concatenated to ``seconds`` (16 kHz)."""
    xs, n = [], 0
    for p in sorted(glob.glob(os.path.join(data, "*_1[3-6].wav"))):
        x, sr = sf.read(p, dtype="float32")
        xs.append(x)
        n += len(x)
        if n >= seconds * sr:
            break
    return np.concatenate(xs)[: int(seconds * sr)], sr


def op_baseline_us(n=3000):
    x = torch.randn(1024)
    for _ in range(100):
        x + 1.0
    t = time.perf_counter()
    for _ in range(n):
        x + 1.0
    return (time.perf_counter() - t) / n * 1e6


def enroll(paths, cache, method="fast"):
    from vcgraph_voice.enroll import enroll_files
    key = tuple(paths)
    if key not in cache:
        cache[key] = enroll_files(list(paths), presets=[method])
    return cache[key]


def timing(args, pipe, profile):
    x, sr = speech(args.data, args.seconds)
    rows = []
    for ms in [float(b) for b in args.blocks.split(",")]:
        block = int(round(sr * ms / 1000))
        VoiceStream(pipe, profile, sample_rate=sr, block_size=block, threads=args.threads).convert(x[: sr // 2])
        vs = VoiceStream(pipe, profile, sample_rate=sr, block_size=block, threads=args.threads)
        vs.convert(x)
        s = vs.summary(skip=3)
        rows.append({k: s[k] for k in ("block_ms", "algorithmic_latency_ms", "p50_block_ratio", "p99_block_ratio",
                                       "max_block_ratio", "p50_cpu_block_ratio", "p99_cpu_block_ratio", "blocks",
                                       "latency_parts_ms", "implementations")})
    return rows


def quality(args, pipe):
    from vcgraph_voice import PipelineConfig, VoiceConversionPipeline
    voices = sorted({os.path.basename(p).rsplit("_", 1)[0] for p in glob.glob(os.path.join(args.data, "*_01.wav"))})
    cache, rows = {}, []
    for i, src_voice in enumerate(voices):
        tgt = voices[(i + 1) % len(voices)]
        prof = enroll([os.path.join(args.data, f"{tgt}_{k:02d}.wav") for k in range(1, 9)], cache, args.method)
        offline = VoiceConversionPipeline(PipelineConfig(preset=args.method, sample_rate=16000, use_cuda=False))
        for k in range(9, 13):
            x, sr = sf.read(os.path.join(args.data, f"{src_voice}_{k:02d}.wav"), dtype="float32")
            y_off = offline.convert(x, prof, sample_rate=sr)
            vs = VoiceStream(pipe, prof, sample_rate=sr, block_size=int(sr * args.quality_block_ms / 1000),
                             threads=args.threads)
            y, edges = measure.convert_with_edges(vs, x)
            cents, agree = measure.f0_cents_difference(y, y_off, sr)
            rows.append({"pair": f"{src_voice}->{tgt}", "utt": k, "f0_cents": cents, "voicing_agree": agree,
                         "lsd_stream_offline": measure.log_spectral_distance(y_off, y),
                         "lsd_source_offline": measure.log_spectral_distance(y_off, x),
                         "click_ratio": measure.edge_click_ratio(y, edges, sr, hop=sr // 200),
                         "_edges": measure.edge_energies(y, edges, sr, hop=sr // 200)})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--blocks", default="10,20,40,80")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    ap.add_argument("--quality", action="store_true")
    ap.add_argument("--quality-block-ms", type=float, default=20.0)
    ap.add_argument("--config", choices=("stream", "stream-content"), default="stream",
                    help="streaming graph: the fast method (default) or the content method")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    args.method = "content" if args.config == "stream-content" else "fast"
    torch.set_num_threads(args.threads)
    over = [f"settings.use_cuda={'true' if args.device == 'cuda' else 'false'}"] + args.overrides
    pipe = Pipeline.from_yaml(STREAM_CONTENT_CONFIG if args.method == "content" else STREAM_CONFIG, over,
                              only_kind=args.device)
    from vcgraph_voice.enroll import enroll_files
    examples = sorted(glob.glob(os.path.join(HERE, "..", "examples", "audio", "target_0*.wav")))
    profile = enroll_files(examples, presets=[args.method])
    load0, base = os.getloadavg(), op_baseline_us()
    out = {"load_before": [round(v, 2) for v in load0], "torch_op_us": round(base, 2), "threads": args.threads,
           "device": args.device, "timing": timing(args, pipe, profile)}
    out["load_after"] = [round(v, 2) for v in os.getloadavg()]
    if args.quality:
        q = out["quality"] = quality(args, pipe)
        at_edges = np.concatenate([r["_edges"][0] for r in q])
        elsewhere = np.concatenate([r.pop("_edges")[1] for r in q])
        out["pooled_click_ratio"] = float(np.median(at_edges) / np.median(elsewhere))
        out["pooled_edges"] = int(at_edges.size)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"load average before {out['load_before']}, after {out['load_after']} (2 cores); "
          f"torch tiny-op baseline {base:.1f} us; {args.threads} torch thread(s), {args.device}, {args.config}")
    print(f"{'block ms':>8} {'latency ms':>10} {'p50':>6} {'p99':>6} {'max':>6} {'cpu p50':>8} {'cpu p99':>8}")
    for r in out["timing"]:
        print(f"{r['block_ms']:8.0f} {r['algorithmic_latency_ms']:10.1f} {r['p50_block_ratio']:6.2f} "
              f"{r['p99_block_ratio']:6.2f} {r['max_block_ratio']:6.2f} {r['p50_cpu_block_ratio']:8.2f} "
              f"{r['p99_cpu_block_ratio']:8.2f}")
    if args.quality:
        q = out["quality"]
        med = lambda k: float(np.nanmedian([r[k] for r in q]))  # noqa: E731
        mx = lambda k: float(np.nanmax([r[k] for r in q]))  # noqa: E731
        print(f"quality over {len(q)} dev utterances ({args.quality_block_ms:g} ms blocks), median (max):")
        print(f"  F0 vs offline {med('f0_cents'):.0f} cents ({mx('f0_cents'):.0f}); voicing agreement "
              f"{med('voicing_agree'):.2f}")
        print(f"  log-spectral distance to offline: streamed {med('lsd_stream_offline'):.1f} dB "
              f"({mx('lsd_stream_offline'):.1f}), source {med('lsd_source_offline'):.1f} dB")
        print(f"  block-edge click ratio {med('click_ratio'):.2f} ({mx('click_ratio'):.2f}); pooled over "
              f"{out['pooled_edges']} edges {out['pooled_click_ratio']:.2f}  (1 = no trace of edges)")


if __name__ == "__main__":
    main()
