"""Conditioning algebra for EMS's *Manipulate* step: ``c = base + α·(c1 − c0)``.

A ComfyUI CONDITIONING is a list of ``[tokens, extras]`` entries:

- ``tokens``: tensor (B, L, D) — the per-token text embedding the model cross-attends to;
- ``extras``: dict, for SD3/SDXL/Flux holding ``pooled_output`` (B, P) and sometimes more.

SD3 layout (D = 4096, P = 2048): ``L = 77·k + L_t5``. The first ``77·k`` tokens are k CLIP
chunks whose features are CLIP-L (768) ‖ CLIP-G (1280), zero-padded from 2048 to 4096; the
remaining ``L_t5`` tokens are T5-XXL and use all 4096 features. The pooled vector is
CLIP-L ‖ CLIP-G of the first chunk.

The paper moves both the token embedding and the pooled embedding; ``manipulate_pooled=False``
keeps the base's pooled vector (an ablation). Other families (SD1.5, SDXL, Flux) are handled
the same way on whatever is present.

**The degree travels with the conditioning.** Every entry EMS Text Direction or
EMS Alpha Sweep outputs carries ``extras["ems_alpha"]``: a float64 tensor of shape (B,), the α of
each batch item, so EMS CSDS Latent Edit can apply its degree rule per item with no extra wire.
A chained direction (``base`` = another direction's output) records *its own* α, replacing the
base's: the last direction in a chain sets the image-side degree. Core nodes keep the key:
ComfyUI copies an entry's dict (ConditioningCombine, Concat, SetArea, SetTimestepRange, ZeroOut…)
and ignores keys it does not know when it samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch

from .validation import InputError

SD3_TOKEN_WIDTH = 4096
SD3_CLIP_WIDTH = 2048  # CLIP-L (768) ‖ CLIP-G (1280)
CLIP_CHUNK = 77
POOLED_KEY = "pooled_output"
ALPHA_KEY = "ems_alpha"
# Text encoders that are language models (Qwen-Image's Qwen2.5-VL, Lumina 2's Gemma) mark their pad
# tokens in a (B, L) mask; ComfyUI drops the key when nothing is masked.
MASK_KEY = "attention_mask"


class ConditioningMismatch(InputError):
    """Two conditionings cannot be combined as asked; the message says why and what to do."""


class TokenLengthMismatch(ConditioningMismatch):
    """Token tensors of different lengths: the fix is to encode the prompts together to one length."""


@dataclass(frozen=True)
class TokenLayout:
    """How an SD3 token axis splits into CLIP chunks and T5 tokens."""

    clip_chunks: int
    t5_tokens: int

    def describe(self) -> str:
        chunks = "chunk" if self.clip_chunks == 1 else "chunks"
        return f"{self.clip_chunks} CLIP {chunks} of 77 + {self.t5_tokens} T5 tokens"


def sd3_layout(tokens: torch.Tensor) -> Optional[TokenLayout]:
    """Detect the SD3 layout of ``tokens`` (B, L, 4096), or None if it is not SD3-shaped.

    CLIP tokens are exactly zero in features 2048…4095 (the zero padding of CLIP-L ‖ CLIP-G);
    T5 tokens are not. The leading run of such tokens must be a whole number of 77-token chunks.
    """
    if tokens.ndim != 3 or tokens.shape[-1] != SD3_TOKEN_WIDTH or tokens.shape[1] == 0:
        return None
    padded = (tokens[0, :, SD3_CLIP_WIDTH:] == 0).all(dim=-1)
    not_padded = (~padded).nonzero()
    clip_len = int(not_padded[0]) if len(not_padded) else tokens.shape[1]
    if clip_len == 0 or clip_len % CLIP_CHUNK:
        return None
    return TokenLayout(clip_len // CLIP_CHUNK, tokens.shape[1] - clip_len)


def describe_tokens(tokens: torch.Tensor) -> str:
    """Human description of a token tensor's length, with the SD3 split when recognisable."""
    layout = sd3_layout(tokens)
    text = f"{tokens.shape[1]} tokens"
    return f"{text} ({layout.describe()})" if layout else text


def text_direction(c0: torch.Tensor, c1: torch.Tensor) -> torch.Tensor:
    """The edit direction ``c1 − c0`` in embedding space (same shape as the inputs)."""
    return c1.to(c0) - c0


