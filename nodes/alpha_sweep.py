"""EMSAlphaSweep: k edit strengths as one batch, with the same noise for every item."""

from __future__ import annotations

from comfy_api.v0_0_2 import io, ui

from ..ems.alphas import AlphaScheduleError, format_alpha, parse_alphas
from ..ems.conditioning import ConditioningMismatch, sweep_conditioning
from .common import CATEGORY, node_error, repeat_latent
from .text_direction import base_input, direction_inputs, pooled_input, warn_unsafe

NODE = "EMS Alpha Sweep"


class EMSAlphaSweep(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EMSAlphaSweep",
            display_name="EMS Alpha Sweep",
            category=f"{CATEGORY}/text",
            description=("Renders several edit strengths in one batch: item i is exactly EMS Text "
                         "Direction at alphas[i], and the latent is repeated with the same noise."),
            inputs=[
                *direction_inputs(),
                io.String.Input("alphas", default="0, 0.25, 0.5, 0.75, 1",
                                tooltip='Strengths to render: a list "0, 0.5, 1" or a range '
                                        '"start:stop:count" such as "-1:2:7" (inclusive).'),
                pooled_input(),
                base_input(),
                io.Latent.Input("latent_image", optional=True,
                                tooltip="One image's latent (batch 1); comes back repeated once per alpha "
                                        "with the same noise index."),
            ],
            outputs=[
                io.Conditioning.Output("conditioning", display_name="conditioning",
                                       tooltip="Batch of k conditionings, item i at alphas[i]."),
                io.Latent.Output("latent", display_name="latent",
                                 tooltip="latent_image repeated k times with identical noise (needs latent_image)."),
                io.String.Output("labels", display_name="labels", tooltip="One label per item, e.g. 'α=0.25', newline-separated."),
                io.Int.Output("count", display_name="count", tooltip="k, the number of alphas."),
            ],
        )

    @classmethod
    def execute(cls, source, target, alphas, manipulate_pooled, base=None, latent_image=None) -> io.NodeOutput:
        try:
            values = parse_alphas(alphas, node=NODE)
        except AlphaScheduleError as e:
            raise node_error(NODE, str(e)) from None
        warn_unsafe(NODE, values)
        try:
            cond = sweep_conditioning(source, target, values, manipulate_pooled, base, node=NODE)
        except ConditioningMismatch as e:
            raise node_error(NODE, str(e)) from None
        if cond[0][0].shape[0] != len(values):
            raise node_error(NODE, f"source/target carry a batch of {cond[0][0].shape[0] // len(values)}; "
                                   "a sweep takes batch-1 conditionings (one prompt pair).")
        if latent_image is None:
            from comfy_execution.graph_utils import ExecutionBlocker

            # Only a node that uses the latent output is stopped, with this message.
            latent = ExecutionBlocker(f"{NODE}: its latent output needs latent_image connected (the VAE "
                                      "Encode of the image to edit); or take the latent from elsewhere.")
        else:
            if latent_image["samples"].shape[0] != 1:
                raise node_error(NODE, f"latent_image has a batch of {latent_image['samples'].shape[0]}; "
                                       "a sweep edits one image. Pick one with 'Latent From Batch'.")
            latent = repeat_latent(latent_image, len(values))
        labels = "\n".join(format_alpha(a) for a in values)
        return io.NodeOutput(cond, latent, labels, len(values), ui=ui.PreviewText(labels))
