"""The engine's batch runner on the fault plugin (arrays in .npy files): results file, bad items,
existing outputs, resume after a kill, unwritable output folders, worker processes and Ray."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vcgraph.batch import PART_MARK, BatchItem, FatalWorkerError, read_results, run_batch
from vcgraph.errors import UserError

import engine_helpers as eh

HERE = Path(__file__).resolve().parent


def make_inputs(folder: Path, n: int, bad: tuple[int, ...] = ()) -> list[BatchItem]:
    """n arrays as .npy files (the ones in ``bad`` are junk), one item each."""
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(n):
        path = folder / f"in{i}.npy"
        if i in bad:
            path.write_bytes(b"not an array")
        else:
            np.save(path, np.arange(5.0) + 10 * i)
        items.append(BatchItem(str(path), f"part/out{i}.npy", {"x": str(path)}))
    return items


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def triple():
    return eh.pipeline(eh.chain_spec({"factor": 3.0}))


def test_bad_items_are_recorded_and_the_rest_done(tmp_path, triple):
    items = make_inputs(tmp_path / "in", 4, bad=(1,))
    before = digest(tmp_path / "in")
    summary = run_batch(triple, items, tmp_path / "out")
    assert (summary.ok, summary.failed, summary.skipped) == (3, 1, 0)
    lines = read_results(tmp_path / "out" / "results.jsonl")
    assert [Path(r["source"]).name for r in lines] == [f"in{i}.npy" for i in range(4)]
    assert [r["status"] for r in lines] == ["ok", "error", "ok", "ok"]
    assert lines[1]["error"] and not (tmp_path / "out" / "part" / "out1.npy").exists()
    for i in (0, 2, 3):
        np.testing.assert_array_equal(np.load(tmp_path / "out" / "part" / f"out{i}.npy"), 3 * (np.arange(5.0) + 10 * i))
        assert lines[i]["report"]["implementations"] == {"n0": "cpu@cpu"} and lines[i]["seconds"] > 0
    assert digest(tmp_path / "in") == before  # inputs never modified
    assert not [p for p in (tmp_path / "out").rglob("*") if PART_MARK in p.name]


def test_existing_outputs_are_an_error_before_any_work_unless_resume_or_overwrite(tmp_path, triple):
    items = make_inputs(tmp_path / "in", 3)
    out = tmp_path / "out"
    (out / "part").mkdir(parents=True)
    (out / "part" / "out1.npy").write_bytes(b"mine")
    with pytest.raises(UserError, match="1 output.*already exist.*out1.npy"):
        run_batch(triple, items, out)
    assert (out / "part" / "out1.npy").read_bytes() == b"mine"
    assert not (out / "part" / "out0.npy").exists() and not (out / "results.jsonl").exists()

    summary = run_batch(triple, items, out, resume=True)
    assert [r["status"] for r in summary.results] == ["skipped", "ok", "ok"]
    assert (out / "part" / "out1.npy").read_bytes() == b"mine"

    summary = run_batch(triple, items, out, overwrite=True)
    assert summary.ok == 3
    np.testing.assert_array_equal(np.load(out / "part" / "out1.npy"), 3 * (np.arange(5.0) + 10))
    assert len(read_results(out / "results.jsonl")) == 6  # each run appends its lines


def test_item_mistakes_are_errors_before_any_work(tmp_path, triple):
    items = make_inputs(tmp_path / "in", 2)
    with pytest.raises(UserError, match="same output"):
        run_batch(triple, [items[0], BatchItem(items[1].source, items[0].output, items[1].inputs)], tmp_path / "o1")
    src = Path(items[0].source)
    with pytest.raises(UserError, match="is also an input"):
        run_batch(triple, [BatchItem(str(src), src.name, {"x": str(src)})], src.parent)
    with pytest.raises(UserError, match="not inside the output folder"):
        run_batch(triple, [BatchItem(str(src), "../escape.npy", {"x": str(src)})], tmp_path / "o2")
    with pytest.raises(UserError, match="choose one"):
        run_batch(triple, items, tmp_path / "o3", resume=True, overwrite=True)
    assert not (tmp_path / "o1" / "results.jsonl").exists() and not (tmp_path / "escape.npy").exists()


def test_an_output_folder_that_cannot_be_created_is_an_error_before_any_work(tmp_path, triple):
    # Tests run as root here, and chmod does not stop root: a path below a regular file cannot
    # be created by anyone.
    items = make_inputs(tmp_path / "in", 2)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot create the output folder .*a-file"):
        run_batch(triple, items, blocker / "out")
    assert blocker.read_text() == "x"


def unwritable_folder(tmp_path: Path) -> Path:
    """An existing folder this user cannot write: chmod 555 for a normal user; for root, which
    chmod does not stop, sysfs's top folder (root cannot create files there either)."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    folder = Path("/sys")
    try:
        (folder / "vcgraph-probe").open("wb").close()
    except OSError:
        return folder
    os.remove(folder / "vcgraph-probe")
    pytest.skip("running as root and no folder here that root cannot write")


