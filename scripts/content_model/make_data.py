#!/usr/bin/env python3
"""Make the content model's training data: synthetic voices reading our own sentences.

Voices: espeak-ng's English accents x its voice variants, each with its own pitch and rate;
with ``--pico N``, N utterances more from SVOX Pico's two English voices (``pip install
ttspico``: statistical-parametric voices made from recordings of people, much nearer real
speech than espeak-ng's formant synthesis); with ``--rhvoice N``, N more from RHVoice's
English voices bdl and clb (two speakers of the CMU ARCTIC recordings, not among the
development voices; build the engine with ``install_rhvoice.sh``); each utterance of both
with its own pitch and rate; and vocal-tract-length / pitch perturbations of every utterance
(resampling by a factor).
No festival voice and no development voice (rms, slt, awb, kal16 are flite's; flite is not
used at all) is in the data. Frame labels (pocketsphinx phone + HMM state per 10 ms) come
from forced alignment of the clean utterance against its known text; perturbed copies reuse
them on the stretched time axis.

Writes OUT/train-K.pt, OUT/train-pico-K.pt, OUT/train-rhvoice-K.pt and OUT/heldout-0.pt
(lists of dicts: mel float16 (T, 80), label int16 (T,), voice str) and OUT/voices.json. The
same rows for a seed, whatever --jobs.

    python scripts/content_model/make_data.py --out /tmp/cm-data --utterances 2400 --held-out 200 \
        --pico 1200 --rhvoice 1200 --jobs 2
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
import soundfile as sf
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "plugins"))
import texts  # noqa: E402

ACCENTS = ["en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan", "en-us-nyc",
           "en-gb-x-gbcwmd"]
HELD_OUT_VARIANTS = {"f5", "m7", "klatt4", "Storm", "belinda", "steph3"}   # accuracy check only
DEV_SENTENCES = os.path.join(HERE, "..", "..", "..", "shared", "data", "speech-dev", "sentences.txt")


def variants() -> list[str]:
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True).stdout
    names = [line.split()[4].split("/")[-1] for line in out.splitlines()[1:] if len(line.split()) > 4]
    return sorted(set(names))


def voices(seed: int, held_out: bool) -> list[dict]:
    """One voice per (accent, variant) draw, with its own pitch and speaking rate."""
    r = random.Random(seed)
    out = []
    for v in variants():
        if (v in HELD_OUT_VARIANTS) != held_out or v in {"whisper", "whisperf"}:
            continue
        for accent in r.sample(ACCENTS, 2):
            out.append({"accent": accent, "variant": v, "pitch": r.randint(15, 85),
                        "rate": r.randint(130, 185), "name": f"{accent}+{v}"})
    return out


PICO_VOICES = ["en-US", "en-GB"]   # SVOX Pico's English voices (lh0 and kh0, both female)


def pico_voice(r: random.Random) -> dict:
    """A Pico voice with its own pitch and rate (percent of the voice's own)."""
    lang = r.choice(PICO_VOICES)
    pitch, rate = r.randint(80, 125), r.randint(80, 125)
    return {"engine": "pico", "lang": lang, "pitch": pitch, "rate": rate, "name": f"pico-{lang}"}


def pico_say(voice: dict, text: str) -> tuple[np.ndarray, int]:
    """Pico's speech at 16 kHz. A fresh engine per utterance (about 25 ms): an engine's output
    depends on what it spoke before, which would make a shard's rows depend on the shards its
    worker made first."""
    import ttspico
    eng = ttspico.TtsEngine(voice["lang"])
    eng.pitch, eng.rate = voice["pitch"], voice["rate"]
    pcm = eng.speak(text) or b""
    return np.frombuffer(pcm, np.int16).astype(np.float32) / 32768.0, 16000


RHVOICE_VOICES = ["bdl", "clb"]    # never slt: a development voice's speaker


def rhvoice_voice(r: random.Random) -> dict:
    """An RHVoice voice with its own pitch and rate (RHVoice's absolute parameters, -1..1)."""
    name = r.choice(RHVOICE_VOICES)
    return {"engine": "rhvoice", "voice": name, "pitch": round(r.uniform(-0.3, 0.3), 2),
            "rate": round(r.uniform(-0.25, 0.3), 2), "name": f"rhvoice-{name}"}


def speak(voice: dict, text: str, path: str) -> tuple[np.ndarray, int]:
    """(mono float32 samples, sample rate) of ``text`` in ``voice`` (espeak-ng, Pico or
    RHVoice, by the voice's ``engine``); ``path`` is a scratch file for espeak-ng."""
    if voice.get("engine") == "pico":
        x, sr = pico_say(voice, text)
    elif voice.get("engine") == "rhvoice":
        import rhvoice
        x, sr = rhvoice.say(voice["voice"], text, rate=voice["rate"], pitch=voice["pitch"])
    else:
        subprocess.run(["espeak-ng", "-v", f"{voice['accent']}+{voice['variant']}", "-p", str(voice["pitch"]),
                        "-s", str(voice["rate"]), "-w", path, text], check=True, capture_output=True)
        x, sr = sf.read(path, dtype="float32")
    return (x.mean(1) if x.ndim > 1 else x), sr


def synth(voice: dict, text: str, path: str, seed: int) -> np.ndarray:
    """16 kHz speech with 0.2-0.4 s of quiet noise at both ends (the aligner needs silence
    around the words, and real recordings have a noise floor)."""
    x, sr = speak(voice, text, path)
    if sr != 16000:
        x = __import__("torchaudio").functional.resample(torch.from_numpy(x), sr, 16000).numpy()
    r = np.random.default_rng(seed)
    x = np.concatenate([np.zeros(int(r.uniform(0.2, 0.4) * 16000), np.float32), x,
                        np.zeros(int(r.uniform(0.2, 0.4) * 16000), np.float32)])
    x *= r.uniform(0.3, 0.9) / max(float(np.abs(x).max()), 1e-6)
    return (x + r.normal(0, 10 ** r.uniform(-4.5, -3.0), len(x))).astype(np.float32)


class Aligner:
    """Forced alignment against known text: class = phone * 3 + HMM state per 10 ms frame."""

    def __init__(self):
        from pocketsphinx import Decoder
        self.dec = Decoder(samprate=16000, lm=None, logfn=os.devnull)
        from vcgraph_voice.dsp.phones import PHONE_ID
        self.phone_id = PHONE_ID

    def __call__(self, x: np.ndarray, text: str) -> np.ndarray | None:
        raw = (np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes()
        words = " ".join(w.strip(".,?!").lower() for w in text.split())
        n = len(x) // 160 + 1
        labels = np.zeros(n, np.int16) + 1  # silence, middle state
        try:
            self.dec.set_align_text(words)
            for _ in range(2):
                self.dec.start_utt(); self.dec.process_raw(raw, full_utt=True); self.dec.end_utt()
                if _ == 0:
                    self.dec.set_alignment()
            segs = []
            for word in self.dec.get_alignment():
                for phone in word:
                    pid = self.phone_id.get(str(phone.name).upper().split("_")[0], 0)
                    for si, state in enumerate(phone):
                        segs.append((pid * 3 + min(si, 2), int(state.start), int(state.duration)))
        except Exception:
            return None
        if not segs:
            return None
        for c, a, d in segs:
            labels[max(a, 0):min(a + d, n)] = c
        return labels


def shard_kind(path: str) -> str:
    """'heldout', 'espeak', 'pico' or 'rhvoice', from a shard's file name."""
    parts = os.path.basename(path).split("-")
    return "heldout" if parts[0] == "heldout" else parts[1] if len(parts) > 2 else "espeak"


def work(args):
    """Synthesise, align and featurise ``items`` (voice, text, seed) into one shard."""
    items, out_path, perturb, (lo, hi) = args
    torch.set_num_threads(1)
    from vcgraph_voice.content_model import ContentFrontend
    import torchaudio
    fe = ContentFrontend()
    ali = Aligner()
    rows, failed = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for voice, text, seed in items:
            x = synth(voice, text, os.path.join(tmp, "u.wav"), seed)
            lab = ali(x, text)
            if lab is None:
                failed += 1
                continue
            r = random.Random(seed)
            # factors on a 1/50 grid: 16000 * a shares a large divisor with 16000 (cheap resampling)
            factors = [1.0] + [round(r.uniform(lo, hi) * 50) / 50 for _ in range(perturb)]
            for a in factors:
                y = torch.from_numpy(x)
                if a != 1.0:  # play faster by a: pitch and formants up by a, duration / a
                    y = torchaudio.functional.resample(y, round(16000 * a), 16000)
                with torch.no_grad():
                    mel = fe.log_mel(y, 16000)
                idx = np.minimum((np.arange(mel.shape[0]) * a).round().astype(int), len(lab) - 1)
                rows.append({"mel": mel.half(), "label": torch.from_numpy(lab[idx].astype(np.int16)),
                             "voice": f"{voice['name']}@{a:.2f}", "base_voice": voice["name"]})
    torch.save(rows, out_path + ".part")
    os.replace(out_path + ".part", out_path)   # a shard is there whole or not at all (--resume)
    return len(rows), failed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--utterances", type=int, default=2400, help="clean utterances for training")
    ap.add_argument("--held-out", type=int, default=120, help="utterances of held-out voices (accuracy)")
    ap.add_argument("--pico", type=int, default=0, help="utterances more from SVOX Pico's voices (ttspico)")
    ap.add_argument("--rhvoice", type=int, default=0, help="utterances more from RHVoice's bdl and clb")
    ap.add_argument("--resume", action="store_true", help="keep the shards already in OUT (same arguments)")
    ap.add_argument("--only", choices=["espeak", "pico", "rhvoice", "heldout"],
                    help="make only these shards (to share the work between runs or machines)")
    ap.add_argument("--perturb", type=int, default=2, help="perturbed copies per utterance")
    ap.add_argument("--pico-perturb", type=int, default=3,
                    help="perturbed copies per Pico utterance (only two voices, both female: more, and mostly lower)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    forbidden = set()
    if os.path.exists(DEV_SENTENCES):
        forbidden = {l.strip().lower() for l in open(DEV_SENTENCES)}
    train_v, test_v = voices(a.seed, False), voices(a.seed, True)
    sents = texts.sentences(a.utterances + a.held_out + a.pico + a.rhvoice, a.seed, forbidden)
    r = random.Random(a.seed)
    train = [(r.choice(train_v), s, r.randrange(1 << 30)) for s in sents[:a.utterances]]
    test = [(r.choice(test_v), s, r.randrange(1 << 30)) for s in sents[a.utterances:a.utterances + a.held_out]]
    rp = random.Random(a.seed + 1)
    n0 = a.utterances + a.held_out
    pico = [(pico_voice(rp), s, rp.randrange(1 << 30)) for s in sents[n0:n0 + a.pico]]
    rr = random.Random(a.seed + 2)
    rhv = [(rhvoice_voice(rr), s, rr.randrange(1 << 30)) for s in sents[n0 + a.pico:]]
    json.dump({"train_voices": train_v, "held_out_voices": test_v, "pico_voices": PICO_VOICES if pico else [],
               "rhvoice_voices": RHVOICE_VOICES if rhv else [], "seed": a.seed},
              open(os.path.join(a.out, "voices.json"), "w"), indent=1)
    n_shards = 8
    espeak_range, pico_range = (0.84, 1.18), (0.76, 1.12)
    jobs = [(train[k::n_shards], os.path.join(a.out, f"train-{k}.pt"), a.perturb, espeak_range) for k in range(n_shards)]
    jobs += [(pico[k::n_shards], os.path.join(a.out, f"train-pico-{k}.pt"), a.pico_perturb, pico_range)
             for k in range(n_shards) if pico]
    jobs += [(rhv[k::n_shards], os.path.join(a.out, f"train-rhvoice-{k}.pt"), a.perturb, espeak_range)
             for k in range(n_shards) if rhv]
    jobs.append((test, os.path.join(a.out, "heldout-0.pt"), 0, espeak_range))
    if a.resume:
        jobs = [j for j in jobs if not os.path.exists(j[1])]
    if a.only:
        jobs = [j for j in jobs if shard_kind(j[1]) == a.only]
    t0 = time.time()
    if not jobs:
        return print("nothing to make: every shard is there")
    from multiprocessing import Pool
    with Pool(a.jobs) as pool:
        for k, (n, failed) in enumerate(pool.imap_unordered(work, jobs)):
            print(f"shard {k + 1}/{len(jobs)}: {n} utterances, {failed} failed alignment "
                  f"({time.time() - t0:.0f} s)", flush=True)
    print(f"{len(train_v)} training voices, {len(test_v)} held-out voices; {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
