"""``python -m bench.toy.families``: the same edits on the toy models (SD3, Flux, toy world v3), side by side.

    bash scripts/tool.sh -m bench.toy.families                 # test split, 10 cases per kind (~15 min CPU)
    bash scripts/tool.sh -m bench.toy.families --per-kind 2    # smoke

The SD3-family toy (MMDiT) and the Flux toy (ComfyUI's Flux class) share the scenes, the captions
and the VAE (``toyworld.model_flux``), so one edit can be compared across architectures; toy world
v3 (the SD3 toy trained further on partial captions, with its own decoder on the same latents) is
the third column. For each
family, method and edit kind, over the same held-out cases, seed, schedule and α (0 … 1): target
reached at α = 1, other attributes kept, PSNR outside the edited region, α = 0 equal to the source's
VAE round trip (to 1 of 255), and the readout rising monotonically over 0 ≤ α ≤ 1; each a mean
with a 95 % bootstrap interval over cases (:func:`bench.toy.front.bootstrap`). Every method runs
with the toy world's measured settings (``toyworld.settings``, chosen on the SD3 toy and not
re-tuned for Flux). Writes ``bench/reports/toyworld-families.md``, ``.json`` and one picture per kind.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from comfyui_ems.nodes.fonts import system_font
from comfyui_ems.toyworld import model as toy
from comfyui_ems.toyworld.comfy_loader import weight_files
from comfyui_ems.toyworld.quality import quality_file
from comfyui_ems.toyworld.edits import edit_cases
from comfyui_ems.toyworld.scenes import Scene, render

from bench import REPORTS, harness

from .front import fmt_ci, is_roundtrip, point_scores
from .methods import ToySettings
from .score import score_images, sweep_scores
from .world import cached_method, toy_world

FAMILY_LABELS = {
    "sd3": "SD3 toy (MMDiT)",
    "flux": "Flux toy (Flux class)",
    "sd3v3": "SD3 toy v3 (the SD3 toy trained further on partial captions)",
}
FAMILY_SHORT = {"sd3": "SD3 toy", "flux": "Flux toy", "sd3v3": "SD3 v3"}  # the pictures' column heads
METHODS = ("text_only", "ems", "ems_flowedit")
METHOD_LABELS = {
    "text_only": "text-only EMS (α sweep → img2img)",
    "ems": "full EMS (α sweep → CSDS → sampler)",
    "ems_flowedit": "EMS Flow Edit",
}
KINDS = ("colour", "size", "background")
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
METHOD_SHORT = {"text_only": "text-only", "ems": "CSDS", "ems_flowedit": "Flow Edit"}
SHOWN = (0.0, 0.5, 1.0)  # the α columns of the pictures


def run_family(family: str, cases, methods, s: ToySettings, cache: Path | None, weights: Path) -> dict:
    """{method: {kind: point_scores}} and the images shown, for one toy family."""
    world = toy_world(family, s.seed, cache, weights)
    scores: dict = {m: {} for m in methods}
    images: dict = {m: [] for m in methods}
    for method in methods:
        per_kind: dict[str, list] = {}
        for case in cases:
            pixels, _ = cached_method(world, method, case, ALPHAS, s, references=None)
            rows = score_images(case, method, ALPHAS, pixels, world.inputs(case)["pixels"])
            same = is_roundtrip(world, case, pixels[ALPHAS.index(0.0)])
            per_kind.setdefault(case.kind, []).append((rows, sweep_scores(rows), same))
            images[method].append(pixels)
        for kind, case_rows in per_kind.items():
            scores[method][kind] = point_scores(case_rows)
        print(f"  {family} {method}: {len(cases)} cases", file=sys.stderr)
    return {"scores": scores, "images": images, "model": training_record(family, weights)}


def training_record(family: str, weights: Path) -> dict:
    meta = json.loads(weight_files(family, weights)[2].read_text(encoding="utf-8"))
    quality = quality_file(weights, family)
    return {
        "training": meta.get("training", {}),
        "quality": json.loads(quality.read_text(encoding="utf-8")) if quality.exists() else None,
    }


def picture(cases, results: dict, methods, kind: str, path: Path, rows: int = 3) -> Path:
    """Rows: the first ``rows`` cases of ``kind``; columns: source, then per family and method the
    images at SHOWN α, then the target (drawn)."""
    picked = [i for i, c in enumerate(cases) if c.kind == kind][:rows]
    tile, gap, group_gap, left, top = 96, 2, 12, 120, 58
    shown = [ALPHAS.index(a) for a in SHOWN]
    groups = [(f, m) for f in results for m in methods]
    group_w = len(shown) * (tile + gap) + group_gap
    width = left + (tile + group_gap) + len(groups) * group_w + tile + 8
    height = top + len(picked) * (tile + gap) + 8
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font, small = system_font(14)[0], system_font(11)[0]
    draw.text((6, 4), f"{kind} edits: α = {', '.join(f'{a:g}' for a in SHOWN)} per method", fill=(0, 0, 0), font=font)
    x0 = left + tile + group_gap
    for g, (family, method) in enumerate(groups):
        x = x0 + g * group_w
        draw.text((x, 24), FAMILY_SHORT[family], fill=(0, 0, 0), font=small)
        draw.text((x, 38), METHOD_SHORT[method], fill=(0, 0, 0), font=small)
    draw.text((left, 38), "source", fill=(0, 0, 0), font=small)
    draw.text((x0 + len(groups) * group_w, 38), "target", fill=(0, 0, 0), font=small)
    for r, i in enumerate(picked):
        case, y = cases[i], top + r * (tile + gap)
        src, dst = getattr(case.source, kind), getattr(case.target, kind)
        draw.text((6, y + tile // 2 - 8), f"{src} → {dst}", fill=(0, 0, 0), font=small)
        canvas.paste(_tile(render(case.source), tile), (left, y))
        for g, (family, method) in enumerate(groups):
            for j, a in enumerate(shown):
                img = results[family]["images"][method][i][a]
                canvas.paste(_tile(img, tile), (x0 + g * group_w + j * (tile + gap), y))
        target = Scene(**case.target.attributes(), layout=case.source.layout)
        canvas.paste(_tile(render(target), tile), (x0 + len(groups) * group_w, y))
    canvas.save(path)
    return path


def _tile(pixels, size: int) -> Image.Image:
    return Image.fromarray(np.asarray(pixels)).resize((size, size), Image.NEAREST)


def write(report: dict, results: dict, cases, methods, kinds, out: Path, tag: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# The same edits on the toy models: the SD3 toy (MMDiT), the Flux toy and toy world v3",
        "",
        f"`{report['command']}` — {report['created']}, {report['machine']}. {report['split']} split, "
        f"{report['per_kind']} cases per kind, α {', '.join(f'{a:g}' for a in ALPHAS)}, seed {report['settings']['seed']}, "
        f"{report['settings']['steps']} steps; settings: the toy world's measured ones (chosen on the SD3 toy, "
        "not re-tuned for Flux). Intervals: 95 % bootstrap over cases.",
        "",
        "Reached: the readout gives the target value at α = 1. Kept: the other attributes read as the "
        "source's at α = 1. PSNR out: outside the edited region, at α = 1. α = 0 = source: the α = 0 image "
        "is the source's VAE round trip (to 1 of 255). Readable at every α: the cases whose edited object "
        "the readout finds at every α (an object that fades out mid-sweep has no progress there). Monotone: "
        "of those, the readout's progress rises over 0 ≤ α ≤ 1.",
        "",
    ]
    for family in results:
        rec = results[family]["model"]
        q = rec.get("quality") or {}
        t2i = next(iter(q.get("text_to_image", {}).items()), None)
        lines.append(f"- **{FAMILY_LABELS[family]}**: " + _model_line(rec, q, t2i))
    lines.append("")
    for kind in kinds:
        lines += [f"## {kind}", "", f"![{kind}]({tag}-{kind}.png)", ""]
        lines.append(
            "| model | method | reached | kept | PSNR out | α = 0 = source | readable at every α | monotone 0–1 |"
        )
        lines.append("|---|---|---|---|---|---|---|---|")
        for family in results:
            for m in methods:
                p = results[family]["scores"][m].get(kind)
                if p is None:
                    continue
                lines.append(
                    f"| {FAMILY_LABELS[family]} | {METHOD_LABELS[m]} | {fmt_ci(p['reached'], True)} | "
                    f"{fmt_ci(p['kept'], True)} | {fmt_ci(p['psnr_out'])} | {fmt_ci(p['roundtrip_at_0'], True)} | "
                    f"{readable(p)} | {fmt_ci(p['monotone_0_1'], True)} |"
                )
        lines.append("")
        lines.append("Mean progress by α (0 = source value, 1 = target value):")
        lines.append("")
        lines.append("| model | method | " + " | ".join(f"α={a:g}" for a in ALPHAS) + " |")
        lines.append("|---|---|" + "---|" * len(ALPHAS))
        for family in results:
            for m in methods:
                p = results[family]["scores"][m].get(kind)
                if p is not None:
                    prog = " | ".join(f"{p['progress'][f'{a:g}']:.2f}" for a in ALPHAS)
                    lines.append(f"| {FAMILY_LABELS[family]} | {METHOD_LABELS[m]} | {prog} |")
        lines.append("")
        picture(cases, results, methods, kind, out / f"{tag}-{kind}.png")
    md = out / f"{tag}.md"
    md.write_text("\n".join(lines), encoding="utf-8")
    data = {
        **report,
        "results": {f: {"scores": r["scores"], "model": r["model"]} for f, r in results.items()},
    }
    (out / f"{tag}.json").write_text(json.dumps(data, indent=1, default=float), encoding="utf-8")
    return md


def readable(p: dict) -> str:
    """How many cases have a defined progress at every α (the monotone score's cases)."""
    flags = p["per_case"]["monotone_0_1"]
    return f"{sum(f is not None for f in flags)}/{len(flags)}"


def _model_line(rec: dict, q: dict, t2i) -> str:
    training = rec.get("training", {})
    stage = training.get("flux") or training.get("mmdit") or {}
    parts = [f"{stage.get('steps', '?')} steps × batch {stage.get('batch', '?')}, {stage.get('seconds', '?')} s"]
    if t2i is not None:
        cfg, acc = t2i
        parts.append(
            f"text-to-image at cfg {cfg} on {q.get('scenes')} {q.get('split')} captions: "
            + ", ".join(f"{k} {v:.0%}" for k, v in acc.items())
        )
    return "; ".join(parts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.toy.families", description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", default="test")
    ap.add_argument("--per-kind", type=int, default=10)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument(
        "--families",
        default="sd3,flux,sd3v3",
        help="toy models, comma-separated (default %(default)s: the SD3 and Flux toys trained alike, then v3)",
    )
    ap.add_argument("--weights", type=Path, default=toy.WEIGHTS, help="toy weights folder (default %(default)s)")
    ap.add_argument("--tag", default="toyworld-families")
    ap.add_argument("--out-dir", type=Path, default=REPORTS)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ems-toyworld-cache")
    args = ap.parse_args(argv)
    harness.setup(cpu=True)  # the toy models are CPU-sized; one device for both families' numbers
    kinds, methods = args.kinds.split(","), args.methods.split(",")
    cases = [c for c in edit_cases(args.split, args.per_kind) if c.kind in kinds]
    s = ToySettings()
    start = time.perf_counter()
    results = {f: run_family(f, cases, methods, s, args.cache, args.weights) for f in args.families.split(",")}
    report = {
        "command": "python -m bench.toy.families " + " ".join(argv if argv is not None else sys.argv[1:]),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} CPU",
        "split": args.split,
        "per_kind": args.per_kind,
        "kinds": kinds,
        "methods": methods,
        "alphas": list(ALPHAS),
        "settings": s.as_dict(),
        "seconds": round(time.perf_counter() - start, 1),
    }
    md = write(report, results, cases, methods, kinds, args.out_dir, args.tag)
    print(f"families: wrote {md}", file=sys.stderr)
    print(md.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