def test_a_read_only_output_folder_is_an_error_before_any_work(tmp_path, triple):
    items = make_inputs(tmp_path / "in", 2)
    folder = unwritable_folder(tmp_path)
    with pytest.raises(UserError, match="cannot write to the output folder"):
        run_batch(triple, items, folder)
    assert not (folder / "results.jsonl").exists()


KILLED_RUN = """
import sys
sys.path.insert(0, {here!r})
import engine_helpers as eh
from vcgraph.batch import BatchItem, run_batch
items = [BatchItem(s, o, {{"x": s}}) for s, o in {items!r}]
pipe = eh.pipeline(eh.chain_spec({{"factor": 3.0, "sleep": 0.4}}))
run_batch(pipe, items, {out!r}, resume={resume!r})
"""


def test_resume_after_a_kill_redoes_nothing_and_leaves_nothing_half_written(tmp_path):
    items = make_inputs(tmp_path / "in", 8)
    out = tmp_path / "out"
    script = KILLED_RUN.format(here=str(HERE), items=[(i.source, i.output) for i in items], out=str(out),
                               resume=False)
    proc = subprocess.Popen([sys.executable, "-c", script], env=eh.subprocess_env(OMP_NUM_THREADS="1"))
    results = out / "results.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and len(read_results(results)) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = read_results(results)
    done = {r["output"] for r in first if r["status"] == "ok"}
    assert 2 <= len(done) < len(items), "the run should have been killed part way"
    finals = [p for p in (out / "part").iterdir() if PART_MARK not in p.name]
    for p in finals:  # whatever has its final name is complete
        i = int(p.stem[3:])
        np.testing.assert_array_equal(np.load(p), 3 * (np.arange(5.0) + 10 * i))
    (out / "part" / f".out7{PART_MARK}dead.npy").write_bytes(b"half")  # as a kill during a write leaves

    summary = run_batch(eh.pipeline(eh.chain_spec({"factor": 3.0})), items, out, resume=True)
    assert {r["output"] for r in summary.results if r["status"] == "skipped"} == {str(p) for p in finals}
    assert summary.ok == len(items) - len(finals) and summary.failed == 0
    lines = read_results(results)
    ok_per_output: dict[str, int] = {}
    for r in lines:
        if r["status"] == "ok":
            ok_per_output[r["output"]] = ok_per_output.get(r["output"], 0) + 1
    assert sorted(ok_per_output.values()) == [1] * len(items)  # each item converted exactly once
    assert not [p for p in out.rglob("*") if PART_MARK in p.name]
    for i in range(len(items)):
        np.testing.assert_array_equal(np.load(out / "part" / f"out{i}.npy"), 3 * (np.arange(5.0) + 10 * i))


