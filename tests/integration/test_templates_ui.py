"""A newcomer's first minutes, in the real frontend (headless Chromium, the frontend ComfyUI 0.3.64
ships): Workflow → Browse Templates lists the pack under its own label with every template's
readable title and its thumbnail, and the toy template picked there and queued as shipped produces a
labelled α grid — no file added by hand, no network, no SD3. A screenshot of the browser is kept in
the test's folder (and under ``$EMS_SCREENSHOTS`` when set)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from support.browser import find_chromium
from support.comfy_server import REPO

WORKFLOWS = sorted((REPO / "example_workflows").glob("*.json"))
LABEL = json.loads((REPO / "locales" / "en" / "main.json").read_text())["templateWorkflows"]["category"]["comfyui-ems"]
TOY = "01 Toy world, EMS Flow Edit alpha grid (nothing to download)"

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="FRONTEND TESTS SKIPPED: no Chromium — run scripts/install-browser.sh (Debian chromium) or set CHROMIUM",
)

OPEN_PACK_JS = """
(async (label, ours) => {
  await window.app.extensionManager.command.execute('Comfy.BrowseTemplates');
  const until = async (f) => { for (let i = 0; i < 200; i++) { const v = f(); if (v) return v; await new Promise(r => setTimeout(r, 100)); } return null; };
  const nav = await until(() => [...document.querySelectorAll('[role="option"]')].find(o => o.textContent.trim() === label));
  if (!nav) return {navs: [...document.querySelectorAll('[role="option"]')].map(o => o.textContent.trim())};
  nav.click();
  // the pack's own view: every card one of the pack's templates
  const mine = () => { const c = [...document.querySelectorAll('[data-testid^="template-workflow-"]')];
                       return c.length && c.every(e => ours.includes(e.dataset.testid.slice(18))) ? c : null; };
  await until(mine);
  // the list pages in as it is scrolled: scroll to its end until no more cards come
  let count = -1;
  for (let i = 0; i < 30; i++) {
    const shown = [...document.querySelectorAll('[data-testid^="template-workflow-"]')];
    if (shown.length === count) break;
    count = shown.length;
    shown[shown.length - 1].scrollIntoView();
    await new Promise(r => setTimeout(r, 700));
  }
  const cards = [...document.querySelectorAll('[data-testid^="template-workflow-"]')];
  cards[0].scrollIntoView();
  await new Promise(r => setTimeout(r, 1500));  // thumbnails
  return {cards: [...(cards || [])].map(c => ({id: c.dataset.testid, text: c.innerText,
          thumbs: [...c.querySelectorAll('img')].map(i => ({src: i.src, ok: i.complete && i.naturalWidth > 0}))}))};
})
"""

PICK_AND_QUEUE_JS = """
(async (name) => {
  document.querySelector(`[data-testid="template-workflow-${name}"]`).click();
  for (let i = 0; i < 100 && !window.app.graph.nodes.some(n => n.type === 'EMSToyWorldLoader'); i++)
    await new Promise(r => setTimeout(r, 100));
  const types = window.app.graph.nodes.map(n => n.type);
  await window.app.queuePrompt(0, 1);
  return types;
})
"""


def test_browse_templates_then_queue_the_toy_template_as_shipped(comfy, tmp_path):
    from support.browser import Chromium
    from support.frontend import open_comfy

    before = set(comfy.get("/history"))

    async def script(page):
        await open_comfy(page, comfy)
        ours = json.dumps([p.stem for p in WORKFLOWS])
        listed = await page.evaluate(f"({OPEN_PACK_JS})({json.dumps(LABEL)}, {ours})")
        await page.screenshot(tmp_path / "templates.jpg", quality=80)
        types = await page.evaluate(f"({PICK_AND_QUEUE_JS})({json.dumps(TOY)})")
        deadline = time.time() + 600
        while time.time() < deadline and not set(comfy.get("/history")) - before:
            await asyncio.sleep(1)
        return listed, types

    with Chromium(1600, 1000) as browser:
        listed, types = browser.run(script)
    if os.environ.get("EMS_SCREENSHOTS"):
        shutil.copy(tmp_path / "templates.jpg", Path(os.environ["EMS_SCREENSHOTS"]) / "templates-1.27.jpg")
    assert "cards" in listed, f"no '{LABEL}' group in the template browser: {listed}"
    shown = {c["id"].removeprefix("template-workflow-"): c for c in listed["cards"]}
    assert set(shown) == {p.stem for p in WORKFLOWS}
    for name, card in shown.items():
        assert name in card["text"], card  # the readable title is what the card says
    # Thumbnails load lazily, as cards scroll into view: those in view show an image (the frontend
    # fetches the pack's .jpg into a blob; test_workflows checks the server serves every one).
    loaded = [(name, t) for name, card in shown.items() for t in card["thumbs"] if t["src"]]
    assert len(loaded) >= 3, shown
    assert all(thumb["ok"] for _, thumb in loaded), loaded
    assert "EMSToyWorldLoader" in types and "EMSLabelledGrid" in types
    (prompt_id,) = set(comfy.get("/history")) - before
    entry = comfy.get(f"/history/{prompt_id}")[prompt_id]
    assert entry["status"]["status_str"] == "success", entry["status"]
    saved = [i for out in entry["outputs"].values() for i in out.get("images", []) if i["type"] == "output"]
    grids = [i for i in saved if "toy_flow_grid" in i["filename"]]
    assert len(grids) == 1 and (comfy.base / "output" / grids[0]["subfolder"] / grids[0]["filename"]).is_file()


OPEN_PACK_158_JS = """
(async (label, ours) => {
  await window.app.extensionManager.command.execute('Comfy.BrowseTemplates');
  const until = async (f) => { for (let i = 0; i < 200; i++) { const v = f(); if (v) return v; await new Promise(r => setTimeout(r, 100)); } return null; };
  const nav = await until(() => [...document.querySelectorAll('*')].find(e => e.children.length === 0 && e.textContent.trim() === label));
  if (!nav) return {};
  nav.click();
  const mine = () => { const c = [...document.querySelectorAll('[data-testid^="template-workflow-"]')];
                       return c.length && c.every(e => ours.includes(e.dataset.testid.slice(18))) ? c : null; };
  const cards = await until(mine) || [];
  return {cards: cards.map(c => ({id: c.dataset.testid.slice(18), text: c.innerText}))};
})
"""


def test_the_newest_frontend_lists_every_template_by_its_title(tmp_path):
    """Frontend 1.58.1 (PyPI) on the same server: the pack's group carries its label, and each card
    shows the template's readable title. It also opens a CSDS node saved before `step_units`
    existed with latent units (web/js/ems_csds_units.js; test_frontend checks the pinned frontend)."""
    from support.browser import Chromium
    from support.comfy_server import ComfyServer, prepare_base
    from support.frontend import csds_inputs, load_workflow, open_comfy, require_frontend, saved_before_units

    static = require_frontend("1.58.1")
    server = ComfyServer(
        os.environ["COMFYUI_DIR"], prepare_base(tmp_path / "base"), extra_args=["--front-end-root", str(static)]
    )

    async def script(page):
        await open_comfy(page, server)
        ours = json.dumps([p.stem for p in WORKFLOWS])
        listed = await page.evaluate(f"({OPEN_PACK_158_JS})({json.dumps(LABEL)}, {ours})")
        await page.screenshot(tmp_path / "templates-1.58.jpg", quality=80)
        listed["saved_before_units"] = csds_inputs((await load_workflow(page, saved_before_units()))["output"])
        return listed

    with server, Chromium(1600, 1000) as browser:
        listed = browser.run(script)
    if os.environ.get("EMS_SCREENSHOTS"):
        shutil.copy(tmp_path / "templates-1.58.jpg", Path(os.environ["EMS_SCREENSHOTS"]) / "templates-1.58.jpg")
    assert listed.get("cards"), f"no '{LABEL}' group in frontend 1.58.1's template browser"
    assert sorted(c["id"] for c in listed["cards"]) == sorted(p.stem for p in WORKFLOWS)
    assert all(c["id"] in c["text"] for c in listed["cards"]), listed["cards"]
    old = listed["saved_before_units"]
    assert old["step_units"] == "latent" and old["step_start"] == 0.03, old
