"""The real ComfyUI frontend in headless Chromium: open it, load a workflow, read back what it built."""

from __future__ import annotations

import json

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


async def open_comfy(page, server) -> None:
    for key, value in QUIET_SETTINGS.items():
        server.post(f"/settings/{key}", value)
    await page.goto(server.url + "/")
    await page.wait_for("window.app && window.app.graph && window.app.extensions.length > 0", timeout=90)


async def load_workflow(page, workflow: dict) -> dict:
    return await page.evaluate(f"({LOAD_JS})({json.dumps(workflow)})")


async def fit_view(page) -> None:
    await page.evaluate(FIT_JS)
