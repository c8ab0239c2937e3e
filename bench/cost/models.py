"""Models for the bench: the tiny SD3 (CPU) and a full-size SD3-medium-architecture MMDiT (GPU).

Both are built through ComfyUI's own classes (``comfy.supported_models.SD3`` → ``model_base.SD3``
→ MMDiT, wrapped in ``ModelPatcher``), so sampling sees exactly what ``UNETLoader`` would give it.
Weights are random (there are no SD3 weights here); timing and memory do not depend on them.
ComfyUI's modules are imported inside the functions: call them after :func:`bench.host.setup`.
"""

from __future__ import annotations

import torch
from comfyui_ems.toyworld import tiny_sd3

from comfyui_ems.toyworld.model import seeded_parameters

# SD3-medium as ComfyUI's model_detection reads it from sd3_medium.safetensors: x_embedder
# (1536, 16, 2, 2) → depth 1536/64 = 24 (24 heads), pos_embed (1, 36864, 1536) → max size 192,
# y_embedder 2048 → 1536, context_embedder 4096 → 1536, no ln_q (no qk_norm), no attn2
# (no x_block_self_attn_layers: that is SD3.5-medium), no context_processor.
SD3_MEDIUM_MMDIT = {
    "in_channels": 16,
    "out_channels": 16,
    "patch_size": 2,
    "depth": 24,
    "input_size": None,
    "adm_in_channels": 2048,
    "num_patches": 192 * 192,
    "pos_embed_max_size": 192,
    "context_embedder_config": {"target": "torch.nn.Linear", "params": {"in_features": 4096, "out_features": 1536}},
    "pos_embed_scaling_factor": None,
    "x_block_self_attn_layers": [],
}


def tiny_model(seed: int = 0):
    """The tests' tiny SD3 (depth 2, hidden 128) in float32 on the CPU."""
    return tiny_sd3.model_patcher(seed)


def full_model(seed: int = 0, dtype=torch.float16, config: dict | None = None):
    """SD3-medium-architecture MMDiT (~2B parameters), random ``dtype`` weights built on the GPU.

    The same steps as ``comfy.sd.load_diffusion_model_state_dict`` (inference dtype, manual cast,
    ``get_model``, ``ModelPatcher``), except that the weights are drawn on the load device instead
    of being read from a file."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.supported_models

    model_config = comfy.supported_models.SD3(dict(SD3_MEDIUM_MMDIT if config is None else config))
    load_device, offload_device = mm.get_torch_device(), mm.unet_offload_device()
    manual_cast = mm.unet_manual_cast(dtype, load_device, model_config.supported_inference_dtypes)
    model_config.set_inference_dtype(dtype, manual_cast)
    model = model_config.get_model({}, "", device=load_device)
    seeded_parameters(model.diffusion_model, seed, device=load_device)
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)


def conditioning(seed: int, tokens: int = 154, batch: int = 1):
    """A random SD3-shaped CONDITIONING (tokens (B, 154, 4096), pooled (B, 2048)) on the CPU."""
    return tiny_sd3.conditioning(seed, tokens, batch)


def clean_latent(seed: int, height: int, width: int) -> dict:
    """A stand-in VAE Encode output: an SD3 LATENT (1, 16, H/8, W/8) with image-like statistics."""
    gen = torch.Generator().manual_seed(seed)
    return {"samples": torch.randn(1, 16, height // 8, width // 8, generator=gen) * 0.9 + 0.06}
