"""Build the shipped subgraph blueprint ``subgraphs/EMS Flow Edit (text direction).json`` (EMS Flow Edit along the text direction).

    bash scripts/tool.sh -m scripts.build_blueprint                            # starts a server
    python -m scripts.build_blueprint --object-info object_info.json           # offline

A blueprint is a 0.4 workflow whose single node is an instance of the one subgraph in
``definitions.subgraphs`` (the frontend's ``zSubgraphDefinition``, schema version 1). ComfyUI
backends that serve ``GET /api/global_subgraphs`` list ``custom_nodes/*/subgraphs/*.json`` in the
node library under "Subgraph Blueprints/", named after the file stem; any frontend with subgraphs
opens the file itself (drag it onto the canvas). See docs/blueprint.md.

Inside: VAE Encode → EMS Encode Prompts → EMS Text Direction → BasicScheduler → EMS Flow Edit →
VAE Decode, with the SD3 settings of the shipped ``ems_flow_edit`` workflow. The two captions and α
are promoted: the subgraph has STRING/FLOAT inputs linked to those widgets, so they show as widgets
on the blueprint node. Widget order and slots come from /object_info (headless/workflow.py), the
GUIDs are constants: the output is the same on every run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from headless.uigraph import default_of
from headless.workflow import CONTROL, UPLOAD, input_type, is_widget, ordered_inputs, widget_layout
from scripts.build_workflows import FLOW, FLOW_DENOISE, NEGATIVE, SOURCE_CAPTION, STEPS, TARGET_CAPTION

REPO = Path(__file__).resolve().parents[1]
BLUEPRINT_DIR = REPO / "subgraphs"
NAME = "EMS Flow Edit (text direction)"  # the file stem: what the node library shows (not the node's own name)
TITLE = "EMS Flow Edit (text direction)"  # the subgraph's own name (shown when the file is opened directly)
PATH = BLUEPRINT_DIR / f"{NAME}.json"
CATEGORY = "EMS"  # the library shows it under "Subgraph Blueprints/EMS"

# Fixed identifiers, so that rebuilding changes nothing (a new GUID would be a new subgraph type).
SUBGRAPH_ID = "93ad6780-759d-40bb-be28-67313172be39"
INPUT_IDS = {
    "model": "d5a72b2b-304f-4a11-b316-e9084cc88903",
    "clip": "429f0f3a-ec85-43e2-9528-42e3b3e48a8c",
    "vae": "9c82da3d-e43f-433e-8fe0-717095d42748",
    "image": "2162a8b5-08ba-4c4e-8481-7cadd5631e03",
    "source_prompt": "c12d6388-4f3b-4394-a1fd-3d82bd8d68b5",
    "target_prompt": "b3be9129-46be-407d-abf5-f4274dc94c96",
    "alpha": "144ed205-af09-42ae-9cf0-9b5f7288d771",
}
OUTPUT_ID = "5627ba22-f32a-4a40-96e3-f025b4c6cf49"
INPUT_NODE, OUTPUT_NODE = -10, -20  # the subgraph's input and output nodes (fixed ids in the schema)

# The subgraph's inputs, in order: (name, type). The last three are promoted widgets.
INPUTS = [
    ("model", "MODEL"),
    ("clip", "CLIP"),
    ("vae", "VAE"),
    ("image", "IMAGE"),
    ("source_prompt", "STRING"),
    ("target_prompt", "STRING"),
    ("alpha", "FLOAT"),
]
PROMOTED = ("source_prompt", "target_prompt", "alpha")
ALPHA = 1.0
ATTRIBUTE = "red suit"

DESCRIPTION = (
    "EMS Flow Edit along the text direction: edits an image from the source caption toward the target "
    "caption (identical but for the edited words) without re-generating it. α = 0 returns the image "
    "(after the VAE round trip), 1 the full edit, between a partial edit, negative the opposite. Needs a "
    "rectified-flow model (SD3, SD3.5, Flux…). The two text boxes are the source caption (first) and the "
    "target caption (second). Inside: VAE Encode → EMS Encode Prompts → EMS Text "
    f"Direction → BasicScheduler (steps {STEPS}, denoise {FLOW_DENOISE:g}) → EMS Flow Edit → VAE Decode."
)


class Inner:
    """The inner graph being written: nodes (serialised as the frontend does) and object links."""

    def __init__(self, info: dict, promoted: dict):
        self.info = info
        self.promoted = promoted  # {subgraph input: value}: also the inner widget's own value
        self.nodes: list[dict] = []
        self.links: list[dict] = []

    def link(self, origin: tuple[int, int], target: tuple[int, int], kind: str) -> int:
        link_id = len(self.links) + 1
        self.links.append(
            {
                "id": link_id,
                "origin_id": origin[0],
                "origin_slot": origin[1],
                "target_id": target[0],
                "target_slot": target[1],
                "type": kind,
            }
        )
        return link_id

    def node(self, class_type: str, pos: list[int], size: list[int], **values) -> int:
        """Add a node; a value is a widget value, ``(node_id, slot)`` an inner output or ``("in", name)``
        a subgraph input. Slots are listed as the frontend builds them: the sockets in declared order,
        then one input per widget (linked only where a value is a link)."""
        if class_type not in self.info:
            raise KeyError(f"{class_type} is not registered on this server")
        info = self.info[class_type]
        declared = ordered_inputs(info)
        unknown = set(values) - {name for name, _, _ in declared}
        if unknown:
            raise KeyError(f"{class_type} has no input(s) {sorted(unknown)}")
        node_id = len(self.nodes) + 1
        ordered = [d for d in declared if not is_widget(d[1])] + [d for d in declared if is_widget(d[1])]
        inputs = []
        for name, spec, required in ordered:
            value, link = values.get(name), None
            kind = input_type(spec)
            if isinstance(value, tuple):
                origin = (INPUT_NODE, [n for n, _ in INPUTS].index(value[1])) if value[0] == "in" else value
                link = self.link(origin, (node_id, len(inputs)), kind)
            slot = {"name": name, "type": kind, "link": link}
            if is_widget(spec):
                slot["widget"] = {"name": name}
            if not required:
                slot["shape"] = 7  # LiteGraph's hollow dot for optional inputs
            inputs.append(slot)
        widgets = []
        specs = {name: spec for name, spec, _ in declared}
        for name in widget_layout(info):
            if name == CONTROL:
                widgets.append("fixed")  # reproducible: the same seed on every run
            elif name == UPLOAD:
                widgets.append("image")
            else:
                value = values.get(name)
                if isinstance(value, tuple):
                    value = self.promoted.get(value[1]) if value[0] == "in" else None
                widgets.append(default_of(specs[name]) if value is None else value)
        outputs = [{"name": name, "type": kind, "links": []} for kind, name in zip(info["output"], info["output_name"])]
        self.nodes.append(
            {
                "id": node_id,
                "type": class_type,
                "pos": pos,
                "size": size,
                "flags": {},
                "order": node_id - 1,  # added in dependency order
                "mode": 0,
                "inputs": inputs,
                "outputs": outputs,
                "properties": {"Node name for S&R": class_type},
                "widgets_values": widgets,
            }
        )
        return node_id

    def output(self, origin: tuple[int, int], kind: str) -> int:
        return self.link(origin, (OUTPUT_NODE, 0), kind)

    def finish(self) -> None:
        """Fill each output slot's ``links`` from the link list."""
        by_id = {n["id"]: n for n in self.nodes}
        for link in self.links:
            if link["origin_id"] > 0:
                by_id[link["origin_id"]]["outputs"][link["origin_slot"]]["links"].append(link["id"])


