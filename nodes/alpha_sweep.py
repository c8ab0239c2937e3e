"""EMSAlphaSweep: k edit strengths as one batch, with the same noise for every item."""

from __future__ import annotations

from comfy_api.v0_0_2 import io, ui

from ..ems.alphas import DEFAULT_SWEEP, format_alpha, parse_alphas
from ..ems.conditioning import sweep_conditioning
from .common import (
    CATEGORY,
    LOG,
    check_finite_inputs,
    check_finite_output,
    check_latent_layout,
    csds_marker,
    node_error,
    node_errors,
    output_is_linked,
    repeat_latent,
)
from .text_direction import ALPHA_HELP, base_input, direction_inputs, pooled_input, warn_unsafe

NODE = "EMS Alpha Sweep"
LATENT_OUTPUT = 1  # index of the 'latent' output


class EMSAlphaSweep(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EMSAlphaSweep",
            display_name="EMS Alpha Sweep",
            category=f"{CATEGORY}/text",
            description=(
                "Renders several edit strengths in one batch: item i is exactly EMS Text "
                "Direction at alphas[i], and the latent is repeated with the same noise."
            ),
            inputs=[
                *direction_inputs(),
                io.String.Input(
                    "alphas",
                    default=DEFAULT_SWEEP,
                    tooltip='Strengths to render: a list "0, 0.5, 1" or a range '
                    '"start:stop:count" such as "-1:2:7" (inclusive). ' + ALPHA_HELP,
                ),
                pooled_input(),
                base_input(),
                io.Latent.Input(
                    "latent_image",
                    optional=True,
                    tooltip="One image's latent (batch 1); comes back repeated once per alpha "
                    "with the same noise index.",
                ),
            ],
            outputs=[
                io.Conditioning.Output(
                    "conditioning",
                    display_name="conditioning",
                    tooltip="Batch of k conditionings, item i at alphas[i].",
                ),
                io.Latent.Output(
                    "latent",
                    display_name="latent",
                    tooltip="latent_image repeated k times with identical noise (needs latent_image).",
                ),
                io.String.Output(
                    "labels", display_name="labels", tooltip="One label per item, e.g. 'α=0.25', newline-separated."
                ),
                io.Int.Output("count", display_name="count", tooltip="k, the number of alphas."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, source, target, alphas, manipulate_pooled, base=None, latent_image=None) -> io.NodeOutput:
        with node_errors(NODE):
            values = parse_alphas(alphas)
        warning = warn_unsafe(NODE, values)
        if latent_image is not None:
            check_latent_layout(NODE, "latent_image", latent_image)
        check_finite_inputs(NODE, source=source, target=target, base=base, latent_image=latent_image)
        with node_errors(NODE):
            cond = sweep_conditioning(source, target, values, manipulate_pooled, base)
        check_finite_output(NODE, "conditioning", cond)
        if cond[0][0].shape[0] != len(values):
            raise node_error(
                NODE,
                f"source/target carry a batch of {cond[0][0].shape[0] // len(values)}; "
                "a sweep takes batch-1 conditionings (one prompt pair).",
            )
        if latent_image is None:
            if output_is_linked(cls.hidden.prompt, cls.hidden.unique_id, LATENT_OUTPUT):
                # An error, not an ExecutionBlocker: a blocked output ends as "success" with no
                # outputs in /history, which API and headless clients cannot tell from a result.
                raise node_error(
                    NODE,
                    "its latent output is connected but latent_image is not. Connect "
                    "the VAE Encode of the image to edit to latent_image, or take the "
                    "downstream latent from elsewhere.",
                )
            latent = None
        else:
            if latent_image["samples"].shape[0] != 1:
                raise node_error(
                    NODE,
                    f"latent_image has a batch of {latent_image['samples'].shape[0]}; "
                    "a sweep edits one image. Pick one with 'Latent From Batch'.",
                )
            marker = csds_marker(latent_image)
            if marker is not None:
                message = (
                    f"{NODE}: latent_image is an EMS CSDS Latent Edit output (leftover noise at "
                    f"σ = {marker['sigma']:.4g}); sweep the clean VAE Encode latent and put the CSDS "
                    "node after the sweep."
                )
                LOG.warning("%s", message)
                warning = "\n".join(w for w in (warning, message) if w)
            latent = repeat_latent(latent_image, len(values))
        labels = "\n".join(format_alpha(a) for a in values)
        shown = labels if not warning else f"{labels}\n⚠ {warning}"
        return io.NodeOutput(cond, latent, labels, len(values), ui=ui.PreviewText(shown))
