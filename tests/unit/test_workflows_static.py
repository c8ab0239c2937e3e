"""The shipped example workflows, checked without ComfyUI: they parse, use only EMS and core node
types, their links type-check, each has a thumbnail, and no secret is saved in them."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WORKFLOW_DIR = REPO / "example_workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.json"))
# Written by scripts/build_workflows.py from a real server's /object_info.
RECORD = json.loads((Path(__file__).parent / "data" / "workflow_nodes.json").read_text())
FRONTEND_ONLY = {"Note", "MarkdownNote"}
IDS = [p.stem for p in WORKFLOWS]


def ems_node_ids() -> set[str]:
    """Node ids the pack registers, read from the source (the unit tier never imports ComfyUI)."""
    sources = list((REPO / "nodes").glob("*.py"))  # the toy world's dev nodes included
    text = "".join(p.read_text() for p in sources)
    return set(re.findall(r'node_id="(EMS\w+)"', text))


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_at_least_four_workflows_ship_in_the_folder_comfyui_lists():
    assert len(WORKFLOWS) >= 4


@pytest.mark.parametrize("path", WORKFLOWS, ids=IDS)
def test_node_types_are_ems_or_core(path):
    ems = ems_node_ids()
    for node in load(path)["nodes"]:
        t = node["type"]
        if t.startswith("EMS"):
            assert t in ems, f"{path.name}: {t} is not registered by the pack"
        else:
            assert t in FRONTEND_ONLY or t in RECORD, f"{path.name}: {t} is neither EMS nor a recorded core node"


@pytest.mark.skipif(
    not os.environ.get("COMFYUI_DIR"), reason="COMFYUI_DIR not set: core names checked against the record only"
)
def test_core_node_types_exist_in_this_comfyui_source():
    comfy = Path(os.environ["COMFYUI_DIR"])
    source = "".join(
        p.read_text(errors="replace") for p in [comfy / "nodes.py", *(comfy / "comfy_extras").glob("*.py")]
    )
    for t in RECORD:
        if not t.startswith("EMS"):
            assert re.search(rf'["\']{t}["\']|class {t}\b', source), f"{t} not found in {comfy}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=IDS)
def test_links_type_check(path):
    wf = load(path)
    nodes = {n["id"]: n for n in wf["nodes"]}
    assert len({link[0] for link in wf["links"]}) == len(wf["links"])
    for link_id, src, src_slot, dst, dst_slot, kind in wf["links"]:
        out = nodes[src]["outputs"][src_slot]
        inp = nodes[dst]["inputs"][dst_slot]
        # "*" is a wildcard input (e.g. core PreviewAny), which accepts any output type.
        assert out["type"] == kind and inp["type"] in (kind, "*"), (path.name, link_id, out, inp)
        assert link_id in out["links"] and inp["link"] == link_id
        # ... and against what the server declares for these node types:
        assert RECORD[nodes[src]["type"]]["outputs"][src_slot] == kind
        assert RECORD[nodes[dst]["type"]]["inputs"][inp["name"]] in (kind, "*")
    for node in wf["nodes"]:
        for inp in node.get("inputs", []):
            if inp["link"] is not None:
                assert any(link[0] == inp["link"] for link in wf["links"])


@pytest.mark.parametrize("path", WORKFLOWS, ids=IDS)
def test_required_inputs_are_connected_or_widgets(path):
    for node in load(path)["nodes"]:
        if node["type"] in FRONTEND_ONLY:
            continue
        connected = {i["name"] for i in node["inputs"] if i["link"] is not None}
        slots = {i["name"] for i in node["inputs"]}
        for name in slots - connected:
            optional = next(i for i in node["inputs"] if i["name"] == name).get("shape") == 7
            assert optional, f"{path.name}: {node['type']}.{name} is a required input with no link"


@pytest.mark.parametrize("path", WORKFLOWS, ids=IDS)
def test_thumbnail_and_no_secrets(path):
    assert any(path.with_suffix(ext).is_file() for ext in (".jpg", ".png", ".webp")), f"{path.stem} has no thumbnail"
    text = path.read_text()
    assert not re.search(r"sk-[A-Za-z0-9_-]{10,}", text), "an API key is saved in the workflow"


def test_paper_defaults_in_the_full_edit():
    wf = load(WORKFLOW_DIR / "05 Full EMS edit, LLM captions (SD3 + LLM).json")
    by_type = {n["type"]: n for n in wf["nodes"]}
    assert by_type["BasicScheduler"]["widgets_values"][1:] == [50, 0.75]
    assert 7.5 in by_type["CFGGuider"]["widgets_values"]
    csds = by_type["EMSCSDSLatentEdit"]["widgets_values"]
    from comfyui_ems.ems.csds import DEFAULTS  # the node's declared defaults (paper values until measured)

    # the node's widgets end with CSDSParams' fields, in their order
    assert csds[-len(DEFAULTS) :] == list(DEFAULTS.values())
    assert by_type["SamplerCustomAdvanced"] and by_type["DisableNoise"]


# Loader nodes that read a file from models/ (the toy world's loader reads the pack's own weights).
FILE_LOADERS = {
    "CheckpointLoaderSimple": "checkpoints",
    "UNETLoader": "diffusion_models",
    "VAELoader": "vae",
    "CLIPLoader": "text_encoders",
    "DualCLIPLoader": "text_encoders",
    "TripleCLIPLoader": "text_encoders",
}


@pytest.mark.parametrize("path", WORKFLOWS, ids=IDS)
def test_every_model_loader_says_which_file_where_and_from_where(path):
    """``properties.models`` as core templates carry it: the frontend names a missing file, its
    folder and its download link (newer backends download it from there)."""
    for node in load(path)["nodes"]:
        if node["type"] not in FILE_LOADERS:
            continue
        models = node.get("properties", {}).get("models")
        assert models, f"{path.name}: node {node['id']} ({node['type']}) has no properties.models"
        names = {m["name"] for m in models}
        files = [v for v in node["widgets_values"] if isinstance(v, str) and v.endswith((".safetensors", ".ckpt"))]
        assert files and set(files) <= names, (path.name, files, names)  # every file it loads
        for m in models:
            assert m["directory"] == FILE_LOADERS[node["type"]] and m["url"].startswith("https://")
            assert m["url"].endswith("/" + m["name"]), m
