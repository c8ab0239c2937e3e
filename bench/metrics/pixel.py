"""PSNR and SSIM as pure math, plus PIE-Bench's masked ("unedited part") variants.

Conventions (shared by every metric in :mod:`bench.metrics`):

- **Images** are ComfyUI IMAGE tensors: float, shape (B, H, W, C), values in [0, 1]
  (``data_range`` = 1). A single (H, W, C) image is treated as a batch of one. Both images of a
  pair must have the same shape; nothing is resized here.
- **Edit masks** mark the *edited* region with 1 and the background with 0 — PIE-Bench's
  annotation convention and ComfyUI's MASK semantics ("selected"). Shape (B, H, W), (H, W) or
  (B, H, W, 1); a batch-1 mask broadcasts over the image batch. Soft values are used as weights.
- Metrics return one value per batch item: a float64 tensor of shape (B,).

Masked variants, exactly as PIE-Bench's evaluation computes ``*_unedit_part``: **both** images
are multiplied by ``(1 − mask)`` (the edited region becomes black in both), then the ordinary
full-image metric is computed on the results. Averages therefore run over *all* H·W pixels,
zeroed ones included — e.g. PSNR's MSE is divided by H·W·C, not by the background size, which
makes a masked PSNR ``10·log10(1/f)`` dB higher than a "background pixels only" PSNR when a
fraction f of the image is background. An image whose background is empty (mask all 1) has no
such metric: the result is NaN (PIE-Bench writes "nan"). PIE-Bench's own mask decoder also
marks the one-pixel image border as edited; that is a property of its annotations, applied when
the mask is built, not here.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

# Wang, Bovik, Sheikh, Simoncelli (2004): 11×11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


class MetricInputError(ValueError):
    """Inputs a metric cannot score (shape, layout, size); the message says what was expected."""


def as_image_batch(image: torch.Tensor, name: str = "image") -> torch.Tensor:
    """Return ``image`` as a float64 (B, H, W, C) tensor, accepting (H, W, C) for one image."""
    if not torch.is_tensor(image):
        raise MetricInputError(f"{name} must be a torch tensor (B, H, W, C) in [0, 1], got {type(image).__name__}")
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4:
        raise MetricInputError(f"{name} must have shape (B, H, W, C) (ComfyUI IMAGE), got {tuple(image.shape)}")
    if image.shape[-1] not in (1, 3, 4):
        raise MetricInputError(
            f"{name} has {image.shape[-1]} channels in its last axis; images are (B, H, W, C) with "
            f"C = 1, 3 or 4 (got shape {tuple(image.shape)} — a (B, C, H, W) tensor must be "
            "permuted with .permute(0, 2, 3, 1) first)"
        )
    return image.to(torch.float64)


def check_pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images as float64 (B, H, W, C); batch 1 broadcasts against B; shapes must match."""
    a, b = as_image_batch(a, "first image"), as_image_batch(b, "second image").to(a.device)
    if a.shape[1:] != b.shape[1:]:
        raise MetricInputError(
            f"images differ in size: {tuple(a.shape[1:])} vs {tuple(b.shape[1:])} (H, W, C); "
            "resize one to the other before scoring"
        )
    if a.shape[0] != b.shape[0]:
        if a.shape[0] == 1:
            a = a.expand_as(b)
        elif b.shape[0] == 1:
            b = b.expand_as(a)
        else:
            raise MetricInputError(f"batch sizes {a.shape[0]} and {b.shape[0]} differ (only 1 broadcasts)")
    return a, b


