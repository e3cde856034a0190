"""The executor: fallback paths with injected faults, retries, the run report, progress,
concurrent runs, memory, Pipeline.cut and Stream."""
from __future__ import annotations

import gc
import json
import logging
import threading
import tracemalloc

import numpy as np
import pytest
from engine_helpers import BOXES, CALLS, OUTPUTS_READ, SETUPS, chain_spec, pipeline

from vcgraph.errors import CUDAKernelError, InputError, PipelineError, StageError, UserError
from vcgraph.report import RunReport

X = np.array([1.0, 2.0, 3.0])
ALL = ["cuda", "cpu", "simplified"]


def safe_chain(*cfgs, **top) -> dict:
    """A chain graph with output `x` and the `safe` stage (zeros) as its graph fallback."""
    spec = chain_spec(*cfgs, **top)
    spec["outputs"] = {"x": spec["outputs"]["y"]}
    spec["fallback"] = {"stage": "safe", "inputs": {"x": "inputs.x"}}
    return spec


# -- implementation fallbacks ----------------------------------------------------------------
def test_cuda_is_skipped_when_absent_and_the_report_says_why(registry):
    res = pipeline(chain_spec({}), registry).run({"x": X})
    node = res.report.nodes["n0"]
    assert node.skipped == {"cuda": "CUDA is not available on this machine"}
    assert node.implementation == "cpu" and node.device == "cpu"
    assert [(a.kind, a.ok) for a in node.attempts] == [("cpu", True)]
    assert node.fell_back  # a preferred kind was skipped
    np.testing.assert_allclose(res["y"], X * 2)


def test_cuda_kernel_error_falls_back_to_cpu(registry, fake_cuda, caplog):
    with caplog.at_level(logging.WARNING, logger="vcgraph.executor"):
        res = pipeline(chain_spec({"fail": ["cuda"], "error": "cuda"}), registry).run({"x": X})
    node = res.report.nodes["n0"]
    assert node.skipped == {}
    assert [(a.kind, a.device, a.ok) for a in node.attempts] == [("cuda", "cuda", False), ("cpu", "cpu", True)]
    assert node.implementation == "cpu" and node.device == "cpu"
    assert node.errors == ["cuda: CUDAKernelError: injected cuda failure in cuda"]
    assert CALLS == [("n0", "cpu", "cpu")]
    np.testing.assert_allclose(res["y"], X * 2)
    assert "node 'n0': cuda implementation failed" in caplog.text and "falling back to cpu" in caplog.text


def test_cuda_runtime_error_is_wrapped_as_kernel_error(registry, fake_cuda):
    res = pipeline(chain_spec({"fail": ["cuda"], "error": "runtime"}), registry).run({"x": X})
    node = res.report.nodes["n0"]
    assert node.attempts[0].error == "CUDAKernelError: [n0/cuda] RuntimeError: injected runtime failure in cuda"
    assert node.implementation == "cpu"


def test_cuda_and_cpu_fail_then_simplified(registry, fake_cuda):
    res = pipeline(chain_spec({"fail": ["cuda", "cpu"], "error": "value"}), registry).run({"x": X})
    node = res.report.nodes["n0"]
    assert [a.kind for a in node.attempts] == ALL
    assert [a.ok for a in node.attempts] == [False, False, True]
    assert node.implementation == "simplified"
    np.testing.assert_allclose(res["y"], X * 2 + 0.5)
    assert res.report.ok and not res.report.fallback_used


def test_every_implementation_fails(registry, fake_cuda):
    pipe = pipeline(chain_spec({}, {"fail": ALL, "error": "value"}, {}), registry, fallback_on_error=False)
    with pytest.raises(PipelineError) as info:
        pipe.run({"x": X})
    err = info.value
    assert err.node == "n1" and isinstance(err, StageError)
    msg = str(err)
    assert msg.startswith("[n1] every implementation failed")
    for kind in ALL:
        assert f"{kind}: " in msg and f"injected value failure in {kind}" in msg
    assert "re-run from: n1, n2" in msg
    assert isinstance(err.__cause__, ValueError)
    stats = pipe.stats.snapshot()
    assert stats["total_runs"] == 1 and stats["failed_runs"] == 1 and stats["success_rate"] == 0.0


