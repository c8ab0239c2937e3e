"""scripts/env.sh finds the host the way the README says: COMFYUI_DIR, then the ComfyUI the pack is
installed in, then the usual places, then a pinned copy; and it reuses ComfyUI's own Python."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def fake_comfyui(path: Path, python_ok: bool | None = None) -> Path:
    (path / "comfy").mkdir(parents=True)
    (path / "main.py").write_text("")
    if python_ok is not None:  # a venv whose python "imports" torch and torchvision, or not
        py = path / "venv" / "bin" / "python"
        py.parent.mkdir(parents=True)
        py.write_text(f"#!/bin/sh\nexit {0 if python_ok else 1}\n")
        py.chmod(0o755)
    return path


def install_pack(where: Path) -> Path:
    """Just the pack's scripts/env.sh and the discovery rule it runs (enough to source it)."""
    (where / "scripts").mkdir(parents=True)
    (where / "headless").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "env.sh", where / "scripts" / "env.sh")
    shutil.copy(REPO / "headless" / "discovery.py", where / "headless" / "discovery.py")
    return where


def clean_env() -> dict:
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("COMFYUI_DIR", "COMFYUI_ARCHIVE", "EMS_PYTHON", "EMS_NO_INSTALL", "VIRTUAL_ENV", "CONDA_PREFIX")
    }


def bash(pack: Path, code: str, home: Path, **env) -> str:
    clean = clean_env()
    result = subprocess.run(
        ["bash", "-c", f"source '{pack}/scripts/env.sh'; {code}"],
        capture_output=True,
        text=True,
        env={**clean, "HOME": str(home), **env},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture
def home(tmp_path):
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def test_the_comfyui_the_pack_is_installed_in_is_found(tmp_path, home):
    comfy = fake_comfyui(tmp_path / "ComfyUI")
    pack = install_pack(comfy / "custom_nodes" / "comfyui-ems")
    out = bash(pack, 'ems_find_comfyui; echo "$COMFYUI_DIR|$EMS_COMFY_HOW"', home)
    assert out == f"{comfy}|the ComfyUI this pack is installed in"


def test_comfyui_dir_wins_and_a_wrong_one_is_an_error(tmp_path, home):
    comfy = fake_comfyui(tmp_path / "ComfyUI")
    other = fake_comfyui(tmp_path / "other")
    pack = install_pack(comfy / "custom_nodes" / "comfyui-ems")
    assert bash(pack, 'ems_find_comfyui; echo "$COMFYUI_DIR"', home, COMFYUI_DIR=str(other)) == str(other)
    out = bash(pack, 'ems_find_comfyui; echo "rc=$?"', home, COMFYUI_DIR=str(tmp_path / "nothing"))
    assert out.endswith("rc=2")


def test_beside_the_checkout_then_the_pinned_copy(tmp_path, home):
    pack = install_pack(tmp_path / "work" / "comfyui-ems")
    assert bash(pack, 'ems_find_comfyui; echo "rc=$?"', home) == "rc=1"
    pinned = fake_comfyui(pack / ".comfyui" / "ComfyUI-a125cd84")
    assert bash(pack, 'ems_find_comfyui; echo "$COMFYUI_DIR"', home) == str(pinned)
    beside = fake_comfyui(tmp_path / "work" / "ComfyUI")
    assert bash(pack, 'ems_find_comfyui; echo "$COMFYUI_DIR"', home) == str(beside)


def test_an_archive_that_is_not_the_pinned_one_is_refused(tmp_path, home):
    pack = install_pack(tmp_path / "work" / "comfyui-ems")
    archive = tmp_path / "ComfyUI.tar.gz"
    archive.write_bytes(b"not the pinned archive")
    out = bash(pack, 'ems_fetch_comfyui 2>&1; echo "rc=$?"', home, COMFYUI_ARCHIVE=str(archive))
    assert "is not the pinned ComfyUI 0.3.64" in out and out.endswith("rc=1")
    assert not (pack / ".comfyui" / "ComfyUI-a125cd84").exists()


@pytest.mark.parametrize("python_ok", [True, False])
def test_comfyuis_own_python_is_reused_only_when_it_has_torch(tmp_path, home, python_ok):
    comfy = fake_comfyui(tmp_path / "ComfyUI", python_ok=python_ok)
    pack = install_pack(comfy / "custom_nodes" / "comfyui-ems")
    if python_ok:
        out = bash(pack, 'ems_find_comfyui; ems_pick_python; echo "$EMS_PY|$EMS_PY_OWNED"', home)
        assert out == f"{comfy}/venv/bin/python|0"
    else:
        out = bash(
            pack,
            'ems_find_comfyui; EMS_VENV=/nonexistent; python3() { echo "would create $3"; }; '
            'ems_pick_python; echo "$EMS_PY|$EMS_PY_OWNED"',
            home,
        )
        assert out.endswith("/nonexistent/bin/python|1") and "would create /nonexistent" in out


def test_the_main_job_without_comfyui_says_so_in_one_line_before_installing_anything(tmp_path, home):
    """run.sh's set-up on a fresh clone with no ComfyUI and no network: one line, no .venv."""
    pack = install_pack(tmp_path / "work" / "comfyui-ems")
    code = (
        'git() { return 1; }; python3() { if [ "$1" = -m ]; then echo "VENV CREATED"; else command python3 "$@"; fi; }; '
        'ems_prepare run; echo "rc=$?"'
    )
    result = subprocess.run(
        ["bash", "-c", f"source '{pack}/scripts/env.sh'; {code}"],
        capture_output=True,
        text=True,
        env={**clean_env(), "HOME": str(home)},
        timeout=60,
    )
    assert result.stdout.strip().splitlines()[-1] == "rc=3" and "VENV CREATED" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("EMS:")]
    assert len(lines) == 1 and "no ComfyUI here" in lines[0] and "nothing was installed" in lines[0], result.stderr
    assert not (pack / ".venv").exists()


def test_before_creating_an_environment_it_says_what_where_and_how_to_avoid_it(tmp_path, home):
    comfy = fake_comfyui(tmp_path / "ComfyUI", python_ok=False)
    pack = install_pack(comfy / "custom_nodes" / "comfyui-ems")
    out = bash(pack, 'EMS_VENV=/nonexistent; EMS_NO_INSTALL=1 ems_prepare run; echo "rc=$?"', home)
    assert out.endswith("rc=4"), out
    assert "will create /nonexistent and install torch and torchvision" in out and "several GB" in out
    assert "EMS_PYTHON=/path/to/its/python" in out and "EMS_NO_INSTALL=1: stopping before installing anything" in out
