"""Small helpers shared by the EMS node adapters (ComfyUI-facing, no model code)."""

from __future__ import annotations

import logging

LOG = logging.getLogger("EMS")
CATEGORY = "EMS"


class EMSNodeError(ValueError):
    """A user-facing error: the message names the node and the fix (shown in ComfyUI's dialog)."""


def node_error(node: str, message: str) -> EMSNodeError:
    return EMSNodeError(message if message.startswith(node) else f"{node}: {message}")
