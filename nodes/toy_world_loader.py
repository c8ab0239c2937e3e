"""EMSToyWorldLoader: the toy world's model as MODEL, CLIP, VAE — what Load Checkpoint gives for SD3.

A dev node: the toy world (toyworld/) is an instrument, a small SD3-architecture model trained on
drawn scenes, so every EMS workflow can run and be looked at with no SD3 weights.
"""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..toyworld.comfy_loader import ToyWorldError, load_toyworld
from ..toyworld.model import ChecksumMismatch
from .common import node_errors
from .schema import schema

NODE = "EMS Toy World Loader (dev)"


SEARCH_ALIASES = ["toy world", "demo model", "no download"]


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
                "(MMDiT, 16-channel VAE, SD3 text-conditioning layout) trained on drawn "
                "scenes of coloured circles, squares and triangles at 64×64. Swap it for "
                "Load Checkpoint to see and score EMS edits without SD3 weights. "
                "A toy, not SD3: prompts must follow its grammar, e.g. "
                "'two small red circles on a white background'."
            ),
            inputs=[],
            outputs=[
                io.Model.Output(
                    "model",
                    display_name="MODEL",
                    tooltip="The toy MMDiT, loaded by ComfyUI as SD3 (flow sampling, shift 3).",
                ),
                io.Clip.Output(
                    "clip",
                    display_name="CLIP",
                    tooltip="Frozen seeded CLIP-L/CLIP-G/T5 with SD3's tokenizers "
                    "(SD3 conditioning layout: 154×4096 tokens, pooled 2048).",
                ),
                io.Vae.Output(
                    "vae",
                    display_name="VAE",
                    tooltip="The toy 16-channel 8× VAE in SD3's latent format; images are 64×64.",
                ),
            ],
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        with node_errors(NODE, ToyWorldError, ChecksumMismatch, FileNotFoundError):
            model, clip, vae = load_toyworld()
        return io.NodeOutput(model, clip, vae)
