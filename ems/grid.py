"""A labelled image grid for α sweeps: every tile with its label (e.g. ``α=0.25``) underneath.

Pure function over ComfyUI's IMAGE layout (a float tensor ``(B, H, W, C)`` in 0…1); drawing is
done with Pillow so the result is an ordinary IMAGE that SaveImage/PreviewImage accept.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .validation import InputError

AUTO_ROW = 8  # up to this many tiles, "auto" puts a sweep in one row, the way people read it


class GridError(InputError):
    """Bad grid input (shape, column count); the message says what to connect instead."""


def grid_shape(count: int, columns: int) -> tuple[int, int]:
    """(rows, columns) for ``count`` tiles; ``columns <= 0`` means automatic."""
    if count < 1:
        raise GridError("the image batch is empty.")
    if columns <= 0:
        columns = count if count <= AUTO_ROW else math.ceil(math.sqrt(count))
    columns = min(columns, count)
    return math.ceil(count / columns), columns


def split_labels(text: str | None, count: int) -> list[str]:
    """One label per image from newline-separated text; missing labels are blank, extras dropped."""
    labels = [line.strip() for line in (text or "").splitlines()]
    while labels and not labels[-1] and len(labels) > count:
        labels.pop()
    return (labels + [""] * count)[:count]


def builtin_font(size: int) -> tuple[ImageFont.ImageFont, bool]:
    """Pillow's own font (no file to find), ASCII only: ``(font, False)``. The node hands the grid
    a system font that can draw α and −; this is the default when none is given."""
    try:
        return ImageFont.load_default(size=size), False
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default(), False


def _ascii(label: str) -> str:
    return label.replace("α", "alpha").replace("−", "-").encode("ascii", "replace").decode()


def labelled_grid(
    images: torch.Tensor,
    labels: list[str],
    columns: int = 0,
    gap: int = 4,
    background: float = 1.0,
    on_tile=None,
    load_font: Callable[[int], tuple[ImageFont.ImageFont, bool]] = builtin_font,
) -> torch.Tensor:
    """Arrange ``images`` (B, H, W, C) in a grid with ``labels[i]`` under tile i.

    Returns a single IMAGE ``(1, H', W', C)`` in the input's dtype and device. The label strip's
    height scales with the tile so labels stay readable on 64 px previews and 1024 px renders.
    ``on_tile(i, count)`` is called before tile i is drawn: the caller's hook for a progress bar
    and for Cancel (it may raise to stop the grid), so this module needs no host application.
    ``load_font(px)`` returns a font of about ``px`` pixels and whether it draws non-ASCII; without one
    that does, labels are spelled in ASCII ("alpha=-1").
    """
    if images.ndim != 4:
        raise GridError(f"expected an IMAGE batch (B, H, W, C), got shape {tuple(images.shape)}.")
    count, height, width, channels = images.shape
    rows, cols = grid_shape(count, columns)
    labels = (list(labels) + [""] * count)[:count]
    has_text = any(labels)
    font_px = max(10, min(48, round(height * 0.07)))
    font, unicode_ok = load_font(font_px)
    if not unicode_ok:
        labels = [_ascii(t) for t in labels]
    strip = font_px + 2 * max(3, font_px // 3) if has_text else 0

    cell_h = height + strip
    canvas_w = cols * width + (cols + 1) * gap
    canvas_h = rows * cell_h + (rows + 1) * gap
    fill = int(round(background * 255))
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(channels)
    if mode is None:
        raise GridError(f"images with {channels} channels cannot be drawn; expected 1, 3 or 4.")
    canvas = Image.new(mode, (canvas_w, canvas_h), (fill,) * channels if channels > 1 else fill)
    draw = ImageDraw.Draw(canvas)
    ink = (0,) * channels if channels > 1 else 0
    if mode == "RGBA":
        ink = (0, 0, 0, 255)

    pixels = (images.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    for i in range(count):
        if on_tile is not None:
            on_tile(i, count)
        r, c = divmod(i, cols)
        x, y = gap + c * (width + gap), gap + r * (cell_h + gap)
        tile = pixels[i][..., 0] if channels == 1 else pixels[i]
        canvas.paste(Image.fromarray(tile, mode), (x, y))
        if labels[i]:
            text = _fit(draw, labels[i], font, width, "…" if unicode_ok else "...")
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            tx = x + (width - (right - left)) // 2 - left
            ty = y + height + (strip - (bottom - top)) // 2 - top
            draw.text((tx, ty), text, fill=ink, font=font)

    out = torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0)
    if channels == 1:
        out = out[..., None]
    return out[None].to(dtype=images.dtype, device=images.device)


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int, ellipsis: str) -> str:
    """``text``, or its longest prefix that fits in ``width`` pixels with an ellipsis (at least one
    character), found with O(log n) measurements.

    No glyph advances less than a pixel, so at most ``width`` characters can ever fit: a longer
    label is cut to that before anything is measured, which bounds every measurement's cost too
    (a 40,000-character label no longer means 40,000 measurements of up to 40,000 characters).
    """
    if len(text) <= width and draw.textlength(text, font=font) <= width:
        return text
    text = text[: max(1, width)]
    fits, too_long = 1, len(text) + 1  # prefix lengths: fits (or is the 1-character minimum), does not fit
    while too_long - fits > 1:
        mid = (fits + too_long) // 2
        if draw.textlength(text[:mid] + ellipsis, font=font) <= width:
            fits = mid
        else:
            too_long = mid
    return text[:fits] + ellipsis
