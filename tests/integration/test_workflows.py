"""Every shipped workflow runs in a real ComfyUI — converted to API format with that
server's own /object_info, SD3 loaders swapped for the tiny random-weight SD3, the caption LLM
pointed at a loopback OpenAI-compatible server — and the pack's docs cover every EMS node."""

from __future__ import annotations

import json
import os
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image

from comfyui_ems.ems.alphas import parse_alphas
from comfyui_ems.toyworld.readout import read
from headless.demo import make_test_image
from headless.workflow import nodes_of, ui_to_api
from support.graph import swap_to_tiny_family, swap_to_tiny_sd3
from support.comfy_server import REPO, ComfyServer, prepare_base, write_family_model, write_tiny_model
from support.fake_openai import FakeOpenAI

WORKFLOWS = sorted((REPO / "example_workflows").glob("*.json"))
KEY_VAR = "EMS_TEST_WORKFLOW_KEY"
PROVIDER = "workflow-test"
MAIN_NODES = {"EMSExtractCaptions", "EMSTextDirection", "EMSAlphaSweep", "EMSCSDSLatentEdit"}


@pytest.fixture(scope="module")
def llm():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def comfy_wf(tmp_path_factory, llm):
    base = prepare_base(tmp_path_factory.mktemp("comfy_workflows"))
    write_tiny_model(base)
    write_family_model(base, "sd35_large")
    make_test_image(base / "input" / "example.png", size=128)
    config = tmp_path_factory.mktemp("ems_config") / "llm.json"  # the machine's providers
    config.write_text(json.dumps({"providers": {PROVIDER: {"base_url": llm.url, "api_key_env": KEY_VAR}}}))
    env = {
        KEY_VAR: "sk-test",
        "EMS_CACHE_DIR": "",
        "EMS_KEYS_FILE": str(base / "no-keys.json"),
        "EMS_LLM_CONFIG": str(config),
    }
    server = ComfyServer(os.environ["COMFYUI_DIR"], base, env=env).start()
    yield server
    server.stop()


# The model family a shipped workflow is for, from its title; the others are SD3's.
FAMILY_OF_TITLE = {"(SD3.5)": "sd35_large", "(Flux)": "flux_dev", "(Qwen-Image)": "qwen_image", "(SDXL)": "sdxl"}


def family_of(path) -> str | None:
    return next((f for suffix, f in FAMILY_OF_TITLE.items() if path.stem.endswith(suffix)), None)


def is_toy(prompt: dict) -> bool:
    return bool(nodes_of(prompt, "EMSToyWorldLoader"))


def small(prompt: dict, tag: str, family: str | None = None) -> dict:
    """Tiny SD3 (or the workflow's family's tiny model), loopback LLM, and a CPU-sized run (fewer
    steps, 128 px) — graph unchanged. A toy template runs exactly as shipped: it needs nothing, and
    its settings are the toy's own."""
    if is_toy(prompt):
        return prompt
    prompt = swap_to_tiny_family(prompt, family) if family else swap_to_tiny_sd3(prompt)
    for entry in prompt.values():
        inputs, kind = entry["inputs"], entry["class_type"]
        if kind == "EMSExtractCaptions":
            assert inputs["provider"] == "openai"  # as shipped
            inputs.update(provider=PROVIDER, model="vision-test")
            inputs["instruction"] += f" ({tag})"  # a distinct request per workflow (no cache hit)
        if kind in ("BasicScheduler", "KSampler"):
            inputs["steps"] = 4
        if kind == "EMSCSDSLatentEdit":
            inputs["iterations"] = 3
        if kind == "ImageScaleToTotalPixels":
            inputs["megapixels"] = 0.0156
    return prompt


