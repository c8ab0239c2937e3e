"""What both toy trainers share (:mod:`.train`, the SD3-family toy; :mod:`.train_flux`, the Flux toy):
the seed, the training scenes, the learning-rate schedule, the rectified-flow training loop, the
VAE's posterior means, fp16 saving."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
import torch.nn.functional as F

from .scenes import objects_mask, random_scene, render

SEED = 0
CFG_DROPOUT = 0.1  # captions replaced by "" so that classifier-free guidance works


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 → (N, 3, H, W) in [-1, 1] (ComfyUI's VAE input range)."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def scene_pool(n: int, seed: int) -> tuple[list, np.ndarray, np.ndarray]:
    """n random training scenes, their renders (N, H, W, 3) and object masks (N, H, W)."""
    rng = np.random.default_rng(seed)
    scenes = [random_scene(rng) for _ in range(n)]
    images = np.stack([render(s) for s in scenes])
    masks = np.stack([objects_mask(s) for s in scenes])
    return scenes, images, masks


def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 10 % of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def fit_flow(
    net: torch.nn.Module,
    predict,
    sample_sigmas,
    x0_all: torch.Tensor,
    caption_idx: torch.Tensor,
    empty: int,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    name: str,
    log_every: int = 100,
    captions=None,
) -> dict:
    """Rectified flow on (N, C, h, w) latents ``x0_all`` captioned by ``caption_idx`` (``empty``: the
    row of ""): x_σ = (1 − σ)·x0 + σ·noise, ``predict(x_σ, σ, captions, gen)`` regressed onto
    noise − x0 (ComfyUI computes denoised = x_σ − σ·output). CFG_DROPOUT of the captions become "",
    AdamW with warm-up and cosine decay, gradients clipped at 1, EMA 0.999 copied into ``net`` at the
    end. ``gen`` is the loop's generator, seeded ``seed + 1``, for whatever else a model draws.
    ``captions(idx, gen)``, when given, picks each drawn latent's caption row instead of
    ``caption_idx[idx]`` (toy world v3's partial captions). Returns the training record."""
    params = [p for p in net.parameters() if p.requires_grad]
    ema = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(seed + 1)
    start, losses = time.time(), []
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, warmup=100)
        idx = torch.randint(0, len(x0_all), (batch,), generator=gen)
        x0 = x0_all[idx]
        cap = caption_idx[idx].clone() if captions is None else captions(idx, gen)
        cap[torch.rand(batch, generator=gen) < CFG_DROPOUT] = empty
        noise = torch.randn(x0.shape, generator=gen)
        sigma = sample_sigmas(batch, gen)
        s = sigma[:, None, None, None]
        x_t = (1 - s) * x0 + s * noise
        loss = F.mse_loss(predict(x_t, sigma, cap, gen), noise - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.lerp_(p.detach(), 1 - decay)
        losses.append(loss.item())
        if step % log_every == 0 or step == steps - 1:
            log(
                f"{name} step {step}/{steps} loss {np.mean(losses[-log_every:]):.4f} "
                f"({(time.time() - start) / (step + 1):.2f} s/step)"
            )
    with torch.no_grad():
        for e, p in zip(ema, params):
            p.copy_(e)
    return {
        "steps": steps,
        "batch": batch,
        "lr": lr,
        "seconds": round(time.time() - start, 1),
        "final_loss": float(np.mean(losses[-100:])),
        "ema": 0.999,
    }


@torch.no_grad()
def encode_mean(vae, x: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """Posterior means (raw latents, before the latent format's process_in) of images in [-1, 1]."""
    out = [vae.quant_conv(vae.encoder(x[i : i + chunk])).chunk(2, dim=1)[0] for i in range(0, len(x), chunk)]
    return torch.cat(out)


def save_fp16(module: torch.nn.Module, path: Path) -> None:
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in module.state_dict().items()}
    safetensors.torch.save_file(sd, str(path))
