"""Test-only ComfyUI nodes, installed next to the EMS pack in the integration tier's server.

They supply what no machine here has (SD3 text encoders and VAE weights) as tiny random-weight
models built by ComfyUI's own classes, and let tests read exact tensors back from a run.
Never shipped to users.
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))))
from support import tiny_sd3  # noqa: E402

import folder_paths  # noqa: E402

_CACHE = {}


def _cached(key, build):
    if key not in _CACHE:
        _CACHE[key] = build()
    return _CACHE[key]


class EMSTestTinySD3CLIP:
    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load"
    CATEGORY = "_for_testing/ems"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 2**31})}}

    def load(self, seed):
        return (_cached(("clip", seed), lambda: tiny_sd3.clip(seed)),)


class EMSTestTinySD3VAE:
    RETURN_TYPES = ("VAE",)
    FUNCTION = "load"
    CATEGORY = "_for_testing/ems"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 2**31})}}

    def load(self, seed):
        return (_cached(("vae", seed), lambda: tiny_sd3.vae(seed)),)


class EMSTestSaveTensor:
    """Saves a LATENT / CONDITIONING / IMAGE / SIGMAS / STRING as a torch file for exact checks."""

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "_for_testing/ems"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*", {}), "name": ("STRING", {"default": "tensor"})}}

    @classmethod
    def VALIDATE_INPUTS(cls, input_types):
        return True

    def save(self, value, name):
        path = os.path.join(folder_paths.get_output_directory(), f"{name}.pt")
        torch.save(_plain(value), path)
        return {"ui": {"saved": [path]}}


class EMSTestConditioning:
    """A random CONDITIONING of any family's shape (e.g. SD1.5: 768 wide, no pooled vector)."""

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "make"
    CATEGORY = "_for_testing/ems"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"width": ("INT", {"default": 768, "min": 1, "max": 8192}),
                             "pooled_width": ("INT", {"default": 0, "min": 0, "max": 8192}),
                             "tokens": ("INT", {"default": 77, "min": 1, "max": 1024}),
                             "seed": ("INT", {"default": 0, "min": 0, "max": 2**31})}}

    def make(self, width, pooled_width, tokens, seed):
        g = torch.Generator().manual_seed(seed)
        extras = {"pooled_output": torch.randn(1, pooled_width, generator=g)} if pooled_width else {}
        return ([[torch.randn(1, tokens, width, generator=g), extras]],)


def _plain(value):
    if torch.is_tensor(value):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (int, float, str, bool, type(None))) else repr(value)


NODE_CLASS_MAPPINGS = {
    "EMSTestTinySD3CLIP": EMSTestTinySD3CLIP,
    "EMSTestTinySD3VAE": EMSTestTinySD3VAE,
    "EMSTestSaveTensor": EMSTestSaveTensor,
    "EMSTestConditioning": EMSTestConditioning,
}