def build(object_info: dict) -> dict:
    promoted_values = {"source_prompt": SOURCE_CAPTION, "target_prompt": TARGET_CAPTION, "alpha": ALPHA}
    g = Inner(object_info, promoted_values)
    latent = g.node("VAEEncode", [0, 0], [220, 50], pixels=("in", "image"), vae=("in", "vae"))
    enc = g.node(
        "EMSEncodePrompts",
        [0, 120],
        [400, 420],
        clip=("in", "clip"),
        source_prompt=("in", "source_prompt"),
        target_prompt=("in", "target_prompt"),
        attribute_prompt=ATTRIBUTE,
        negative_prompt=NEGATIVE,
    )
    direction = g.node(
        "EMSTextDirection",
        [460, 120],
        [300, 130],
        source=(enc, 0),
        target=(enc, 1),
        alpha=("in", "alpha"),
        manipulate_pooled=True,
    )
    sched = g.node(
        "BasicScheduler",
        [0, 600],
        [300, 110],
        model=("in", "model"),
        scheduler="simple",
        steps=STEPS,
        denoise=FLOW_DENOISE,
    )
    edit = g.node(
        "EMSFlowEdit",
        [820, 120],
        [320, 330],
        model=("in", "model"),
        source=(enc, 0),
        positive=(direction, 0),
        negative=(enc, 3),
        latent_image=(latent, 0),
        sigmas=(sched, 0),
        noise_seed=0,
        **FLOW,
    )
    decoded = g.node("VAEDecode", [1200, 120], [220, 50], samples=(edit, 0), vae=("in", "vae"))
    g.output((decoded, 0), "IMAGE")
    g.finish()

    inputs = []
    for index, (name, kind) in enumerate(INPUTS):
        links = [ln["id"] for ln in g.links if ln["origin_id"] == INPUT_NODE and ln["origin_slot"] == index]
        inputs.append({"id": INPUT_IDS[name], "name": name, "type": kind, "linkIds": links})
    outputs = [
        {
            "id": OUTPUT_ID,
            "name": "IMAGE",
            "type": "IMAGE",
            "linkIds": [ln["id"] for ln in g.links if ln["target_id"] == OUTPUT_NODE],
        }
    ]
    outer_id = len(g.nodes) + 1  # node and link ids share one space with the root graph
    outer = {
        "id": outer_id,
        "type": SUBGRAPH_ID,
        "pos": [0, 0],
        "size": [400, 420],
        "flags": {},
        "order": 0,
        "mode": 0,
        "inputs": [
            {"name": name, "type": kind, "link": None, **({"widget": {"name": name}} if name in PROMOTED else {})}
            for name, kind in INPUTS
        ],
        "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": []}],
        "properties": {},
        "widgets_values": [promoted_values[name] for name in PROMOTED],
        "title": TITLE,
    }
    subgraph = {
        "id": SUBGRAPH_ID,
        "version": 1,
        "state": {"lastGroupId": 0, "lastNodeId": outer_id, "lastLinkId": len(g.links), "lastRerouteId": 0},
        "revision": 0,
        "config": {},
        "name": TITLE,
        "description": DESCRIPTION,
        "category": CATEGORY,
        "inputNode": {"id": INPUT_NODE, "bounding": [-300, 120, 160, 200]},
        "outputNode": {"id": OUTPUT_NODE, "bounding": [1500, 120, 128, 60]},
        "inputs": inputs,
        "outputs": outputs,
        "widgets": [],
        "groups": [],
        "nodes": g.nodes,
        "links": g.links,
        "extra": {},
    }
    return {
        "revision": 0,
        "last_node_id": outer_id,
        "last_link_id": len(g.links),
        "nodes": [outer],
        "links": [],
        "groups": [],
        "config": {},
        "extra": {"BlueprintDescription": DESCRIPTION, "ds": {"scale": 1, "offset": [0, 0]}},
        "version": 0.4,
        "definitions": {"subgraphs": [subgraph]},
    }


def dumps(blueprint: dict) -> str:
    return json.dumps(blueprint, indent=1, ensure_ascii=False) + "\n"


def write(object_info: dict, path: Path = PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(build(object_info)), encoding="utf-8")
    return path


def main() -> None:
    from scripts.build_workflows import server_object_info

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--object-info", type=Path, help="a saved /object_info JSON instead of starting ComfyUI")
    args = ap.parse_args()
    info = json.loads(args.object_info.read_text()) if args.object_info else server_object_info()
    print(f"wrote {write(info).relative_to(REPO)}")


if __name__ == "__main__":
    main()
