"""Live streaming conversion: a session over ``configs/stream.yaml`` (:class:`VoiceStream`),
its latency (:func:`stream_latency`), the choice of settings for a latency budget
(:mod:`.adaptive`), the ``vcgraph stream`` command (:mod:`.cli`), live audio (:mod:`.live`)
and measures of streamed audio (:mod:`.measure`).

Names are imported on first use: ``vcgraph --help`` loads the command module only.
"""
from __future__ import annotations

__all__ = ["STREAM_CONFIG", "STREAM_CONTENT_CONFIG", "Latency", "VoiceStream", "open_stream", "stream_latency"]


def __getattr__(name: str):
    if name in __all__:
        from . import session
        return getattr(session, name)
    raise AttributeError(f"module 'vcgraph_voice.stream' has no attribute {name!r}")
