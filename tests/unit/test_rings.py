"""The three rings, imports pointing inward: the method, the adapters, the tools.

- The method (``ems/``) is plain PyTorch and the standard library: it imports nothing of ComfyUI,
  of the adapters, of the instrument or of the tools, and no network or process module.
- The adapters (``nodes/``, Extract's transport ``llm_io/``) and the instrument (``toyworld/``)
  never import the tools (``headless``, ``bench``, ``scripts``, ``tests``); ``llm_io`` is ComfyUI-free.
- The bench and the headless runner never import the test suite (``tests``, ``support``).
- Pack code imports itself relatively (``from ..ems.csds import …``): inside ComfyUI the pack has
  its folder's name, so ``comfyui_ems`` (the tools' name for it) must never appear there.

Checked statically over every import statement, function-local ones included, so a violation
fails here on any machine.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACK = ("ems", "llm_io", "nodes", "toyworld")
RINGS = PACK + ("bench", "headless")
TOOLS = {"headless", "bench", "scripts", "tests", "support", "comfyui_ems"}
COMFY = {
    "comfy",
    "comfy_api",
    "comfy_extras",
    "comfy_execution",
    "folder_paths",
    "latent_preview",
    "node_helpers",
    "server",
    "execution",
    "app",
}
IO = {"urllib", "http", "socket", "subprocess", "requests", "ssl", "shutil", "tempfile"}
METHOD_THIRD_PARTY = {"torch", "numpy", "PIL"}

# ring → top-level names its modules may not import
FORBIDDEN = {
    # the method reads no files and no environment: fonts, weights and settings are handed to it
    "ems": TOOLS | COMFY | IO | {"os", "pathlib", "glob"} | {"nodes", "llm_io", "toyworld"},
    "llm_io": TOOLS | COMFY | {"nodes", "toyworld"},
    "nodes": TOOLS,
    "toyworld": TOOLS | {"nodes", "llm_io"},
    # the tools the pack runs with never lean on the test suite
    "bench": {"tests", "support"},
    "headless": {"tests", "support", "bench"},
}


def imported(path: Path, root: Path = REPO) -> list[tuple[int, str]]:
    """(line, top-level name) of every import in ``path``; relative imports are resolved against
    the file's place in the repository (``from ..ems.x`` in nodes/ → ``ems``; ``from . import y``
    in ems/ → ``ems``)."""
    package = path.relative_to(root).parent.parts
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((node.lineno, node.module.split(".")[0]))
                continue
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            if node.level - 1 > len(package):
                found.append((node.lineno, "<beyond the pack>"))
                continue
            parts = list(base) + (node.module.split(".") if node.module else [])
            found.append((node.lineno, parts[0] if parts else "<the pack root>"))
    return found


def violations(root: Path = REPO) -> list[str]:
    problems = []
    for ring in RINGS:
        for path in sorted((root / ring).rglob("*.py")):
            for line, name in imported(path, root):
                if name in FORBIDDEN[ring]:
                    problems.append(f"{path.relative_to(root)}:{line} imports {name!r} (ring {ring!r})")
                elif (
                    ring == "ems"
                    and name not in sys.stdlib_module_names
                    and name not in METHOD_THIRD_PARTY
                    and name != "ems"
                ):
                    problems.append(
                        f"{path.relative_to(root)}:{line} imports {name!r}: the method takes "
                        f"only the standard library and {sorted(METHOD_THIRD_PARTY)}"
                    )
    return problems


def test_imports_point_inward():
    problems = violations()
    assert not problems, "ring violations:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "ring, line, why",
    [
        ("ems", "import comfy.samplers", "comfy"),
        ("ems", "from ..nodes.common import node_error", "nodes"),
        ("ems", "import urllib.request", "urllib"),
        ("ems", "import os", "os"),
        ("ems", "import scipy", "scipy"),
        ("nodes", "from bench import harness", "bench"),
        ("nodes", "from comfyui_ems.ems import csds", "comfyui_ems"),
        ("toyworld", "from support import tiny_sd3", "support"),
        ("bench", "from support.graph import Graph", "support"),
        ("headless", "import tests.support", "tests"),
        ("llm_io", "import comfy_api", "comfy_api"),
    ],
)
def test_a_violation_is_caught(tmp_path, ring, line, why):
    """The checker itself can fail: one planted import per rule, in a copy of the layout."""
    for name in RINGS:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / ring / "planted.py").write_text(line + "\n")
    problems = violations(tmp_path)
    assert len(problems) == 1 and f"{ring}/planted.py:1" in problems[0] and repr(why) in problems[0], problems


def test_relative_imports_resolve_to_the_repositorys_folders(tmp_path):
    (tmp_path / "nodes").mkdir()
    path = tmp_path / "nodes" / "x.py"
    path.write_text("from ..ems.csds import a\nfrom .common import b\nfrom . import c\nimport torch\n")
    assert [name for _, name in imported(path, tmp_path)] == ["ems", "nodes", "nodes", "torch"]
