#!/usr/bin/env python3
"""Build the shipped voice bank (plugins/vcgraph_voice/models/voice-bank.npz).

The bank turns a bare 256-d GE2E embedding into the ``fast`` method's profile part without a
search at conversion time (``vcgraph_voice/bank.py``): each bank voice has its embedding and
its fast target statistics, and a query embedding blends the statistics of its nearest bank
voices.

Voices: espeak-ng's voice variants x English accents, each drawn with its own espeak pitch
(F0 level) and speaking rate, then a vocal-tract-length / pitch perturbation by resampling
(play faster by a factor ``a``: formants and F0 x a). Every voice reads its own sentences
from ``scripts/content_model/texts.py`` (our own grammar; none is a dev-set sentence).
With ``--natural N``: N draws more of each voice made from recordings of people that the
content model's data uses (SVOX Pico's en-US and en-GB, ``pip install ttspico``; RHVoice's bdl
and clb, ``scripts/content_model/install_rhvoice.sh``), each with its own pitch, rate and
perturbation; each of those four is a family of its own when tuning.
No festival voice, no flite, no development voice (rms, slt, awb, kal16) is used.

Each voice goes through the enrolment code path (``Enroller.enroll_audio(..., presets=("fast",))``),
so its statistics are exactly what ``vcgraph enroll`` would store, and its embedding is what
the enroller stores (the normalised mean of the utterance d-vectors).

Then the blending's ``k`` and temperature are tuned by leave-one-variant-out on the bank
itself (every voice of one espeak variant held out at a time; the error is measured on the
statistics the fast synthesis reads, see ``bank.stat_error``), and everything is written.

    python scripts/voice_bank/build.py --jobs 2 --natural 24   # about 10-30 min on 2 cores
    python scripts/voice_bank/build.py --reuse /tmp/vb     # re-tune / re-write from cached voices
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "content_model"))
sys.path.insert(0, os.path.join(ROOT, "plugins"))
sys.path.insert(0, ROOT)
import texts  # noqa: E402

ACCENTS = ["en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan", "en-us-nyc",
           "en-gb-x-gbcwmd"]
SKIP_VARIANTS = {"whisper", "whisperf"}  # no voicing: no F0 statistics to learn from
DEV_SENTENCES = os.path.join(ROOT, "..", "shared", "data", "speech-dev", "sentences.txt")
OUT = os.path.join(ROOT, "plugins", "vcgraph_voice", "models", "voice-bank.npz")
RATE = 22050


def variants() -> list[str]:
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    names = []
    for line in out.splitlines()[1:]:
        for tok in line.split():
            if tok.startswith("!v/"):
                names.append(tok[3:])
                break
    return sorted(set(names) - SKIP_VARIANTS)


def voice_list(per_variant: int, seed: int) -> list[dict]:
    """``per_variant`` voices per espeak variant: accent, espeak pitch, rate and a resampling
    factor each (pitch and factor spread over their ranges so a variant's voices differ)."""
    r = random.Random(seed)
    out = []
    for v in variants():
        accents = r.sample(ACCENTS, per_variant) if per_variant <= len(ACCENTS) else \
            [r.choice(ACCENTS) for _ in range(per_variant)]
        for j in range(per_variant):
            lo, hi = j / per_variant, (j + 1) / per_variant
            pitch = int(10 + 80 * r.uniform(lo, hi))
            # factors on a 1/50 grid: cheap exact-ratio resampling
            a = round(r.uniform(0.84, 1.18) * 50) / 50
            out.append({"name": f"{accents[j]}+{v}/p{pitch}/a{a:.2f}", "variant": v, "accent": accents[j],
                        "pitch": pitch, "rate": r.randint(135, 180), "factor": a})
    return out


def natural_voices(per_voice: int, seed: int) -> list[dict]:
    """``per_voice`` draws of each of Pico's and RHVoice's English voices (make_data's)."""
    import make_data
    r = random.Random(seed + 3)
    # (engine, voice name, make_data's drawing of a pitch and rate, the field naming the voice)
    kinds = [("pico", n, make_data.pico_voice, "lang") for n in make_data.PICO_VOICES] + \
            [("rhvoice", n, make_data.rhvoice_voice, "voice") for n in make_data.RHVOICE_VOICES]
    out = []
    for engine, name, draw, field in kinds:
        for _ in range(per_voice):
            v = dict(draw(r), **{field: name}, name=f"{engine}-{name}")
            a = round(r.uniform(0.84, 1.18) * 50) / 50
            out.append(dict(v, variant=v["name"], factor=a, name=f"{v['name']}/p{v['pitch']}/r{v['rate']}/a{a:.2f}"))
    return out


def synth(voice: dict, text: str, path: str, seed: int) -> np.ndarray:
    """One utterance of ``voice`` at 22.05 kHz, perturbed by the voice's factor, with a little
    silence and a noise floor around it."""
    import torch
    import torchaudio
    import make_data
    x, sr = make_data.speak(voice, text, path)
    y = torch.from_numpy(x)
    a = voice["factor"]
    if a != 1.0 or sr != RATE:  # play faster by a: F0 and formants x a, duration / a
        y = torchaudio.functional.resample(y, round(sr * a), RATE)
    x = y.numpy()
    rng = np.random.default_rng(seed)
    x = np.concatenate([np.zeros(int(rng.uniform(0.15, 0.3) * RATE), np.float32), x,
                        np.zeros(int(rng.uniform(0.15, 0.3) * RATE), np.float32)])
    x *= rng.uniform(0.3, 0.9) / max(float(np.abs(x).max()), 1e-6)
    return (x + rng.normal(0, 10 ** rng.uniform(-4.5, -3.3), len(x))).astype(np.float32)


def work(job):
    """Enrol a list of (voice, sentences, seed): embedding and fast statistics per voice."""
    items, k = job
    import torch
    torch.set_num_threads(1)
    from vcgraph.audio import Audio
    from vcgraph_voice.enroll import Enroller
    enroller = Enroller()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for voice, sents, seed in items:
            audios = [Audio(synth(voice, s, os.path.join(tmp, "u.wav"), seed + i), RATE)
                      for i, s in enumerate(sents)]
            prof = enroller.enroll_audio(audios, presets=("fast",))
            rows.append({"voice": voice, "embedding": prof.embedding,
                         "fast": {n: np.asarray(v) for n, v in prof.methods["fast"].items()},
                         "seconds": prof.seconds})
    return k, rows


def make_voices(a) -> list[dict]:
    forbidden = set()
    if os.path.exists(DEV_SENTENCES):
        forbidden = {l.strip().lower() for l in open(DEV_SENTENCES)}
    vs = voice_list(a.per_variant, a.seed) + natural_voices(a.natural, a.seed)
    sents = texts.sentences(len(vs) * a.sentences, a.seed + 1, forbidden)
    r = random.Random(a.seed + 2)
    items = [(v, sents[i * a.sentences:(i + 1) * a.sentences], r.randrange(1 << 30)) for i, v in enumerate(vs)]
    chunk = 4
    jobs = [(items[i:i + chunk], i // chunk) for i in range(0, len(items), chunk)]
    results: dict[int, list] = {}
    t0 = time.time()
    print(f"{len(vs)} voices ({len(variants())} espeak variants x {a.per_variant}, {a.natural} x 4 natural), "
          f"{a.sentences} sentences each; {a.jobs} jobs", flush=True)
    from multiprocessing import Pool
    done = 0
    with Pool(a.jobs) as pool:
        for k, rows in pool.imap_unordered(work, jobs):
            results[k] = rows
            done += len(rows)
            el = time.time() - t0
            print(f"  voices {done}/{len(vs)}  {el:.0f} s elapsed, ~{el / done * (len(vs) - done):.0f} s left",
                  flush=True)
    return [row for k in sorted(results) for row in results[k]]


def save_cache(rows, path):
    arrays = {"embedding": np.stack([r["embedding"] for r in rows]),
              "seconds": np.array([r["seconds"] for r in rows], np.float32)}
    for n in rows[0]["fast"]:
        arrays[f"fast/{n}"] = np.stack([r["fast"][n] for r in rows])
    np.savez(path, **arrays)
    json.dump([r["voice"] for r in rows], open(path + ".json", "w"), indent=0)


def load_cache(path):
    z = np.load(path, allow_pickle=False)
    voices = json.load(open(path + ".json"))
    return voices, {k: z[k] for k in z.files}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "vcgraph-voice-bank"),
                    help="where the enrolled voices are cached (voices.npz)")
    ap.add_argument("--reuse", action="store_true", help="use the cached voices of --work (no synthesis)")
    ap.add_argument("--per-variant", type=int, default=3)
    ap.add_argument("--sentences", type=int, default=8)
    ap.add_argument("--natural", type=int, default=0, help="draws of each Pico / RHVoice voice")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    t0 = time.time()
    os.makedirs(a.work, exist_ok=True)
    cache = os.path.join(a.work, "voices.npz")
    if not a.reuse:
        rows = make_voices(a)
        save_cache(rows, cache)
    voices, arrays = load_cache(cache)
    from vcgraph_voice import bank
    families = sorted({v["variant"] for v in voices})
    family = np.array([families.index(v["variant"]) for v in voices], np.int32)
    print(f"tuning k and temperature, leave one variant out ({len(families)} variants)", flush=True)
    stats = {n[5:]: arrays[n] for n in arrays if n.startswith("fast/")}
    best, table = bank.tune(arrays["embedding"], stats, family, progress=lambda s: print("  " + s, flush=True))
    print(f"chosen: k={best['k']} temperature={best['temperature']} "
          f"(held-out error {best['error']:.4f}; nearest-1: {table['nearest1']:.4f}; "
          f"bank mean: {table['mean']:.4f})", flush=True)
    meta = {"voices": len(voices), "variants": len(families), "sentences": a.sentences,
            "per_variant": a.per_variant, "natural": a.natural, "seed": a.seed, "seconds_total": float(arrays["seconds"].sum()),
            "tuning": table, "build_seconds": round(time.time() - t0, 1)}
    bank.write(a.out, arrays["embedding"], stats, family, [v["name"] for v in voices], families,
               k=best["k"], temperature=best["temperature"], meta=meta)
    print(f"wrote {a.out} ({os.path.getsize(a.out) / 1e6:.2f} MB) in {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
