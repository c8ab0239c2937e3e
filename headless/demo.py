"""What ``--demo`` needs on a machine with no weights: the toy world (toyworld/).

The demo edits a drawn toy scene with the toy model — a small text-to-image model of SD3's
architecture trained on such scenes (``python -m toyworld.train``), loaded by the pack's
"EMS Toy World Loader (dev)" node in place of every SD3 loader — and reads each output tile back
with the toy world's exact pixel readout, so the edit can be seen and counted.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from PIL import Image

from comfyui_ems.ems.alphas import format_alpha, parse_alphas
from comfyui_ems.toyworld.edits import attribute_prompt
from comfyui_ems.toyworld.readout import progress, read
from comfyui_ems.toyworld.scenes import RESOLUTION, Scene, caption, render

from .workflow import new_id, nodes_of, relink


def _scene_and_target():
    scene = Scene(colour="red", shape="circle", count=1, size="large", background="white", layout=2_000_007)
    return scene, scene.replace(colour="blue")


def _prompts() -> tuple[str, str, str]:
    scene, target = _scene_and_target()
    return caption(scene), caption(target), attribute_prompt(target, "colour")


# The demo's edit: a colour edit of one held-out (test-split) scene, red → blue.
SOURCE, TARGET, ATTRIBUTE = _prompts()


def make_test_image(path: Path, size: int | None = None) -> Path:
    """The demo's input: the toy scene drawn at ``size`` pixels (default: the toy model's 64)."""
    scene, _ = _scene_and_target()
    Image.fromarray(render(scene, size or RESOLUTION)).save(path)
    return path


def swap_to_toyworld(prompt: dict) -> dict:
    """Run an API-format prompt on the toy model: every model loader (CheckpointLoaderSimple, or
    UNETLoader + TripleCLIPLoader / DualCLIPLoader / CLIPLoader + VAELoader) becomes one EMSToyWorldLoader; the image is fed at
    the toy's own 64×64 (ImageScaleToTotalPixels is bypassed: its smallest setting, 0.01 MP, is
    ~100×100, a size the toy model never saw); the negative prompt is "" (the toy grammar's
    unconditional caption)."""
    prompt = copy.deepcopy(prompt)
    loader = None

    def toy() -> str:
        nonlocal loader
        if loader is None:
            loader = new_id(prompt)
            prompt[loader] = {"class_type": "EMSToyWorldLoader", "inputs": {"family": "SD3"}}
        return loader

    for key in nodes_of(prompt, "CheckpointLoaderSimple"):
        target = toy()
        for slot in range(3):
            relink(prompt, [key, slot], [target, slot])
        del prompt[key]
    for class_type, slot in (
        ("UNETLoader", 0),
        ("TripleCLIPLoader", 1),
        ("DualCLIPLoader", 1),
        ("CLIPLoader", 1),
        ("VAELoader", 2),
    ):
        for key in nodes_of(prompt, class_type):
            relink(prompt, [key, 0], [toy(), slot])
            del prompt[key]
    for key in nodes_of(prompt, "ImageScaleToTotalPixels"):
        relink(prompt, [key, 0], prompt[key]["inputs"]["image"])
        del prompt[key]
    for key in nodes_of(prompt, "EMSEncodePrompts"):
        prompt[key]["inputs"]["negative_prompt"] = ""
    return prompt


def readout_lines(images: list, labels: list[str] | None = None) -> list[str]:
    """One line per output tile: the toy world's readout of every attribute, and how far the colour
    has moved from the source to the target (0 = source colour, 1 = target colour).

    ``images``: paths or (H, W, 3) uint8 arrays (a batch saved by SaveImage); ``labels``: one per
    image (e.g. the α of each sweep item), default "tile i".
    """
    scene, target = _scene_and_target()
    lines = []
    for i, image in enumerate(images):
        pixels = np.asarray(Image.open(image).convert("RGB")) if isinstance(image, (str, Path)) else np.asarray(image)
        seen = read(pixels)
        label = labels[i] if labels and i < len(labels) else f"tile {i}"
        attributes = ", ".join(f"{k} {v}" for k, v in seen.items())
        lines.append(
            f"{label}: {attributes}; colour progress {progress(pixels, scene, target, 'colour'):+.2f} "
            f"({scene.colour} → {target.colour})"
        )
    return lines


def readout_report(saved: list[Path], alphas: str | None) -> list[str]:
    """The runner's per-tile printout: ``readout_lines`` for the sweep's tiles (SaveImage files whose
    name holds "sweep", in batch order), labelled with their α from ``alphas``."""
    tiles = sorted(p for p in saved if "sweep" in Path(p).name)
    try:
        labels = [format_alpha(a) for a in parse_alphas(alphas)] if alphas else None
    except ValueError:
        labels = None
    return ["EMS: toy-world readout of each tile:"] + [f"  {line}" for line in readout_lines(tiles, labels)]


ENLARGE = 4  # the toy's 64 px tiles: a grid a person can read at a glance


def enlarged(saved: list[Path], factor: int = ENLARGE) -> list[Path]:
    """A ``factor``× nearest-neighbour copy of each saved grid (``<name>_x4.png`` beside it)."""
    out = []
    for path in saved:
        path = Path(path)
        if "grid" not in path.name or path.stem.endswith(f"_x{factor}"):
            continue
        with Image.open(path) as image:
            big = image.resize((image.width * factor, image.height * factor), Image.NEAREST)
        target = path.with_name(f"{path.stem}_x{factor}.png")
        big.save(target)
        out.append(target)
    return out
