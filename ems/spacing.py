"""Even α steps: place a sweep's values so that consecutive items change by equal amounts.

A sweep typed as 0, 0.25, 0.5, 0.75, 1 is even in α, not in what the picture does: the model's
response to the interpolated embedding is far from linear (in the toy world nothing happens for
half the range, then the colour jumps). Here the model measures its own response: ``features``
holds one tensor per α of a dense grid between the first and the last typed value (the adapter
uses the model's denoised prediction of the noised source latent at the schedule's first σ, all
grid points in one batched call). The cumulative change along the grid, s(α) (the polyline's arc
length), is then inverted: each typed value's place in the typed range becomes its share of the
change, so evenly typed values give equal steps of change, and the first and the last value stay
exactly as typed.

All of this is ours (the measurement, the arc length and the inversion); related work places α by
search so that consecutive outputs are equidistant, which this approximates with one probe.

Shapes: ``features`` (N, ...) for a grid of N values; distances are root-mean-square over all
elements of an item, so they do not grow with the latent's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from .validation import InputError

SPACINGS = ("as typed", "even")
# Probe points between the first and the last typed value: enough to resolve a jump that takes a
# tenth of the range, few enough for one batch.
DEFAULT_DENSITY = 17
MAX_DENSITY = 129


# The automatic range (ours): probe every AUTO_STEP from the start to the end of the range where
# images usually hold, and stop before the response turns away from the edit's own direction
# (cosine of a step with the first unit's change below TURN_COS: the picture starts changing in
# other ways, which is how it breaks) or fades (a step's rate below FADE_RATE of the first unit's
# mean rate: the edit has saturated). It never stops before one unit, the full edit.
AUTO_STEP = 0.125
TURN_COS = 0.5
FADE_RATE = 0.25


class SpacingError(InputError):
    pass


@dataclass(frozen=True)
class Respaced:
    """The α the sweep runs, with what the probe measured (for the labels and the log)."""

    alphas: list[float]
    grid: list[float]
    change: list[float]  # s(α) on the grid, normalised to end at 1 (all 0 when nothing changed)
    flat: bool  # the probe saw no change at all: the typed values are kept


def check_typed(alphas: Sequence[float]) -> None:
    """Even spacing needs at least two values in strictly increasing or decreasing order."""
    if len(alphas) < 2:
        raise SpacingError('even spacing needs at least two alpha values (e.g. "0, 0.25, 0.5, 0.75, 1").')
    steps = [b - a for a, b in zip(alphas, alphas[1:])]
    if not (all(d > 0 for d in steps) or all(d < 0 for d in steps)):
        raise SpacingError(
            "even spacing needs the alpha values in increasing or decreasing order without repeats; "
            "sort them, or choose spacing 'as typed'."
        )


def probe_grid(alphas: Sequence[float], density: int = DEFAULT_DENSITY) -> list[float]:
    """``density`` evenly spaced α from the first to the last typed value, both included."""
    check_typed(alphas)
    if not 2 <= density <= MAX_DENSITY:
        raise SpacingError(f"the probe density must be between 2 and {MAX_DENSITY}, not {density}.")
    first, last = float(alphas[0]), float(alphas[-1])
    return [first + (last - first) * j / (density - 1) for j in range(density)]


def _flat(features: torch.Tensor) -> torch.Tensor:
    """(N, ...) → (N, elements) float64, refused when not finite."""
    flat = features.reshape(features.shape[0], -1).double()
    if not torch.isfinite(flat).all():
        raise SpacingError("the model's probe prediction is not finite; check the model and the latent.")
    return flat


def arc_length(features: torch.Tensor) -> torch.Tensor:
    """s (N,) float64: s[0] = 0, s[j] = Σ_{i<j} rms(features[i+1] − features[i])."""
    if features.ndim < 1 or features.shape[0] < 2:
        raise SpacingError("the probe needs at least two grid points.")
    flat = _flat(features)
    steps = (flat[1:] - flat[:-1]).pow(2).mean(dim=1).sqrt()
    return torch.cat([steps.new_zeros(1), steps.cumsum(0)])


def invert(grid: Sequence[float], s: torch.Tensor, targets: Sequence[float]) -> list[float]:
    """α at each target value of s (piecewise linear between grid points; s non-decreasing).

    Where s is flat over a stretch, the target's α is the stretch's first point, so a value is
    never placed inside a span the model does not respond to."""
    values = [float(v) for v in s]
    out = []
    for t in targets:
        j = next((i for i, v in enumerate(values) if v >= t - 1e-12), len(values) - 1)
        if j == 0:
            out.append(float(grid[0]))
            continue
        lo, hi = values[j - 1], values[j]
        w = 0.0 if hi <= lo else (t - lo) / (hi - lo)
        out.append(float(grid[j - 1]) + min(max(w, 0.0), 1.0) * (float(grid[j]) - float(grid[j - 1])))
    return out


def respace(alphas: Sequence[float], grid: Sequence[float], features: torch.Tensor) -> Respaced:
    """The sweep's α with equal steps of measured change (see the module doc).

    ``alphas``: the typed values (strictly monotone); ``grid``: ``probe_grid(alphas, N)``;
    ``features`` (N, ...): the model's response at each grid point."""
    check_typed(alphas)
    if len(grid) != features.shape[0]:
        raise SpacingError(f"the probe has {features.shape[0]} results for {len(grid)} grid points.")
    s = arc_length(features)
    total = float(s[-1])
    first, last = float(alphas[0]), float(alphas[-1])
    if not math.isfinite(total) or total <= 0.0:
        return Respaced([float(a) for a in alphas], list(map(float, grid)), [0.0] * len(grid), True)
    shares = [(float(a) - first) / (last - first) for a in alphas]
    placed = invert(grid, s, [share * total for share in shares[1:-1]])
    change = [float(v) / total for v in s]
    return Respaced([first, *placed, last], list(map(float, grid)), change, False)


