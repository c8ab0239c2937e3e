"""Draw the pack's Registry icon (web/icon.png): the edit at five strengths, red → blue.

    python -m scripts.make_icon

400×400, square, PNG: the Comfy Registry's limits for ``[tool.comfy] Icon`` (pyproject.toml points
at this file in the repository). Drawn, not hand-made, so it can be rebuilt.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
ICON = REPO / "web" / "icon.png"
SIZE = 400
SOURCE, TARGET = (220, 50, 47), (38, 110, 220)  # the demo's red → blue
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def mix(a: tuple, b: tuple, t: float) -> tuple:
    return tuple(round(x + t * (y - x)) for x, y in zip(a, b))


def draw(size: int = SIZE) -> Image.Image:
    scale = 4  # drawn large and reduced: smooth edges
    s = size * scale
    img = Image.new("RGB", (s, s), (24, 26, 32))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((0, 0, s - 1, s - 1), radius=s // 9, fill=(34, 37, 46))
    r = s // 13
    y = round(s * 0.64)
    for i in range(5):
        t = i / 4
        x = round(s * (0.14 + 0.18 * i))
        d.ellipse((x - r, y - r, x + r, y + r), fill=mix(SOURCE, TARGET, t))
        d.text((x, y + r + s // 40), f"{t:g}", fill=(200, 204, 214), anchor="mt", font=_font(s // 16))
    d.text((s // 2, round(s * 0.3)), "EMS", fill=(240, 242, 246), anchor="mm", font=_font(s // 4))
    d.text((s // 2, round(s * 0.455)), "α", fill=(200, 204, 214), anchor="mm", font=_font(s // 12))
    return img.resize((size, size), Image.LANCZOS)


def _font(px: int):
    try:
        return ImageFont.truetype(FONT, px)
    except OSError:
        return ImageFont.load_default(px)


def main() -> None:
    ICON.parent.mkdir(parents=True, exist_ok=True)
    draw().save(ICON, optimize=True)
    print(f"wrote {ICON.relative_to(REPO)}")


if __name__ == "__main__":
    main()
