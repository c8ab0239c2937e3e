"""EMSLabelledGrid: a sweep's images as one grid with its α label under each tile."""

from __future__ import annotations

import comfy.model_management
import comfy.utils
from comfy_api.v0_0_2 import io

from ..ems.grid import labelled_grid, split_labels
from .common import CATEGORY, check_finite_inputs, node_errors
from .schema import schema
from .fonts import system_font

NODE = "EMS Labelled Grid"


SEARCH_ALIASES = ["image grid", "labelled grid", "contact sheet", "alpha grid"]


class EMSLabelledGrid(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            search_aliases=SEARCH_ALIASES,
            node_id="EMSLabelledGrid",
            display_name="EMS Labelled Grid",
            category=f"{CATEGORY}/image",
            description=(
                "Lays a batch of images out as one grid and writes a label under each "
                "tile — connect EMS Alpha Sweep's 'labels' to see which α made which image."
            ),
            inputs=[
                io.Image.Input("images", tooltip="The decoded batch (e.g. VAE Decode after a sweep)."),
                io.String.Input(
                    "labels",
                    multiline=True,
                    default="",
                    tooltip="One label per image, newline-separated (EMS Alpha Sweep's "
                    "'labels' output). Missing lines leave a tile unlabelled.",
                ),
                io.Int.Input(
                    "columns",
                    default=0,
                    min=0,
                    max=64,
                    tooltip="Tiles per row; 0 = automatic (one row for up to 8 images).",
                ),
            ],
            outputs=[io.Image.Output("image", display_name="image", tooltip="The grid as a single image.")],
        )

    @classmethod
    def execute(cls, images, labels, columns) -> io.NodeOutput:
        check_finite_inputs(NODE, images=images)
        with node_errors(NODE):
            grid = labelled_grid(
                images,
                split_labels(labels, images.shape[0]),
                columns,
                on_tile=tile_hook(images.shape[0]),
                load_font=system_font,
            )
        return io.NodeOutput(grid)


def tile_hook(count: int):
    """Called before each tile: Cancel stops a large grid between tiles, and the progress bar moves."""
    progress = comfy.utils.ProgressBar(count)

    def on_tile(i: int, total: int) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        progress.update_absolute(i, total)

    return on_tile
