"""vcgraph-echo: an example third-party vcgraph plugin.

Registered through the ``vcgraph`` entry point group (``echo = "vcgraph_echo"``); provides the
stage types ``echo`` (feedback delay) and ``gain``.
"""
from __future__ import annotations

from vcgraph.hookspecs import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_stages(register):
    from .stages import Echo, Gain
    register(Echo)
    register(Gain)
