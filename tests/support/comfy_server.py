"""Run a real ComfyUI server with the EMS pack installed, and drive it as an HTTP client would.

The server gets its own base directory (custom_nodes, models, input, output, user), so nothing
of the developer's ComfyUI install is touched. ``custom_nodes`` holds a link to this repository
(the pack under test) and to the test-only pack in ``tests/support/comfy_testpack``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import torch

# The generic server-process code lives in the pack (the headless runner uses it too); these
# names are re-exported so tests keep importing them from here.
from headless.comfy_process import (  # noqa: F401
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


def tool_env(**extra: str) -> dict:
    """The environment for a tool run as a child process (``python -m bench …``): the repository,
    tests/ and ComfyUI on PYTHONPATH, as ``scripts/tool.sh`` sets them."""
    path = [str(REPO), str(REPO / "tests"), os.environ["COMFYUI_DIR"], os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p), **extra}


def prepare_base(base: Path, with_testpack: bool = True) -> Path:
    """Lay out a ComfyUI base directory with the pack (and the test pack) linked into custom_nodes."""
    packs = {PACK_NAME: REPO}
    if with_testpack:
        packs["ems_testpack"] = TESTPACK
    return _prepare_base(base, packs)


def write_tiny_model(base: Path, name: str = "tiny_sd3.safetensors", seed: int = 0) -> str:
    """Write the tiny random-weight SD3 MMDiT into ``base``/models/diffusion_models (where UNETLoader
    looks) under ``name``: ``write_family_model``'s SD3."""
    return write_family_model(base, "sd3", seed, name)


def write_family_model(base: Path, family: str, seed: int = 0, name: str = "") -> str:
    """Write one family's tiny random-weight diffusion model (toyworld/tiny_families.py) into
    ``base``/models/diffusion_models, where UNETLoader finds and detects it, built in a child process
    of ComfyUI's Python; returns its file name (default ``tiny_<family>.safetensors``)."""
    name = name or f"tiny_{family}.safetensors"
    out = base / "models" / "diffusion_models" / name
    if out.exists():
        return name
    comfy_dir = os.environ["COMFYUI_DIR"]
    code = (
        "import sys, comfy.cli_args; comfy.cli_args.args.cpu = True;"
        "from comfyui_ems.toyworld import tiny_families;"
        "tiny_families.write_model_file(sys.argv[2], sys.argv[1], int(sys.argv[3]))"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join(p for p in (comfy_dir, str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    subprocess.run(
        [python_for_comfy(), "-c", code, str(out), family, str(seed)],
        check=True,
        cwd=comfy_dir,
        env={**os.environ, "PYTHONPATH": path},
    )
    return name


class ComfyServer(_ComfyServer):
    """The pack's ComfyServer plus a reader for the test pack's saved tensors; the server process
    gets tests/ and the repository on its PYTHONPATH so that the test pack imports
    ``comfyui_ems.toyworld.tiny_sd3``."""

    def __init__(self, comfy_dir, base: Path, env: dict | None = None, **kwargs):
        env = dict(env or {})
        path = env.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "tests"), str(REPO), path) if p)
        super().__init__(comfy_dir, base, env=env, **kwargs)

    def load_saved(self, name: str):
        """Read back what an EMSTestSaveTensor node named ``name`` saved."""
        return torch.load(self.base / "output" / f"{name}.pt", weights_only=False)
