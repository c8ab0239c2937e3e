"""Latent directions: move a clean image latent along the difference of a reference pair.

Two readings of "make it like b rather than a, by α", both on clean latents (B, C, H, W):

- ``linear`` — the EMS paper's Fig. 3b, z + α(z̃ − z), written with a reference pair:
  ``latent + α·(reference_b − reference_a)``. With the same forward noise on every latent,
  noising commutes with this affine map, so editing the clean latent equals editing z_t.
- ``svd`` — our reading of arXiv 2502.02225 ("Exploring the latent space of diffusion models
  directly through singular value decomposition"): the attribute is the change of the singular
  spectrum from reference_a to reference_b; it is applied to the latent's *own* decomposition, so
  the latent keeps its singular vectors (the paper's "identity"). Which matrices, which singular
  values and how α scales them are our choices (see web/docs/EMSLatentDirection.md); the paper
  learns a singular-value predictor, we use the pair's measured spectra in closed form.

Everything here is plain PyTorch (no ComfyUI). Work is done in float64 and cast back to the
latent's dtype; α = 0 returns the latent bit for bit in both modes (the edit is added as a change
that is exactly zero at α = 0).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .validation import InputError

MODES = ("linear", "svd")
AXES = ("per_channel", "channels_x_pixels")
SPECTRA = ("shift", "ratio", "project")
_TINY = 1e-6  # singular values below this fraction of the largest carry no usable ratio


class LatentDirectionError(InputError):
    """Inputs the direction cannot be computed from; the message names the input and the fix."""


# --------------------------------------------------------------------------- validation


def _finite(name: str, x: Tensor) -> None:
    if not torch.isfinite(x).all():
        raise LatentDirectionError(
            f"{name} contains NaN or infinite values; re-encode the image "
            "(VAE Encode) or check the node that produced it."
        )


def check_inputs(latent: Tensor, reference_a: Tensor, reference_b: Tensor, alpha) -> Tensor:
    """Validate shapes and values; return α as a float64 tensor of shape (B,)."""
    if latent.ndim != 4:
        raise LatentDirectionError(
            f"latent has shape {tuple(latent.shape)}; expected an image latent (batch, channels, height, width)."
        )
    b, c, h, w = latent.shape
    if b == 0:
        raise LatentDirectionError("latent is an empty batch.")
    for name, ref in (("reference_a", reference_a), ("reference_b", reference_b)):
        if ref.ndim != 4 or tuple(ref.shape[1:]) != (c, h, w):
            raise LatentDirectionError(
                f"{name} has shape {tuple(ref.shape)} but latent is {tuple(latent.shape)}. The "
                "references must be latents of the same model at the same size: scale both images to the "
                "same width and height before VAE Encode (e.g. Upscale Image with Get Image Size)."
            )
        if ref.shape[0] not in (1, b):
            raise LatentDirectionError(
                f"{name} has a batch of {ref.shape[0]} but latent has {b}; use a "
                "batch-1 reference (applied to every item) or one per item."
            )
    for name, x in (("latent", latent), ("reference_a", reference_a), ("reference_b", reference_b)):
        _finite(name, x)
    alpha = torch.as_tensor(alpha, dtype=torch.float64).flatten()
    if alpha.numel() == 1:
        alpha = alpha.expand(b)
    if alpha.numel() != b:
        raise LatentDirectionError(
            f"{alpha.numel()} alpha values for a latent batch of {b}; give one alpha, or one per item."
        )
    if not torch.isfinite(alpha).all():
        raise LatentDirectionError(f"alpha must be a finite number (got {alpha.tolist()}).")
    return alpha.clone()


# --------------------------------------------------------------------------- linear


def linear_direction(latent: Tensor, reference_a: Tensor, reference_b: Tensor, alpha: Tensor) -> Tensor:
    """latent + α·(reference_b − reference_a), all float64, α of shape (B,).

    Written as ``lerp(latent, latent + (b − a), α)``: torch.lerp returns its end point exactly at
    weight 1 and its start exactly at 0, so α = 0 gives the latent and, with reference_a = latent,
    α = 1 gives reference_b bit for bit (``latent − a`` is then exactly 0).
    """
    target = reference_b + (latent - reference_a)
    return torch.lerp(latent, target.expand_as(latent), alpha.view(-1, 1, 1, 1).expand_as(latent))


# --------------------------------------------------------------------------- svd


def to_matrices(x: Tensor, axes: str) -> Tensor:
    """(B, C, H, W) → a stack of matrices (B, M, m, n).

    - ``per_channel``: each channel is an H×W matrix (M = C): rows and columns of the image plane.
    - ``channels_x_pixels``: one C×(H·W) matrix per image (M = 1): channels against positions.
    """
    b, c, h, w = x.shape
    if axes == "per_channel":
        return x.reshape(b, c, h, w)
    if axes == "channels_x_pixels":
        return x.reshape(b, 1, c, h * w)
    raise LatentDirectionError(f"axes must be one of {', '.join(AXES)} (got {axes!r}).")


def from_matrices(m: Tensor, shape: torch.Size) -> Tensor:
    return m.reshape(shape)


def spectrum_change(
    sigma: Tensor, sigma_a: Tensor, sigma_b: Tensor, alpha: Tensor, rank: int = 0, spectrum: str = "shift"
) -> Tensor:
    """How much each of the latent's singular values moves: σ' − σ, shape (B, M, k).

    sigma (B, M, k) is the latent's spectrum, sigma_a / sigma_b (1|B, M, k) the references', all
    sorted descending and matched by index. α is (B,). Only the first ``rank`` values move
    (0 = all). ``shift``: σ' = max(σ + α(σ_b − σ_a), 0); ``ratio``: σ' = σ·(σ_b/σ_a)^α, where a
    pair value below 1e-6 of its matrix's largest one is treated as carrying no attribute (ratio 1);
    ``project``: σ' = σ + α(σ_b − σ_a) with σ_a, σ_b from :func:`project_spectrum` (signed, so
    not clamped: a coefficient may change sign).
    """
    a = alpha.view(-1, 1, 1).to(sigma)
    if spectrum == "shift":
        new = (sigma + a * (sigma_b - sigma_a)).clamp_min(0.0)
        change = new - sigma
    elif spectrum == "project":
        change = a * (sigma_b - sigma_a)  # signed coordinates along the latent's vectors: no clamp
    elif spectrum == "ratio":
        floor_a = _TINY * sigma_a[..., :1]
        floor_b = _TINY * sigma_b[..., :1]
        usable = (sigma_a > floor_a) & (sigma_b > floor_b)
        ratio = torch.where(
            usable, sigma_b / torch.where(usable, sigma_a, torch.ones_like(sigma_a)), torch.ones_like(sigma_a)
        )
        change = sigma * (ratio**a - 1.0)
    else:
        raise LatentDirectionError(f"spectrum must be one of {', '.join(SPECTRA)} (got {spectrum!r}).")
    change = torch.where(a == 0, torch.zeros_like(change), change)  # α = 0: exactly no change
    if rank:
        change = change.clone()
        change[..., rank:] = 0.0
    return change


def project_spectrum(u: Tensor, reference: Tensor, vh: Tensor) -> Tensor:
    """u_iᵀ R v_i for every i: a reference measured along the latent's own singular vectors.

    u (B, M, m, k), vh (B, M, k, n), reference (1|B, M, m, n) → (B, M, k). Signed, and matched
    by vector rather than by rank order, so two images whose spectra cross are still compared
    component by component.
    """
    reference = reference.expand(u.shape[0], *reference.shape[1:])
    return torch.einsum("bMpi,bMpq,bMiq->bMi", u, reference, vh)


def svd_direction(
    latent: Tensor,
    reference_a: Tensor,
    reference_b: Tensor,
    alpha: Tensor,
    axes: str = "per_channel",
    rank: int = 0,
    spectrum: str = "shift",
) -> Tensor:
    """Apply the a→b change of the singular spectrum to the latent's own SVD (float64 in and out).

    latent = U diag(σ) Vᵀ per matrix; the result is latent + U diag(σ' − σ) Vᵀ with σ' from
    :func:`spectrum_change`. U and V (the latent's singular vectors) are kept: only the energy
    along them changes. Adding the change, rather than rebuilding U diag(σ') Vᵀ, keeps the result
    exact where nothing moves (α = 0, or singular values past ``rank``).
    """
    if axes not in AXES:
        raise LatentDirectionError(f"axes must be one of {', '.join(AXES)} (got {axes!r}).")
    if spectrum not in SPECTRA:
        raise LatentDirectionError(f"spectrum must be one of {', '.join(SPECTRA)} (got {spectrum!r}).")
    x = to_matrices(latent, axes)
    k = min(x.shape[-2:])
    if not isinstance(rank, int) or rank < 0:
        raise LatentDirectionError(f"rank must be a whole number ≥ 0 (0 = all); got {rank!r}.")
    if rank > k:
        raise LatentDirectionError(
            f"rank {rank} is larger than the matrices allow: axes '{axes}' makes "
            f"{x.shape[-2]}×{x.shape[-1]} matrices with at most {k} singular values. Use rank ≤ {k} (0 = all)."
        )
    largest = x.flatten(-2).abs().amax(-1)  # (B, M)
    if (largest == 0).any():
        item, mat = (largest == 0).nonzero()[0].tolist()
        where = f"channel {mat} of item {item}" if axes == "per_channel" else f"item {item}"
        raise LatentDirectionError(
            f"{where} of latent is all zeros, so it has no singular vectors to keep (svd mode "
            "edits an image's own decomposition). Connect the VAE Encode of a real image, or use mode 'linear'."
        )
    u, sigma, vh = torch.linalg.svd(x, full_matrices=False)
    if spectrum == "project":
        sigma_a, sigma_b = (project_spectrum(u, to_matrices(r, axes), vh) for r in (reference_a, reference_b))
    else:
        sigma_a = torch.linalg.svdvals(to_matrices(reference_a, axes))
        sigma_b = torch.linalg.svdvals(to_matrices(reference_b, axes))
    if spectrum == "ratio" and (sigma_a[..., 0] == 0).any():
        raise LatentDirectionError(
            "reference_a is all zeros (in some matrix), so the ratio σ_b/σ_a "
            "is undefined; use spectrum 'shift' or a real reference."
        )
    change = spectrum_change(sigma, sigma_a, sigma_b, alpha, rank, spectrum)
    delta = (u * change.unsqueeze(-2)) @ vh
    return latent + from_matrices(delta, latent.shape)


# --------------------------------------------------------------------------- entry point


def apply_direction(
    latent: Tensor, reference_a: Tensor, reference_b: Tensor, alpha, mode: str = "linear", **svd_options
) -> Tensor:
    """Edit a batch of clean latents along the reference pair a → b.

    Args:
        latent: (B, C, H, W) clean latents (ComfyUI ``LATENT["samples"]``).
        reference_a, reference_b: (1|B, C, H, W) the pair: a without, b with the attribute.
        alpha: a float or a (B,) tensor; 0 returns ``latent`` exactly.
        mode: ``"linear"`` or ``"svd"``.
        svd_options: ``axes`` (``per_channel`` | ``channels_x_pixels``), ``rank`` (0 = all),
            ``spectrum`` (``shift`` | ``ratio`` | ``project``); see :func:`svd_direction`.
    Returns:
        (B, C, H, W) in the dtype and device of ``latent``.
    Raises:
        LatentDirectionError: shape or batch mismatch, NaN/inf, non-finite α, unknown mode or
            option, rank too large, all-zero latent in svd mode.
    """
    if mode not in MODES:
        raise LatentDirectionError(f"mode must be one of {', '.join(MODES)} (got {mode!r}).")
    unknown = set(svd_options) - {"axes", "rank", "spectrum"}
    if unknown:
        raise LatentDirectionError(f"unknown svd option(s) {sorted(unknown)}; use axes, rank, spectrum.")
    alphas = check_inputs(latent, reference_a, reference_b, alpha)
    x, a, b = (t.to(torch.float64) for t in (latent, reference_a, reference_b))
    alphas = alphas.to(x.device)
    if mode == "linear":
        out = linear_direction(x, a, b, alphas)
    else:
        out = svd_direction(x, a, b, alphas, **svd_options)
    return out.to(latent.dtype)


def blend_mask(latent: Tensor, edited: Tensor, mask: Tensor | None) -> Tensor:
    """Keep the edit only where ``mask`` is 1 (ComfyUI's ``noise_mask``), the original elsewhere.

    The mask (any of (H', W'), (B', H', W'), (B', 1, H', W'), usually at pixel resolution) is
    resized bilinearly to the latent's H×W and repeated to its batch, as ComfyUI's samplers do.
    """
    if mask is None:
        return edited
    b, _, h, w = latent.shape
    m = mask.to(torch.float64).reshape(-1, 1, mask.shape[-2], mask.shape[-1])
    if m.shape[-2:] != (h, w):
        m = torch.nn.functional.interpolate(m, size=(h, w), mode="bilinear")
    m = m.repeat(math.ceil(b / m.shape[0]), 1, 1, 1)[:b].to(latent.device)
    # lerp: exactly the original where m = 0 and exactly the edit where m = 1.
    return torch.lerp(latent.to(torch.float64), edited.to(torch.float64), m.expand_as(latent)).to(latent.dtype)
