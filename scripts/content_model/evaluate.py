#!/usr/bin/env python3
"""Frame accuracy of the content encoder on voices it never heard, beside pocketsphinx.

Reference labels: forced alignment against the known text (pocketsphinx), per 10 ms frame.
  - held-out synthetic voices: the held-out shard of make_data.py (espeak-ng variants never
    used in training);
  - the development voices (rms, slt, awb, kal16; never trained on), aligned here.
Beside the encoder: pocketsphinx recognition + forced alignment of its own hypothesis (the
quality preset's labeller) and all-phone decoding, scored against the same references; and
each labeller's real-time factor.

    python scripts/content_model/evaluate.py --data /tmp/cm-data
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "plugins"))
from vcgraph_voice import content_model as cm  # noqa: E402
DEV = os.path.join(HERE, "..", "..", "..", "shared", "data", "speech-dev")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="make_data.py output (for the held-out shard)")
    ap.add_argument("--weights", default=cm.WEIGHTS)
    ap.add_argument("--dev", default=DEV)
    a = ap.parse_args()
    torch.set_num_threads(1)
    enc = cm.load_encoder(a.weights)
    fe = cm.ContentFrontend()
    out = {}
    if a.data:
        rows = []
        for p in glob.glob(os.path.join(a.data, "heldout-*.pt")):
            rows += torch.load(p, weights_only=True)
        ok = n = 0
        for r in rows:
            with torch.no_grad():
                pred = enc(cm.ContentFrontend.normalise(r["mel"].float())[None])[0][0].argmax(-1)
            lab = r["label"].long()
            ok += int((pred // 3 == lab // 3).sum()); n += lab.numel()
        out["held_out_synthetic"] = {"phone_accuracy": round(ok / n, 3), "utterances": len(rows),
                                     "voices": len({r["base_voice"] for r in rows})}
    if os.path.isdir(a.dev):
        import soundfile as sf
        from make_data import Aligner
        from vcgraph_voice.dsp.phones import PhoneLabeler
        sents = [l.strip() for l in open(os.path.join(a.dev, "sentences.txt"))]
        ali = Aligner()
        rec, allp = PhoneLabeler("align"), PhoneLabeler("allphone")
        score = {"content encoder": [0, 0, 0.0], "recognition + alignment": [0, 0, 0.0],
                 "all-phone decoding": [0, 0, 0.0]}
        seconds = 0.0
        for path in sorted(glob.glob(os.path.join(a.dev, "*_[0-9][0-9].wav"))):
            x, sr = sf.read(path, dtype="float32")
            text = sents[int(path[-6:-4]) - 1]
            ref = ali(x, text)
            if ref is None:
                continue
            ref = ref // 3
            seconds += len(x) / sr
            t0 = time.perf_counter()
            with torch.no_grad():
                pred = enc(fe(torch.from_numpy(x), sr)[None])[0][0].argmax(-1).numpy() // 3
            t1 = time.perf_counter()
            preds = {"content encoder": (pred, t1 - t0)}
            for name, lab in (("recognition + alignment", rec), ("all-phone decoding", allp)):
                t0 = time.perf_counter(); phone, _, _, _ = lab.labels(x, sr); preds[name] = (phone, time.perf_counter() - t0)
            for name, (p, t) in preds.items():
                m = min(len(p), len(ref))
                score[name][0] += int((np.asarray(p[:m]) == ref[:m]).sum()); score[name][1] += m; score[name][2] += t
        out["dev_voices"] = {k: {"phone_accuracy": round(v[0] / max(v[1], 1), 3), "rtf": round(v[2] / seconds, 4)}
                             for k, v in score.items()}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
