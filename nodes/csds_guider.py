"""CSDS inside ComfyUI's sampling machinery: a CFGGuider with three conds and a KSAMPLER function.

``guider.sample`` gives us what ComfyUI's own samplers get — model loading and offloading,
LoRA/hooks/patches, memory-aware batch splitting, Cancel — and the KSAMPLER function runs the
pure-PyTorch loop from ``ems.csds`` with the guider as its prediction.

The sampler is given only ``sigmas[:1]`` = [σ]: KSAMPLER then forms z_0 = noise_scaling(σ, n, x)
on entry and returns inverse_noise_scaling(σ, z_N) on exit, which is exactly ComfyUI's
"leftover noise" convention (SPEC §2), so the result continues in SamplerCustomAdvanced with
DisableNoise and the full SIGMAS.
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

from ..ems.csds import csds_edit


def is_flow(model_sampling) -> bool:
    """Rectified-flow models (SD3, Flux, AuraFlow) have a(σ) = 1 − σ."""
    return isinstance(model_sampling, comfy.model_sampling.CONST)


class CSDSGuider(comfy.samplers.CFGGuider):
    """Holds the positive (c̃), attribute and negative conds; predicts both CFG'd denoised in one call."""

    def set_conds(self, positive, attribute, negative):
        self.inner_set_conds({"positive": positive, "attribute": attribute, "negative": negative})

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        # Used as an ordinary guider this is plain CFG on the positive.
        return comfy.samplers.sampling_function(self.inner_model, x, timestep, self.conds.get("negative"),
                                                self.conds.get("positive"), self.cfg,
                                                model_options=model_options, seed=seed)

    def predict_positive_and_attribute(self, x, timestep, model_options, seed=None):
        """(D(x, positive), D(x, attribute)), each CFG-guided against the negative.

        One ``calc_cond_batch`` over [positive, attribute, negative]: with equal token shapes that
        is a single batched model call (split only if memory demands it).
        """
        positive, attribute = self.conds.get("positive"), self.conds.get("attribute")
        negative = self.conds.get("negative")
        skip_negative = math.isclose(self.cfg, 1.0) and not model_options.get("disable_cfg1_optimization", False)
        conds = [positive, attribute, None if skip_negative else negative]
        d_pos, d_attr, d_neg = comfy.samplers.calc_cond_batch(self.inner_model, conds, x, timestep, model_options)
        out = []
        for cond, d_cond in ((positive, d_pos), (attribute, d_attr)):
            pair = [d_cond, d_neg]
            for fn in model_options.get("sampler_pre_cfg_function", []):
                pair = fn({"conds": [cond, conds[2]], "conds_out": pair, "cond_scale": self.cfg, "timestep": timestep,
                           "input": x, "sigma": timestep, "model": self.inner_model, "model_options": model_options})
            out.append(comfy.samplers.cfg_function(self.inner_model, pair[0], pair[1], self.cfg, x, timestep,
                                                   model_options=model_options, cond=cond, uncond=conds[2]))
        return out[0], out[1]


def csds_sampler(model, x, sigmas, extra_args=None, callback=None, disable=None,
                 iterations=0, constraint=0.5, step_start=0.1, step_end=0.01, preview=None):
    """KSAMPLER function: ``x`` is already z_0 = noise_scaling(σ, n, latent)."""
    extra_args = extra_args or {}
    guider = model.inner_model
    sigma = sigmas[0]
    s_in = x.new_ones([x.shape[0]])
    mask = extra_args.get("denoise_mask")
    options, seed = extra_args.get("model_options", {}), extra_args.get("seed")

    def predict(z):
        return guider.predict_positive_and_attribute(z, sigma * s_in, options, seed)

    def on_step(k, z, denoised):
        if preview is not None:
            preview(k, denoised, z, iterations)
        comfy.model_management.throw_exception_if_processing_interrupted()

    flow = is_flow(guider.inner_model.model_sampling)
    z = csds_edit(predict, x, float(sigma), iterations, constraint, step_start, step_end, flow, on_step)
    if mask is not None:
        # A latent noise mask limits the edit to the masked region, as it does for samplers.
        z = x + mask * (z - x)
    return z


def run_csds(model, positive, attribute, negative, latent: dict, sigmas: torch.Tensor, noise_seed: int,
             cfg: float, iterations: int, constraint: float, step_start: float, step_end: float) -> dict:
    """The node's computation on a validated, batch-reconciled LATENT; returns the output LATENT."""
    samples = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    noise = comfy.sample.prepare_noise(samples, noise_seed, latent.get("batch_index"))
    guider = CSDSGuider(model)
    guider.set_conds(positive, attribute, negative)
    guider.set_cfg(cfg)
    preview = latent_preview.prepare_callback(model, iterations) if iterations > 0 else None
    sampler = comfy.samplers.KSAMPLER(csds_sampler, extra_options={
        "iterations": iterations, "constraint": constraint, "step_start": step_start,
        "step_end": step_end, "preview": preview})
    out = guider.sample(noise, samples, sampler, sigmas[:1], denoise_mask=latent.get("noise_mask"),
                        disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=noise_seed)
    result = latent.copy()
    result["samples"] = out.to(comfy.model_management.intermediate_device())
    return result
