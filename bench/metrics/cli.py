"""``python -m bench.metrics``: score edited images against their sources; markdown + JSON table.

    python -m bench.metrics SOURCE EDITED [--mask M] [--lpips alex --lpips-dir DIR]
                                        [--clip [MODEL] --prompt TEXT | --prompts P.json]
                                        [--json out.json] [--markdown out.md]

SOURCE and EDITED are image files or folders:
- file + file: one pair;
- folder + folder: pairs by file name without extension (``cat.png`` ↔ ``cat.jpg``);
- file + folder: the one source against every image in the folder (an α sweep).

Images are read as RGB (alpha dropped) and scored as (1, H, W, 3) in [0, 1]. An edit mask
(``--mask``: a file for every pair, or a folder matched by pair name) is a grayscale image,
white (1) = edited region, PIE-Bench's convention; with it the table adds the PIE-Bench
background metrics (``*_bg``: both images × (1 − mask)) and, with CLIP, ``clip_edit`` (edited
image × mask vs the prompt). CLIP scores the *edited* image against its prompt (the target
prompt). Means in the table are over the finite values of each column (an identical pair has
PSNR = inf); the JSON writes +inf as ``"inf"`` and NaN (no background/no prompt) as ``null``.

The functions here (:func:`score_pair`, :func:`summarize`, :func:`markdown_table`) are the
library behind the command, for evaluation scripts that already hold tensors.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from . import pixel
from .clip_score import ClipScorer, ClipWeightsMissing, masked_clip_score
from .lpips import LPIPS, LPIPSWeightsMissing

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
ORDER = ("psnr", "ssim", "lpips", "clip", "psnr_bg", "ssim_bg", "lpips_bg", "clip_edit")
HIGHER_IS_BETTER = {
    "psnr": True,
    "ssim": True,
    "lpips": False,
    "clip": True,
    "psnr_bg": True,
    "ssim_bg": True,
    "lpips_bg": False,
    "clip_edit": True,
}


class CLIError(Exception):
    """A user error: printed as one message, exit status 2."""


@dataclass
class Pair:
    name: str
    source: Path
    edited: Path
    mask: Optional[Path] = None
    prompt: Optional[str] = None


# ------------------------------------------------------------------------------------ library


def score_pair(
    source: torch.Tensor,
    edited: torch.Tensor,
    *,
    mask: Optional[torch.Tensor] = None,
    prompt: Optional[str] = None,
    lpips_model=None,
    clip_scorer=None,
    data_range: float = 1.0,
) -> dict[str, float]:
    """All metrics available for one pair (images (1, H, W, 3) in [0, 1]; mask (1, H, W), 1 =
    edited). Keys follow :data:`ORDER`; a metric that was not asked for is absent."""
    out = {"psnr": pixel.psnr(source, edited, data_range), "ssim": pixel.ssim(source, edited, data_range)}
    if lpips_model is not None:
        out["lpips"] = lpips_model(source, edited)
    if clip_scorer is not None and prompt:
        out["clip"] = clip_scorer.score(edited, [prompt])
    if mask is not None:
        out["psnr_bg"] = pixel.masked_psnr(source, edited, mask, data_range)
        out["ssim_bg"] = pixel.masked_ssim(source, edited, mask, data_range)
        if lpips_model is not None:
            out["lpips_bg"] = pixel.masked(lpips_model, source, edited, mask)
        if clip_scorer is not None and prompt:
            out["clip_edit"] = masked_clip_score(edited, [prompt], mask, clip_scorer)
    return {k: float(torch.as_tensor(v).reshape(-1)[0]) for k, v in out.items()}


def summarize(rows: Sequence[dict], keys: Sequence[str]) -> tuple[dict, dict]:
    """(means over finite values, number of finite values) per metric key."""
    means, counts = {}, {}
    for k in keys:
        vals = [r[k] for r in rows if isinstance(r.get(k), float) and math.isfinite(r[k])]
        counts[k] = len(vals)
        means[k] = sum(vals) / len(vals) if vals else math.nan
    return means, counts


def metric_keys(rows: Sequence[dict]) -> list[str]:
    present = {k for r in rows for k in r}
    return [k for k in ORDER if k in present]


def _fmt(v: Any, key: str) -> str:
    if not isinstance(v, float):
        return "–"
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.2f}" if key in ("psnr", "psnr_bg", "clip", "clip_edit") else f"{v:.4f}"


def markdown_table(rows: Sequence[dict], keys: Sequence[str], means: Optional[dict] = None) -> str:
    arrows = {k: ("↑" if HIGHER_IS_BETTER.get(k, True) else "↓") for k in keys}
    head = "| pair | " + " | ".join(f"{k} {arrows[k]}" for k in keys) + " |"
    lines = [head, "|" + "---|" * (len(keys) + 1)]
    for r in rows:
        lines.append(f"| {r['name']} | " + " | ".join(_fmt(r.get(k), k) for k in keys) + " |")
    if means is not None and len(rows) > 1:
        lines.append("| **mean** | " + " | ".join(_fmt(means.get(k), k) for k in keys) + " |")
    return "\n".join(lines)


def json_value(v: Any) -> Any:
    """A metric value JSON can hold: NaN → null, ±inf → "inf"/"-inf" (JSON has neither)."""
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
    return v


# ------------------------------------------------------------------------------------ files


def load_image(path: Path, size: Optional[tuple[int, int]] = None) -> torch.Tensor:
    """An image file as (1, H, W, 3) float32 in [0, 1]; resized (bicubic) to ``size`` (W, H) if given."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if size is not None and im.size != size:
            im = im.resize(size, Image.BICUBIC)
        arr = np.asarray(im, dtype=np.float32) / 255.0
    return torch.from_numpy(arr.copy()).unsqueeze(0)


