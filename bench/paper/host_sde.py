"""The paper's SDE through the host model: f and h for :mod:`bench.metrics.sde`, from ComfyUI's pieces.

    t             = sigmas = BasicScheduler(steps, denoise); the noise level is σ_t = sigmas[0]
    f(x, sigmas)  = VAE Encode, then forward noise to σ_t exactly as KSAMPLER does on entry:
                    noise_scaling(σ_t, n, process_latent_in(latent)) with n = RandomNoise(seed)
                    (``comfy.sample.prepare_noise``). It is returned as a LATENT in ComfyUI's
                    leftover-noise convention (inverse_noise_scaling, process_latent_out), the form
                    KSamplerAdvanced(return_with_leftover_noise) and EMS CSDS hand on.
    h(z, c, sigmas) = SamplerCustomAdvanced(DisableNoise, CFGGuider(c, negative, cfg),
                    KSamplerSelect(euler), sigmas, z) → VAE Decode.

So h(f(x), c) is plain img2img of x under c with RandomNoise(seed) — the integration test checks
that — and :func:`bench.metrics.sde.semantic_disentanglement` runs f once, so the c and c̃ branches
start from the same noised latent. Needs :func:`bench.harness.setup` first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from bench import harness
from bench.metrics.sde import SDEResult, semantic_disentanglement


@dataclass
class HostModel:
    """A ComfyUI MODEL + VAE with the sampling settings h uses (negative prompt, CFG, seed)."""

    model: Any
    vae: Any
    negative: Any
    cfg: float
    seed: int
    sampler: str = "euler"

    @torch.inference_mode()
    def encode_and_noise(self, image: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
        """f: IMAGE (B, H, W, 3) → the LATENT samples noised to σ = sigmas[0]."""
        import comfy.sample

        latent = comfy.sample.fix_empty_latent_channels(self.model, self.vae.encode(image))
        noise = comfy.sample.prepare_noise(latent, self.seed)
        sampling = self.model.get_model_object("model_sampling")
        fmt = self.model.get_model_object("latent_format")
        sigma = sigmas[0]
        # KSAMPLER.max_denoise: only EPS models scale noise differently at the schedule's top.
        top = float(sigma) >= float(sampling.sigma_max) or math.isclose(
            float(sigma), float(sampling.sigma_max), rel_tol=1e-5
        )
        noised = sampling.noise_scaling(sigma, noise, fmt.process_in(latent), top)
        z = fmt.process_out(sampling.inverse_noise_scaling(sigma, noised))
        if not torch.isfinite(z).all():
            raise ValueError(
                f"SDE: the noised latent at σ={float(sigma):g} is not finite; a flow model's "
                "leftover-noise latent needs σ < 1, so use --denoise < 1"
            )
        return z

    @torch.inference_mode()
    def denoise_and_decode(self, z: torch.Tensor, cond, sigmas: torch.Tensor) -> torch.Tensor:
        """h: sample from the noised latent z under ``cond`` over the same sigmas, decode to IMAGE."""
        out = harness.sample(self.model, cond, self.negative, {"samples": z}, sigmas, self.cfg, None, self.sampler)
        images = self.vae.decode(out["samples"]).float().clamp(0, 1)
        return images.reshape(-1, *images.shape[-3:])


@torch.inference_mode()
def host_sde(
    model, vae, image: torch.Tensor, source, target, negative, s: harness.EditSettings, norm: str = "rms"
) -> SDEResult:
    """SDE of ``image`` (its label: the ``source`` conditioning; flipped label: ``target``) at the
    noise level of BasicScheduler(s.steps, s.denoise), sampled with s.cfg / s.sampler / s.seed.
    ``norm``: ``"rms"`` per-pixel distances (default, the paper's scale) or ``"l2"`` summed
    (:mod:`bench.metrics.sde`)."""
    host = HostModel(model, vae, negative, s.cfg, s.seed, s.sampler)
    sigmas = harness.schedule(model, s.steps, s.denoise, s.scheduler)
    return semantic_disentanglement(image, host.encode_and_noise, host.denoise_and_decode, source, target, sigmas, norm)
