"""CSDS inside ComfyUI's sampling machinery: a CFGGuider with three conds and a KSAMPLER function.

``guider.sample`` gives us what ComfyUI's own samplers get — model loading and offloading,
LoRA/hooks/patches, memory-aware batch splitting, Cancel — and the KSAMPLER function runs the
pure-PyTorch loop from ``ems.csds`` with the guider as its prediction.

The sampler is given only ``sigmas[:1]`` = [σ]: KSAMPLER then forms z_0 = noise_scaling(σ, n, x)
on entry and returns inverse_noise_scaling(σ, z_N) on exit, which is exactly ComfyUI's
"leftover noise" convention, so the result continues in SamplerCustomAdvanced with
DisableNoise and the full SIGMAS.

Latent noise masks (SetLatentNoiseMask). ComfyUI's KSAMPLER wraps the guider in
``KSamplerX0Inpaint``: at every model call it replaces the unmasked region of x by
``noise_scaling(σ_k, noise, latent_image)`` and the unmasked region of the prediction by
``latent_image``, so masked img2img ends with the unmasked region equal to the clean source.
Downstream of CSDS the sampler has DisableNoise and ``latent_image`` = our output, so whatever we
put outside the mask *is* its final unmasked region. Hence: the CSDS update is multiplied by the
mask at every step (its context outside stays z_0, what img2img's model sees at σ), and the output
LATENT holds the edited z'_t only where the mask is fully 1 and the clean source everywhere else —
outside the mask the result then equals masked img2img's. Soft (fractional) mask borders get the
clean source too: leftover noise there would stay in the final image as noise (the sampler keeps
(1 − m)·latent_image), while a clean border is merely denoised from less noise.
"""

from __future__ import annotations

import math

import torch

import comfy.model_management
import comfy.model_sampling
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview

from ..ems.conditioning import conditioning_alpha
from ..ems.csds import CSDSParams, csds_edit
from .common import CSDS_KEY, LOG, latent_fingerprint


def is_flow(model_sampling) -> bool:
    """Rectified-flow models (SD3, Flux, AuraFlow) have a(σ) = 1 − σ."""
    return isinstance(model_sampling, comfy.model_sampling.CONST)


class CSDSGuider(comfy.samplers.CFGGuider):
    """Holds the positive (c̃), the drive's reference (the attribute, or the source caption for the
    target_vs_source drive) and the negative; predicts both CFG'd denoised in one call."""

    def set_conds(self, positive, reference, negative):
        self.inner_set_conds({"positive": positive, "reference": reference, "negative": negative})

    def predict_noise(self, x, timestep, model_options={}, seed=None):  # noqa: B006 - CFGGuider's own signature
        # Used as an ordinary guider this is plain CFG on the positive.
        return comfy.samplers.sampling_function(
            self.inner_model,
            x,
            timestep,
            self.conds.get("negative"),
            self.conds.get("positive"),
            self.cfg,
            model_options=model_options,
            seed=seed,
        )

    def predict_positive_and_reference(self, x, timestep, model_options, seed=None):
        """(D(x, positive), D(x, reference)), each CFG-guided against the negative.

        One ``calc_cond_batch`` over [positive, reference, negative]: with equal token shapes that
        is a single batched model call (split only if memory demands it).
        """
        positive, reference = self.conds.get("positive"), self.conds.get("reference")
        negative = self.conds.get("negative")
        skip_negative = math.isclose(self.cfg, 1.0) and not model_options.get("disable_cfg1_optimization", False)
        conds = [positive, reference, None if skip_negative else negative]
        d_pos, d_ref, d_neg = comfy.samplers.calc_cond_batch(self.inner_model, conds, x, timestep, model_options)
        out = []
        for cond, d_cond in ((positive, d_pos), (reference, d_ref)):
            pair = [d_cond, d_neg]
            for fn in model_options.get("sampler_pre_cfg_function", []):
                pair = fn(
                    {
                        "conds": [cond, conds[2]],
                        "conds_out": pair,
                        "cond_scale": self.cfg,
                        "timestep": timestep,
                        "input": x,
                        "sigma": timestep,
                        "model": self.inner_model,
                        "model_options": model_options,
                    }
                )
            out.append(
                comfy.samplers.cfg_function(
                    self.inner_model,
                    pair[0],
                    pair[1],
                    self.cfg,
                    x,
                    timestep,
                    model_options=model_options,
                    cond=cond,
                    uncond=conds[2],
                )
            )
        return out[0], out[1]