def load_mask(path: Path, size: tuple[int, int], resize: bool) -> torch.Tensor:
    """A mask image as (1, H, W) float32 in [0, 1] (grayscale; white = edited)."""
    with Image.open(path) as im:
        im = im.convert("L")
        if im.size != size:
            if not resize:
                raise CLIError(
                    f"mask {path} is {im.size[0]}×{im.size[1]} but its image is {size[0]}×{size[1]}; "
                    "pass --resize to scale masks (nearest) to the source size"
                )
            im = im.resize(size, Image.NEAREST)
        arr = np.asarray(im, dtype=np.float32) / 255.0
    return torch.from_numpy(arr.copy()).unsqueeze(0)


def _images(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTS:
            if p.stem in found:
                raise CLIError(f"{folder} has two images named {p.stem!r} ({found[p.stem].name}, {p.name})")
            found[p.stem] = p
    return found


def find_pairs(source: Path, edited: Path, warn=lambda msg: print(msg, file=sys.stderr)) -> list[Pair]:
    for p in (source, edited):
        if not p.exists():
            raise CLIError(f"{p} does not exist")
    if source.is_file() and edited.is_file():
        return [Pair(edited.stem, source, edited)]
    if source.is_file():
        pairs = [Pair(name, source, p) for name, p in _images(edited).items()]
    elif edited.is_file():
        raise CLIError(
            "SOURCE is a folder but EDITED is a file; give two folders, two files, or one "
            "source file and a folder of edits"
        )
    else:
        src, ed = _images(source), _images(edited)
        for name in sorted(set(src) ^ set(ed)):
            warn(f"warning: {name!r} is only in {source if name in src else edited}; skipped")
        pairs = [Pair(name, src[name], ed[name]) for name in sorted(set(src) & set(ed))]
    if not pairs:
        raise CLIError(f"no image pairs found in {source} and {edited} (extensions: {', '.join(IMAGE_EXTS)})")
    return pairs


def _attach(pairs: list[Pair], mask: Optional[Path], prompt: Optional[str], prompts: Optional[Path], warn) -> None:
    masks = _images(mask) if mask is not None and mask.is_dir() else None
    if mask is not None and not mask.exists():
        raise CLIError(f"mask {mask} does not exist")
    table = None
    if prompts is not None:
        try:
            table = json.loads(prompts.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise CLIError(f"--prompts {prompts}: cannot read a JSON object {{name: prompt}} ({e})") from None
        if not isinstance(table, dict):
            raise CLIError(f"--prompts {prompts}: expected a JSON object {{name: prompt}}")
    for p in pairs:
        if masks is not None:
            p.mask = masks.get(p.name)
            if p.mask is None:
                warn(f"warning: no mask named {p.name!r} in {mask}; background metrics left empty for it")
        elif mask is not None:
            p.mask = mask
        p.prompt = prompt
        if table is not None:
            p.prompt = table.get(p.name, prompt)
            if p.prompt is None:
                warn(f"warning: no prompt for {p.name!r} in {prompts}; CLIP left empty for it")


# ------------------------------------------------------------------------------------ command


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m bench.metrics",
        description="Score edited images against their sources: PSNR, SSIM, optional LPIPS and CLIP score, "
        "and PIE-Bench background metrics with an edit mask. Prints a markdown table.",
    )
    ap.add_argument("source", type=Path, help="source image file or folder")
    ap.add_argument("edited", type=Path, help="edited image file or folder (pairs by file name without extension)")
    ap.add_argument("--mask", type=Path, help="edit mask image (white = edited) or folder of masks by pair name")
    ap.add_argument(
        "--resize",
        action="store_true",
        help="resize edited images (bicubic) and masks (nearest) to the source size instead of refusing",
    )
    ap.add_argument("--lpips", choices=("alex", "vgg"), help="add LPIPS with this backbone (needs local weights)")
    ap.add_argument("--lpips-dir", type=Path, help="folder with the backbone and LPIPS linear weight files")
    ap.add_argument(
        "--lpips-backbone",
        type=Path,
        help="torchvision backbone state dict (alexnet-owt-7be5be79.pth / vgg16-397923af.pth)",
    )
    ap.add_argument("--lpips-linear", type=Path, help="LPIPS v0.1 linear weights (alex.pth / vgg.pth)")
    ap.add_argument(
        "--clip",
        nargs="?",
        const="openai/clip-vit-large-patch14",
        metavar="MODEL",
        help="add CLIP score of each edited image vs its prompt; MODEL is a local folder or a HF id "
        "in the cache (default openai/clip-vit-large-patch14); never downloads. Without MODEL, "
        "put --clip after SOURCE EDITED",
    )
    ap.add_argument("--prompt", help="prompt (the edit's target prompt) for every pair")
    ap.add_argument("--prompts", type=Path, help="JSON object {pair name: prompt}")
    ap.add_argument("--device", default="cpu", help="device for LPIPS/CLIP (default cpu)")
    ap.add_argument("--json", type=Path, help="write the table, means and settings as JSON here")
    ap.add_argument("--markdown", type=Path, help="write the markdown table here")
    return ap


def run(args: argparse.Namespace, out=None, err=None) -> dict:
    """Execute a parsed command line; returns the JSON report. Raises :class:`CLIError`."""
    out = out or sys.stdout
    err = err or sys.stderr

    def warn(msg):
        print(msg, file=err)

    if args.clip and not (args.prompt or args.prompts):
        raise CLIError("--clip needs the text to score against: --prompt TEXT or --prompts FILE.json")
    pairs = find_pairs(args.source, args.edited, warn)
    _attach(pairs, args.mask, args.prompt, args.prompts, warn)

    lpips_model = clip_scorer = None
    if args.lpips:
        try:
            lpips_model = LPIPS.from_pretrained(args.lpips, args.lpips_backbone, args.lpips_linear, args.lpips_dir).to(
                args.device
            )
        except LPIPSWeightsMissing as e:
            raise CLIError(str(e)) from None
    if args.clip:
        try:
            clip_scorer = ClipScorer.from_pretrained(args.clip, device=args.device)
        except ClipWeightsMissing as e:
            raise CLIError(str(e)) from None

    rows = []
    for p in pairs:
        src = load_image(p.source)
        size = (src.shape[2], src.shape[1])
        ed = load_image(p.edited)
        if ed.shape != src.shape:
            if not args.resize:
                raise CLIError(
                    f"{p.edited} is {ed.shape[2]}×{ed.shape[1]} but {p.source} is {size[0]}×{size[1]}; "
                    "pass --resize to scale edited images to the source size"
                )
            ed = load_image(p.edited, size)
        mask = load_mask(p.mask, size, args.resize) if p.mask is not None else None
        try:
            values = score_pair(src, ed, mask=mask, prompt=p.prompt, lpips_model=lpips_model, clip_scorer=clip_scorer)
        except pixel.MetricInputError as e:
            raise CLIError(f"{p.name}: {e}") from None
        rows.append(
            {
                "name": p.name,
                "source": str(p.source),
                "edited": str(p.edited),
                "mask": str(p.mask) if p.mask else None,
                "prompt": p.prompt,
                **values,
            }
        )

    keys = metric_keys(rows)
    means, counts = summarize(rows, keys)
    table = markdown_table(rows, keys, means)
    report = {
        "settings": {
            "lpips": args.lpips,
            "clip": args.clip,
            "mask": str(args.mask) if args.mask else None,
            "resize": args.resize,
            "device": args.device,
        },
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "metrics": keys,
        "rows": [{k: json_value(v) for k, v in r.items()} for r in rows],
        "mean": {k: json_value(v) for k, v in means.items()},
        "finite_count": counts,
    }
    print(table, file=out)
    if args.markdown:
        args.markdown.write_text(
            f"# EMS metrics\n\nsource: `{args.source}`  \nedited: `{args.edited}`\n\n{table}\n", encoding="utf-8"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except CLIError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
