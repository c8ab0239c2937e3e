"""EMS for ComfyUI — zero-shot fine-grained semantic editing for SD3 (arXiv 2408.13335).

Nodes are registered through ComfyUI's V3 schema, imported from ``comfy_api.v0_0_2`` (the newest
versioned name in ComfyUI 0.3.64). That name does not freeze the API: in 0.3.64 it re-exports
``comfy_api.latest``'s ``io`` and ``ui``, so a ComfyUI update can still change the schema classes.
What keeps saved workflows working is that node ids and input names are public API (see the
README), checked against a real ComfyUI server by the integration tier.
"""

WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    from .nodes.extension import EMSExtension

    return EMSExtension()


__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
