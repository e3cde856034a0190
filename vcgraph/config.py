"""Reading graph files: YAML through omegaconf, into a pydantic :class:`GraphSpec`.

A graph file looks like::

    vcgraph: 1
    name: my-graph
    settings: {use_cuda: true, max_retries: 2, fallback_on_error: false, timeout_s: 30}
    inputs:
      audio: {type: audio}
    nodes:
      louder:
        stage: gain
        config: {factor: 2.0}
        inputs: {signal: inputs.audio}
    outputs:
      audio: louder.signal

omegaconf gives interpolation (``${settings.sample_rate}``) and dotted overrides
(``nodes.louder.config.factor=3``). Every error names the key path and, where the file is
known, ``file:line``.

A graph file is data, never code: only references to other keys are interpolated; resolver
calls (``${oc.env:HOME}``, ``${oc.decode:...}``, any ``${name:...}``) are refused, so a graph
from someone else cannot read the environment. YAML aliases that expand beyond
:data:`MAX_NODES` values, nesting deeper than :data:`MAX_DEPTH` and self-referencing
structures are refused before omegaconf copies them.
"""
from __future__ import annotations

import os
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError, ConfigErrors
from .stage import KNOWN_KINDS

SPEC_VERSION = 1
MAX_NODES = 100_000  # values in a graph file, YAML aliases expanded
MAX_DEPTH = 64


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Settings(_Strict):
    """Graph-wide execution settings."""

    use_cuda: bool = Field(True, description="prefer CUDA implementations when a GPU is present")
    max_retries: int = Field(3, ge=0, le=100, description="retries of a transient failure per implementation")
    fallback_on_error: bool = Field(True, description="when every implementation of a node fails, "
                                    "run the graph's `fallback` node to produce a safe output")
    implementations: list[str] = Field(list(KNOWN_KINDS), min_length=1,
                                       description="implementation kinds to try, in order")
    timeout_s: float | None = Field(None, gt=0, le=86400, description="seconds one implementation of a node "
                                    "may run before it counts as failed and the next kind is tried (default: no limit)")


class InputSpec(_Strict):
    """A graph input: a value the caller passes to ``run``."""

    type: str = "any"
    description: str = ""
    optional: bool = False


class NodeSpec(_Strict):
    """One node: an instance of a stage type with its config and input wiring."""

    stage: str
    config: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, str] = Field(default_factory=dict)
    implementations: list[str] | None = Field(None, min_length=1,
                                              description="this node's own order of kinds")
    timeout_s: float | None = Field(None, gt=0, le=86400, description="this node's own timeout "
                                    "(see settings.timeout_s)")
    description: str = ""


class GraphSpec(_Strict):
    """A whole graph file, before stage types are resolved."""

    vcgraph: int = Field(SPEC_VERSION, description="graph file format version")
    name: str = "graph"
    description: str = ""
    vars: dict[str, Any] = Field(default_factory=dict, description="values for interpolation, "
                                 "e.g. ${vars.sample_rate}; overridable like any key")
    settings: Settings = Field(default_factory=Settings)
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    nodes: dict[str, NodeSpec] = Field(min_length=1)
    outputs: dict[str, str] = Field(min_length=1)
    fallback: NodeSpec | None = Field(None, description="node run on the graph inputs when the "
                                      "graph fails and settings.fallback_on_error is true")
    #: where each key path was found in the file (not part of the format)
    locations: dict[str, str] = Field(default_factory=dict, exclude=True)

    def location(self, path: str) -> str | None:
        """``file:line`` of the longest known prefix of ``path``."""
        parts = path.split(".")
        while parts:
            hit = self.locations.get(".".join(parts))
            if hit:
                return hit
            parts.pop()
        return None


