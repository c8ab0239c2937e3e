"""``python -m bench.toy --quick`` end to end through real ComfyUI (in-process sampling path):
every method runs on the same scenes, the report, JSON and one picture per method are written,
model calls per method are what the graphs imply, and α = 0 is no edit for every method that has
a degree (EMS with CSDS on = img2img with the source caption; FlowEdit = the source itself).

The tiny random SD3 stands in for the trained toy model here (seconds instead of a minute of
text-encoder rebuilding); the scenes, edits and readout are the toy world's own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support.comfy_server import tool_env

REPO = Path(__file__).resolve().parents[2]
STEPS, ITERATIONS, REF_STEPS = 4, 2, 4
ALPHAS = [0.0, 0.5, 1.0]


def test_quick_toyworld_report_runs_every_method_on_the_same_scenes(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "bench.toy",
        "--quick",
        "--tiny",
        "--kinds",
        "colour,count",
        "--steps",
        str(STEPS),
        "--iterations",
        str(ITERATIONS),
        "--reference-steps",
        str(REF_STEPS),
        "--tag",
        "pytest",
        "--out-dir",
        str(tmp_path),
        "--cache",
        str(tmp_path / "cache"),
    ]
    done = subprocess.run(cmd, cwd=REPO, env=tool_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "pytest.json").read_text(encoding="utf-8"))
    md = (tmp_path / "pytest.md").read_text(encoding="utf-8")
    assert md.startswith("# EMS in the toy world") and "toy model" in md and "not SD3" in md

    methods = [
        "img2img",
        "text_only",
        "ems",
        "flowedit",
        "ems_flowedit",
        "ode_inversion",
        "latent_linear",
        "latent_svd",
    ]
    assert report["methods"] == methods and report["alphas"] == ALPHAS
    assert [c["kind"] for c in report["cases"]] == ["colour", "count"]
    for m in methods:
        assert (tmp_path / report["pictures"][m]).stat().st_size > 1000
        assert f"]({report['pictures'][m]})" in md

    for case in report["cases"]:
        assert set(case["methods"]) == set(methods)
        got = {m: (case["methods"][m]["calls"], [r["alpha"] for r in case["methods"][m]["rows"]]) for m in methods}
        assert got["img2img"] == (STEPS, [1.0])  # the target caption, no degree
        assert got["text_only"] == (STEPS, ALPHAS)  # one batched sweep
        assert got["ems"] == (ITERATIONS + STEPS, ALPHAS)  # one call per CSDS iteration
        assert got["flowedit"] == (2 * STEPS, ALPHAS)  # v under target and source
        assert got["ems_flowedit"] == (STEPS, ALPHAS)  # both points in one batched call
        assert got["ode_inversion"] == (2 * STEPS, ALPHAS)  # inversion up, sampling down
        for m in ("latent_linear", "latent_svd"):
            assert got[m] == (STEPS + 2 * REF_STEPS, ALPHAS)  # + the generated reference pair
        for m in methods:
            for row in case["methods"][m]["rows"]:
                assert set(row["read"]) == {"colour", "shape", "count", "size", "background"}
                assert 0.0 <= row["kept"] <= 1.0 and isinstance(row["reached"], bool)
        # α = 0 is no edit (0–255 pixel values after VAE Decode)
        checks = case["alpha0_checks"]
        assert checks["ems_vs_img2img_source_caption"] <= 1, checks
        assert checks["latent_linear_vs_img2img_source_caption"] <= 1, checks
        assert checks["latent_svd_vs_img2img_source_caption"] <= 1, checks
        assert checks["flowedit_vs_source_latent"] <= 1, checks
        # the input latent bit for bit (tests/integration/test_flow_edit.py); decoded in a batch of 3
        # against the round trip's batch of 1, the 8-bit pictures may differ by float rounding
        assert checks["ems_flowedit_vs_source_latent"] <= 1, checks
        assert "sde" in case and case["sde"]["err_flipped"] >= 0

    assert report["cached_results"] == 0 and len(list((tmp_path / "cache").glob("*.npz"))) == 2 * len(methods)

    summary = report["summary"]
    for m in methods:
        for key in ("reached_at_1", "kept_at_1", "psnr_out_at_1", "model_calls_per_edit", "seconds_per_edit"):
            assert key in summary[m]["all"] and key in summary[m]["colour"]
    assert summary["ems"]["all"]["model_calls_per_edit"] == (ITERATIONS + STEPS) / len(ALPHAS)