def as_mask_batch(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """An edit mask as float64 (B, H, W, 1) broadcastable against ``like`` (B, H, W, C)."""
    if not torch.is_tensor(mask):
        mask = torch.as_tensor(mask)
    m = mask.to(device=like.device, dtype=torch.float64)
    if m.ndim == 2:
        m = m.unsqueeze(0)
    if m.ndim == 4 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.ndim != 3:
        raise MetricInputError(f"an edit mask must be (B, H, W), (H, W) or (B, H, W, 1), got {tuple(mask.shape)}")
    if m.shape[1:] != like.shape[1:3]:
        raise MetricInputError(f"edit mask is {tuple(m.shape[1:])} (H, W) but the images are {tuple(like.shape[1:3])}")
    if m.shape[0] not in (1, like.shape[0]):
        raise MetricInputError(f"edit mask batch {m.shape[0]} does not match image batch {like.shape[0]}")
    return m.expand(like.shape[0], -1, -1).unsqueeze(-1)


def background(image: torch.Tensor, edit_mask: torch.Tensor) -> torch.Tensor:
    """``image · (1 − mask)``: the unedited region, edited pixels set to 0 (PIE-Bench)."""
    image = as_image_batch(image)
    return image * (1.0 - as_mask_batch(edit_mask, image))


def edit_region(image: torch.Tensor, edit_mask: torch.Tensor) -> torch.Tensor:
    """``image · mask``: the edited region only (PIE-Bench's ``clip_similarity_*_edit_part``)."""
    image = as_image_batch(image)
    return image * as_mask_batch(edit_mask, image)


def _has_background(edit_mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) bool: whether any pixel of each item's background has nonzero weight."""
    return (1.0 - as_mask_batch(edit_mask, like)).flatten(1).sum(1) > 0


# --------------------------------------------------------------------------------------- PSNR


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error per item over all H·W·C values → (B,)."""
    a, b = check_pair(a, b)
    return (a - b).pow(2).flatten(1).mean(1)


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per item: ``10·log10(data_range² / MSE)`` → (B,).

    Identical images give +inf. A constant offset d everywhere gives ``20·log10(data_range/d)``.
    """
    err = mse(a, b)
    return 10.0 * torch.log10(float(data_range) ** 2 / err)


def masked_psnr(a: torch.Tensor, b: torch.Tensor, edit_mask: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR of the unedited region as PIE-Bench computes it: ``psnr(a·(1−m), b·(1−m))`` → (B,).

    The MSE is averaged over the whole image (see the module docstring); NaN where the mask
    leaves no background.
    """
    a, b = check_pair(a, b)
    out = psnr(background(a, edit_mask), background(b, edit_mask), data_range)
    return torch.where(_has_background(edit_mask, a), out, torch.full_like(out, math.nan))


# --------------------------------------------------------------------------------------- SSIM


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised 1-D Gaussian (size,) float64 centred on the middle tap; the 2-D window is its
    outer product (separable)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def _filter(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter, 'valid' (no padding): (N, C, H, W) → (N, C, H−k+1, W−k+1)."""
    c = x.shape[1]
    k = g.numel()
    x = F.conv2d(x, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def ssim_map(
    a: torch.Tensor,
    b: torch.Tensor,
    data_range: float = 1.0,
    window_size: int = SSIM_WINDOW,
    sigma: float = SSIM_SIGMA,
    k1: float = SSIM_K1,
    k2: float = SSIM_K2,
) -> torch.Tensor:
    """Local SSIM (B, C, H−w+1, W−w+1) per channel, Wang et al. (2004).

    With Gaussian-weighted local statistics μ, σ², σ_ab (population, i.e. biased, estimates:
    σ² = E_w[x²] − μ²) and C1 = (K1·L)², C2 = (K2·L)²::

        SSIM = (2·μa·μb + C1)(2·σab + C2) / ((μa² + μb² + C1)(σa² + σb² + C2))

    Only windows that lie entirely inside the image are used ('valid', as in the reference
    MATLAB code and torchmetrics, which pads and then crops the same border away).
    """
    a, b = check_pair(a, b)
    if min(a.shape[1], a.shape[2]) < window_size:
        raise MetricInputError(
            f"SSIM needs images of at least {window_size}×{window_size} pixels, got {a.shape[1]}×{a.shape[2]}"
        )
    x, y = a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2)
    g = gaussian_window(window_size, sigma).to(x.device)
    mu_x, mu_y = _filter(x, g), _filter(y, g)
    var_x = _filter(x * x, g) - mu_x**2
    var_y = _filter(y * y, g) - mu_y**2
    cov = _filter(x * y, g) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return num / den


def ssim(
    a: torch.Tensor,
    b: torch.Tensor,
    data_range: float = 1.0,
    window_size: int = SSIM_WINDOW,
    sigma: float = SSIM_SIGMA,
    k1: float = SSIM_K1,
    k2: float = SSIM_K2,
) -> torch.Tensor:
    """Mean SSIM per item → (B,): the SSIM map averaged per channel, then over channels.

    1 for identical images. For two constant images of values p and q the variances and
    covariance vanish and SSIM reduces to the luminance term ``(2pq + C1) / (p² + q² + C1)``.
    """
    m = ssim_map(a, b, data_range, window_size, sigma, k1, k2)
    return m.flatten(2).mean(2).mean(1)


def masked_ssim(
    a: torch.Tensor, b: torch.Tensor, edit_mask: torch.Tensor, data_range: float = 1.0, **kwargs
) -> torch.Tensor:
    """SSIM of the unedited region as PIE-Bench computes it: ``ssim(a·(1−m), b·(1−m))`` → (B,).

    Windows covering the blacked-out edit region compare zeros with zeros and count as 1 (up to
    the constants), exactly as in PIE-Bench; NaN where the mask leaves no background.
    """
    a, b = check_pair(a, b)
    out = ssim(background(a, edit_mask), background(b, edit_mask), data_range, **kwargs)
    return torch.where(_has_background(edit_mask, a), out, torch.full_like(out, math.nan))


def masked(metric, a: torch.Tensor, b: torch.Tensor, edit_mask: Optional[torch.Tensor], **kwargs) -> torch.Tensor:
    """Apply any pairwise ``metric(a, b, **kwargs) → (B,)`` to the PIE-Bench background of both
    images (identity when ``edit_mask`` is None); NaN where there is no background."""
    if edit_mask is None:
        return metric(a, b, **kwargs)
    a, b = check_pair(a, b)
    out = torch.as_tensor(
        metric(background(a, edit_mask), background(b, edit_mask), **kwargs), dtype=torch.float64, device=a.device
    )
    return torch.where(_has_background(edit_mask, a), out, torch.full_like(out, math.nan))
