"""A validated graph: stage types resolved, configs checked, wiring typed, nodes sorted.

:func:`build_graph` turns a :class:`~vcgraph.config.GraphSpec` into a :class:`Graph`, or
raises :class:`~vcgraph.errors.ConfigErrors` listing every problem at once, each with its node
and key. A graph is plain data: running it is the executor's job.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pydantic import ValidationError

from .config import GraphSpec, InputSpec, NodeSpec
from .dag import CycleError, dependents, reachable, topological_order
from .errors import ConfigError, ConfigErrors, StageConflictError
from .plugins import Registry, get_registry
from .stage import Port, Stage, StageConfig, types_compatible

GRAPH_INPUTS = "inputs"


class Ref(NamedTuple):
    """A reference to a value: a graph input (``inputs.audio``) or a node output (``pre.audio``)."""

    node: str  # GRAPH_INPUTS for graph inputs
    port: str

    def __str__(self) -> str:
        return f"{self.node}.{self.port}"


def parse_ref(text: str) -> Ref:
    """Parse ``node.port`` or ``inputs.name``."""
    node, dot, port = str(text).partition(".")
    if not dot or not node or not port or "." in port:
        raise ValueError(f"'{text}' is not of the form node.port or inputs.name")
    return Ref(node, port)


@dataclass
class Node:
    """A node of a built graph."""

    name: str
    stage_cls: type[Stage]
    config: StageConfig
    inputs: dict[str, Ref]
    kinds: tuple[str, ...]  # implementation kinds to try, in order
    plugin: str = ""
    timeout_s: float | None = None  # seconds one implementation may run (None: no limit)
    input_ports: dict[str, Port] = field(default_factory=dict)  # the stage's, for this config
    output_ports: dict[str, Port] = field(default_factory=dict)


@dataclass
class Graph:
    """A validated DAG of nodes in dependency order, with its outputs and optional fallback."""

    spec: GraphSpec
    nodes: dict[str, Node]  # in dependency (topological) order
    outputs: dict[str, Ref]
    fallback: Node | None = None
    warnings: list[str] = field(default_factory=list)
    registry: Registry | None = field(default=None, repr=False)  # where the stage types came from

    @property
    def name(self) -> str:
        return self.spec.name

    def consumer_counts(self) -> dict[Ref, int]:
        """How many consumers (node inputs and graph outputs) read each value."""
        counts: dict[Ref, int] = {}
        for node in self.nodes.values():
            for ref in node.inputs.values():
                counts[ref] = counts.get(ref, 0) + 1
        for ref in self.outputs.values():
            counts[ref] = counts.get(ref, 0) + 1
        return counts

    def deps(self) -> dict[str, list[str]]:
        """Node name → the nodes it reads from (graph inputs left out), in run order."""
        return {n: [r.node for r in node.inputs.values() if r.node in self.nodes] for n, node in self.nodes.items()}

    def upstream_of(self, names) -> list[str]:
        """``names`` and every node they depend on, in run order."""
        hit = reachable(names, self.deps())
        return [n for n in self.nodes if n in hit]

    def downstream_of(self, name: str) -> list[str]:
        """``name`` and every node that depends on it, in run order."""
        hit = reachable([name], dependents(self.deps()))
        return [n for n in self.nodes if n in hit]

    def slice(self, outputs: dict[str, str] | None = None, from_nodes: list[str] | None = None) -> GraphSpec:
        """The spec of a part of this graph, as Kedro slices pipelines.

        ``outputs`` (``name → node.port``; default: the graph's) keeps only the nodes they
        need. ``from_nodes`` keeps only those nodes and what depends on them; a value they
        read from a node left out becomes a graph input named ``NODE__PORT`` (pass it, e.g.
        from an earlier run, to re-run from a failed node). The fallback is dropped.
        """
        outs = dict(outputs) if outputs is not None else {n: str(r) for n, r in self.outputs.items()}
        for name, text in outs.items():
            ref = parse_ref(text)
            if ref.node != GRAPH_INPUTS and ref.node not in self.nodes:
                raise ConfigError(f"'{text}' names no node (nodes: {', '.join(self.nodes)})", path=f"outputs.{name}")
        keep = set(self.upstream_of([parse_ref(t).node for t in outs.values() if parse_ref(t).node in self.nodes]))
        if from_nodes is not None:
            unknown = [n for n in from_nodes if n not in self.nodes]
            if unknown:
                raise ConfigError(f"no node(s) {', '.join(unknown)} (nodes: {', '.join(self.nodes)})")
            keep &= reachable(from_nodes, dependents(self.deps()))
        spec = self.spec
        inputs = {}
        nodes = {}
        for name in (n for n in spec.nodes if n in keep):
            nspec = spec.nodes[name]
            wiring = {}
            for port, text in nspec.inputs.items():
                ref = parse_ref(text)
                if ref.node != GRAPH_INPUTS and ref.node not in keep:
                    cut = f"{ref.node}__{ref.port}"
                    inputs[cut] = InputSpec(type=self.nodes[ref.node].output_ports[ref.port].type,
                                            description=f"the value of {text}")
                    text = f"inputs.{cut}"
                wiring[port] = text
            nodes[name] = nspec.model_copy(update={"inputs": wiring})
        read = {parse_ref(t).port for n in nodes.values() for t in n.inputs.values() if t.startswith("inputs.")}
        read |= {parse_ref(t).port for t in outs.values() if t.startswith("inputs.")}
        inputs = {k: v for k, v in spec.inputs.items() if k in read} | inputs
        part = spec.model_copy(update={"nodes": nodes, "outputs": outs, "fallback": None, "inputs": inputs})
        part.locations = spec.locations
        return part

    # -- drawing ---------------------------------------------------------------------------
    def edges(self) -> list[tuple[str, str, str]]:
        """Every edge as ``(source, target, label)``: ``in:NAME`` for a graph input,
        ``out:NAME`` for a graph output, node names otherwise; labelled with the port."""
        def src(ref: Ref) -> str:
            return f"in:{ref.port}" if ref.node == GRAPH_INPUTS else ref.node
        edges = [(src(ref), node.name, port) for node in self.nodes.values() for port, ref in node.inputs.items()]
        edges += [(src(ref), f"out:{name}", ref.port) for name, ref in self.outputs.items()]
        return edges

    def draw(self, fmt: str = "mermaid") -> str:
        """The DAG as Mermaid flowchart text or Graphviz DOT text."""
        boxes = [(f"in:{n}", n, "io") for n in self.spec.inputs]
        boxes += [(n.name, n.stage_cls.name, "node") for n in self.nodes.values()]
        boxes += [(f"out:{n}", n, "io") for n in self.outputs]
        if fmt == "mermaid":
            def ident(key: str) -> str:
                return key.replace(":", "_", 1) if key.startswith(("in:", "out:")) else key
            lines = ["flowchart LR"]
            lines += [f'    {ident(key)}(["{label}"])' if shape == "io" else f'    {key}["{key}<br/><i>{label}</i>"]'
                      for key, label, shape in boxes]
            lines += [f"    {ident(a)} -->|{label}| {ident(b)}" for a, b, label in self.edges()]
        elif fmt == "dot":
            lines = [f'digraph "{self.name}" {{', "    rankdir=LR;"]
            lines += [f'    "{key}" [shape=ellipse, label="{label}"];' if shape == "io"
                      else f'    "{key}" [shape=box, label="{key}\\n({label})"];' for key, label, shape in boxes]
            lines += [f'    "{a}" -> "{b}" [label="{label}"];' for a, b, label in self.edges()]
            lines.append("}")
        else:
            raise ValueError(f"unknown drawing format '{fmt}' (formats: mermaid, dot)")
        return "\n".join(lines) + "\n"

    def to_mermaid(self) -> str:
        """The DAG as Mermaid flowchart text."""
        return self.draw("mermaid")

    def to_dot(self) -> str:
        """The DAG as Graphviz DOT text."""
        return self.draw("dot")


class _Collector:
    """Collects configuration errors with their YAML locations."""

    def __init__(self, spec: GraphSpec):
        self.spec, self.errors = spec, []

    def add(self, message: str, path: str, node: str | None = None) -> None:
        self.errors.append(ConfigError(message, path=path, node=node, source=self.spec.location(path)))


def build_graph(spec: GraphSpec, registry: Registry | None = None) -> Graph:
    """Resolve and validate ``spec``; raise :class:`ConfigErrors` listing every problem."""
    registry = registry or get_registry()
    _refuse_conflicts(spec, registry)
    errs = _Collector(spec)
    settings = spec.settings
    nodes: dict[str, Node] = {}

    for name, nspec in spec.nodes.items():
        if name == GRAPH_INPUTS or "." in name:
            errs.add(f"'{name}' cannot be a node name", f"nodes.{name}", name)
            continue
        node = _build_node(name, nspec, f"nodes.{name}", registry, settings, errs)
        if node is not None:
            nodes[name] = node

    def output_port(ref: Ref) -> Port | None:
        if ref.node == GRAPH_INPUTS:
            inp = spec.inputs.get(ref.port)
            return Port(inp.type, optional=inp.optional) if inp else None
        node = nodes.get(ref.node)
        return node.output_ports.get(ref.port) if node else None

    def check_ref(text: str, path: str, node_name: str | None, expected: Port | None,
                  inputs_only: bool = False) -> Ref | None:
        try:
            ref = parse_ref(text)
        except ValueError as exc:
            errs.add(str(exc), path, node_name)
            return None
        if ref.node == GRAPH_INPUTS:
            if ref.port not in spec.inputs:
                known = ", ".join(spec.inputs) or "none"
                errs.add(f"'{text}' names no graph input (inputs: {known})", path, node_name)
                return None
        elif inputs_only:
            errs.add(f"'{text}': the fallback node may only read graph inputs", path, node_name)
            return None
        elif ref.node not in spec.nodes:
            errs.add(f"'{text}' names no node (nodes: {', '.join(spec.nodes)})", path, node_name)
            return None
        elif ref.node not in nodes:
            return None  # that node already has an error
        elif ref.port not in nodes[ref.node].output_ports:
            ports = ", ".join(nodes[ref.node].output_ports) or "none"
            errs.add(f"node '{ref.node}' has no output '{ref.port}' (outputs: {ports})", path, node_name)
            return None
        produced = output_port(ref)
        if expected is not None and produced is not None and not types_compatible(produced.type, expected.type):
            errs.add(f"type mismatch: '{text}' is {produced.type}, but this input takes {expected.type}",
                     path, node_name)
        return ref

    for name, node in nodes.items():
        wiring = spec.nodes[name].inputs
        _wire(node, wiring, f"nodes.{name}.inputs", errs, check_ref)

    outputs: dict[str, Ref] = {}
    for out_name, text in spec.outputs.items():
        ref = check_ref(text, f"outputs.{out_name}", None, None)
        if ref is not None:
            outputs[out_name] = ref

    fallback = None
    if spec.fallback is not None:
        fallback = _build_node("fallback", spec.fallback, "fallback", registry, settings, errs)
        if fallback is not None:
            _wire(fallback, spec.fallback.inputs, "fallback.inputs", errs,
                  lambda *a: check_ref(*a, inputs_only=True))
            missing = [o for o in spec.outputs if o not in fallback.output_ports]
            if missing:
                errs.add(f"the fallback stage '{fallback.stage_cls.name}' has no output for graph "
                         f"output(s) {', '.join(missing)}", "fallback.stage", "fallback")

    order = _topological_order(nodes, errs)
    if errs.errors:
        raise errs.errors[0] if len(errs.errors) == 1 else ConfigErrors(errs.errors)

    graph = Graph(spec, {n: nodes[n] for n in order}, outputs, fallback, registry=registry)
    graph.warnings = _unused(graph)
    return graph


def _refuse_conflicts(spec: GraphSpec, registry: Registry) -> None:
    """A graph that uses a stage name two plugins register cannot be built: say which."""
    registry.stages  # collects the conflicts
    nodes = dict(spec.nodes, **({"fallback": spec.fallback} if spec.fallback else {}))
    users = [(name, n.stage) for name, n in nodes.items() if n.stage in registry.conflicts]
    if users:
        name, stage = users[0]
        path = "fallback.stage" if name == "fallback" and spec.fallback is not None else f"nodes.{name}.stage"
        try:
            registry.stage(stage)
        except StageConflictError as exc:
            also = [n for n, s in users[1:]]
            more = f" (also used by {', '.join(also)})" if also else ""
            raise StageConflictError(exc.message + more, path=path, node=name,
                                     source=spec.location(path)) from None


def _build_node(name: str, nspec: NodeSpec, path: str, registry: Registry, settings, errs: _Collector) -> Node | None:
    try:
        stage_cls = registry.stage(nspec.stage)
    except ConfigError as exc:
        errs.add(exc.message, f"{path}.stage", name)
        return None
    try:
        config = stage_cls.Config.model_validate(nspec.config)
    except ValidationError as exc:
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            errs.add(_config_message(err, stage_cls), f"{path}.config.{key}" if key else f"{path}.config", name)
        return None
    problems = stage_cls.check(config)
    for key, message in problems:
        errs.add(message, f"{path}.config.{key}" if key else f"{path}.config", name)
    if problems:
        return None
    offered = stage_cls.implementations()
    if nspec.implementations is not None:
        for i, kind in enumerate(nspec.implementations):
            if kind not in offered:
                errs.add(f"stage '{stage_cls.name}' has no '{kind}' implementation "
                         f"(it has: {', '.join(offered)})", f"{path}.implementations.{i}", name)
    wanted = nspec.implementations or settings.implementations
    # cuda stays in the order even when settings.use_cuda is off: the executor skips it and
    # says why in the run report, and Pipeline(use_cuda=True) can still turn it on
    kinds = tuple(k for k in wanted if k in offered)
    if not [k for k in kinds if settings.use_cuda or k != "cuda"] and nspec.implementations is None:
        errs.add(f"stage '{stage_cls.name}' offers none of the kinds {list(wanted)} "
                 f"(it has: {', '.join(offered)}); set this node's `implementations`", path, name)
        return None
    timeout = nspec.timeout_s if nspec.timeout_s is not None else settings.timeout_s
    in_ports, out_ports = stage_cls.ports(config)
    return Node(name, stage_cls, config, {}, kinds, registry.plugin_of(stage_cls.name), timeout,
                dict(in_ports), dict(out_ports))


def _wire(node: Node, wiring: dict[str, str], path: str, errs: _Collector, check_ref) -> None:
    ports = node.input_ports
    for port, text in wiring.items():
        if port not in ports:
            errs.add(f"stage '{node.stage_cls.name}' has no input '{port}' (inputs: {', '.join(ports) or 'none'})",
                     f"{path}.{port}", node.name)
            continue
        ref = check_ref(text, f"{path}.{port}", node.name, ports[port])
        if ref is not None:
            node.inputs[port] = ref
    for port, spec in ports.items():
        if port not in wiring and not spec.optional:
            errs.add(f"required input '{port}' ({spec.type}) of stage '{node.stage_cls.name}' is not connected",
                     path, node.name)


def _topological_order(nodes: dict[str, Node], errs: _Collector) -> list[str]:
    """Dependency order; among ready nodes, the one declared first runs first."""
    try:
        return topological_order({n: [r.node for r in node.inputs.values()] for n, node in nodes.items()})
    except CycleError as exc:
        cycle = exc.args[1]
        first = min(cycle, key=list(nodes).index)
        errs.add(f"the graph has a cycle through nodes: {' -> '.join(cycle)}", f"nodes.{first}.inputs", first)
        return []


def _unused(graph: Graph) -> list[str]:
    """Warnings for nodes that feed no output and graph inputs that nothing reads."""
    needed = set(graph.upstream_of([r.node for r in graph.outputs.values() if r.node in graph.nodes]))
    warnings = [f"node '{n}' does not contribute to any graph output" for n in graph.nodes if n not in needed]
    read = {r.port for node in graph.nodes.values() for r in node.inputs.values() if r.node == GRAPH_INPUTS}
    read |= {r.port for r in graph.outputs.values() if r.node == GRAPH_INPUTS}
    if graph.fallback:
        read |= {r.port for r in graph.fallback.inputs.values()}
    warnings += [f"graph input '{i}' is not used" for i in graph.spec.inputs if i not in read]
    return warnings


def _config_message(err: dict[str, Any], stage_cls: type[Stage]) -> str:
    if err["type"] == "extra_forbidden":
        known = ", ".join(stage_cls.Config.model_fields) or "none"
        return f"unknown config key for stage '{stage_cls.name}' (keys: {known})"
    if err["type"] == "missing":
        return "required config key is missing"
    return f"{err['msg']} (got {err.get('input')!r})"
