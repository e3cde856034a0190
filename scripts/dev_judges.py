"""vc_score's judges of the dev set, set up once for the in-process measuring scripts
(scripts/content_model/sweep.py, scripts/voice_bank/evaluate.py, ...): GE2E and CAM++ embedders,
the dev voices' centroids of utterances 17-24 (cached in the temp folder: they do not change
between runs), pocketsphinx and Whisper recognisers; :func:`judge` scores one output with all
of them. ``../shared/tools`` must be on sys.path."""
from __future__ import annotations

import os
import tempfile
from types import SimpleNamespace

import numpy as np
import soundfile as sf

VOICES = ["awb", "kal16", "rms", "slt"]


def dev_judges(data: str, whisper: bool = True) -> SimpleNamespace:
    """``sents, voices, wav(voice, i), emb, emb2, cent, cent2, asr, asr2`` (``asr2`` None
    without ``whisper``)."""
    import vc_score as vs
    from pocketsphinx import Decoder
    from resemblyzer import VoiceEncoder, preprocess_wav
    import librosa
    sents = [line.strip() for line in open(os.path.join(data, "sentences.txt"))]
    voices = list(VOICES)

    def wav(v, i):
        return os.path.join(data, f"{v}_{i:02d}.wav")

    enc = VoiceEncoder("cpu", verbose=False)

    def emb(path):
        x, sr = sf.read(path, dtype="float32")
        return enc.embed_utterance(preprocess_wav(x, source_sr=sr))

    emb2 = vs.campp_encoder()
    cache = os.path.join(tempfile.gettempdir(), "vcgraph-sweep-centroids.npz")
    if os.path.exists(cache):
        with np.load(cache) as c:
            cent = {v: c["ge2e_" + v] for v in voices}
            cent2 = {v: c["campp_" + v] for v in voices}
    else:
        cent = {v: vs.unit(np.mean([emb(wav(v, i)) for i in vs.span("17-24")], 0)) for v in voices}
        cent2 = {v: vs.unit(np.mean([emb2(wav(v, i)) for i in vs.span("17-24")], 0)) for v in voices}
        np.savez(cache, **{"ge2e_" + v: cent[v] for v in voices}, **{"campp_" + v: cent2[v] for v in voices})
    dec = Decoder(samprate=16000, logfn="/dev/null")

    def asr(path):
        x, sr = sf.read(path, dtype="float64")
        if sr != 16000:
            x = librosa.resample(x, orig_sr=sr, target_sr=16000)
        dec.start_utt()
        dec.process_raw((np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
        dec.end_utt()
        h = dec.hyp()
        return h.hypstr if h else ""

    asr2 = vs.whisper_asr() if whisper else None
    return SimpleNamespace(sents=sents, voices=voices, wav=wav, emb=emb, emb2=emb2, cent=cent, cent2=cent2,
                           asr=asr, asr2=asr2)


JUDGED = ("sim", "sim_src", "ident", "sim2", "sim2_src", "ident2")  # per-output figures :func:`judge` averages


def judge(j: SimpleNamespace, path: str, source: str, target: str, text: str) -> dict:
    """Every judge's view of one output file of ``source`` converted toward ``target``: GE2E
    and CAM++ cosine to both voices' centroids and whether the target is the nearest voice
    (``sim``, ``sim_src``, ``ident``; ``sim2``... for CAM++), and the word edits of
    pocketsphinx and Whisper against ``text`` (``e_ps``, ``e_wh``; ``n`` reference words)."""
    import vc_score as vs
    ref = vs.words(text)
    g, c = vs.unit(j.emb(path)), vs.unit(j.emb2(path))
    return {"n": len(ref), "e_ps": vs.edits(ref, vs.words(j.asr(path))),
            "e_wh": vs.edits(ref, vs.words(j.asr2(path))) if j.asr2 else 0,
            "sim": g @ j.cent[target], "sim_src": g @ j.cent[source],
            "ident": max(j.voices, key=lambda v: g @ j.cent[v]) == target,
            "sim2": c @ j.cent2[target], "sim2_src": c @ j.cent2[source],
            "ident2": max(j.voices, key=lambda v: c @ j.cent2[v]) == target}


def means(rows: list[dict]) -> dict[str, float]:
    """The mean of each :data:`JUDGED` figure over ``rows`` of :func:`judge`."""
    return {k: float(np.mean([r[k] for r in rows])) for k in JUDGED}


def source_edits(j: SimpleNamespace, cache: dict, voice: str, i: int) -> tuple[int, int]:
    """The unconverted sentence ``i`` of ``voice``: its word edits by pocketsphinx and by Whisper
    (kept in ``cache``, keyed ``(voice, i)``)."""
    import vc_score as vs
    if (voice, i) not in cache:
        ref = vs.words(j.sents[i - 1])
        cache[voice, i] = (vs.edits(ref, vs.words(j.asr(j.wav(voice, i)))),
                           vs.edits(ref, vs.words(j.asr2(j.wav(voice, i)))) if j.asr2 else 0)
    return cache[voice, i]


def summary(rows: list[dict]) -> dict:
    """What a variant's rows of :func:`judge` (each with its source's ``src_ps`` / ``src_wh``
    edits, :func:`source_edits`) add up to: the :func:`means`, the pocketsphinx WER ratio, the
    Whisper WER of the outputs and of the sources, the number of sentences."""
    n = sum(r["n"] for r in rows)
    tot = {k: sum(r[k] for r in rows) for k in ("e_ps", "e_wh", "src_ps", "src_wh")}
    return {**{k: round(v, 3) for k, v in means(rows).items()},
            "wer_ratio": round(tot["e_ps"] / max(tot["src_ps"], 1), 3), "wer2": round(tot["e_wh"] / n, 3),
            "wer2_src": round(tot["src_wh"] / n, 3), "sentences": len(rows)}
