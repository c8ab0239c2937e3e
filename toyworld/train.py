"""Train the toy world's models: ``python -m toyworld.train`` (seeded, reproducible, CPU): the
SD3-family toy (steps 1–4), then the Flux toy on the same scenes and VAE (:mod:`.train_flux`), then
toy world v3, the SD3 toy fine-tuned on partial captions (:mod:`.train_v3`); ``--family`` picks one.

1. Text: rebuild the frozen SD3-layout encoders from their seed, record the SHA-256 of their
   weights, and encode every caption of the grammar (270) plus "" once, exactly as ComfyUI's
   CLIPTextEncode does.
2. VAE: ComfyUI's AutoencoderKL (16 channels, 8×) trained on full rendered training scenes
   (pixel L1 + L2, object pixels and their outlines weighted up so shapes survive the 8×
   bottleneck; a deterministic encoder with small latent noise for the decoder, see
   ``train_vae``). Afterwards its latent is
   rescaled in place (the quant convolutions absorb an affine map per channel) so that SD3's
   latent format, (z − 0.0609)·1.5305, maps training latents to zero mean and unit variance.
3. MMDiT: rectified flow exactly as ComfyUI samples SD3 (``ModelSamplingDiscreteFlow``, CONST):
   σ = shift·u / (1 + (shift − 1)·u) with shift 3 and u logit-normal (SD3's training density),
   x_σ = (1 − σ)·x0 + σ·noise, model(x_σ, timestep = 1000·σ) regressed onto noise − x0 (ComfyUI
   computes denoised = x_σ − σ·output). 10 % of captions are replaced by "" for CFG.
   Our choice for speed on a CPU: the context embedder (4096 → hidden) stays frozen at its seeded
   initialisation, so each caption's embedded context is computed once; everything else trains.
4. Write ``toyworld/weights/``: the MMDiT and VAE as fp16 safetensors and ``toyworld.json``
   (configs, the text encoders' checksum, the training record).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from . import model as M
from .scenes import ATTRIBUTES, RESOLUTION, all_captions, caption, render, split
from .training import SEED, encode_mean, fit_flow, images_to_tensor, log, lr_at, save_fp16, scene_pool

SHIFT = 3.0  # comfy.supported_models.SD3.sampling_settings
SCALE, SHIFT_FACTOR = 1.5305, 0.0609  # comfy.latent_formats.SD3
LATENT_NOISE = 0.1  # decoder-side robustness noise, relative to the latent std (see train_vae)


# ---------------------------------------------------------------- text


def encode_captions_of(clip, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens (N, 154, 4096) and pooled (N, 2048) of ``texts``, exactly as CLIPTextEncode computes them."""
    conds, pooleds = zip(*(M.encode(clip, t) for t in texts))
    return torch.cat(conds).float(), torch.cat(pooleds).float()


def encode_captions(clip) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Every caption of the grammar plus "" (last): tokens (N, 154, 4096), pooled (N, 2048)."""
    texts = all_captions() + [""]
    return texts, *encode_captions_of(clip, texts)


# ---------------------------------------------------------------- VAE


def edge_band(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) bool: the two-pixel band around every object outline (inside and out)."""
    ring = np.ones((1, 3, 3), bool)
    return ndimage.binary_dilation(masks, ring) & ~ndimage.binary_erosion(masks, ring)


def pixel_weights(masks: np.ndarray) -> torch.Tensor:
    """(N, 1, H, W) loss weights: 1, +4 on objects, +4 on their outlines (``edge_band``)."""
    objects = torch.from_numpy(masks).float()
    outlines = torch.from_numpy(edge_band(masks)).float()
    return (1.0 + 4.0 * objects + 4.0 * outlines)[:, None]


