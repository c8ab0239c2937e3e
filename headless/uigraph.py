"""Write UI-format ComfyUI workflows from a compact Python description.

``g.node("KSampler", model=ckpt[0], steps=50)`` adds a node; keyword values are either outputs of
other nodes (``node[slot]``) or widget values. Widget order, defaults, slot names and types come
from a server's ``/object_info``, so the files match what that ComfyUI builds when it loads them
(hand-typed ``widgets_values`` lists are where example workflows usually go wrong).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .workflow import CONTROL, UPLOAD, input_type, is_widget, ordered_inputs, widget_layout

NOTE_COLOR = {"color": "#432", "bgcolor": "#653"}


@dataclass(frozen=True)
class Ref:
    node: "UINode"
    slot: int


@dataclass
class UINode:
    graph: "UIGraph"
    id: int
    type: str
    values: dict
    title: str | None = None
    note: str | None = None  # text of a Note/MarkdownNote
    column: int | None = None
    size: list = field(default_factory=list)
    properties: dict = field(default_factory=dict)  # e.g. {"models": [...]}: what the frontend offers to download

    def __getitem__(self, slot: int) -> Ref:
        return Ref(self, slot)


class UIGraph:
    def __init__(self, object_info: dict):
        self.info = object_info
        self.nodes: list[UINode] = []

    def node(self, class_type: str, title: str | None = None, properties: dict | None = None, **values) -> UINode:
        if class_type not in self.info:
            raise KeyError(f"{class_type} is not registered on this server")
        known = {name for name, _, _ in ordered_inputs(self.info[class_type])}
        unknown = set(values) - known
        if unknown:
            raise KeyError(f"{class_type} has no input(s) {sorted(unknown)}")
        n = UINode(self, len(self.nodes) + 1, class_type, values, title, properties=dict(properties or {}))
        self.nodes.append(n)
        return n

    def note(self, text: str, column: int, markdown: bool = True, width: int = 380, height: int = 220) -> UINode:
        n = UINode(
            self,
            len(self.nodes) + 1,
            "MarkdownNote" if markdown else "Note",
            {},
            note=text,
            column=column,
            size=[width, height],
        )
        self.nodes.append(n)
        return n

    # -- layout ---------------------------------------------------------------------------------
    def _depth(self) -> dict[int, int]:
        depth: dict[int, int] = {}

        def visit(n: UINode) -> int:
            if n.id not in depth:
                parents = [v.node for v in n.values.values() if isinstance(v, Ref)]
                depth[n.id] = 1 + max((visit(p) for p in parents), default=-1)
            return depth[n.id]

        for n in self.nodes:
            if n.note is None:
                visit(n)
        return depth

    def _size(self, n: UINode) -> list[int]:
        if n.size:
            return n.size
        info = self.info[n.type]
        slots = sum(1 for _, spec, _ in ordered_inputs(info) if not is_widget(spec))
        outputs = len(info.get("output", []))
        height = 46 + 22 * max(slots, outputs)
        for name, spec, _ in ordered_inputs(info):
            if is_widget(spec) and not isinstance(n.values.get(name), Ref):
                options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                height += 96 if options.get("multiline") else 26
        if n.type in ("SaveImage", "PreviewImage", "LoadImage"):
            height += 260
        if n.type == "PreviewAny":
            height += 80
        return [340, height]

    def _positions(self) -> dict[int, list[int]]:
        depth = self._depth()
        columns: dict[int, list[UINode]] = {}
        for n in self.nodes:
            col = n.column if n.note is not None else depth[n.id]
            columns.setdefault(col, []).append(n)
        pos, x = {}, 40
        for col in sorted(columns):
            members = sorted(columns[col], key=lambda m: (m.note is None, m.id))  # notes on top
            y, width = 40, 0
            for n in members:
                w, h = self._size(n)
                pos[n.id] = [x, y]
                y += h + 50
                width = max(width, w)
            x += width + 60
        return pos

    # -- serialisation --------------------------------------------------------------------------
    def to_ui(self) -> dict:
        links, out_links = [], {}
        pos = self._positions()
        order = {n.id: i for i, n in enumerate(sorted(self.nodes, key=lambda m: (self._depth().get(m.id, 0), m.id)))}
        nodes = []
        for n in self.nodes:
            if n.note is not None:
                nodes.append(
                    {
                        "id": n.id,
                        "type": n.type,
                        "pos": pos[n.id],
                        "size": n.size,
                        "flags": {},
                        "order": order[n.id],
                        "mode": 0,
                        "inputs": [],
                        "outputs": [],
                        "properties": {},
                        "widgets_values": [n.note],
                        **NOTE_COLOR,
                    }
                )
                continue
            info = self.info[n.type]
            inputs = []
            for name, spec, required in ordered_inputs(info):
                value = n.values.get(name)
                link = None
                if isinstance(value, Ref):
                    link = len(links) + 1
                    kind = info_output_type(value)
                    links.append([link, value.node.id, value.slot, n.id, len(inputs), kind])
                    out_links.setdefault((value.node.id, value.slot), []).append(link)
                if is_widget(spec) and link is None:
                    continue  # an unlinked widget is not a slot in the saved graph
                slot = {"name": name, "type": input_type(spec), "link": link}
                if is_widget(spec):
                    slot["widget"] = {"name": name}
                if not required:
                    slot["shape"] = 7  # LiteGraph's hollow dot for optional inputs
                inputs.append(slot)
            nodes.append(
                {
                    "id": n.id,
                    "type": n.type,
                    "pos": pos[n.id],
                    "size": self._size(n),
                    "flags": {},
                    "order": order[n.id],
                    "mode": 0,
                    "inputs": inputs,
                    "outputs": [],
                    "properties": {"Node name for S&R": n.type, **n.properties},
                    "widgets_values": self._widgets(n, info),
                    **({"title": n.title} if n.title else {}),
                }
            )
        for node in nodes:
            if node["type"] in ("Note", "MarkdownNote"):
                continue
            info = self.info[node["type"]]
            for slot, (kind, name) in enumerate(zip(info["output"], info["output_name"])):
                node["outputs"].append(
                    {"name": name, "type": kind, "links": out_links.get((node["id"], slot), []), "slot_index": slot}
                )
        return {
            "last_node_id": len(self.nodes),
            "last_link_id": len(links),
            "nodes": nodes,
            "links": links,
            "groups": [],
            "config": {},
            "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}},
            "version": 0.4,
        }

    def _widgets(self, n: UINode, info: dict) -> list:
        specs = {name: spec for name, spec, _ in ordered_inputs(info)}
        values = []
        for name in widget_layout(info):
            if name == CONTROL:
                values.append("fixed")  # reproducible by default: same seed, same result
            elif name == UPLOAD:
                values.append("image")
            else:
                value = n.values.get(name)
                values.append(default_of(specs[name]) if value is None or isinstance(value, Ref) else value)
        return values


def info_output_type(ref: Ref) -> str:
    return ref.node.graph.info[ref.node.type]["output"][ref.slot]


def default_of(spec: list):
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if "default" in options:
        return options["default"]
    choices = spec[0] if isinstance(spec[0], list) else options.get("options", [])
    if choices:
        return choices[0]
    return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(input_type(spec), "")


def prompt_to_ui(prompt: dict, object_info: dict) -> dict:
    """The UI graph of an API-format prompt: what a run embeds in its PNGs as ``workflow``, so the
    result dragged onto ComfyUI's canvas opens as the graph that made it (not the shipped graph it
    started from: the headless runner swaps loaders, images and settings). Nodes are laid out by
    depth; canvas notes are not part of a prompt and are not restored."""
    g = UIGraph(object_info)
    made: dict[str, UINode] = {}

    def add(key: str, trail: tuple = ()) -> UINode:
        if key in made:
            return made[key]
        if key in trail:
            raise ValueError(f"the prompt has a cycle through node {key}")
        entry = prompt[key]
        values = {}
        for name, value in entry["inputs"].items():
            if isinstance(value, list) and len(value) == 2 and str(value[0]) in prompt:
                values[name] = add(str(value[0]), (*trail, key))[int(value[1])]
            else:
                values[name] = value
        title = (entry.get("_meta") or {}).get("title")
        made[key] = g.node(entry["class_type"], title=title, **values)
        return made[key]

    for key in sorted(prompt, key=lambda k: (len(k), k)):
        add(key)
    return g.to_ui()
