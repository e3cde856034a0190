#!/usr/bin/env python3
"""The streaming content encoder's starting normalisation: the average per-utterance log-mel
speech statistics of training voices (espeak-ng accents x variants, held-out variants, dev and
festival voices excluded, as for the model), written to models/content-norm-prior.json.

Offline, the encoder's input is normalised with the utterance's own statistics; a stream has
none at its start, so it starts from these and moves to its own as it goes
(dsp/content_stream.StreamContent). About a minute on 2 cores:

  python scripts/content_model/norm_prior.py [--voices 32] [--sentences 3]
"""
import argparse, json, os, random, sys, tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "plugins"))
import make_data, texts  # noqa: E402
from vcgraph_voice import content_model as cm  # noqa: E402

OUT = os.path.join(HERE, "..", "..", "plugins", "vcgraph_voice", "models", "content-norm-prior.json")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--voices", type=int, default=32)
    ap.add_argument("--sentences", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("-o", "--out", default=OUT)
    a = ap.parse_args()
    r = random.Random(a.seed)
    voices = r.sample(make_data.voices(a.seed, held_out=False), a.voices)
    lines = texts.sentences(a.voices * a.sentences, a.seed)
    fe = cm.ContentFrontend()
    means, stds = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, v in enumerate(voices):
            for j in range(a.sentences):
                x = make_data.synth(v, lines[i * a.sentences + j], os.path.join(tmp, "x.wav"), i * 100 + j)
                lm = fe.log_mel(torch.from_numpy(x), 16000)
                e = lm.mean(1)
                sp = lm[e > torch.quantile(e, 0.3)]  # as ContentFrontend.normalise
                means.append(sp.mean(0))
                stds.append(sp.std(0))
            print(f"\r{i + 1}/{len(voices)} voices", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    out = {"mean": [round(float(v), 5) for v in torch.stack(means).mean(0)],
           "std": [round(float(v), 5) for v in torch.stack(stds).mean(0)],
           "utterances": len(means), "voices": sorted({v["name"] for v in voices}),
           "command": "python scripts/content_model/norm_prior.py"}
    with open(a.out, "w") as fh:
        json.dump(out, fh, indent=1)
    print(f"wrote {a.out}: {len(means)} utterances of {len(voices)} voices")


if __name__ == "__main__":
    main()
