"""Graph algorithms (order, cycles, slicing, drawing), multi-kind implementations, pluggy
hook checking, observer hooks, per-node timeouts and stage-name conflicts."""
from __future__ import annotations

import json
import logging
import textwrap

import numpy as np
import pytest
from engine_helpers import CALLS, HANG_DONE, HANG_RELEASE, FaultPlugin, Flaky, chain_spec, make_registry, pipeline

from vcgraph.cli import main
from vcgraph.errors import ConfigError, PipelineError, PluginError, StageConflictError
from vcgraph.hookspecs import hookimpl
from vcgraph.plugins import Registry
from vcgraph.stage import Implementation, Port, Stage, implementation

X = np.array([1.0, 2.0])


def flaky(src: str, factor: float = 2.0, **cfg) -> dict:
    return {"stage": "flaky", "config": {"factor": factor, **cfg}, "inputs": {"x": src}}


# -- order, cycles, slicing, drawing -------------------------------------------------------------
def test_independent_nodes_run_in_declaration_order(registry):
    """Among nodes whose inputs are ready, the one declared first runs first (pinned)."""
    spec = {"inputs": {"x": {"type": "array"}}, "nodes": {
        "zeta": flaky("inputs.x"),
        "late": flaky("mid.x"),          # declared before the node it reads
        "alpha": flaky("inputs.x"),
        "mid": flaky("alpha.x"),
        "omega": {"stage": "add", "inputs": {"a": "zeta.x", "b": "late.x"}},
        "beta": flaky("inputs.x")},
        "outputs": {"y": "omega.sum", "b": "beta.x"}}
    pipe = pipeline(spec, registry)
    assert list(pipe.graph.nodes) == ["zeta", "alpha", "mid", "late", "omega", "beta"]
    pipe.run({"x": X})
    assert [c[0] for c in CALLS] == ["zeta", "alpha", "mid", "late", "beta"]  # add does not record


def test_a_cycle_error_names_the_cycle_not_its_dependents(registry):
    spec = {"inputs": {"x": {"type": "array"}}, "nodes": {
        "head": flaky("inputs.x"), "a": flaky("c.x"), "b": flaky("a.x"), "c": flaky("b.x"), "tail": flaky("c.x")},
        "outputs": {"y": "tail.x"}}
    with pytest.raises(ConfigError) as info:
        pipeline(spec, registry)
    msg = str(info.value)
    assert "cycle through nodes" in msg and "tail" not in msg.split("cycle")[1] and "head" not in msg
    cycle = msg.split("nodes: ")[1].split(" -> ")
    assert set(cycle) == {"a", "b", "c"} and cycle[0] == cycle[-1] and len(cycle) == 4
    assert info.value.path == "nodes.a.inputs"


def test_slice_from_a_node_turns_cut_edges_into_inputs(registry):
    pipe = pipeline(chain_spec({"factor": 2}, {"factor": 3}, {"factor": 5}), registry)
    full = pipe.run({"x": X})["y"]
    part = pipe.slice(from_nodes=["n1"])
    assert list(part.graph.nodes) == ["n1", "n2"]
    assert list(part.graph.spec.inputs) == ["n0__x"] and part.graph.spec.inputs["n0__x"].type == "array"
    np.testing.assert_allclose(part.run({"n0__x": X * 2})["y"], full)
    both = pipe.slice(outputs={"mid": "n1.x"}, from_nodes=["n1"])
    assert list(both.graph.nodes) == ["n1"]
    np.testing.assert_allclose(both.run({"n0__x": X})["mid"], X * 3)
    with pytest.raises(ConfigError, match="no node"):
        pipe.slice(from_nodes=["nope"])