def test_worker_processes_give_the_same_outputs(tmp_path, triple):
    items = make_inputs(tmp_path / "in", 4, bad=(2,))
    one = run_batch(triple, items, tmp_path / "one")
    two = run_batch(triple, items, tmp_path / "two", workers=2, worker_init=eh.register_faults)
    assert sorted((Path(r["output"]).name, r["status"]) for r in two.results) == \
        sorted((Path(r["output"]).name, r["status"]) for r in one.results)
    assert all(r["worker"].split(":")[-1] != str(os.getpid()) for r in two.results)  # not this process
    for i in (0, 1, 3):
        assert (tmp_path / "one" / "part" / f"out{i}.npy").read_bytes() == \
            (tmp_path / "two" / "part" / f"out{i}.npy").read_bytes()


def _broken_init():
    raise RuntimeError("no plugin here")


def test_a_worker_that_cannot_load_the_pipeline_stops_the_run(tmp_path, triple):
    items = make_inputs(tmp_path / "in", 3)
    with pytest.raises(FatalWorkerError, match="no plugin here"):
        run_batch(triple, items, tmp_path / "out", workers=2, worker_init=_broken_init)


def test_ray_engine_without_ray_says_what_to_install(tmp_path, triple, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UserError, match=r"pip install 'vcgraph\[ray\]'"):
        run_batch(triple, make_inputs(tmp_path / "in", 1), tmp_path / "out", engine="ray")
    assert not (tmp_path / "out").exists()  # before any work


def test_ray_engine_writes_the_same_outputs_and_results(tmp_path, triple, ray_cluster):
    items = make_inputs(tmp_path / "in", 4, bad=(1,))
    local = run_batch(triple, items, tmp_path / "local")
    summary = run_batch(triple, items, tmp_path / "ray", engine="ray", worker_init=eh.register_faults)
    assert (summary.ok, summary.failed) == (3, 1)
    lines = read_results(tmp_path / "ray" / "results.jsonl")
    assert sorted((Path(r["source"]).name, r["status"]) for r in lines) == \
        sorted((Path(r["source"]).name, r["status"]) for r in local.results)
    assert all(r["worker"].split(":")[-1] != str(os.getpid()) for r in lines)  # ran in actors
    for i in (0, 2, 3):
        assert (tmp_path / "ray" / "part" / f"out{i}.npy").read_bytes() == \
            (tmp_path / "local" / "part" / f"out{i}.npy").read_bytes()
    again = run_batch(triple, items, tmp_path / "ray", engine="ray", resume=True, worker_init=eh.register_faults)
    assert (again.skipped, again.ok, again.failed) == (3, 0, 1)


def test_map_dataset_runs_a_users_ray_dataset_through_a_pipeline(triple, ray_cluster):
    from vcgraph.batch_ray import map_dataset
    ds = ray_cluster.data.from_items([{"id": i, "x": np.arange(3.0) + i} for i in range(4)])
    out = map_dataset(ds, triple, lambda row: {"x": row["x"]},
                      lambda row, outputs: {"id": row["id"], "y": outputs["y"] if outputs else np.zeros(3)},
                      worker_init=eh.register_faults)
    rows = sorted(out.take_all(), key=lambda r: r["id"])
    assert [r["vcgraph_status"] for r in rows] == ["ok"] * 4
    for r in rows:
        np.testing.assert_array_equal(r["y"], 3 * (np.arange(3.0) + r["id"]))


def test_a_torn_last_line_of_the_results_file_does_not_spoil_the_next_run(tmp_path, triple):
    items = make_inputs(tmp_path / "in", 2)
    out = tmp_path / "out"
    run_batch(triple, items[:1], out)
    with open(out / "results.jsonl", "a") as fh:
        fh.write('{"source": "killed while writi')  # as a kill during the write leaves it
    run_batch(triple, items, out, resume=True)
    lines = read_results(out / "results.jsonl")
    assert [(Path(r["source"]).name, r["status"]) for r in lines] == \
        [("in0.npy", "ok"), ("in0.npy", "skipped"), ("in1.npy", "ok")]