def csds_sampler(
    model, x, sigmas, extra_args=None, callback=None, disable=None, *, params: CSDSParams, preview=None, alpha=None
):
    """KSAMPLER function: ``x`` is already z_0 = noise_scaling(σ, n, latent)."""
    extra_args = extra_args or {}
    guider = model.inner_model
    sigma = sigmas[0]
    s_in = x.new_ones([x.shape[0]])
    mask = extra_args.get("denoise_mask")
    options, seed = extra_args.get("model_options", {}), extra_args.get("seed")

    def predict(z):
        return guider.predict_positive_and_reference(z, sigma * s_in, options, seed)

    def on_step(k, z, denoised):
        if preview is not None:
            preview(k, denoised, z, params.iterations)
        comfy.model_management.throw_exception_if_processing_interrupted()

    flow = is_flow(guider.inner_model.model_sampling)
    if alpha is not None:
        alpha = alpha.to(x.device)
    # The mask (prepared by the guider to x's shape) limits every step to the masked region.
    return csds_edit(predict, x, float(sigma), params, flow, on_step, alpha=alpha, mask=mask)


def keep_unmasked_source(out: torch.Tensor, samples: torch.Tensor, noise_mask) -> torch.Tensor:
    """The clean source wherever the (resized) noise mask is below 1; see the module doc."""
    if noise_mask is None:
        return out
    mask = comfy.utils.reshape_mask(noise_mask.to(out.device, torch.float32), out.shape)
    return torch.where(mask >= 1.0, out, samples.to(out))


def run_csds(
    model, positive, reference, negative, latent: dict, sigmas: torch.Tensor, noise_seed: int, params: CSDSParams
) -> dict:
    """The node's computation on a validated, batch-reconciled LATENT; returns the output LATENT.

    ``reference`` is the drive's other conditioning: the attribute (``params.drive == "attribute"``)
    or the source caption c0 (``"target_vs_source"``).

    The degree per item is read here, once, from ``positive`` (its recorded ``ems_alpha``) and
    handed to the loop; a positive without one gets the full push (``ConditioningMismatch`` when
    the recorded α cannot be read). The output carries ``ems_csds`` (σ and a fingerprint of its
    samples) so EMS nodes can tell a leftover-noise latent from a clean one.
    """
    samples = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    alpha = conditioning_alpha(positive, int(samples.shape[0]))
    if alpha is not None:
        LOG.info("EMS CSDS Latent Edit: degree from the positive's α: %s", ", ".join(f"{float(a):g}" for a in alpha))
    noise = comfy.sample.prepare_noise(samples, noise_seed, latent.get("batch_index"))
    guider = CSDSGuider(model)
    guider.set_conds(positive, reference, negative)
    guider.set_cfg(params.cfg)
    preview = latent_preview.prepare_callback(model, params.iterations) if params.iterations > 0 else None
    sampler = comfy.samplers.KSAMPLER(
        csds_sampler, extra_options={"params": params, "preview": preview, "alpha": alpha}
    )
    noise_mask = latent.get("noise_mask")
    out = guider.sample(
        noise,
        samples,
        sampler,
        sigmas[:1],
        denoise_mask=noise_mask,
        disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED,
        seed=noise_seed,
    )
    out = keep_unmasked_source(out, samples.to(out.device), noise_mask)
    result = latent.copy()
    result["samples"] = out.to(comfy.model_management.intermediate_device())
    result[CSDS_KEY] = {
        "sigma": float(sigmas[0]),
        "fingerprint": latent_fingerprint(result["samples"]),
        "residual_space": params.residual_space,
        "drive": params.drive,
        "iterations": params.iterations,
        "alpha": None if alpha is None else [float(a) for a in alpha],
    }
    return result
