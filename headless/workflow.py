"""ComfyUI workflow formats without ComfyUI: UI graph (what users drag in) ⇄ API prompt (what /prompt runs).

The UI format stores widget values as a positional list (``widgets_values``) whose layout is not
in the file: it follows the node's inputs as the server's ``/object_info`` lists them, plus the
frontend's extra widgets (the "control after generate" combo after a seed, the upload button of an
image picker). ``widget_layout`` reproduces that layout, so conversion must be done against the
same server that will run the prompt.
"""

from __future__ import annotations

import copy

# Frontend-only nodes: they live on the canvas and never reach the server.
VIRTUAL_NODES = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
MODE_MUTED, MODE_BYPASS = 2, 4
CONTROL = "control_after_generate"  # frontend-only widget: fixed / increment / decrement / randomize
UPLOAD = "upload"  # frontend-only button widget of image/video/audio pickers


class WorkflowError(ValueError):
    """A workflow that cannot be converted; the message names the node and what is wrong."""


def ordered_inputs(info: dict) -> list[tuple[str, list, bool]]:
    """(name, spec, required) for every input in the order the frontend builds the node."""
    spec = info.get("input", {})
    order = info.get("input_order") or {s: list(spec.get(s, {})) for s in ("required", "optional")}
    out = []
    for section in ("required", "optional"):
        for name in order.get(section, []):
            if name in spec.get(section, {}):
                out.append((name, spec[section][name], section == "required"))
    return out


def input_type(spec: list) -> str:
    return "COMBO" if isinstance(spec[0], list) else str(spec[0])


def is_widget(spec: list) -> bool:
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return input_type(spec) in WIDGET_TYPES and not options.get("forceInput", False)


def widget_layout(info: dict) -> list[str]:
    """Names of the entries of ``widgets_values`` for a node, including frontend-only ones."""
    names = []
    for name, spec, _ in ordered_inputs(info):
        if not is_widget(spec):
            continue
        names.append(name)
        options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
        kind = input_type(spec)
        # The frontend's rule: an explicit option wins; otherwise INTs named seed/noise_seed get one.
        legacy_seed = kind == "INT" and name in ("seed", "noise_seed")
        if options.get(CONTROL, legacy_seed if kind == "INT" else False):
            names.append(CONTROL)
        if kind == "COMBO" and any(options.get(k) for k in ("image_upload", "video_upload", "audio_upload")):
            names.append(UPLOAD)
    return names


def widget_values(node: dict, info: dict) -> dict:
    """{input name: value} from a UI node's ``widgets_values`` (frontend-only widgets dropped).

    A workflow saved by an older ComfyUI may have fewer values than this server's node has widgets:
    ComfyUI appends new inputs after the old ones, so the saved values fill the leading widgets and
    ``fill_defaults`` supplies the rest. More values than widgets means the node lost an input, and
    positions can no longer be trusted: that is refused.
    """
    values = node.get("widgets_values") or []
    if isinstance(values, dict):  # some frontends store named values
        return {k: v for k, v in values.items() if k not in (CONTROL, UPLOAD)}
    layout = widget_layout(info)
    if len(values) > len(layout):
        raise WorkflowError(
            f"node {node['id']} ({node['type']}) has {len(values)} widget values but this "
            f"ComfyUI's {node['type']} has {len(layout)} ({', '.join(layout)}): the workflow was "
            "saved with another version of the node. Open it in ComfyUI, check the node's "
            "values and save it again."
        )
    return {name: value for name, value in zip(layout, values) if name not in (CONTROL, UPLOAD)}


def input_default(spec: list):
    """The value the frontend gives a new widget: its ``default``, else a COMBO's first option."""
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if "default" in options:
        return options["default"]
    if isinstance(spec[0], list) and spec[0]:
        return spec[0][0]
    if input_type(spec) == "COMBO" and options.get("options"):
        return options["options"][0]
    raise KeyError("no default")


def fill_defaults(inputs: dict, info: dict) -> list[str]:
    """Give every required widget the workflow does not set this server's default (inputs that a
    newer ComfyUI added to a node); returns ``name=value`` for each one filled."""
    filled = []
    for name, spec, required in ordered_inputs(info):
        if required and name not in inputs and is_widget(spec):
            try:
                inputs[name] = input_default(spec)
            except KeyError:
                continue  # no default to give: the server's validation will name it
            filled.append(f"{name}={inputs[name]!r}")
    return filled


def _is_id(value) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _node_problem(node, index: int) -> str | None:
    if not isinstance(node, dict):
        return f"nodes[{index}] is not an object"
    if not _is_id(node.get("id")):
        return f'nodes[{index}] has no "id" (a number)'
    if not isinstance(node.get("type"), str) or not node["type"]:
        return f'node {node["id"]} has no "type" (the name of its node class)'
    name = f"node {node['id']} ({node['type'][:60]})"
    values = node.get("widgets_values")
    if values is not None and not isinstance(values, (list, dict)):
        return f'{name} has "widgets_values" that are neither a list nor an object'
    slots = node.get("inputs") or []
    if not isinstance(slots, list):
        return f'{name} has "inputs" that are not a list'
    for slot in slots:
        if (
            not isinstance(slot, dict)
            or not isinstance(slot.get("name"), str)
            or not (slot.get("link") is None or _is_id(slot.get("link")))
        ):
            return f'{name} has an input slot that is not a {{"name": …, "link": …}} object'
    return None


