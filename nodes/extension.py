"""The pack's ComfyUI extension: the node list, built when ComfyUI asks for it.

Importing ``nodes`` (or any one adapter, e.g. ``nodes.csds_guider`` from the bench) does not import
every node and ComfyUI's extension API; only ComfyUI's call to ``comfy_entrypoint`` does.
"""

from __future__ import annotations

import logging

from comfy_api.v0_0_2 import ComfyExtension, io

from .alpha_sweep import EMSAlphaSweep
from .csds_latent_edit import EMSCSDSLatentEdit
from .encode_prompts import EMSEncodePrompts
from .extract_captions import EMSExtractCaptions
from .flow_edit import EMSFlowEdit
from .labelled_grid import EMSLabelledGrid
from .latent_direction import EMSLatentDirection
from .text_direction import EMSTextDirection

NODES: list[type[io.ComfyNode]] = [
    EMSExtractCaptions,
    EMSEncodePrompts,
    EMSTextDirection,
    EMSAlphaSweep,
    EMSCSDSLatentEdit,
    EMSFlowEdit,
    EMSLabelledGrid,
    EMSLatentDirection,
]


def toyworld_nodes() -> list[type[io.ComfyNode]]:
    """The toy world's dev nodes: its loader and a scene drawer. The weights load only when the node
    runs, so a pack without them still imports; a broken toy world never hides the EMS nodes."""
    try:
        from .toy_scene import EMSToyScene
        from .toy_world_loader import EMSToyWorldLoader
    except Exception as e:  # any failure here must not take the pack down
        logging.getLogger("EMS").warning("EMS: the toy world's dev nodes are unavailable (%s)", e)
        return []
    return [EMSToyWorldLoader, EMSToyScene]


class EMSExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES + toyworld_nodes()
