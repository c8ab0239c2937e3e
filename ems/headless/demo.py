"""What ``--demo`` needs on a machine with no weights: a test image and a tiny random-weight SD3.

The tiny SD3 is built by ComfyUI's own classes (tests/support/tiny_sd3.py) in a ComfyUI-importing
subprocess, and loaded back by the real ComfyUI through UNETLoader plus the test pack's tiny
CLIP/VAE loaders. Its outputs are noise: the demo proves the pipeline runs, not that edits look good.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from PIL import Image, ImageDraw

from .comfy_process import REPO, python_for_comfy

TESTS = REPO / "tests"
TESTPACK = TESTS / "support" / "comfy_testpack"
TINY_UNET = "tiny_sd3.safetensors"
SOURCE = "a photo of a person in a black suit standing in a park"
TARGET = "a photo of a person in a red suit standing in a park"
ATTRIBUTE = "red suit"


def make_test_image(path: Path, size: int = 256) -> Path:
    """A simple drawn scene (sky, grass, a figure in a dark suit) — something to edit."""
    img = Image.new("RGB", (size, size), (135, 190, 235))
    d = ImageDraw.Draw(img)
    d.rectangle([0, size * 0.65, size, size], fill=(80, 160, 70))
    cx = size // 2
    d.ellipse([cx - size * 0.07, size * 0.18, cx + size * 0.07, size * 0.32], fill=(235, 200, 170))
    d.rectangle([cx - size * 0.12, size * 0.32, cx + size * 0.12, size * 0.62], fill=(25, 25, 30))
    d.rectangle([cx - size * 0.1, size * 0.62, cx + size * 0.1, size * 0.85], fill=(20, 20, 25))
    d.ellipse([size * 0.72, size * 0.06, size * 0.9, size * 0.24], fill=(250, 230, 120))
    img.save(path)
    return path


def write_tiny_model(base: Path, comfy_dir: Path, name: str = TINY_UNET, seed: int = 0) -> str:
    """Write the tiny SD3 MMDiT into ``base``/models/diffusion_models (where UNETLoader looks)."""
    out = base / "models" / "diffusion_models" / name
    if out.exists():
        return name
    if not (TESTS / "support" / "tiny_sd3.py").exists():
        raise FileNotFoundError(f"--demo needs the repository's tests/support/tiny_sd3.py (not found under {TESTS})")
    code = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]];"
        "import comfy.cli_args; comfy.cli_args.args.cpu = True;"
        "from support import tiny_sd3; import safetensors.torch as st;"
        "st.save_file(tiny_sd3.mmdit_state_dict(int(sys.argv[4])), sys.argv[3])"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([python_for_comfy(), "-c", code, str(comfy_dir), str(TESTS), str(out), str(seed)],
                   check=True, cwd=comfy_dir, env={**os.environ})
    return name
