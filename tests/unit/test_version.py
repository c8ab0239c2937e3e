"""The pack's version is written in pyproject.toml (what the Registry reads) and in ems.__version__;
they must agree, and the CHANGELOG must have an entry for it."""

from __future__ import annotations

import re
from pathlib import Path

import ems

REPO = Path(__file__).resolve().parents[2]


def test_pyproject_ems_and_changelog_agree_on_the_version():
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert ems.__version__ == version
    assert re.search(rf"^## {re.escape(version)}\b", (REPO / "CHANGELOG.md").read_text(), re.M)
