"""A FlowEdit-style baseline inside ComfyUI's sampling machinery: inversion-free editing by a
velocity difference (Kulikov et al., "FlowEdit", arXiv 2412.08629), written from its formula.

For a rectified-flow model (z_σ = (1 − σ)·x0 + σ·n, velocity v = (z − D)/σ), FlowEdit moves the
*clean* edited latent along the difference of two velocities evaluated at coupled noisy points.
Starting from z_edit = x_src at the first σ of the schedule, for each step σ_i → σ_{i+1}:

    n          ~ N(0, I)                              fresh noise every step (no inversion)
    z_src      = (1 − σ_i)·x_src + σ_i·n              the source, forward-noised
    z_tar      = z_src + (z_edit − x_src)             the same noise, shifted by the edit so far
    V_delta    = v(z_tar, c_tar) − v(z_src, c_src)    both CFG-guided against the negative
    z_edit    += (σ_{i+1} − σ_i) · V_delta

and the result is z_edit itself (clean). Where the two conditionings agree V_delta is exactly
zero, so the image is untouched: with c_tar = c̃(α) = c0 + α(c1 − c0) (the same text direction
EMS uses) α = 0 returns the source latent exactly and α grades the edit. The paper's n_min
(ordinary sampling for the last steps) and n_avg (averaging several noises per step) are left
at "off" / 1: ours, to keep the cost at two model calls per step.

How it runs in ComfyUI: a ``CFGGuider`` subclass holds [target, source, negative] and a
``KSAMPLER`` function does the loop. The guider is sampled with zero noise (DisableNoise); the
sampler reads the clean source latent from ComfyUI's ``KSamplerX0Inpaint.latent_image`` (the
latent after ``process_latent_in``) and ignores its noised entry value. The schedule's last σ
is 0, so ComfyUI's exit un-scaling is the identity and the output LATENT is clean, for VAE
Decode.
"""

from __future__ import annotations

import torch

import comfy.model_management
import comfy.model_sampling
import comfy.samplers

from bench.harness import sample_clean


class FlowEditGuider(comfy.samplers.CFGGuider):
    """Holds the target (c_tar), the source (c_src) and the negative conditioning."""

    def set_conds(self, target, source, negative):
        self.inner_set_conds({"positive": target, "source": source, "negative": negative})

    def velocity(self, z, sigma: torch.Tensor, cond_name: str, model_options, seed=None) -> torch.Tensor:
        """v(z, c) = (z − D(z, c)) / σ with D the CFG-guided denoised prediction."""
        denoised = comfy.samplers.sampling_function(
            self.inner_model,
            z,
            sigma,
            self.conds.get("negative"),
            self.conds.get(cond_name),
            self.cfg,
            model_options=model_options,
            seed=seed,
        )
        return (z - denoised) / sigma.reshape(-1, *([1] * (z.ndim - 1)))


def flowedit_sampler(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_seed=0):
    """KSAMPLER function. ``model`` is ComfyUI's KSamplerX0Inpaint around the FlowEditGuider."""
    extra_args = extra_args or {}
    guider = model.inner_model
    if not isinstance(guider.inner_model.model_sampling, comfy.model_sampling.CONST):
        raise ValueError("FlowEdit needs a rectified-flow model (SD3/Flux: z = (1 − σ)·x0 + σ·n)")
    x_src = model.latent_image
    options, seed = extra_args.get("model_options", {}), extra_args.get("seed")
    # One noise per step for the whole batch: items of an α sweep see identical noise, so item i
    # equals the single edit at alphas[i] (as for EMS sweeps).
    gen = torch.Generator().manual_seed(int(noise_seed))
    s_in = x.new_ones([x.shape[0]])
    z_edit = x_src.clone()
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        n = torch.randn((1, *x_src.shape[1:]), generator=gen).to(x_src)
        z_src = (1 - sigma) * x_src + sigma * n
        z_tar = z_src + (z_edit - x_src)
        v_tar = guider.velocity(z_tar, sigma * s_in, "positive", options, seed)
        v_src = guider.velocity(z_src, sigma * s_in, "source", options, seed)
        z_edit = z_edit + (sigma_next - sigma) * (v_tar - v_src)
        if callback is not None:
            callback({"x": z_edit, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": z_edit})
        comfy.model_management.throw_exception_if_processing_interrupted()
    mask = extra_args.get("denoise_mask")
    if mask is not None:
        z_edit = x_src + mask * (z_edit - x_src)
    return z_edit


@torch.inference_mode()
def flowedit(model, target, source, negative, latent: dict, sigmas: torch.Tensor, cfg: float, noise_seed: int) -> dict:
    """Edit the clean ``latent`` from ``source`` toward ``target`` over ``sigmas`` (last σ = 0).

    ``target`` may be a batch-k conditioning (an α sweep) with a batch-k latent. Cost: two CFG
    model calls per step (v at z_tar under the target, v at z_src under the source)."""
    if float(sigmas[-1]) != 0.0 or float(sigmas[0]) >= 1.0:
        raise ValueError("FlowEdit runs from σ < 1 down to σ = 0 (a BasicScheduler with denoise < 1)")
    guider = FlowEditGuider(model)
    guider.set_conds(target, source, negative)
    guider.set_cfg(cfg)
    sampler = comfy.samplers.KSAMPLER(flowedit_sampler, extra_options={"noise_seed": noise_seed})
    return sample_clean(model, guider, sampler, latent, sigmas, seed=noise_seed)
