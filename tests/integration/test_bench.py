"""The CPU bench (``python -m bench --quick``) end to end with the tiny SD3: the report has the
call counts by phase, the ratios, and exactly one batched model call per CSDS iteration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support.comfy_server import tool_env

REPO = Path(__file__).resolve().parents[2]


def test_quick_cpu_bench_reports_calls_and_ratios(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "bench",
        "--quick",
        "--steps",
        "10",
        "--iterations",
        "4",
        "--repeats",
        "1",
        "--sweep-repeats",
        "1",
        "--device-tag",
        "pytest",
        "--out-dir",
        str(tmp_path),
    ]
    done = subprocess.run(cmd, cwd=REPO, env=tool_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "pytest.json").read_text(encoding="utf-8"))
    assert (tmp_path / "pytest.md").read_text(encoding="utf-8").startswith("# EMS vs img2img")

    calls = report["calls"]
    assert calls["img2img"] == {"sampling": {"calls": 10, "batch_sizes": [2]}}
    assert calls["ems"]["csds"] == {"calls": 4, "batch_sizes": [3]}  # [c̃, attribute, negative] per iteration
    assert calls["ems"]["sampling"] == {"calls": 10, "batch_sizes": [2]}
    assert "csds" not in calls["text_only"]
    assert calls["sweep_batched"]["csds"] == {"calls": 4, "batch_sizes": [15]}
    assert calls["sweep_separate"]["csds"] == {"calls": 20, "batch_sizes": [3]}
    assert report["checks"]["one_call_per_csds_iteration"] is True
    # EMS Flow Edit: one call per step for [target point, source point] × [cond, uncond] × the
    # default noise_average × items
    from comfyui_ems.ems.flow_edit import DEFAULTS

    per_step = 2 * 2 * DEFAULTS["noise_average"]
    assert calls["flow_edit"] == {"sampling": {"calls": 10, "batch_sizes": [per_step]}}
    assert calls["flow_sweep_batched"] == {"sampling": {"calls": 10, "batch_sizes": [5 * per_step]}}
    assert calls["flow_sweep_separate"] == {"sampling": {"calls": 50, "batch_sizes": [per_step]}}
    assert report["checks"]["one_call_per_flow_edit_step"] is True
    assert report["ratios"]["flow_edit_time_vs_img2img"] > 0

    for key in (
        "ems_time_vs_img2img",
        "text_only_time_vs_img2img",
        "sweep_batched_time_vs_separate",
        "ems_peak_memory_vs_img2img",
    ):
        assert report["ratios"][key] > 0
    assert {t["target"] for t in report["targets"]} >= {"exactly 1 model call per CSDS iteration"}
    assert report["machine"]["comfyui"] and report["settings"]["iterations"] == 4
    assert report["timing"]["ems"]["peak_bytes"] > 0