def test_only_cuda_kinds_tried_raise_cuda_kernel_error(registry, fake_cuda):
    spec = chain_spec({"fail": True}, stage="cuda-only", settings={"fallback_on_error": False})
    with pytest.raises(CUDAKernelError) as info:
        pipeline(spec, registry).run({"x": X})
    assert info.value.node == "n0"
    assert "illegal memory access" in str(info.value)
    assert not isinstance(info.value, UserError)


def test_no_runnable_implementation(registry):
    spec = chain_spec({}, stage="cuda-only", settings={"fallback_on_error": False})
    with pytest.raises(PipelineError) as info:
        pipeline(spec, registry).run({"x": X})
    assert info.value.node == "n0"
    assert "no implementation can run here (cuda: CUDA is not available on this machine)" in str(info.value)


def test_graph_fallback_produces_safe_output(registry, fake_cuda, caplog):
    pipe = pipeline(safe_chain({}, {"fail": ALL}), registry, fallback_on_error=True)
    with caplog.at_level(logging.WARNING, logger="vcgraph.executor"):
        res = pipe.run({"x": X})
    np.testing.assert_array_equal(res["x"], np.zeros(3))
    rep = res.report
    assert rep.fallback_used and not rep.ok
    assert rep.error.startswith("[n1] every implementation failed")
    assert rep.nodes["fallback"].implementation == "cpu"
    assert rep.nodes["n0"].implementation == "cuda"  # n0 ran fine before n1 failed
    assert "producing the fallback output" in caplog.text
    assert pipe.stats.snapshot()["failed_runs"] == 1


def test_graph_fallback_after_cuda_only_failure(registry, fake_cuda):
    spec = safe_chain({"fail": True}, stage="cuda-only")
    res = pipeline(spec, registry).run({"x": X})
    assert res.report.fallback_used
    np.testing.assert_array_equal(res["x"], np.zeros(3))


def test_graph_fallback_can_be_switched_off(registry):
    pipe = pipeline(safe_chain({"fail": ALL}), registry, fallback_on_error=False)
    with pytest.raises(PipelineError):
        pipe.run({"x": X})
    res = pipeline(safe_chain({"fail": ALL}, settings={"fallback_on_error": False}), registry,
                   fallback_on_error=True).run({"x": X})  # the option beats the graph setting
    assert res.report.fallback_used


@pytest.mark.parametrize("error, cls", [("user", UserError), ("input", InputError)])
def test_user_error_is_raised_at_once_without_fallback(registry, error, cls):
    pipe = pipeline(safe_chain({"fail": ["cpu"], "error": error}), registry, fallback_on_error=True)
    with pytest.raises(cls) as info:
        pipe.run({"x": X})
    assert "injected" in str(info.value)
    if error == "input":
        assert info.value.node == "n0" and str(info.value).startswith("[n0] ")
    assert CALLS == []  # simplified was not tried, the fallback did not run


def test_use_cuda_false_skips_cuda(registry, fake_cuda):
    res = pipeline(chain_spec({}), registry, use_cuda=False).run({"x": X})
    node = res.report.nodes["n0"]
    assert node.skipped == {"cuda": "use_cuda is off"}
    assert [a.kind for a in node.attempts] == ["cpu"]
    # the same from the graph's settings; Pipeline(use_cuda=True) still turns it back on
    spec = chain_spec({}, settings={"use_cuda": False})
    assert pipeline(spec, registry).run({"x": X}).report.nodes["n0"].skipped == {"cuda": "use_cuda is off"}
    assert pipeline(spec, registry, use_cuda=True).run({"x": X}).report.nodes["n0"].implementation == "cuda"


def test_node_implementation_order(registry, fake_cuda):
    spec = chain_spec({})
    spec["nodes"]["n0"]["implementations"] = ["simplified", "cpu"]
    res = pipeline(spec, registry).run({"x": X})
    assert res.report.nodes["n0"].implementation == "simplified"
    np.testing.assert_allclose(res["y"], X * 2 + 0.5)