def test_reachability_up_and_down(registry):
    spec = {"inputs": {"x": {"type": "array"}}, "nodes": {
        "a": flaky("inputs.x"), "b": flaky("a.x"), "c": flaky("inputs.x"),
        "d": {"stage": "add", "inputs": {"a": "b.x", "b": "c.x"}}}, "outputs": {"y": "d.sum"}}
    graph = pipeline(spec, registry).graph
    assert graph.downstream_of("a") == ["a", "b", "d"]
    assert graph.upstream_of(["b"]) == ["a", "b"]
    assert graph.upstream_of(["d"]) == ["a", "b", "c", "d"]


def test_drawings_come_from_one_edge_list(registry):
    graph = pipeline(chain_spec({}, {}), registry).graph
    assert graph.edges() == [("in:x", "n0", "x"), ("n0", "n1", "x"), ("n1", "out:y", "x")]
    mermaid, dot = graph.draw("mermaid"), graph.draw("dot")
    assert "    in_x -->|x| n0" in mermaid and "    n1 -->|x| out_y" in mermaid
    assert '    "n0" -> "n1" [label="x"];' in dot
    assert mermaid.count("-->") == dot.count("->") == 3
    with pytest.raises(ValueError, match="mermaid, dot"):
        graph.draw("svg")


# -- @implementation with several kinds ---------------------------------------------------------
def test_one_method_serves_several_kinds(registry, fake_cuda):
    impls = Flaky.implementations()
    assert impls["cuda"] == Implementation("cuda", "cuda", "run")
    assert impls["cpu"] == Implementation("cpu", "cpu", "run")
    assert impls["simplified"].method_name == "run_simplified"  # the single-kind form still works
    res = pipeline(chain_spec({"fail": ["cuda"], "error": "cuda"}), registry).run({"x": X})
    assert [(a.kind, a.device, a.ok) for a in res.report.nodes["n0"].attempts] == [("cuda", "cuda", False),
                                                                                  ("cpu", "cpu", True)]
    assert CALLS == [("n0", "cpu", "cpu")]
    with pytest.raises(TypeError, match="one or more kind names"):
        implementation()


# -- plugins: misspelt hooks, conflicts, selection ------------------------------------------------
class _Misspelt:
    @hookimpl
    def register_stage(self, register):  # the hook is register_stages
        register(Flaky)


def test_a_misspelt_hook_is_an_error():
    reg = make_registry()
    with pytest.raises(PluginError, match=r"plugin 'typo' implements unknown hook\(s\) register_stage \(hooks: .*"
                                          r"register_stages"):
        reg.register(_Misspelt(), "typo")
    assert reg.pm.get_plugin("typo") is None and "typo" not in reg.info  # not half-registered
    assert "flaky" in reg.stages


