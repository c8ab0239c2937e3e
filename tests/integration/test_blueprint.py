"""The shipped subgraph blueprint (subgraphs/EMS Flow Edit (text direction).json) in real ComfyUI frontends, and run.

Frontend 1.58.1 (PyPI comfyui-frontend-package, fetched once into .cache/frontend; under CI=true an
unavailable frontend FAILS these tests, elsewhere they are SKIPPED with the reason) served by the
pinned ComfyUI with ``--front-end-root``, in headless Chromium:

- the page runs 1.58.1; the file passes the frontend's own zod validation (setting
  Comfy.Validation.Workflows; a copy without ``revision`` or ``state`` is flagged, so the check can
  fail), every inner node type is known, the promoted widgets (captions, α) sit on the blueprint
  node and reach the inner nodes, and ``graphToPrompt`` flattens the subgraph into the EMS nodes;
- dropped as a file (the drag-and-drop path) it opens the same way;
- the node-library path: 0.3.64 has no ``GET /api/global_subgraphs`` (ComfyUI PR #10438, Oct 2025), so
  the page's fetch answers that route and ``/api/global_subgraphs/{id}`` as that backend does, with
  the file of the installed pack; 1.58.1 then lists the blueprint as "Subgraph Blueprints/EMS" under
  the file stem and places it;
- run: the blueprint fed by the toy world (no downloads) executes on the server; at α = 0 its image
  is the VAE round trip of the scene (to 1/255), at α = 1 it is not.

The pinned ComfyUI's own frontend (1.27.10) opens the dropped file too (docs/blueprint.md).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

import pytest

from support.browser import find_chromium
from support.comfy_server import PACK_NAME, REPO

VERSION = "1.58.1"
BLUEPRINT = REPO / "subgraphs" / "EMS Flow Edit (text direction).json"
NAME = BLUEPRINT.stem
SHOT = Path(tempfile.gettempdir()) / "blueprint_158.png"
INNER_TYPES = ["VAEEncode", "EMSEncodePrompts", "EMSTextDirection", "BasicScheduler", "EMSFlowEdit", "VAEDecode"]
PROMOTED = ["source_prompt", "target_prompt", "alpha"]
TOY_SOURCE = "two large red circles on a white background"
TOY_TARGET = "two large blue circles on a white background"

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="BLUEPRINT FRONTEND TESTS SKIPPED: no Chromium — run scripts/install-browser.sh (Debian chromium) "
    "or set CHROMIUM",
)

# In-page helpers, defined once per page. A workflow that fails the zod schema is reported by a
# warning toast ("Invalid workflow against zod schema: …"), kept in the frontend's pinia toast store.
HELPERS_JS = """
(() => {
  const pinia = () => document.querySelector('#vue-app').__vue_app__.config.globalProperties.$pinia;
  const store = (id) => {
    const s = pinia()._s.get(id);
    if (!s) throw new Error('no pinia store ' + id);
    return s;
  };
  const options = {showMissingNodesDialog: false, showMissingModelsDialog: false};
  const describe = async () => {
    const app = window.app;
    const root = app.graph.nodes.map(n => ({
      id: String(n.id), type: n.type, title: n.title, errors: !!n.has_errors,
      subgraph: !!(n.isSubgraphNode && n.isSubgraphNode()),
      inputs: (n.inputs || []).map(i => [i.name, String(i.type), !!i.widget]),
      widgets: (n.widgets || []).map(w => w.name)}));
    const inner = [];
    for (const sg of (app.graph.subgraphs ? app.graph.subgraphs.values() : [])) {
      for (const n of sg.nodes) {
        inner.push({subgraph: sg.id, name: sg.name, type: n.type, errors: !!n.has_errors,
                    known: n.type in LiteGraph.registered_node_types});
      }
    }
    const p = await app.graphToPrompt();
    return {root, inner, output: p.output, workflow: p.workflow};
  };
  window.__emsTest = {
    store,
    toasts: () => store('toast').toasts.map(t => ({kind: t.kind, title: t.title, description: t.description})),
    async load(wf) {
      store('toast').dismissAll();
      await window.app.loadGraphData(wf, true, true, null, options);
      await new Promise(r => setTimeout(r, 300));
      return {toasts: this.toasts(), ...(await describe())};
    },
    async drop(text, name) {
      store('toast').dismissAll();
      await window.app.handleFile(new File([text], name, {type: 'application/json'}));
      await new Promise(r => setTimeout(r, 300));
      return {toasts: this.toasts(), ...(await describe())};
    },
    describe,
    blueprintByName: (name) =>
      [...store('nodeDef').blueprintNodeDefsByName.values()].find(d => d.display_name === name),
  };
  return true;
})()
"""

# What a backend with ComfyUI PR #10438 answers, for the installed pack's file (0.3.64 answers 404).
GLOBAL_SUBGRAPHS_JS = """
(() => {
  const ID = %(id)s, entry = %(entry)s, data = %(data)s;
  const real = window.fetch.bind(window);
  const json = (body) => new Response(JSON.stringify(body), {status: 200, headers: {'Content-Type': 'application/json'}});
  window.fetch = async (input, init) => {
    const path = new URL(typeof input === 'string' ? input : input.url, location.href).pathname;
    if (path === '/api/global_subgraphs') return json({[ID]: entry});
    if (path === '/api/global_subgraphs/' + ID) return json({...entry, data});
    return real(input, init);
  };
})()
"""

LIBRARY_JS = """
(async (name) => {
  const t = window.__emsTest, app = window.app;
  // A global blueprint's type is "SubgraphBlueprint." + the backend's id; the library shows display_name.
  const def = t.blueprintByName(name);
  if (!def) return {def: null};
  const info = {name: def.name, display_name: def.display_name, category: def.category,
                description: def.description, inputs: Object.keys(def.input?.required || {}),
                outputs: Object.values(def.output || {})};
  await app.loadGraphData({last_node_id: 0, last_link_id: 0, nodes: [], links: [], version: 0.4},
                          true, true, null, {showMissingNodesDialog: false});
  const bp = t.store('subgraph').getBlueprint(def.name);  // what the library's "add node" places
  app.canvas._deserializeItems({nodes: bp.nodes, subgraphs: bp.definitions?.subgraphs}, {position: [0, 0]});
  return {def: info, ...(await t.describe())};
})
"""

# The blueprint between toy-world nodes: loader → model/clip/vae, scene → image, output → SaveImage,
# plus a plain VAE Encode → VAE Decode of the same scene for comparison. Built with the frontend's
# own API; the promoted widgets are set on the blueprint node.
WRAP_JS = """
(async (spec) => {
  const t = window.__emsTest, app = window.app, LG = window.LiteGraph;
  await t.load(spec.blueprint);
  const outer = app.graph.nodes[0];
  const add = (type, pos) => { const n = LG.createNode(type); n.pos = pos; app.graph.add(n); return n; };
  const toy = add('EMSToyWorldLoader', [-700, 0]);
  const scene = add('EMSToyScene', [-700, 200]);
  toy.connect(0, outer, 'model'); toy.connect(1, outer, 'clip'); toy.connect(2, outer, 'vae');
  scene.connect(0, outer, 'image');
  const save = add('SaveImage', [500, 0]);
  outer.connect(0, save, 'images');
  const enc = add('VAEEncode', [-300, 600]);
  scene.connect(0, enc, 'pixels'); toy.connect(2, enc, 'vae');
  const dec = add('VAEDecode', [0, 600]);
  enc.connect(0, dec, 'samples'); toy.connect(2, dec, 'vae');
  const save2 = add('SaveImage', [500, 600]);
  dec.connect(0, save2, 'images');
  save.widgets.find(w => w.name === 'filename_prefix').value = 'ems_test/blueprint';
  save2.widgets.find(w => w.name === 'filename_prefix').value = 'ems_test/roundtrip';
  for (const [name, value] of Object.entries(spec.widgets)) {
    outer.widgets.find(w => w.name === name).value = value;
  }
  const p = await app.graphToPrompt();
  return {output: p.output, outer: String(outer.id), save: String(save.id), roundtrip: String(save2.id)};
})
"""


def blueprint() -> dict:
    return json.loads(BLUEPRINT.read_text(encoding="utf-8"))


def broken(drop: str) -> dict:
    """A copy of the blueprint whose subgraph definition lacks ``drop`` (required by the schema)."""
    wf = copy.deepcopy(blueprint())
    del wf["definitions"]["subgraphs"][0][drop]
    return wf


def zod_errors(toasts: list[dict]) -> list[dict]:
    return [t for t in toasts if "zod" in (t["title"] or "") or "valid version" in (t["title"] or "")]


def inner_of(prompt: dict, outer: str) -> dict[str, str]:
    """{class_type: prompt id} of the flattened inner nodes of subgraph node ``outer``."""
    return {v["class_type"]: k for k, v in prompt.items() if k.startswith(f"{outer}:")}


async def png_screenshot(page, path: Path) -> None:
    data = await page.send("Page.captureScreenshot", format="png")
    path.write_bytes(base64.b64decode(data["data"]))


@pytest.fixture(scope="module")
def frontend():
    from support.frontend import require_frontend

    return require_frontend(VERSION)


@pytest.fixture(scope="module")
def server(frontend, tmp_path_factory):
    from support.comfy_server import ComfyServer, prepare_base

    base = prepare_base(tmp_path_factory.mktemp("blueprint_base"))
    srv = ComfyServer(os.environ["COMFYUI_DIR"], base, extra_args=["--front-end-root", str(frontend)]).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def session(server):
    """One browser session on 1.58.1 doing every frontend check; returns what each one saw."""
    from support.browser import Chromium
    from support.frontend import fit_view, open_comfy

    installed = server.base / "custom_nodes" / PACK_NAME / "subgraphs" / f"{NAME}.json"  # what a backend globs
    rel = f"{PACK_NAME}/subgraphs/{NAME}.json"
    path = f"{server.base / 'custom_nodes'}/{rel}"
    entry = {"source": "custom_node", "name": NAME, "path": path, "info": {"node_pack": str(server.base)}}
    emulate = GLOBAL_SUBGRAPHS_JS % {
        "id": json.dumps(hashlib.sha256(f"custom_node{path}".encode()).hexdigest()),
        "entry": json.dumps(entry),
        "data": json.dumps(installed.read_text(encoding="utf-8")),
    }
    wf = blueprint()

    async def script(page):
        await page.send("Page.addScriptToEvaluateOnNewDocument", source=emulate)
        server.post("/settings/Comfy.Validation.Workflows", True)
        await open_comfy(page, server)
        await page.evaluate(HELPERS_JS)
        out = {
            "version": await page.evaluate("window.__COMFYUI_FRONTEND_VERSION__"),
            "saved_version": await page.evaluate(
                "(async () => (await app.graphToPrompt()).workflow.extra.frontendVersion)()"
            ),
            "validation_on": await page.evaluate("app.extensionManager.setting.get('Comfy.Validation.Workflows')"),
        }
        out["loaded"] = await page.evaluate(f"window.__emsTest.load({json.dumps(wf)})")
        await fit_view(page)
        await page.evaluate("new Promise(r => setTimeout(r, 500))")
        await png_screenshot(page, SHOT)
        out["broken"] = {
            key: await page.evaluate(f"window.__emsTest.load({json.dumps(broken(key))})")
            for key in ("revision", "state")
        }
        out["dropped"] = await page.evaluate(
            f"window.__emsTest.drop({json.dumps(BLUEPRINT.read_text(encoding='utf-8'))}, {json.dumps(BLUEPRINT.name)})"
        )
        await page.wait_for(f"window.__emsTest.blueprintByName({json.dumps(NAME)})")
        out["library"] = await page.evaluate(f"({LIBRARY_JS})({json.dumps(NAME)})")
        spec = {"blueprint": wf, "widgets": {"source_prompt": TOY_SOURCE, "target_prompt": TOY_TARGET, "alpha": 0.0}}
        out["wrapped"] = await page.evaluate(f"({WRAP_JS})({json.dumps(spec)})")
        out["console"] = page.console
        return out

    with Chromium() as browser:
        return browser.run(script)


# -- the file ------------------------------------------------------------------------------------


def test_blueprint_is_what_the_generator_writes(server):
    """subgraphs/EMS Flow Edit (text direction).json is build_blueprint's output for this server's /object_info."""
    from scripts.build_blueprint import build, dumps

    assert BLUEPRINT.read_text(encoding="utf-8") == dumps(build(server.object_info())), (
        "rebuild it: bash scripts/tool.sh -m scripts.build_blueprint"
    )


def test_blueprint_shape():
    wf = blueprint()
    (outer,) = wf["nodes"]
    (sg,) = wf["definitions"]["subgraphs"]
    assert outer["type"] == sg["id"] and wf["version"] == 0.4 and sg["version"] == 1
    assert [(i["name"], i["type"]) for i in sg["inputs"]] == [
        ("model", "MODEL"),
        ("clip", "CLIP"),
        ("vae", "VAE"),
        ("image", "IMAGE"),
        ("source_prompt", "STRING"),
        ("target_prompt", "STRING"),
        ("alpha", "FLOAT"),
    ]
    assert [(o["name"], o["type"]) for o in sg["outputs"]] == [("IMAGE", "IMAGE")]
    assert sorted(n["type"] for n in sg["nodes"]) == sorted(INNER_TYPES)
    assert wf["extra"]["BlueprintDescription"]


# -- frontend 1.58.1 -------------------------------------------------------------------------------


def test_page_runs_the_pinned_frontend(session):
    assert session["version"] == VERSION
    assert session["saved_version"] == VERSION
    assert session["validation_on"] is True


def test_blueprint_passes_the_frontend_validation(session):
    loaded = session["loaded"]
    assert loaded["toasts"] == [], loaded["toasts"]  # no zod warning, no link-fixer report


@pytest.mark.parametrize("drop", ["revision", "state"])
def test_a_broken_copy_is_flagged(session, drop):
    """The check above can fail: a definition without a required key draws the zod warning."""
    flagged = zod_errors(session["broken"][drop]["toasts"])
    assert flagged and drop in flagged[0]["title"], session["broken"][drop]["toasts"]


@pytest.mark.parametrize("how", ["loaded", "dropped"])
def test_blueprint_opens_with_every_node_known(session, how):
    r = session[how]
    assert r["toasts"] == [], r["toasts"]
    (outer,) = r["root"]
    assert outer["subgraph"] and not outer["errors"], outer
    assert [w for w in outer["widgets"] if w in PROMOTED] == PROMOTED, outer["widgets"]
    assert sorted(n["type"] for n in r["inner"]) == sorted(INNER_TYPES)
    assert all(n["known"] and not n["errors"] for n in r["inner"]), r["inner"]


def test_frontend_prompt_flattens_the_subgraph(session):
    r = session["loaded"]
    outer = r["root"][0]["id"]
    prompt = r["output"]
    inner = inner_of(prompt, outer)
    assert sorted(inner) == sorted(INNER_TYPES) and len(prompt) == len(INNER_TYPES)
    wf = blueprint()
    values = dict(zip(PROMOTED, wf["nodes"][0]["widgets_values"]))
    enc, direction, edit = (prompt[inner[k]]["inputs"] for k in ("EMSEncodePrompts", "EMSTextDirection", "EMSFlowEdit"))
    assert enc["source_prompt"] == values["source_prompt"] and enc["target_prompt"] == values["target_prompt"]
    assert direction["alpha"] == values["alpha"]
    assert edit["source"] == [inner["EMSEncodePrompts"], 0] and edit["negative"] == [inner["EMSEncodePrompts"], 3]
    assert edit["positive"] == [inner["EMSTextDirection"], 0]
    assert edit["latent_image"] == [inner["VAEEncode"], 0] and edit["sigmas"] == [inner["BasicScheduler"], 0]
    sched = prompt[inner["BasicScheduler"]]["inputs"]
    assert (sched["steps"], sched["denoise"], sched["scheduler"]) == (50, 0.66, "simple")


def test_library_lists_and_places_the_blueprint(session):
    lib = session["library"]
    assert lib["def"] is not None, "1.58.1 did not register the blueprint from /api/global_subgraphs"
    d = lib["def"]
    assert d["display_name"] == NAME and d["category"] == "Subgraph Blueprints/EMS"
    assert d["inputs"] == ["model", "clip", "vae", "image", *PROMOTED] and d["outputs"] == ["IMAGE"]
    assert d["description"] == blueprint()["extra"]["BlueprintDescription"]
    (outer,) = lib["root"]
    assert outer["subgraph"] and outer["title"] == NAME
    assert sorted(inner_of(lib["output"], outer["id"])) == sorted(INNER_TYPES)


def test_no_console_error_from_the_blueprint(session):
    bad = [
        c
        for c in session["console"]
        if c["level"] in ("error", "exception")
        and any(s in c["text"] for s in ("subgraph", "Subgraph", "blueprint", "Blueprint", "EMS"))
    ]
    assert not bad, bad


def test_screenshot_taken(session):
    assert SHOT.is_file() and SHOT.stat().st_size > 10_000


# -- run on the server -----------------------------------------------------------------------------


def toy_prompt(wrapped: dict, alpha: float | None = None) -> dict:
    from comfyui_ems.toyworld.settings import TOY

    prompt = copy.deepcopy(wrapped["output"])
    inner = inner_of(prompt, wrapped["outer"])
    prompt[inner["BasicScheduler"]]["inputs"].update(steps=TOY.steps, denoise=TOY.flow_denoise)
    prompt[inner["EMSFlowEdit"]]["inputs"].update(
        noise_seed=TOY.seed,
        cfg=TOY.flow_cfg,
        source_cfg=TOY.flow_source_cfg,
        noise_average=TOY.flow_noise_average,
        locality=TOY.flow_locality,
        drive=TOY.flow_drive,
    )
    prompt[inner["EMSEncodePrompts"]]["inputs"].update(attribute_prompt="blue circles", negative_prompt="")
    if alpha is not None:
        prompt[inner["EMSTextDirection"]]["inputs"]["alpha"] = alpha
    return prompt


def image(server, entry: dict, node: str):
    import numpy as np
    from PIL import Image

    (item,) = entry["outputs"][node]["images"]
    return np.asarray(Image.open(io.BytesIO(server.view(item))).convert("RGB")).astype(np.int16)


@pytest.fixture(scope="module")
def toy_runs(server, session):
    wrapped = session["wrapped"]
    # α = 0 from the blueprint node's promoted widget; α = 1 set on the flattened EMS Text Direction
    return {
        "alpha0": server.run(toy_prompt(wrapped), timeout=900),
        "alpha1": server.run(toy_prompt(wrapped, 1.0), timeout=900),
    }


def test_promoted_widgets_reach_the_inner_nodes(session):
    wrapped = session["wrapped"]
    inner = inner_of(wrapped["output"], wrapped["outer"])
    enc = wrapped["output"][inner["EMSEncodePrompts"]]["inputs"]
    assert (enc["source_prompt"], enc["target_prompt"]) == (TOY_SOURCE, TOY_TARGET)
    assert wrapped["output"][inner["EMSTextDirection"]]["inputs"]["alpha"] == 0


def test_blueprint_at_alpha_0_is_the_vae_round_trip(server, session, toy_runs):
    wrapped = session["wrapped"]
    entry = toy_runs["alpha0"]
    assert entry["status"]["status_str"] == "success"
    edited, roundtrip = image(server, entry, wrapped["save"]), image(server, entry, wrapped["roundtrip"])
    assert edited.shape == roundtrip.shape == (64, 64, 3)
    assert abs(edited - roundtrip).max() <= 1  # measured: 0 (EMS Flow Edit returns its latent at α = 0)


def test_blueprint_at_alpha_1_edits(server, session, toy_runs):
    wrapped = session["wrapped"]
    entry = toy_runs["alpha1"]
    assert entry["status"]["status_str"] == "success"
    edited, roundtrip = image(server, entry, wrapped["save"]), image(server, entry, wrapped["roundtrip"])
    assert abs(edited - roundtrip).mean() > 2, "α = 1 left the image unchanged"
    # red → blue circles: blue minus red, over the image, rises (measured: −19 → +20 of 255)
    bluer = (edited[..., 2] - edited[..., 0]).mean() - (roundtrip[..., 2] - roundtrip[..., 0]).mean()
    assert bluer > 10, bluer


# -- the pinned ComfyUI's own frontend (1.27.10 for 0.3.64): open the file directly ------------------


def test_pinned_frontend_opens_the_dropped_file(comfy):
    from support.browser import Chromium
    from support.frontend import open_comfy

    text = BLUEPRINT.read_text(encoding="utf-8")
    js = f"""
    (async () => {{
      const app = window.app;
      await app.handleFile(new File([{json.dumps(text)}], {json.dumps(BLUEPRINT.name)}, {{type: 'application/json'}}));
      await new Promise(r => setTimeout(r, 300));
      const n = app.graph.nodes[0];
      const inner = [...app.graph.subgraphs.values()].flatMap(s => s.nodes.map(x => [x.type, !!x.has_errors]));
      const p = await app.graphToPrompt();
      return {{count: app.graph.nodes.length, subgraph: !!(n.isSubgraphNode && n.isSubgraphNode()),
               errors: !!n.has_errors, widgets: (n.widgets || []).map(w => w.name), inner, id: String(n.id),
               output: p.output, version: p.workflow.extra.frontendVersion || null}};
    }})()
    """

    async def script(page):
        await open_comfy(page, comfy)
        return await page.evaluate(js)

    with Chromium() as browser:
        r = browser.run(script)
    assert r["count"] == 1 and r["subgraph"] and not r["errors"], r
    assert [w for w in r["widgets"] if w in PROMOTED] == PROMOTED
    assert sorted(t for t, _ in r["inner"]) == sorted(INNER_TYPES) and not any(e for _, e in r["inner"])
    inner = inner_of(r["output"], r["id"])
    assert sorted(inner) == sorted(INNER_TYPES)
    values = dict(zip(PROMOTED, blueprint()["nodes"][0]["widgets_values"]))
    assert r["output"][inner["EMSTextDirection"]]["inputs"]["alpha"] == values["alpha"]
    assert r["output"][inner["EMSEncodePrompts"]]["inputs"]["source_prompt"] == values["source_prompt"]
