"""Quality bar of the default preset, scored by the independent tool (slow: minutes).

Runs ``../shared/tools/vc_score.py`` through the real command line (enroll + convert), as the
issue measures it. Skipped where the development data and tool are absent.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT.parent / "shared" / "tools" / "vc_score.py"

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not TOOL.exists(), reason="../shared/tools/vc_score.py is not here")
def test_default_preset_meets_the_quality_bar():
    vcgraph = f"{shutil.which('vcgraph') or sys.executable + ' -m vcgraph.cli'}"
    proc = subprocess.run(
        [sys.executable, str(TOOL),
         "--enroll", f"{vcgraph} enroll {{refs}} -o {{out}} --no-progress",
         "--convert", f"{vcgraph} convert {{src}} --target {{profile}} -o {{out}} --no-progress"],
        capture_output=True, text=True, timeout=3600)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.split("SUMMARY ", 1)[1].splitlines()[0])
    assert summary["sim_target"] >= 0.80, summary
    assert summary["ident"] >= 0.9, summary
    assert summary["wer_ratio"] <= 1.5, summary
