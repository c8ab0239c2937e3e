"""Undefined names and syntax errors fail the build (pyflakes rules via ruff)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_no_undefined_names_or_unused_imports():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "F,E9", "--no-cache",
                             "--exclude", ".comfyui,.venv", str(REPO)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
