"""Checks on the tensors EMS nodes take and make: finite, of a sane size, in an image-latent layout.

Plain PyTorch over ComfyUI's value layouts (no ComfyUI import, no node names); ``nodes/common.py``
wraps these and names the node, the input and the likely cause.

Why a magnitude bound and not only a finiteness test: a finite latent × 1e30 is not NaN yet, but
the first product inside the model (a square in a norm, an attention logit, cfg × a difference)
overflows and every value downstream turns NaN — a black image marked success. ``MAX_ABS`` is where
"absurd" starts:
- every real value is far below it: SD-family latents stay within about ±10 after
  the VAE's scale factor, images and masks within 0 … 1, text-encoder tokens within a few hundred;
- half precision, which SD3 runs in on most GPUs, ends at 65504, and the model scales and sums its
  inputs over thousands of features, so values in the tens of thousands already overflow there.
1e4 sits a factor of ~6 under fp16's largest value, three orders of magnitude over real latents
and images, and well over the few outlier features of CLIP's hidden states.
"""

from __future__ import annotations

import torch
from torch import Tensor

MAX_ABS = 1e4

# Additive attention masks may hold −inf on purpose (a masked-out token), so they are not checked.
_UNCHECKED_EXTRAS = ("attention_mask",)


def value_kind(value) -> str:
    """'latent' (a LATENT dict), 'conditioning' (a CONDITIONING list), 'image' (an IMAGE/MASK tensor)
    or '' for anything else."""
    if isinstance(value, dict):
        return "latent"
    if isinstance(value, (list, tuple)):
        return "conditioning"
    return "image" if torch.is_tensor(value) else ""


def named_tensors(value) -> list[tuple[str, Tensor]]:
    """The float tensors a LATENT / CONDITIONING / IMAGE value carries, each with the part it is
    ("samples", "noise_mask", "tokens", "pooled_output", …; "" for a bare tensor)."""
    kind = value_kind(value)
    if kind == "image":
        parts = [("", value)]
    elif kind == "latent":
        parts = [(key, value.get(key)) for key in ("samples", "noise_mask")]
    elif kind == "conditioning":
        parts = []
        for i, entry in enumerate(value):
            prefix = f"entry {i} " if len(value) > 1 else ""
            if not isinstance(entry, (list, tuple)) or not entry:
                continue
            parts.append((f"{prefix}tokens", entry[0]))
            extras = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            parts += [
                (f"{prefix}{key}", extra) for key, extra in extras.items() if not str(key).endswith(_UNCHECKED_EXTRAS)
            ]
    else:
        parts = []
    return [(name, t) for name, t in parts if torch.is_tensor(t) and t.is_floating_point() and t.numel()]


def non_finite(x: Tensor) -> str:
    """ "" when every element of ``x`` is finite; else how many are NaN / infinite, e.g.
    "1 NaN of 1,024 values"."""
    finite = torch.isfinite(x)
    if bool(finite.all()):
        return ""
    nan = int(torch.isnan(x).sum())
    inf = int(x.numel() - int(finite.sum())) - nan
    counts = [f"{nan:,} NaN" if nan else "", f"{inf:,} infinite" if inf else ""]
    return f"{' and '.join(c for c in counts if c)} of {x.numel():,} values"


def too_large(x: Tensor, limit: float = MAX_ABS) -> str:
    """ "" when every |element| ≤ ``limit``; else the largest magnitude, e.g. "values up to 1e+30"."""
    peak = float(x.detach().abs().amax())
    return f"values up to {peak:.3g} in magnitude" if peak > limit else ""


def non_finite_part(value) -> tuple[str, str]:
    """The first part of ``value`` holding NaN or ±inf, as (part, how many); ("", "") if none."""
    for name, x in named_tensors(value):
        problem = non_finite(x)
        if problem:
            return name, problem
    return "", ""


def too_large_part(value, limit: float = MAX_ABS) -> tuple[str, str]:
    """The first part of ``value`` with an element beyond ±``limit``, as (part, the largest)."""
    for name, x in named_tensors(value):
        problem = too_large(x, limit)
        if problem:
            return name, problem
    return "", ""


def value_problem(value, limit: float | None = MAX_ABS) -> tuple[str, str]:
    """What is wrong with ``value`` first: non-finite in any part, then (with a ``limit``) beyond
    ±limit, as (part, what); ("", "") when it is fine."""
    found = non_finite_part(value)
    if found[1] or limit is None:
        return found
    return too_large_part(value, limit)


# -- Latent layout ----------------------------------------------------------------------------------

LAYOUT_HINTS = {
    3: "an audio or 1-D latent",
    5: "a video latent (batch, channels, frames, height, width)",
}


def describe_shape(shape) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def layout_problem(shape) -> str:
    """ "" for an image latent (batch, channels, height, width) — or one frame of a video-style latent
    (batch, channels, 1, height, width), as Qwen-Image's VAE gives — with at least one item; else why not."""
    shape = tuple(shape)
    if len(shape) == 5 and shape[2] == 1:  # one frame: how Qwen-Image's VAE (Wan 2.1) writes an image
        shape = shape[:2] + shape[3:]
    if len(shape) != 4:
        hint = LAYOUT_HINTS.get(len(shape))
        return (
            f"is not an image latent: expected (batch, channels, height, width), got {len(shape)}-D "
            f"{describe_shape(shape)}" + (f" — {hint}" if hint else "")
        )
    if shape[0] == 0:
        return "is an empty batch"
    return ""


def channel_problem(shape, channels: int | None, model: str = "this model") -> str:
    """ "" when the latent's channel count is the model's (or the model's is unknown)."""
    if channels is None or int(shape[1]) == int(channels):
        return ""
    return f"has {int(shape[1])} channels but {model} takes {int(channels)}"


def max_latent_side(pos_embed_max_size, patch_size) -> int | None:
    """The largest latent side (in latent pixels) a DiT with a fixed position-embedding grid takes.

    SD3's MMDiT pads the latent to whole patches and crops its ``pos_embed_max_size`` ×
    ``pos_embed_max_size`` grid of patch embeddings to the latent's patch count, so a side may have
    at most ``pos_embed_max_size`` patches of ``patch_size`` latent pixels. None = no fixed grid.
    """
    if not pos_embed_max_size or not patch_size:
        return None
    return int(pos_embed_max_size) * int(patch_size)


def size_problem(shape, max_side: int | None, model: str = "this model") -> str:
    """ "" when both spatial sides fit ``max_side``; else the size and the limit."""
    if max_side is None:
        return ""
    height, width = int(shape[-2]), int(shape[-1])
    if height <= max_side and width <= max_side:
        return ""
    return (
        f"is {width}×{height} latent pixels, but {model} takes at most {max_side}×{max_side} "
        f"(its position embedding covers {max_side} latent pixels per side)"
    )
