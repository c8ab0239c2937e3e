"""EMSAlphaSweep: k edit strengths as one batch, with the same noise for every item.

``spacing`` "even" moves the inner values so that consecutive items change by equal amounts,
measured by the model itself (``nodes.spacing_probe``: one batched call over a probe grid) and
placed by ``ems.spacing``; the labels report the α used.
"""

from __future__ import annotations

from comfy_api.v0_0_2 import io, ui

from ..ems.alphas import DEFAULT_SWEEP, SAFE_RANGE, format_alpha, parse_alphas, parse_auto
from ..ems.conditioning import sweep_conditioning
from ..ems.spacing import DEFAULT_DENSITY, SPACINGS, auto_grid, auto_stop, probe_grid, respace
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
from .spacing_probe import probe_change
from .text_direction import ALPHA_HELP, base_input, direction_inputs, pooled_input, warn_unsafe
from .schema import EDITING_WORDS, schema

NODE = "EMS Alpha Sweep"
LATENT_OUTPUT = 1  # index of the 'latent' output


SEARCH_ALIASES = [*EDITING_WORDS, "alpha sweep", "strength sweep", "interpolation grid"]


class EMSAlphaSweep(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            search_aliases=SEARCH_ALIASES,
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
                    tooltip='Strengths to render: a list "0, 0.5, 1", a range "start:stop:count" such as '
                    '"-1:2:7" (inclusive), or "0:auto:5" to go as far as the edit holds, measured by the model '
                    "(needs model, latent_image and sigmas; -auto for the opposite edit). " + ALPHA_HELP,
                ),
                pooled_input(),
                base_input(),
                io.Latent.Input(
                    "latent_image",
                    optional=True,
                    tooltip="One image's latent (batch 1); comes back repeated once per alpha "
                    "with the same noise index.",
                ),
                io.Combo.Input(
                    "spacing",
                    options=list(SPACINGS),
                    default=SPACINGS[0],
                    optional=True,
                    tooltip="as typed: the alphas you wrote. even: keep the first and the last, and move the "
                    "others so that consecutive items change by equal amounts, as the model measures it "
                    f"(one batched model call on {DEFAULT_DENSITY} probe alphas; needs model, latent_image "
                    "and sigmas). The labels show the alphas used.",
                ),
                io.Model.Input(
                    "model", optional=True, tooltip="For spacing 'even': the model that will render the sweep."
                ),
                io.Sigmas.Input(
                    "sigmas",
                    optional=True,
                    tooltip="For spacing 'even': the SIGMAS your sampler or EMS Flow Edit runs (the probe "
                    "measures at the first one).",
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
    def execute(
        cls,
        source,
        target,
        alphas,
        manipulate_pooled,
        base=None,
        latent_image=None,
        spacing=SPACINGS[0],
        model=None,
        sigmas=None,
    ) -> io.NodeOutput:
        if spacing not in SPACINGS:
            raise node_error(NODE, f"spacing {spacing!r} is not one of {', '.join(SPACINGS)}.")
        with node_errors(NODE):
            auto = parse_auto(alphas)
            values = None if auto else parse_alphas(alphas)
        if latent_image is not None:
            check_latent_layout(NODE, "latent_image", latent_image)
        check_finite_inputs(NODE, source=source, target=target, base=base, latent_image=latent_image)
        note = ""
        if auto is not None or spacing == "even":
            probe = Probe(source, target, manipulate_pooled, base, latent_image, model, sigmas, auto is not None)
            values, note = probe.measure(values, auto, spacing == "even")
        warning = warn_unsafe(NODE, values)
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
        shown = "\n".join(part for part in (labels, note, warning and f"⚠ {warning}") if part)
        return io.NodeOutput(cond, latent, labels, len(values), ui=ui.PreviewText(shown))


class Probe:
    """What the model measures for a sweep: an automatic range's stop and/or even spacing, from one
    batched probe call (``nodes.spacing_probe``), placed by ``ems.spacing``."""

    def __init__(self, source, target, manipulate_pooled, base, latent_image, model, sigmas, auto: bool):
        what = "an automatic range (start:auto:count)" if auto else "spacing 'even'"
        missing = [n for n, v in (("model", model), ("latent_image", latent_image), ("sigmas", sigmas)) if v is None]
        if missing:
            raise node_error(
                NODE,
                f"{what} measures the edit with the model, so it needs {', '.join(missing)} connected: the "
                "model, the VAE Encode latent and the SIGMAS your sampler (or EMS Flow Edit) runs. Or type the "
                "alphas and choose spacing 'as typed'.",
            )
        if sigmas.ndim != 1 or sigmas.numel() < 2 or not float(sigmas[0]) > 0:
            raise node_error(NODE, "sigmas must be a schedule that starts above 0 (BasicScheduler, denoise < 1).")
        if latent_image["samples"].shape[0] != 1:
            raise node_error(NODE, f"{what} edits one image: latent_image must have a batch of 1.")
        self.args = (source, target, manipulate_pooled, base)
        self.latent, self.model, self.sigmas = latent_image, model, sigmas

    def response(self, grid: list[float]):
        source, target, manipulate_pooled, base = self.args
        conditioning = sweep_conditioning(source, target, grid, manipulate_pooled, base)
        return probe_change(self.model, conditioning, self.latent, self.sigmas)

    def measure(self, values, auto, even: bool) -> tuple[list[float], str]:
        """(the alphas to render, inner ones rounded to the labels' 3 decimals; a one-line note)."""
        with node_errors(NODE):
            if auto is not None:
                limit = SAFE_RANGE[1] if auto.sign > 0 else SAFE_RANGE[0]
                grid = auto_grid(auto.start, auto.sign, limit)
                features = self.response(grid)
                probed = len(grid)
                stop = auto_stop(grid, features)
                grid, features = grid[: stop.index + 1], features[: stop.index + 1]
                values = [auto.start + (stop.alpha - auto.start) * i / (auto.count - 1) for i in range(auto.count)]
                values = [round(a, 3) for a in values]
                why = {
                    "turns away": "the response turns away from the edit beyond it",
                    "fades": "the edit saturates beyond it",
                    "range end": "the end of the range where images usually hold",
                }[stop.reason]
                note = f"automatic range: stops at α={stop.alpha:g} ({why})"
            else:
                grid = probe_grid(values)
                features = self.response(grid)
                probed, note = len(grid), ""
            if even:
                placed = respace(values, grid, features)
                if placed.flat:
                    note = "; ".join(
                        p for p in (note, "even spacing: the model showed no change; kept evenly typed") if p
                    )
                else:
                    values = [values[0], *(round(a, 3) for a in placed.alphas[1:-1]), values[-1]]
                    note = "; ".join(p for p in (note, "even spacing") if p)
        LOG.info("%s: %s; alphas %s", NODE, note, ", ".join(f"{a:g}" for a in values))
        return values, f"{note} (1 model call on {probed} probe alphas)"
