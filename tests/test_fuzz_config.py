"""Config fuzzing: mutated graph files (missing keys, wrong types, cycles, huge values,
interpolations that reach for the environment, broken YAML) load as a validated graph or
raise a one-line ConfigError (PluginError for plugin problems) — never another exception, and
no value from the environment ever lands in the graph.
"""
from __future__ import annotations

import contextlib
import copy
import io
import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from fuzz_support import count, fuzz_settings
from vcgraph import Pipeline
from vcgraph.cli import main
from vcgraph.errors import ConfigError, UserError

FAST = Path(__file__).resolve().parents[1] / "configs" / "fast.yaml"
BASE = yaml.safe_load(FAST.read_text())
SECRET = "vcgraph-fuzz-secret-7f3a"  # put in the environment: must never show up in a graph

INTERPOLATIONS = ["${oc.env:VCGRAPH_FUZZ_SECRET}", "${oc.env:VCGRAPH_FUZZ_SECRET,1}", "${oc.env:HOME}",
                  "${oc.decode:'[1, 2]'}", "${oc.create:{a: 1}}", "${oc.select:vars.sample_rate}",
                  "${env:VCGRAPH_FUZZ_SECRET}", "${vars.sample_rate}", "${vars.nope}", "${nodes}", "${..}",
                  "${", "}", "$${vars.x}", "${vars.${vars.n_fft}}", "pre ${oc.env:VCGRAPH_FUZZ_SECRET} post",
                  "${inputs.audio}", "${settings}", "!!python/object/apply:os.system ['true']"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 30, 10 ** 30), st.sampled_from([0, -1, 1, 2 ** 63]),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
                    st.sampled_from(INTERPOLATIONS))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=8)


def _paths(data, prefix=()):
    yield prefix
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _paths(v, prefix + (i,))


ALL_PATHS = [p for p in _paths(BASE) if p]
NODE_NAMES = list(BASE["nodes"])
PORT_REFS = [f"{n}.{p}" for n in NODE_NAMES for p in ("audio", "features", "speaker", "f0", "mel", "nope")]


@st.composite
def mutated_graphs(draw):
    data = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "replace", "replace", "interpolate", "rewire", "rename"]))
        path = draw(st.sampled_from(ALL_PATHS))
        parent = data
        try:
            for key in path[:-1]:
                parent = parent[key]
            last = path[-1]
            parent[last]  # the path may be gone after an earlier mutation
        except (KeyError, IndexError, TypeError):
            continue
        if not isinstance(parent, (dict, list)):  # an earlier mutation turned it into a scalar or string
            continue
        if op == "delete":
            del parent[last]
        elif op == "replace":
            parent[last] = draw(values)
        elif op == "interpolate":
            parent[last] = draw(st.sampled_from(INTERPOLATIONS))
        elif op == "rewire":  # wiring to anything, cycles included (a node reading its own output)
            node = draw(st.sampled_from(NODE_NAMES))
            if isinstance(data.get("nodes"), dict) and isinstance(data["nodes"].get(node), dict):
                data["nodes"][node]["inputs"] = {draw(st.sampled_from(["audio", "features", "speaker", "x"])):
                                                 draw(st.sampled_from(PORT_REFS + ["inputs.audio", "inputs.zz"]))}
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = parent.pop(last)
    return data


def _text_mutation(text: str, draw) -> str:
    for _ in range(draw(st.integers(0, 3))):
        pos = draw(st.integers(0, len(text)))
        text = text[:pos] + draw(st.sampled_from(["{", "}", "[", ":", "\t", "&a", "*a", "!!", "'", '"', "\n  -",
                                                  "${", "%", "\x00"])) + text[pos:]
    return text


def load(path_or_dict):
    """Pipeline.from_yaml, with the outcome as a string for the property's books."""
    try:
        pipe = Pipeline.from_yaml(path_or_dict)
    except UserError as exc:  # ConfigError, ConfigErrors, PluginError
        assert str(exc).strip() and SECRET not in str(exc)
        assert isinstance(exc, ConfigError) or "plugin" in str(exc).lower(), repr(exc)
        return "config error"
    dump = repr(pipe.graph.spec.model_dump()) + repr([n.config for n in pipe.graph.nodes.values()])
    assert SECRET not in dump and os.environ["HOME"] not in dump.replace(str(FAST.parent), "")
    return "valid graph"


@pytest.fixture(autouse=True)
def secret_env(monkeypatch):
    monkeypatch.setenv("VCGRAPH_FUZZ_SECRET", SECRET)


@fuzz_settings(80)
@given(mutated_graphs())
def test_mutated_graph_dicts_load_or_raise_config_errors(data):
    count("config dict", load(data))


@fuzz_settings(40)
@given(mutated_graphs(), st.data())
def test_mutated_graph_files_load_or_raise_config_errors(data, draw):
    try:
        text = yaml.safe_dump(data, allow_unicode=True)
    except yaml.YAMLError:
        return
    text = _text_mutation(text, draw.draw)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "g.yaml")
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as fh:
            fh.write(text)
        count("config file", load(path))


@pytest.mark.slow
@fuzz_settings(2000, slow=True)
@given(mutated_graphs())
def test_mutated_graph_dicts_slow(data):
    count("config dict (slow)", load(data))


@fuzz_settings(25)
@given(mutated_graphs())
def test_validate_command_on_mutated_graphs_is_ok_or_one_line(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "g.yaml")
        with open(path, "w", encoding="utf-8") as fh:
            yaml.safe_dump(data, fh)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            status = main(["validate", path])
    text = err.getvalue()
    assert "Traceback" not in text and SECRET not in text
    assert status in (0, 2), text
    if status == 2:
        assert text.startswith("vcgraph: error: "), text
    count("cli validate", "ok" if status == 0 else "one error report")


@pytest.mark.parametrize("text", [
    "vcgraph: 1\nname: ${oc.env:VCGRAPH_FUZZ_SECRET}\n",
    "x: !!python/object/apply:os.system ['touch /tmp/vcgraph-pwned']\n",
    "a: &a [*a]\n",
    "x: " + "[" * 3000 + "]" * 3000 + "\n",
    "a: &a ['x','x','x','x','x','x','x','x','x','x']\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",
    "vcgraph: 1\nvars: {x: [1, '${nodes}']}\nnodes: {a: {stage: s, config: {k: '${vars.x}'}}}\n",
], ids=["env-resolver", "python-tag", "self-alias", "deep-nesting", "alias-bomb", "interpolation-cycle"])
def test_hostile_yaml_is_one_config_error(tmp_path, text):
    path = tmp_path / "g.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        Pipeline.from_yaml(path)
    assert SECRET not in str(info.value) and len(str(info.value).splitlines()) == 1
    assert not os.path.exists("/tmp/vcgraph-pwned")


def test_overrides_cannot_read_the_environment():
    with pytest.raises(ConfigError, match="resolver interpolations are not allowed"):
        Pipeline.from_yaml(FAST, ["vars.sample_rate=${oc.env:VCGRAPH_FUZZ_SECRET}"])
