"""What both toy trainers share (:mod:`.train`, the SD3-family toy; :mod:`.train_flux`, the Flux toy):
the seed, the training scenes, the learning-rate schedule, the VAE's posterior means, fp16 saving."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import safetensors.torch
import torch

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


@torch.no_grad()
def encode_mean(vae, x: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """Posterior means (raw latents, before the latent format's process_in) of images in [-1, 1]."""
    out = [vae.quant_conv(vae.encoder(x[i : i + chunk])).chunk(2, dim=1)[0] for i in range(0, len(x), chunk)]
    return torch.cat(out)


def save_fp16(module: torch.nn.Module, path: Path) -> None:
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in module.state_dict().items()}
    safetensors.torch.save_file(sd, str(path))
