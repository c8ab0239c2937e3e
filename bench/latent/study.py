"""``python -m bench.latent``: EMS Latent Direction's choices measured in the toy world.

    bash scripts/tool.sh -m bench.latent                   # val split, 3 cases per kind, both stages
    bash scripts/tool.sh -m bench.latent --per-kind 1 --no-resample   # minutes: direction only
    bash scripts/tool.sh -m bench.latent --tiny --per-kind 1          # harness smoke test (random SD3)

Which reading of arXiv 2502.02225 to ship (web/docs/EMSLatentDirection.md) is decided here, on
held-out **val** scenes (the test split stays for bench.toy's comparison). For each edit case
(toyworld.edits) the source scene's clean latent is moved by every variant — ``linear`` and
``svd`` × matrix axes × rank × spectrum form — at several α, with three kinds of reference pair:

- ``render``       a = the source scene itself, b = the target scene (the "edit toward a reference
                   photo" set-up: a = the latent, b = a photo showing the edit; an oracle photo);
- ``render_other`` the same edit drawn in **another layout** (an attribute pair from a different
                   picture: what a prompt pair gives when its layout differs from the user's image);
- ``generated``    the toy model's own generations for the source and the target caption with the
                   same seed (the "attribute from a prompt pair" workflow; needs the trained model).

Two stages are scored: ``decode`` (the edited latent straight through the VAE: the direction
itself) and ``resample`` (img2img with the *source* caption at the toy world's calibrated
schedule, as bench.toy runs latent directions). Scores are bench.toy.score's:
progress (0 = source value, 1 = target value), reached (readout equals the target value),
kept (other attributes unchanged: the paper's "identity"), PSNR outside the edit region, and
Spearman ρ of progress against α. Writes ``bench/reports/latent-direction-study.{md,json,png}``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from comfyui_ems.toyworld.edits import EDIT_KINDS, edit_cases

from bench import REPORTS, harness
from bench.metrics import masked_psnr
from bench.toy.methods import ToySettings, reference_pair, repeated
from bench.toy.score import edit_region, nanmean, score_images, spearman, to_image, to_uint8
from bench.toy.world import DEFAULTS, World, load_models

ALPHAS = (0.0, 0.5, 1.0, 1.5)
OTHER_LAYOUT = 500_000  # added to a val layout: a layout no split uses (val 1e6+, test 2e6+)

# (label, mode, options). Ranks are checked against the latent's matrices at run time.
VARIANTS = [
    ("linear", "linear", {}),
    ("svd per_channel shift", "svd", dict(axes="per_channel", rank=0, spectrum="shift")),
    ("svd per_channel ratio", "svd", dict(axes="per_channel", rank=0, spectrum="ratio")),
    ("svd per_channel project", "svd", dict(axes="per_channel", rank=0, spectrum="project")),
    ("svd per_channel shift rank1", "svd", dict(axes="per_channel", rank=1, spectrum="shift")),
    ("svd per_channel shift rank2", "svd", dict(axes="per_channel", rank=2, spectrum="shift")),
    ("svd channels_x_pixels shift", "svd", dict(axes="channels_x_pixels", rank=0, spectrum="shift")),
    ("svd channels_x_pixels ratio", "svd", dict(axes="channels_x_pixels", rank=0, spectrum="ratio")),
    ("svd channels_x_pixels project", "svd", dict(axes="channels_x_pixels", rank=0, spectrum="project")),
    ("svd channels_x_pixels shift rank4", "svd", dict(axes="channels_x_pixels", rank=4, spectrum="shift")),
]
REFERENCES = ("render", "render_other", "generated")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.latent", description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="tiny random SD3 instead of the toy model (smoke test)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--per-kind", type=int, default=3)
    ap.add_argument("--kinds", default=None, help="comma-separated edit kinds (default all)")
    ap.add_argument("--alphas", default=",".join(str(a) for a in ALPHAS))
    ap.add_argument("--references", default=",".join(REFERENCES))
    ap.add_argument("--variants", default=None, help="comma-separated variant labels (default all)")
    ap.add_argument("--no-resample", action="store_true", help="score the decode stage only (no sampler)")
    ap.add_argument("--steps", type=int, default=None, help="resample steps (default: bench.toy's)")
    ap.add_argument("--denoise", type=float, default=None, help="resample denoise (default: bench.toy's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default=None)
    ap.add_argument("--out-dir", type=Path, default=REPORTS)
    args = ap.parse_args(argv)
    args.alphas = [float(a) for a in args.alphas.split(",")]
    args.references = args.references.split(",")
    unknown = set(args.references) - set(REFERENCES)
    if unknown:
        ap.error(f"unknown reference(s) {sorted(unknown)}; choose from {REFERENCES}")
    labels = [v[0] for v in VARIANTS]
    args.variants = args.variants.split(",") if args.variants else labels
    if set(args.variants) - set(labels):
        ap.error(f"unknown variant(s) {sorted(set(args.variants) - set(labels))}; choose from {labels}")
    args.tag = args.tag or "latent-direction-study" + ("-tiny" if args.tiny else "")
    return args


def reference_latents(world, case, source: str, settings) -> tuple[dict, dict]:
    """(reference_a, reference_b) clean LATENTs for one case from one kind of pair."""
    if source == "render":
        return world.inputs(case)["latent"], {"samples": world.vae.encode(world.render(case.target))}
    if source == "render_other":
        layout = case.source.layout + OTHER_LAYOUT
        a, b = case.source.replace(layout=layout), case.target.replace(layout=layout)
        return {"samples": world.vae.encode(world.render(a))}, {"samples": world.vae.encode(world.render(b))}
    return reference_pair(world.model, world.vae, world.inputs(case)["conds"], case, settings, None, world.render)


@torch.inference_mode()
def edit(world, case, references, mode, options, alphas, stage, settings) -> torch.Tensor:
    """Decoded images (k, H, W, 3) of one variant on one case, one item per α."""
    apply_direction = harness.pack_module("ems.latent_direction").apply_direction
    inp = world.inputs(case)
    latent = repeated(inp["latent"], len(alphas))
    alpha = torch.tensor(alphas, dtype=torch.float64)
    latent = {
        **latent,
        "samples": apply_direction(
            latent["samples"], references[0]["samples"], references[1]["samples"], alpha, mode=mode, **options
        ),
    }
    if stage == "resample":
        sigmas = harness.schedule(world.model, settings.steps, settings.denoise, settings.scheduler)
        latent = harness.sample(
            world.model, inp["conds"][0], inp["conds"][3], latent, sigmas, settings.cfg, settings.seed, settings.sampler
        )
    return world.decode(latent)


def relative_to_alpha0(case, rows: list[dict], images: np.ndarray, alphas) -> None:
    """Scores against the α = 0 image of the same sweep, so the VAE's (and sampler's) own error on
    the unedited latent is not counted as the direction's: Δprogress, kept vs α = 0, PSNR outside
    the edit region vs α = 0."""
    if 0.0 not in alphas:
        return
    i0 = alphas.index(0.0)
    mask = torch.from_numpy(edit_region(case, images.shape[1])).float()
    psnr = masked_psnr(to_image(images[[i0] * len(alphas)]), to_image(images), mask).tolist()
    base = rows[i0]
    others = [k for k in base["read"] if k != case.kind]
    for r, p in zip(rows, psnr):
        r["dprogress"] = r["progress"] - base["progress"]
        r["kept0"] = sum(r["read"][k] == base["read"][k] for k in others) / len(others)
        r["psnr_out0"] = p


def summarize(rows: list[dict], alphas) -> dict:
    one = [r for r in rows if r["alpha"] == 1.0]
    zero = [r for r in rows if r["alpha"] == 0.0]
    sweeps = {}
    for r in rows:
        sweeps.setdefault(r["case"], []).append(r)
    rho = [spearman([r["alpha"] for r in s], [r["progress"] for r in s]) for s in sweeps.values()]
    return {
        "progress@1": nanmean(r["progress"] for r in one),
        "reached@1": nanmean(float(r["reached"]) for r in one),
        "kept@1": nanmean(r["kept"] for r in one),
        "psnr_out@1": nanmean(r["psnr_out"] for r in one),
        "progress@0": nanmean(r["progress"] for r in zero),
        "dprogress@1 median": float(np.nanmedian([r.get("dprogress", np.nan) for r in one])) if one else float("nan"),
        "kept0@1": nanmean(r.get("kept0") for r in one),
        "psnr_out0@1": nanmean(r.get("psnr_out0") for r in one),
        "same_as_source@0": nanmean(float(r["same_as_source"]) for r in zero),
        "spearman": nanmean(rho),
        "n_cases": len(sweeps),
    }


def write_picture(path: Path, images: dict, labels: list[str]) -> None:
    """Rows = variants, columns = cases (α = 1), after a first row with the sources."""
    rows = [np.concatenate(list(images[label]), axis=1) for label in labels]
    grid = np.concatenate(rows, axis=0)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(path)


def markdown(report: dict) -> str:
    lines = [
        f"# EMS Latent Direction: the SVD reading's choices in the toy world ({report['split']} split)",
        "",
        f"Generated by `python -m bench.latent {' '.join(report['argv'])}` on "
        f"{report['date']} ({report['seconds']:.0f} s). Model: {report['model']}. Cases: "
        f"{report['n_cases']} ({report['per_kind']} per kind × {', '.join(report['kinds'])}); α = "
        f"{', '.join(f'{a:g}' for a in report['alphas'])}.",
        "",
        "progress: 0 = source value, 1 = target value (mean over cases, α = 1); reached: readout equals "
        "the target value; kept: fraction of the *other* attributes unchanged (identity); PSNR out: "
        "outside the edit region, vs the source render; ρ: Spearman of progress vs α per case "
        "(mean); progress@0 is the unedited latent's own reading (the VAE's error; ≈ 0 for a perfect "
        "VAE). Relative to α = 0 (the direction's own effect): Δprog = median over cases of "
        "progress@1 − progress@0; kept₀ = other attributes read as at α = 0; PSNR out₀ = outside the edit "
        "region vs the α = 0 image. src@0: fraction of α = 0 images that read exactly as the source.",
        "",
    ]
    for key, table in report["tables"].items():
        reference, stage = key.split("/")
        lines += [
            f"## reference `{reference}`, stage `{stage}`",
            "",
            "| variant | progress@1 | reached@1 | kept@1 | PSNR out@1 | ρ | progress@0 | Δprog | kept₀ | "
            "PSNR out₀ | src@0 |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for label, s in table.items():
            lines.append(
                f"| {label} | {s['progress@1']:.3f} | {s['reached@1']:.2f} | {s['kept@1']:.2f} | "
                f"{s['psnr_out@1']:.1f} | {s['spearman']:.2f} | {s['progress@0']:.3f} | "
                f"{s['dprogress@1 median']:.3f} | {s['kept0@1']:.2f} | {s['psnr_out0@1']:.1f} | "
                f"{s['same_as_source@0']:.2f} |"
            )
        lines.append("")
        for kind, kt in report["by_kind"].get(key, {}).items():
            key_ = "dprogress@1 median"
            best = max(kt.items(), key=lambda kv: kv[1][key_] if np.isfinite(kv[1][key_]) else -9)
            lines.append(
                f"- {kind}: largest Δprog {best[1][key_]:.3f} ({best[0]}); "
                + ", ".join(f"{label} {v[key_]:.2f}" for label, v in kt.items())
            )
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    harness.setup()
    kinds = args.kinds.split(",") if args.kinds else list(EDIT_KINDS)
    cases = [c for c in edit_cases(args.split, args.per_kind, seed=args.seed) if c.kind in kinds]
    base = {k: v for k, v in DEFAULTS.items() if k in ToySettings.__dataclass_fields__}
    if args.steps:
        base["steps"] = args.steps
    if args.denoise:
        base["denoise"] = args.denoise
    settings = ToySettings(**base, seed=args.seed)
    world = World(load_models(args.tiny, args.seed), args.seed)
    variants = [v for v in VARIANTS if v[0] in args.variants]
    stages = ["decode"] + ([] if args.no_resample else ["resample"])
    start = time.perf_counter()
    rows: dict[str, dict[str, list]] = {}
    pictures: dict[str, dict[str, list]] = {}
    for ci, case in enumerate(cases):
        inp = world.inputs(case)
        k = min(inp["latent"]["samples"].shape[-2:])
        for reference in args.references:
            refs = reference_latents(world, case, reference, settings)
            for label, mode, options in variants:
                if options.get("rank", 0) > (
                    k if options.get("axes") == "per_channel" else inp["latent"]["samples"].shape[1]
                ):
                    continue
                for stage in stages:
                    images = to_uint8(edit(world, case, refs, mode, options, args.alphas, stage, settings))
                    scored = score_images(case, label, args.alphas, images, inp["pixels"])
                    relative_to_alpha0(case, scored, images, args.alphas)
                    for r in scored:
                        r.update(case=ci, reference=reference, stage=stage)
                    rows.setdefault(f"{reference}/{stage}", {}).setdefault(label, []).extend(scored)
                    if 1.0 in args.alphas and ci % max(1, args.per_kind) == 0:
                        pic = pictures.setdefault(f"{reference}/{stage}", {})
                        if len(pic.get("source", [])) <= len(pic.get(label, [])):
                            pic.setdefault("source", []).append(inp["pixels"])
                        pic.setdefault(label, []).append(images[args.alphas.index(1.0)])
        print(f"[{ci + 1}/{len(cases)}] {case.kind}: {time.perf_counter() - start:.0f} s", flush=True)
    tables = {key: {label: summarize(r, args.alphas) for label, r in by.items()} for key, by in rows.items()}
    by_kind = {
        key: {
            kind: {label: summarize([x for x in r if x["kind"] == kind], args.alphas) for label, r in by.items()}
            for kind in kinds
        }
        for key, by in rows.items()
    }
    report = {
        "argv": list(argv if argv is not None else sys.argv[1:]),
        "split": args.split,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": time.perf_counter() - start,
        "model": "tiny random SD3" if args.tiny else "toy world",
        "n_cases": len(cases),
        "per_kind": args.per_kind,
        "kinds": kinds,
        "alphas": args.alphas,
        "settings": settings.as_dict(),
        "tables": tables,
        "by_kind": by_kind,
        "rows": {
            k: {
                label: [{kk: vv for kk, vv in r.items() if kk not in ("read", "source")} for r in rs]
                for label, rs in by.items()
            }
            for k, by in rows.items()
        },
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    base_path = args.out_dir / args.tag
    base_path.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    base_path.with_suffix(".md").write_text(markdown(report))
    for key, pics in pictures.items():
        labels = ["source"] + [v[0] for v in variants if v[0] in pics]
        write_picture(args.out_dir / f"{args.tag}-{key.replace('/', '-')}.png", pics, labels)
    print(f"wrote {base_path.with_suffix('.md')}")
    return 0
