"""Small helpers shared by the EMS node adapters (ComfyUI-facing, no model code)."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass

from ..ems.alphas import AlphaOutOfRange
from ..ems.conditioning import TokenLengthMismatch
from ..ems.tensors import (
    MAX_ABS,
    channel_problem,
    layout_problem,
    max_latent_side,
    non_finite_part,
    size_problem,
    too_large_part,
    value_kind,
)
from ..ems.validation import InputError, family_mismatch
from ..ems.validation import check_floats as check

LOG = logging.getLogger("EMS")
CATEGORY = "EMS"


class EMSNodeError(ValueError):
    """A user-facing error: the message names the node and the fix (shown in ComfyUI's dialog)."""


def node_error(node: str, message: str) -> EMSNodeError:
    """The node's own refusal: ``"<node>: <message>"``."""
    return EMSNodeError(f"{node}: {message}")


# Refusals whose fix is another EMS node: the method says what to do in its own terms (it names no
# node), and this adds which node does it.
FIXES = {
    TokenLengthMismatch: "EMS Encode Prompts does exactly that.",
    AlphaOutOfRange: "EMS Text Direction's alpha takes the same range.",
}


@contextmanager
def node_errors(node: str, *also: type[Exception], fix: str = "", clean=None):
    """Report what the method refuses as this node's error.

    ``ems`` raises :class:`~ems.validation.InputError` subclasses whose messages give the cause and
    the fix but no node name, since the method cannot know who called it; inside this block they
    become ``EMSNodeError("<node>: <message>")``, with the node that fixes them where one does
    (``FIXES``) or ``fix``, what to do in this node's graph. ``also``: further exception types to
    report the same way (an LLM client's); ``clean(message)``: a last pass over the message
    (removing a secret it may quote). An ``EMSNodeError`` passes through unchanged: it already
    names its node.
    """
    try:
        yield
    except (InputError, *also) as e:
        message = str(e) if clean is None else clean(str(e))
        known = next((text for kind, text in FIXES.items() if isinstance(e, kind)), "")
        raise EMSNodeError(" ".join(part for part in (f"{node}: {message}", known, fix) if part)) from None


def repeat_latent(latent: dict, count: int) -> dict:
    """Repeat a batch-1 LATENT ``count`` times with a repeated ``batch_index``.

    ComfyUI's ``prepare_noise`` draws noise item by item by batch_index, so repeating the index
    gives every item the same noise: items differ only by α.
    """
    samples = latent["samples"]
    out = {k: v for k, v in latent.items() if k not in ("samples", "batch_index", "noise_mask")}
    out["samples"] = samples.repeat(count, *([1] * (samples.ndim - 1)))
    index = latent.get("batch_index", [0])
    out["batch_index"] = [int(index[0])] * count
    mask = latent.get("noise_mask")
    if mask is not None:
        out["noise_mask"] = mask.repeat(count, *([1] * (mask.ndim - 1))) if mask.shape[0] == 1 else mask
    return out


def cond_batch(cond) -> int:
    """The batch a CONDITIONING carries (its largest entry's)."""
    return max(int(entry[0].shape[0]) for entry in cond)


def reconcile_batch(node: str, latent: dict, positive, **others) -> dict:
    """Give the latent the batch the conditionings need.

    A batch-1 latent meeting a batch-k positive (an EMS Alpha Sweep) is repeated k times with the
    same ``batch_index``, so every item gets the same noise and items differ only by α. Every
    conditioning must then have batch 1 or the latent's.
    """
    size = int(latent["samples"].shape[0])
    k = cond_batch(positive)
    if size == 1 and k > 1:
        latent, size = repeat_latent(latent, k), k
    for name, cond in (("positive", positive), *others.items()):
        b = cond_batch(cond)
        if b not in (1, size):
            raise node_error(
                node,
                f"latent_image has a batch of {size} but '{name}' has a batch of {b}. "
                "Use a batch-1 latent with a batch-k positive (EMS Alpha Sweep), "
                "equal batches, or batch-1 conditionings.",
            )
    return latent


# -- Float inputs: one declaration for the widget bounds and the run-time check (ems/validation.py) --


def float_input(spec, default: float, step: float, tooltip: str, **kwargs):
    """An ``io.Float.Input`` whose min/max are the declared range ``spec`` (a FloatRange)."""
    from comfy_api.v0_0_2 import io

    return io.Float.Input(spec.name, default=default, min=spec.lo, max=spec.hi, step=step, tooltip=tooltip, **kwargs)


def check_floats(node: str, ranges, **values) -> dict:
    """Finite and in range, or an error naming the node (NaN/inf pass ComfyUI's own min/max check)."""
    with node_errors(node):
        return check(ranges, **values)


# -- Model/conditioning families --------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFamily:
    """How the pack names a detected model family and which text encoder belongs to it."""

    name: str  # readable, as users know it
    encoder: str  # the loader setting that gives its text encoder
    tokens: int | None = None  # token width when ComfyUI's detected config does not record it
    pooled: int | None = None  # 0: takes no pooled vector (a T5 or language-model encoder only)


# ComfyUI's detected model-config class name → the family. SD3 and SD3.5 (Large, Medium) share the
# class; Flux.1 dev and schnell differ by guidance embedding.
MODEL_FAMILIES = {
    "SD3": ModelFamily("SD3/SD3.5", "the checkpoint's CLIP output, or TripleCLIPLoader with clip_l, clip_g and t5xxl"),
    "Flux": ModelFamily("Flux.1 dev", "DualCLIPLoader with clip_l and t5xxl (type flux)"),
    "FluxSchnell": ModelFamily("Flux.1 schnell", "DualCLIPLoader with clip_l and t5xxl (type flux)"),
    "FluxInpaint": ModelFamily("Flux.1 Fill", "DualCLIPLoader with clip_l and t5xxl (type flux)"),
    "Chroma": ModelFamily("Chroma", "CLIPLoader with t5xxl (type chroma)", pooled=0),
    "QwenImage": ModelFamily("Qwen-Image", "CLIPLoader with qwen_2.5_vl_7b (type qwen_image)", tokens=3584, pooled=0),
    "Lumina2": ModelFamily("Lumina 2", "CLIPLoader with gemma_2_2b (type lumina2)", pooled=0),
    "SDXL": ModelFamily("SDXL", "the SDXL checkpoint's CLIP output (CLIP-L + CLIP-G)"),
    "SD15": ModelFamily("SD1.5", "the SD1.5 checkpoint's CLIP output (CLIP-L)"),
    "AuraFlow": ModelFamily("AuraFlow", "CLIPLoader with the Pile-T5-XL encoder (type stable_diffusion)"),
}


def model_family(model) -> ModelFamily:
    """The family of a MODEL, from ComfyUI's detected config class (unknown classes keep their name)."""
    config = getattr(getattr(model, "model", None), "model_config", None)
    name = type(config).__name__ if config is not None else "unknown"
    return MODEL_FAMILIES.get(name, ModelFamily(name, ""))


def model_text_widths(model) -> tuple[str, object, object]:
    """(family name, token width, pooled width) the model's text projections take; None = unknown,
    pooled 0 = none taken.

    Read from ComfyUI's detected model config: its class (the family) and ``unet_config`` — SD3:
    ``context_embedder_config`` in_features and ``adm_in_channels``; Flux and Chroma:
    ``context_in_dim`` / ``vec_in_dim``; Lumina 2: ``cap_feat_dim``; UNets: ``context_dim``;
    Qwen-Image records none (its class default, 3584).
    """
    family = model_family(model)
    config = getattr(getattr(model, "model", None), "model_config", None)
    if config is None:
        return family.name, None, None
    unet = getattr(config, "unet_config", {}) or {}
    embedder = (unet.get("context_embedder_config") or {}).get("params", {})
    tokens = (
        embedder.get("in_features")
        or unet.get("context_in_dim")
        or unet.get("cap_feat_dim")
        or unet.get("context_dim")
        or family.tokens
    )
    pooled = family.pooled
    if embedder:  # MMDiT (SD3/SD3.5): the pooled vector is the adm input as it is
        pooled = unet.get("adm_in_channels")
    elif unet.get("vec_in_dim"):  # Flux
        pooled = unet.get("vec_in_dim")
    return family.name, (int(tokens) if tokens else None), (None if pooled is None else int(pooled))


def check_families(node: str, model, **conds) -> None:
    """Refuse conditionings whose widths do not fit ``model`` — before the model runs."""
    family, tokens, pooled = model_text_widths(model)
    if tokens is None and pooled is None:
        return
    fix = model_family(model).encoder
    for name, cond in conds.items():
        for entry in cond or []:
            extras = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            p = extras.get("pooled_output")
            message = family_mismatch(
                name, family, tokens, pooled, int(entry[0].shape[-1]), None if p is None else int(p.shape[-1]), fix
            )
            if message:
                raise node_error(node, message)


# -- The CSDS leftover-noise marker -----------------------------------------------------------------
# EMS CSDS Latent Edit's output LATENT is z'_t with leftover noise at σ, not a clean latent. It
# carries ``latent["ems_csds"] = {"sigma", "fingerprint", …}`` so EMS nodes can recognise it; the
# fingerprint ties the marker to those exact samples, because core samplers copy the LATENT dict
# (and so the key) onto their clean output.
CSDS_KEY = "ems_csds"


def latent_fingerprint(samples) -> list[float]:
    flat = samples.detach().double().flatten()
    return [float(flat.sum()), float(flat.abs().sum()), float(flat.numel())]


def csds_marker(latent: dict):
    """The CSDS marker if ``latent`` is still a CSDS output with leftover noise, else None."""
    marker = latent.get(CSDS_KEY) if isinstance(latent, dict) else None
    if not isinstance(marker, dict) or "samples" not in latent:
        return None
    return marker if marker.get("fingerprint") == latent_fingerprint(latent["samples"]) else None


def output_is_linked(prompt, node_id, output_index: int) -> bool:
    """Whether any node of the queued API prompt takes output ``output_index`` of ``node_id``."""
    if not prompt or node_id is None:
        return True  # unknown: assume it is used
    for node in prompt.values():
        for value in (node.get("inputs") or {}).values():
            if (
                isinstance(value, list)
                and len(value) == 2
                and str(value[0]) == str(node_id)
                and value[1] == output_index
            ):
                return True
    return False


# -- Tensor inputs and outputs: finite, sane magnitude, image-latent layout (ems/tensors.py) --------

# What usually puts NaN/inf or absurd values into an input of each kind, and the fix.
INPUT_CAUSES = {
    "latent": (
        "a VAE that overflowed in half precision (fp16): run the VAE in fp32 (start "
        "ComfyUI with --fp32-vae) and encode the image again; or a node upstream that produced "
        "or scaled the latent"
    ),
    "image": (
        "a VAE Decode that overflowed in half precision (fp16): run the VAE in fp32 "
        "(start ComfyUI with --fp32-vae); or a node upstream that produced the image"
    ),
    "conditioning": (
        "a text encoder that overflowed in half precision (fp16): start ComfyUI "
        "with --fp32-text-enc and encode again; or a node upstream that scaled the "
        "conditioning"
    ),
}
# What usually makes a node's own result non-finite when its inputs were finite.
OUTPUT_CAUSES = {
    "latent": (
        "an overflow inside the computation, usually a model running in half precision (fp16): "
        "load it in bf16 or fp32 (the loader's weight_dtype, or start ComfyUI with --force-fp32), "
        "or lower α, cfg or the step sizes"
    ),
    "image": "an overflow inside the computation; lower α or check the inputs",
    "conditioning": (
        "an overflow in half precision (fp16 ends at 65504): usually the text encoder "
        "(start ComfyUI with --fp32-text-enc), or an α so large the edit leaves fp16's range"
    ),
}


def _part(part: str) -> str:
    return f" (its {part})" if part else ""


def check_finite_inputs(node: str, **inputs) -> None:
    """Refuse any LATENT / IMAGE / MASK / CONDITIONING input holding NaN, ±inf or values beyond
    ±MAX_ABS — before anything runs on it. None (an unconnected optional input) is skipped."""
    for name, value in inputs.items():
        cause = INPUT_CAUSES.get(value_kind(value), "a node upstream that produced it")
        part, problem = non_finite_part(value)
        if problem:
            raise node_error(
                node,
                f"'{name}' contains {problem}{_part(part)}, so everything computed "
                f"from it would be NaN (a black image). Likely cause: {cause}.",
            )
        part, problem = too_large_part(value)
        if problem:
            raise node_error(
                node,
                f"'{name}' has {problem}{_part(part)}; EMS refuses anything beyond "
                f"±{MAX_ABS:g}: real values stay orders of magnitude below, and such values "
                "overflow once the model multiplies them (then every value is NaN). "
                f"Likely cause: {cause}.",
            )


def check_finite_output(node: str, name: str, value) -> None:
    """Raise instead of passing on a result of this node that came out NaN or infinite."""
    part, problem = non_finite_part(value)
    if problem:
        cause = OUTPUT_CAUSES.get(value_kind(value), "an overflow inside the computation")
        where = f", in its {part}" if part else ""
        # Worded about the node itself ("<node> produced …"), so it is not the "<node>: " form.
        raise EMSNodeError(
            f"{node} produced non-finite values in its output '{name}' ({problem}{where}) "
            "and does not pass them on (they would end as a black image). Likely cause: "
            f"{cause}."
        )


def model_latent_limits(model) -> tuple[str, object, object]:
    """(family, latent channels, largest latent side) the model takes; None = unknown, not checked.

    Channels from the model's latent format; the side from a fixed position-embedding grid in its
    detected config (SD3's MMDiT: ``pos_embed_max_size`` patches of ``patch_size``), else from the
    diffusion model itself. Models without such a grid (UNets, Flux's RoPE) have no side limit.
    """
    if model is None:
        return "unknown", None, None
    config = getattr(getattr(model, "model", None), "model_config", None)
    family = type(config).__name__ if config is not None else "unknown"
    try:
        channels = model.get_model_object("latent_format").latent_channels
    except Exception:  # an unusual MODEL (a wrapper, a test double): no channel check
        channels = None
    unet = getattr(config, "unet_config", None) or {}
    size, patch = unet.get("pos_embed_max_size"), unet.get("patch_size")
    if size is None:
        try:
            net = model.get_model_object("diffusion_model")
            size, patch = getattr(net, "pos_embed_max_size", None), getattr(net, "patch_size", None)
            if getattr(net, "pos_embed", None) is None:
                size = None  # no fixed grid: the embedding is computed for any size
        except Exception:
            size = None
    return family, channels, max_latent_side(size, patch)


def check_latent_layout(node: str, name: str, latent: dict, model=None) -> None:
    """An image LATENT (batch, channels, height, width) the model can take, or an error naming the
    node, the input and the fix. Without a model only the layout is checked."""
    if not isinstance(latent, dict) or not hasattr(latent.get("samples"), "shape"):
        raise node_error(node, f"'{name}' is not a LATENT; connect VAE Encode or a sampler's output.")
    shape = tuple(latent["samples"].shape)
    problem = layout_problem(shape)
    if problem:
        fix = (
            "EMS edits images: connect the VAE Encode of an image (not a video or audio latent)."
            if len(shape) != 4
            else "Connect the VAE Encode of at least one image."
        )
        raise node_error(node, f"'{name}' {problem}. {fix}")
    family, channels, max_side = model_latent_limits(model)
    described = f"this {family} model" if family != "unknown" else "this model"
    problem = channel_problem(shape, channels, described)
    # An all-zero latent of the wrong width (EmptyLatentImage) is widened by ComfyUI itself.
    if problem and latent["samples"].any():
        raise node_error(
            node,
            f"'{name}' {problem}: it comes from another model family's VAE (SD1.5 and "
            "SDXL latents have 4 channels, SD3 and Flux 16). Encode the image with this "
            "model's own VAE (VAE Encode with the checkpoint's VAE).",
        )
    problem = size_problem(shape, max_side, described)
    if problem:
        image_side = max_side * 8
        raise node_error(
            node,
            f"'{name}' {problem} — about {image_side}×{image_side} image pixels with an "
            f"8× VAE such as SD3's. Scale the image down before VAE Encode (e.g. "
            f"ImageScale to at most {image_side} pixels per side).",
        )
