"""Render each example workflow's thumbnail: a result, not the wiring — the source and its edits.

    bash scripts/tool.sh -m scripts.render_thumbnails [NAME …]   # default: every workflow

Starts ComfyUI with this pack and runs every template on the toy world: the toy templates exactly as
shipped; the SD3 ones the way ``--demo`` runs them (the toy loader for the SD3 loaders, the toy
scene as the photo, typed toy captions for the LLM, the toy's measured settings), with the few
inputs a template adds (a reference photo, a second edit, a prompt pair) given toy-world values
here. Each ``<name>.jpg`` shows the source, the edit at α = 1 (or the single edit) and the labelled
α grid where the template makes one, with a line saying whether it was run as shipped or on the toy
world in SD3's place. The frontend draws it inside a square card, so the card is square.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from comfyui_ems.ems.alphas import parse_alphas
from comfyui_ems.toyworld.scenes import Scene, render
from comfyui_ems.toyworld.settings import TOY
from headless.__main__ import build_prompt
from headless.comfy_process import ComfyServer, prepare_base
from headless.workflow import nodes_of

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_DIR = REPO / "example_workflows"

CARD = 480
BACKGROUND, INK, DIM = (30, 32, 38), (236, 238, 242), (160, 166, 178)
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

# The toy world's stand-ins for what the SD3 templates edit: the same drawn scene as the toy templates.
SOURCE_SCENE = Scene(colour="red", shape="circle", count=2, size="large", background="white", layout=2_000_007)
TARGET_SCENE = SOURCE_SCENE.replace(colour="blue")
SOURCE = "two large red circles on a white background"
TARGET = "two large blue circles on a white background"
ATTRIBUTE = "blue circles"
SECOND_TARGET = "two large red circles on a black background"  # the two-edit template's second edit


def toy_args(workflow: dict) -> argparse.Namespace:
    """What ``--demo`` sets for a workflow (headless/__main__.py run()), with this script's captions."""
    flow = any(n.get("type") == "EMSFlowEdit" for n in workflow["nodes"])
    return argparse.Namespace(
        demo=True,
        source=SOURCE,
        target=TARGET,
        attribute=ATTRIBUTE,
        alphas=None,  # each template's own sweep
        steps=TOY.steps,
        denoise=TOY.flow_denoise if flow else TOY.denoise,
        cfg=TOY.flow_cfg if flow else TOY.cfg,
        source_cfg=TOY.flow_source_cfg,
        seed=TOY.seed,
        iterations=None,
        constraint=None,
        megapixels=None,
        instruction=None,
        llm_model=None,
        provider=None,
        base_url=None,
    )


def on_the_toy_world(workflow: dict, info: dict) -> tuple[dict, bool]:
    """The API prompt to run and whether it is the template exactly as shipped."""
    if any(n.get("type") == "EMSToyWorldLoader" for n in workflow["nodes"]):
        from headless.workflow import ui_to_api

        return ui_to_api(workflow, info), True
    prompt = build_prompt(toy_args(workflow), workflow, info, "source.png", None)
    for key in nodes_of(prompt, "LoadImage"):
        if "reference" in prompt[key].get("_meta", {}).get("title", "").lower():
            prompt[key]["inputs"]["image"] = "reference.png"
    encoders = nodes_of(prompt, "EMSEncodePrompts")
    for key in encoders[1:]:  # a second edit from the same source: the background
        prompt[key]["inputs"].update(target_prompt=SECOND_TARGET, attribute_prompt="black background")
    for key in nodes_of(prompt, "CLIPTextEncode"):
        title = prompt[key].get("_meta", {}).get("title", "").lower()
        text = {"prompt a (without)": SOURCE, "prompt b (with the attribute)": TARGET}.get(title)
        # "what the result shows" is a generic "a photo" on SD3: the toy's generic caption is "".
        text = text or ("" if "negative" in title or "result" in title else None)
        if text is not None:
            prompt[key]["inputs"]["text"] = text
    for key in nodes_of(prompt, "BasicScheduler"):
        prompt[key]["inputs"]["scheduler"] = "simple"  # the toy's measured schedule
    empty = set(nodes_of(prompt, "EmptySD3LatentImage"))
    for key in nodes_of(prompt, "KSampler"):
        inputs = prompt[key]["inputs"]
        inputs.update(steps=TOY.steps, cfg=TOY.cfg)
        if str(inputs["latent_image"][0]) in empty:
            inputs["denoise"] = 1.0  # text-to-image from an empty latent, as shipped
    return prompt, False


