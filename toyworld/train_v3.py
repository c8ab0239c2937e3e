"""Toy world v3: the SD3-family toy fine-tuned on partial captions (``python -m toyworld.train --family sd3v3``).

Why: the v2 toy was trained on full captions and "" only, so a prompt that names one attribute
("two circles", "large circle": the edit benchmark's attribute prompts) was a prompt it had never
seen, and an image-side drive built from it pointed nowhere useful. v3 continues the v2 MMDiT
(same VAE, text encoders and training scenes) on captions that name a random part of the scene:

- ``P_FULL`` of the draws keep the full caption (what v2 learnt, so it is not forgotten);
- ``P_ATTRIBUTE`` name what an edit kind's attribute prompt names (``edits.ATTRIBUTE_NAMED``);
- the rest name a uniformly random non-empty subset of the five attributes;
- then ``training.CFG_DROPOUT`` of all captions become "" as before.

A partial caption leaves the rest of the scene to the model, so the positions (never named by any
caption) and whatever a caption omits are content that only the image carries: the regime the
paper's image side is for.

Then the VAE's *decoder* trains further with the encoder frozen (:func:`finetune_decoder`): the
latents every toy model was trained on stay bit for bit, and the round trip keeps more of the
shapes. Writes ``model.V3_MMDIT_FILE``, ``model.V3_VAE_FILE`` and ``model.V3_META_FILE``.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import numpy as np
import safetensors.torch
import torch

from . import model as M
from .edits import ATTRIBUTE_NAMED
from .train import (
    LATENT_NOISE,
    SCALE,
    SHIFT_FACTOR,
    encode_captions_of,
    pixel_weights,
    psnr,
    reconstruction_loss,
    train_mmdit,
)
from .scenes import ATTRIBUTES, RESOLUTION, all_partial_captions, partial_caption, render, split
from .training import SEED, encode_mean, images_to_tensor, log, lr_at, save_fp16, scene_pool

P_FULL = 0.35
P_ATTRIBUTE = 0.35
LR = 5e-4  # half the v2 peak: a continuation, not a new model
DECODER_LR = 5e-4
PARTS = ("mmdit", "decoder")

# Every non-empty subset of the attributes; the last is all five (the full caption).
SUBSETS: tuple[frozenset[str], ...] = tuple(
    frozenset(c) for r in range(1, len(ATTRIBUTES) + 1) for c in itertools.combinations(ATTRIBUTES, r)
)
_ATTRIBUTE_SUBSETS = tuple(SUBSETS.index(n) for n in ATTRIBUTE_NAMED.values())


def caption_table(scenes, index: dict[str, int]) -> torch.Tensor:
    """(N, len(SUBSETS)) long: row of each scene's partial caption for each subset."""
    return torch.tensor([[index[partial_caption(s, n)] for n in SUBSETS] for s in scenes])


