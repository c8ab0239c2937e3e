"""``python -m bench.toy.image_side``: does EMS's image side (CSDS) beat text alone? Toy world v3.

    bash scripts/tool.sh -m bench.toy.image_side                       # test split, 8 cases per kind
    bash scripts/tool.sh -m bench.toy.image_side --per-kind 1 --denoise 0.55 --strengths 0.3   # smoke

Runs on toy world v3 (``--family sd3v3``: the SD3 toy fine-tuned on partial captions, so it reads
the attribute prompts CSDS's ``attribute`` drive is built from). For each edit kind, over the same
held-out cases, seed and α (0 … 1):

- **text alone** (EMS Alpha Sweep → img2img with c̃(α)) at every denoise of ``--text-denoise``;
- **each CSDS variant** (α sweep → EMS CSDS Latent Edit → sampler) at every denoise of ``--denoise``
  and every strength of ``--strengths`` (step_start in image units; step_end = step_start / 10;
  the node's iterations and constraint).

Each point: target reached at α = 1, PSNR outside the edited region at α = 1, the other attributes
kept, the objects still where they were drawn (``toyworld.readout.placed``: positions are content no
caption names), each a mean with a 95 % bootstrap interval over cases. A point is on its kind's
front when no other has both more reached and more PSNR (:func:`bench.toy.front.on_front`). Per kind
the report says whether a CSDS point dominates a text-alone point on the front, and whether the
intervals of at least one of the two scores do not overlap. Writes ``bench/reports/<tag>.md``,
``.json`` and one front picture per kind.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from PIL import Image


from comfyui_ems.toyworld.edits import EDIT_KINDS, edit_cases

from bench import REPORTS, harness

from .front import fmt_ci, on_front, plot, pooled, save_report, score_point
from .methods import NODE_CSDS, ToySettings
from .report import grid_picture
from .world import add_family_arg, toy_world

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
TEXT_DENOISE = (0.35, 0.45, 0.55, 0.7, 0.85)
CSDS_DENOISE = (0.35, 0.55, 0.7)
STRENGTHS = (0.1, 0.3)

# name → ToySettings changes for the ``ems`` method (every CSDS v3 option written out).
CSDS_VARIANTS = {
    # the node's defaults as it ships them: drive, units, locality and its own cfg (the sampler stays
    # at the toy's); give it the default strength (NODE_CSDS.step_start)
    "csds_node_defaults": {
        "csds_drive": NODE_CSDS.drive,
        "csds_step_units": NODE_CSDS.step_units,
        "csds_locality": NODE_CSDS.locality,
        "csds_cfg": NODE_CSDS.cfg,
    },
    # v0.1's defaults (attribute drive, steps in latent units): give it 0.03 (→ 0.003); at the toy's
    # cfg, and at the cfg the node ships, where the same η pushes cfg-times harder
    "csds_v0.1_defaults": {"csds_drive": "attribute", "csds_step_units": "latent", "csds_locality": 0.0},
    "csds_v0.1_defaults_cfg7.5": {
        "csds_drive": "attribute",
        "csds_step_units": "latent",
        "csds_locality": 0.0,
        "csds_cfg": 7.5,
    },
    "csds_attribute": {"csds_drive": "attribute", "csds_step_units": "image", "csds_locality": 0.0},
    "csds_target_vs_source": {"csds_drive": "target_vs_source", "csds_step_units": "image", "csds_locality": 0.0},
    "csds_target_vs_source_local": {
        "csds_drive": "target_vs_source",
        "csds_step_units": "image",
        "csds_locality": 0.6,
    },
}


# Latent directions scored fairly (next to the fronts, not in the verdict): the edited clean latent
# followed by img2img with c̃(α) at the shipped denoise (compare with text alone there), and decoded
# as it is. Reference pair: the model's own generations for the two captions.
# EMS Flow Edit at its shipped settings, for reference (the pack's in-place path; not in the verdict).
REFERENCE_POINTS = {"ems_flowedit": ("ems_flowedit", {})}
LATENT_POINTS = {
    "latent_linear_sweep": ("latent_linear", {"latent_stage": "sweep"}),
    "latent_svd_sweep": ("latent_svd", {"latent_stage": "sweep"}),
    "latent_linear_decode": ("latent_linear", {"latent_stage": "decode"}),
    "latent_svd_decode": ("latent_svd", {"latent_stage": "decode"}),
}


def dominates(p: dict, q: dict) -> tuple[bool, bool]:
    """(p dominates q in the means, and with non-overlapping intervals in reached or PSNR)."""
    ge = p["reached"][0] >= q["reached"][0] and p["psnr_out"][0] >= q["psnr_out"][0]
    gt = p["reached"][0] > q["reached"][0] or p["psnr_out"][0] > q["psnr_out"][0]
    clear = p["reached"][1] > q["reached"][2] or p["psnr_out"][1] > q["psnr_out"][2]
    return ge and gt, ge and gt and clear


def verdict(points: list[dict]) -> dict:
    """Per kind: which CSDS points dominate a text-alone point on the front (and clearly), and back."""
    text = [p for p in points if p["variant"] == "text_only"]
    csds = [p for p in points if p["variant"] in CSDS_VARIANTS]
    found = {"csds_over_text": [], "csds_over_text_clear": [], "text_over_csds_clear": []}
    for t in (t for t in text if t["front_text"]):
        for c in csds:
            mean, clear = dominates(c, t)
            if mean:
                found["csds_over_text"].append((label(c), label(t)))
            if clear:
                found["csds_over_text_clear"].append((label(c), label(t)))
    for c in csds:
        for t in text:
            if dominates(t, c)[1]:
                found["text_over_csds_clear"].append((label(t), label(c)))
                break
    if found["csds_over_text_clear"]:
        found["summary"] = "a CSDS point dominates text alone, with non-overlapping intervals"
    elif found["csds_over_text"]:
        found["summary"] = "a CSDS point dominates text alone in the means, but the intervals overlap"
    else:
        found["summary"] = "no CSDS point dominates text alone's front"
    return found


def node_defaults(points: list[dict], kinds) -> list[str]:
    """Markdown rows: where the node's defaults (as shipped) lie against every other point of each
    kind, at each denoise — on the front, behind it in the means only, or clearly dominated
    (another point better in both means, with non-overlapping intervals in one score)."""
    rows = []
    mine = [p for p in points if p["variant"] == "csds_node_defaults"]
    for d in sorted({p["denoise"] for p in mine}):
        cells = []
        for kind in kinds:
            (p,) = [q for q in mine if q["kind"] == kind and q["denoise"] == d]
            others = [q for q in points if q["kind"] == kind and q is not p]
            clear = [label(q) for q in others if dominates(q, p)[1]]
            if p["front"]:
                cells.append("● on the front")
            elif clear:
                cells.append("dominated: " + "; ".join(clear[:2]) + (" …" if len(clear) > 2 else ""))
            else:
                cells.append("behind in the means only")
        rows.append(f"| {d:g} | " + " | ".join(cells) + " |")
    return rows


def settings_of(p: dict) -> tuple:
    """(variant, strength, denoise): one setting, whose points are one per kind."""
    return (p["variant"], p["settings"].get("step_start"), p["denoise"])


def best_csds(points: list[dict], text_denoise: float) -> tuple | None:
    """Our rule for the CSDS setting to show and recommend: the highest reached at α = 1, all kinds
    pooled, among the settings that keep at least as much as text alone at the shipped denoise
    (pooled PSNR outside the edit); ties: the higher PSNR. None when no setting keeps that much."""
    groups: dict[tuple, list] = {}
    for p in points:
        groups.setdefault(settings_of(p), []).append(p)
    text = groups.get(("text_only", None, text_denoise))
    if not text:
        return None
    floor = pooled(text, "psnr_out")[0]
    scored = [
        (pooled(ps, "reached")[0], pooled(ps, "psnr_out")[0], key)
        for key, ps in groups.items()
        if key[0] in CSDS_VARIANTS and pooled(ps, "psnr_out")[0] >= floor
    ]
    return max(scored)[2] if scored else None


def side_by_side(paths: list[Path], out: Path, gap: int = 24) -> Path:
    """The pictures in ``paths`` next to each other (top-aligned, white between)."""
    images = [Image.open(p).convert("RGB") for p in paths]
    canvas = Image.new(
        "RGB", (sum(i.width for i in images) + gap * (len(images) - 1), max(i.height for i in images)), "white"
    )
    x = 0
    for image in images:
        canvas.paste(image, (x, 0))
        x += image.width + gap
    canvas.save(out)
    return out


def label(p: dict) -> str:
    """E.g. "csds_target_vs_source s0.3 @ 0.55" (s: strength in image units, η: a latent-unit step)."""
    strength = p["settings"].get("step_start")
    unit = "η" if p["settings"].get("csds_step_units") == "latent" else "s"
    return f"{p['variant']}{'' if strength is None else f' {unit}{strength:g}'} @ {p['denoise']:g}"


def write(points: list[dict], meta: dict, out: Path, tag: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# {meta['title']}",
        "",
        f"Command: `{meta['command']}` — {meta['created']}, {meta['wall_seconds'] / 60:.1f} min wall on "
        f"{meta['device']}. Model: toy world `{meta['family']}`. Split {meta['split']}, {meta['per_kind']} cases "
        f"per kind, α {', '.join(f'{a:g}' for a in ALPHAS)}, seed 0, {meta['steps']} steps, cfg {meta['cfg']:g}. "
        f"CSDS: {meta['iterations']} iterations, λ = {meta['constraint']:g}, step sizes in image units "
        "(strength s → s/10; v0.1's defaults: η in latent units). EMS Flow Edit (its shipped settings) and the latent directions are shown for "
        "reference; the verdict compares CSDS with text alone only. Intervals: 95 % bootstrap over cases. "
        "● = on the kind's front (all points).",
        "",
        "## Verdict per kind",
        "",
        "| kind | verdict | CSDS over text alone (clear) | text alone over CSDS (clear) |",
        "|---|---|---|---|",
    ]
    for kind in meta["kinds"]:
        v = meta["verdicts"][kind]
        clear = "; ".join(f"{c} over {t}" for c, t in v["csds_over_text_clear"][:3]) or "–"
        n_csds = sum(1 for p in points if p["kind"] == kind and p["variant"] in CSDS_VARIANTS)
        back = f"{len(v['text_over_csds_clear'])} of {n_csds} CSDS points"
        lines.append(f"| {kind} | {v['summary']} | {clear} | {back} |")
    if any(p["variant"] == "csds_node_defaults" for p in points):
        lines += [
            "",
            "## The node's defaults, as shipped",
            "",
            f"`csds_node_defaults`: drive `{NODE_CSDS.drive}`, steps {NODE_CSDS.step_start:g} → "
            f"{NODE_CSDS.step_end:g} in `{NODE_CSDS.step_units}` units, locality {NODE_CSDS.locality:g}, at the cfg "
            f"the node ships ({NODE_CSDS.cfg:g}) for its own predictions. Against every point of each kind "
            '(● = on the front in the means; "dominated" = another point is better in both means with '
            "non-overlapping intervals in one of them):",
            "",
            "| denoise | " + " | ".join(meta["kinds"]) + " |",
            "|---" * (len(meta["kinds"]) + 1) + "|",
            *node_defaults(points, meta["kinds"]),
        ]
    lines += [
        "",
        "## All kinds pooled",
        "",
        f"Each setting's {len(meta['kinds'])} kinds × {meta['per_kind']} cases pooled. The best CSDS setting (our "
        "rule: the highest reached at α = 1 among the settings whose PSNR outside is at least text alone's at the "
        f"toy's denoise {meta['denoise']:g}) is **{meta['best_label']}**.",
        "",
        "| setting | reached at α = 1 | PSNR outside (dB) | kept | placed |",
        "|---|---|---|---|---|",
    ]
    groups: dict[tuple, list] = {}
    for p in points:
        groups.setdefault(settings_of(p), []).append(p)
    for key in sorted(groups, key=lambda k: (k[0], k[1] or 0, k[2])):
        ps = groups[key]
        lines.append(
            f"| {label(ps[0])} | {fmt_ci(pooled(ps, 'reached'), True)} | {fmt_ci(pooled(ps, 'psnr_out'))} | "
            f"{fmt_ci(pooled(ps, 'kept'), True)} | {fmt_ci(pooled(ps, 'placed'), True)} |"
        )
    lines.append("")
    for kind in meta["kinds"]:
        pts = [p for p in points if p["kind"] == kind]
        shown = [{**p, "variant": label(p).split(" @ ")[0]} for p in pts]
        picture = plot(shown, kind, out / f"{tag}-{kind}.png")
        lines += [
            f"## {kind}",
            "",
            f"![{kind} fronts]({picture.name})",
            "",
            "| point | reached at α = 1 | PSNR outside (dB) | kept | placed | α = 0 placed | progress by α |",
            "|---|---|---|---|---|---|---|",
        ]
        for p in sorted(pts, key=lambda p: (p["variant"], p["settings"].get("step_start", 0), p["denoise"])):
            prog = " / ".join(f"{v:.2f}" for v in p["progress"].values())
            lines.append(
                f"| {'● ' if p['front'] else ''}{label(p)} | {fmt_ci(p['reached'], True)} | {fmt_ci(p['psnr_out'])} | "
                f"{fmt_ci(p['kept'], True)} | {fmt_ci(p['placed'], True)} | {fmt_ci(p['placed_at_0'], True)} | {prog} |"
            )
        lines.append("")
    return save_report(lines, meta, points, out, tag)


def floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.toy.image_side", description=__doc__.split("\n\n")[0])
    add_family_arg(ap)
    ap.add_argument("--split", default="test")
    ap.add_argument("--per-kind", type=int, default=8)
    ap.add_argument("--kinds", default=",".join(EDIT_KINDS))
    ap.add_argument("--text-denoise", default=",".join(f"{d:g}" for d in TEXT_DENOISE))
    ap.add_argument("--denoise", default=",".join(f"{d:g}" for d in CSDS_DENOISE), help="CSDS denoise values")
    ap.add_argument("--strengths", default=",".join(f"{s:g}" for s in STRENGTHS))
    ap.add_argument(
        "--variants",
        default=",".join(CSDS_VARIANTS),
        help="CSDS variants, each optionally with its own strengths: name:0.1/0.3 (default: --strengths)",
    )
    ap.add_argument(
        "--latent", default=",".join(LATENT_POINTS), help="latent-direction points at the shipped denoise ('' = none)"
    )
    ap.add_argument("--no-flowedit", action="store_true", help="leave out EMS Flow Edit's reference point")
    ap.add_argument("--tag", default="toyworld-image-side")
    ap.add_argument("--out-dir", type=Path, default=REPORTS)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ems-toyworld-cache")
    ap.add_argument("--cpu", action="store_true", help="force the CPU even where a GPU is present")
    args = ap.parse_args(argv)

    import torch

    harness.setup(cpu=args.cpu or not torch.cuda.is_available())
    kinds = args.kinds.split(",")
    cases = [c for c in edit_cases(args.split, args.per_kind) if c.kind in kinds]
    world = toy_world(args.family, 0, args.cache)
    base = ToySettings()
    plan = [("text_only", "text_only", {"denoise": d}) for d in floats(args.text_denoise)]
    for spec in args.variants.split(","):
        name, _, own = spec.partition(":")
        for strength in floats(own.replace("/", ",")) if own else floats(args.strengths):
            for d in floats(args.denoise):
                steps = {"step_start": strength, "step_end": strength / 10}
                plan.append((name, "ems", {**CSDS_VARIANTS[name], **steps, "denoise": d}))
    for name in (n for n in args.latent.split(",") if n):
        method, changes = LATENT_POINTS[name]
        plan.append((name, method, {**changes, "denoise": base.denoise}))
    if not args.no_flowedit:
        for name, (method, changes) in REFERENCE_POINTS.items():
            plan.append((name, method, {**changes, "denoise": base.fe_denoise}))
    points, start, shown = [], time.perf_counter(), {}
    for name, method, changes in plan:
        s = replace(base, **changes)
        key = (name, changes.get("step_start"), s.denoise)
        for kind, scores in score_point(world, cases, method, s, ALPHAS, shown.setdefault(key, [])).items():
            settings = {k: v for k, v in changes.items() if k != "denoise"}
            points.append(
                {"variant": name, "method": method, "denoise": s.denoise, "kind": kind, "settings": settings, **scores}
            )
        print(f"  {name} {changes}: {time.perf_counter() - start:.0f}s", file=sys.stderr, flush=True)
    verdicts = {}
    for kind in kinds:
        pts = [p for p in points if p["kind"] == kind]
        on_front([p for p in pts if p["variant"] == "text_only"])
        for p in pts:
            p["front_text"] = p.get("front", False) if p["variant"] == "text_only" else False
        on_front(pts)
        verdicts[kind] = verdict(pts)
    best = best_csds(points, base.denoise)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if best is not None:  # the README's picture: one scene per kind, text alone, the best CSDS, EMS Flow Edit
        panels = []
        for key, method, title in (
            (
                ("text_only", None, base.denoise),
                "text_only",
                f"text alone (img2img with c̃(α), denoise {base.denoise:g})",
            ),
            (best, "ems", f"CSDS {best[0]}, strength {best[1]:g}, denoise {best[2]:g}"),
            (("ems_flowedit", None, base.fe_denoise), "ems_flowedit", "EMS Flow Edit (its shipped settings)"),
        ):
            if key in shown:
                path = args.out_dir / f"{args.tag}-{key[0]}.png"
                panels.append(grid_picture(shown[key], method, ALPHAS, path, title, rows_per_kind=1))
        side_by_side(panels, args.out_dir / f"{args.tag}-readme.png")
    meta = {
        "title": "The image side on toy world v3: CSDS against text alone, per edit kind",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m bench.toy.image_side " + " ".join(argv if argv is not None else sys.argv[1:]),
        "device": str(world.model.load_device),
        "family": args.family,
        "split": args.split,
        "per_kind": args.per_kind,
        "kinds": kinds,
        "steps": base.steps,
        "cfg": base.cfg,
        "iterations": base.iterations,
        "constraint": base.constraint,
        "alphas": list(ALPHAS),
        "wall_seconds": time.perf_counter() - start,
        "variants": CSDS_VARIANTS,
        "verdicts": verdicts,
        "best_csds": best,
        "best_label": "none" if best is None else label(next(p for p in points if settings_of(p) == best)),
        "denoise": base.denoise,
    }
    md = write(points, meta, args.out_dir, args.tag)
    print(f"wrote {md}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
