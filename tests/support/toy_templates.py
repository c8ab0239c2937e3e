"""The shipped toy template (01) with the toy loader's family set, and what its sweep tiles read."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from comfyui_ems.toyworld.readout import read
from support.comfy_server import REPO

TEMPLATE = REPO / "example_workflows" / "01 Toy world, EMS Flow Edit alpha grid (nothing to download).json"


def toy_template(comfy, family: str | None):
    from headless.workflow import nodes_of, ui_to_api

    prompt = ui_to_api(json.loads(TEMPLATE.read_text()), comfy.object_info())
    (loader,) = nodes_of(prompt, "EMSToyWorldLoader")
    if family is None:
        prompt[loader]["inputs"].pop("family", None)  # a graph saved before the input existed
    else:
        prompt[loader]["inputs"]["family"] = family
    return prompt


def read_tiles(comfy, prompt, history) -> list[dict]:
    from headless.workflow import nodes_of

    (tiles,) = [
        history["outputs"][k]["images"]
        for k in nodes_of(prompt, "SaveImage")
        if "sweep" in prompt[k]["inputs"]["filename_prefix"]
    ]
    return [
        read(np.asarray(Image.open(comfy.base / "output" / i["subfolder"] / i["filename"]).convert("RGB")))
        for i in tiles
    ]
