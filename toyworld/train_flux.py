"""Train the toy world's Flux (:mod:`.model_flux`): the stage ``python -m toyworld.train`` runs after
the SD3 toy's, on the same training scenes and with the same VAE.

1. Text: rebuild the frozen Flux-layout encoders (CLIP-L + T5) from their seed and encode every
   caption of the grammar plus "" as ComfyUI's CLIPTextEncode does: (256, 4096) T5 tokens, pooled
   CLIP-L (768).
2. Latents: the SD3 toy's VAE with its latent mapped to Flux's format
   (``model_flux.flux_vae_state_dict``); the scenes' latents after Flux's process_in.
3. Flux: rectified flow as ComfyUI samples Flux.1 dev (``ModelSamplingFlux``, shift 1.15:
   σ = e^1.15·u / (1 + (e^1.15 − 1)·u), u logit-normal), x_σ = (1 − σ)·x0 + σ·noise, the model
   called with timestep σ (Flux scales it by 1000 itself) and regressed onto noise − x0; the
   guidance value drawn from ``model_flux.GUIDANCE_RANGE`` (the model learns to ignore it); 10 %
   empty captions. EMA 0.999.

Two choices of ours make a CPU enough, both measured where they are made:
- Compact text. A toy caption is at most 11 T5 tokens; the other ≥ 245 are padding whose
  embeddings are nearly equal, and Flux gives every text token the same position. So training sees
  the first KEEP_TOKENS tokens and one token standing for the rest (their mean), whose attention
  logit is raised by log(count) through an additive mask: the attention weight of all those pads
  together. Recorded: the relative difference from the full 256-token forward (``compact_error``).
  Sampling in ComfyUI always runs the full 256 tokens.
- Flux's blocks add residuals in place (``txt += …``, ``x += …``), which autograd refuses once the
  tensor was saved for backward. Training runs them under ``saved_tensors_hooks`` that store a
  copy of every saved tensor (:func:`trainable`): ComfyUI's classes unchanged, the gradients exact
  (checked against finite differences in the unit tests).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path

import safetensors.torch
import torch

from . import model as M
from . import model_flux as MF
from .scenes import all_captions, caption
from .training import SEED, encode_mean, fit_flow, images_to_tensor, log, save_fp16, scene_pool

KEEP_TOKENS = 12
FLUX_SHIFT = 1.15  # comfy.model_sampling.ModelSamplingFlux's default (Flux.1 dev's sampling_settings)


@contextlib.contextmanager
def trainable():
    """Autograd through modules that update tensors in place after saving them: each saved tensor is
    stored as a copy taken when it is saved, which is the value backward needs."""
    with torch.autograd.graph.saved_tensors_hooks(lambda t: t.clone(), lambda t: t):
        yield


def encode_captions(clip, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens (N, 256, 4096), pooled (N, 768)) for ``texts`` as CLIPTextEncode computes them."""
    conds, pooleds = zip(*(M.encode(clip, t) for t in texts))
    return torch.cat(conds).float(), torch.cat(pooleds).float()


def compact(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, T, D) tokens → (N, KEEP_TOKENS + 1, D) and the additive attention mask (L, L) over text +
    the 16 image tokens of an 8×8 latent: the last text token, the mean of tokens KEEP_TOKENS…T−1,
    gets log(T − KEEP_TOKENS) added to its logit in every query row."""
    n = KEEP_TOKENS
    short = torch.cat([tokens[:, :n], tokens[:, n:].mean(1, keepdim=True)], 1)
    length = n + 1 + 16
    mask = torch.zeros(length, length)
    mask[:, n] = math.log(tokens.shape[1] - n)
    return short, mask


def sample_sigmas(n: int, gen: torch.Generator) -> torch.Tensor:
    """Logit-normal u through ComfyUI's Flux time shift (``flux_time_shift(1.15, 1, u)``)."""
    u = torch.sigmoid(torch.randn(n, generator=gen))
    s = math.exp(FLUX_SHIFT)
    return s * u / (1 + (s - 1) * u)


@torch.no_grad()
def compact_error(net, tokens: torch.Tensor, pooled: torch.Tensor, seed: int = 0) -> float:
    """Relative L2 difference of the model's output on compact text from the full-text forward."""
    gen = torch.Generator().manual_seed(seed)
    n = len(tokens)
    x = torch.randn(n, 16, 8, 8, generator=gen)
    sigma = torch.rand(n, generator=gen)
    guidance = torch.full((n,), 3.5)
    full = net(x, sigma, tokens, y=pooled, guidance=guidance)
    short, mask = compact(tokens)
    out = net(x, sigma, short, y=pooled, guidance=guidance, attention_mask=mask)
    return float((out - full).norm() / full.norm())


