"""The host ComfyUI in this process, for the tools (bench, in-process tests): set-up and a call counter.

ComfyUI is not a package on the path: the entry points put it there (``scripts/tool.sh`` and
``make`` set ``PYTHONPATH``; the test tier's conftest does it for pytest). What must happen in
code is the device choice, before ``comfy.model_management`` is imported, because that import
initialises the device (and fails on a machine without CUDA unless told ``--cpu``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch


class HostMissing(ImportError):
    pass


def setup(cpu: bool | None = None) -> str:
    """Select the device (CPU when ``cpu`` or when there is no GPU) and return ComfyUI's folder."""
    try:
        import comfy.cli_args
    except ImportError:
        raise HostMissing(
            "ComfyUI is not importable: run this through `bash scripts/tool.sh …` (or `make`), "
            "or put a ComfyUI checkout on PYTHONPATH (PYTHONPATH=$COMFYUI_DIR)."
        ) from None
    if cpu is None:
        cpu = not torch.cuda.is_available()
    if "comfy.model_management" not in sys.modules:
        comfy.cli_args.args.cpu = bool(cpu)
    import comfy.model_management  # noqa: F401  (initialises the device)
    import comfy.utils

    comfy.utils.PROGRESS_BAR_ENABLED = False  # the same for every run; tqdm is not what we measure
    return str(Path(list(comfy.__path__)[0]).resolve().parent)  # comfy/ may be a namespace package


class CallCounter:
    """A ``model_function_wrapper`` logging (phase, batch) of every diffusion-model forward call.

    Set ``.phase`` around each phase of a run; ``calls`` lists the batch of each call."""

    def __init__(self):
        self.phase = "other"
        self.log: list[tuple[str, int]] = []

    def __call__(self, apply_model, args):
        self.log.append((self.phase, int(args["input"].shape[0])))
        return apply_model(args["input"], args["timestep"], **args["c"])

    def install(self, model_patcher):
        patched = model_patcher.clone()
        patched.set_model_unet_function_wrapper(self)
        return patched

    def reset(self):
        self.log = []

    @property
    def calls(self) -> list[int]:
        return [batch for _, batch in self.log]

    def by_phase(self) -> dict:
        """{phase: {"calls": n, "batch_sizes": sorted distinct batches}} in first-seen order."""
        out: dict[str, dict] = {}
        for phase, batch in self.log:
            entry = out.setdefault(phase, {"calls": 0, "batch_sizes": []})
            entry["calls"] += 1
            if batch not in entry["batch_sizes"]:
                entry["batch_sizes"].append(batch)
        return out