def manipulate(c0: torch.Tensor, c1: torch.Tensor, alpha: float, base: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``base + α·(c1 − c0)`` with base defaulting to c0, in the base's dtype.

    Without a base this is ``lerp(c0, c1, α)``, which returns c0 at α = 0 and c1 at α = 1
    bit-for-bit (``c0 + 1·(c1 − c0)`` would not). α < 0 reverses the edit; α > 1 extrapolates.
    Batch sizes of 1 broadcast against k.
    """
    out_dtype = (c0 if base is None else base).dtype
    c0, c1 = _broadcast_batch(c0.float(), c1.float().to(c0.device))
    if base is None:
        out = torch.lerp(c0, c1, float(alpha))
    else:
        base, c0 = _broadcast_batch(base.float().to(c0.device), c0)
        base, c1 = _broadcast_batch(base, c1)
        out = base + float(alpha) * (c1 - c0)
    return out.to(out_dtype)


def _broadcast_batch(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape[0] == b.shape[0]:
        return a, b
    if a.shape[0] == 1:
        return a.expand(b.shape[0], *a.shape[1:]), b
    if b.shape[0] == 1:
        return a, b.expand(a.shape[0], *b.shape[1:])
    raise ConditioningMismatch(f"batch sizes {a.shape[0]} and {b.shape[0]} cannot be combined (only 1 broadcasts to k)")


def check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Refuse token tensors that cannot be interpolated position by position.

    Zero-padding the shorter one would not be neutral (pad positions of a real encoding carry
    real embeddings), and truncating would drop words, so the only correct alignment is to encode
    both prompts to the same length in the first place.
    """
    if a.shape[1:] == b.shape[1:]:
        return
    if a.shape[-1] != b.shape[-1]:
        raise ConditioningMismatch(
            f"'{name_a}' has embedding width {a.shape[-1]} but '{name_b}' has "
            f"{b.shape[-1]}; they come from different text encoders. Encode both with the same CLIP."
        )
    raise TokenLengthMismatch(
        f"'{name_a}' has {describe_tokens(a)} but '{name_b}' has {describe_tokens(b)}. "
        "Token-wise interpolation needs equal lengths and zero-padding is not neutral. Fix: encode "
        "the prompts together, to the same number of CLIP chunks and T5 tokens for every prompt."
    )


def _entries(name: str, cond: Any) -> list:
    if (
        not isinstance(cond, (list, tuple))
        or not cond
        or not all(isinstance(e, (list, tuple)) and len(e) >= 2 and torch.is_tensor(e[0]) for e in cond)
    ):
        raise ConditioningMismatch(
            f"'{name}' is not a CONDITIONING (a list of [tensor, dict] entries); "
            "connect the output of a text-encode node."
        )
    return list(cond)


def _pair_entries(**conds: Any) -> list[tuple]:
    lists = {k: _entries(k, v) for k, v in conds.items() if v is not None}
    counts = {k: len(v) for k, v in lists.items()}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"'{k}' has {n}" for k, n in counts.items())
        raise ConditioningMismatch(
            f"conditionings have different numbers of entries ({listed}); entries are paired "
            "by position. Combine/concat the same way on every side, or use plain encodes."
        )
    return list(zip(*[lists.get(k, [None] * max(counts.values())) for k in conds]))


def _manipulate_pooled(alpha: float, extras: dict, manipulate_pooled: bool) -> Optional[torch.Tensor]:
    have = {k: e[POOLED_KEY] for k, e in extras.items() if e is not None and e.get(POOLED_KEY) is not None}
    present = [k for k, e in extras.items() if e is not None]
    if not have:
        return None
    if len(have) != len(present):
        missing = [k for k in present if k not in have]
        raise ConditioningMismatch(
            f"{', '.join(repr(k) for k in missing)} has no pooled_output while "
            f"{', '.join(repr(k) for k in have)} does; they come from different text encoders."
        )
    anchor = have.get("base", have["source"])
    if not manipulate_pooled:
        return anchor
    for k, p in have.items():
        if p.shape[1:] != have["source"].shape[1:]:
            raise ConditioningMismatch(
                f"pooled_output of '{k}' has shape {tuple(p.shape)} but 'source' has "
                f"{tuple(have['source'].shape)}; encode both with the same CLIP."
            )
    return manipulate(have["source"], have["target"], alpha, have.get("base"))


def union_mask(masks: Sequence[Optional[torch.Tensor]], length: int) -> Optional[torch.Tensor]:
    """The positions any of the conditionings attends to, (B, length); None when none has a mask.
    A missing mask means every position is attended. The key is kept even when every position is
    attended: some models read the token count from it (Lumina 2)."""
    present = [m for m in masks if m is not None]
    if not present:
        return None
    if len(present) < len(masks):
        return torch.ones_like(present[0])
    for m in present:
        if m.ndim != 2 or m.shape[-1] != length:
            raise ConditioningMismatch(
                f"an attention_mask of shape {tuple(m.shape)} does not fit {length} tokens; "
                "encode the prompts together, to one token length."
            )
    union = present[0].bool()
    for m in present[1:]:
        a, b = _broadcast_batch(union, m.bool().to(union.device))
        union = a | b
    return union.to(present[0].dtype)


