"""Test-only ComfyUI nodes, installed next to the EMS pack in the integration tier's server.

They supply what no machine here has (SD3 text encoders and VAE weights) as tiny random-weight
models built by ComfyUI's own classes, and let tests read exact tensors back from a run.
Never shipped to users.
"""

import os
import time

import folder_paths
import torch

# The repository is on the server's PYTHONPATH (tests/support/comfy_server.py starts it so).
from comfyui_ems.toyworld import tiny_sd3

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


def tiny_family_loader(name: str, output: str, builder: str, default: str, doc: str):
    """A test node loading one part (MODEL, CLIP or VAE) of a tiny random-weight model of one family:
    ``toyworld.tiny_families.<builder>(family, seed)``, cached per family and seed."""

    def load(self, family, seed):
        from comfyui_ems.toyworld import tiny_families

        build = getattr(tiny_families, builder)
        return (_cached((builder, family, seed), lambda: build(family, seed)),)

    def input_types(cls):
        return {"required": {"family": ("STRING", {"default": default}), "seed": ("INT", {"default": 0, "min": 0})}}

    attrs = {"RETURN_TYPES": (output,), "FUNCTION": "load", "CATEGORY": "_for_testing/ems", "__doc__": doc}
    return type(
        name,
        (),
        {
            **attrs,
            "INPUT_TYPES": classmethod(input_types),
            "load": load,
        },
    )


# For the families whose tiny file UNETLoader cannot load (ComfyUI's detection hard-codes their sizes;
# toyworld/tiny_families.py says which), the model is built through the family's model config class.
EMSTestTinyFamilyModel = tiny_family_loader(
    "EMSTestTinyFamilyModel",
    "MODEL",
    "model_patcher",
    "flux_dev",
    "A tiny random-weight diffusion model of one family, built through that family's ComfyUI model config class.",
)
EMSTestTinyFamilyCLIP = tiny_family_loader(
    "EMSTestTinyFamilyCLIP",
    "CLIP",
    "clip",
    "sd3",
    "A tiny random-weight text encoder of one model family, with that family's real tokenizer and conditioning layout.",
)
EMSTestTinyFamilyVAE = tiny_family_loader(
    "EMSTestTinyFamilyVAE", "VAE", "vae", "sd3", "A tiny random-weight VAE in one model family's latent format."
)


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
        return {
            "required": {
                "width": ("INT", {"default": 768, "min": 1, "max": 8192}),
                "pooled_width": ("INT", {"default": 0, "min": 0, "max": 8192}),
                "tokens": ("INT", {"default": 77, "min": 1, "max": 1024}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**31}),
            }
        }

    def make(self, width, pooled_width, tokens, seed):
        g = torch.Generator().manual_seed(seed)
        extras = {"pooled_output": torch.randn(1, pooled_width, generator=g)} if pooled_width else {}
        return ([[torch.randn(1, tokens, width, generator=g), extras]],)


POISONS = ["nan", "inf", "times_1e30"]


def _poison(x, poison):
    """A copy of float tensor ``x`` with its first element NaN / +inf, or all of it × 1e30."""
    x = x.clone()
    if poison == "times_1e30":
        return x * 1e30
    x.view(-1)[0] = float(poison)
    return x


class EMSTestPoisonImage:
    """An IMAGE with one NaN / inf element, or × 1e30 (what an fp16 VAE Decode overflow leaves)."""

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "make"
    CATEGORY = "_for_testing/ems"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "poison": (POISONS,)}}

    def make(self, images, poison):
        return (_poison(images, poison),)


class EMSTestPoisonConditioning:
    """A CONDITIONING whose tokens or pooled_output carry one NaN / inf element, or × 1e30."""

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "make"
    CATEGORY = "_for_testing/ems"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "conditioning": ("CONDITIONING",),
                "poison": (POISONS,),
                "part": (["tokens", "pooled_output"],),
            }
        }

    def make(self, conditioning, poison, part):
        out = []
        for tokens, extras in conditioning:
            extras = dict(extras)
            if part == "tokens":
                tokens = _poison(tokens, poison)
            else:
                extras["pooled_output"] = _poison(extras["pooled_output"], poison)
            out.append([tokens, extras])
        return (out,)


class EMSTestOverflowingCLIP:
    """The tiny SD3 CLIP with T5's final norm weights at +inf: its tokens come out non-finite, as
    an fp16 text encoder's do when it overflows."""

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load"
    CATEGORY = "_for_testing/ems"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 2**31})}}

    def load(self, seed):
        def build():
            te = tiny_sd3.clip(seed)
            with torch.no_grad():
                te.cond_stage_model.t5xxl.transformer.encoder.final_layer_norm.weight.fill_(float("inf"))
            return te

        return (_cached(("overflowing_clip", seed), build),)


class EMSTestOverflowingModel:
    """The MODEL with every prediction multiplied by NaN, as a model that overflows in fp16 gives."""

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "_for_testing/ems"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",)}}

    def patch(self, model):
        model = model.clone()
        model.set_model_unet_function_wrapper(
            lambda apply, args: apply(args["input"], args["timestep"], **args["c"]) * float("nan")
        )
        return (model,)


class _LabelsWaitingForCancel(str):
    """Labels that, when the grid splits them, write ``marker`` and wait until Cancel is pressed
    (at most 30 s): the test's POST /interrupt then lands while the grid node runs."""

    marker = ""

    def splitlines(self, *args, **kwargs):
        import comfy.model_management

        open(self.marker, "w").close()
        deadline = time.time() + 30
        while not comfy.model_management.processing_interrupted() and time.time() < deadline:
            time.sleep(0.02)
        return str(self).splitlines(*args, **kwargs)


class EMSTestLabelsWaitingForCancel:
    RETURN_TYPES = ("STRING",)
    FUNCTION = "make"
    CATEGORY = "_for_testing/ems"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "count": ("INT", {"default": 64, "min": 1, "max": 4096}),
                "length": ("INT", {"default": 10_000, "min": 1, "max": 100_000}),
                "marker": ("STRING", {"default": "grid_waiting"}),
            }
        }

    def make(self, count, length, marker):
        labels = _LabelsWaitingForCancel("\n".join(f"{i}:" + "x" * (length - 2) for i in range(count)))
        labels.marker = os.path.join(folder_paths.get_output_directory(), marker)
        return (labels,)


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
    "EMSTestTinyFamilyModel": EMSTestTinyFamilyModel,
    "EMSTestTinyFamilyCLIP": EMSTestTinyFamilyCLIP,
    "EMSTestTinyFamilyVAE": EMSTestTinyFamilyVAE,
    "EMSTestSaveTensor": EMSTestSaveTensor,
    "EMSTestConditioning": EMSTestConditioning,
    "EMSTestPoisonImage": EMSTestPoisonImage,
    "EMSTestPoisonConditioning": EMSTestPoisonConditioning,
    "EMSTestOverflowingCLIP": EMSTestOverflowingCLIP,
    "EMSTestOverflowingModel": EMSTestOverflowingModel,
    "EMSTestLabelsWaitingForCancel": EMSTestLabelsWaitingForCancel,
}
