"""EMSCSDSLatentEdit: the image side of EMS — CSDS on the noised latent z_t."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..ems import validation as v
from ..ems.csds import DEFAULTS, DRIVES, RESIDUAL_SPACES, STEP_UNITS, CSDSParams, check_sigma, check_stable
from .csds_guider import is_flow, run_csds
from .common import (
    CATEGORY,
    LOG,
    check_families,
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
from .schema import EDITING_WORDS, schema

NODE = "EMS CSDS Latent Edit"
FLOATS = (v.CFG, v.CONSTRAINT, v.STEP_START, v.STEP_END, v.LOCALITY)
# Graphs and API prompts saved before `step_units` existed (v0.1) gave their step sizes in the
# residual's space. A prompt without the input keeps that meaning, so an old graph keeps the push it
# had; the frontend extension does the same for saved graphs (web/js/ems_csds_units.js). A new
# node shows DEFAULTS["step_units"] and sends it.
SAVED_BEFORE_UNITS = "latent"


def parameters(
    cfg, iterations, constraint, step_start, step_end, residual_space, drive, step_units, locality
) -> CSDSParams:
    """The widgets' values as one validated parameter object (the widget ranges, then the method's)."""
    values = check_floats(
        NODE, FLOATS, cfg=cfg, constraint=constraint, step_start=step_start, step_end=step_end, locality=locality
    )
    with node_errors(NODE):
        return CSDSParams(
            iterations=int(iterations), residual_space=residual_space, drive=drive, step_units=step_units, **values
        )


def drive_reference(params: CSDSParams, attribute, source) -> tuple[str, object]:
    """(input name, conditioning) the drive compares the positive with: the attribute, or the source caption."""
    if params.drive == "attribute":
        return "attribute", attribute
    if source is None:
        raise node_error(
            NODE,
            "drive is target_vs_source, which pushes from the source caption toward the positive, but no "
            "source is connected. Connect EMS Encode Prompts' source output to `source` (or set drive to "
            "attribute).",
        )
    return "source", source


def check_schedule(model, sigmas, params: CSDSParams) -> None:
    """What σ decides, before any model call: a usable first sigma, and a stable update at it."""
    if sigmas is None or sigmas.ndim != 1 or sigmas.shape[0] < 2:
        n = 0 if sigmas is None else int(sigmas.numel())
        raise node_error(
            NODE,
            f"SIGMAS has {n} value(s); it needs at least 2 (a start and an end). "
            "Connect BasicScheduler with steps ≥ 1 and denoise < 1.",
        )
    sigma = float(sigmas[0])
    with node_errors(NODE):
        flow = is_flow(model.get_model_object("model_sampling"))
        check_sigma(sigma, flow)
        check_stable(sigma, params, flow)


def check_latent(latent: dict) -> None:
    marker = csds_marker(latent)
    if marker is not None:
        raise node_error(
            NODE,
            f"latent_image is the output of an EMS CSDS Latent Edit: it already carries "
            f"noise at σ = {marker['sigma']:.4g}, and a second edit would noise it again. "
            "Connect the clean latent from VAE Encode (chain edits by sampling in between).",
        )
    if not latent["samples"].any():
        LOG.warning("%s: latent_image is all zeros; EMS edits a real image (connect VAE Encode).", NODE)


SEARCH_ALIASES = [*EDITING_WORDS, "csds", "score distillation", "img2img edit"]


class EMSCSDSLatentEdit(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        d = DEFAULTS
        return schema(
            search_aliases=SEARCH_ALIASES,
            node_id="EMSCSDSLatentEdit",
            display_name="EMS CSDS Latent Edit",
            category=f"{CATEGORY}/sample",
            description=(
                "Noises the image latent to the first sigma and nudges it toward the attribute "
                "with constrained score distillation, as strongly as the positive's α says "
                "(α = 0: no image-side edit). Continue with SamplerCustomAdvanced + "
                "DisableNoise and the same SIGMAS (or KSamplerAdvanced, add_noise disabled, at "
                "the matching start step)."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The SD3 model (any ComfyUI model works: flow or ε/v)."),
                io.Conditioning.Input(
                    "positive",
                    tooltip="c̃, the manipulated conditioning (EMS Text Direction "
                    "or a batch from EMS Alpha Sweep). Its recorded α "
                    "scales the image-side push per item; a plain "
                    "prompt gets the full push.",
                ),
                io.Conditioning.Input(
                    "attribute",
                    tooltip="The attribute conditioning CSDS pushes toward (drive = attribute; "
                    "unused with target_vs_source).",
                ),
                io.Conditioning.Input(
                    "negative",
                    tooltip="Negative conditioning for CFG (same token length as positive for one batched call).",
                ),
                io.Latent.Input(
                    "latent_image",
                    tooltip="The clean image latent from VAE Encode (a noise "
                    "mask from SetLatentNoiseMask limits the edit).",
                ),
                io.Sigmas.Input(
                    "sigmas",
                    tooltip="The schedule the downstream sampler will use; its first "
                    "value is the noise level t (denoise < 1).",
                ),
                io.Int.Input(
                    "noise_seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    control_after_generate=True,
                    tooltip="Seed of the forward noise, drawn exactly as RandomNoise draws it.",
                ),
                float_input(
                    v.CFG,
                    d["cfg"],
                    0.1,
                    round=0.01,
                    tooltip="Classifier-free guidance scale for the CSDS predictions (paper: 7.5).",
                ),
                io.Int.Input(
                    "iterations",
                    default=d["iterations"],
                    min=0,
                    max=1000,
                    tooltip="CSDS iterations, one batched model call each. 0 = no image-side edit "
                    "(plain img2img with the edited text).",
                ),
                float_input(
                    v.CONSTRAINT,
                    d["constraint"],
                    0.01,
                    tooltip="λ: higher keeps the latent closer to the source (paper: 0.1–1.0). "
                    "Stable while λ × step_start ≤ σ (the first sigma, ≈ 0.9 at denoise "
                    "0.75 on SD3); above that the node refuses to run.",
                ),
                float_input(
                    v.STEP_START,
                    d["step_start"],
                    0.001,
                    tooltip="First (largest) step size, in step_units (image: the share of the "
                    "prediction difference one step moves; the paper's η_0 = 0.1 is in latent "
                    "units); decays geometrically. Bounded to 0 … 1 and λ × η_0 ≤ σ.",
                ),
                float_input(
                    v.STEP_END,
                    d["step_end"],
                    0.001,
                    tooltip="Last step size, in step_units (paper: 0.01, latent units); must not exceed step_start.",
                ),
                io.Combo.Input(
                    "residual_space",
                    options=list(RESIDUAL_SPACES),
                    default=d["residual_space"],
                    optional=True,  # graphs saved before it existed keep working (with the default)
                    tooltip="Where the update's residuals are taken. model_output: what the model "
                    "predicts (velocity for SD3/flow models; the paper's reading). noise: "
                    "the noise ε (this pack's first reading; about (1 − σ)× weaker on flow models). "
                    "Identical for ε/v-prediction models.",
                ),
                io.Combo.Input(
                    "drive",
                    options=list(DRIVES),
                    default=d["drive"],
                    optional=True,
                    tooltip="What the image side pushes toward. attribute: the attribute prompt "
                    "against the positive (the paper), scaled by α. target_vs_source: the positive "
                    "against the source caption (connect `source`): linear in α, zero at α = 0, "
                    "needs no attribute prompt.",
                ),
                io.Conditioning.Input(
                    "source",
                    optional=True,
                    tooltip="The source caption's conditioning c0 (EMS Encode Prompts' source), for "
                    "drive = target_vs_source.",
                ),
                io.Combo.Input(
                    "step_units",
                    options=list(STEP_UNITS),
                    default=d["step_units"],
                    optional=True,
                    tooltip="image (default): each step moves the image by that share of the "
                    "prompts' unguided prediction difference — the same push at every denoise and "
                    "cfg. latent: step sizes are steps in the residual's space, as the paper gives "
                    "them (they push harder at low denoise and high cfg; graphs saved before this "
                    "option existed keep it).",
                ),
                float_input(
                    v.LOCALITY,
                    d["locality"],
                    0.01,
                    optional=True,
                    tooltip="0 = off. Above 0, the push is weighted by where the drive's two "
                    "predictions differ, full weight from this share of the largest difference up: "
                    "keeps more of what the edit does not touch.",
                ),
            ],
            outputs=[
                io.Latent.Output(
                    "latent",
                    display_name="latent",
                    tooltip="z'_t with leftover noise, for SamplerCustomAdvanced + DisableNoise "
                    "with the same SIGMAS (carries 'ems_csds': the σ it was made at).",
                )
            ],
        )

    @classmethod
    def execute(
        cls,
        model,
        positive,
        attribute,
        negative,
        latent_image,
        sigmas,
        noise_seed,
        cfg,
        iterations,
        constraint,
        step_start,
        step_end,
        residual_space=DEFAULTS["residual_space"],
        drive=DEFAULTS["drive"],
        source=None,
        step_units=SAVED_BEFORE_UNITS,
        locality=DEFAULTS["locality"],
    ) -> io.NodeOutput:
        params = parameters(
            cfg, iterations, constraint, step_start, step_end, residual_space, drive, step_units, locality
        )
        check_schedule(model, sigmas, params)
        name, reference = drive_reference(params, attribute, source)
        check_families(NODE, model, positive=positive, **{name: reference}, negative=negative)
        # Shape and values before the model sees them: a wrong latent otherwise ends in a traceback
        # from deep inside the model, a NaN one in a black image marked success.
        check_latent_layout(NODE, "latent_image", latent_image, model)
        check_finite_inputs(NODE, positive=positive, **{name: reference}, negative=negative, latent_image=latent_image)
        check_latent(latent_image)
        latent = reconcile_batch(NODE, latent_image, positive, **{name: reference}, negative=negative)
        with node_errors(NODE):  # run_csds reads the positive's α (and refuses one it cannot read)
            result = run_csds(model, positive, reference, negative, latent, sigmas, noise_seed, params)
        check_finite_output(NODE, "latent", result)
        return io.NodeOutput(result)
