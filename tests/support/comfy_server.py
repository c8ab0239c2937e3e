"""Run a real ComfyUI server with the EMS pack installed, and drive it as an HTTP client would.

The server gets its own base directory (custom_nodes, models, input, output, user), so nothing
of the developer's ComfyUI install is touched. ``custom_nodes`` holds a link to this repository
(the pack under test) and to the test-only pack in ``tests/support/comfy_testpack``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

# The generic server-process code lives in the pack (the headless runner uses it too); these
# names are re-exported so tests keep importing them from here.
from ems.headless.comfy_process import (  # noqa: F401
    PACK_NAME,
    ComfyServer as _ComfyServer,
    ExecutionFailed,
    PromptRejected,
    free_port,
    python_for_comfy,
    prepare_base as _prepare_base,
)

REPO = Path(__file__).resolve().parents[2]
TESTPACK = Path(__file__).resolve().parent / "comfy_testpack"


def prepare_base(base: Path, with_testpack: bool = True) -> Path:
    """Lay out a ComfyUI base directory with the pack (and the test pack) linked into custom_nodes."""
    packs = {PACK_NAME: REPO}
    if with_testpack:
        packs["ems_testpack"] = TESTPACK
    return _prepare_base(base, packs)


def write_tiny_model(base: Path, name: str = "tiny_sd3.safetensors", seed: int = 0) -> str:
    """Write the tiny SD3 MMDiT where UNETLoader finds it (the demo's writer, on COMFYUI_DIR)."""
    from ems.headless.demo import write_tiny_model as write

    return write(base, Path(os.environ["COMFYUI_DIR"]), name, seed)


class ComfyServer(_ComfyServer):
    """The pack's ComfyServer plus a reader for the test pack's saved tensors."""

    def load_saved(self, name: str):
        """Read back what an EMSTestSaveTensor node named ``name`` saved."""
        return torch.load(self.base / "output" / f"{name}.pt", weights_only=False)
