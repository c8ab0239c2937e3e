"""The pack as the Comfy Registry and ComfyUI-Manager read it: pyproject.toml's metadata follows the
Registry's specification, the icon it names is in the repository and within the Registry's limits,
and the publish workflow runs the Registry's action on a version change, never from a fork."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml with tomllib")

REPO = Path(__file__).resolve().parents[2]
META = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PUBLISH = REPO / ".github" / "workflows" / "publish_action.yml"
RAW_PREFIX = "https://raw.githubusercontent.com/ems-comfyui/comfyui-ems/main/"


def registry_name_problems(name: str) -> list[str]:
    """The Registry's node-id rules (its specification page): under 100 characters; letters, digits,
    '-', '_' and '.' only; no two special characters in a row; not starting with a digit or a
    special character; and its standards' advice to leave "ComfyUI" out of the name."""
    problems = []
    if not 0 < len(name) < 100:
        problems.append("must be 1 to 99 characters")
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        problems.append("only letters, digits, '-', '_' and '.'")
    if re.search(r"[._-]{2}", name):
        problems.append("no consecutive special characters")
    if not re.match(r"[A-Za-z]", name):
        problems.append("must start with a letter")
    if re.search(r"[._-]$", name):
        problems.append("must not end with a special character")
    if "comfyui" in name.lower():
        problems.append('leave "ComfyUI" out of the name')
    return problems


@pytest.mark.parametrize(
    "bad", ["", "comfyui-ems", "ems--edit", "1ems", "-ems", "ems_", "ems edit", "x" * 100, "ems/edit"]
)
def test_the_name_rules_refuse_bad_names(bad):
    assert registry_name_problems(bad)


def test_project_name_follows_the_registry_rules():
    assert registry_name_problems(META["project"]["name"]) == []


def test_version_is_semver_and_license_a_file_table():
    assert re.fullmatch(r"\d+\.\d+\.\d+", META["project"]["version"])
    license = META["project"]["license"]
    assert isinstance(license, dict) and (REPO / license["file"]).is_file()


def test_urls_publisher_and_comfyui_requirement():
    assert META["project"]["urls"]["Repository"].startswith("https://github.com/")
    comfy = META["tool"]["comfy"]
    assert re.fullmatch(r"[a-z][a-z0-9-]*", comfy["PublisherId"])
    assert comfy["DisplayName"].strip()
    for part in comfy["requires-comfyui"].split(","):
        assert re.fullmatch(r"\s*(<=|>=|==|~=|!=|<|>)?\s*\d+\.\d+\.\d+(-[\w.]+)?\s*", part), part


def test_icon_is_a_square_png_of_at_most_400px_in_this_repository():
    icon = META["tool"]["comfy"]["Icon"]
    assert icon.startswith(RAW_PREFIX), icon
    path = REPO / icon[len(RAW_PREFIX) :]
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width == height <= 400


def test_classifiers_are_ones_the_registry_knows():
    known = {
        "Operating System :: OS Independent",
        "Operating System :: Microsoft :: Windows",
        "Operating System :: POSIX :: Linux",
        "Operating System :: MacOS",
    }
    assert set(META["project"]["classifiers"]) <= known


def test_publish_workflow_uses_the_registry_action_on_version_changes_and_never_from_a_fork():
    text = PUBLISH.read_text(encoding="utf-8")
    assert "uses: Comfy-Org/publish-node-action@main" in text
    assert "personal_access_token: ${{ secrets.REGISTRY_ACCESS_TOKEN }}" in text
    assert "if: github.event.repository.fork == false" in text
    assert re.search(r"push:\s*\n\s*branches: \[main\]\s*\n\s*paths: \[\"pyproject.toml\"\]", text)
    assert "workflow_dispatch" in text
