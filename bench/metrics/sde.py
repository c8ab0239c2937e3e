"""The paper's Semantic Disentanglement mEtric (SDE), computed through callables.

For an image x whose label is c (e.g. "a smiling woman") and the flipped label c̃
("a woman who is not smiling"), at noise level t:

    z      = f(x, t)                       # encode + forward-noise to t — computed ONCE
    x̂_c    = h(z, c, t)                    # reverse from t under c, decode
    x̂_c̃    = h(z, c̃, t)                    # reverse from the SAME z under c̃, decode
    E_c    = ‖x − x̂_c‖₂                    # reconstruction error under the true label
    E_c̃    = ‖x − x̂_c̃‖₂                    # change caused by the flipped label
    SDE    = E_c / E_c̃ + E_c̃

This is the paper's expression read with ordinary precedence — exactly as the paper prints it: the
ratio E_c / E_c̃ **plus** the second norm again (not E_c / (E_c̃ + E_c̃) nor a normalised ratio).
Because of that added term SDE is not scale-free: it depends on the image's value range, its
resolution and the norm. Results therefore also carry ``err_c``, ``err_flipped`` and ``ratio``
(= E_c / E_c̃) so other readings can be computed from the same run.

Norm — ``norm=`` (one value per item of the batch):
- ``"rms"`` (**default**): the per-pixel root-mean-square distance, ‖x − x̂‖₂ / √(H·W·C), on
  images in [0, 1]. It does not grow with the resolution, and it puts SDE on the scale the paper
  reports (1.08–1.42, as its table is quoted): a ratio near 1 plus an rms error of
  a few tenths. The paper's formula writes a bare ‖·‖; "rms" is our reading,
  chosen because a summed norm over a whole image is far larger (hundreds at 512²).
- ``"l2"``: the summed L2 (Frobenius) norm over all H·W·C elements, the formula's literal ‖·‖;
  its additive term grows with √(H·W·C) (e.g. ≈ 0.3·√(512·512·3) ≈ 266 at 512²).
E_c̃ = 0 gives ratio +inf (NaN if E_c is 0 too); nothing is clamped.

f and h are plain callables so ComfyUI can supply them (VAE encode + noise_scaling at σ_t;
sampling from σ_t + VAE decode). Any randomness in f must come from a generator the caller
controls: SDE needs both h calls to start from the same z, which is why f is called once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

Encode = Callable[[torch.Tensor, Any], Any]  # f(x, t) -> z
Decode = Callable[[Any, Any, Any], torch.Tensor]  # h(z, cond, t) -> x̂ (same shape as x)
NORMS = ("rms", "l2")  # rms: per-pixel (default); l2: summed over all elements


@dataclass
class SDEResult:
    """Per-item values, each a float64 tensor (B,)."""

    sde: torch.Tensor
    err_c: torch.Tensor
    err_flipped: torch.Tensor
    ratio: torch.Tensor

    def as_dict(self) -> dict:
        return {k: getattr(self, k).tolist() for k in ("sde", "err_c", "err_flipped", "ratio")}


def item_norm(v: torch.Tensor, norm: str = "rms") -> torch.Tensor:
    """Norm of each item of a batch (B, ...) → (B,), float64: ``"rms"`` (per element) or ``"l2"`` (summed)."""
    if norm not in NORMS:
        raise ValueError(f"SDE norm {norm!r} is not one of {NORMS}")
    flat = v.detach().to(torch.float64).reshape(v.shape[0], -1)
    out = flat.pow(2).sum(1).sqrt()
    return out / flat.shape[1] ** 0.5 if norm == "rms" else out


def sde_from_reconstructions(
    x: torch.Tensor, x_c: torch.Tensor, x_flipped: torch.Tensor, norm: str = "rms"
) -> SDEResult:
    """SDE from the two reconstructions ``h(f(x,t),c,t)`` and ``h(f(x,t),c̃,t)`` (same shape as x)."""
    for name, v in (("h(f(x,t), c, t)", x_c), ("h(f(x,t), c̃, t)", x_flipped)):
        if tuple(v.shape) != tuple(x.shape):
            raise ValueError(
                f"SDE: {name} has shape {tuple(v.shape)} but x has {tuple(x.shape)}; "
                "h must decode back to the input's shape"
            )
    x = x.detach().to(torch.float64)
    err_c = item_norm(x - x_c.detach().to(x), norm)
    err_f = item_norm(x - x_flipped.detach().to(x), norm)
    ratio = err_c / err_f
    return SDEResult(sde=ratio + err_f, err_c=err_c, err_flipped=err_f, ratio=ratio)


def semantic_disentanglement(
    x: torch.Tensor, f: Encode, h: Decode, c: Any, c_flipped: Any, t: Any, norm: str = "rms"
) -> SDEResult:
    """SDE of a batch x (B, ...) — typically ComfyUI images (B, H, W, C) in [0, 1].

    ``f(x, t)`` is called once; ``h(z, c, t)`` and ``h(z, c_flipped, t)`` both get that same z.
    c and c̃ are passed through untouched (CONDITIONING, tensors, prompts — whatever h takes).
    A tensor z is cloned for each h call, so an h that works in place cannot leak into the other.
    """
    with torch.no_grad():
        z = f(x, t)
        x_c = h(_fresh(z), c, t)
        x_f = h(_fresh(z), c_flipped, t)
    return sde_from_reconstructions(x, x_c, x_f, norm)


def _fresh(z: Any) -> Any:
    return z.clone() if torch.is_tensor(z) else z


sde = semantic_disentanglement
