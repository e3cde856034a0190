"""The conversion methods, one file each: ``quality.py``, ``fast.py``, ``content.py``.

A method's file holds its typed analysis and profile part, its :class:`~.base.Method`
(``analyze`` / ``enroll`` / ``synthesize``) and its two stage types; ``base.py`` is what they
share and ``embedding_only.py`` the path taken toward a bare embedding. A module here that
defines ``METHOD`` and ``STAGES`` is a method: the plugin registers its stages and enrolment
stores its profile part under ``METHOD.name`` (see the plugin README, "Adding a method").
"""
from __future__ import annotations

import importlib
import pkgutil

from ..errors import VoiceInputError

_NOT_METHODS = {"base", "embedding_only"}


def method_names() -> tuple[str, ...]:
    """The names of the methods in this folder (their module names), sorted."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules(__path__)
                        if not m.name.startswith("_") and m.name not in _NOT_METHODS))


def _module(name: str):
    return importlib.import_module(f"{__name__}.{name}")


def get_method(name: str):
    """The :class:`~.base.Method` class called ``name``."""
    if name not in method_names():
        raise VoiceInputError(f"unknown conversion method '{name}' (known: {', '.join(method_names())})")
    return _module(name).METHOD


def stage_types() -> list:
    """Every method's stage types (feature stage, synthesis stage), in method order."""
    return [stage for name in method_names() for stage in _module(name).STAGES]
