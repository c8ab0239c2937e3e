"""The real ComfyUI frontend in headless Chromium: open it, load a workflow, read back what it built."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# Settings that keep first-run dialogs (templates browser, missing-node popups) off the canvas.
QUIET_SETTINGS = {
    "Comfy.TutorialCompleted": True,
    "Comfy.Workflow.ShowMissingNodesWarning": False,
    "Comfy.Workflow.ShowMissingModelsWarning": False,
    "Comfy.Minimap.Visible": False,
    # Thumbnails: draw node text even when zoomed out to fit a whole graph.
    "LiteGraph.Canvas.LowQualityRenderingZoomThreshold": 0.1,
    "LiteGraph.Canvas.MinFontSizeForLOD": 1,
    "Comfy.Graph.CanvasInfo": False,
}

LOAD_JS = """
(async (wf) => {
  const app = window.app;
  await app.loadGraphData(wf, true, true, null,
                          {showMissingNodesDialog: false, showMissingModelsDialog: false});
  const nodes = app.graph.nodes;
  // A type the frontend does not know is loaded as a placeholder flagged has_errors.
  const missing = nodes.filter(n => n.has_errors).map(n => n.type);
  const p = await app.graphToPrompt();
  return {count: nodes.length, missing, types: nodes.map(n => n.type), output: p.output,
          extensions: app.extensions.map(e => e.name)};
})
"""

FIT_JS = """
(() => {
  const c = window.app.canvas;
  c.fitViewToSelectionAnimated ? c.fitViewToSelectionAnimated({duration: 1}) : null;
  c.setDirty(true, true); c.draw(true, true);
  return true;
})()
"""


# A graph saved before EMS CSDS Latent Edit had step_units (v0.1): the node stored 8 widget values
# (seed, its control, cfg, iterations, λ, step_start, step_end, residual_space), its steps in latent units.
CSDS_WORKFLOW = (
    Path(__file__).resolve().parents[2] / "example_workflows" / "07 Full EMS edit, typed captions (SD3).json"
)


def saved_before_units() -> dict:
    wf = json.loads(CSDS_WORKFLOW.read_text())
    for node in wf["nodes"]:
        if node["type"] == "EMSCSDSLatentEdit":
            node["widgets_values"] = node["widgets_values"][:5] + [0.03, 0.003, "noise"]
    return wf


def csds_inputs(prompt: dict) -> dict:
    """The inputs of the one EMS CSDS Latent Edit in an API prompt."""
    (entry,) = [e for e in prompt.values() if e["class_type"] == "EMSCSDSLatentEdit"]
    return entry["inputs"]


async def open_comfy(page, server) -> None:
    for key, value in QUIET_SETTINGS.items():
        server.post(f"/settings/{key}", value)
    await page.goto(server.url + "/")
    await page.wait_for("window.app && window.app.graph && window.app.extensions.length > 0", timeout=90)


async def load_workflow(page, workflow: dict) -> dict:
    return await page.evaluate(f"({LOAD_JS})({json.dumps(workflow)})")


async def fit_view(page) -> None:
    await page.evaluate(FIT_JS)


# -- a pinned frontend release, fetched from PyPI ------------------------------------------------

FRONTEND_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "frontend"  # git-ignored


class FrontendUnavailable(RuntimeError):
    """The requested frontend release could not be fetched or unpacked; the message says why."""


def frontend_static(version: str, cache: Path = FRONTEND_CACHE) -> Path:
    """The ``static`` folder of ComfyUI frontend ``version`` (PyPI: comfyui-frontend-package), to
    pass as ``--front-end-root``. The wheel is fetched with ``pip download`` into ``cache`` and
    unzipped to ``cache/<version>``, each once: later calls reuse both."""
    static = cache / version / "comfyui_frontend_package" / "static"
    if (static / "index.html").is_file():
        return static
    cache.mkdir(parents=True, exist_ok=True)
    pattern = f"comfyui_frontend_package-{version}-*.whl"
    if not any(cache.glob(pattern)):
        cmd = [sys.executable, "-m", "pip", "download", f"comfyui-frontend-package=={version}"]
        cmd += ["--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "-d", str(cache)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise FrontendUnavailable(f"`{' '.join(cmd)}` did not run: {e}") from None
        if proc.returncode or not any(cache.glob(pattern)):
            text = (proc.stderr or proc.stdout).strip()
            errors = [line for line in text.splitlines() if "ERROR" in line]
            tail = " / ".join(errors[-2:]) if errors else text[-1500:]
            raise FrontendUnavailable(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {tail}")
    wheel = sorted(cache.glob(pattern))[0]
    unpacked = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=cache))
    unpacked.chmod(0o755)  # mkdtemp makes it private
    try:
        with zipfile.ZipFile(wheel) as z:
            z.extractall(unpacked)
    except (zipfile.BadZipFile, OSError) as e:
        shutil.rmtree(unpacked, ignore_errors=True)
        wheel.unlink(missing_ok=True)  # a broken download: fetch it again next time
        raise FrontendUnavailable(f"{wheel} is not a readable wheel ({e}); removed it") from None
    if not (unpacked / "comfyui_frontend_package" / "static" / "index.html").is_file():
        shutil.rmtree(unpacked, ignore_errors=True)
        raise FrontendUnavailable(f"{wheel} has no comfyui_frontend_package/static/index.html")
    try:
        shutil.rmtree(cache / version, ignore_errors=True)
        unpacked.rename(cache / version)
    except OSError:  # another process unpacked it at the same moment
        shutil.rmtree(unpacked, ignore_errors=True)
    if not (static / "index.html").is_file():
        raise FrontendUnavailable(f"could not unpack {wheel} to {cache / version}")
    return static


def require_frontend(version: str) -> Path:
    """``frontend_static(version)`` for a test: where it cannot be had, the test is SKIPPED with a
    loud reason — or, under ``CI=true``, FAILS (CI must not pass without having run it)."""
    import pytest

    try:
        return frontend_static(version)
    except FrontendUnavailable as e:
        reason = (
            f"FRONTEND {version} UNAVAILABLE: {e}. These tests fetch comfyui-frontend-package=={version} "
            f"from PyPI into {FRONTEND_CACHE} (network needed once)."
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
