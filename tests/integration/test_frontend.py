"""The real ComfyUI frontend, in headless Chromium, against a real server with the pack.

Every shipped workflow opens with no missing node type, the frontend turns it into exactly the
API prompt our converter (headless.workflow.ui_to_api) produces, and the pack's scripts log no
console error. Needs Debian's ``chromium`` (scripts/test.sh installs it); without it these tests
are SKIPPED with a loud reason.
"""

from __future__ import annotations

import json

import pytest

from headless.workflow import ordered_inputs, ui_to_api
from support.browser import find_chromium
from support.comfy_server import REPO
from support.frontend import CSDS_WORKFLOW, csds_inputs, saved_before_units

WORKFLOWS = sorted((REPO / "example_workflows").glob("*.json"))
PACK_SCRIPTS = "/extensions/comfyui-ems/"
DISPLAY_NODES = (
    "EMSAlphaSweep",
    "EMSExtractCaptions",
    "EMSEncodePrompts",
    "EMSTextDirection",
)  # nodes our extensions write text onto

# After a run the pack's extensions show text on these nodes (sweep labels, captions). That text
# must stay display-only: not an input of the next prompt (it would change the node's signature
# and re-run the chain) and not a saved widget value.
SHOW_TEXT_JS = """
(async (wf) => {
  const app = window.app;
  await app.loadGraphData(wf, true, true, null, {showMissingNodesDialog: false, showMissingModelsDialog: false});
  const before = await app.graphToPrompt();
  const shown = [];
  for (const n of app.graph.nodes) {
    if (%s.includes(n.type)) {
      n.onExecuted?.({text: ["alpha=0 | alpha=1", "shown by the extension"]});
      shown.push({id: String(n.id), widgets: (n.widgets || []).map(w => w.name)});
    }
  }
  const after = await app.graphToPrompt();
  return {shown, before: before.output, after: after.output,
          savedBefore: before.workflow.nodes.map(n => [n.id, n.widgets_values]),
          savedAfter: after.workflow.nodes.map(n => [n.id, n.widgets_values])};
})
""" % json.dumps(list(DISPLAY_NODES))

SAVED_BEFORE_UNITS = "saved before step_units"


pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="FRONTEND TESTS SKIPPED: no Chromium — run scripts/install-browser.sh (Debian chromium) or set CHROMIUM",
)


@pytest.fixture(scope="module")
def opened(comfy):
    """Load every workflow in one browser session; returns per-workflow results and the console."""
    from support.browser import Chromium
    from support.frontend import load_workflow, open_comfy

    async def script(page):
        await open_comfy(page, comfy)
        results = {p.stem: await load_workflow(page, json.loads(p.read_text())) for p in WORKFLOWS}
        results[SAVED_BEFORE_UNITS] = await load_workflow(page, saved_before_units())
        for p in WORKFLOWS:
            wf = json.loads(p.read_text())
            if any(n["type"] in DISPLAY_NODES for n in wf["nodes"]):
                results[p.stem]["shown"] = await page.evaluate(f"({SHOW_TEXT_JS})({json.dumps(wf)})")
        scripts = await page.evaluate("[...document.querySelectorAll('script[src]')].map(s => s.src)")
        return results, page.console, scripts

    with Chromium() as browser:
        return browser.run(script)


def test_pack_extension_is_loaded(opened):
    results, _, _ = opened
    assert all("EMS.Sweep" in r["extensions"] for r in results.values())


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_workflow_opens_with_no_missing_nodes(opened, path):
    results, _, _ = opened
    r = results[path.stem]
    wf = json.loads(path.read_text())
    assert r["missing"] == [], r["missing"]
    assert r["count"] == len(wf["nodes"]) and sorted(r["types"]) == sorted(n["type"] for n in wf["nodes"])


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_frontend_prompt_equals_our_conversion(opened, comfy, path):
    results, _, _ = opened
    info = comfy.object_info()
    ours = ui_to_api(json.loads(path.read_text()), info)
    theirs = results[path.stem]["output"]
    assert set(ours) == set(theirs)
    for key, entry in ours.items():
        assert theirs[key]["class_type"] == entry["class_type"]
        # Compare the inputs the server declares; the frontend adds display-only extras
        # (e.g. PreviewAny's "preview").
        declared = {name for name, _, _ in ordered_inputs(info[entry["class_type"]])}
        assert {k: v for k, v in theirs[key]["inputs"].items() if k in declared} == entry["inputs"], key


def test_no_console_error_from_the_pack(opened):
    _, console, _ = opened
    bad = [
        c
        for c in console
        if c["level"] in ("error", "exception")
        and (PACK_SCRIPTS in c["url"] or PACK_SCRIPTS in c["text"] or "EMS" in c["text"])
    ]
    assert not bad, bad


def test_text_shown_after_a_run_is_not_sent_or_saved(opened):
    results, _, _ = opened
    checked = [r["shown"] for r in results.values() if "shown" in r]
    assert checked, "no shipped workflow has a node the extensions write on"
    for shown in checked:
        assert shown["shown"], "the display nodes were not found"
        for node in shown["shown"]:
            assert any(name.startswith("ems_") for name in node["widgets"]), node  # the text is shown
            assert shown["after"][node["id"]]["inputs"] == shown["before"][node["id"]]["inputs"], node
        assert shown["savedAfter"] == shown["savedBefore"]


def test_a_csds_node_saved_before_step_units_keeps_latent_steps(opened, comfy):
    """The node's default units are now image; a graph that saved no step_units opens with latent
    (ems_csds_units.js), and our converter leaves the input out, which the server reads as latent
    (test_csds.py checks that). A graph that saved step_units keeps what it saved."""
    results, _, _ = opened
    default = comfy.object_info()["EMSCSDSLatentEdit"]["input"]["optional"]["step_units"][1]["default"]
    assert default == "image"
    old = csds_inputs(results[SAVED_BEFORE_UNITS]["output"])
    assert old["step_units"] == "latent" and old["step_start"] == 0.03
    assert "step_units" not in csds_inputs(ui_to_api(saved_before_units(), comfy.object_info()))
    saved = [n for n in json.loads(CSDS_WORKFLOW.read_text())["nodes"] if n["type"] == "EMSCSDSLatentEdit"]
    assert csds_inputs(results[CSDS_WORKFLOW.stem]["output"])["step_units"] == saved[0]["widgets_values"][9]