def reconstruction_loss(recon: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted pixel L1 + L2."""
    err = recon - x
    return (weight * (err.abs() + err.pow(2))).mean()


def init_vae(vae: torch.nn.Module, seed: int) -> None:
    """He-normal convolutions, unit norms, zero biases; each residual branch's last convolution
    starts at zero so every ResnetBlock begins as the identity (ComfyUI's ops skip init)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(vae.named_parameters(), key=lambda kv: kv[0]):
            if p.ndim > 1:
                p.copy_(torch.randn(p.shape, generator=gen) * math.sqrt(2.0 / p[0].numel()))
                if "block" in name and name.endswith("conv2.weight"):
                    p.zero_()
            elif "norm" in name and name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.zero_()


def train_vae(steps: int, batch: int, lr: float, pool: int, seed: int) -> tuple[torch.nn.Module, dict]:
    """Full 64×64 scenes; loss = pixel L1 + L2 weighted ×5 on objects and ×9 on their outlines
    (an 8× bottleneck blurs corners first, and a rounded square reads as a circle).

    Our choice, measured: the encoder is trained deterministically (its posterior mean, which is
    what ComfyUI's VAE.encode returns) and the decoder sees that mean plus Gaussian noise of 0.1 of
    the batch's latent std, so it tolerates imperfect latents from the MMDiT. Sampling from the
    learned posterior instead (logvar starts near 0, so std ≈ 1) swamped the signal: 12 dB after
    200 steps against 20 dB for the deterministic encoder. A small L2 pull on the means (the KL's
    mean term) keeps the latent bounded before it is rescaled to SD3's format.
    """
    torch.manual_seed(seed)
    vae = M.new_vae_model()
    init_vae(vae, seed)
    gen = torch.Generator().manual_seed(seed)
    _, images, masks = scene_pool(pool, seed + 1)
    x_all = images_to_tensor(images)
    weight_all = pixel_weights(masks)
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, 0.99))
    rng = np.random.default_rng(seed + 2)
    start, losses = time.time(), []
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, warmup=50)
        idx = torch.from_numpy(rng.choice(len(x_all), batch, replace=False))
        x, w = x_all[idx], weight_all[idx]
        mean = vae.quant_conv(vae.encoder(x)).chunk(2, dim=1)[0]
        z = mean + LATENT_NOISE * mean.detach().std() * torch.randn(mean.shape, generator=gen)
        recon = vae.decoder(vae.post_quant_conv(z))
        rec = reconstruction_loss(recon, x, w)
        pull = 0.5 * mean.pow(2).mean()
        loss = rec + 1e-4 * pull
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        losses.append(rec.item())
        if step % 50 == 0 or step == steps - 1:
            log(
                f"vae step {step}/{steps} rec {np.mean(losses[-50:]):.4f} "
                f"({(time.time() - start) / (step + 1):.2f} s/step)"
            )
    vae.eval()
    return vae, {
        "steps": steps,
        "batch": batch,
        "lr": lr,
        "pool": pool,
        "latent_noise": LATENT_NOISE,
        "seconds": round(time.time() - start, 1),
        "final_reconstruction_loss": float(np.mean(losses[-50:])),
    }


@torch.no_grad()
def normalise_latent(vae, latents: torch.Tensor) -> dict:
    """Fold a per-channel affine map into quant_conv/post_quant_conv so that the raw latent has
    mean 0.0609 and std 1/1.5305: SD3's process_in then gives zero mean, unit variance."""
    mean = latents.mean(dim=(0, 2, 3))
    std = latents.std(dim=(0, 2, 3)).clamp_min(1e-4)
    a = (1.0 / SCALE) / std
    b = SHIFT_FACTOR - a * mean
    c = len(a)
    q, pq = vae.quant_conv, vae.post_quant_conv
    q.weight[:c] *= a[:, None, None, None]
    q.bias[:c] = a * q.bias[:c] + b
    q.bias[c:] += 2.0 * torch.log(a)  # log-variance follows the scale
    w = pq.weight[:, :, 0, 0]  # (out, in)
    pq.bias -= (w * (b / a)[None]).sum(1)
    pq.weight /= a[None, :, None, None]
    return {"raw_mean": mean.tolist(), "raw_std": std.tolist()}