def test_there_are_at_least_four_workflows_using_all_main_nodes():
    assert len(WORKFLOWS) >= 4, WORKFLOWS
    used = {n["type"] for wf in WORKFLOWS for n in json.loads(wf.read_text())["nodes"]}
    assert MAIN_NODES <= used, MAIN_NODES - used


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_workflow_runs_to_success(comfy_wf, llm, path):
    info = comfy_wf.object_info()
    prompt = small(ui_to_api(json.loads(path.read_text()), info), path.stem, family_of(path))
    assert not nodes_of(prompt, "CheckpointLoaderSimple")
    before = len(llm.requests)
    history = comfy_wf.run(prompt, timeout=900)
    assert history["status"]["status_str"] == "success"
    saves = nodes_of(prompt, "SaveImage")
    assert saves, "every example ends in SaveImage"
    for key in saves:
        images = history["outputs"][key]["images"]
        assert images and all((comfy_wf.base / "output" / i["subfolder"] / i["filename"]).is_file() for i in images)
    if nodes_of(prompt, "EMSExtractCaptions"):
        assert len(llm.requests) > before, "the LLM node must have asked the loopback provider"
        assert llm.requests[-1].bearer == "sk-test"  # the provider's key, from the machine
    if is_toy(prompt):
        check_toy_result(comfy_wf, prompt, history)
    for sweep in nodes_of(prompt, "EMSAlphaSweep"):
        # k alphas render as one batch of k, and the sweep is shown as a labelled grid.
        k = len(parse_alphas(prompt[sweep]["inputs"]["alphas"]))
        assert nodes_of(prompt, "EMSLabelledGrid"), "a sweep is shown as a labelled grid"
        for key in saves:
            if "sweep" in prompt[key]["inputs"]["filename_prefix"]:
                assert len(history["outputs"][key]["images"]) == k


def check_toy_result(server, prompt: dict, history: dict) -> None:
    """A toy template as shipped: a labelled α grid, and tiles that read as the edit — the source
    colour at α = 0, the target colour at α = 1, the same shape throughout."""
    (sweep,) = nodes_of(prompt, "EMSAlphaSweep")
    alphas = parse_alphas(prompt[sweep]["inputs"]["alphas"])
    saved = {
        prompt[k]["inputs"]["filename_prefix"]: history["outputs"][k]["images"] for k in nodes_of(prompt, "SaveImage")
    }
    (grid,) = [v for k, v in saved.items() if "grid" in k]
    (tiles,) = [v for k, v in saved.items() if "sweep" in k]
    assert len(grid) == 1 and len(tiles) == len(alphas)
    read_back = [
        read(np.asarray(Image.open(server.base / "output" / i["subfolder"] / i["filename"]).convert("RGB")))
        for i in tiles
    ]
    assert read_back[0]["colour"] == "red", read_back
    assert read_back[alphas.index(1.0)]["colour"] == "blue", read_back
    assert all(r["shape"] == "circle" for r in read_back), read_back


def test_every_registered_ems_node_has_a_help_page(comfy_wf):
    ems_nodes = [
        k
        for k, v in comfy_wf.object_info().items()
        if k.startswith("EMS") and v.get("python_module", "").endswith("comfyui-ems")
    ]
    assert {"EMSEncodePrompts", "EMSTextDirection", "EMSAlphaSweep", "EMSCSDSLatentEdit", "EMSLabelledGrid"} <= set(
        ems_nodes
    )
    for node in ems_nodes:
        page = REPO / "web" / "docs" / f"{node}.md"
        assert page.is_file(), f"{node} has no web/docs page"
        assert page.read_text().strip().startswith("#")


def test_comfyui_serves_every_workflow_and_its_thumbnail_as_a_template(comfy_wf):
    """What a user gets in Workflow → Browse Templates: the pack's folder listed, each JSON and its
    .jpg thumbnail served from example_workflows/ (the folder current ComfyUI prefers)."""
    import urllib.request

    listed = comfy_wf.get("/workflow_templates")
    pack = next(name for name in listed if name.endswith("comfyui-ems"))
    assert sorted(listed[pack]) == sorted(p.stem for p in WORKFLOWS)
    for path in WORKFLOWS:
        served = comfy_wf.get(f"/api/workflow_templates/{pack}/{quote(path.name)}")
        assert served == json.loads(path.read_text())
        with urllib.request.urlopen(f"{comfy_wf.url}/api/workflow_templates/{pack}/{quote(path.stem)}.jpg") as r:
            assert r.headers["Content-Type"] == "image/jpeg" and r.read() == path.with_suffix(".jpg").read_bytes()
