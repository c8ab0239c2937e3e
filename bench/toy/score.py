"""Scores of the toy-world evaluation, from decoded images and the scenes' exact readout.

Per (case, method, α) — one *row*:
- ``read``      every attribute read from the pixels (``toyworld.readout.read``);
- ``progress``  the continuous readout of the edited attribute: 0 = source value, 1 = target;
- ``reached``   the edited attribute reads as the target's value;
- ``kept``      fraction of the *other* attributes that still read as the source's;
- ``psnr_out`` / ``ssim_out``  against the drawn source scene, outside the edited region (PIE-Bench's
  masked convention, :mod:`bench.metrics.pixel`). The edited region is the union of the source's and
  the target's object masks (grown 2 px); for a background edit it is everything *but* the objects,
  so preservation is then measured on the objects.
- ``same_as_source``  every attribute reads as the source's (α = 0 must give this).

Per (case, method) — a *sweep*: Spearman's ρ between α and ``progress`` (graded control) and
whether progress never falls by more than ``MONOTONE_TOL`` from one α to the next.
Aggregates are means over cases per (method, kind); NaN-aware (a method that makes the object
vanish has no progress for colour/shape).
"""

from __future__ import annotations

import math
from typing import Iterable, Optional

import numpy as np
import torch

from comfyui_ems.toyworld.readout import object_mask, progress, read

from bench.metrics import masked_psnr, masked_ssim

MONOTONE_TOL = 0.05  # progress may dip this much between neighbouring α and still count as monotone


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """IMAGE (B, H, W, 3) float in [0, 1] → (B, H, W, 3) uint8."""
    return (images.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)


def to_image(pixels: np.ndarray) -> torch.Tensor:
    """(H, W, 3) or (B, H, W, 3) uint8 → IMAGE float (B, H, W, 3)."""
    t = torch.from_numpy(np.asarray(pixels)).float() / 255.0
    return t[None] if t.ndim == 3 else t


def edit_region(case, resolution: int) -> np.ndarray:
    """(H, W) bool: the pixels an edit of ``case`` is allowed to change."""
    blank = np.zeros((resolution, resolution, 3), np.uint8)
    objects = object_mask(blank, case.source) | object_mask(blank, case.target)
    return ~objects if case.kind == "background" else objects


def rank(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), 1-based."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1)
    for v in np.unique(values):
        tied = values == v
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(x: Iterable[float], y: Iterable[float]) -> float:
    """Spearman's ρ (Pearson correlation of average ranks); NaN if either side is constant or NaN."""
    x, y = np.asarray(list(x), dtype=np.float64), np.asarray(list(y), dtype=np.float64)
    if len(x) < 2 or np.isnan(x).any() or np.isnan(y).any():
        return float("nan")
    rx, ry = rank(x), rank(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def monotone(alphas, progress, tol: float = MONOTONE_TOL) -> Optional[bool]:
    order = np.argsort(alphas)
    p = np.asarray(progress, dtype=np.float64)[order]
    if np.isnan(p).any():
        return None
    return bool(np.all(np.diff(p) >= -tol))


def score_images(case, method: str, alphas, images: np.ndarray, source_pixels: np.ndarray) -> list[dict]:
    """One row per α for ``images`` (k, H, W, 3) uint8 of one case and method."""
    mask = torch.from_numpy(edit_region(case, images.shape[1])).float()
    src = to_image(source_pixels)
    edited = to_image(images)
    psnr = masked_psnr(src, edited, mask).tolist()
    ssim = masked_ssim(src, edited, mask).tolist()
    source_attrs = case.source.attributes()
    rows = []
    for i, alpha in enumerate(alphas):
        r = read(images[i])
        others = [k for k in source_attrs if k != case.kind]
        rows.append(
            {
                "method": method,
                "kind": case.kind,
                "alpha": float(alpha),
                "source": source_attrs,
                "target_value": getattr(case.target, case.kind),
                "read": r,
                "progress": progress(images[i], case.source, case.target, case.kind),
                "reached": r[case.kind] == getattr(case.target, case.kind),
                "kept": sum(r[k] == source_attrs[k] for k in others) / len(others),
                "same_as_source": all(r[k] == source_attrs[k] for k in source_attrs),
                "psnr_out": psnr[i],
                "ssim_out": ssim[i],
            }
        )
    return rows


def sweep_scores(rows: list[dict]) -> dict:
    """Graded control of one (case, method) sweep."""
    alphas = [r["alpha"] for r in rows]
    prog = [r["progress"] for r in rows]
    unit = [(a, p) for a, p in zip(alphas, prog) if 0.0 <= a <= 1.0]  # the edit's own range, no extrapolation
    return {
        "spearman": spearman(alphas, prog),
        "monotone": monotone(alphas, prog),
        "monotone_0_1": monotone(*zip(*unit)) if len(unit) > 1 else None,
    }


def nanmean(values) -> float:
    v = [float(x) for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    v = [x for x in v if math.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def at(rows, alpha):
    return [r for r in rows if abs(r["alpha"] - alpha) < 1e-9]


def summarize(cases: list[dict], method: str, kind: Optional[str], alphas) -> dict:
    """Means over the cases of one method (and kind, or all kinds when None)."""
    picked = [c for c in cases if method in c["methods"] and (kind is None or c["kind"] == kind)]
    rows = [r for c in picked for r in c["methods"][method]["rows"]]
    one, zero = at(rows, 1.0), at(rows, 0.0)
    sweeps = [c["methods"][method]["sweep"] for c in picked if len(c["methods"][method]["rows"]) > 1]
    mono = [s["monotone"] for s in sweeps if s["monotone"] is not None]
    mono_unit = [s["monotone_0_1"] for s in sweeps if s["monotone_0_1"] is not None]
    timing = [c["methods"][method] for c in picked]
    return {
        "cases": len(picked),
        "reached_at_1": nanmean(r["reached"] for r in one),
        "kept_at_1": nanmean(r["kept"] for r in one),
        "psnr_out_at_1": nanmean(r["psnr_out"] for r in one),
        "ssim_out_at_1": nanmean(r["ssim_out"] for r in one),
        "progress_at_1": nanmean(r["progress"] for r in one),
        "progress_at_0": nanmean(r["progress"] for r in zero),
        "same_as_source_at_0": nanmean(r["same_as_source"] for r in zero),
        "psnr_out_at_0": nanmean(r["psnr_out"] for r in zero),
        "spearman": nanmean(s["spearman"] for s in sweeps),
        "monotone": float(np.mean(mono)) if mono else float("nan"),
        "monotone_0_1": float(np.mean(mono_unit)) if mono_unit else float("nan"),
        "progress_by_alpha": {f"{a:g}": nanmean(r["progress"] for r in at(rows, a)) for a in alphas},
        "model_calls_per_edit": nanmean(t["calls"] / t["edits"] for t in timing),
        "model_items_per_edit": nanmean(t["items"] / t["edits"] for t in timing),
        "seconds_per_edit": nanmean(t["seconds"] / t["edits"] for t in timing),
    }
