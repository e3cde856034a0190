#!/usr/bin/env python3
"""Streaming as a long call, not one sentence per stream: each source's warm-up sentences and
then its judged sentences in one stream (0.3 s of silence between them), the judged ones cut
out again and scored by vc_score's judges (GE2E, CAM++, pocketsphinx, Whisper; ``dev_judges``).

State that learns from the stream (running statistics, the content stream's ``refine`` maps)
has had the warm-up's speech by the time the judged sentences arrive, as in a call some
seconds in. Pairs, enrolment (1-8) and centroids (17-24) as ``../shared/tools/vc_score.py``.

    python scripts/stream_long.py --config stream-content \\
        --variant "unrefined=nodes.voice_synthesis.config.refine=0" --variant graph=    # ~4 min a variant
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np
import soundfile as sf

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, os.path.join(ROOT, "plugins"))
sys.path.insert(0, os.path.join(ROOT, "..", "shared", "tools"))
sys.path.insert(0, HERE)  # dev_judges
SR = 16000
GAP = np.zeros(int(0.3 * SR), np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="stream-content", help="stream, stream-content or a graph file")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=OVERRIDE[;OVERRIDE...]")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "speech-dev"))
    ap.add_argument("--pairs", default="rms:slt,slt:rms,awb:kal16,kal16:awb,slt:awb,kal16:rms")
    ap.add_argument("--warmup-utts", default="13-16", help="sentences streamed first, not judged")
    ap.add_argument("--test-utts", default="9-12")
    ap.add_argument("--block-ms", type=float, default=20.0)
    a = ap.parse_args()
    import torch
    import vc_score as vs
    from dev_judges import dev_judges, judge, source_edits, summary
    from vcgraph.pipeline import Pipeline
    from vcgraph_voice.enroll import enroll_files
    from vcgraph_voice.stream import STREAM_CONFIG, STREAM_CONTENT_CONFIG, VoiceStream
    torch.set_num_threads(1)
    j = dev_judges(a.data)
    pairs = [p.split(":") for p in a.pairs.split(",")]
    profiles = {t: enroll_files([j.wav(t, i) for i in vs.span("1-8")], presets=["content", "fast"])
                for t in {t for _, t in pairs}}
    read = lambda v, i: sf.read(j.wav(v, i), dtype="float32")[0]
    scratch = tempfile.TemporaryDirectory(prefix="stream-long-")  # per run, removed at its end
    out = os.path.join(scratch.name, "converted.wav")
    src_err = {}
    for spec in a.variant or ["base="]:
        name, _, ov = spec.partition("=")
        overrides = [o for o in ov.split(";") if o]
        config = {"stream": STREAM_CONFIG, "stream-content": STREAM_CONTENT_CONFIG}.get(a.config, a.config)
        pipe = Pipeline.from_yaml(config, overrides=overrides)
        rows = []
        for s, t in pairs:
            parts, spans, pos = [], [], 0
            for i in list(vs.span(a.warmup_utts)) + list(vs.span(a.test_utts)):
                x = read(s, i)
                if i in vs.span(a.test_utts):
                    spans.append((i, pos, pos + len(x)))
                parts += [x, GAP]
                pos += len(x) + len(GAP)
            y = VoiceStream(pipe, profiles[t], sample_rate=SR, block_size=int(SR * a.block_ms / 1000)).convert(
                np.concatenate(parts))
            for i, b, e in spans:
                sf.write(out, y[b:e], SR)
                src_ps, src_wh = source_edits(j, src_err, s, i)
                rows.append(dict(judge(j, out, s, t, j.sents[i - 1]), src_ps=src_ps, src_wh=src_wh))
        print(json.dumps({"variant": name, **summary(rows), "overrides": overrides}), flush=True)


if __name__ == "__main__":
    main()
