"""Where the host ComfyUI is — the one rule, for ``scripts/env.sh`` and the headless runner.

First found wins:
  1. the folder given (``--comfyui``), else ``$COMFYUI_DIR`` — when it is no ComfyUI, that is an
     error, not a reason to look elsewhere
  2. the ComfyUI this pack is installed in (``ComfyUI/custom_nodes/<pack>`` → two folders up)
  3. the usual places: ``../ComfyUI``, ``../comfyui`` (beside this checkout), ``~/ComfyUI``
  4. a pinned copy fetched earlier into ``.comfyui/`` (git-ignored; ``scripts/env.sh`` fetches it)

Standard library only, and runnable as a file (``python3 headless/discovery.py`` prints the folder
and how it was found, one per line; exit 1 when there is none, 2 when the given one is wrong), so
the shell scripts use it before any environment exists.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping, Optional

REPO = Path(__file__).resolve().parents[1]
BESIDE = ("ComfyUI", "comfyui")
INSTALLED = "the ComfyUI this pack is installed in"


def is_comfyui(path: Path) -> bool:
    return (path / "main.py").is_file() and (path / "comfy").is_dir()


def guesses(repo: Path = REPO, home: Optional[Path] = None) -> list[tuple[Path, str]]:
    """Places 2–4 in order, each with how it would be described."""
    out = []
    if repo.parent.name == "custom_nodes":
        out.append((repo.parent.parent, INSTALLED))
    out += [(repo.parent / name, "found at a usual place") for name in BESIDE]
    out.append(((home or Path.home()) / "ComfyUI", "found at a usual place"))
    out += [
        (p, f"a pinned copy fetched earlier ({p.name})")
        for p in sorted((repo / ".comfyui").glob("ComfyUI-*"))
        if not p.name.endswith(".partial")
    ]
    return out


class GivenIsNotComfyUI(ValueError):
    pass


def find_comfyui(
    explicit: Optional[str] = None,
    environ: Mapping[str, str] = os.environ,
    repo: Path = REPO,
    home: Optional[Path] = None,
) -> tuple[Optional[Path], str, list[str]]:
    """(folder or None, how it was found, the places looked at). Raises ``GivenIsNotComfyUI`` when
    the folder given (``explicit`` or ``$COMFYUI_DIR``) is no ComfyUI checkout."""
    given = explicit or environ.get("COMFYUI_DIR", "")
    if given:
        path = Path(given).expanduser().resolve()
        if not is_comfyui(path):
            source = "--comfyui" if explicit else "COMFYUI_DIR"
            raise GivenIsNotComfyUI(f"{source}={given} is not a ComfyUI checkout (no main.py and comfy/)")
        return path, "--comfyui" if explicit else "COMFYUI_DIR", [str(path)]
    looked = []
    for path, how in guesses(repo, home):
        path = path.expanduser().resolve()
        looked.append(str(path))
        if is_comfyui(path):
            return path, how, looked
    return None, "", looked


def main() -> int:
    try:
        path, how, _ = find_comfyui()
    except GivenIsNotComfyUI as e:
        print(e, file=sys.stderr)
        return 2
    if path is None:
        return 1
    print(f"{path}\n{how}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