# -- retries ---------------------------------------------------------------------------------
def test_transient_errors_are_retried(registry, caplog):
    cfg = {"transient_kinds": ["cpu"], "transient_failures": 2}
    with caplog.at_level(logging.WARNING, logger="vcgraph.executor"):
        res = pipeline(chain_spec(cfg), registry, max_retries=3).run({"x": X})
    node = res.report.nodes["n0"]
    assert [(a.kind, a.ok) for a in node.attempts] == [("cpu", False), ("cpu", False), ("cpu", True)]
    assert node.errors == ["cpu: TransientError: busy (1)", "cpu: TransientError: busy (2)"]
    assert node.implementation == "cpu"
    np.testing.assert_allclose(res["y"], X * 2)
    assert caplog.text.count("transient error") == 2


def test_too_many_transient_errors_fall_back(registry):
    cfg = {"transient_kinds": ["cpu"], "transient_failures": 2}
    res = pipeline(chain_spec(cfg), registry, max_retries=1).run({"x": X})
    node = res.report.nodes["n0"]
    assert [(a.kind, a.ok) for a in node.attempts] == [("cpu", False), ("cpu", False), ("simplified", True)]
    np.testing.assert_allclose(res["y"], X * 2 + 0.5)


def test_transient_flag_survives_cuda_wrapping(registry, fake_cuda):
    cfg = {"transient_kinds": ["cuda"], "transient_failures": 1, "error": "runtime-transient"}
    res = pipeline(chain_spec(cfg), registry, max_retries=2).run({"x": X})
    node = res.report.nodes["n0"]
    assert [(a.kind, a.ok) for a in node.attempts] == [("cuda", False), ("cuda", True)]
    assert node.attempts[0].error.startswith("CUDAKernelError")


def test_non_transient_errors_are_not_retried(registry):
    res = pipeline(chain_spec({"fail": ["cpu"]}), registry, max_retries=5).run({"x": X})
    assert [a.kind for a in res.report.nodes["n0"].attempts] == ["cpu", "simplified"]


# -- the report ------------------------------------------------------------------------------
def test_report_contents_and_json(registry, fake_cuda):
    cfg = {"fail": ["cuda"], "transient_kinds": ["cpu"], "transient_failures": 1}
    res = pipeline(chain_spec(cfg, {"factor": 3}), registry).run({"x": X})
    rep = res.report
    assert isinstance(rep, RunReport) and rep.ok and rep.graph == "chain" and rep.error is None
    assert list(rep.nodes) == ["n0", "n1"]
    n0, n1 = rep.nodes["n0"], rep.nodes["n1"]
    assert (n0.stage, n0.implementation, n0.device) == ("flaky", "cpu", "cpu")
    assert (n1.implementation, n1.device) == ("cuda", "cuda")
    assert len(n0.attempts) == 3 and len(n1.attempts) == 1 and not n1.fell_back
    assert n0.errors == ["cuda: CUDAKernelError: [n0/cuda] RuntimeError: injected runtime failure in cuda",
                         "cpu: TransientError: busy (1)"]
    assert n0.seconds >= sum(a.seconds for a in n0.attempts) > 0
    assert rep.seconds >= n0.seconds + n1.seconds
    assert rep.devices() == {"cpu", "cuda"}
    data = json.loads(json.dumps(rep.to_dict()))
    assert data["nodes"]["n0"]["implementation"] == "cpu"
    assert data["nodes"]["n0"]["fell_back"] is True and data["nodes"]["n1"]["fell_back"] is False
    assert [a["ok"] for a in data["nodes"]["n0"]["attempts"]] == [False, False, True]
    assert data["nodes"]["n0"]["attempts"][1]["error"] == "TransientError: busy (1)"
    table = rep.format_table()
    assert "n0" in table and "flaky" in table and table.splitlines()[-1].startswith("total ")
    assert table.splitlines()[-1].endswith(", ok")
    np.testing.assert_allclose(res["y"], X * 6)


def test_bad_graph_inputs(registry):
    pipe = pipeline(chain_spec({}), registry)
    with pytest.raises(InputError, match="missing graph input"):
        pipe.run({})
    with pytest.raises(InputError, match=r"unknown graph input\(s\) z"):
        pipe.run({"x": X, "z": 1})


