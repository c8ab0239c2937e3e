"""The README's main job, ``python -m headless --demo``, end to end: a real ComfyUI subprocess runs
the shipped EMS Flow Edit sweep on the toy world, α = 0 is the source scene after the VAE round
trip (the same objects in place), α = 1 reads as the target colour, and a readout line per tile."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from PIL import Image

from support.comfy_server import REPO


def test_the_demo_edits_the_same_scene(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "headless", "--demo", "--output", str(tmp_path)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    tiles = sorted(run.rglob("*flow_sweep*.png"))
    assert len(tiles) == 5, sorted(p.name for p in run.rglob("*.png"))
    grids = sorted(p for p in run.rglob("*flow_grid*.png") if not p.stem.endswith("_x4"))
    assert grids, "the labelled grid is saved"
    with Image.open(grids[0]) as grid, Image.open(grids[0].with_name(grids[0].stem + "_x4.png")) as big:
        assert big.size == (4 * grid.width, 4 * grid.height)  # the demo's enlarged copy, readable at a glance
    lines = [line for line in done.stdout.splitlines() if line.strip().startswith("α=")]
    assert len(lines) == 5, done.stdout[-2000:]
    assert "colour red" in lines[0] and "shape circle" in lines[0] and "count 1" in lines[0], lines[0]
    assert "colour blue" in lines[-1] and "shape circle" in lines[-1] and "count 1" in lines[-1], lines[-1]
    # α = 0 is the source itself: every later tile keeps the object where it was (its pixels that are
    # not the object's colour change, the background around it does not move far)
    first = np.asarray(Image.open(tiles[0]).convert("RGB")).astype(float)
    source = np.asarray(Image.open(run / "input.png").convert("RGB")).astype(float)
    assert np.abs(first - source).mean() < 12, "α = 0 is the source scene after the VAE's round trip"
