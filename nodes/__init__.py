"""ComfyUI adapters for EMS: one module per node, registered through the pinned V3 API."""

from __future__ import annotations

from comfy_api.v0_0_2 import ComfyExtension, io

from .alpha_sweep import EMSAlphaSweep
from .csds_latent_edit import EMSCSDSLatentEdit
from .encode_prompts import EMSEncodePrompts
from .extract_captions import EMSExtractCaptions
from .labelled_grid import EMSLabelledGrid
from .latent_direction import EMSLatentDirection
from .text_direction import EMSTextDirection

NODES: list[type[io.ComfyNode]] = [EMSExtractCaptions, EMSEncodePrompts, EMSTextDirection, EMSAlphaSweep, EMSCSDSLatentEdit, EMSLabelledGrid,
                                 EMSLatentDirection]


class EMSExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)
