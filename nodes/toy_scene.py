"""EMSToyScene: a drawn toy-world scene as an IMAGE, with its caption.

So a workflow on the toy world runs in the UI with nothing to download or place in ComfyUI's input
folder: this node stands where *Load Image* stands for a photo. The scene is drawn exactly as the
toy model's training and test scenes are (``toyworld.scenes.render``, 64×64).
"""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..toyworld.scenes import ATTRIBUTES, Scene, caption, render
from .common import node_errors
from .schema import schema

NODE = "EMS Toy Scene (dev)"


def scene_image(colour: str, shape: str, count: int, size: str, background: str, layout: int) -> tuple:
    """(IMAGE (1, 64, 64, 3) float in 0…1, the scene's caption)."""
    scene = Scene(colour, shape, int(count), size, background, layout=int(layout))
    pixels = torch.from_numpy(render(scene)).float() / 255.0
    return pixels[None], caption(scene)


def combo(name: str, default, tooltip: str):
    options = [str(v) for v in ATTRIBUTES[name]]
    return io.Combo.Input(name, options=options, default=str(default), tooltip=tooltip)


SEARCH_ALIASES = ["toy world", "demo scene", "test image"]


class EMSToyScene(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            search_aliases=SEARCH_ALIASES,
            node_id="EMSToyScene",
            display_name=NODE,
            category="EMS/dev",
            description=(
                "Draws a toy-world scene (64×64) to edit with the toy model of EMS Toy World "
                "Loader (dev): the picture stands in for a photo, the caption is the toy "
                "grammar's source caption."
            ),
            inputs=[
                combo("colour", "red", "Colour of the objects."),
                combo("shape", "circle", "Shape of the objects."),
                combo("count", 2, "How many objects (1 to 3)."),
                combo("size", "large", "Object size."),
                combo("background", "white", "Background colour."),
                io.Int.Input(
                    "layout",
                    default=2_000_007,
                    min=0,
                    max=2**31 - 1,
                    tooltip="Seeds the object positions (positions do not depend on size or count).",
                ),
            ],
            outputs=[
                io.Image.Output("image", display_name="IMAGE", tooltip="The drawn scene, 64×64."),
                io.String.Output(
                    "caption",
                    display_name="caption",
                    tooltip="Its caption, e.g. 'two large red circles on a white background'.",
                ),
            ],
        )

    @classmethod
    def execute(cls, colour, shape, count, size, background, layout) -> io.NodeOutput:
        with node_errors(NODE, ValueError):
            image, text = scene_image(colour, shape, int(count), size, background, layout)
        return io.NodeOutput(image, text)