def test_implementation_returning_garbage_falls_back(registry):
    from engine_helpers import Flaky

    from vcgraph.hookspecs import hookimpl
    from vcgraph.stage import implementation

    class Garbage(Flaky):
        name = "garbage"

        @implementation("cpu")
        def run_cpu(self, ctx, x):
            return {"wrong": x}

    class P:
        @hookimpl
        def register_stages(self, register):
            register(Garbage)

    registry.register(P(), "garbage")
    res = pipeline(chain_spec({}, stage="garbage"), registry).run({"x": X})
    node = res.report.nodes["n0"]
    assert node.errors == ["cpu: StageError: [n0/cpu] implementation did not produce output(s) x"]
    assert node.implementation == "simplified"


# -- progress --------------------------------------------------------------------------------
def test_progress_is_monotonic_and_ends_completed(registry):
    seen = []
    pipeline(chain_spec({}, {}, {}), registry).run({"x": X}, progress_callback=lambda p, s: seen.append((p, s)))
    assert [s for _, s in seen] == ["n0", "n1", "n2", "completed"]
    percents = [p for p, _ in seen]
    assert percents[0] == 0.0 and seen[-1] == (100.0, "completed")
    assert all(a < b for a, b in zip(percents, percents[1:]))
    assert percents[1] == pytest.approx(100 / 3)


def test_progress_completes_after_graph_fallback(registry):
    seen = []
    pipeline(safe_chain({}, {"fail": ALL}), registry).run({"x": X}, progress_callback=lambda p, s: seen.append((p, s)))
    assert seen[-1] == (100.0, "completed")


# -- concurrency -----------------------------------------------------------------------------
def test_concurrent_runs_share_one_pipeline(registry, fake_cuda):
    spec = {"name": "conc", "inputs": {"x": {"type": "array"}},
            "nodes": {"a": {"stage": "flaky", "config": {"factor": 3, "fail": ["cuda"], "record": False},
                            "inputs": {"x": "inputs.x"}},
                      "acc": {"stage": "accumulate", "inputs": {"x": "a.x"}},
                      "b": {"stage": "flaky", "config": {"factor": 0.5, "record": False}, "inputs": {"x": "acc.x"}}},
            "outputs": {"y": "b.x"}}
    pipe = pipeline(spec, registry)
    SETUPS.clear()
    errors, bad = [], []
    barrier = threading.Barrier(8)

    def worker(t: int) -> None:
        try:
            barrier.wait()
            for j in range(25):
                value = np.full(4, 100.0 * t + j)
                res = pipe.run({"x": value})
                if not np.allclose(res["y"], value * 1.5) or res.report.nodes["a"].implementation != "cpu":
                    bad.append((t, j, res["y"]))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not errors and not bad
    stats = pipe.stats.snapshot()
    assert stats["total_runs"] == 200 and stats["successful_runs"] == 200 and stats["failed_runs"] == 0
    assert stats["devices"] == {"cpu": 200, "cuda": 200}
    assert stats["average_processing_time"] > 0
    # each stage instance was set up once per kind, however many threads raced for it
    assert SETUPS == {("flaky", "cuda"): 2, ("flaky", "cpu"): 1}


# -- memory ----------------------------------------------------------------------------------
def test_memory_stays_flat_over_many_runs(registry):
    pipe = pipeline(chain_spec(*[{"record": False}] * 5), registry)
    x = np.ones(1000)
    for _ in range(30):
        pipe.run({"x": x})
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(300):
            pipe.run({"x": x})
        gc.collect()
        growth = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert growth < 256 * 1024, f"memory grew by {growth} bytes over 300 runs"
    assert pipe.stats.snapshot()["total_runs"] == 330


def test_intermediate_values_are_released_after_their_last_consumer(registry):
    spec = {"name": "boxes", "inputs": {"x": {"type": "array"}},
            "nodes": {"boxer": {"stage": "boxer", "inputs": {"x": "inputs.x"}},
                      "unbox": {"stage": "unbox", "inputs": {"box": "boxer.box"}},
                      "probe": {"stage": "alive-probe", "inputs": {"x": "unbox.x"}}},
            "outputs": {"y": "probe.x", "alive": "probe.alive"}}
    BOXES.clear()
    res = pipeline(spec, registry).run({"x": X})
    assert len(BOXES) == 2
    # both the consumed box and the box nobody reads were freed before `probe` ran
    assert res["alive"] == 0
    np.testing.assert_allclose(res["y"], X)
    assert all(ref() is None for ref in BOXES)


