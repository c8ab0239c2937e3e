"""Lint and format are part of the tests: ``ruff check`` with the rules in pyproject.toml, and
``ruff format --check`` (the pinned ruff in requirements-dev.txt, so every machine agrees)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--no-cache", str(REPO)], capture_output=True, text=True, cwd=REPO
    )


def test_ruff_check_passes():
    result = ruff("check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_check_passes():
    result = ruff("format", "--check")
    assert result.returncode == 0, "run `ruff format .` (or `make format`):\n" + result.stdout + result.stderr
