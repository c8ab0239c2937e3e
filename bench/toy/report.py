"""The toy-world report: markdown tables, a JSON dump, and one PNG grid (scenes × α) per method."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from comfyui_ems.nodes.fonts import system_font
from comfyui_ems.llm_io.files import write_json_atomic
from comfyui_ems.toyworld.scenes import Scene, render

from bench.metrics.cli import json_value

from .score import nanmean, summarize

TILE_SCALE = 2  # 64-px scenes drawn at 128 px, nearest neighbour (pixels stay readable)
GRID_ROWS_PER_KIND = 2  # scenes per edit kind in a picture


# What follows a latent direction in the toy bench (methods.ToySettings.latent_stage).
LATENT_STAGES = {
    "sweep": "img2img with c̃(α)",
    "source": "img2img with the source caption",
    "decode": "the edited latent decoded as it is",
}


def fmt(v, digits=2, pct=False) -> str:
    if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
        return "–"
    return f"{100 * v:.0f} %" if pct else f"{v:.{digits}f}"


def _font(size: int):
    return system_font(size)[0]


def grid_picture(
    results: list[dict], method: str, alphas, path: Path, title: str, rows_per_kind: int = GRID_ROWS_PER_KIND, show=None
) -> Path:
    """Rows: up to ``rows_per_kind`` scenes of each kind; columns: source, one per α (or the α in
    ``show``), target (drawn)."""
    picked, per_kind = [], {}
    for r in results:
        if method in r["images"] and per_kind.get(r["kind"], 0) < rows_per_kind:
            per_kind[r["kind"]] = per_kind.get(r["kind"], 0) + 1
            picked.append(r)
    method_alphas = [1.0] if method == "img2img" else list(alphas)
    columns = [i for i, a in enumerate(method_alphas) if show is None or a in show]
    cols = ["source"] + [f"α={method_alphas[i]:g}" for i in columns] + ["target (drawn)"]
    tile = 64 * TILE_SCALE
    left, top, pad = 150, 46, 4
    w = left + len(cols) * (tile + pad)
    h = top + len(picked) * (tile + pad) + 4
    canvas = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font, small = _font(15), _font(12)
    draw.text((6, 4), title, fill=(0, 0, 0), font=font)
    for j, c in enumerate(cols):
        draw.text((left + j * (tile + pad) + 4, 26), c, fill=(0, 0, 0), font=small)
    for i, r in enumerate(picked):
        y = top + i * (tile + pad)
        tgt = {k: v for k, v in r["target"].items()}
        tiles = (
            [render(Scene(**r["source"], layout=r["layout"]))]
            + [r["images"][method][i] for i in columns]
            + [render(Scene(**tgt, layout=r["layout"]))]
        )
        for j, t in enumerate(tiles):
            img = Image.fromarray(np.asarray(t)).resize((tile, tile), Image.NEAREST)
            canvas.paste(img, (left + j * (tile + pad), y))
        src, dst = r["source"][r["kind"]], r["target"][r["kind"]]
        draw.text((6, y + 8), f"{r['kind']}", fill=(0, 0, 0), font=font)
        draw.text((6, y + 30), f"{src} → {dst}", fill=(60, 60, 60), font=small)
        draw.text((6, y + 48), f"layout {r['layout']}", fill=(120, 120, 120), font=small)
    canvas.save(path)
    return path


def _table(head: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def tables(report: dict, results: list[dict]) -> tuple[str, dict]:
    methods, kinds, alphas = report["methods"], report["kinds"], report["alphas"]
    summary = {
        m: {"all": summarize(results, m, None, alphas), **{k: summarize(results, m, k, alphas) for k in kinds}}
        for m in methods
    }
    lines = [
        "## All edit kinds together\n",
        _table(
            [
                "method",
                "target reached at α=1",
                "other attributes kept at α=1",
                "PSNR outside edit (dB)",
                "SSIM outside edit",
                "Spearman ρ(α, progress)",
                "monotone sweeps",
                "α=0: all attributes = source",
                "progress at α=0",
                "model calls / edit",
                "batch items / edit",
                "s / edit",
            ],
            [
                [
                    f"**{m}**",
                    fmt(summary[m]["all"]["reached_at_1"], pct=True),
                    fmt(summary[m]["all"]["kept_at_1"], pct=True),
                    fmt(summary[m]["all"]["psnr_out_at_1"], 1),
                    fmt(summary[m]["all"]["ssim_out_at_1"], 3),
                    fmt(summary[m]["all"]["spearman"]),
                    fmt(summary[m]["all"]["monotone"], pct=True),
                    fmt(summary[m]["all"]["same_as_source_at_0"], pct=True),
                    fmt(summary[m]["all"]["progress_at_0"]),
                    fmt(summary[m]["all"]["model_calls_per_edit"], 1),
                    fmt(summary[m]["all"]["model_items_per_edit"], 1),
                    fmt(summary[m]["all"]["seconds_per_edit"], 2),
                ]
                for m in methods
            ],
        ),
    ]
    for key, title, pct, digits in (
        ("reached_at_1", "Effectiveness: target attribute reached at α = 1", True, 0),
        ("kept_at_1", "Preservation: other attributes kept at α = 1", True, 0),
        ("psnr_out_at_1", "Preservation: PSNR (dB) vs the source outside the edited region, α = 1", False, 1),
        ("ssim_out_at_1", "Preservation: SSIM vs the source outside the edited region, α = 1", False, 3),
        ("spearman", "Graded control: Spearman ρ between α and progress (mean over scenes)", False, 2),
        ("monotone", "Graded control: sweeps whose progress rises with α (dips ≤ 0.05 allowed)", True, 0),
        (
            "monotone_0_1",
            "Graded control: sweeps whose progress rises with α on 0 ≤ α ≤ 1 (no extrapolation; dips ≤ 0.05 allowed)",
            True,
            0,
        ),
        ("same_as_source_at_0", "α = 0 is no edit: every attribute reads as the source's", True, 0),
    ):
        rows = [
            [f"**{m}**"] + [fmt(summary[m][k][key], digits, pct) for k in kinds]
            for m in methods
            if not (m == "img2img" and key in ("spearman", "monotone", "monotone_0_1", "same_as_source_at_0"))
        ]
        lines += [f"\n### {title}\n", _table(["method"] + kinds, rows)]
    lines += [
        "\n### Progress by α (mean over all kinds; 0 = source value, 1 = target value)\n",
        _table(
            ["method"] + [f"α={a:g}" for a in alphas],
            [
                [f"**{m}**"] + [fmt(summary[m]["all"]["progress_by_alpha"].get(f"{a:g}")) for a in alphas]
                for m in methods
                if m != "img2img"
            ],
        ),
    ]
    for m in methods:
        if m == "img2img":
            continue
        lines += [
            f"\n<details><summary>progress by α and kind: {m}</summary>\n",
            _table(
                ["kind"] + [f"α={a:g}" for a in alphas],
                [[k] + [fmt(summary[m][k]["progress_by_alpha"].get(f"{a:g}")) for a in alphas] for k in kinds],
            ),
            "\n</details>",
        ]
    return "\n".join(lines), summary


def sde_table(results: list[dict], kinds) -> tuple[str, dict]:
    out = {}
    rows = []
    for k in kinds:
        vals = [r["sde"] for r in results if r["kind"] == k and "sde" in r]
        if not vals:
            continue
        out[k] = {key: nanmean(v[key] for v in vals) for key in ("sde", "err_c", "err_flipped", "ratio")}
        out[k]["n"] = len(vals)
        rows.append(
            [
                k,
                str(len(vals)),
                fmt(out[k]["err_c"], 4),
                fmt(out[k]["err_flipped"], 4),
                fmt(out[k]["ratio"], 3),
                fmt(out[k]["sde"], 3),
            ]
        )
    return _table(["edit kind (c → c̃)", "scenes", "E_c (rms)", "E_c̃ (rms)", "E_c / E_c̃", "SDE"], rows), out


def clean(v):
    """JSON-safe copy: NaN → null, ±inf → "inf"/"-inf", numpy scalars → Python, tuples → lists."""
    if isinstance(v, dict):
        return {str(k): clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    return json_value(v)


def _findings(path: Path) -> list[str]:
    """The hand-written "## Findings" section of an earlier report at ``path`` (kept across reruns:
    it is what someone concluded after looking at the pictures), or nothing."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    start, end = text.find("## Findings"), text.find("## Methods")
    return [text[start:end].rstrip() + "\n"] if 0 <= start < end else []