def train_flux(
    x0_all: torch.Tensor,
    caption_idx: torch.Tensor,
    tokens: torch.Tensor,
    pooled: torch.Tensor,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
) -> tuple[torch.nn.Module, dict]:
    """x0_all: (N, 16, 8, 8) latents after Flux's process_in; caption_idx: (N,) rows of tokens/pooled
    (the last row is ""); tokens: (C, 256, 4096); pooled: (C, 768)."""
    torch.manual_seed(seed)
    net = MF.new_flux()
    short, mask = compact(tokens)
    txt_in = net.txt_in  # frozen at its seeded initialisation, as the SD3 toy's context embedder
    with torch.no_grad():
        embedded = txt_in(short)
    for p in txt_in.parameters():
        p.requires_grad_(False)
    net.txt_in = torch.nn.Identity()
    low, high = MF.GUIDANCE_RANGE

    def predict(x_t, sigma, cap, gen):
        guidance = low + (high - low) * torch.rand(len(cap), generator=gen)
        with trainable():
            return net(x_t, sigma, embedded[cap], y=pooled[cap], guidance=guidance, attention_mask=mask)

    empty = len(tokens) - 1
    record = fit_flow(net, predict, sample_sigmas, x0_all, caption_idx, empty, steps, batch, lr, seed, "flux")
    net.txt_in = txt_in
    probe = torch.tensor([0, len(tokens) // 2, empty])
    return net, {
        **record,
        "guidance_range": list(MF.GUIDANCE_RANGE),
        "keep_tokens": KEEP_TOKENS,
        "compact_error": compact_error(net, tokens[probe], pooled[probe]),
    }


def train_stage(out: Path, pool: int, steps: int, batch: int, threads: int) -> dict:
    """The Flux stage of ``python -m toyworld.train``: reads the VAE from ``out`` (the SD3 stage has
    just written it, or it is the committed one), writes the Flux weights and their record there."""
    t0 = time.time()
    log("flux text encoders: rebuilding from seed and encoding the caption grammar")
    clip = MF.build_text_encoders()
    with torch.inference_mode():
        probes = M.probe_fingerprint(M.clip_encoder(clip))
        texts = all_captions() + [""]
        tokens, pooled = encode_captions(clip, texts)
    del clip
    t_text = time.time() - t0
    log(f"flux text: {len(texts)} captions in {t_text:.0f} s")

    vae_file = out / M.VAE_FILE
    if not vae_file.exists():
        raise FileNotFoundError(f"the Flux stage needs the toy VAE {vae_file}: train the SD3 stage first")
    vae = M.new_vae_model()
    raw = {k: v.float() for k, v in safetensors.torch.load_file(str(vae_file)).items()}
    vae.load_state_dict(MF.flux_vae_state_dict(raw))
    vae.eval()
    scenes, images, _ = scene_pool(pool, SEED + 20)  # the SD3 stage's training scenes
    scale, shift = MF.FLUX_FORMAT
    x0_all = (encode_mean(vae, images_to_tensor(images)) - shift) * scale
    log(f"flux latents: {tuple(x0_all.shape)}, mean {float(x0_all.mean()):.3f} std {float(x0_all.std()):.3f}")
    index = {t: i for i, t in enumerate(texts)}
    caption_idx = torch.tensor([index[caption(s)] for s in scenes])
    net, record = train_flux(x0_all, caption_idx, tokens, pooled, steps, batch, 1e-3, seed=SEED + 60)
    save_fp16(net, out / MF.FLUX_FILE)
    meta = {
        "flux_config": MF.FLUX_CONFIG,
        "vae": {"file": M.VAE_FILE, "latent_map": list(MF.latent_map())},
        "text_encoders": {
            "config": MF.TEXT_ENCODER_CONFIG,
            "seed": MF.TEXT_ENCODER_SEED,
            "probes": probes,
            "torch": torch.__version__,
        },
        "training": {
            "seed": SEED,
            "threads": threads,
            "pool": pool,
            "text_seconds": round(t_text, 1),
            "flux": record,
            "total_seconds": round(time.time() - t0, 1),
        },
    }
    (out / MF.FLUX_META_FILE).write_text(json.dumps(meta, indent=1))
    log(f"flux done in {time.time() - t0:.0f} s (compact-text error {record['compact_error']:.1e}) → {out}")
    return meta
