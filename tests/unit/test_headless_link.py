"""The runner links the pack and the model file into ComfyUI's private base without copying; where a
symbolic link is refused (Windows without Developer Mode), a file falls back to a hard link and a
failure says what was refused. (The folder junction is Windows-only and is not exercised here.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from headless.comfy_process import link_to, prepare_base


def test_a_folder_and_a_file_are_linked(tmp_path):
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "a.txt").write_text("pack")
    base = prepare_base(tmp_path / "base", {"thepack": pack})
    assert (base / "custom_nodes" / "thepack" / "a.txt").read_text() == "pack"
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"weights")
    link_to(base / "models" / "checkpoints" / "model.safetensors", model)
    assert (base / "models" / "checkpoints" / "model.safetensors").read_bytes() == b"weights"


def test_a_refused_symlink_falls_back_to_a_hard_link_for_a_file(tmp_path, monkeypatch):
    def refuse(self, *a, **k):
        raise OSError("A required privilege is not held by the client")

    monkeypatch.setattr(Path, "symlink_to", refuse)
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"weights")
    link = tmp_path / "linked.safetensors"
    link_to(link, model)
    assert link.read_bytes() == b"weights" and link.stat().st_ino == model.stat().st_ino  # not a copy


def test_when_nothing_can_link_the_error_names_both_causes(tmp_path, monkeypatch):
    def refuse(self, *a, **k):
        raise OSError("symlink refused")

    monkeypatch.setattr(Path, "symlink_to", refuse)
    folder = tmp_path / "pack"
    folder.mkdir()
    with pytest.raises(OSError, match="cannot link .* symlink refused"):
        link_to(tmp_path / "link", folder)  # no junctions off Windows
