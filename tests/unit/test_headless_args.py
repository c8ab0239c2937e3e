"""The headless runner says exactly what is missing, before starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from ems.headless.__main__ import main


def run(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.fixture
def no_comfy(monkeypatch, tmp_path):
    monkeypatch.delenv("COMFYUI_DIR", raising=False)
    monkeypatch.setattr("ems.headless.__main__.COMFY_GUESSES", (str(tmp_path / "nowhere"),))


def fake_comfy(tmp_path: Path) -> Path:
    comfy = tmp_path / "ComfyUI"
    (comfy / "comfy").mkdir(parents=True)
    (comfy / "models" / "checkpoints").mkdir(parents=True)
    (comfy / "main.py").write_text("")
    return comfy


def test_missing_comfyui_is_named_with_the_places_looked(capsys, no_comfy, tmp_path):
    code, err = run(capsys, "--demo", "--output", str(tmp_path / "out"))
    assert code == 2
    assert "ComfyUI not found" in err and str(tmp_path / "nowhere") in err and "--comfyui" in err
    assert not (tmp_path / "out").exists(), "nothing is written when the run cannot start"


def test_missing_checkpoint_image_and_edit_are_all_listed(capsys, tmp_path, monkeypatch):
    comfy = fake_comfy(tmp_path)
    code, err = run(capsys, "--comfyui", str(comfy), "--output", str(tmp_path / "out"))
    assert code == 2
    assert "no checkpoint given" in err and "--checkpoint" in err and "--demo" in err
    assert "no image given" in err and "no edit given" in err


def test_unknown_checkpoint_names_where_it_was_looked_for(capsys, tmp_path):
    comfy = fake_comfy(tmp_path)
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    code, err = run(capsys, "--comfyui", str(comfy), "--checkpoint", "sd3_missing.safetensors",
                    "--image", str(image), "--source", "a cat", "--target", "a dog")
    assert code == 2
    assert "checkpoint 'sd3_missing.safetensors' not found" in err
    assert str(comfy / "models" / "checkpoints" / "sd3_missing.safetensors") in err


def test_instruction_without_a_key_says_which_variable(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("MY_KEY_VAR", raising=False)
    comfy = fake_comfy(tmp_path)
    (comfy / "models" / "checkpoints" / "sd3.safetensors").write_bytes(b"")
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    code, err = run(capsys, "--comfyui", str(comfy), "--checkpoint", "sd3.safetensors", "--image", str(image),
                    "--instruction", "make it red", "--api-key-env", "MY_KEY_VAR")
    assert code == 2 and "MY_KEY_VAR is not set" in err and "--base-url" in err
    assert err.count("\n  - ") == 1, err  # the key is the only problem


def test_half_typed_prompts_are_refused(capsys, tmp_path):
    comfy = fake_comfy(tmp_path)
    code, err = run(capsys, "--comfyui", str(comfy), "--checkpoint", "x", "--image", "y", "--source", "a cat")
    assert code == 2 and "both --source and --target" in err
