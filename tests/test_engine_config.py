"""Graph configuration: validation errors (with node, key and file:line), overrides,
interpolation, and plugin loading (conflicts, broken plugins, environment variables)."""
from __future__ import annotations

import logging
import textwrap

import numpy as np
import pytest
from engine_helpers import FaultPlugin, Flaky, make_registry

from vcgraph import Pipeline
from vcgraph.config import load_graph_spec
from vcgraph.errors import ConfigError, ConfigErrors, PluginError
from vcgraph.graph import build_graph
from vcgraph.hookspecs import hookimpl
from vcgraph.plugins import Registry

BASE = """\
vcgraph: 1
name: t
vars:
  f: 4
inputs:
  x: {type: array}
nodes:
  first:
    stage: flaky
    config: {factor: 3}
    inputs: {x: inputs.x}
  second:
    stage: {stage2}
    config:
{config2}
    inputs:
{inputs2}
outputs:
  y: second.x
"""


def graph_text(stage2: str = "flaky", config2: str = "factor: 2", inputs2: str = "x: first.x") -> str:
    indent = lambda block: textwrap.indent(block, "      ")  # noqa: E731
    return (BASE.replace("{stage2}", stage2).replace("{config2}", indent(config2))
            .replace("{inputs2}", indent(inputs2)))


