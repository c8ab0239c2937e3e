"""A tiny SD3 that real ComfyUI treats as SD3 — random weights, built with ComfyUI's own classes.

There are no SD3 weights on these machines. These builders give the real SD3 code paths
(MMDiT, SD3 latent format, flow sampling with shift 3, CLIP-L + CLIP-G + T5 tokenizers and the
SD3 conditioning layout: 4096-wide tokens, 2048-wide pooled) at a size a CPU runs in milliseconds.
Every parameter is initialised by the toy world's ``seeded_parameters`` (ComfyUI's ops skip init).

Import only after ComfyUI's ``comfy`` package is importable (and ``--cpu`` is set on CPU machines).
"""

from __future__ import annotations

import torch

from .model import fill_saved_buffers, seeded_parameters

# depth 2 → hidden 128 (64·depth); context 4096 → 128; pooled 2048.
TINY_MMDIT = {
    "in_channels": 16,
    "out_channels": 16,
    "patch_size": 2,
    "depth": 2,
    "adm_in_channels": 2048,
    "pos_embed_max_size": 64,
    "num_patches": 64 * 64,
    "context_embedder_config": {"target": "torch.nn.Linear", "params": {"in_features": 4096, "out_features": 128}},
    "pos_embed_scaling_factor": None,
}

# Text encoders keep the SD3 widths (768 / 1280 / 4096) so the conditioning layout is real,
# but one layer each and tiny MLPs/heads.
TINY_TE_CONFIG = {
    "clip_l_model_config": {"num_hidden_layers": 3, "intermediate_size": 32, "num_attention_heads": 2},
    "clip_g_model_config": {"num_hidden_layers": 3, "intermediate_size": 32, "num_attention_heads": 2},
    "t5xxl_model_config": {"num_layers": 1, "d_ff": 16, "num_heads": 2, "d_kv": 8},
}

TINY_VAE_CONFIG = {
    "double_z": True,
    "z_channels": 16,
    "resolution": 256,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 32,
    "ch_mult": [1, 1, 1, 1],
    "num_res_blocks": 1,
    "attn_resolutions": [],
    "dropout": 0.0,
}


def mmdit_state_dict(seed: int = 0, config: dict | None = None) -> dict[str, torch.Tensor]:
    """A random MMDiT state dict in ComfyUI's SD3 key format (loads through UNETLoader)."""
    import comfy.supported_models

    cfg = dict(TINY_MMDIT if config is None else config)
    model_config = comfy.supported_models.SD3(cfg)
    model = model_config.get_model({}, device="cpu")
    seeded_parameters(model.diffusion_model, seed)
    fill_saved_buffers(model.diffusion_model)  # pos_embed: ComfyUI allocates it uninitialised
    return {k: v.contiguous() for k, v in model.diffusion_model.state_dict().items()}


def model_patcher(seed: int = 0, config: dict | None = None, dtype=torch.float32):
    """A tiny SD3 MODEL (ModelPatcher) as UNETLoader would return it."""
    import comfy.sd

    sd = mmdit_state_dict(seed, config)
    return comfy.sd.load_diffusion_model_state_dict(sd, model_options={"dtype": dtype})


def clip(seed: int = 0):
    """A tiny SD3 CLIP object (CLIP-L + CLIP-G + T5 with SD3's real tokenizers)."""
    import comfy.sd
    import comfy.text_encoders.sd3_clip as sd3_clip

    class Target:
        params = {}
        clip = sd3_clip.sd3_clip(clip_l=True, clip_g=True, t5=True, dtype_t5=torch.float32)
        tokenizer = sd3_clip.SD3Tokenizer

    options = {**TINY_TE_CONFIG, "dtype": torch.float32}
    te = comfy.sd.CLIP(Target(), model_options=options)
    seeded_parameters(te.cond_stage_model, seed + 1)
    return te


def vae(seed: int = 0):
    """A tiny 16-channel KL VAE with SD3's 8× downscale (SD3 latent format)."""
    import comfy.sd
    from comfy.ldm.models.autoencoder import AutoencoderKL

    model = AutoencoderKL(ddconfig=dict(TINY_VAE_CONFIG), embed_dim=16)
    seeded_parameters(model, seed + 2)
    config = {"params": {"ddconfig": dict(TINY_VAE_CONFIG), "embed_dim": 16}}
    out = comfy.sd.VAE(sd=model.state_dict(), config=config)
    out.latent_channels = 16  # the config path leaves ComfyUI's SD1 default of 4
    return out


def conditioning(seed: int, tokens: int = 154, batch: int = 1):
    """A random SD3-shaped CONDITIONING: [[tensor(B, tokens, 4096), {pooled_output: (B, 2048)}]]."""
    gen = torch.Generator().manual_seed(seed)
    return [
        [torch.randn(batch, tokens, 4096, generator=gen), {"pooled_output": torch.randn(batch, 2048, generator=gen)}]
    ]