@pytest.fixture
def fake_dists(tmp_path, monkeypatch):
    """Installed fake plugins: a misspelt hook, two claiming one stage name (each with another)."""
    site = tmp_path / "site"
    site.mkdir()

    def dist(name: str, code: str) -> None:
        info = site / f"vcgt_{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vcgt-{name}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[vcgraph]\n{name} = vcgt_{name}\n")
        (site / f"vcgt_{name}.py").write_text(textwrap.dedent(code))

    stage_code = """\
        from vcgraph.hookspecs import hookimpl
        from vcgraph.stage import Port, Stage, implementation
        def make(stage_name, add):
            class S(Stage):
                '''Adds a number.'''
                name = stage_name
                inputs = {"x": Port("any")}
                outputs = {"x": Port("any")}
                @implementation("cpu")
                def run_cpu(self, ctx, x):
                    return {"x": x + add}
            return S
        """.rstrip(" ")
    dist("typo", """\
        from vcgraph.hookspecs import hookimpl
        @hookimpl
        def register_stage(register):
            pass
        """)
    dist("left", stage_code + """\
        @hookimpl
        def register_stages(register):
            register(make("shared", 1))
            register(make("left-only", 10))
        """)
    dist("right", stage_code + """\
        @hookimpl
        def register_stages(register):
            register(make("shared", 2))
            register(make("right-only", 20))
        """)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("VCGRAPH_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.setenv("VCGRAPH_PLUGINS", "typo,left,right")
    import vcgraph.plugins
    vcgraph.plugins.reset_registry()
    yield site
    vcgraph.plugins.reset_registry()


def one_node(stage: str) -> dict:
    return {"inputs": {"x": {}}, "nodes": {"n": {"stage": stage, "inputs": {"x": "inputs.x"}}}, "outputs": {"y": "n.x"}}


def test_conflicting_stage_names_refuse_only_graphs_that_use_them(fake_dists, caplog):
    with caplog.at_level(logging.WARNING, logger="vcgraph.plugins"):
        reg = Registry()
        infos = {p.name: p for p in reg.plugins()}
    assert infos["typo"].error.startswith("PluginError: plugin 'typo' implements unknown hook(s) register_stage")
    assert infos["left"].error is None and infos["right"].error is None
    assert infos["left"].conflicts == {"shared": ["right"]} and infos["right"].conflicts == {"shared": ["left"]}
    assert reg.conflicts == {"shared": ["right", "left"]} or reg.conflicts == {"shared": ["left", "right"]}
    assert "stage type 'shared' is registered by" in caplog.text
    from vcgraph import Pipeline
    assert Pipeline.from_yaml(one_node("left-only"), registry=reg).run({"x": 1})["y"] == 11
    assert Pipeline.from_yaml(one_node("right-only"), registry=reg).run({"x": 1})["y"] == 21
    with pytest.raises(StageConflictError) as info:
        Pipeline.from_yaml(one_node("shared"), registry=reg)
    assert info.value.path == "nodes.n.stage" and "'left'" in str(info.value) and "'right'" in str(info.value)


def test_plugins_command_lists_both_sides_of_a_conflict(fake_dists, capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "typo 1.0  FAILED TO LOAD: PluginError" in out
    assert out.count("CONFLICT: also registered by") == 2 and "left-only" in out and "right-only" in out
    assert main(["plugins", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert {s["name"]: s.get("conflict", "") for s in rows["left"]["stages"]}["shared"].startswith(
        "also registered by right")


def test_vcgraph_plugins_naming_nothing_is_listed_as_failed(fake_dists, monkeypatch, capsys):
    monkeypatch.setenv("VCGRAPH_PLUGINS", "left,lefft")
    infos = {p.name: p for p in Registry().plugins()}
    assert set(infos) >= {"left", "lefft"} and "right" not in infos
    assert infos["lefft"].error.startswith("not installed: VCGRAPH_PLUGINS names 'lefft'")
    assert "left" in infos["lefft"].error and "right" in infos["lefft"].error  # what is installed


@pytest.mark.parametrize("env, words", [({"VCGRAPH_PLUGINS": ""}, "VCGRAPH_PLUGINS is set but empty"),
                                        ({"VCGRAPH_DISABLE_PLUGIN_AUTOLOAD": "1"}, "VCGRAPH_DISABLE_PLUGIN_AUTOLOAD")])
def test_no_plugins_loaded_says_why(fake_dists, monkeypatch, capsys, env, words):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert words in out and "no plugins installed" not in out
    assert main(["convert", "x.wav"]) == 2  # a plugin command: say why it is missing
    err = capsys.readouterr().err
    assert "unknown command 'convert'" in err and words in err


# -- observer hooks --------------------------------------------------------------------------------
class Observer:
    def __init__(self):
        self.events = []

    @hookimpl
    def before_node_run(self, node, inputs):  # a subset of the hook's arguments
        self.events.append(("before", node.name, float(np.asarray(inputs["x"]).sum())))

    @hookimpl
    def after_node_run(self, node, outputs, report, graph):
        self.events.append(("after", node.name, report.implementation, float(np.asarray(outputs["x"]).sum()),
                            graph.name))

    @hookimpl
    def on_node_error(self, node, error, report):
        self.events.append(("error", node.name, type(error).__name__, len(report.attempts)))


def test_observer_hooks_see_every_node_run():
    reg = make_registry()
    obs = Observer()
    reg.register(obs, "observer")
    pipe = pipeline(chain_spec({"factor": 2}, {"factor": 3, "fail": ["cuda", "cpu"]}), reg)
    pipe.run({"x": X})
    assert obs.events == [("before", "n0", 3.0), ("after", "n0", "cpu", 6.0, "chain"),
                          ("before", "n1", 6.0), ("after", "n1", "simplified", 19.0, "chain")]
    obs.events.clear()
    bad = pipeline(chain_spec({"fail": ["cuda", "cpu", "simplified"]}, fallback={"stage": "safe", "inputs": {
        "x": "inputs.x"}}), reg, use_cuda=False)
    bad.run({"x": X})
    assert obs.events[:2] == [("before", "n0", 3.0), ("error", "n0", "PipelineError", 2)]
    assert obs.events[2][:3] == ("before", "fallback", 3.0) and obs.events[3][:3] == ("after", "fallback", "cpu")


class _BrokenObserver:
    @hookimpl
    def after_node_run(self, node):
        raise RuntimeError("metrics backend down")


def test_a_failing_observer_does_not_change_the_run(caplog):
    reg = make_registry()
    reg.register(_BrokenObserver(), "broken-observer")
    with caplog.at_level(logging.WARNING, logger="vcgraph.executor"):
        res = pipeline(chain_spec({"factor": 4}), reg).run({"x": X})
    np.testing.assert_allclose(res["y"], X * 4)
    assert res.report.ok and "after_node_run hook failed (RuntimeError: metrics backend down)" in caplog.text


# -- per-node timeouts -------------------------------------------------------------------------------
@pytest.fixture
def hang():
    HANG_RELEASE.clear()
    HANG_DONE.clear()
    yield
    HANG_RELEASE.set()  # let a still-blocked implementation thread finish


def test_a_hanging_implementation_times_out_and_falls_back(registry, hang):
    spec = chain_spec({"factor": 2, "hang": ["cpu"]})
    spec["nodes"]["n0"]["timeout_s"] = 0.3
    pipe = pipeline(spec, registry)
    stream = pipe.stream()
    res = stream.process({"x": X})
    node = res.report.nodes["n0"]
    assert node.implementation == "simplified"
    np.testing.assert_allclose(res["y"], X * 2 + 0.5)  # simplified's result, not the hung one's
    assert [(a.kind, a.ok) for a in node.attempts] == [("cpu", False), ("simplified", True)]
    assert node.attempts[0].error.startswith("NodeTimeoutError") and "timeout_s=0.3" in node.attempts[0].error
    HANG_RELEASE.set()
    assert HANG_DONE.wait(10)  # the abandoned call has now finished, writing to its own copy
    assert "written_by" not in stream.state["n0"] and "finished_by" not in stream.state["n0"]


def test_a_timeout_on_every_kind_uses_the_graph_fallback_or_fails(registry, hang):
    spec = chain_spec({"hang": ["cpu", "simplified"]}, settings={"timeout_s": 0.2},
                      fallback={"stage": "safe", "inputs": {"x": "inputs.x"}})
    res = pipeline(spec, registry).run({"x": X})
    assert res.report.fallback_used and not res.report.ok
    np.testing.assert_allclose(res["y"], np.zeros(2))
    spec["settings"]["fallback_on_error"] = False
    with pytest.raises(PipelineError, match="timeout_s=0.2"):
        pipeline(spec, registry).run({"x": X})


def test_a_timeout_keeps_state_of_calls_that_finish(registry):
    spec = chain_spec({}, stage="accumulate", settings={"timeout_s": 30})
    stream = pipeline(spec, registry).stream()
    assert [stream.process({"x": np.array([v])})["y"][0] for v in (1.0, 2.0, 3.0)] == [1.0, 3.0, 6.0]


def test_timeout_must_be_positive(registry):
    spec = chain_spec({})
    spec["nodes"]["n0"]["timeout_s"] = 0
    with pytest.raises(ConfigError, match="timeout_s"):
        pipeline(spec, registry)
