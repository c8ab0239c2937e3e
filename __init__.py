"""EMS for ComfyUI — zero-shot fine-grained semantic editing for SD3 (arXiv 2408.13335).

Nodes are registered through ComfyUI's V3 schema, pinned to ``comfy_api.v0_0_2`` so a ComfyUI
update that moves ``comfy_api.latest`` does not break saved workflows.
"""

WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    from .nodes import EMSExtension

    return EMSExtension()


__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
