"""``python -m bench.toy.front``: the effectiveness–preservation front of every editing path.

    bash scripts/tool.sh -m bench.toy.front                      # test split, 8 cases per kind, every variant
    bash scripts/tool.sh -m bench.toy.front --per-kind 2 --denoise 0.55 --variants ems_flowedit_plain   # smoke

Each *variant* is one method with fixed options; each is run at every denoise of ``--denoise``
(the schedule: how far back the edit may reach) on the same held-out scenes, seed and α values
as :mod:`bench.toy.compare`. Per (variant, denoise, kind), over the cases: target reached at α = 1,
PSNR outside the edited region at α = 1 (the preservation score), other attributes kept, "same as
source" at α = 0, and monotone progress over 0 ≤ α ≤ 1 — each mean with a 95 % bootstrap interval
over cases (ours: 2,000 resamples, percentile). A point is on the front of its kind when no other
point has both higher effectiveness and higher PSNR. Writes ``bench/reports/toyworld-front.md``,
``.json`` and one picture per kind (PSNR outside vs reached, every variant's denoise curve).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from comfyui_ems.nodes.fonts import system_font
from comfyui_ems.toyworld.edits import EDIT_KINDS, edit_cases
from comfyui_ems.toyworld.readout import placed

from bench import REPORTS, harness

from .methods import ToySettings
from .report import grid_picture
from .score import score_images, sweep_scores, to_uint8
from .world import add_family_arg, cached_method, references_of, toy_world

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
DENOISE = (0.45, 0.55, 0.7, 0.85)

# name → (method, ToySettings changes). ems_flowedit's schedule is fe_denoise, set per point.
VARIANTS = {
    "text_only": ("text_only", {}),
    "ems_csds": ("ems", {}),
    "flowedit": ("flowedit", {}),
    "ode_inversion": ("ode_inversion", {}),
    # EMS Flow Edit: every option written out, so a variant means the same whatever the defaults are
    "ems_flowedit_plain": ("ems_flowedit", {"fe_locality": 0.0, "fe_noise_average": 1, "fe_drive": 0.0}),
    "ems_flowedit_local0.6": ("ems_flowedit", {"fe_locality": 0.6, "fe_noise_average": 1, "fe_drive": 0.0}),
    "ems_flowedit_local0.8": ("ems_flowedit", {"fe_locality": 0.8, "fe_noise_average": 1, "fe_drive": 0.0}),
    "ems_flowedit_avg2_local0.8": ("ems_flowedit", {"fe_locality": 0.8, "fe_noise_average": 2, "fe_drive": 0.0}),
    "ems_flowedit_cfg4.5_local0.8": (
        "ems_flowedit",
        {"fe_cfg": 4.5, "fe_locality": 0.8, "fe_noise_average": 1, "fe_drive": 0.0},
    ),
    "ems_flowedit_drive0.1": ("ems_flowedit", {"fe_locality": 0.0, "fe_noise_average": 1, "fe_drive": 0.1}),
}


def bootstrap(values, resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean with a 95 % percentile bootstrap interval; NaNs dropped."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(resamples, v.size))].mean(axis=1)
    return float(v.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def point_scores(case_rows: list[tuple[list[dict], dict, bool]]) -> dict:
    """Scores of one (variant, denoise, kind) from each case's rows, sweep scores and whether its
    α = 0 image is the source's VAE round trip (to 1 of 255)."""

    def at(rows, alpha):
        return next(r for r in rows if abs(r["alpha"] - alpha) < 1e-9)

    one = [at(rows, 1.0) for rows, *_ in case_rows]
    zero = [at(rows, 0.0) for rows, *_ in case_rows]
    return {
        "cases": len(case_rows),
        "reached": bootstrap([float(r["reached"]) for r in one]),
        "psnr_out": bootstrap([r["psnr_out"] for r in one]),
        "kept": bootstrap([r["kept"] for r in one]),
        "same_at_0": bootstrap([float(r["same_as_source"]) for r in zero]),
        "psnr_out_at_0": bootstrap([r["psnr_out"] for r in zero]),
        "monotone_0_1": bootstrap([float(s["monotone_0_1"]) for _, s, _ in case_rows if s["monotone_0_1"] is not None]),
        "roundtrip_at_0": bootstrap([float(same) for *_, same in case_rows]),
        "per_case": {
            "reached": [float(r["reached"]) for r in one],
            "psnr_out": [r["psnr_out"] for r in one],
            "kept": [r["kept"] for r in one],
            "roundtrip_at_0": [float(same) for *_, same in case_rows],
            "monotone_0_1": [None if s["monotone_0_1"] is None else float(s["monotone_0_1"]) for _, s, _ in case_rows],
        },
        "progress": {
            f"{r['alpha']:g}": float(np.nanmean([at(rows, r["alpha"])["progress"] for rows, *_ in case_rows]))
            for r in case_rows[0][0]
        },
    }


