"""Locality: confine an update to where it is large (shared by EMS Flow Edit and CSDS).

The idea of confining an edit to where two predictions differ is UniEdit-Flow's; the form is ours.
Per item, the channel mean of |Δ| (Δ: the update's prediction difference), smoothed over 3×3
latent pixels and divided by its maximum, gives d ∈ [0, 1]; the update is weighted by
clamp(2d/τ − 1, 0, 1): nothing where d ≤ τ/2, all of it where d ≥ τ. Where the prompts agree Δ
is mostly noise, which is what redraws content the edit does not touch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def locality_weights(v_delta: torch.Tensor, threshold: float) -> torch.Tensor:
    """clamp(2d/τ − 1, 0, 1) with d the smoothed, max-normalised channel mean of |V| per item:
    (B, 1, …); 0 where d ≤ τ/2, 1 where d ≥ τ, linear between."""
    d = v_delta.abs().mean(dim=1, keepdim=True)
    if d.ndim in (4, 5):  # image latents (or single frames): spread the weight over neighbouring pixels
        shape = d.shape
        d = F.avg_pool2d(d.reshape(-1, 1, *shape[-2:]), 3, stride=1, padding=1, count_include_pad=False)
        d = d.reshape(shape)
    peak = d.flatten(1).amax(dim=1).clamp_min(torch.finfo(d.dtype).tiny)
    d = d / peak.reshape(-1, *([1] * (d.ndim - 1)))
    return (2.0 * d / threshold - 1.0).clamp(0.0, 1.0)
