"""Constrained score-distillation sampling (CSDS), EMS's image-side *Sample* step (SPEC §2).

The paper's objective ``‖ε_c̃(z') − ε_attr(z')‖² + λ‖ε_c̃(z') − ε_c̃(z_t)‖²`` is differentiated
"without the transformer's gradient", which read literally is zero. We use the score-distillation
reading (as in Delta Denoising Score): predictions carry no autograd, and their residuals are the
update direction, signed so the latent moves *toward* the attribute:

    η_k     = step_start · (step_end / step_start) ** (k / (N − 1))
    g_k     = [ε(z_k, attr) − ε(z_k, c̃)] + λ·[ε(z_k, c̃) − ε(z_0, c̃)]
    z_{k+1} = z_k − η_k · g_k

ε comes from the host's *denoised* prediction D: ``ε = (z − a(σ)·D) / σ`` with a(σ) = 1 − σ for
rectified-flow models (z = (1−σ)·x0 + σ·ε) and a(σ) = 1 for ε/v-prediction models in
k-diffusion space (z = x0 + σ·ε).

Why the sign moves toward the attribute: ε(z, attr) − ε(z, c̃) = −a(σ)/σ · (D_attr − D_c̃), so
−η·g = η·a(σ)/σ · (D_attr − D_c̃): the latent steps along "what the attribute would denoise to,
minus what the current prompt would". The λ term pulls ε(z_k, c̃) back to its starting value,
keeping z near the trajectory of the source image.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

# predict(z) → (D(z, positive), D(z, attribute)): CFG-guided denoised predictions at σ.
Predict = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class CSDSError(ValueError):
    """Parameters the CSDS update cannot run with; the message says which and why."""


def step_sizes(iterations: int, step_start: float, step_end: float) -> list[float]:
    """Geometric decay from step_start to step_end over ``iterations`` steps (N = 1 → [start])."""
    if iterations < 0:
        raise CSDSError(f"iterations must be ≥ 0, got {iterations}")
    if step_start < 0 or step_end < 0:
        raise CSDSError(f"step sizes must be ≥ 0, got step_start={step_start}, step_end={step_end}")
    if step_end > step_start:
        raise CSDSError(f"step_end ({step_end}) must not exceed step_start ({step_start}): the step decays")
    if iterations == 0:
        return []
    if iterations == 1:
        return [float(step_start)]
    if step_start == 0:
        return [0.0] * iterations
    ratio = step_end / step_start
    return [float(step_start) * ratio ** (k / (iterations - 1)) for k in range(iterations)]


def signal_scale(sigma: float, flow: bool) -> float:
    """a(σ): how much clean signal z carries — 1 − σ for flow models, 1 in k-diffusion space."""
    return 1.0 - sigma if flow else 1.0


def epsilon_from_denoised(z: torch.Tensor, denoised: torch.Tensor, sigma: float, flow: bool) -> torch.Tensor:
    """ε = (z − a(σ)·D) / σ, the noise the model believes is in z."""
    return (z - signal_scale(sigma, flow) * denoised) / sigma


def check_sigma(sigma: float, flow: bool) -> None:
    """CSDS edits a partially noised real image: σ must be positive, and < 1 for flow models."""
    if not sigma > 0:
        raise CSDSError(f"σ must be > 0 (got {sigma:g}); the schedule must start above zero noise.")
    if flow and sigma >= 1.0:
        raise CSDSError(
            f"the schedule starts at σ = {sigma:g} (a full denoise): a flow model's latent at σ = 1 is "
            "pure noise and cannot be returned with leftover noise. Use denoise < 1 (the paper uses 0.75).")


def csds_edit(predict: Predict, z0: torch.Tensor, sigma: float, iterations: int, constraint: float,
              step_start: float, step_end: float, flow: bool,
              callback: Optional[Callable[[int, torch.Tensor, torch.Tensor], None]] = None) -> torch.Tensor:
    """Run N CSDS iterations on the noised latent ``z0`` (B, C, H, W) at noise level σ.

    ``predict`` is called exactly once per iteration; ε(z_0, positive) is taken from the first
    call, so N iterations cost N calls. ``callback(k, z_k, denoised_positive)`` after each step
    (progress/preview). Returns z_N with z0's shape and dtype.
    """
    if constraint < 0:
        raise CSDSError(f"constraint λ must be ≥ 0, got {constraint}")
    check_sigma(sigma, flow)
    etas = step_sizes(iterations, step_start, step_end)
    z = z0
    eps_pos_0 = None
    for k, eta in enumerate(etas):
        d_pos, d_attr = predict(z)
        eps_pos = epsilon_from_denoised(z, d_pos, sigma, flow)
        eps_attr = epsilon_from_denoised(z, d_attr, sigma, flow)
        if eps_pos_0 is None:
            eps_pos_0 = eps_pos
        g = (eps_attr - eps_pos) + constraint * (eps_pos - eps_pos_0)
        z = z - eta * g
        if callback is not None:
            callback(k, z, d_pos)
    return z