def score_point(world, cases, method: str, s, alphas, shown: list | None = None) -> dict[str, dict]:
    """{kind: scores} of one method and settings over ``cases`` (:func:`point_scores`, plus the objects
    still where they were drawn at α = 1 and 0, ``toyworld.readout.placed``); appends each case's
    images to ``shown`` (for :func:`bench.toy.report.grid_picture`)."""
    alphas = tuple(alphas)
    per_kind: dict[str, list] = {}
    placed_at: dict[str, list] = {}
    for case in cases:
        pixels, _ = cached_method(world, method, case, list(alphas), s, references_of(world, case, s))
        if shown is not None:
            shown.append(picture_row(case, method, pixels))
        rows = score_images(case, method, alphas, pixels, world.inputs(case)["pixels"])
        same = is_roundtrip(world, case, pixels[alphas.index(0.0)])
        per_kind.setdefault(case.kind, []).append((rows, sweep_scores(rows), same))
        placed_at.setdefault(case.kind, []).append(
            (placed(pixels[alphas.index(1.0)], case.source), placed(pixels[alphas.index(0.0)], case.source))
        )
    out = {}
    for kind, case_rows in per_kind.items():
        scores = point_scores(case_rows)
        at1, at0 = zip(*placed_at[kind])
        scores["placed"], scores["placed_at_0"] = bootstrap(at1), bootstrap(at0)
        scores["per_case"]["placed"] = list(at1)
        out[kind] = scores
    return out


def picture_row(case, method: str, pixels: np.ndarray) -> dict:
    """One case's images as :func:`bench.toy.report.grid_picture` takes them."""
    return {
        "kind": case.kind,
        "source": case.source.attributes(),
        "target": case.target.attributes(),
        "layout": case.source.layout,
        "images": {method: pixels},
    }


_ROUNDTRIPS: dict = {}


def roundtrip(world, case) -> np.ndarray:
    """The source scene after the world's VAE round trip, (H, W, 3) uint8: what "no edit" decodes to."""
    key = (world.model_id, case.source, case.kind, case.target)
    if key not in _ROUNDTRIPS:
        _ROUNDTRIPS[key] = to_uint8(world.decode(world.inputs(case)["latent"]))[0]
    return _ROUNDTRIPS[key]


def is_roundtrip(world, case, image: np.ndarray) -> bool:
    """Is ``image`` (uint8) the source's round trip, to 1 of 255? The sweep is decoded as a batch, the
    round trip alone (float rounding)."""
    return bool(np.abs(image.astype(np.int16) - roundtrip(world, case).astype(np.int16)).max() <= 1)


def on_front(points: list[dict]) -> None:
    """Mark each point dominated (another has both more reached and more PSNR) or on the front."""
    for p in points:
        p["front"] = not any(
            q["reached"][0] >= p["reached"][0]
            and q["psnr_out"][0] >= p["psnr_out"][0]
            and (q["reached"][0] > p["reached"][0] or q["psnr_out"][0] > p["psnr_out"][0])
            for q in points
            if q is not p
        )


