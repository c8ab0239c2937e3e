"""The translations ComfyUI serves to its frontend (GET /api/i18n), checked without ComfyUI.

ComfyUI (0.3.64+) reads ``locales/<lang>/main.json`` as the language's top level and
``locales/<lang>/nodeDefs.json`` under its key ``nodeDefs``. A node's entry has ``display_name``,
``description``, ``inputs.<input name>.{name, tooltip}`` and ``outputs.<slot index>.{name, tooltip}``
(the shape of the frontend's own src/locales/en/nodeDefs.json). The node ids, input names and output
counts come from ``data/node_defs.json``, a record of a real server's /object_info that the
integration tier (tests/integration/test_locales_served.py) checks against the server.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCALES = REPO / "locales"
LOCALE_FILES = sorted(LOCALES.glob("*/*.json"))
RECORD = json.loads((Path(__file__).parent / "data" / "node_defs.json").read_text(encoding="utf-8"))
# The pack's folder in custom_nodes: a git clone's, and the Comfy Registry's install (its node id).
PACK_FOLDERS = ("comfyui-ems", "ems-semantic-edit")
NODE_KEYS = {"display_name", "description", "inputs", "outputs"}
SLOT_KEYS = {"name", "tooltip"}


def load(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def zh_node_defs() -> dict:
    return load(LOCALES / "zh" / "nodeDefs.json")


def text(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


def test_the_locale_files_exist():
    names = {str(p.relative_to(LOCALES)).replace("\\", "/") for p in LOCALE_FILES}
    assert {"en/main.json", "zh/main.json", "zh/nodeDefs.json"} <= names


@pytest.mark.parametrize("path", LOCALE_FILES, ids=[str(p.relative_to(LOCALES)) for p in LOCALE_FILES])
def test_every_locale_file_parses_as_a_json_object(path):
    assert isinstance(load(path), dict), f"{path}: ComfyUI merges an object, not {type(load(path)).__name__}"


def test_the_record_names_every_node_the_source_registers():
    # The record itself is checked against a server by the integration tier; this keeps it in step
    # with the source between server runs.
    source = "".join(p.read_text(encoding="utf-8") for p in (REPO / "nodes").glob("*.py"))
    assert set(re.findall(r'node_id="(EMS\w+)"', source)) == set(RECORD)


@pytest.mark.parametrize("node", sorted(RECORD))
def test_zh_node_defs_cover_the_node_exactly(node):
    defs = zh_node_defs()
    assert node in defs, f"zh/nodeDefs.json has no entry for {node}"
    entry, want = defs[node], RECORD[node]
    assert set(entry) <= NODE_KEYS, f"{node}: unknown keys {sorted(set(entry) - NODE_KEYS)}"
    assert text(entry.get("display_name")), f"{node}: no display_name"
    assert "EMS" in entry["display_name"], f"{node}: display_name {entry['display_name']!r} lacks 'EMS'"
    assert text(entry.get("description")), f"{node}: no description"

    inputs = entry.get("inputs", {})
    assert sorted(inputs) == sorted(want["inputs"]), f"{node}: inputs differ from the record"
    outputs = entry.get("outputs", {})
    assert sorted(outputs, key=int) == [str(i) for i in range(want["outputs"])], f"{node}: outputs by slot index"
    for kind, slots in (("inputs", inputs), ("outputs", outputs)):
        for key, slot in slots.items():
            assert isinstance(slot, dict) and set(slot) == SLOT_KEYS, f"{node}.{kind}.{key}: want name and tooltip"
            assert text(slot["name"]) and text(slot["tooltip"]), f"{node}.{kind}.{key}: empty name or tooltip"


def test_zh_node_defs_name_no_unknown_node():
    assert sorted(set(zh_node_defs()) - set(RECORD)) == []


def test_zh_display_names_are_distinct():
    names = [entry["display_name"] for entry in zh_node_defs().values()]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_main_json_labels_the_template_group_for_both_pack_folders(lang):
    main = load(LOCALES / lang / "main.json")
    assert set(main) == {"templateWorkflows"}, f"{lang}/main.json: only the template category is expected"
    category = main["templateWorkflows"]["category"]
    assert set(category) == set(PACK_FOLDERS)
    assert all(text(label) and "EMS" in label for label in category.values())
    assert len(set(category.values())) == 1, "both folders are the same pack: one label"
