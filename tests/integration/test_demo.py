"""The README's main job, ``python -m headless --demo``, end to end: a real ComfyUI subprocess runs
the shipped EMS Flow Edit sweep on the toy world, α = 0 is the source scene after the VAE round
trip (the same objects in place), α = 1 reads as the target colour, and a readout line per tile."""

from __future__ import annotations

import os
import subprocess
import sys

import base64
import json

import numpy as np
import pytest
from PIL import Image

from support.comfy_server import REPO


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo through ``run_ems.py`` — the route without bash (Windows) — under ``python -I``: the
    script's folder, the current folder and PYTHON* variables are ignored, as an embedded Python's
    ``._pth`` file ignores them, so the script must find the pack by itself."""
    out = tmp_path_factory.mktemp("demo")
    done = subprocess.run(
        [sys.executable, "-I", str(REPO / "run_ems.py"), "--demo", "--output", str(out)],
        cwd=out,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done, out


def test_the_demo_edits_the_same_scene(demo):
    done, tmp_path = demo
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


def test_every_result_png_carries_the_graph_that_ran(demo):
    """Each saved PNG embeds the UI workflow (``workflow``) and the API prompt (``prompt``) of the run:
    the toy loader and the demo's captions, not the shipped SD3 graph; workflow.json beside them is
    the same graph."""
    done, out = demo
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    ran = json.loads((run / "prompt_api.json").read_text())
    saved_ui = json.loads((run / "workflow.json").read_text())
    pngs = [p for p in run.rglob("*.png") if not p.stem.endswith("_x4") and p.name != "input.png"]
    assert len(pngs) == 6  # five tiles and the grid
    for png in pngs:
        with Image.open(png) as image:
            text = image.text
        embedded = json.loads(text["prompt"])  # ComfyUI adds its own cache keys (is_changed)
        assert {k: (e["class_type"], e["inputs"]) for k, e in embedded.items()} == {
            k: (e["class_type"], e["inputs"]) for k, e in ran.items()
        }
        ui = json.loads(text["workflow"])
        assert ui == saved_ui
        assert sorted(n["type"] for n in ui["nodes"]) == sorted(e["class_type"] for e in ran.values())
        assert "EMSToyWorldLoader" in {n["type"] for n in ui["nodes"]}
        assert not {"CheckpointLoaderSimple", "ImageScaleToTotalPixels"} & {n["type"] for n in ui["nodes"]}


DROP_PNG_JS = """
(async (b64) => {
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  await window.app.handleFile(new File([bytes], "grid.png", {type: "image/png"}));
  const p = await window.app.graphToPrompt();
  return {types: window.app.graph.nodes.map(n => n.type), missing: window.app.graph.nodes.filter(n => n.has_errors).map(n => n.type),
          output: p.output};
})
"""


def test_a_result_png_opens_in_comfyui_as_its_workflow(demo, comfy):
    """What a user does with a result: drop the PNG on ComfyUI's canvas. The real frontend (headless
    Chromium) reads its workflow, opens the graph that ran with no missing node, and would queue
    exactly the prompt the runner queued."""
    from support.browser import Chromium, find_chromium
    from support.frontend import open_comfy

    if find_chromium() is None:
        pytest.skip("FRONTEND TEST SKIPPED: no Chromium — run scripts/install-browser.sh (Debian chromium)")
    done, out = demo
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    (grid,) = [p for p in out.rglob("*flow_grid*.png") if not p.stem.endswith("_x4")]
    ran = json.loads(next(out.rglob("prompt_api.json")).read_text())

    async def script(page):
        await open_comfy(page, comfy)
        return await page.evaluate(f"({DROP_PNG_JS})({json.dumps(base64.b64encode(grid.read_bytes()).decode())})")

    with Chromium() as browser:
        opened = browser.run(script)
    assert opened["missing"] == [], opened["missing"]
    assert sorted(opened["types"]) == sorted(e["class_type"] for e in ran.values())
    # Node ids are renumbered on the canvas: compare every node's widget values by node type.
    assert widget_values(opened["output"]) == widget_values(ran)


def widget_values(prompt: dict) -> list:
    def same(value):  # JavaScript writes 3.0 as 3
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    return sorted(
        (e["class_type"], name, json.dumps(same(value)))
        for e in prompt.values()
        for name, value in e["inputs"].items()
        if not isinstance(value, list)
    )
