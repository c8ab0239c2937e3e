"""Small helpers shared by the EMS node adapters (ComfyUI-facing, no model code)."""

from __future__ import annotations

import logging

LOG = logging.getLogger("EMS")
CATEGORY = "EMS"


class EMSNodeError(ValueError):
    """A user-facing error: the message names the node and the fix (shown in ComfyUI's dialog)."""


def node_error(node: str, message: str) -> EMSNodeError:
    return EMSNodeError(message if message.startswith(node) else f"{node}: {message}")


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


# -- Float inputs: one declaration for the widget bounds and the run-time check (ems/validation.py) --

def float_input(spec, default: float, step: float, tooltip: str, **kwargs):
    """An ``io.Float.Input`` whose min/max are the declared range ``spec`` (a FloatRange)."""
    from comfy_api.v0_0_2 import io

    return io.Float.Input(spec.name, default=default, min=spec.lo, max=spec.hi, step=step,
                          tooltip=tooltip, **kwargs)


def check_floats(node: str, ranges, **values) -> dict:
    """Finite and in range, or an error naming the node (NaN/inf pass ComfyUI's own min/max check)."""
    from ..ems.validation import InputError, check_floats as check

    try:
        return check(ranges, **values)
    except InputError as e:
        raise node_error(node, str(e)) from None


# -- Model/conditioning families --------------------------------------------------------------------

def model_text_widths(model) -> tuple[str, object, object]:
    """(family, token width, pooled width) the model's text projections take; None = unknown.

    Read from ComfyUI's detected model config: the class name (``SD3``, ``Flux``, ``SDXL``, …) and
    its ``unet_config`` (SD3: ``context_embedder_config`` in_features and ``adm_in_channels``;
    Flux: ``context_in_dim`` / ``vec_in_dim``; UNets: ``context_dim``).
    """
    base = getattr(model, "model", None)
    config = getattr(base, "model_config", None)
    if config is None:
        return "unknown", None, None
    family = type(config).__name__
    unet = getattr(config, "unet_config", {}) or {}
    embedder = (unet.get("context_embedder_config") or {}).get("params", {})
    tokens = embedder.get("in_features") or unet.get("context_in_dim") or unet.get("context_dim")
    pooled = None
    if embedder:  # MMDiT (SD3/SD3.5): the pooled vector is the adm input as it is
        pooled = unet.get("adm_in_channels")
    elif unet.get("vec_in_dim"):  # Flux
        pooled = unet.get("vec_in_dim")
    return family, (int(tokens) if tokens else None), (int(pooled) if pooled else None)


def check_families(node: str, model, **conds) -> None:
    """Refuse conditionings whose widths do not fit ``model`` — before the model runs (issue 11)."""
    from ..ems.validation import family_mismatch

    family, tokens, pooled = model_text_widths(model)
    if tokens is None and pooled is None:
        return
    for name, cond in conds.items():
        for entry in cond or []:
            extras = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            p = extras.get("pooled_output")
            message = family_mismatch(node, name, family, tokens, pooled, int(entry[0].shape[-1]),
                                      None if p is None else int(p.shape[-1]))
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
            if isinstance(value, list) and len(value) == 2 and str(value[0]) == str(node_id) \
                    and value[1] == output_index:
                return True
    return False
