"""Content labels per 10 ms frame from pocketsphinx (speaker-independent-ish phone + HMM state).

Recipe: recognise words with the shipped English model, force-align the recognised words
(-> words -> phones -> HMM states with start/duration in 10 ms frames); where recognition
returns nothing or the aligner raises, fall back to all-phone decoding with the shipped
phone language model (each phone segment split in three equal "states").
"""
from __future__ import annotations

import os
import threading

import numpy as np

FRAME_S = 0.010  # pocketsphinx frame shift
PHONES = ("SIL AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T "
          "TH UH UW V W Y Z ZH").split()
PHONE_ID = {p: i for i, p in enumerate(PHONES)}
N_STATES = 3


def _phone_id(name: str) -> int:
    return PHONE_ID.get(name.upper().split("_")[0], 0)  # noise/filler phones count as silence


def to_int16_16k(audio: np.ndarray, sr: int) -> bytes:
    x = np.asarray(audio, dtype=np.float32)
    if sr != 16000:
        from scipy.signal import resample_poly
        g = np.gcd(int(sr), 16000)
        x = resample_poly(x, 16000 // g, int(sr) // g).astype(np.float32)
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16).tobytes()


class PhoneLabeler:
    """Holds the pocketsphinx decoders (created lazily, used under a lock)."""

    def __init__(self, mode: str = "align", fast: bool = False):
        if mode not in ("align", "allphone"):
            raise ValueError(f"unknown label mode {mode!r}")
        self.mode = mode
        # fast: narrower search for word recognition (about 4x quicker, slightly worse words)
        self.fast = bool(fast)
        self._lock = threading.Lock()
        self._rec = self._ali = self._allp = None

    # -- decoders -----------------------------------------------------------------------
    def _decoders(self):
        from pocketsphinx import Decoder, get_model_path
        if self._allp is None:
            model = get_model_path()
            self._allp = Decoder(samprate=16000, logfn=os.devnull,
                                 allphone=os.path.join(model, "en-us", "en-us-phone.lm.bin"),
                                 lw=2.0, pip=0.3, beam=1e-200, pbeam=1e-20)
        if self.mode == "align" and self._rec is None:
            extra = dict(fwdflat=False, maxhmmpf=2000) if self.fast else {}
            self._rec = Decoder(samprate=16000, logfn=os.devnull, **extra)
            self._ali = Decoder(samprate=16000, lm=None, logfn=os.devnull)

    @staticmethod
    def _decode(dec, raw: bytes) -> None:
        dec.start_utt()
        dec.process_raw(raw, full_utt=True)
        dec.end_utt()

    def _aligned(self, raw: bytes):
        """[(phone, state_index, start, duration), ...] or None when not available."""
        self._decode(self._rec, raw)
        hyp = self._rec.hyp()
        text = hyp.hypstr.strip() if hyp is not None else ""
        if not text:
            return None
        try:
            self._ali.set_align_text(text)
            self._decode(self._ali, raw)
            self._ali.set_alignment()
            self._decode(self._ali, raw)
            out = []
            # read everything into plain tuples in one pass (touching the objects later crashes)
            for word in self._ali.get_alignment():
                for phone in word:
                    pname = str(phone.name)
                    for si, state in enumerate(phone):
                        try:
                            senone = int(state.name)
                        except (TypeError, ValueError):
                            senone = -1
                        out.append((pname, min(si, N_STATES - 1), int(state.start), int(state.duration), senone))
            return out or None
        except Exception:  # the aligner raises on some utterances
            return None

    def _allphone(self, raw: bytes):
        self._decode(self._allp, raw)
        segs = [(str(seg.word), int(seg.start_frame), int(seg.end_frame)) for seg in self._allp.seg()]
        out = []
        for i, (name, a, b) in enumerate(segs):
            n = max(b - a + 1, 1)
            prev = _phone_id(segs[i - 1][0]) if i > 0 else 0
            nxt = _phone_id(segs[i + 1][0]) if i + 1 < len(segs) else 0
            cuts = [a + (n * j) // N_STATES for j in range(N_STATES + 1)]
            for j in range(N_STATES):
                if cuts[j + 1] > cuts[j]:
                    # no senone here: a triphone-state code stands in for the context label
                    ctx = 1_000_000 + ((prev * 64 + _phone_id(name)) * 64 + nxt) * N_STATES + j
                    out.append((name, j, cuts[j], cuts[j + 1] - cuts[j], ctx))
        return out

    # -- public -------------------------------------------------------------------------
    def labels(self, audio: np.ndarray, sr: int):
        """Per-10 ms-frame ``phone_id``, ``state_index`` and ``context`` (senone id, or a
        triphone-state code after all-phone decoding) int arrays, and the label source
        ("align" or "allphone")."""
        raw = to_int16_16k(audio, sr)
        n = int(np.ceil(len(raw) / 2 / 16000 / FRAME_S)) + 1
        with self._lock:
            self._decoders()
            segs, how = None, "allphone"
            if self.mode == "align":
                segs = self._aligned(raw)
                how = "align"
            if segs is None:
                segs, how = self._allphone(raw), "allphone"
        phone = np.zeros(n, np.int16)
        state = np.ones(n, np.int16)  # silence: middle state
        ctx = np.full(n, -1, np.int64)
        for name, si, start, dur, c in segs:
            a, b = max(start, 0), min(start + dur, n)
            if b > a:
                phone[a:b] = _phone_id(name)
                state[a:b] = si
                ctx[a:b] = c
        return phone, state, ctx, how

