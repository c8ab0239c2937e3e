"""α schedules for sweeps: ``"0, 0.25, 0.5, 1"``, ``"start:stop:count"`` (inclusive), or
``"start:auto:count"`` (``-auto`` for the opposite direction), whose stop the model measures."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from .validation import ALPHA, SAFE_ALPHA, InputError, outside_safe_alpha

# The sweep a user gets without typing one: no edit, three even steps, the full edit.
DEFAULT_SWEEP = "0, 0.25, 0.5, 0.75, 1"
MAX_SWEEP = 64  # one batch; a typo like "0:1:1000" should not try to render 1000 images
SAFE_RANGE = SAFE_ALPHA  # allowed beyond, with a warning (ems/validation.py)


class AlphaScheduleError(InputError):
    """An α schedule string that cannot be parsed; the message shows the accepted syntax."""


class AlphaOutOfRange(AlphaScheduleError):
    """A schedule value outside ``ALPHA``'s range (callers may add where else that range applies)."""


_SYNTAX = 'write a list like "0, 0.25, 0.5, 1" or a range "start:stop:count" like "-1:2:7"'


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise AlphaScheduleError(f"{what} {text.strip()!r} is not a number; {_SYNTAX}.") from None
    if not math.isfinite(value):
        raise AlphaScheduleError(f"{what} {text.strip()!r} is not finite; {_SYNTAX}.")
    return value


@dataclass(frozen=True)
class AutoRange:
    """``"start:auto:count"``: count values from start to a stop found by measurement (``sign``
    +1 toward the edit, −1 away from it)."""

    start: float
    sign: int
    count: int


def parse_auto(text: str, max_count: int = MAX_SWEEP) -> Optional[AutoRange]:
    """The automatic range a schedule asks for, or None for an ordinary schedule."""
    parts = [p.strip() for p in (text or "").split(":")]
    if len(parts) != 3 or parts[1].lower() not in ("auto", "+auto", "-auto"):
        return None
    start = _in_range(_number(parts[0], "start"))
    count = _number(parts[2], "count")
    if count != int(count) or not 2 <= count <= max_count:
        raise AlphaScheduleError(
            f"count {parts[2]!r} of an automatic range must be a whole number from 2 to {max_count}."
        )
    sign = -1 if parts[1].lower() == "-auto" else 1
    limit = SAFE_RANGE[1] if sign > 0 else SAFE_RANGE[0]
    if (limit - start) * sign < 1.0:
        raise AlphaScheduleError(
            f"an automatic range from {start:g} has less than one unit of alpha before {limit:g}, the end of the "
            "range where images usually hold; start nearer 0."
        )
    return AutoRange(start, sign, int(count))


def parse_alphas(text: str, max_count: int = MAX_SWEEP) -> list[float]:
    """Parse an α schedule into a list of floats.

    - ``"a, b, c"`` (commas, semicolons or whitespace) → ``[a, b, c]`` in the order written;
    - ``"start:stop:count"`` → ``count`` evenly spaced values from start to stop inclusive.

    Every value must lie in ``ALPHA``'s range (±10, the same as a single α's). An automatic range
    (``parse_auto``) has no values until it is measured, so it is refused here.
    """
    if parse_auto(text, max_count) is not None:
        raise AlphaScheduleError(
            "an automatic range (start:auto:count) needs the model to measure it; use it in EMS Alpha Sweep."
        )
    return [_in_range(a) for a in _parse(text, max_count)]


def _in_range(alpha: float) -> float:
    try:
        return ALPHA.check(alpha)
    except InputError as e:
        raise AlphaOutOfRange(str(e)) from None


def _parse(text: str, max_count: int) -> list[float]:
    text = (text or "").strip()
    if not text:
        raise AlphaScheduleError(f"the alpha schedule is empty; {_SYNTAX}.")
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise AlphaScheduleError(f"range {text!r} needs exactly three parts; {_SYNTAX}.")
        start, stop = _number(parts[0], "start"), _number(parts[1], "stop")
        count = _number(parts[2], "count")
        if count != int(count) or count < 1:
            raise AlphaScheduleError(f"count {parts[2].strip()!r} must be a whole number ≥ 1; {_SYNTAX}.")
        count = int(count)
        if count > max_count:
            raise AlphaScheduleError(f"{count} alphas is more than {max_count} in one batch; use fewer.")
        if count == 1:
            return [start]
        return [start + (stop - start) * i / (count - 1) for i in range(count)]
    tokens = [t for t in text.replace(";", ",").replace(",", " ").split() if t]
    values = [_number(t, "value") for t in tokens]
    if len(values) > max_count:
        raise AlphaScheduleError(f"{len(values)} alphas is more than {max_count} in one batch; use fewer.")
    return values


def format_alpha(alpha: float) -> str:
    """A short label such as ``α=0.25`` (at most 3 decimals, trailing zeros dropped)."""
    text = f"{alpha:.3f}".rstrip("0").rstrip(".")
    return f"α={'0' if text in ('-0', '') else text}"


def outside_safe_range(alphas: list[float]) -> list[float]:
    """The alphas likely to break the image (allowed, but worth a warning)."""
    return outside_safe_alpha(alphas)