def write(tmp_path, text: str, name: str = "graph.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def line_of(text: str, needle: str, after: str = "second:") -> int:
    """1-based line of the first line containing ``needle`` after the line containing ``after``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if after in line)
    return next(i for i in range(start, len(lines)) if needle in lines[i]) + 1


def config_error(tmp_path, text: str, registry=None) -> tuple[ConfigError, str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        Pipeline.from_yaml(path, registry=registry or make_registry())
    return info.value, path


def single(err: ConfigError) -> ConfigError:
    assert not isinstance(err, ConfigErrors), str(err)
    return err


# -- the happy path --------------------------------------------------------------------------
def test_valid_graph_builds_and_runs(tmp_path):
    pipe = Pipeline.from_yaml(write(tmp_path, graph_text()), registry=make_registry())
    assert list(pipe.graph.nodes) == ["first", "second"]
    assert pipe.graph.warnings == []
    out = pipe.run({"x": np.array([1.0, 2.0])})
    np.testing.assert_allclose(out["y"], [6.0, 12.0])


# -- validation errors: each names the node, the key and file:line ---------------------------
@pytest.mark.parametrize("case, stage2, config2, inputs2, key, needle, words", [
    ("unknown stage", "nosuch", "factor: 2", "x: first.x",
     "nodes.second.stage", "stage: nosuch", ["unknown stage type 'nosuch'", "flaky"]),
    ("unknown config key", "flaky", "factor: 2\nbogus: 1", "x: first.x",
     "nodes.second.config.bogus", "bogus: 1", ["unknown config key for stage 'flaky'", "factor"]),
    ("mistyped value", "flaky", "factor: loud", "x: first.x",
     "nodes.second.config.factor", "factor: loud", ["valid number", "'loud'"]),
    ("out of range", "flaky", "factor: 11", "x: first.x",
     "nodes.second.config.factor", "factor: 11", ["less than or equal to 10", "11"]),
    ("missing required config", "needs", "{}", "x: first.x",
     "nodes.second.config.level", "config:", ["required config key is missing"]),
    ("missing required input", "flaky", "factor: 2", "{}",
     "nodes.second.inputs", "inputs:", ["required input 'x' (array)", "not connected"]),
    ("unknown input port", "flaky", "factor: 2", "x: first.x\nsignal: first.x",
     "nodes.second.inputs.signal", "signal: first.x", ["has no input 'signal'", "inputs: x"]),
    ("missing node", "flaky", "factor: 2", "x: ghost.x",
     "nodes.second.inputs.x", "x: ghost.x", ["'ghost.x' names no node", "first, second"]),
    ("missing port", "flaky", "factor: 2", "x: first.nope",
     "nodes.second.inputs.x", "x: first.nope", ["node 'first' has no output 'nope'", "outputs: x"]),
    ("missing graph input", "flaky", "factor: 2", "x: inputs.audio",
     "nodes.second.inputs.x", "x: inputs.audio", ["'inputs.audio' names no graph input", "inputs: x"]),
    ("malformed reference", "flaky", "factor: 2", "x: first",
     "nodes.second.inputs.x", "x: first", ["not of the form node.port"]),
    ("type mismatch", "add", "{}", "a: first.x\nb: inputs.x",
     None, None, None),  # replaced below: needs a text-out producer
])
def test_validation_error_names_node_key_and_line(tmp_path, case, stage2, config2, inputs2, key, needle, words):
    if case == "type mismatch":
        text = graph_text("flaky", "{}", "x: first.text").replace("stage: flaky\n    config: {factor: 3}",
                                                                  "stage: text-out\n    config: {}")
        key, needle, words = "nodes.second.inputs.x", "x: first.text", ["type mismatch", "'first.text' is text",
                                                                      "takes array"]
    else:
        text = graph_text(stage2, config2, inputs2)
    err, path = config_error(tmp_path, text)
    err = single(err)
    msg = str(err)
    assert err.path == key, msg
    assert err.node == "second" or key.startswith("nodes.second"), msg
    assert f"[{key}]" in msg
    assert f"{path}:{line_of(text, needle)}" in msg, msg
    assert err.source == f"{path}:{line_of(text, needle)}"
    for word in words:
        assert word in msg


def test_node_errors_carry_the_node_name(tmp_path):
    err, _ = config_error(tmp_path, graph_text("flaky", "factor: 11"))
    assert err.node == "second"


def test_several_errors_are_reported_together(tmp_path):
    text = graph_text("flaky", "factor: 11\nbogus: 2", "x: ghost.x")
    err, path = config_error(tmp_path, text)
    assert isinstance(err, ConfigErrors)
    paths = sorted(e.path for e in err.errors)
    assert paths == ["nodes.second.config.bogus", "nodes.second.config.factor"], paths  # config errors stop the node
    assert str(err).startswith("2 configuration errors:")
    assert f"{path}:{line_of(text, 'bogus: 2')}" in str(err)


def test_unknown_top_level_key_has_line(tmp_path):
    text = graph_text().replace("outputs:", "nodez: {}\noutputs:")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_graph_spec(path)
    assert info.value.path == "nodez"
    assert "unknown key" in str(info.value)
    assert f"{path}:{line_of(text, 'nodez', after='vcgraph')}" in str(info.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="graph file not found"):
        load_graph_spec(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_graph_spec(write(tmp_path, "nodes: [a\n"))


def test_cycle_is_an_error_naming_its_nodes(tmp_path):
    text = graph_text().replace("inputs: {x: inputs.x}", "inputs: {x: second.x}")
    err, path = config_error(tmp_path, text)
    msg = str(single(err))
    assert "cycle" in msg and "first" in msg and "second" in msg
    assert err.node in ("first", "second")
    assert path in msg


def test_unused_node_and_input_are_warnings(tmp_path):
    text = graph_text().replace("outputs:", "  spare:\n    stage: flaky\n    inputs: {x: first.x}\noutputs:")
    text = text.replace("  x: {type: array}", "  x: {type: array}\n  unused: {type: array, optional: true}")
    pipe = Pipeline.from_yaml(write(tmp_path, text), registry=make_registry())
    assert "node 'spare' does not contribute to any graph output" in pipe.graph.warnings
    assert "graph input 'unused' is not used" in pipe.graph.warnings
    assert len(pipe.graph.warnings) == 2


def test_node_implementations_must_exist(tmp_path):
    text = graph_text().replace("    stage: flaky\n    config: {factor: 3}",
                                "    stage: flaky\n    implementations: [cpu, tpu]\n    config: {factor: 3}")
    err, path = config_error(tmp_path, text)
    assert err.path == "nodes.first.implementations.1"
    assert "has no 'tpu' implementation" in str(err)
    assert f"{path}:" in str(err)


# -- overrides and interpolation -------------------------------------------------------------
def test_interpolation_and_overrides_from_python(tmp_path):
    path = write(tmp_path, graph_text("flaky", "factor: ${vars.f}"))
    x = np.array([1.0])
    reg = make_registry()
    assert Pipeline.from_yaml(path, registry=reg).run({"x": x})["y"][0] == 12.0  # 3 * 4
    assert Pipeline.from_yaml(path, overrides=["vars.f=5"], registry=reg).run({"x": x})["y"][0] == 15.0
    assert Pipeline.from_yaml(path, overrides={"vars.f": 0.5}, registry=reg).run({"x": x})["y"][0] == 1.5
    pipe = Pipeline.from_yaml(path, overrides=["nodes.first.config.factor=1", "nodes.second.config.factor=7"],
                              registry=reg)
    assert pipe.run({"x": x})["y"][0] == 7.0


def test_overrides_are_validated_like_the_file(tmp_path):
    path = write(tmp_path, graph_text())
    with pytest.raises(ConfigError) as info:
        Pipeline.from_yaml(path, overrides=["nodes.second.config.factor=99"], registry=make_registry())
    assert info.value.path == "nodes.second.config.factor" and "less than or equal to 10" in str(info.value)
    with pytest.raises(ConfigError) as info:
        Pipeline.from_yaml(path, overrides={"nodes.second.config.gain": 1}, registry=make_registry())
    assert info.value.path == "nodes.second.config.gain" and "unknown config key" in str(info.value)


@pytest.mark.parametrize("override, words", [
    ("nodes.second.config.factor", ["not of the form key.path=value"]),
    ("=3", ["not of the form key.path=value"]),
    ("nodes.second.config.factor=[1", ["cannot parse the value"]),
])
def test_bad_override_syntax(tmp_path, override, words):
    path = write(tmp_path, graph_text())
    with pytest.raises(ConfigError) as info:
        load_graph_spec(path, overrides=[override])
    for word in words:
        assert word in str(info.value)
    assert override in str(info.value)


def test_missing_interpolation_names_key_and_line(tmp_path):
    text = graph_text("flaky", "factor: ${vars.nope}")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_graph_spec(path)
    err = info.value
    assert err.path == "nodes.second.config.factor"
    assert "vars.nope" in str(err)
    assert err.source == f"{path}:{line_of(text, 'factor:')}"


def test_dict_source_and_version(tmp_path):
    spec = load_graph_spec({"inputs": {"x": {}}, "nodes": {"a": {"stage": "flaky", "inputs": {"x": "inputs.x"}}},
                            "outputs": {"y": "a.x"}})
    assert spec.settings.max_retries == 3 and spec.nodes["a"].stage == "flaky"
    with pytest.raises(ConfigError, match="unsupported graph format version 2"):
        load_graph_spec({"vcgraph": 2, "nodes": {"a": {"stage": "flaky"}}, "outputs": {"y": "a.x"}})
    with pytest.raises(ConfigError) as info:
        load_graph_spec({"nodes": {}, "outputs": {"y": "a.x"}})
    assert info.value.path == "nodes"


# -- plugins ---------------------------------------------------------------------------------
class _Dup:
    @hookimpl
    def register_stages(self, register):
        register(Flaky)


def test_two_plugins_claiming_one_stage_name(tmp_path):
    reg = make_registry()
    reg.register(_Dup(), "copycat")
    with pytest.raises(PluginError) as info:
        Pipeline.from_yaml(write(tmp_path, graph_text()), registry=reg)
    msg = str(info.value)
    assert "'flaky'" in msg and "'faults'" in msg and "'copycat'" in msg
    reg.unregister("copycat")
    assert reg.stage("flaky") is Flaky  # unregistering resolves the conflict


def test_registry_lists_plugins_and_errors_for_unknown_stage():
    reg = make_registry()
    infos = {p.name: p for p in reg.plugins()}
    assert infos["faults"].version == "9.9"
    assert "flaky" in infos["faults"].stages and "safe" in infos["faults"].stages
    assert reg.plugin_of("flaky") == "faults"
    with pytest.raises(ConfigError, match="unknown stage type 'nope'.*flaky"):
        reg.stage("nope")
    assert set(reg.value_loaders()) >= {"audio", "array", "int", "float", "str", "bool"}


def _fake_distribution(site, dist: str, version: str, entry: str, module: str, code: str) -> None:
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"  # as installers name it
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[vcgraph]\n{entry} = {module}\n")
    (site / f"{module}.py").write_text(code)


@pytest.fixture
def fake_site(tmp_path, monkeypatch):
    """Three installed fake plugins: one fails on import, one fails inside its hook, one works."""
    site = tmp_path / "site"
    site.mkdir()
    _fake_distribution(site, "vcgraph-broken", "0.3", "broken", "vcgt_broken_plugin",
                       "raise ImportError('boom: a dependency is missing')\n")
    _fake_distribution(site, "vcgraph-lazy", "0.4", "lazy", "vcgt_lazy_plugin", textwrap.dedent("""\
        from vcgraph.hookspecs import hookimpl
        @hookimpl
        def register_stages(register):
            import vcgt_module_that_does_not_exist  # a lazy import failing late
        """))
    _fake_distribution(site, "vcgraph-good", "1.2", "good", "vcgt_good_plugin", textwrap.dedent("""\
        from vcgraph.hookspecs import hookimpl
        from vcgraph.stage import Port, Stage, implementation
        class Good(Stage):
            '''Adds one.'''
            name = "good-stage"
            inputs = {"x": Port("any")}
            outputs = {"x": Port("any")}
            @implementation("cpu")
            def run_cpu(self, ctx, x):
                return {"x": x + 1}
        @hookimpl
        def register_stages(register):
            register(Good)
        """))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("VCGRAPH_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.setenv("VCGRAPH_PLUGINS", "broken,lazy,good")
    return site


def test_a_broken_plugin_is_recorded_and_the_others_load(fake_site, caplog):
    with caplog.at_level(logging.WARNING, logger="vcgraph.plugins"):
        reg = Registry()
        infos = {p.name: p for p in reg.plugins()}
    assert set(infos) == {"broken", "lazy", "good"}
    assert infos["broken"].error == "ImportError: boom: a dependency is missing"
    assert infos["broken"].package == "vcgraph-broken" and infos["broken"].version == "0.3"
    assert infos["lazy"].error.startswith("ModuleNotFoundError") and "vcgt_module_that_does_not_exist" in infos["lazy"].error
    assert infos["good"].error is None and infos["good"].version == "1.2" and infos["good"].stages == ["good-stage"]
    assert set(reg.stages) == {"good-stage"}
    assert "plugin 'broken' failed to load" in caplog.text and "plugin 'lazy'" in caplog.text
    pipe = Pipeline.from_yaml({"inputs": {"x": {}}, "nodes": {"g": {"stage": "good-stage", "inputs": {"x": "inputs.x"}}},
                               "outputs": {"y": "g.x"}}, registry=reg)
    assert pipe.run({"x": 41})["y"] == 42


def test_vcgraph_plugins_selects_entry_points(fake_site, monkeypatch):
    monkeypatch.setenv("VCGRAPH_PLUGINS", " good ")
    reg = Registry()
    assert [p.name for p in reg.plugins()] == ["good"]
    monkeypatch.delenv("VCGRAPH_PLUGINS")
    names = {p.name for p in Registry().plugins()}
    assert {"broken", "lazy", "good"} <= names  # every installed plugin, including the fakes


def test_disable_plugin_autoload(fake_site, monkeypatch):
    monkeypatch.setenv("VCGRAPH_DISABLE_PLUGIN_AUTOLOAD", "1")
    reg = Registry()
    assert reg.plugins() == [] and reg.stages == {}
    reg.register(FaultPlugin(), "faults")  # Python registration still works
    assert "flaky" in reg.stages
    monkeypatch.setenv("VCGRAPH_DISABLE_PLUGIN_AUTOLOAD", "0")  # "0" means not disabled
    assert "good" in {p.name for p in Registry().plugins()}


def test_build_graph_uses_given_registry():
    spec = load_graph_spec({"inputs": {"x": {}}, "nodes": {"a": {"stage": "flaky", "inputs": {"x": "inputs.x"}}},
                            "outputs": {"y": "a.x"}})
    graph = build_graph(spec, make_registry())
    assert graph.nodes["a"].plugin == "faults"
    assert graph.nodes["a"].kinds[:3] == ("cuda", "cpu", "simplified")