def shape_problem(workflow) -> str | None:
    """What keeps ``workflow`` from being read as a UI graph, or None. Checked before anything
    indexes into it: a workflow is a file from anywhere, and a missing field must be a message
    naming it, not a KeyError from deep inside the conversion."""
    if not isinstance(workflow, dict) or not isinstance(workflow.get("nodes"), list):
        return (
            'this is not a UI-format ComfyUI workflow (no "nodes" list); save it from '
            "ComfyUI with Workflow → Save (not Export (API))"
        )
    seen = set()
    for index, node in enumerate(workflow["nodes"]):
        problem = _node_problem(node, index)
        if problem:
            return problem
        if node["id"] in seen:
            return f"node id {node['id']} appears twice"
        seen.add(node["id"])
    links = workflow.get("links") or []
    if not isinstance(links, list):
        return '"links" is not a list'
    for index, link in enumerate(links):
        if not isinstance(link, list) or len(link) < 3 or not all(_is_id(v) for v in link[:3]):
            return f"links[{index}] is not a [link id, from node, from slot, …] list"
    return None


def ui_to_api(workflow: dict, object_info: dict, filled: list | None = None) -> dict:
    """Convert a UI-format workflow to an API prompt, as the frontend's "Queue" would.

    Required widgets the workflow lacks get this server's defaults (see ``fill_defaults``); each is
    appended to ``filled`` as ``"NodeType.input=value"`` so a caller can say so.
    """
    problem = shape_problem(workflow)
    if problem:
        raise WorkflowError(problem)
    links = {link[0]: link for link in workflow.get("links") or []}
    nodes = {n["id"]: n for n in workflow.get("nodes", [])}
    missing = sorted(
        {n["type"] for n in nodes.values() if n["type"] not in VIRTUAL_NODES and n["type"] not in object_info}
    )
    if missing:
        raise WorkflowError(
            f"this ComfyUI does not know the node type(s) {', '.join(missing)}; install "
            "the pack that provides them (or update ComfyUI)."
        )
    prompt = {}
    for node in nodes.values():
        if node["type"] in VIRTUAL_NODES or node.get("mode", 0) in (MODE_MUTED, MODE_BYPASS):
            continue
        info = object_info[node["type"]]
        inputs = widget_values(node, info)
        for slot in node.get("inputs", []):
            if slot.get("link") is None:
                continue
            link = links.get(slot["link"])
            if link is None:
                raise WorkflowError(
                    f"node {node['id']} ({node['type']}) input '{slot['name']}' refers to "
                    f"link {slot['link']}, which the workflow does not contain."
                )
            source = nodes.get(link[1])
            if source is None or source["type"] in VIRTUAL_NODES or source.get("mode", 0) in (MODE_MUTED, MODE_BYPASS):
                raise WorkflowError(
                    f"node {node['id']} ({node['type']}) input '{slot['name']}' comes from a "
                    "note, reroute, muted or bypassed node; the headless runner needs a direct link."
                )
            inputs[slot["name"]] = [str(link[1]), link[2]]
        added = fill_defaults(inputs, info)
        if filled is not None:
            filled += [f"{node['type']}.{item}" for item in added]
        entry = {"class_type": node["type"], "inputs": inputs}
        if node.get("title"):
            entry["_meta"] = {"title": node["title"]}
        prompt[str(node["id"])] = entry
    return prompt


# -- editing API prompts --------------------------------------------------------------------------


def nodes_of(prompt: dict, class_type: str) -> list[str]:
    return sorted((k for k, v in prompt.items() if v["class_type"] == class_type), key=int)


def new_id(prompt: dict) -> str:
    return str(max((int(k) for k in prompt), default=0) + 1)


def relink(prompt: dict, old: list, new: list) -> None:
    """Point every input that reads output ``old`` ([node, slot]) at ``new`` instead."""
    for entry in prompt.values():
        for name, value in entry["inputs"].items():
            if isinstance(value, list) and len(value) == 2 and str(value[0]) == str(old[0]) and value[1] == old[1]:
                entry["inputs"][name] = list(new)


def drop_caption_llm(prompt: dict, source: str, target: str, attribute: str = "") -> dict:
    """Replace EMS Extract Captions by typed prompts (the offline path): its four STRING outputs
    are written straight into the inputs that read them."""
    prompt = copy.deepcopy(prompt)
    typed = {0: source, 1: target, 2: attribute or target, 3: attribute or target}
    for key in nodes_of(prompt, "EMSExtractCaptions"):
        for entry in prompt.values():
            for name, value in list(entry["inputs"].items()):
                if isinstance(value, list) and len(value) == 2 and str(value[0]) == key:
                    entry["inputs"][name] = typed.get(value[1], "")
        del prompt[key]
    return prompt