def plot(points: list[dict], kind: str, path: Path) -> Path:
    """PSNR outside the edit (y) against reached at α = 1 (x), a line per variant over denoise."""
    w, h, pad = 720, 480, 60
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    font = system_font(13)[0]
    ys = [p["psnr_out"][0] for p in points if np.isfinite(p["psnr_out"][0])]
    lo, hi = (min(ys) - 1, max(ys) + 1) if ys else (0, 1)

    def xy(p):
        return pad + p["reached"][0] * (w - 2 * pad), h - pad - (p["psnr_out"][0] - lo) / (hi - lo) * (h - 2 * pad)

    draw.rectangle([pad, pad, w - pad, h - pad], outline="black")
    for i in range(6):
        y = lo + (hi - lo) * i / 5
        draw.text((5, h - pad - (y - lo) / (hi - lo) * (h - 2 * pad) - 7), f"{y:.1f}", fill="black", font=font)
        draw.text((pad + i / 5 * (w - 2 * pad) - 10, h - pad + 5), f"{i / 5:.1f}", fill="black", font=font)
    draw.text((w // 2 - 120, h - 25), "target reached at α = 1 (share of cases)", fill="black", font=font)
    draw.text((5, 20), f"{kind}: PSNR outside the edit at α = 1 (dB)", fill="black", font=font)
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"]
    palette += ["#17becf", "#000000", "#a0522d"]
    names = list(dict.fromkeys(p["variant"] for p in points))
    for n, name in enumerate(names):
        colour = palette[n % len(palette)]
        line = sorted((p for p in points if p["variant"] == name), key=lambda p: p["denoise"])
        coords = [xy(p) for p in line if np.isfinite(p["psnr_out"][0])]
        if len(coords) > 1:
            draw.line(coords, fill=colour, width=2)
        for p, (x, y) in zip(line, coords):
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour if p["front"] else "white", outline=colour)
            draw.text((x + 5, y - 6), f"{p['denoise']:g}", fill=colour, font=font)
        draw.text((pad + 8, pad + 5 + 16 * n), f"● {name}", fill=colour, font=font)  # top left: points sit right
    img.save(path)
    return path


def fmt_ci(t, pct=False) -> str:
    m, a, b = t
    if not np.isfinite(m):
        return "–"
    return f"{100 * m:.0f} % [{100 * a:.0f}, {100 * b:.0f}]" if pct else f"{m:.1f} [{a:.1f}, {b:.1f}]"


# The summary table: each method at the schedule it ships with in the toy world (text-only EMS and
# CSDS at the calibrated img2img denoise; EMS Flow Edit at its own), the baselines at the same two.
SUMMARY = (
    ("text_only", 0.55),
    ("text_only", 0.45),
    ("ems_csds", 0.55),
    ("ode_inversion", 0.55),
    ("flowedit", 0.55),
    ("flowedit", 0.45),
    ("ems_flowedit_plain", 0.55),
    ("ems_flowedit_local0.8", 0.55),
    ("ems_flowedit_local0.8", 0.45),
    ("ems_flowedit_avg2_local0.8", 0.55),
    ("ems_flowedit_avg2_local0.8", 0.45),
    ("ems_flowedit_cfg4.5_local0.8", 0.55),
    ("ems_flowedit_drive0.1", 0.55),
    ("ems_flowedit_local0.6", 0.55),
)


def pooled(points: list[dict], key: str, kinds=None) -> tuple[float, float, float]:
    """Every case of ``points`` (of ``kinds``, or all) pooled: the mean of ``key`` with its interval."""
    return bootstrap(
        [v for p in points if kinds is None or p["kind"] in kinds for v in p["per_case"][key] if v is not None]
    )


def summary_rows(points: list[dict], picks=SUMMARY) -> list[str]:
    """One row per (variant, denoise): every kind's cases pooled, 95 % bootstrap intervals."""
    rows = []
    for name, d in picks:
        pts = [p for p in points if p["variant"] == name and abs(p["denoise"] - d) < 1e-9 and "per_case" in p]
        if not pts:
            continue
        graded = ("colour", "size", "background")
        rows.append(
            f"| {name} | {d:g} | {fmt_ci(pooled(pts, 'reached'), True)} | "
            f"{fmt_ci(pooled(pts, 'psnr_out'))} | {fmt_ci(pooled(pts, 'kept'), True)} | "
            f"{fmt_ci(pooled(pts, 'roundtrip_at_0'), True)} | "
            f"{fmt_ci(pooled(pts, 'monotone_0_1', graded), True)} |"
        )
    return rows


def write(points: list[dict], meta: dict, out: Path, tag: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# {meta['title']}",
        "",
        f"Command: `{meta['command']}` — {meta['created']}, "
        f"{meta['wall_seconds'] / 60:.1f} min wall on {meta['device']}. Model: toy world "
        f"`{meta.get('family', 'sd3')}`. Split {meta['split']}, "
        f"{meta['per_kind']} cases per kind, α {', '.join(f'{a:g}' for a in meta['alphas'])}, seed {meta['seed']}, "
        f"{meta['steps']} steps. Intervals: 95 % bootstrap over cases. ● = on the kind's front.",
        "",
        "## Summary (all kinds pooled)",
        "",
        "| variant | denoise | reached at α = 1 | PSNR outside (dB) | kept | α = 0 is the VAE round trip "
        "| monotone 0…1 (colour, size, background) |",
        "|---|---|---|---|---|---|---|",
        *summary_rows(points),
        "",
    ]
    for kind in meta["kinds"]:
        pts = [p for p in points if p["kind"] == kind]
        picture = plot(pts, kind, out / f"{tag}-{kind}.png")
        lines += [
            f"## {kind}",
            "",
            f"![{kind} front]({picture.name})",
            "",
            "| variant | denoise | reached at α = 1 | PSNR outside (dB) | kept | same as source at α = 0 "
            "| α = 0 is the VAE round trip | monotone 0…1 | progress by α |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for p in sorted(pts, key=lambda p: (p["variant"], p["denoise"])):
            prog = " / ".join(f"{v:.2f}" for v in p["progress"].values())
            lines.append(
                f"| {'● ' if p['front'] else ''}{p['variant']} | {p['denoise']:g} | "
                f"{fmt_ci(p['reached'], True)} | {fmt_ci(p['psnr_out'])} | {fmt_ci(p['kept'], True)} | "
                f"{fmt_ci(p['same_at_0'], True)} | {fmt_ci(p.get('roundtrip_at_0', (np.nan,) * 3), True)} | "
                f"{fmt_ci(p['monotone_0_1'], True)} | {prog} |"
            )
        lines.append("")
    return save_report(lines, meta, points, out, tag)


def save_report(lines: list[str], meta: dict, points: list[dict], out: Path, tag: str) -> Path:
    """``<tag>.md`` from ``lines`` and ``<tag>.json`` with the meta and every point; returns the .md."""
    md = out / f"{tag}.md"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / f"{tag}.json").write_text(json.dumps({"meta": meta, "points": points}, indent=1), encoding="utf-8")
    return md


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.toy.front", description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", default="test")
    ap.add_argument("--per-kind", type=int, default=8)
    ap.add_argument("--kinds", default=None)
    ap.add_argument("--denoise", default=",".join(f"{d:g}" for d in DENOISE))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument(
        "--alphas", default=",".join(f"{a:g}" for a in ALPHAS), help="α values (must hold 0 and 1; default %(default)s)"
    )
    add_family_arg(ap)
    ap.add_argument("--cpu", action="store_true", help="force the CPU even where a GPU is present")
    ap.add_argument("--tag", default="toyworld-front")
    ap.add_argument("--out-dir", type=Path, default=REPORTS)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ems-toyworld-cache")
    ap.add_argument("--json-only", action="store_true", help="write only the points (for --merge later)")
    ap.add_argument(
        "--pictures",
        action="store_true",
        help="also draw each point's grid (scenes × α) as <tag>-<variant>-<denoise>.png",
    )
    ap.add_argument("--picture-rows", type=int, default=2, help="scenes per kind in each picture (default 2)")
    ap.add_argument("--merge", nargs="+", type=Path, help="write the report from earlier --json-only runs")
    args = ap.parse_args(argv)
    alphas = tuple(float(a) for a in args.alphas.split(","))
    if 0.0 not in alphas or 1.0 not in alphas:
        ap.error("--alphas must hold 0 and 1")
    if args.merge:
        return merge(args.merge, args.out_dir, args.tag)

    harness.setup(cpu=args.cpu or not torch.cuda.is_available())
    kinds = args.kinds.split(",") if args.kinds else list(EDIT_KINDS)
    cases = [c for c in edit_cases(args.split, args.per_kind) if c.kind in kinds]
    world = toy_world(args.family, 0, args.cache)
    base = ToySettings()
    points, start = [], time.perf_counter()
    for name in args.variants.split(","):
        method, changes = VARIANTS[name]
        for d in (float(x) for x in args.denoise.split(",")):
            s = replace(base, **changes, **({"fe_denoise": d} if method == "ems_flowedit" else {"denoise": d}))
            shown: list = []
            per_kind = score_point(world, cases, method, s, alphas, shown)
            if args.pictures:
                args.out_dir.mkdir(parents=True, exist_ok=True)
                grid_picture(
                    shown,
                    method,
                    alphas,
                    args.out_dir / f"{args.tag}-{name}-{d:g}.png",
                    f"{name} at denoise {d:g} (test split, {args.per_kind} per kind; {args.picture_rows} shown)",
                    rows_per_kind=args.picture_rows,
                )
            for kind, scores in per_kind.items():
                points.append(
                    {"variant": name, "method": method, "denoise": d, "kind": kind, "settings": {**changes}, **scores}
                )
            print(f"  {name} @ denoise {d:g}: {time.perf_counter() - start:.0f}s", file=sys.stderr)
    for kind in kinds:
        on_front([p for p in points if p["kind"] == kind])
    meta = {
        "title": "Effectiveness–preservation fronts in the toy world",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m bench.toy.front " + " ".join(argv if argv is not None else sys.argv[1:]),
        "device": str(world.model.load_device),
        "family": args.family,
        "split": args.split,
        "per_kind": args.per_kind,
        "kinds": kinds,
        "seed": 0,
        "steps": base.steps,
        "alphas": list(alphas),
        "wall_seconds": time.perf_counter() - start,
        "variants": VARIANTS,
    }
    if args.json_only:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        path = args.out_dir / f"{args.tag}.json"
        path.write_text(json.dumps({"meta": meta, "points": points}), encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)
        return 0
    md = write(points, meta, args.out_dir, args.tag)
    print(f"wrote {md}", file=sys.stderr)
    return 0


def merge(paths: list[Path], out: Path, tag: str) -> int:
    """One report from several ``--json-only`` runs of the same cases (e.g. run in parallel)."""
    parts = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    points = [p for part in parts for p in part["points"]]
    meta = dict(parts[0]["meta"])
    meta["wall_seconds"] = max(part["meta"]["wall_seconds"] for part in parts)
    meta["command"] = " ; ".join(part["meta"]["command"] for part in parts) + f" (merged, {len(parts)} parallel runs)"
    for kind in meta["kinds"]:
        on_front([p for p in points if p["kind"] == kind])
    md = write(points, meta, out, tag)
    print(f"wrote {md}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