def _yaml_locations(text: str, filename: str) -> dict[str, str]:
    """Map each dotted key path in a YAML document to ``filename:line``."""
    out: dict[str, str] = {}
    try:
        root = yaml.compose(text)
    except (yaml.YAMLError, RecursionError):
        return out

    def walk(node: Any, prefix: str, depth: int) -> None:
        # aliases share nodes: stop at the limits the data check enforces (it says why)
        if depth > MAX_DEPTH or len(out) > MAX_NODES:
            return
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                path = f"{prefix}.{key.value}" if prefix else str(key.value)
                out[path] = f"{filename}:{key.start_mark.line + 1}"
                walk(value, path, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                out[f"{prefix}.{i}"] = f"{filename}:{item.start_mark.line + 1}"
                walk(item, f"{prefix}.{i}", depth + 1)

    walk(root, "", 0)
    return out


def _as_dotlist(overrides: list[str] | dict[str, Any] | None) -> list[str]:
    if not overrides:
        return []
    if isinstance(overrides, dict):
        return [f"{k}={v}" for k, v in overrides.items()]
    for item in overrides:
        key, eq, _ = str(item).partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"override '{item}' is not of the form key.path=value")
    return list(overrides)


def load_graph_spec(source: str | os.PathLike | dict, overrides: list[str] | dict | None = None) -> GraphSpec:
    """Read a graph from a YAML path or a dict, apply ``overrides``, validate its shape.

    ``overrides`` are omegaconf dotted assignments (``["nodes.a.config.x=1"]`` or a dict).
    Stage configs are validated later, against their stage types (see :mod:`vcgraph.graph`).
    """
    locations: dict[str, str] = {}
    try:
        if isinstance(source, dict):
            _check_plain_data(source, locations)
            conf = OmegaConf.create(source)
        else:
            path = os.fspath(source)
            if not os.path.exists(path):
                raise ConfigError(f"graph file not found: {path}")
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            locations = _yaml_locations(text, path)
            try:
                raw = yaml.safe_load(text) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(_yaml_error(path, exc)) from None
            except RecursionError:
                raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None
            _check_plain_data(raw, locations, path)
            conf = OmegaConf.create(raw)
        dotlist = _as_dotlist(overrides)
        _check_override_targets(conf, dotlist)
        for item in dotlist:
            key, _, value = item.partition("=")
            locations[key.strip()] = f"--set {item}"
            _refuse_resolvers(value, key.strip(), f"--set {item}")
            try:
                conf = OmegaConf.merge(conf, OmegaConf.from_dotlist([item]))
            except yaml.YAMLError as exc:  # the value part is not valid YAML
                msg = str(exc).splitlines()[0]
                raise ConfigError(f"override '{item}': cannot parse the value: {msg}",
                                  path=item.partition("=")[0]) from None
        try:
            data = OmegaConf.to_container(conf, resolve=True)
        except RecursionError:  # omegaconf follows a cycle of interpolations until the stack ends
            raise ConfigError("an interpolation refers to itself through other keys (a cycle, e.g. "
                              "'${nodes}' inside a value that a node's config interpolates)") from None
    except OmegaConfBaseException as exc:
        msg = str(exc).splitlines()[0]
        key = getattr(exc, "full_key", None)
        raise ConfigError(msg, path=key or None, source=locations.get(key) if key else None) from None
    if not isinstance(data, dict):
        raise ConfigError("a graph file must be a YAML mapping")
    try:
        spec = GraphSpec.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            path = ".".join(str(p) for p in err["loc"])
            src = None
            for n in range(len(err["loc"]), 0, -1):
                src = locations.get(".".join(str(p) for p in err["loc"][:n]))
                if src:
                    break
            errors.append(ConfigError(_pydantic_message(err), path=path, source=src))
        raise (errors[0] if len(errors) == 1 else ConfigErrors(errors)) from None
    if spec.vcgraph != SPEC_VERSION:
        raise ConfigError(f"unsupported graph format version {spec.vcgraph} (this vcgraph reads {SPEC_VERSION})",
                          path="vcgraph", source=locations.get("vcgraph"))
    spec.locations = locations
    return spec


