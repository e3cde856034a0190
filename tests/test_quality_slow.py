"""Quality bars of the default preset (content) and of the quality preset, scored by the
independent tool (slow: minutes each).

Runs ``../shared/tools/vc_score.py`` through the real command line (enroll + convert), as the
issue measures it. Skipped where the development data and tool are absent. The second encoder
(CAM++) and recogniser (Whisper) are checked where ``install-judges.sh`` installed them.
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

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not TOOL.exists(), reason="../shared/tools/vc_score.py is not here")]


def vc_score(*convert_args: str) -> dict:
    vcgraph = f"{shutil.which('vcgraph') or sys.executable + ' -m vcgraph.cli'}"
    proc = subprocess.run(
        [sys.executable, str(TOOL),
         "--enroll", f"{vcgraph} enroll {{refs}} -o {{out}} --no-progress",
         "--convert", f"{vcgraph} convert {{src}} --target {{profile}} -o {{out}} --no-progress {' '.join(convert_args)}"],
        capture_output=True, text=True, timeout=3600)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("SUMMARY ", 1)[1].splitlines()[0])


def test_default_preset_is_the_target_to_both_encoders():
    """The default (content): measured 0.844 / 1.00, CAM++ 0.782 against 0.541 to the source,
    pocketsphinx ratio 1.65, Whisper ratio 1.68 with torch's 2 threads (README, 2026-12-07's
    sixth session; four defaults before: 0.836, CAM++ 0.752 / 0.534, 1.61, 2.06; the CAM++ bar
    of 0.76 fails without the matched frames' adaptive envelopes, 0.758). The thread count
    changes the output only by float rounding, yet moves Whisper's ratio on these 24 conversions by up to 0.35 (the
    preset before: 1.81 with 2 threads, 2.16 with 1), so its bar sits that far above; the bars
    leave room for that spread and fail on a real regression."""
    s = vc_score()
    assert s["sim_target"] >= 0.80 and s["ident"] >= 0.9, s
    assert s["wer_ratio"] <= 2.3, s
    if s.get("sim2_target") is not None:
        assert s["sim2_target"] >= s["sim2_source"] + 0.15 and s["ident2"] >= 0.9, s
        assert s["sim2_target"] >= 0.76, s
    if s.get("wer2_ratio") is not None:
        assert s["wer2_ratio"] <= 2.4, s


def test_quality_preset_meets_its_bar():
    s = vc_score("--config", "quality")
    assert s["sim_target"] >= 0.80, s
    assert s["ident"] >= 0.9, s
    assert s["wer_ratio"] <= 1.5, s