def test_a_stage_is_told_which_of_its_outputs_are_read(registry):
    """``ctx.outputs_read``: ports read by another node or a graph output, nothing else."""
    spec = {"name": "boxes", "inputs": {"x": {"type": "array"}},
            "nodes": {"boxer": {"stage": "boxer", "inputs": {"x": "inputs.x"}},
                      "unbox": {"stage": "unbox", "inputs": {"box": "boxer.box"}}},
            "outputs": {"y": "unbox.x"}}
    OUTPUTS_READ.clear()
    pipeline(spec, registry).run({"x": X})
    spec["outputs"]["extra"] = "boxer.extra"
    pipeline(spec, registry).run({"x": X})
    del spec["nodes"]["unbox"]
    spec["outputs"] = {"extra": "boxer.extra"}
    pipeline(spec, registry).run({"x": X})
    assert OUTPUTS_READ == [frozenset({"box"}), frozenset({"box", "extra"}), frozenset({"extra"})]


# -- cut and stream --------------------------------------------------------------------------
def branching_spec() -> dict:
    return {"name": "branch", "inputs": {"x": {"type": "array"}, "w": {"type": "array"}},
            "nodes": {"a": {"stage": "flaky", "config": {"factor": 2}, "inputs": {"x": "inputs.x"}},
                      "b": {"stage": "flaky", "config": {"factor": 3}, "inputs": {"x": "a.x"}},
                      "c": {"stage": "add", "inputs": {"a": "a.x", "b": "inputs.w"}}},
            "outputs": {"y": "b.x", "x": "c.sum"},
            "fallback": {"stage": "safe", "inputs": {"x": "inputs.x"}}}


def test_cut_keeps_only_what_the_outputs_need(registry):
    pipe = pipeline(branching_spec(), registry)
    full = pipe.run({"x": X, "w": X})
    np.testing.assert_allclose(full["y"], X * 6)
    np.testing.assert_allclose(full["x"], X * 3)
    part = pipe.cut({"y": "b.x"})
    assert list(part.graph.nodes) == ["a", "b"]
    assert list(part.graph.spec.inputs) == ["x"] and part.graph.fallback is None
    assert part.registry is registry
    res = part.run({"x": X})  # `w` is no longer an input
    assert list(res.outputs) == ["y"]
    np.testing.assert_allclose(res["y"], X * 6)
    assert list(pipe.cut({"mid": "a.x"}).graph.nodes) == ["a"]
    assert pipe.stats.snapshot()["total_runs"] == 1  # the cut has its own statistics


def test_cut_follows_wiring_not_declaration_order(registry):
    spec = {"inputs": {"x": {}}, "nodes": {
        "d": {"stage": "flaky", "config": {"factor": 5}, "inputs": {"x": "b.x"}},
        "b": {"stage": "flaky", "config": {"factor": 3}, "inputs": {"x": "a.x"}},
        "c": {"stage": "flaky", "config": {"factor": 1}, "inputs": {"x": "inputs.x"}},
        "a": {"stage": "flaky", "config": {"factor": 2}, "inputs": {"x": "c.x"}}},
        "outputs": {"y": "d.x"}}
    pipe = pipeline(spec, registry)
    assert list(pipe.graph.nodes) == ["c", "a", "b", "d"]
    part = pipe.cut({"y": "b.x"})
    assert set(part.graph.nodes) == {"a", "b", "c"}
    np.testing.assert_allclose(part.run({"x": X})["y"], X * 6)


def test_stream_keeps_state_across_blocks(registry):
    spec = chain_spec({}, stage="accumulate")
    pipe = pipeline(spec, registry)
    stream = pipe.stream()
    outs = [stream.process({"x": np.array([v])})["y"][0] for v in (1.0, 2.0, 3.0)]
    assert outs == [1.0, 3.0, 6.0]
    other = pipe.stream()
    assert other.process({"x": np.array([10.0])})["y"][0] == 10.0  # streams are independent
    assert stream.process({"x": np.array([4.0])})["y"][0] == 10.0
    stream.reset()
    assert stream.process({"x": np.array([5.0])})["y"][0] == 5.0
    assert pipe.run({"x": np.array([7.0])})["y"][0] == 7.0  # a plain run has fresh state
    assert pipe.run({"x": np.array([7.0])})["y"][0] == 7.0
