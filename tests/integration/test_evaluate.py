"""``python -m bench.evaluate`` on a 2-item manifest with the tiny SD3; a rerun skips finished items."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def manifest(tmp: Path) -> Path:
    rng = np.random.default_rng(0)
    for name in ("cat", "car"):
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype("uint8")).save(tmp / f"{name}.png")
    mask = np.zeros((32, 32), dtype="uint8")
    mask[8:24, 8:24] = 255
    Image.fromarray(mask).save(tmp / "cat_mask.png")
    items = [{"image": "cat.png", "source_prompt": "a photo of a cat", "target_prompt": "a photo of a smiling cat",
              "attribute": "smiling", "mask": "cat_mask.png"},
             {"id": "car1", "image": "car.png", "source_prompt": "a red car", "target_prompt": "a blue car"}]
    path = tmp / "manifest.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    return path


def evaluate(path: Path, out: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "bench.evaluate", str(path), "--out", str(out), "--tiny", "--size", "32",
           "--steps", "4", "--iterations", "2", "--alphas", "0,1"]
    return subprocess.run(cmd, cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=240)


def test_manifest_end_to_end_and_resume(tmp_path):
    path, out = manifest(tmp_path), tmp_path / "out"
    first = evaluate(path, out)
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert [(r["item"], r["alpha"]) for r in report["rows"]] == [("cat", 0.0), ("cat", 1.0), ("car1", 0.0), ("car1", 1.0)]
    assert {"psnr", "ssim", "psnr_bg", "ssim_bg"} <= set(report["metrics"])
    assert all(r["psnr"] is not None and 0 <= r["ssim"] <= 1 for r in report["rows"])
    assert report["rows"][0]["psnr_bg"] is not None and report["rows"][2].get("psnr_bg") is None  # car1 has no mask
    assert set(report["mean_per_alpha"]) == {"0", "1"}
    assert (out / "items" / "cat" / "alpha_1.png").is_file()
    assert "Mean per α" in (out / "results.md").read_text(encoding="utf-8")

    finished = out / "items" / "car1" / "result.json"
    stamp = finished.stat().st_mtime_ns
    second = evaluate(path, out)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "evaluated 0 item(s), skipped 2 finished" in second.stderr
    assert finished.stat().st_mtime_ns == stamp
    assert json.loads((out / "results.json").read_text(encoding="utf-8"))["rows"] == report["rows"]