def partial_sampler(table: torch.Tensor):
    """``captions(idx, gen)`` for ``training.fit_flow``: full / attribute-prompt / random subsets."""
    full = len(SUBSETS) - 1
    attribute = torch.tensor(_ATTRIBUTE_SUBSETS)

    def captions(idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n = len(idx)
        u = torch.rand(n, generator=gen)
        random_subset = torch.randint(0, len(SUBSETS), (n,), generator=gen)
        attribute_subset = attribute[torch.randint(0, len(attribute), (n,), generator=gen)]
        subset = torch.where(u < P_FULL + P_ATTRIBUTE, attribute_subset, random_subset)
        subset = torch.where(u < P_FULL, torch.full_like(subset, full), subset)
        return table[idx, subset]

    return captions


def _load(path: Path) -> dict[str, torch.Tensor]:
    return {k: v.float() for k, v in safetensors.torch.load_file(str(path)).items()}


def finetune_decoder(vae, steps: int, batch: int, pool: int, seed: int) -> dict:
    """Train the VAE's decoder further, its encoder frozen: the latents (so every toy model trained
    on them) stay exactly as they are, only decoding improves. The v2 VAE saw 12,000 scenes
    (1,500 steps of 8); shapes at 8× downscale were its weak point (a rounded square reads as a
    circle). Same loss and latent noise as ``train.train_vae``."""
    torch.manual_seed(seed)
    for p in vae.encoder.parameters():
        p.requires_grad_(False)
    for p in vae.quant_conv.parameters():
        p.requires_grad_(False)
    params = [*vae.post_quant_conv.parameters(), *vae.decoder.parameters()]
    _, images, masks = scene_pool(pool, seed + 1)
    x_all = images_to_tensor(images)
    mean_all = encode_mean(vae, x_all)
    weight_all = pixel_weights(masks)
    opt = torch.optim.AdamW(params, lr=DECODER_LR, weight_decay=0.0, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(seed + 2)
    start, losses = time.time(), []
    vae.train()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, DECODER_LR, warmup=50)
        idx = torch.randint(0, len(x_all), (batch,), generator=gen)
        mean = mean_all[idx]
        z = mean + LATENT_NOISE * mean.std() * torch.randn(mean.shape, generator=gen)
        loss = reconstruction_loss(vae.decoder(vae.post_quant_conv(z)), x_all[idx], weight_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == steps - 1:
            log(f"decoder step {step}/{steps} rec {sum(losses[-50:]) / len(losses[-50:]):.4f}")
    vae.eval()
    return {
        "steps": steps,
        "batch": batch,
        "lr": DECODER_LR,
        "pool": pool,
        "latent_noise": LATENT_NOISE,
        "seconds": round(time.time() - start, 1),
        "final_reconstruction_loss": sum(losses[-50:]) / len(losses[-50:]),
    }


def train_stage(
    out: Path, pool: int, steps: int, batch: int, threads: int, decoder_steps: int = 1200, parts=PARTS
) -> None:
    """Toy world v3 from the SD3 toy in ``out``: the MMDiT fine-tuned on partial captions, then the
    VAE's decoder trained further; writes both and their record (a part run alone updates it)."""
    t0 = time.time()
    meta = json.loads((out / M.META_FILE).read_text())
    record_path = out / M.V3_META_FILE
    v3 = json.loads(record_path.read_text()) if record_path.exists() else {}
    v3.update(
        {
            "resolution": RESOLUTION,
            "continues": [M.MMDIT_FILE, M.VAE_FILE],
            "mmdit_config": M.MMDIT_CONFIG,
            "vae_ddconfig": M.VAE_DDCONFIG,
            "text_encoders": meta["text_encoders"],
        }
    )
    training = v3.setdefault("training", {"seed": SEED})
    training["threads"] = threads
    if "mmdit" in parts:
        training.update(train_partial_captions(out, meta, pool, steps, batch))
    if "decoder" in parts:
        vae = M.new_vae_model()
        vae.load_state_dict(_load(out / M.VAE_FILE))
        record = finetune_decoder(vae, decoder_steps, 16, pool=2048, seed=SEED + 70)
        val = images_to_tensor(np.stack([render(s) for s in split("val")]))
        record["psnr_val_db"] = psnr(vae, val)
        log(f"v3 decoder: PSNR on the val split {record['psnr_val_db']:.2f} dB")
        save_fp16(vae, out / M.V3_VAE_FILE)
        training["decoder"] = record
    record_path.write_text(json.dumps(v3, indent=1))
    log(f"v3 ({', '.join(parts)}) done in {time.time() - t0:.0f} s → {out}")


def train_partial_captions(out: Path, meta: dict, pool: int, steps: int, batch: int) -> dict:
    """The SD3 toy's MMDiT fine-tuned on partial captions; writes ``model.V3_MMDIT_FILE``."""
    t0 = time.time()
    log("v3: rebuilding the text encoders and encoding every partial caption")
    clip = M.build_text_encoders(expected=meta["text_encoders"])
    texts = all_partial_captions() + [""]
    context, pooled = encode_captions_of(clip, texts)
    del clip
    t_text = time.time() - t0
    log(f"v3 text: {len(texts)} captions in {t_text:.0f} s")

    vae = M.new_vae_model()
    vae.load_state_dict(_load(out / M.VAE_FILE))
    vae.eval()
    scenes, images, _ = scene_pool(pool, SEED + 20)  # the v2 MMDiT's training scenes
    x0_all = (encode_mean(vae, images_to_tensor(images)) - SHIFT_FACTOR) * SCALE
    table = caption_table(scenes, {t: i for i, t in enumerate(texts)})
    net = M.new_mmdit()
    net.load_state_dict(_load(out / M.MMDIT_FILE))
    net, record = train_mmdit(
        x0_all,
        table[:, -1],
        context,
        pooled,
        steps,
        batch,
        LR,
        seed=SEED + 60,
        net=net,
        captions=partial_sampler(table),
    )
    save_fp16(net, out / M.V3_MMDIT_FILE)
    return {
        "partial_captions": {
            "p_full": P_FULL,
            "p_attribute_prompt": P_ATTRIBUTE,
            "captions": len(texts),
            "attribute_named": {k: sorted(v) for k, v in ATTRIBUTE_NAMED.items()},
        },
        "text_seconds": round(t_text, 1),
        "mmdit": record,
    }