def share_mask(conds: Sequence[list]) -> list[list]:
    """The conditionings with one attention mask for all, entry by entry: the union of theirs.

    Our rule for language-model encoders: EMS interpolates position by position, so every prompt of
    an edit must attend to the same positions — where one prompt has words and another only its pad
    tokens, both attend (the pad tokens' own encodings, never zeros). With equal masks, α = 0 and
    α = 1 of a text direction are the source and target conditionings exactly.
    """
    lists = [_entries(f"prompt {i}", c) for i, c in enumerate(conds)]
    if len({len(c) for c in lists}) > 1:
        raise ConditioningMismatch("the prompts encoded to different numbers of entries.")
    out = [[] for _ in lists]
    for entries in zip(*lists):
        masks = [e[1].get(MASK_KEY) for e in entries]
        shared = union_mask(masks, entries[0][0].shape[1])
        for i, e in enumerate(entries):
            extras = {k: v for k, v in e[1].items() if k != MASK_KEY}
            if shared is not None:
                extras[MASK_KEY] = shared
            out[i].append([e[0], extras])
    return out


def manipulate_conditioning(
    source: list, target: list, alpha: float, manipulate_pooled: bool = True, base: Optional[list] = None
) -> list:
    """``base + α·(target − source)`` on every entry of a CONDITIONING (the Manipulate step).

    Tokens and ``pooled_output`` are interpolated; ``attention_mask`` is the union of the inputs'
    (``share_mask``: equal already when the prompts come from EMS Encode Prompts); every other extra
    key (Flux's ``guidance``, reference latents, areas …) comes from the target. Entries are paired
    by position. Raises :class:`ConditioningMismatch` naming the inputs ('source', 'target', 'base')
    when they cannot be combined.
    """
    out = []
    for src, tgt, bse in _pair_entries(source=source, target=target, base=base):
        check_same_shape("source", src[0], "target", tgt[0])
        if bse is not None:
            check_same_shape("source", src[0], "base", bse[0])
        tokens = manipulate(src[0], tgt[0], alpha, None if bse is None else bse[0])
        extras = dict(tgt[1])
        pooled = _manipulate_pooled(
            alpha, {"source": src[1], "target": tgt[1], "base": None if bse is None else bse[1]}, manipulate_pooled
        )
        if pooled is not None:
            extras[POOLED_KEY] = pooled
        mask = union_mask([e[1].get(MASK_KEY) for e in (src, tgt, bse) if e is not None], tokens.shape[1])
        extras.pop(MASK_KEY, None)
        if mask is not None:
            extras[MASK_KEY] = mask
        extras[ALPHA_KEY] = torch.full((tokens.shape[0],), float(alpha), dtype=torch.float64)
        out.append([tokens, extras])
    return out


def _repeat_batch_values(extras: dict, batch: int, times: int) -> dict:
    """Repeat tensor extras that carry the batch axis, so a k-item sweep stays self-consistent."""
    return {
        k: (
            v.repeat(times, *([1] * (v.ndim - 1)))
            if torch.is_tensor(v) and v.ndim >= 1 and v.shape[0] == batch and k not in (POOLED_KEY, ALPHA_KEY, MASK_KEY)
            else v
        )
        for k, v in extras.items()
    }


def sweep_conditioning(
    source: list, target: list, alphas: Sequence[float], manipulate_pooled: bool = True, base: Optional[list] = None
) -> list:
    """One CONDITIONING whose batch holds ``manipulate_conditioning`` at every α, α-major.

    Item ``i·B + b`` equals batch item b of the single run at ``alphas[i]`` (B: the single run's
    batch, usually 1), so downstream samplers render all edits in one batch. The attention mask (the
    same union at every α) stays one mask of the single run's batch: ComfyUI repeats it to the
    batch, and Lumina 2 counts the tokens it attends to from it.
    """
    if not alphas:
        raise ConditioningMismatch("no alpha values to sweep.")
    singles = [manipulate_conditioning(source, target, a, manipulate_pooled, base) for a in alphas]
    out = []
    for per_alpha in zip(*singles):
        tokens = torch.cat([e[0] for e in per_alpha], dim=0)
        extras = _repeat_batch_values(per_alpha[0][1], per_alpha[0][0].shape[0], len(alphas))
        if per_alpha[0][1].get(POOLED_KEY) is not None:
            extras[POOLED_KEY] = torch.cat([e[1][POOLED_KEY] for e in per_alpha], dim=0)
        extras[ALPHA_KEY] = torch.cat([e[1][ALPHA_KEY] for e in per_alpha], dim=0)
        out.append([tokens, extras])
    return out