@torch.no_grad()
def psnr(vae, x: torch.Tensor) -> float:
    """Mean PSNR (dB) of VAE reconstructions of images in [-1, 1], on the 0–255 scale after rounding."""
    recon = torch.cat([vae.decoder(vae.post_quant_conv(encode_mean(vae, x[i : i + 64]))) for i in range(0, len(x), 64)])
    a = ((x + 1) * 127.5).round()
    b = ((recon.clamp(-1, 1) + 1) * 127.5).round()
    mse = (a - b).pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return float((10 * torch.log10(255.0**2 / mse)).mean())


# ---------------------------------------------------------------- MMDiT


def sample_sigmas(n: int, gen: torch.Generator) -> torch.Tensor:
    """SD3's logit-normal density on u, mapped through ComfyUI's shift-3 flow schedule."""
    u = torch.sigmoid(torch.randn(n, generator=gen))
    return SHIFT * u / (1 + (SHIFT - 1) * u)


def train_mmdit(
    x0_all: torch.Tensor,
    caption_idx: torch.Tensor,
    context: torch.Tensor,
    pooled: torch.Tensor,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    net: torch.nn.Module | None = None,
    captions=None,
) -> tuple[torch.nn.Module, dict]:
    """x0_all: (N, 16, h, w) latents after process_in; caption_idx: (N,) rows of context/pooled
    (the last row is ""); context: (C, 154, 4096); pooled: (C, 2048). ``net``: start from this MMDiT
    (default: a new one); ``captions``: see ``training.fit_flow``."""
    torch.manual_seed(seed)
    net = M.new_mmdit() if net is None else net
    embedder = net.context_embedder
    with torch.no_grad():  # frozen context embedder: embed every caption once
        embedded = torch.cat([embedder(context[i : i + 16]) for i in range(0, len(context), 16)])
    for p in embedder.parameters():
        p.requires_grad_(False)
    net.context_embedder = torch.nn.Identity()

    def predict(x_t, sigma, cap, gen):
        return net(x_t, sigma * 1000.0, y=pooled[cap], context=embedded[cap])

    empty = len(context) - 1
    record = fit_flow(
        net, predict, sample_sigmas, x0_all, caption_idx, empty, steps, batch, lr, seed, "mmdit", 50, captions
    )
    net.context_embedder = embedder
    return net, record


# ---------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vae-steps", type=int, default=1500)
    ap.add_argument("--vae-batch", type=int, default=8)
    ap.add_argument("--mmdit-steps", type=int, default=5000)
    ap.add_argument("--mmdit-batch", type=int, default=32)
    ap.add_argument(
        "--text-cache",
        type=Path,
        default=None,
        help="reuse the caption embeddings from this file when the encoders' checksum matches "
        "(saves the text step on reruns; the embeddings are the same either way)",
    )
    ap.add_argument("--pool", type=int, default=4096, help="training scenes encoded for the MMDiT")
    ap.add_argument(
        "--family",
        choices=("all", "sd3", "flux", "sd3v3"),
        default="all",
        help="which toy model: the SD3-family one (VAE + MMDiT), the Flux one (reuses the VAE in --out), "
        "toy world v3 (the SD3 toy fine-tuned on partial captions; reuses the SD3 toy in --out), or all three",
    )
    ap.add_argument("--flux-steps", type=int, default=15000)
    ap.add_argument("--flux-batch", type=int, default=32)
    ap.add_argument("--v3-steps", type=int, default=7000)
    ap.add_argument("--v3-decoder-steps", type=int, default=1200)
    ap.add_argument(
        "--v3-parts", default="mmdit,decoder", help="toy world v3's parts to train (the record keeps the others)"
    )
    ap.add_argument("--out", type=Path, default=M.WEIGHTS)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    M.ensure_comfy()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.family in ("all", "sd3"):
        train_sd3(args)
    if args.family in ("all", "flux"):
        from .train_flux import train_stage

        train_stage(args.out, args.pool, args.flux_steps, args.flux_batch, args.threads)
    if args.family in ("all", "sd3v3"):
        from .train_v3 import train_stage as train_v3

        parts = tuple(p for p in args.v3_parts.split(",") if p)
        train_v3(args.out, args.pool, args.v3_steps, args.mmdit_batch, args.threads, args.v3_decoder_steps, parts)
    return 0


