"""Render each example workflow's thumbnail: the graph as the real ComfyUI frontend draws it.

    bash scripts/tool.sh -m scripts.render_thumbnails [NAME …]   # default: every workflow

Starts ComfyUI with this pack, opens it in headless Chromium (Debian's ``chromium``), loads each
``example_workflows/*.json``, fits the view and saves ``<name>.jpg`` next to it. The LoadImage
preview shows the drawn demo input (headless/demo.py), not an invented result.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import tempfile
from pathlib import Path

from PIL import Image

from headless.comfy_process import ComfyServer, prepare_base
from headless.demo import make_test_image
from support.browser import Chromium
from support.frontend import fit_view, load_workflow, open_comfy

REPO = Path(__file__).resolve().parents[1]

VIEW = (2400, 1350)  # rendered at this size, so node text stays legible when fitted...
THUMB_WIDTH = 1200  # ...and saved at this width
MENU_TOP, SIDEBAR = 80, 70  # the frontend's top bar and left icon bar, cropped away


def main() -> None:
    comfy = os.environ.get("COMFYUI_DIR") or sys.exit("set COMFYUI_DIR to a ComfyUI checkout")
    names = set(sys.argv[1:])
    paths = [p for p in sorted((REPO / "example_workflows").glob("*.json")) if not names or p.stem in names]
    if names - {p.stem for p in paths}:
        sys.exit(f"no such workflow: {', '.join(sorted(names - {p.stem for p in paths}))}")
    with tempfile.TemporaryDirectory(prefix="ems-thumbs-") as tmp:
        base = prepare_base(Path(tmp))
        make_test_image(base / "input" / "example.png")
        with ComfyServer(comfy, base) as server, Chromium(*VIEW) as browser:

            async def script(page):
                await open_comfy(page, server)
                for path in paths:
                    result = await load_workflow(page, json.loads(path.read_text()))
                    if result["missing"]:
                        raise SystemExit(f"{path.name}: missing node types {result['missing']}")
                    await fit_view(page)
                    await asyncio.sleep(1.0)  # the fit animation and the image preview
                    shot = Path(tmp) / "shot.jpg"
                    await page.screenshot(shot, quality=92)
                    img = Image.open(shot).crop((SIDEBAR, MENU_TOP, VIEW[0], VIEW[1]))
                    img = img.resize((THUMB_WIDTH, round(img.height * THUMB_WIDTH / img.width)), Image.LANCZOS)
                    out = path.with_suffix(".jpg")
                    buf = io.BytesIO()
                    img.convert("RGB").save(buf, "JPEG", quality=85, optimize=True)
                    out.write_bytes(buf.getvalue())
                    print(f"wrote {out.relative_to(REPO)}")

            browser.run(script)


if __name__ == "__main__":
    main()
