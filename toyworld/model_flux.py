"""The toy world's second architecture: ComfyUI's Flux class, small enough for a CPU.

The same scenes, captions and VAE as the SD3-family toy (:mod:`.model`); only the diffusion model
and its text encoders differ, so an edit can be compared across the two architectures.

- Flux: ComfyUI's ``comfy.ldm.flux.model.Flux`` as ``comfy.supported_models.Flux`` (Flux.1 dev's
  config class) builds it: two double-stream and two single-stream blocks, hidden 192, 3 heads
  (RoPE axes 16 + 24 + 24 of 64), patch 2, T5 tokens in (4096 wide, at least 256 of them), CLIP-L
  pooled (768) and a guidance embedding. ComfyUI's detection hard-codes Flux's full sizes, so the
  loader builds it through the config class (:func:`model_patcher`), the way ``tiny_families`` does.
- Guidance: Flux.1 dev is guidance-distilled; a toy trained from scratch is not. Our choice: the
  guidance value is drawn uniformly from GUIDANCE_RANGE during training, so the model learns to
  ignore it, and 10 % empty captions give it a real classifier-free guidance (cfg > 1) like
  the SD3 toy. This makes the toy a "de-distilled" Flux: its cfg behaves as SD3's does, which real
  Flux.1 dev's does not (the family's template runs cfg 1 with FluxGuidance).
- Text encoders: CLIP-L + T5-XXL as ComfyUI's ``flux_clip`` builds them with Flux's real tokenizers
  and widths, tiny and frozen at a seeded random initialisation (the same sizes as the SD3 toy's),
  checked at load by the embeddings of fixed probe captions as the SD3 toy's are.
- VAE: the SD3 toy's, its latent rescaled in place (:func:`flux_vae_state_dict`) so that Flux's
  latent format, (z − 0.1159)·0.3611, maps a scene to the very latent SD3's format gives it.
"""

from __future__ import annotations

import math

import torch

from . import model as M

FLUX_FILE = "toyworld_flux.safetensors"
FLUX_META_FILE = "toyworld_flux.json"

FLUX_CONFIG = {
    "image_model": "flux",
    "guidance_embed": True,
    "in_channels": 16,
    "out_channels": 16,
    "patch_size": 2,
    "vec_in_dim": 768,
    "context_in_dim": 4096,
    "hidden_size": 192,
    "mlp_ratio": 4.0,
    "num_heads": 3,
    "depth": 2,
    "depth_single_blocks": 2,
    "axes_dim": [16, 24, 24],
    "theta": 10000,
    "qkv_bias": True,
}

TEXT_ENCODER_CONFIG = {
    "clip_l_model_config": M.TEXT_ENCODER_CONFIG["clip_l_model_config"],
    "t5xxl_model_config": M.TEXT_ENCODER_CONFIG["t5xxl_model_config"],
}
TEXT_ENCODER_SEED = 4321
GUIDANCE_RANGE = (1.0, 5.0)

SD3_FORMAT = (1.5305, 0.0609)  # comfy.latent_formats.SD3: (scale, shift)
FLUX_FORMAT = (0.3611, 0.1159)  # comfy.latent_formats.Flux


def model_config():
    """``comfy.supported_models.Flux`` at the toy's size."""
    M.ensure_comfy()
    import comfy.supported_models

    return comfy.supported_models.Flux(_config_copy(FLUX_CONFIG))


def _config_copy(value: dict) -> dict:
    """A fresh copy (lists too): ComfyUI may edit the config it is given; FLUX_CONFIG stays as written."""
    return {k: list(v) if isinstance(v, list) else v for k, v in value.items()}


def new_flux() -> torch.nn.Module:
    """ComfyUI's Flux in the toy configuration, initialised as DiT does: Xavier linears, zero biases,
    zero modulation and a zero final layer (each block starts as the identity)."""
    M.ensure_comfy()
    import comfy.ops
    from comfy.ldm.flux.model import Flux

    net = Flux(**_config_copy(FLUX_CONFIG), dtype=torch.float32, device="cpu", operations=comfy.ops.disable_weight_init)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in sorted(net.named_parameters(), key=lambda kv: kv[0]):
            if p.ndim == 2:
                bound = math.sqrt(6.0 / (p.shape[0] + p.shape[1]))
                p.copy_(torch.rand(p.shape, generator=gen) * 2 * bound - bound)
            elif name.endswith("scale"):  # QK RMSNorm
                p.fill_(1.0)
            else:
                p.zero_()
        for name, module in net.named_modules():
            if name.endswith(("_mod", "modulation", "adaLN_modulation")) or name == "final_layer.linear":
                for p in module.parameters():
                    p.zero_()
        for embedder in (net.time_in, net.guidance_in, net.vector_in):
            for p in embedder.parameters():
                if p.ndim == 2:
                    p.normal_(0, 0.02, generator=gen)
    return net


def build_text_encoders(expected: dict | None = None):
    """The frozen Flux-layout text encoders (CLIP-L + T5) as a ComfyUI CLIP, rebuilt from their seed
    and, given the weights' record, checked by its probe fingerprints (``model.verify_probes``)."""
    M.ensure_comfy()
    import comfy.sd
    import comfy.text_encoders.flux as flux_te

    class Target:
        params = {}
        clip = flux_te.flux_clip(dtype_t5=torch.float32)
        tokenizer = flux_te.FluxTokenizer

    clip = comfy.sd.CLIP(Target(), model_options={**TEXT_ENCODER_CONFIG, "dtype": torch.float32})
    M.seeded_parameters(clip.cond_stage_model, TEXT_ENCODER_SEED)
    if expected is not None:
        with torch.inference_mode():
            found = M.probe_fingerprint(M.clip_encoder(clip), tuple(expected["probes"]))
        M.verify_probes(found, expected["probes"], f"the Flux text encoders rebuilt from seed {TEXT_ENCODER_SEED}")
    return clip


def latent_map() -> tuple[float, float]:
    """(a, b) with z_flux = a·z_sd3 + b: the same processed latent under Flux's format as under SD3's."""
    (s_sd3, m_sd3), (s_flux, m_flux) = SD3_FORMAT, FLUX_FORMAT
    a = s_sd3 / s_flux
    return a, m_flux - a * m_sd3


def flux_vae_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The SD3 toy's VAE weights with its latent mapped to Flux's format (a copy; float32).

    The encoder's ``quant_conv`` emits a·z + b (the mean's channels; log-variances move by 2·log a)
    and ``post_quant_conv`` undoes it, so decode(encode(x)) is unchanged and process_in gives the
    latent the SD3 toy's diffusion model sees."""
    a, b = latent_map()
    out = {k: v.float().clone() for k, v in sd.items()}
    c = out["post_quant_conv.weight"].shape[1]
    qw, qb = out["quant_conv.weight"], out["quant_conv.bias"]
    qw[:c] *= a
    qb[:c] = a * qb[:c] + b
    qb[c:] += 2.0 * math.log(a)
    pw, pb = out["post_quant_conv.weight"], out["post_quant_conv.bias"]
    pb -= pw[:, :, 0, 0].sum(1) * (b / a)
    pw /= a
    return out


def model_patcher(state_dict: dict[str, torch.Tensor], dtype=torch.float32):
    """The trained toy Flux as a ModelPatcher (what UNETLoader returns for Flux.1 dev): ComfyUI's
    Flux model with Flux.1 dev's model sampling and latent format."""
    return M.patcher_from_config(model_config(), state_dict, dtype)
