"""EMSFlowEdit: inversion-free editing of a clean latent, graded by EMS's text direction.

α = 0 is the user's picture: the node returns the input latent bit for bit where the target
conditioning equals the source, and only the edit moves elsewhere (the method: ``ems.flow_edit``).
"""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..ems import validation as v
from ..ems.flow_edit import DEFAULTS, MAX_NOISE_AVERAGE, FlowEditParams, check_schedule, item_plan
from .common import (
    CATEGORY,
    LOG,
    check_families,
    model_family,
    check_finite_inputs,
    check_finite_output,
    check_floats,
    check_latent_layout,
    csds_marker,
    float_input,
    node_error,
    node_errors,
    reconcile_batch,
)
from .flow_edit_guider import is_rectified_flow, run_flow_edit
from .schema import EDITING_WORDS, schema

NODE = "EMS Flow Edit"
FLOATS = (v.CFG, v.SOURCE_CFG, v.LOCALITY, v.DRIVE)


def parameters(cfg, source_cfg, noise_average, locality, drive) -> FlowEditParams:
    values = check_floats(NODE, FLOATS, cfg=cfg, source_cfg=source_cfg, locality=locality, drive=drive)
    with node_errors(NODE):
        return FlowEditParams(noise_average=int(noise_average), **values)


def check_model(model, sigmas) -> None:
    sampling = model.get_model_object("model_sampling")
    if not is_rectified_flow(sampling):
        raise node_error(
            NODE,
            f"the model ({model_family(model).name}) samples with {type(sampling).__name__}, not rectified flow. The "
            "coupling needs a flow model (SD3, SD3.5, Flux, AuraFlow, Lumina 2, Qwen-Image…). "
            "For ε/v-prediction models such as SDXL or SD1.5 use EMS CSDS Latent Edit with a "
            "sampler (img2img) instead.",
        )
    if sigmas is None or sigmas.ndim != 1:
        raise node_error(NODE, "sigmas must be a SIGMAS schedule (connect BasicScheduler).")
    with node_errors(NODE, fix="Connect BasicScheduler with steps ≥ 1 and denoise < 1."):
        values = check_schedule(sigmas.tolist())
    if values[-1] != 0.0:
        raise node_error(
            NODE,
            f"the schedule ends at σ = {values[-1]:g}; EMS Flow Edit runs it down to 0 and "
            "outputs a clean latent. Connect the whole BasicScheduler schedule, not a split.",
        )


def check_latent(latent: dict) -> None:
    marker = csds_marker(latent)
    if marker is not None:
        raise node_error(
            NODE,
            f"latent_image is the output of an EMS CSDS Latent Edit (it carries noise at "
            f"σ = {marker['sigma']:.4g}); EMS Flow Edit edits the clean latent from VAE Encode.",
        )


SEARCH_ALIASES = [*EDITING_WORDS, "flowedit", "inversion-free edit", "flow edit"]


class EMSFlowEdit(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        d = DEFAULTS
        return schema(
            search_aliases=SEARCH_ALIASES,
            node_id="EMSFlowEdit",
            display_name="EMS Flow Edit",
            category=f"{CATEGORY}/sample",
            description=(
                "Edits the clean image latent from the source caption toward the manipulated one "
                "without re-generating it (inversion-free coupling): α = 0 returns your latent "
                "unchanged, and only what the captions disagree on moves. Clean latent in, clean "
                "latent out — continue with VAE Decode."
            ),
            inputs=[
                io.Model.Input("model", tooltip="A rectified-flow model (SD3, SD3.5, Flux…); others are refused."),
                io.Conditioning.Input("source", tooltip="c0: the source caption's conditioning (EMS Encode Prompts)."),
                io.Conditioning.Input(
                    "positive",
                    tooltip="c̃ from EMS Text Direction or a batch from EMS Alpha "
                    "Sweep; where it equals the source, nothing changes.",
                ),
                io.Conditioning.Input(
                    "negative",
                    tooltip="Negative conditioning for CFG (same token length as the others for one batched call).",
                ),
                io.Latent.Input(
                    "latent_image",
                    tooltip="The clean image latent from VAE Encode (batch 1 or k); a "
                    "noise mask from SetLatentNoiseMask confines the edit.",
                ),
                io.Sigmas.Input(
                    "sigmas",
                    tooltip="The schedule, run from its first sigma down to 0 (BasicScheduler, "
                    "denoise < 1: higher denoise allows larger edits).",
                ),
                io.Int.Input(
                    "noise_seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    control_after_generate=True,
                    tooltip="Seed of the fresh noise drawn at every step.",
                ),
                float_input(
                    v.CFG,
                    d["cfg"],
                    0.1,
                    round=0.01,
                    tooltip="Target CFG scale, reached at |α| ≥ 1 (smaller |α| moves it toward "
                    "source_cfg, so α = 0 is no edit).",
                ),
                float_input(
                    v.SOURCE_CFG,
                    d["source_cfg"],
                    0.1,
                    round=0.01,
                    tooltip="Source CFG scale (FlowEdit keeps it lower than the target's).",
                ),
                io.Int.Input(
                    "noise_average",
                    default=d["noise_average"],
                    min=1,
                    max=MAX_NOISE_AVERAGE,
                    optional=True,
                    tooltip="Noises averaged per step (FlowEdit's n_avg): steadier, each adds a batch "
                    "item per step to the one model call.",
                ),
                float_input(
                    v.LOCALITY,
                    d["locality"],
                    0.01,
                    optional=True,
                    tooltip="0 = off. Above 0, each step's update is weighted by where the two "
                    "velocities differ, full weight from this share of the largest difference "
                    "up: keeps more of what the edit does not touch.",
                ),
                float_input(
                    v.DRIVE,
                    d["drive"],
                    0.05,
                    optional=True,
                    tooltip="0 = off. Adds the image-side drive (target minus source prediction at "
                    "the edited point) with this weight; one more batch item per step.",
                ),
            ],
            outputs=[
                io.Latent.Output(
                    "latent",
                    display_name="latent",
                    tooltip="The edited clean latent (same batch as positive); VAE Decode it.",
                )
            ],
        )

    @classmethod
    def execute(
        cls,
        model,
        source,
        positive,
        negative,
        latent_image,
        sigmas,
        noise_seed,
        cfg,
        source_cfg,
        noise_average=DEFAULTS["noise_average"],
        locality=DEFAULTS["locality"],
        drive=DEFAULTS["drive"],
    ) -> io.NodeOutput:
        params = parameters(cfg, source_cfg, noise_average, locality, drive)
        check_model(model, sigmas)
        check_families(NODE, model, source=source, positive=positive, negative=negative)
        check_latent_layout(NODE, "latent_image", latent_image, model)
        check_finite_inputs(NODE, source=source, positive=positive, negative=negative, latent_image=latent_image)
        check_latent(latent_image)
        latent = reconcile_batch(NODE, latent_image, positive, source=source, negative=negative)
        batch = int(latent["samples"].shape[0])
        with node_errors(NODE):
            scales, moves = item_plan(positive, source, batch, params)
        LOG.info(
            "%s: %d of %d item(s) edited; target CFG per item: %s",
            NODE,
            int(moves.sum()),
            batch,
            ", ".join(f"{s:g}" for s in scales),
        )
        with node_errors(NODE):
            result = run_flow_edit(
                model, positive, source, negative, latent, sigmas, noise_seed, params, (scales, moves)
            )
        check_finite_output(NODE, "latent", result)
        return io.NodeOutput(result)