def _yaml_error(path: str, exc: yaml.YAMLError) -> str:
    """One line: ``file:line:column: not valid YAML: what`` (the YAML parser's own words)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path
    words = "; ".join(w for w in (getattr(exc, "problem", None), getattr(exc, "context", None)) if w)
    return f"{where}: not valid YAML: {words or str(exc).splitlines()[0]}"


def _check_plain_data(data: Any, locations: dict[str, str], filename: str | None = None) -> None:
    """Refuse what omegaconf would choke on or should never do: a structure larger than
    :data:`MAX_NODES` once aliases are expanded, deeper than :data:`MAX_DEPTH` (a
    self-referencing alias is infinitely deep), or a resolver call in a string."""
    count = 0

    def walk(value: Any, path: str, depth: int) -> None:
        nonlocal count
        count += 1
        if count > MAX_NODES:
            raise ConfigError(f"the graph holds more than {MAX_NODES} values (YAML aliases expanded)",
                              source=filename)
        if depth > MAX_DEPTH:
            short = ".".join(path.split(".")[:6]) + ".…"
            raise ConfigError(f"nested deeper than {MAX_DEPTH} levels (or an alias refers to itself)",
                              path=short, source=_nearest(locations, path) or filename)
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, (str, int, float, bool)) and key is not None:
                    raise ConfigError(f"key {key!r} is not a plain name", path=path or None,
                                      source=_nearest(locations, path))
                walk(item, f"{path}.{key}" if path else str(key), depth + 1)
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                walk(item, f"{path}.{i}", depth + 1)
        elif isinstance(value, str):
            _refuse_resolvers(value, path, _nearest(locations, path))

    walk(data, "", 0)


def _nearest(locations: dict[str, str], path: str) -> str | None:
    parts = path.split(".") if path else []
    while parts:
        hit = locations.get(".".join(parts))
        if hit:
            return hit
        parts.pop()
    return None


def _refuse_resolvers(text: str, path: str, source: str | None) -> None:
    """A :class:`ConfigError` when ``text`` calls an omegaconf resolver (``${name:...}``)."""
    if "${" not in text:
        return
    from omegaconf import grammar_parser
    try:
        tree = grammar_parser.parse(text)
    except Exception:  # noqa: BLE001 - malformed interpolations are reported when resolved
        return
    todo = [tree]
    while todo:
        node = todo.pop()
        if type(node).__name__ == "InterpolationResolverContext":
            raise ConfigError(f"'{node.getText()}': resolver interpolations are not allowed in a graph "
                              "(only references such as ${vars.sample_rate})", path=path or None, source=source)
        todo.extend(node.getChildren() if hasattr(node, "getChildren") else [])


def _check_override_targets(conf: Any, dotlist: list[str]) -> None:
    """An override of ``nodes.NAME.*`` (or ``fallback.*``) must name a node the graph has,
    unless the overrides create it (they set its ``stage``): a typo otherwise turns into a
    puzzling "required key is missing" at a line of the file."""
    if not isinstance(conf, DictConfig):
        return  # not a mapping at all: said later
    keys = [item.partition("=")[0].strip() for item in dotlist]
    nodes = conf.get("nodes", None)
    names = [str(n) for n in nodes.keys()] if isinstance(nodes, DictConfig) else []
    for item, key in zip(dotlist, keys):
        parts = key.split(".")
        if parts[0] == "nodes" and len(parts) > 2 and parts[1] not in names \
                and f"nodes.{parts[1]}.stage" not in keys:
            raise ConfigError(f"the graph has no node '{parts[1]}' (nodes: {', '.join(names) or 'none'})",
                              path=".".join(parts[:2]), source=f"--set {item}")
        if parts[0] == "fallback" and len(parts) > 1 and conf.get("fallback", None) is None \
                and "fallback.stage" not in keys:
            raise ConfigError("the graph has no fallback node (set fallback.stage to add one)",
                              path="fallback", source=f"--set {item}")


def _pydantic_message(err: dict) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    return f"{err['msg']} (got {err.get('input')!r})"