def conditioning_alpha(cond: list, batch: int) -> Optional[torch.Tensor]:
    """The per-item α a CONDITIONING carries, shape (batch,), or None when no entry carries one.

    Entries without ``ems_alpha`` (a plain prompt combined in) do not vote. Entries that carry
    one must agree item by item — two EMS directions at different α combined with
    ConditioningCombine have no single degree — otherwise :class:`ConditioningMismatch`.
    An α of length 1 broadcasts to the batch.
    """
    found = []
    for entry in cond:
        extras = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
        value = extras.get(ALPHA_KEY)
        if value is None:
            continue
        value = torch.as_tensor(value, dtype=torch.float64).flatten().cpu()
        if value.numel() == 1:
            value = value.expand(batch)
        elif value.numel() != batch:
            raise ConditioningMismatch(
                f"'positive' records {value.numel()} α values ({ALPHA_KEY}) but the batch has "
                f"{batch} items; pass the text direction's or the sweep's conditioning on unchanged."
            )
        found.append(value)
    if not found:
        return None
    for other in found[1:]:
        if not torch.equal(other, found[0]):
            raise ConditioningMismatch(
                f"'positive' combines text directions at different α "
                f"({', '.join(f'{float(a):g}' for a in found[0])} vs {', '.join(f'{float(a):g}' for a in other)}), "
                "so there is no single degree to edit by. Chain the directions through 'base' "
                "(the last one's α sets the degree) instead of combining them."
            )
    return found[0].clone()


def _item(t: torch.Tensor, i: int) -> torch.Tensor:
    return t[i if t.shape[0] > 1 else 0]


def items_equal(a: list, b: list, batch: int) -> list[bool]:
    """Per batch item: does ``a`` hold exactly ``b``'s tokens and pooled vector (batch 1 broadcasts)?

    EMS Flow Edit leaves such items untouched: a target equal to the source is no edit. Entries are
    paired by position; differing entry counts or shapes mean "not equal" for every item.
    """
    if len(a) != len(b):
        return [False] * batch
    same = [True] * batch
    for ea, eb in zip(a, b):
        if ea[0].shape[1:] != eb[0].shape[1:]:
            return [False] * batch
        pa, pb = ea[1].get(POOLED_KEY), eb[1].get(POOLED_KEY)
        if (pa is None) != (pb is None) or (pa is not None and pa.shape[1:] != pb.shape[1:]):
            return [False] * batch
        for i in range(batch):
            same[i] = (
                same[i]
                and torch.equal(_item(ea[0], i), _item(eb[0], i).to(ea[0]))
                and (pa is None or torch.equal(_item(pa, i), _item(pb, i).to(pa)))
            )
    return same


def _to_batch(t: torch.Tensor, batch: int) -> torch.Tensor:
    return t if t.shape[0] == batch else t[:1].expand(batch, *t.shape[1:])


def _same_value(a, b) -> bool:
    if a is b:
        return True
    if torch.is_tensor(a) or torch.is_tensor(b):
        return False
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - objects whose == is not a truth value are not "the same"
        return False


def stack_batches(conds: Sequence[list], batch: int) -> Optional[list]:
    """One CONDITIONING whose batch is ``conds[0] ‖ conds[1] ‖ …``, each brought to ``batch`` items.

    So several conditionings can be evaluated in one batched model call, each against its own
    block of the input batch. Returns None when they cannot be stacked: different entry counts,
    token shapes, extra keys, or non-tensor extras that differ (area, strength, …). ``ems_alpha``
    is dropped (the stack has no single degree).
    """
    if not conds or any(len(c) != len(conds[0]) for c in conds):
        return None
    out = []
    for entries in zip(*conds):
        first_tokens, first_extras = entries[0][0], entries[0][1]
        keys = set(first_extras) - {ALPHA_KEY}
        stacked = {}
        for e in entries:
            if e[0].shape[1:] != first_tokens.shape[1:] or e[0].shape[0] not in (1, batch):
                return None
            if set(e[1]) - {ALPHA_KEY} != keys:
                return None
        for key in keys:
            values = [e[1][key] for e in entries]
            if key == MASK_KEY:  # one mask for the whole stack, as ComfyUI gives a batch (Lumina 2
                # counts its tokens over the mask's batch), so only equal masks stack
                if not all(torch.is_tensor(v) and torch.equal(v, values[0]) for v in values):
                    return None
                stacked[key] = values[0]
                continue
            if torch.is_tensor(values[0]) and values[0].ndim >= 1 and values[0].shape[0] in (1, batch):
                if any(
                    not torch.is_tensor(v) or v.shape[1:] != values[0].shape[1:] or v.shape[0] not in (1, batch)
                    for v in values
                ):
                    return None
                stacked[key] = torch.cat([_to_batch(v, batch).to(values[0]) for v in values])
            elif all(_same_value(v, values[0]) for v in values):
                stacked[key] = values[0]
            else:
                return None
        tokens = torch.cat([_to_batch(e[0], batch).to(first_tokens) for e in entries])
        out.append([tokens, stacked])
    return out
