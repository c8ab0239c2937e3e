"""EMSCSDSLatentEdit: the image side of EMS — CSDS on the noised latent z_t (SPEC §2, §3)."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..ems.csds import CSDSError, check_sigma, step_sizes
from .common import CATEGORY, LOG, node_error, repeat_latent

NODE = "EMS CSDS Latent Edit"


def cond_batch(cond) -> int:
    return max(int(entry[0].shape[0]) for entry in cond)


def reconcile_batch(latent: dict, positive, attribute, negative) -> dict:
    """Give the latent the batch the conditionings need (SPEC §2).

    A batch-1 latent meeting a batch-k positive (an EMS Alpha Sweep) is repeated k times with the
    same ``batch_index``, so every item gets the same noise and items differ only by α.
    """
    size = int(latent["samples"].shape[0])
    k = cond_batch(positive)
    if size == 1 and k > 1:
        latent, size = repeat_latent(latent, k), k
    for name, cond in (("positive", positive), ("attribute", attribute), ("negative", negative)):
        b = cond_batch(cond)
        if b not in (1, size):
            raise node_error(NODE, f"latent_image has a batch of {size} but '{name}' has a batch of {b}. "
                                   "Use a batch-1 latent with a batch-k positive (EMS Alpha Sweep), "
                                   "equal batches, or batch-1 conditionings.")
    return latent


def validate(model, sigmas, cfg, iterations, constraint, step_start, step_end) -> None:
    if sigmas is None or sigmas.ndim != 1 or sigmas.shape[0] < 2:
        n = 0 if sigmas is None else int(sigmas.numel())
        raise node_error(NODE, f"SIGMAS has {n} value(s); it needs at least 2 (a start and an end). "
                               "Connect BasicScheduler with steps ≥ 1 and denoise < 1.")
    for name, value in (("cfg", cfg), ("iterations", iterations), ("constraint", constraint),
                        ("step_start", step_start), ("step_end", step_end)):
        if value < 0:
            raise node_error(NODE, f"{name} must not be negative (got {value}).")
    try:
        step_sizes(iterations, step_start, step_end)
        from .csds_guider import is_flow
        sigma = float(sigmas[0])
        flow = is_flow(model.get_model_object("model_sampling"))
        check_sigma(sigma, flow)
    except CSDSError as e:
        hint = " BasicScheduler's denoise input sets where the schedule starts." if "denoise" in str(e) else ""
        raise node_error(NODE, f"{e}{hint}") from None


class EMSCSDSLatentEdit(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EMSCSDSLatentEdit",
            display_name="EMS CSDS Latent Edit",
            category=f"{CATEGORY}/sample",
            description=("Noises the image latent to the first sigma and nudges it toward the attribute "
                         "with constrained score distillation. Continue with SamplerCustomAdvanced + "
                         "DisableNoise and the same SIGMAS (or KSamplerAdvanced, add_noise disabled, at "
                         "the matching start step)."),
            inputs=[
                io.Model.Input("model", tooltip="The SD3 model (any ComfyUI model works: flow or ε/v)."),
                io.Conditioning.Input("positive", tooltip="c̃, the manipulated conditioning (EMS Text Direction "
                                                          "or a batch from EMS Alpha Sweep)."),
                io.Conditioning.Input("attribute", tooltip="The attribute conditioning CSDS pushes toward."),
                io.Conditioning.Input("negative", tooltip="Negative conditioning for CFG (same token length "
                                                          "as positive for one batched call)."),
                io.Latent.Input("latent_image", tooltip="The clean image latent from VAE Encode."),
                io.Sigmas.Input("sigmas", tooltip="The schedule the downstream sampler will use; its first "
                                                  "value is the noise level t (denoise < 1)."),
                io.Int.Input("noise_seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Seed of the forward noise, drawn exactly as RandomNoise draws it."),
                io.Float.Input("cfg", default=7.5, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance scale for the CSDS predictions (paper: 7.5)."),
                io.Int.Input("iterations", default=20, min=0, max=1000,
                             tooltip="CSDS iterations, one batched model call each. 0 = no image-side edit "
                                     "(plain img2img with the edited text)."),
                io.Float.Input("constraint", default=0.5, min=0.0, max=100.0, step=0.01,
                               tooltip="λ: higher keeps the latent closer to the source (paper: 0.1–1.0)."),
                io.Float.Input("step_start", default=0.1, min=0.0, max=10.0, step=0.001,
                               tooltip="First step size η_0 (paper: 0.1); decays geometrically."),
                io.Float.Input("step_end", default=0.01, min=0.0, max=10.0, step=0.001,
                               tooltip="Last step size η_{N−1} (paper: 0.01); must not exceed step_start."),
            ],
            outputs=[io.Latent.Output("latent", display_name="latent",
                                      tooltip="z'_t with leftover noise, for SamplerCustomAdvanced + DisableNoise.")],
        )

    @classmethod
    def execute(cls, model, positive, attribute, negative, latent_image, sigmas, noise_seed, cfg,
                iterations, constraint, step_start, step_end) -> io.NodeOutput:
        validate(model, sigmas, cfg, iterations, constraint, step_start, step_end)
        latent = reconcile_batch(latent_image, positive, attribute, negative)
        if not latent["samples"].any():
            LOG.warning("%s: latent_image is all zeros; EMS edits a real image (connect VAE Encode).", NODE)
        from .csds_guider import run_csds

        return io.NodeOutput(run_csds(model, positive, attribute, negative, latent, sigmas, noise_seed, cfg,
                                      iterations, constraint, step_start, step_end))
