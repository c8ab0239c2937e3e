"""The unit tier needs only what it installs: every third-party module that the unit tests and the
pure method code (``ems/``, the toy world's scenes, readout and edit cases) import is declared in
requirements.txt / requirements-dev.txt (or is torch, which scripts/env.sh installs), and ``ems/``
never imports ComfyUI.

A static check on purpose: a missing declaration must fail here, on a machine that happens to have
the module installed (as CI's does), not only on a fresh one.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OURS = {"comfyui_ems", "ems", "llm_io", "nodes", "headless", "support", "bench", "toyworld", "tests", "scripts"}
COMFY = {
    "comfy",
    "comfy_api",
    "comfy_extras",
    "folder_paths",
    "nodes",
    "server",
    "execution",
    "comfy_execution",
    "latent_preview",
    "node_helpers",
}
# import name → distribution name, where they differ
DIST = {"PIL": "pillow", "yaml": "pyyaml", "sklearn": "scikit-learn", "cv2": "opencv-python"}
# the toy world's model side is built from ComfyUI's own classes (it runs with ComfyUI importable);
# only its scenes, readout and edit cases belong to the unit tier
COMFY_SIDE = (
    "toyworld/comfy_loader.py",
    "toyworld/model.py",
    "toyworld/model_flux.py",
    "toyworld/train_flux.py",
    "toyworld/tiny_sd3.py",
    "toyworld/tiny_families.py",
    "toyworld/train.py",
    "toyworld/training.py",
    "toyworld/quality.py",
)


def declared() -> set[str]:
    names = {"torch"}
    for req in ("requirements.txt", "requirements-dev.txt"):
        for line in (REPO / req).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line:
                names.add(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def unit_tier_files() -> list[Path]:
    files = sorted((REPO / "tests" / "unit").rglob("*.py")) + sorted((REPO / "ems").rglob("*.py"))
    files += (
        [p for p in sorted((REPO / "toyworld").rglob("*.py")) if not str(p.relative_to(REPO)).startswith(COMFY_SIDE)]
        if (REPO / "toyworld").is_dir()
        else []
    )
    return files


def test_unit_tier_imports_are_declared():
    allowed = declared()
    missing = {}
    for path in unit_tier_files():
        for mod in imports(path) - set(sys.stdlib_module_names) - OURS - {"__future__"}:
            if DIST.get(mod, mod).lower().replace("_", "-") not in allowed:
                missing.setdefault(mod, []).append(str(path.relative_to(REPO)))
    assert not missing, "imported by the unit tier but not declared in requirements*.txt: " + "; ".join(
        f"{m} ({', '.join(p[:3])})" for m, p in sorted(missing.items())
    )


def test_method_code_never_imports_comfyui():
    offenders = {
        str(p.relative_to(REPO)): sorted(imports(p) & COMFY)
        for p in sorted((REPO / "ems").rglob("*.py"))
        if imports(p) & COMFY
    }
    assert not offenders, f"ems/ must stay free of ComfyUI imports: {offenders}"
