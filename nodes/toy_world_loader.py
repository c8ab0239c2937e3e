"""EMSToyWorldLoader: the toy world's model as MODEL, CLIP, VAE — what Load Checkpoint gives for SD3.

A dev node: the toy world (toyworld/) is an instrument, a small SD3-architecture model (or, with
``family`` Flux, a Flux one; SD3 v3, the SD3 toy trained further on partial captions) trained on drawn scenes, so every EMS workflow can run and be looked at
with no SD3 weights. ``family`` is optional, so graphs saved before it existed load the SD3 toy.
"""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..toyworld.comfy_loader import ToyWorldError, load_toyworld
from ..toyworld.model import ChecksumMismatch
from .common import node_errors
from .schema import schema

NODE = "EMS Toy World Loader (dev)"


SEARCH_ALIASES = ["toy world", "demo model", "no download"]
# shown → toyworld.comfy_loader's family; "SD3 v3": the SD3 toy fine-tuned on partial captions
FAMILY_CHOICES = {"SD3": "sd3", "Flux": "flux", "SD3 v3": "sd3v3"}


class EMSToyWorldLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            search_aliases=SEARCH_ALIASES,
            node_id="EMSToyWorldLoader",
            display_name=NODE,
            category="EMS/dev",
            description=(
                "Loads the EMS toy world: a tiny text-to-image model of SD3's architecture "
                "(MMDiT, 16-channel VAE, SD3 text-conditioning layout), or of Flux's (family: Flux), "
                "trained on drawn scenes of coloured circles, squares and triangles at 64×64. Swap it for "
                "Load Checkpoint to see and score EMS edits without SD3 weights. "
                "A toy, not SD3: prompts must follow its grammar, e.g. "
                "'two small red circles on a white background'."
            ),
            inputs=[
                io.Combo.Input(
                    "family",
                    options=list(FAMILY_CHOICES),
                    default="SD3",
                    optional=True,
                    tooltip="Which toy model: SD3 (MMDiT, loaded as SD3), Flux (ComfyUI's Flux class, "
                    "Flux.1 dev's config: T5 + CLIP-L, guidance embedding), or SD3 v3 (the SD3 toy trained further "
                    "to read partial captions too, e.g. 'two circles'). Same scenes, grammar and VAE.",
                ),
            ],
            outputs=[
                io.Model.Output(
                    "model",
                    display_name="MODEL",
                    tooltip="The toy MMDiT, loaded by ComfyUI as SD3 (flow sampling, shift 3); or the toy "
                    "Flux (flow sampling, shift 1.15, real cfg: it was trained with empty captions).",
                ),
                io.Clip.Output(
                    "clip",
                    display_name="CLIP",
                    tooltip="Frozen seeded text encoders with the family's tokenizers: SD3's CLIP-L/CLIP-G/T5 "
                    "(154×4096 tokens, pooled 2048) or Flux's CLIP-L/T5 (256×4096 tokens, pooled 768).",
                ),
                io.Vae.Output(
                    "vae",
                    display_name="VAE",
                    tooltip="The toy 16-channel 8× VAE in the family's latent format; images are 64×64.",
                ),
            ],
        )

    @classmethod
    def execute(cls, family: str = "SD3") -> io.NodeOutput:
        with node_errors(NODE, ToyWorldError, ChecksumMismatch, FileNotFoundError):
            if family not in FAMILY_CHOICES:
                raise ToyWorldError(f"family {family!r} is not a toy model; choose one of {', '.join(FAMILY_CHOICES)}")
            model, clip, vae = load_toyworld(family=FAMILY_CHOICES[family])
        return io.NodeOutput(model, clip, vae)
