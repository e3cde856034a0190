"""Exception types raised by vcgraph.

Everything vcgraph raises on purpose derives from :class:`VCGraphError`, so callers can catch
one class. User mistakes (bad YAML, unknown stage, bad input) are :class:`UserError` and are
printed by the CLI as one line without a traceback.
"""
from __future__ import annotations


class VCGraphError(Exception):
    """Base class of every error vcgraph raises on purpose."""


class UserError(VCGraphError):
    """A mistake the user can fix (configuration, command line, input data)."""


class ConfigError(UserError):
    """A graph or stage configuration is invalid.

    ``path`` is the dotted key path (``nodes.pitch.config.f0_min``), ``node`` the node name
    when there is one, and ``source`` is ``file:line`` when the YAML location is known.
    """

    def __init__(self, message: str, *, path: str | None = None, node: str | None = None,
                 source: str | None = None):
        self.message, self.path, self.node, self.source = message, path, node, source
        super().__init__(self._format())

    def _format(self) -> str:
        where = " ".join(p for p in (self.source, self.path and f"[{self.path}]") if p)
        return f"{where}: {self.message}" if where else self.message


class ConfigErrors(ConfigError):
    """Several configuration errors found in one validation pass."""

    def __init__(self, errors: list[ConfigError]):
        self.errors = list(errors)
        lines = [str(e) for e in self.errors]
        head = f"{len(lines)} configuration error{'s' if len(lines) != 1 else ''}"
        super().__init__(head + ":\n  " + "\n  ".join(lines))
        self.message = self.args[0]

    def _format(self) -> str:  # the message is built in __init__
        return self.message


class PluginError(UserError):
    """A plugin could not be loaded, or two plugins claim the same stage name."""


class StageConflictError(PluginError, ConfigError):
    """A graph uses a stage type name that two plugins register."""


class StageError(VCGraphError):
    """A stage failed while running. ``node`` names the graph node, ``kind`` the implementation."""

    def __init__(self, message: str, *, node: str | None = None, kind: str | None = None):
        self.node, self.kind = node, kind
        prefix = f"[{node}{'/' + kind if kind else ''}] " if node else ""
        super().__init__(prefix + message)
        self.message = message


class PipelineError(StageError):
    """A graph run failed: every implementation of a node failed (or none could run)."""


class InputError(PipelineError, UserError):
    """The data given to a run is unusable (empty or NaN audio, a wrong shape, a missing input).

    Stages raise it for bad input: the executor stops at once, since another implementation
    or the graph fallback would not fix the data.
    """


class CUDAKernelError(StageError):
    """A CUDA implementation (kernel) failed; the executor falls back to the next kind."""


class NodeTimeoutError(StageError):
    """An implementation ran past its node's ``timeout_s``; the executor tries the next kind."""


class TransientError(StageError):
    """A failure worth retrying with the same implementation (a busy device, a flaky resource)."""


def is_transient(exc: BaseException) -> bool:
    """True when the executor should retry ``exc`` before falling back."""
    return isinstance(exc, TransientError) or bool(getattr(exc, "transient", False))
