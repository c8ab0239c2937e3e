"""ComfyUI adapters for EMS: one module per node, registered through the pinned V3 API."""

from __future__ import annotations

from comfy_api.v0_0_2 import ComfyExtension, io

from .alpha_sweep import EMSAlphaSweep
from .csds_latent_edit import EMSCSDSLatentEdit
from .encode_prompts import EMSEncodePrompts
from .extract_captions import EMSExtractCaptions
from .flow_edit import EMSFlowEdit
from .labelled_grid import EMSLabelledGrid
from .latent_direction import EMSLatentDirection
from .text_direction import EMSTextDirection

NODES: list[type[io.ComfyNode]] = [EMSExtractCaptions, EMSEncodePrompts, EMSTextDirection, EMSAlphaSweep,
                                   EMSCSDSLatentEdit, EMSFlowEdit, EMSLabelledGrid, EMSLatentDirection]


def _toyworld_nodes() -> list[type[io.ComfyNode]]:
    """The toy world's dev nodes (toyworld/): its loader and a scene drawer. The weights load only when the node
    runs, so a pack without them still imports; a broken toy world never hides the EMS nodes."""
    try:
        from ..toyworld.comfy_loader import EMSToyWorldLoader
        from ..toyworld.comfy_scene import EMSToyScene
    except Exception as e:  # noqa: BLE001 - any failure here must not take the pack down
        import logging

        logging.warning("EMS: the toy world's loader is unavailable (%s)", e)
        return []
    return [EMSToyWorldLoader, EMSToyScene]


NODES += _toyworld_nodes()


class EMSExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)