def write_report(report: dict, results: list[dict], out_dir: Path, tag: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    body, summary = tables(report, results)
    sde_md, sde = sde_table(results, report["kinds"])
    pictures = []
    for m in report["methods"]:
        path = grid_picture(
            results, m, report["alphas"], out_dir / f"{tag}-{m}.png", f"{m}: {report['labels'].get(m, m)}"
        )
        pictures.append((m, path.name))
    if "ems" in report["methods"]:  # the README's picture: one scene per kind, full EMS
        grid_picture(
            results,
            "ems",
            report["alphas"],
            out_dir / f"{tag}-readme.png",
            "full EMS in the toy world (a toy model, not SD3)",
            rows_per_kind=1,
            show=[a for a in report["alphas"] if a in (-1.0, 0.0, 0.5, 1.0, 1.5)],
        )
    recon_psnr = nanmean(r["reconstruction"]["psnr"] for r in results)
    recon_same = nanmean(r["reconstruction"]["same_as_source"] for r in results)
    s = report["settings"]
    md = [
        f"# {report['title']}\n",
        "A **toy model**, not SD3: a small SD3-architecture model trained on drawn scenes "
        "(`toyworld/`), loaded and sampled by real ComfyUI. Numbers here say whether the method works "
        "as built and which defaults to ship; they are not claims about SD3-medium.\n",
        f"`{report['command']}` — {report['created']}, split **{report['split']}**, {report['per_kind']} "
        f"scene(s) per edit kind × {len(report['kinds'])} kinds × α = {', '.join(f'{a:g}' for a in report['alphas'])}; "
        f"run {report['run_wall_seconds'] / 60:.1f} min wall, {report['run_cpu_seconds'] / 60:.1f} min CPU "
        f"({report['machine']['torch_threads']} torch threads, {report['machine']['device']}), model load "
        f"{report['load_seconds']:.0f} s"
        + (
            f"; {report['cached_results']} (scene, method) results came from the cache of an earlier run with "
            f"identical settings — all methods' own CPU time, cached ones included, is "
            f"{report['methods_cpu_seconds'] / 60:.1f} min"
            if report.get("cached_results")
            else ""
        )
        + ". Times are from this one run; other jobs on the machine inflate them.\n",
        f"Model: {report['model']['kind']}, MMDiT {report['model']['mmdit_parameters']:,} parameters. "
        f"Settings (every method): BasicScheduler {s['steps']} steps, denoise {s['denoise']}, {s['sampler']}/"
        f"{s['scheduler']}, CFG {s['cfg']}, seed {s['seed']}; CSDS {s['iterations']} iterations, λ = {s['constraint']}, "
        f"step {s['step_start']} → {s['step_end']}, residual space `{s['residual_space']}`; latent directions' "
        f"reference pair: {s['reference']} ({s['reference_steps']} text-to-image steps), then "
        f"{LATENT_STAGES.get(s.get('latent_stage', 'source'), s.get('latent_stage'))}.\n",
        f"Ceiling: the toy VAE alone (encode → decode of the source) gives PSNR {fmt(recon_psnr, 1)} dB and "
        f"reads back every attribute of {fmt(recon_same, pct=True)} of the sources.\n",
    ]
    if report["missing_methods"]:
        md.append("Not run: " + "; ".join(f"`{m}` ({why})" for m, why in report["missing_methods"].items()) + ".\n")
    checks = {}
    for r in results:
        for k, v in r.get("alpha0_checks", {}).items():
            checks[k] = max(checks.get(k, 0), v)
    if checks:
        md.append(
            "α = 0 is no edit, checked on every scene (max |Δ| in 0–255 pixel values; 0 = identical): "
            + ", ".join(f"`{k}` {v}" for k, v in checks.items())
            + ".\n"
        )
    md += _findings(out_dir / f"{tag}.md")
    md += (
        ["## Methods\n"]
        + [f"- `{m}` — {report['labels'].get(m, m)}" for m in report["methods"]]
        + [
            "",
            body,
            "\n## The paper's SDE (text side, per edit kind)\n",
            "SDE = E_c / E_c̃ + E_c̃ with E = rms pixel distance in [0, 1] (`bench.metrics.sde`, norm `rms`), "
            "x = the drawn source, h(f(x), c) = img2img under the source caption (= text-only at α = 0), "
            "h(f(x), c̃) = under the target caption (= text-only at α = 1), one forward noise. `size` "
            "(small ↔ large) is the binary attribute; the other kinds are shown with the same formula.\n",
            sde_md,
            "\n## Pictures (scenes × α; first column the source, last the target as drawn)\n",
        ]
    )
    md += [f"### {m}\n\n![{m}]({name})\n" for m, name in pictures]
    path = out_dir / f"{tag}.md"
    path.write_text("\n".join(md) + "\n", encoding="utf-8")
    dump = {
        **report,
        "summary": summary,
        "sde": sde,
        "pictures": dict(pictures),
        "alpha0_checks": checks,
        "cases": [{k: v for k, v in r.items() if k != "images"} for r in results],
    }
    write_json_atomic(out_dir / f"{tag}.json", clean(dump))
    return path