def saved_images(server: ComfyServer, prompt: dict, history: dict) -> dict[str, list[Image.Image]]:
    out = {}
    for key in nodes_of(prompt, "SaveImage"):
        prefix = prompt[key]["inputs"]["filename_prefix"]
        out[prefix] = [
            Image.open(server.base / "output" / i["subfolder"] / i["filename"]).convert("RGB")
            for i in history["outputs"][key]["images"]
        ]
    return out


def font(px: int):
    try:
        return ImageFont.truetype(FONT, px)
    except OSError:
        return ImageFont.load_default()


def fit(image: Image.Image, width: int, height: int) -> Image.Image:
    """Grown with nearest neighbours (pixel art stays sharp), shrunk smoothly."""
    factor = min(width / image.width, height / image.height)
    if factor >= 1:
        return image.resize((int(image.width * factor), int(image.height * factor)), Image.NEAREST)
    return image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))), Image.LANCZOS)


def card(source: Image.Image, edit: Image.Image | None, grid: Image.Image | None, edit_label: str, shipped: bool):
    img = Image.new("RGB", (CARD, CARD), BACKGROUND)
    d = ImageDraw.Draw(img)
    top = CARD // 2 - 30 if grid is not None else CARD - 90
    side = min(top - 40, (CARD - 90) // 2)
    pair = [("source", source)] + ([(edit_label, edit)] if edit is not None else [])
    x = (CARD - (len(pair) * side + (len(pair) - 1) * 50)) // 2
    for i, (label, tile) in enumerate(pair):
        tile = fit(tile, side, side)
        img.paste(tile, (x + (side - tile.width) // 2, 20 + (side - tile.height) // 2))
        d.text((x + side // 2, 26 + side), label, fill=INK, anchor="mt", font=font(18))
        if i == 0 and edit is not None:
            d.text((x + side + 25, 20 + side // 2), "→", fill=INK, anchor="mm", font=font(34))
        x += side + 50
    if grid is not None:
        g = fit(grid, CARD - 30, CARD - top - 60)
        img.paste(g, ((CARD - g.width) // 2, top + 20 + (CARD - top - 60 - g.height) // 2))
    note = "the toy world, as shipped" if shipped else "run on the toy world, not on the model it loads"
    d.text((CARD // 2, CARD - 14), note, fill=DIM, anchor="mb", font=font(16))
    return img


def thumbnail(server: ComfyServer, path: Path) -> Image.Image:
    workflow = json.loads(path.read_text())
    prompt, shipped = on_the_toy_world(workflow, server.object_info())
    history = server.run(prompt, timeout=900)
    saved = saved_images(server, prompt, history)
    grid = next((v[0] for k, v in saved.items() if "grid" in k), None)
    singles = [v for k, v in saved.items() if "grid" not in k]
    edit, label = (singles[-1][-1], "edit") if singles else (None, "")
    for sweep in nodes_of(prompt, "EMSAlphaSweep"):
        alphas = parse_alphas(prompt[sweep]["inputs"]["alphas"])
        tiles = next((v for k, v in saved.items() if "sweep" in k and len(v) == len(alphas)), None)
        if tiles and 1.0 in alphas:
            edit, label = tiles[alphas.index(1.0)], "α = 1"
    source = Image.fromarray(render(SOURCE_SCENE))
    return card(source, edit, grid, label, shipped)


def main() -> None:
    comfy = os.environ.get("COMFYUI_DIR") or sys.exit("set COMFYUI_DIR to a ComfyUI checkout")
    names = set(sys.argv[1:])
    paths = [p for p in sorted(WORKFLOW_DIR.glob("*.json")) if not names or p.stem in names]
    if names - {p.stem for p in paths}:
        sys.exit(f"no such workflow: {', '.join(sorted(names - {p.stem for p in paths}))}")
    with tempfile.TemporaryDirectory(prefix="ems-thumbs-") as tmp:
        base = prepare_base(Path(tmp))
        Image.fromarray(render(SOURCE_SCENE)).save(base / "input" / "source.png")
        Image.fromarray(render(TARGET_SCENE)).save(base / "input" / "reference.png")
        with ComfyServer(comfy, base) as server:
            for path in paths:
                out = path.with_suffix(".jpg")
                thumbnail(server, path).save(out, "JPEG", quality=90, optimize=True)
                print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
