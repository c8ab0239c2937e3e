"""How good is the toy model itself? ``python -m toyworld.quality`` (after ``python -m toyworld.train``).

Measured through ComfyUI's own objects and sampler (``load_toyworld`` + ``comfy.sample.sample``):
- VAE reconstruction PSNR on held-out scenes (ComfyUI's VAE.encode → VAE.decode, 8-bit), and
  the readout accuracy per attribute after that round trip (the ceiling of any edit's preservation);
- text-to-image: one image per held-out scene's caption (the split's 270 captions, i.e. every
  combination of the grammar with held-out layouts), read back with ``toyworld.readout``;
  accuracy per attribute, and of all five at once;
- text-to-image from the edit benchmark's attribute prompts ("two circles") against the full target
  captions, per edit kind: can the model read a prompt that names one attribute (toy world v3)?
Writes ``toyworld/weights/quality.json`` (``quality_flux.json`` with ``--family flux``; or --out)
and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import model as M
from .comfy_loader import FAMILIES, load_toyworld
from .edits import EDIT_KINDS, edit_cases
from .readout import read
from .scenes import ATTRIBUTES, caption, render, split


def conditioning(clip, texts: list[str]):
    """One CONDITIONING holding a batch of prompts: [[(B, 154, 4096), {pooled_output: (B, 2048)}]]."""
    conds, pooleds = zip(*(M.encode(clip, t) for t in texts))
    return [[torch.cat(conds), {"pooled_output": torch.cat(pooleds)}]]


def text_to_image(
    model,
    clip,
    vae,
    texts: list[str],
    seed: int = 0,
    steps: int = 20,
    cfg: float = 4.0,
    sampler: str = "euler",
    scheduler: str = "simple",
    batch: int = 30,
) -> np.ndarray:
    """Images (N, 64, 64, 3) uint8 for ``texts`` through ComfyUI's sampler, seed + i per prompt."""
    import comfy.sample

    negative_one = conditioning(clip, [""])
    out = []
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        positive = conditioning(clip, chunk)
        n = len(chunk)
        negative = [
            [negative_one[0][0].repeat(n, 1, 1), {"pooled_output": negative_one[0][1]["pooled_output"].repeat(n, 1)}]
        ]
        latent = torch.zeros(n, 16, 8, 8)
        noise = torch.cat([comfy.sample.prepare_noise(latent[:1], seed + start + i) for i in range(n)])
        samples = comfy.sample.sample(
            model, noise, steps, cfg, sampler, scheduler, positive, negative, latent, denoise=1.0, seed=seed + start
        )
        pixels = vae.decode(samples)
        out.append((pixels.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy())
    return np.concatenate(out)


def vae_roundtrip(vae, images: np.ndarray) -> np.ndarray:
    """ComfyUI's VAE.encode → VAE.decode of (N, H, W, 3) uint8 images, as uint8."""
    pixels = torch.from_numpy(images).float() / 255.0
    recon = vae.decode(vae.encode(pixels))
    return (recon.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean PSNR (dB) over a batch of uint8 images."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean(axis=(1, 2, 3)).clip(1e-10)
    return float((10 * np.log10(255.0**2 / mse)).mean())


def accuracy(scenes, images: np.ndarray) -> dict[str, float]:
    reads = [read(img) for img in images]
    acc = {k: float(np.mean([r[k] == getattr(s, k) for r, s in zip(reads, scenes)])) for k in ATTRIBUTES}
    acc["all"] = float(np.mean([r == s.attributes() for r, s in zip(reads, scenes)]))
    return acc


def attribute_prompts(model, clip, vae, split_name: str, per_kind: int, steps: int, cfg: float) -> dict:
    """Per edit kind: how often text-to-image reads the target's value of the edited attribute from
    the edit's attribute prompt ("two circles") and from the full target caption, over the edit
    cases of ``split_name`` (the ones the edit benchmark uses), and their ratio."""
    cases = edit_cases(split_name, per_kind)
    prompts = [c.attribute_prompt for c in cases] + [c.target_prompt for c in cases]
    images = text_to_image(model, clip, vae, prompts, steps=steps, cfg=cfg)
    out = {}
    for kind in EDIT_KINDS:
        idx = [i for i, c in enumerate(cases) if c.kind == kind]

        def rate(offset, idx=idx, kind=kind):
            hits = [read(images[offset + i])[kind] == getattr(cases[i].target, kind) for i in idx]
            return float(np.mean(hits))

        short, full = rate(0), rate(len(cases))
        out[kind] = {
            "cases": len(idx),
            "attribute_prompt": short,
            "full_caption": full,
            "ratio": short / full if full > 0 else float("nan"),
        }
    return out


def quality_file(weights: Path, family: str = "sd3") -> Path:
    """Where ``main`` writes a family's measurements by default: quality.json, or quality_<family>.json."""
    return weights / ("quality.json" if family == "sd3" else f"quality_{family}.json")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", default="test")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cfg", type=float, nargs="+", default=[3.0])
    ap.add_argument("--limit", type=int, default=0, help="a seeded random subset of N scenes (0 = all 270)")
    ap.add_argument("--family", choices=FAMILIES, default="sd3", help="which toy model (all share the VAE)")
    ap.add_argument("--weights", type=Path, default=M.WEIGHTS)
    ap.add_argument(
        "--out", type=Path, default=None, help="default: quality.json (sd3) or quality_<family>.json in --weights"
    )
    ap.add_argument("--grid", type=Path, default=None, help="also save a PNG of the first 40 generations")
    ap.add_argument(
        "--attribute-cases",
        type=int,
        default=20,
        help="edit cases per kind for text-to-image from attribute prompts vs full captions (0 = skip)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    start = time.time()
    out = args.out or quality_file(args.weights, args.family)
    model, clip, vae = load_toyworld(args.weights, family=args.family)
    scenes = split(args.split)
    if args.limit:  # a seeded random subset (a stride would pick one background and size only)
        pick = np.random.default_rng(0).choice(len(scenes), size=min(args.limit, len(scenes)), replace=False)
        scenes = [scenes[i] for i in sorted(pick)]
    renders = np.stack([render(s) for s in scenes])
    recon = vae_roundtrip(vae, renders)
    result = {
        "family": args.family,
        "split": args.split,
        "scenes": len(scenes),
        "sampler": "euler",
        "scheduler": "simple",
        "steps": args.steps,
        "vae_psnr_db": psnr(recon, renders),
        "vae_roundtrip_readout": accuracy(scenes, recon),
        "text_to_image": {},
    }
    print(
        f"VAE PSNR on {len(scenes)} {args.split} scenes: {result['vae_psnr_db']:.2f} dB; read back after "
        "the round trip: " + ", ".join(f"{k} {v:.1%}" for k, v in result["vae_roundtrip_readout"].items()),
        flush=True,
    )
    for cfg in args.cfg:
        images = text_to_image(model, clip, vae, [caption(s) for s in scenes], steps=args.steps, cfg=cfg)
        acc = accuracy(scenes, images)
        result["text_to_image"][str(cfg)] = acc
        print(f"cfg {cfg}: " + ", ".join(f"{k} {v:.1%}" for k, v in acc.items()), flush=True)
        if args.grid is not None:
            tiles = images[:40]
            rows = [np.concatenate(list(tiles[i : i + 10]), 1) for i in range(0, len(tiles), 10)]
            rows = [np.pad(r, ((0, 0), (0, 640 - r.shape[1]), (0, 0))) for r in rows]
            Image.fromarray(np.concatenate(rows)).save(
                args.grid.with_name(f"{args.grid.stem}_cfg{cfg}{args.grid.suffix}")
            )
    if args.attribute_cases:
        cfg = args.cfg[0]
        result["attribute_prompts"] = {
            "cfg": cfg,
            "kinds": attribute_prompts(model, clip, vae, args.split, args.attribute_cases, args.steps, cfg),
        }
        for kind, r in result["attribute_prompts"]["kinds"].items():
            print(
                f"{kind}: attribute prompt {r['attribute_prompt']:.0%}, full caption {r['full_caption']:.0%} "
                f"(ratio {r['ratio']:.2f}, {r['cases']} cases, cfg {cfg:g})",
                flush=True,
            )
    result["seconds"] = round(time.time() - start, 1)
    out.write_text(json.dumps(result, indent=1))
    print(f"→ {out} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
