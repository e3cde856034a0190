"""Live streaming conversion: a session over ``configs/stream.yaml`` (:class:`VoiceStream`),
its latency (:func:`stream_latency`), the choice of settings for a latency budget
(:mod:`.adaptive`), the ``vcgraph stream`` command (:mod:`.cli`) and live audio (:mod:`.live`)."""
from __future__ import annotations

from .session import STREAM_CONFIG, Latency, VoiceStream, open_stream, stream_latency

__all__ = ["STREAM_CONFIG", "Latency", "VoiceStream", "open_stream", "stream_latency"]
