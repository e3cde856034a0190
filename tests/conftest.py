"""Shared fixtures of the engine tests (the fault plugin lives in engine_helpers.py)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ECHO_SRC = ROOT / "examples" / "vcgraph-echo"


@pytest.fixture
def cpu_only(monkeypatch):
    """Hide any GPU (VCGRAPH_DISABLE_CUDA=1, also for subprocesses): tests that describe what
    happens without CUDA then hold on a GPU machine too. ``fake_cuda`` still pretends one."""
    from vcgraph.devices import cuda_available
    monkeypatch.setenv("VCGRAPH_DISABLE_CUDA", "1")
    cuda_available.cache_clear()
    yield
    cuda_available.cache_clear()


@pytest.fixture
def registry(cpu_only):
    """A fresh registry holding only the fault-injecting test plugin (on a machine without CUDA,
    unless the test asks for ``fake_cuda``)."""
    from engine_helpers import CALLS, make_registry
    CALLS.clear()
    return make_registry()


@pytest.fixture
def fake_cuda(monkeypatch):
    """Pretend CUDA is present, so cuda implementations are tried on this CPU machine."""
    monkeypatch.setattr("vcgraph.devices.cuda_available", lambda: True)


@pytest.fixture(scope="session")
def echo_target(tmp_path_factory) -> Path:
    """examples/vcgraph-echo installed for real (pip --target) into a temporary folder.

    The source is copied first so the build leaves no build/ or *.egg-info in the repository.
    """
    base = tmp_path_factory.mktemp("echo-install")
    src = base / "src"
    shutil.copytree(ECHO_SRC, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = base / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                           "--no-input", "--disable-pip-version-check", "--quiet", "--target", str(target),
                           str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (target / "vcgraph_echo" / "__init__.py").exists()
    return target


@pytest.fixture
def echo_env(monkeypatch, echo_target, cpu_only):
    """The installed echo plugin on sys.path, the process-wide registry reset around the test.

    VCGRAPH_PLUGINS=echo keeps the test independent of the other installed plugins.
    """
    import vcgraph.plugins
    monkeypatch.syspath_prepend(str(echo_target))
    monkeypatch.setenv("VCGRAPH_PLUGINS", "echo")
    monkeypatch.delenv("VCGRAPH_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    vcgraph.plugins.reset_registry()
    yield echo_target
    vcgraph.plugins.reset_registry()



@pytest.fixture(scope="session")
def ray_cluster():
    """A local 2-CPU Ray cluster for the batch tests (skipped when Ray Data is not installed).

    Actors get this test folder on PYTHONPATH, so they can import the test helpers too.
    """
    ray = pytest.importorskip("ray", reason="Ray is optional: pip install 'vcgraph[ray]'")
    pytest.importorskip("ray.data", reason="Ray Data is optional: pip install 'vcgraph[ray]'")
    import os
    here = str(Path(__file__).resolve().parent)
    path = os.pathsep.join([here] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()


def pytest_terminal_summary(terminalreporter):
    _summarize_skips(terminalreporter)
    _summarize_fuzz_cases(terminalreporter)


def _summarize_skips(terminalreporter):
    """Say once why tests were skipped (most need ../shared, which users do not have)."""
    from collections import Counter
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons: Counter = Counter()
    for report in skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    terminalreporter.write_sep("-", f"{len(skipped)} skipped")
    for reason, n in reasons.most_common():
        terminalreporter.write_line(f"{n:4d} {reason}")


def _summarize_fuzz_cases(terminalreporter):
    """The number of property-based cases run, per property and outcome."""
    import sys
    support = sys.modules.get("fuzz_support")
    if support is None or not support.CASES:
        return
    total = sum(support.CASES.values())
    terminalreporter.write_sep("-", f"{total} property-based cases run")
    for name, n in sorted(support.CASES.items()):
        terminalreporter.write_line(f"{n:6d}  {name}")
