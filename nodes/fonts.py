"""Label fonts from the system, for the grid: file access, so it lives with the adapters, and the
method (``ems.grid``) takes whatever font it is handed."""

from __future__ import annotations

import os

from PIL import ImageFont

from ..ems.grid import builtin_font

# Fonts that carry Greek (α) and the minus sign on common systems. Pillow's built-in font has
# neither, so it is only the last resort (and then labels are spelled in ASCII).
FONT_CANDIDATES = (
    "DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    os.path.join(os.environ.get("WINDIR", "C:\\Windows"), "Fonts", "arial.ttf"),
    "LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)


def system_font(size: int):
    """A font of roughly ``size`` pixels and whether it can draw non-ASCII (α, −): the first
    system font found, else Pillow's built-in one (ASCII only)."""
    for name in FONT_CANDIDATES:
        try:
            return ImageFont.truetype(name, size), True
        except OSError:
            continue
    return builtin_font(size)