def auto_grid(start: float, sign: int, limit: float) -> list[float]:
    """Probe α from ``start`` toward ``limit`` every ``AUTO_STEP`` (``start + sign`` is a grid point)."""
    steps = int(math.floor(abs(limit - start) / AUTO_STEP + 1e-9))
    if steps * AUTO_STEP < 1.0:
        raise SpacingError(f"an automatic range needs at least one unit of alpha between {start:g} and {limit:g}.")
    return [start + sign * AUTO_STEP * j for j in range(steps + 1)]


@dataclass(frozen=True)
class AutoStop:
    alpha: float
    index: int  # of ``alpha`` in the grid
    reason: str  # "turns away", "fades" or "range end"


def auto_stop(grid: Sequence[float], features: torch.Tensor) -> AutoStop:
    """Where an automatic range ends (see ``TURN_COS`` / ``FADE_RATE``), on the probe of ``auto_grid``.

    ``features`` (N, ...): the model's response at each grid point."""
    if len(grid) != features.shape[0] or len(grid) < 3:
        raise SpacingError(f"the probe has {features.shape[0]} results for {len(grid)} grid points.")
    flat = _flat(features)
    unit_index = int(round(1.0 / AUTO_STEP))
    unit = flat[unit_index] - flat[0]
    unit_rate = float(unit.pow(2).mean().sqrt())  # the mean change per unit of α over the full edit
    if unit_rate == 0.0:
        return AutoStop(float(grid[unit_index]), unit_index, "fades")
    steps = flat[1:] - flat[:-1]
    for j in range(unit_index, len(steps)):  # the step from grid[j] to grid[j + 1]
        step = steps[j]
        rate = float(step.pow(2).mean().sqrt()) / AUTO_STEP
        norm = float(step.norm()) * float(unit.norm())
        cos = float(step @ unit) / norm if norm > 0 else 0.0
        if rate < FADE_RATE * unit_rate:  # first: a step that barely moves has no direction to judge
            return AutoStop(float(grid[j]), j, "fades")
        if cos < TURN_COS:
            return AutoStop(float(grid[j]), j, "turns away")
    return AutoStop(float(grid[-1]), len(grid) - 1, "range end")