def train_sd3(args) -> None:
    """Text, VAE and MMDiT of the SD3-family toy (steps 1–4 of the module docstring)."""
    torch.manual_seed(SEED)
    t0 = time.time()

    log("text encoders: rebuilding from seed and encoding the caption grammar")
    clip = M.build_text_encoders()
    te_sha = M.parameters_sha256(clip.cond_stage_model)
    with torch.inference_mode():
        te_probes = M.probe_fingerprint(M.clip_encoder(clip))  # what the loader checks the rebuilt encoders by
    cached = torch.load(args.text_cache) if args.text_cache and args.text_cache.exists() else None
    if cached is not None and cached["sha256"] == te_sha:
        texts, context, pooled = cached["texts"], cached["context"], cached["pooled"]
    else:
        texts, context, pooled = encode_captions(clip)
        if args.text_cache:
            torch.save({"sha256": te_sha, "texts": texts, "context": context, "pooled": pooled}, args.text_cache)
    del clip
    t_text = time.time() - t0
    log(f"text: {len(texts)} captions in {t_text:.0f} s; encoders sha256 {te_sha[:16]}…")

    vae, vae_record = train_vae(args.vae_steps, args.vae_batch, 2e-3, pool=2048, seed=SEED + 10)
    scenes, images, _ = scene_pool(args.pool, SEED + 20)
    x = images_to_tensor(images)
    raw = encode_mean(vae, x)
    vae_record["latent"] = normalise_latent(vae, raw)
    x0_all = (encode_mean(vae, x) - SHIFT_FACTOR) * SCALE
    log(f"latents for the MMDiT: {tuple(x0_all.shape)}, mean {float(x0_all.mean()):.3f} std {float(x0_all.std()):.3f}")
    val = split("val")
    vae_record["psnr_val_db"] = psnr(vae, images_to_tensor(np.stack([render(s) for s in val])))
    log(f"VAE PSNR on the val split: {vae_record['psnr_val_db']:.2f} dB")

    index = {t: i for i, t in enumerate(texts)}
    caption_idx = torch.tensor([index[caption(s)] for s in scenes])
    net, mmdit_record = train_mmdit(
        x0_all, caption_idx, context, pooled, args.mmdit_steps, args.mmdit_batch, 1e-3, seed=SEED + 40
    )

    save_fp16(net, args.out / M.MMDIT_FILE)
    save_fp16(vae, args.out / M.VAE_FILE)
    meta = {
        "resolution": RESOLUTION,
        "attributes": {k: list(v) for k, v in ATTRIBUTES.items()},
        "mmdit_config": M.MMDIT_CONFIG,
        "vae_ddconfig": M.VAE_DDCONFIG,
        "text_encoders": {
            "config": M.TEXT_ENCODER_CONFIG,
            "seed": M.TEXT_ENCODER_SEED,
            "sha256": te_sha,
            "probes": te_probes,
            "torch": torch.__version__,
        },
        "training": {
            "seed": SEED,
            "threads": args.threads,
            "text_seconds": round(t_text, 1),
            "vae": vae_record,
            "mmdit": mmdit_record,
            "total_seconds": round(time.time() - t0, 1),
        },
    }
    (args.out / M.META_FILE).write_text(json.dumps(meta, indent=1))
    log(f"done in {time.time() - t0:.0f} s → {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
