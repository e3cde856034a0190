"""Stage types: what a plugin registers.

A stage type is a subclass of :class:`Stage` that declares a ``name``, a pydantic ``Config``
model, typed input and output :class:`Port` s, and one method per implementation kind, marked
with :func:`implementation`::

    class Gain(Stage):
        '''Multiply a signal by a constant.'''
        name = "gain"
        class Config(StageConfig):
            factor: float = Field(1.0, ge=0, description="linear gain")
        inputs = {"signal": Port("array")}
        outputs = {"signal": Port("array")}

        @implementation("cpu")
        def run_cpu(self, ctx, signal):
            return {"signal": signal * self.config.factor}

One method may serve several kinds (``@implementation("cuda", "cpu")`` for torch code that
runs on ``ctx.device``). The executor calls an implementation with a :class:`RunContext` and the inputs as keyword
arguments; it returns a dict with one value per output port.
"""
from __future__ import annotations

import inspect
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict

#: Implementation kinds the executor knows, fastest first. Plugins may add others.
KNOWN_KINDS = ("cuda", "cpu", "simplified", "passthrough")


class StageConfig(BaseModel):
    """Base of every stage's config model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Port:
    """A typed input or output of a stage.

    ``type`` is a free-form name (``"audio"``, ``"f0"``, ``"any"``); two ports connect when
    their types are equal or either is ``"any"``. An ``optional`` input may stay unconnected
    and is then passed as ``None``.
    """

    type: str = "any"
    description: str = ""
    optional: bool = False


def types_compatible(produced: str, expected: str) -> bool:
    """Whether an output of type ``produced`` may feed an input of type ``expected``."""
    return produced == expected or "any" in (produced, expected)


@dataclass(frozen=True)
class Implementation:
    """One way to run a stage: its kind, the device it uses and the method to call."""

    kind: str
    device: str
    method_name: str


def implementation(*kinds: str, device: str | None = None) -> Callable:
    """Mark a :class:`Stage` method as the implementation of one or more kinds.

    ``@implementation("cpu")`` for one kind; ``@implementation("cuda", "cpu")`` when one body
    serves several (torch code that runs on ``ctx.device``). ``device`` defaults to
    ``"cuda"`` for the ``cuda`` kind and ``"cpu"`` otherwise.
    """
    if not kinds or not all(isinstance(k, str) and k for k in kinds):
        raise TypeError("implementation() takes one or more kind names, e.g. @implementation('cuda', 'cpu')")

    def mark(fn: Callable) -> Callable:
        fn.__vcgraph_impls__ = tuple(Implementation(kind, device or ("cuda" if kind == "cuda" else "cpu"),
                                                    fn.__name__) for kind in kinds)
        return fn

    return mark


@dataclass
class RunContext:
    """What an implementation gets besides its inputs.

    ``state`` is private to one node of one run — or of one stream, where it lives across
    blocks — so stateful stages never share mutable data between concurrent runs. On a node
    with ``timeout_s``, each call gets a copy, kept only when the call succeeds in time.
    """

    node: str
    kind: str
    device: str
    state: dict = field(default_factory=dict)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("vcgraph.stage"))
    #: set when the node has a ``timeout_s`` and this call ran past it: a long loop may check
    #: :meth:`cancelled` and stop early (its result is discarded anyway)
    cancel_event: threading.Event | None = None
    #: the node's output ports that something reads (another node or a graph output); ``None``
    #: when the caller does not say (a stage called directly). A stage may skip the work of an
    #: output nobody reads (it must still return every declared output; ``None`` will do)
    outputs_read: frozenset[str] | None = None

    def cancelled(self) -> bool:
        """True when the executor gave up waiting for this call (see ``timeout_s``)."""
        return self.cancel_event is not None and self.cancel_event.is_set()


class Stage:
    """Base class of stage types. See the module docstring for an example."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[StageConfig]] = StageConfig
    inputs: ClassVar[dict[str, Port]] = {}
    outputs: ClassVar[dict[str, Port]] = {}
    _implementations: ClassVar[dict[str, Implementation]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        found: dict[str, Implementation] = {}
        for klass in reversed(cls.__mro__):
            for attr in vars(klass).values():
                for impl in getattr(attr, "__vcgraph_impls__", ()):
                    found[impl.kind] = impl
        cls._implementations = found

    def __init__(self, config: StageConfig):
        self.config = config

    # -- description -----------------------------------------------------------------------
    @classmethod
    def implementations(cls) -> dict[str, Implementation]:
        """The implementation kinds this stage offers, by kind."""
        return dict(cls._implementations)

    @classmethod
    def description(cls) -> str:
        """First line of the class docstring."""
        return (inspect.getdoc(cls) or "").strip().splitlines()[0] if cls.__doc__ else ""

    @classmethod
    def unavailable_reason(cls, kind: str) -> str | None:
        """Why ``kind`` cannot run on this machine, or None when it can.

        The default checks that CUDA is present for implementations on a CUDA device;
        override to check optional packages or model files.
        """
        impl = cls._implementations.get(kind)
        if impl is None:
            return f"stage '{cls.name}' has no '{kind}' implementation"
        if impl.device.startswith("cuda"):
            from .devices import cuda_available
            if not cuda_available():
                return "CUDA is not available on this machine"
        return None

    @classmethod
    def ports(cls, config: StageConfig) -> tuple[dict[str, Port], dict[str, Port]]:
        """The (inputs, outputs) of a node with ``config``: the class's ports, unless a stage
        type declares them in its config (a model stage: the model's tensors)."""
        return cls.inputs, cls.outputs

    @classmethod
    def check(cls, config: StageConfig) -> list[tuple[str, str]]:
        """Checks before any run that need more than the config's fields (a file's contents):
        ``(config key, message)`` for each problem, reported like config errors."""
        return []

    # -- lifecycle -------------------------------------------------------------------------
    def setup(self, kind: str, device: str) -> None:
        """Load models or precompute tables for ``kind`` (called once, before its first run)."""

    def call(self, kind: str, ctx: RunContext, inputs: dict[str, Any]) -> dict[str, Any]:
        """Run implementation ``kind`` on ``inputs``."""
        return getattr(self, self._implementations[kind].method_name)(ctx, **inputs)
