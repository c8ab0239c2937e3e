"""The pack's translations as a real ComfyUI server serves them (GET /api/i18n), and the record of
node ids, input names and output counts (tests/unit/data/node_defs.json) that the unit tier checks
them against, compared with what the server registers (/object_info)."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RECORD_PATH = REPO / "tests" / "unit" / "data" / "node_defs.json"
PACK_FOLDERS = ("comfyui-ems", "ems-semantic-edit")


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def registered(info: dict) -> dict:
    """{node id: {"inputs": [required + optional names], "outputs": count}} for the pack's nodes."""
    return {
        node: {
            "inputs": [*spec["input"].get("required", {}), *spec["input"].get("optional", {})],
            "outputs": len(spec["output"]),
        }
        for node, spec in info.items()
        if node.startswith("EMS") and spec.get("python_module", "").endswith("comfyui-ems")
    }


def test_the_node_record_matches_what_the_server_registers(comfy):
    assert registered(comfy.object_info()) == load(RECORD_PATH), (
        "tests/unit/data/node_defs.json is out of date: rewrite it from /object_info, then update "
        "locales/*/nodeDefs.json to match"
    )


def test_i18n_serves_the_zh_node_defs_for_every_ems_node(comfy):
    served = comfy.get("/i18n")
    ours = load(REPO / "locales" / "zh" / "nodeDefs.json")
    node_defs = served.get("zh", {}).get("nodeDefs", {})
    for node in registered(comfy.object_info()):
        assert node_defs.get(node) == ours[node], f"/i18n does not serve zh.nodeDefs.{node} as shipped"


def test_i18n_serves_the_template_category_label_in_en_and_zh(comfy):
    served = comfy.get("/i18n")
    for lang in ("en", "zh"):
        category = served.get(lang, {}).get("templateWorkflows", {}).get("category", {})
        want = load(REPO / "locales" / lang / "main.json")["templateWorkflows"]["category"]
        for folder in PACK_FOLDERS:
            assert category.get(folder) == want[folder], f"/i18n {lang}: no template category label for {folder}"
