"""An ODE-inversion start, the classic inversion-based baseline, inside ComfyUI's sampling machinery.

Euler inversion of the rectified-flow ODE under the *source* caption from the clean latent up to
the schedule's first σ, then ordinary Euler sampling back down under the target conditioning c̃(α):

    z ← x_src;  for σ_a < σ_b (the schedule reversed):  z += (σ_b − σ_a) · v(z, σ_a', c0)
    for σ_b > σ_a (the schedule):                        z += (σ_a − σ_b) · v(z, σ_b, c̃)

σ_a' = σ_a except at σ_a = 0, where v is evaluated at the next σ (v = (z − D)/σ is undefined at 0).
Both passes CFG-guided against the negative at the same scale. Two model calls per step. Written
from the formula (ours), for the toy-world comparison only.
"""

from __future__ import annotations

import torch

import comfy.model_management
import comfy.sample
import comfy.samplers

from bench.harness import sample_clean


class InversionGuider(comfy.samplers.CFGGuider):
    def set_conds(self, target, source, negative):
        self.inner_set_conds({"positive": target, "source": source, "negative": negative})

    def velocity(self, z, sigma: float, name: str, model_options, seed=None) -> torch.Tensor:
        t = torch.full((z.shape[0],), sigma, device=z.device, dtype=z.dtype)
        d = comfy.samplers.sampling_function(
            self.inner_model,
            z,
            t,
            self.conds.get("negative"),
            self.conds.get(name),
            self.cfg,
            model_options=model_options,
            seed=seed,
        )
        return (z - d) / sigma


def inversion_sampler(model, x, sigmas, extra_args=None, callback=None, disable=None, source=None):
    extra_args = extra_args or {}
    guider = model.inner_model
    options, seed = extra_args.get("model_options", {}), extra_args.get("seed")
    z = guider.inner_model.process_latent_in(source.to(x.device)).to(x.dtype)
    up = [float(s) for s in reversed(sigmas.tolist())]
    for lo, hi in zip(up, up[1:]):
        z = z + (hi - lo) * guider.velocity(z, lo if lo > 0 else hi, "source", options, seed)
        comfy.model_management.throw_exception_if_processing_interrupted()
    down = [float(s) for s in sigmas.tolist()]
    for hi, lo in zip(down, down[1:]):
        z = z + (lo - hi) * guider.velocity(z, hi, "positive", options, seed)
        comfy.model_management.throw_exception_if_processing_interrupted()
    return z


@torch.inference_mode()
def ode_inversion(model, target, source, negative, latent: dict, sigmas: torch.Tensor, cfg: float) -> dict:
    """Invert ``latent`` under ``source``, sample back under ``target`` (a batch for a sweep)."""
    guider = InversionGuider(model)
    guider.set_conds(target, source, negative)
    guider.set_cfg(cfg)
    samples = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    sampler = comfy.samplers.KSAMPLER(inversion_sampler, extra_options={"source": samples})
    return sample_clean(model, guider, sampler, latent, sigmas, masked=False)
