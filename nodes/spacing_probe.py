"""The probe behind EMS Alpha Sweep's even spacing, inside ComfyUI's sampling machinery.

One batched model call: the source latent, noised to the schedule's first σ with one fixed noise,
is denoised under c̃(α) for every α of the probe grid (a CFGGuider holding the grid's conditioning
and a KSAMPLER function that stops after that call). The denoised predictions are the features
whose change along α ``ems.spacing`` evens out. No negative is evaluated: CFG's unconditional
term is the same for every α, so it would only scale the measured change, not reshape it.
"""

from __future__ import annotations

import torch

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils

PROBE_SEED = 0  # the probe's own noise; the measured shape of the change hardly depends on it


class ProbeGuider(comfy.samplers.CFGGuider):
    """Holds the probe grid's conditioning (batch N); used only through :func:`probe_sampler`."""

    def set_conds(self, positive):
        self.inner_set_conds({"positive": positive})

    def predict_noise(self, x, timestep, model_options={}, seed=None):  # noqa: B006 - CFGGuider's own signature
        (denoised,) = comfy.samplers.calc_cond_batch(
            self.inner_model, [self.conds.get("positive")], x, timestep, model_options
        )
        return denoised


def probe_sampler(model, x, sigmas, extra_args=None, callback=None, disable=None, *, found: dict):
    """KSAMPLER function: ``x`` is noise_scaling(σ, n, latent); one prediction, kept in ``found``."""
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    found["denoised"] = model(x, sigmas[0] * s_in, **extra_args)
    comfy.model_management.throw_exception_if_processing_interrupted()
    return x


def probe_change(model, grid_conditioning, latent: dict, sigmas: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) denoised predictions of the batch-1 ``latent`` at ``sigmas[0]``, one per item of
    ``grid_conditioning`` (a batch-N conditioning, e.g. ``sweep_conditioning`` over the grid)."""
    count = int(grid_conditioning[0][0].shape[0])
    samples = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    samples = samples[:1].repeat(count, *([1] * (samples.ndim - 1)))
    noise = comfy.sample.prepare_noise(samples, PROBE_SEED, [0] * count)  # the same noise for every α
    guider = ProbeGuider(model)
    guider.set_conds(grid_conditioning)
    guider.set_cfg(1.0)
    found: dict = {}
    sampler = comfy.samplers.KSAMPLER(probe_sampler, extra_options={"found": found})
    guider.sample(noise, samples, sampler, sigmas[:1], disable_pbar=True, seed=PROBE_SEED)
    return found["denoised"].float().cpu()
