"""Small helpers shared by the EMS node adapters (ComfyUI-facing, no model code)."""

from __future__ import annotations

import logging

LOG = logging.getLogger("EMS")
CATEGORY = "EMS"


class EMSNodeError(ValueError):
    """A user-facing error: the message names the node and the fix (shown in ComfyUI's dialog)."""


def node_error(node: str, message: str) -> EMSNodeError:
    return EMSNodeError(message if message.startswith(node) else f"{node}: {message}")


def repeat_latent(latent: dict, count: int) -> dict:
    """Repeat a batch-1 LATENT ``count`` times with a repeated ``batch_index``.

    ComfyUI's ``prepare_noise`` draws noise item by item by batch_index, so repeating the index
    gives every item the same noise: items differ only by α.
    """
    samples = latent["samples"]
    out = {k: v for k, v in latent.items() if k not in ("samples", "batch_index", "noise_mask")}
    out["samples"] = samples.repeat(count, *([1] * (samples.ndim - 1)))
    index = latent.get("batch_index", [0])
    out["batch_index"] = [int(index[0])] * count
    mask = latent.get("noise_mask")
    if mask is not None:
        out["noise_mask"] = mask.repeat(count, *([1] * (mask.ndim - 1))) if mask.shape[0] == 1 else mask
    return out
