"""Import a real ComfyUI and the EMS pack into this process (CPU), for call counting and
independent re-computation. Import this module only in the integration tier or bench."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACK_MODULE = "comfyui_ems"


def setup_comfy(comfy_dir: str | None = None, cpu: bool = True):
    """Put ComfyUI on sys.path and select the CPU before ``comfy.model_management`` loads."""
    comfy_dir = comfy_dir or os.environ["COMFYUI_DIR"]
    if comfy_dir not in sys.path:
        sys.path.insert(0, comfy_dir)
    import comfy.cli_args

    if cpu:
        comfy.cli_args.args.cpu = True
    import comfy.model_management  # noqa: F401  (initialises the device)

    return comfy_dir


def load_pack():
    """Import this repository as a package, as ComfyUI's custom-node loader does."""
    if PACK_MODULE in sys.modules:
        return sys.modules[PACK_MODULE]
    spec = importlib.util.spec_from_file_location(PACK_MODULE, REPO / "__init__.py",
                                                  submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_MODULE] = module
    spec.loader.exec_module(module)
    return module


class CallCounter:
    """A ``model_function_wrapper`` that counts diffusion-model forward calls and their batch."""

    def __init__(self):
        self.calls: list[int] = []
        self.phase = "other"
        self.by_phase: dict[str, int] = {}

    def __call__(self, apply_model, args):
        self.calls.append(int(args["input"].shape[0]))
        self.by_phase[self.phase] = self.by_phase.get(self.phase, 0) + 1
        return apply_model(args["input"], args["timestep"], **args["c"])

    def install(self, model_patcher):
        patched = model_patcher.clone()
        patched.set_model_unet_function_wrapper(self)
        return patched
