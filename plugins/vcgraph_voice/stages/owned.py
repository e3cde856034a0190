"""Stages that own their resources: built once in ``setup(kind, device)``, kept on the stage.

The executor calls ``setup`` once per kind, under its lock, before the kind first runs; a
stage called directly (tests, a notebook) sets itself up on first use through :meth:`ready`.
Subclasses put what they build in :meth:`build` (idempotent: a stage with several kinds is
built once per kind and shares what does not depend on the device). What they build is only
read afterwards, or guarded by its own lock, so threads may share one stage.
"""
from __future__ import annotations

import threading

from vcgraph.stage import RunContext, Stage, StageConfig


class OwnsResources(Stage):
    """Base of the voice stages that build models or tables."""

    def __init__(self, config: StageConfig):
        super().__init__(config)
        self._setup_lock = threading.RLock()
        self._built: set[tuple[str, str]] = set()

    def build(self, kind: str, device: str) -> None:
        """Build what ``kind`` on ``device`` needs (extend with ``super().build(...)``)."""

    def setup(self, kind: str, device: str) -> None:
        with self._setup_lock:
            if (kind, device) not in self._built:
                self.build(kind, device)
                self._built.add((kind, device))

    def ready(self, ctx: RunContext) -> None:
        """Set up for ``ctx``'s kind and device unless that was done."""
        if (ctx.kind, ctx.device) not in self._built:
            self.setup(ctx.kind, ctx.device)
