"""``python -m bench.toy``: EMS and the baselines scored in the toy world, where an edit can be
read back exactly.

    bash scripts/tool.sh -m bench.toy                 # default: test split, 8 cases per edit kind (≤ 20 min CPU, 2 cores)
    bash scripts/tool.sh -m bench.toy --full          # 20 cases per kind
    bash scripts/tool.sh -m bench.toy --quick         # smoke test: 1 case per kind, 3 α, few steps
    bash scripts/tool.sh -m bench.toy --calibrate     # choose the CSDS defaults on the val split
    bash scripts/tool.sh -m bench.toy --tiny ...      # tiny random SD3 instead of the toy model (harness dev)

Held-out scenes (``toyworld.edits.edit_cases``) × edit kinds (colour, shape, count, size,
background) × α; every method of :mod:`bench.toy.methods` runs in this process through
ComfyUI's own sampling path (CFGGuider + KSAMPLER, the pack's own node functions) on the toy
model (``toyworld.comfy_loader.load_toyworld``), on the same scenes, seed and schedule
(:mod:`bench.toy.world`). Each edited latent is decoded with the toy VAE and read back with
``toyworld.readout``; scores are in :mod:`bench.toy.score`. Writes ``bench/reports/toyworld.md``
+ ``.json`` and one PNG grid per method (scenes × α) next to them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from comfyui_ems.toyworld.comfy_loader import weight_files
from comfyui_ems.toyworld.edits import EDIT_KINDS, edit_cases
from comfyui_ems.toyworld.readout import read

from bench import REPORTS, harness
from bench.metrics import psnr
from bench.metrics.sde import sde_from_reconstructions

from .calibrate import calibrate
from .methods import reference_pair
from .report import write_report
from .score import score_images, sweep_scores, to_image, to_uint8
from .world import (
    DEFAULTS,
    TOY_FAMILY,
    World,
    add_family_arg,
    available_methods,
    cached_method,
    settings_from,
    toy_world,
)

ALPHAS = (-1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
QUICK_ALPHAS = (0.0, 0.5, 1.0)

LABELS = {
    "img2img": "img2img, target caption",
    "text_only": "text-only EMS (α sweep → img2img with c̃)",
    "ems": "full EMS (α sweep → CSDS → sampler)",
    "flowedit": "FlowEdit-style (velocity difference, target c̃)",
    "ems_flowedit": "EMS Flow Edit (the node: coupling + degree rule)",
    "ode_inversion": "ODE inversion (source caption) → sampling with c̃",
    "latent_linear": "latent direction, linear (→ img2img with c̃(α), `latent_stage` sweep)",
    "latent_svd": "latent direction, svd (→ img2img with c̃(α), `latent_stage` sweep)",
}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.toy", description=__doc__.split("\n\n")[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smoke test: 1 case per kind, α ∈ {0, 0.5, 1}, 6 steps")
    size.add_argument("--full", action="store_true", help="20 cases per kind (about 2.5× the default's time)")
    ap.add_argument(
        "--calibrate",
        action="store_true",
        help="choose CSDS defaults on the val split (writes toyworld-calibration.md) instead of the comparison",
    )
    ap.add_argument(
        "--calibrate-stages",
        default="1,2,3,4",
        help="with --calibrate: which search stages to run (1 schedule, 2 residual space × step, "
        "3 iterations, 4 constraint); skipped stages use the values given",
    )
    ap.add_argument("--tiny", action="store_true", help="tiny random SD3 instead of the trained toy model")
    add_family_arg(ap)
    ap.add_argument("--weights", type=Path, default=None, help="toy model weights folder (default toyworld/weights)")
    ap.add_argument("--split", default=None, help="scene split (default test; val with --calibrate)")
    ap.add_argument("--per-kind", type=int, help="cases per edit kind (default 8, --quick 1, --full 20)")
    ap.add_argument("--kinds", default=None, help="comma-separated edit kinds (default all)")
    ap.add_argument("--alphas", default=None, help="comma-separated α (default -1,-0.5,0,0.25,0.5,0.75,1,1.5)")
    ap.add_argument("--methods", default=None, help="comma-separated methods (default all available)")
    for name, value in DEFAULTS.items():
        ap.add_argument(
            "--" + name.replace("_", "-"),
            type=type(value),
            default=None,
            help=f"default {value} (--quick: fewer steps/iterations)",
        )
    ap.add_argument(
        "--reference",
        choices=("generated", "render"),
        default="generated",
        help="latent directions' reference pair: the model's generations for the two captions "
        "(default) or the drawn scenes (an oracle)",
    )
    ap.add_argument(
        "--reference-steps",
        type=int,
        default=None,
        help="text-to-image steps of the generated reference pair (default 12, --quick 6)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default=None, help="report name (default toyworld / toyworld-quick / toyworld-tiny…)")
    ap.add_argument("--out-dir", type=Path, default=REPORTS)
    ap.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "ems-toyworld-cache",
        help="finished (case, method, settings) results are kept here and reused (default: %(default)s)",
    )
    ap.add_argument("--no-cache", action="store_true", help="recompute everything, store nothing")
    args = ap.parse_args(argv)
    args.split = args.split or ("val" if args.calibrate else "test")
    args.per_kind = args.per_kind or (1 if args.quick else 20 if args.full else 8)
    args.alphas = (
        [float(a) for a in args.alphas.split(",")] if args.alphas else list(QUICK_ALPHAS if args.quick else ALPHAS)
    )
    quick = dict(steps=6, iterations=3) if args.quick else {}
    args.reference_steps = args.reference_steps or (6 if args.quick else 12)
    for name, value in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, quick.get(name, value))
    if args.tag is None:
        args.tag = (
            "toyworld"
            + ("-calibration" if args.calibrate else "")
            + ("-quick" if args.quick else "")
            + ("-tiny" if args.tiny else "")
            + ("" if args.family == TOY_FAMILY else f"-{args.family}")
        )
    return args


def run_case(world: World, case, methods, alphas, s) -> dict:
    """Every method on one case; rows, sweep scores, images (uint8) and the text-side SDE."""
    inp = world.inputs(case)
    result = {
        "kind": case.kind,
        "source": case.source.attributes(),
        "target": case.target.attributes(),
        "layout": case.source.layout,
        "source_prompt": case.source_prompt,
        "target_prompt": case.target_prompt,
        "attribute_prompt": case.attribute_prompt,
        "methods": {},
        "images": {},
    }
    pair: dict = {}

    def references():
        if not pair:  # generated once per case, shared by both latent modes
            world.counter.reset()
            start, cpu = time.perf_counter(), time.process_time()
            pair["refs"] = reference_pair(world.model, world.vae, inp["conds"], case, s, world.counter, world.render)
            pair["cost"] = {
                "calls": len(world.counter.log),
                "items": sum(b for _, b in world.counter.log),
                "seconds": time.perf_counter() - start,
                "cpu_seconds": time.process_time() - cpu,
            }
        # Computed once per case; each latent mode is charged its cost (a user running one mode needs it).
        return pair["refs"], pair["cost"]

    for method in methods:
        method_alphas = [1.0] if method == "img2img" else alphas
        pixels, cost = cached_method(world, method, case, method_alphas, s, references)
        rows = score_images(case, method, method_alphas, pixels, inp["pixels"])
        result["methods"][method] = {"rows": rows, "sweep": sweep_scores(rows), **cost}
        result["images"][method] = pixels
        if method == "text_only" and 0.0 in method_alphas and 1.0 in method_alphas:
            # SDE for free: h(f(x), c) = img2img under c0 = text-only at α = 0, h(f(x), c̃) = at α = 1
            # (same seed and schedule: f forward-noises once, as the paper defines it).
            x = to_image(inp["pixels"])
            images = to_image(pixels)
            r = sde_from_reconstructions(x, images[[method_alphas.index(0.0)]], images[[method_alphas.index(1.0)]])
            result["sde"] = {k: v[0] for k, v in r.as_dict().items()}
    recon = world.decode(inp["latent"])
    result["images"]["reconstruction"] = to_uint8(recon)
    result["alpha0_checks"] = alpha0_checks(result, alphas)
    result["reconstruction"] = {
        "psnr": float(psnr(to_image(inp["pixels"]), recon)[0]),
        "same_as_source": read(to_uint8(recon)[0]) == case.source.attributes(),
    }
    return result


def alpha0_checks(result: dict, alphas) -> dict:
    """Max |Δ| (0–255) between a method's α = 0 image and what "no edit" means for it: img2img with
    the source caption (= text-only at α = 0) for EMS and the latent directions; the source itself
    (decoded without sampling) for FlowEdit, whose velocity difference vanishes at α = 0."""
    if 0.0 not in alphas:
        return {}
    i = list(alphas).index(0.0)
    images = result["images"]
    out = {}
    if "text_only" in images:
        ref = images["text_only"][i].astype(np.int16)
        for m in ("ems", "latent_linear", "latent_svd"):
            if m in images:
                out[f"{m}_vs_img2img_source_caption"] = int(np.abs(images[m][i].astype(np.int16) - ref).max())
    for m in ("flowedit", "ems_flowedit"):
        if m in images and "reconstruction" in images:
            out[f"{m}_vs_source_latent"] = int(
                np.abs(images[m][i].astype(np.int16) - images["reconstruction"][0].astype(np.int16)).max()
            )
    return out


def machine_info() -> dict:
    import comfy.model_management  # ComfyUI's own modules: imported after host.setup
    import comfyui_version

    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "comfyui": comfyui_version.__version__,
        "device": str(comfy.model_management.get_torch_device()),
    }


def _scalars(d: dict, depth: int = 2) -> dict:
    """The numbers and strings of a nested record (lists dropped), ``depth`` levels deep."""
    out = {}
    for k, v in d.items():
        if isinstance(v, (int, float, str, bool)):
            out[k] = v
        elif isinstance(v, dict) and depth > 1:
            inner = _scalars(v, depth - 1)
            if inner:
                out[k] = inner
    return out


def model_info(world: World, tiny: bool, weights=None, family: str = "sd3") -> dict:
    dm = world.model.model.diffusion_model
    info = {
        "kind": "tiny random SD3 (toyworld/tiny_sd3.py)" if tiny else f"toy world (toyworld/, trained, {family})",
        "mmdit_parameters": sum(p.numel() for p in dm.parameters()),
        "class": type(world.model.model).__name__,
    }
    if not tiny:
        meta = weight_files(family, weights)[2]
        info["weights"] = str(meta.parent)
        if meta.exists():  # the training record (steps, time, quality), as the trainer wrote it
            record = json.loads(meta.read_text(encoding="utf-8"))
            info["training"] = _scalars(record.get("training", {}))
    return info


def main(argv=None) -> int:
    args = parse_args(argv)
    harness.setup()  # a GPU where there is one
    kinds = args.kinds.split(",") if args.kinds else list(EDIT_KINDS)
    cases = [c for c in edit_cases(args.split, args.per_kind, seed=args.seed) if c.kind in kinds]
    print(f"toyworld: loading the {'tiny random' if args.tiny else 'toy'} model", file=sys.stderr)
    t0 = time.perf_counter()
    world = toy_world(args.family, args.seed, None if args.no_cache else args.cache, args.weights, args.tiny)
    load_seconds = time.perf_counter() - t0
    if args.calibrate:
        return calibrate(world, cases, args)
    methods, missing = available_methods(args.methods.split(",") if args.methods else None)
    s = settings_from(args)
    results, cpu0, wall0 = [], time.process_time(), time.perf_counter()
    for i, case in enumerate(cases):
        t = time.perf_counter()
        results.append(run_case(world, case, methods, args.alphas, s))
        print(
            f"  case {i + 1}/{len(cases)} {case.kind}: {case.source_prompt!r} → {case.target_prompt!r} "
            f"({time.perf_counter() - t:.1f}s)",
            file=sys.stderr,
        )
    report = {
        "title": "EMS in the toy world",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m bench.toy " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_info(),
        "model": model_info(world, args.tiny, args.weights, args.family),
        "settings": s.as_dict(),
        "split": args.split,
        "per_kind": args.per_kind,
        "kinds": kinds,
        "alphas": args.alphas,
        "methods": methods,
        "missing_methods": missing,
        "labels": LABELS,
        "load_seconds": load_seconds,
        "run_wall_seconds": time.perf_counter() - wall0,
        "run_cpu_seconds": time.process_time() - cpu0,
        "methods_cpu_seconds": sum(c["methods"][m].get("cpu_seconds", 0.0) for c in results for m in c["methods"]),
        "cached_results": sum(bool(c["methods"][m].get("cached")) for c in results for m in c["methods"]),
    }
    md = write_report(report, results, args.out_dir, args.tag)
    print(f"toyworld: wrote {md}", file=sys.stderr)
    print(md.read_text(encoding="utf-8"))
    return 0
