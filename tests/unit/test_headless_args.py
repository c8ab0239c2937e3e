"""The headless runner says exactly what is missing, before starting anything."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from headless.__main__ import main


def run(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.fixture
def no_comfy(monkeypatch, tmp_path):
    monkeypatch.delenv("COMFYUI_DIR", raising=False)
    monkeypatch.setattr("headless.discovery.guesses", lambda *a, **k: [(tmp_path / "nowhere", "a usual place")])


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
    code, err = run(
        capsys,
        "--comfyui",
        str(comfy),
        "--checkpoint",
        "sd3_missing.safetensors",
        "--image",
        str(image),
        "--source",
        "a cat",
        "--target",
        "a dog",
    )
    assert code == 2
    assert "checkpoint 'sd3_missing.safetensors' not found" in err
    assert str(comfy / "models" / "checkpoints" / "sd3_missing.safetensors") in err


def test_instruction_without_a_key_says_which_variable(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("MY_KEY_VAR", raising=False)
    comfy = fake_comfy(tmp_path)
    (comfy / "models" / "checkpoints" / "sd3.safetensors").write_bytes(b"")
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    code, err = run(
        capsys,
        "--comfyui",
        str(comfy),
        "--checkpoint",
        "sd3.safetensors",
        "--image",
        str(image),
        "--instruction",
        "make it red",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--api-key-env",
        "MY_KEY_VAR",
    )
    assert code == 2 and "MY_KEY_VAR, which is not set" in err and "--source/--target" in err
    assert err.count("EMS: cannot run:") == 1, err  # the key is the only problem


def test_instruction_with_an_undefined_provider_lists_the_defined_ones(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("EMS_LLM_CONFIG", str(tmp_path / "llm.json"))
    comfy = fake_comfy(tmp_path)
    (comfy / "models" / "checkpoints" / "sd3.safetensors").write_bytes(b"")
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    code, err = run(
        capsys,
        "--comfyui",
        str(comfy),
        "--checkpoint",
        "sd3.safetensors",
        "--image",
        str(image),
        "--instruction",
        "make it red",
        "--provider",
        "nowhere",
    )
    assert code == 2 and "'nowhere' is not defined" in err and "ollama, openai" in err
    assert str(tmp_path / "llm.json") in err


def test_half_typed_prompts_are_refused(capsys, tmp_path):
    comfy = fake_comfy(tmp_path)
    code, err = run(capsys, "--comfyui", str(comfy), "--checkpoint", "x", "--image", "y", "--source", "a cat")
    assert code == 2 and "both --source and --target" in err


def one_line_each(err: str) -> list[str]:
    lines = [line for line in err.splitlines() if line.strip()]
    assert all(line.startswith("EMS: cannot run: ") for line in lines), err
    return lines


def typed_run(comfy: Path, image: Path, *extra) -> list[str]:
    return [
        "--comfyui",
        str(comfy),
        "--checkpoint",
        "sd3.safetensors",
        "--image",
        str(image),
        "--source",
        "a cat",
        "--target",
        "a dog",
        *extra,
    ]


@pytest.fixture
def ready(tmp_path):
    """A fake ComfyUI with a checkpoint, and an image: every check but the one under test passes."""
    comfy = fake_comfy(tmp_path)
    (comfy / "models" / "checkpoints" / "sd3.safetensors").write_bytes(b"")
    image = tmp_path / "photo.png"
    image.write_bytes(b"")
    return comfy, image


@pytest.mark.parametrize(
    "extra, expected",
    [
        (("--alphas", "0, x, 1"), "--alphas: value 'x' is not a number"),
        (("--alphas", "0:1"), "needs exactly three parts"),
        (("--denoise", "1.0"), "--denoise 1.0 must be between 0 and 1"),
        (("--denoise", "nan"), "--denoise nan must be between 0 and 1"),
        (("--steps", "0"), "--steps 0 must be ≥ 1"),
        (("--cfg", "nan"), "--cfg nan must be between 0 and 100"),
        (("--megapixels", "-1"), "--megapixels -1.0 must be above 0"),
        (("--timeout", "0"), "--timeout 0.0 must be above 0"),
    ],
)
def test_bad_numbers_and_alphas_are_one_line_each_before_comfyui_starts(capsys, ready, tmp_path, extra, expected):
    comfy, image = ready
    code, err = run(capsys, *typed_run(comfy, image, "--output", str(tmp_path / "out"), *extra))
    assert code == 2
    lines = one_line_each(err)
    assert len(lines) == 1 and expected in lines[0], err
    assert not (tmp_path / "out").exists()


def test_output_that_is_a_file_is_refused(capsys, ready, tmp_path):
    comfy, image = ready
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    code, err = run(capsys, *typed_run(comfy, image, "--output", str(target)))
    assert code == 2 and one_line_each(err) == [
        f"EMS: cannot run: --output {target} is a file; give a folder (results go to a fresh folder inside it)."
    ]
    assert target.read_text() == "keep me"


@pytest.mark.parametrize(
    "content, expected",
    [
        ("{not json", "is not a JSON workflow"),
        ('{"prompt": {}}', "is not a UI-format ComfyUI workflow"),
        ("[1, 2]", "is not a UI-format ComfyUI workflow"),
    ],
)
def test_malformed_workflow_is_one_line(capsys, ready, tmp_path, content, expected):
    comfy, image = ready
    wf = tmp_path / "downloaded.json"
    wf.write_text(content)
    code, err = run(capsys, *typed_run(comfy, image, "--workflow", str(wf)))
    assert code == 2
    lines = one_line_each(err)
    assert len(lines) == 1 and expected in lines[0], err


def test_image_that_is_a_folder_says_so(capsys, ready, tmp_path):
    comfy, _ = ready
    code, err = run(capsys, *typed_run(comfy, tmp_path))
    assert code == 2 and "is a folder; give one image file" in err and "does not exist" not in err


def test_relative_paths_are_read_from_the_callers_folder(capsys, ready, tmp_path, monkeypatch):
    comfy, _ = ready
    elsewhere = tmp_path / "caller"
    elsewhere.mkdir()
    (elsewhere / "mine.png").write_bytes(b"")
    monkeypatch.chdir(elsewhere)
    from headless.__main__ import parse_args, validate

    args = parse_args(typed_run(comfy, Path("mine.png")))
    validate(args)  # no UsageError: the image is found next to the caller, not in the pack
    assert args.output.resolve() == elsewhere / "out"


class RecordingServer:
    """Stands in for ComfyServer: records what the runner would start, then fails to start."""

    seen: dict = {}

    def __init__(self, comfy_dir, base, env=None, cpu=True, **_):
        RecordingServer.seen = {"env": dict(env or {}), "base": base}
        self.log_path = Path(base) / "server.log"

    def start(self):
        raise RuntimeError("not starting a server in the unit tier")

    def stop(self):
        pass


@pytest.mark.parametrize("no_cache", [False, True])
def test_caption_cache_lives_in_the_user_cache_folder_unless_no_cache(capsys, ready, tmp_path, monkeypatch, no_cache):
    comfy, image = ready
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr("headless.__main__.ComfyServer", RecordingServer)
    monkeypatch.setattr("sys.platform", "linux")
    code, _ = run(
        capsys, *typed_run(comfy, image, "--output", str(tmp_path / "out"), *(["--no-cache"] if no_cache else []))
    )
    assert code == 1  # the stand-in server refused to start
    cache = Path(RecordingServer.seen["env"]["EMS_CACHE_DIR"])
    if no_cache:
        assert Path(RecordingServer.seen["base"]) in cache.parents
    else:
        assert cache == tmp_path / "xdg" / "ems" / "captions"


def test_warnings_shown_on_ems_nodes_are_printed_by_the_runner():
    from headless.__main__ import node_warnings

    prompt = {
        "3": {"class_type": "EMSEncodePrompts"},
        "4": {"class_type": "EMSAlphaSweep"},
        "5": {"class_type": "EMSTextDirection"},
    }
    history = {
        "outputs": {
            "3": {"text": ["EMS Encode Prompts: source and target are identical\n"]},
            "4": {"text": ["α=0 | α=1"]},  # labels, not a warning
            "5": {"text": [""]},
        }
    }
    assert node_warnings(history, prompt) == ["EMS Encode Prompts: source and target are identical"]


def test_the_comfyui_the_pack_is_installed_in_is_found_only_from_custom_nodes(tmp_path, monkeypatch):
    """Two folders up counts only when the pack sits in a custom_nodes folder (the rule scripts/env.sh
    runs too: it calls headless/discovery.py)."""
    from headless.discovery import INSTALLED, find_comfyui

    comfy = fake_comfy(tmp_path / "host")
    found = find_comfyui(None, environ={}, repo=comfy / "custom_nodes" / "comfyui-ems", home=tmp_path / "home")
    assert found[:2] == (comfy.resolve(), INSTALLED)
    assert find_comfyui(None, environ={}, repo=comfy / "elsewhere" / "comfyui-ems", home=tmp_path / "home")[0] is None


# -- malformed workflows, same-named images, devices and FIFOs ------------------------------------


@pytest.mark.parametrize(
    "workflow, expected",
    [
        ({"nodes": [{"id": 1}], "links": []}, 'node 1 has no "type"'),
        ({"nodes": [1, 2], "links": []}, "nodes[0] is not an object"),
        ({"nodes": [{"type": "LoadImage"}], "links": []}, 'nodes[0] has no "id"'),
        ({"nodes": [{"id": 1, "type": "LoadImage"}], "links": [[1, 1]]}, "links[0] is not a [link id, from node"),
        ({"nodes": [{"id": 1, "type": "LoadImage"}], "links": [{"id": 1}]}, "links[0] is not a [link id"),
        ({"nodes": [{"id": 1, "type": "LoadImage"}], "links": {"1": [1, 1, 0]}}, '"links" is not a list'),
        (
            {"nodes": [{"id": 1, "type": "SaveImage", "inputs": [{"link": 1}]}], "links": []},
            "an input slot that is not",
        ),
        (
            {"nodes": [{"id": 1, "type": "SaveImage", "inputs": {"images": 1}}], "links": []},
            '"inputs" that are not a list',
        ),
        ({"nodes": [{"id": 1, "type": "SaveImage", "widgets_values": "x"}], "links": []}, '"widgets_values" that are'),
        ({"nodes": [{"id": 1, "type": "A"}, {"id": 1, "type": "B"}], "links": []}, "node id 1 appears twice"),
        ({"nodes": [{"id": 7, "type": "EMSExtractCaptions", "widgets_values": 3}]}, "node 7 (EMSExtractCaptions)"),
    ],
)
def test_a_malformed_workflow_is_one_line_before_comfyui_starts(
    capsys, ready, tmp_path, monkeypatch, workflow, expected
):
    """These gave a raw KeyError (or AttributeError) traceback from the conversion."""
    comfy, image = ready
    monkeypatch.setattr("headless.__main__.ComfyServer", RecordingServer)
    RecordingServer.seen = {}
    wf = tmp_path / "shared.json"
    wf.write_text(json.dumps(workflow))
    code, err = run(capsys, *typed_run(comfy, image, "--workflow", str(wf), "--output", str(tmp_path / "out")))
    assert code == 2
    (line,) = one_line_each(err)
    assert expected in line and str(wf) in line and "save it again" in line, line
    assert RecordingServer.seen == {} and not (tmp_path / "out").exists()  # nothing was started


def test_the_conversion_itself_refuses_a_malformed_workflow_by_name():
    from headless.workflow import WorkflowError, ui_to_api

    with pytest.raises(WorkflowError, match='node 1 has no "type"'):
        ui_to_api({"nodes": [{"id": 1}], "links": []}, {})
    with pytest.raises(WorkflowError, match=r"links\[0\]"):
        ui_to_api({"nodes": [], "links": [[1]]}, {})


def special_files(tmp_path) -> list[Path]:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    return [Path("/dev/zero"), fifo]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.parametrize("flag", ["--workflow", "--image", "--checkpoint"])
def test_a_device_or_fifo_where_a_file_belongs_is_named_as_such(capsys, ready, tmp_path, monkeypatch, flag):
    """/dev/zero or a FIFO was reported as 'does not exist'; it is no regular file."""
    comfy, image = ready
    monkeypatch.setattr("headless.__main__.ComfyServer", RecordingServer)
    for special in special_files(tmp_path):
        args = {"--workflow": None, "--image": str(image), "--checkpoint": "sd3.safetensors", flag: str(special)}
        argv = ["--comfyui", str(comfy), "--source", "a cat", "--target", "a dog", "--output", str(tmp_path / "out")]
        for name, value in args.items():
            argv += [name, value] if value else []
        code, err = run(capsys, *argv)
        assert code == 2
        (line,) = one_line_each(err)
        assert f"{flag} {special} is not a regular file" in line and "does not exist" not in line, line


def test_an_output_that_is_a_device_is_not_called_a_file(capsys, ready):
    comfy, image = ready
    code, err = run(capsys, *typed_run(comfy, image, "--output", "/dev/null"))
    assert code == 2 and "--output /dev/null is not a folder" in err


class SavedImages:
    """What ComfyUI's /view serves for the images a history lists: distinct bytes per file."""

    def view(self, item):
        return f"{item['subfolder']}/{item['filename']}".encode()


def test_images_with_one_name_in_different_subfolders_are_all_kept(tmp_path):
    """SaveImage prefixes a/edit and b/edit both save edit_00001_.png."""
    from headless.__main__ import collect

    history = {
        "outputs": {
            "7": {"images": [{"filename": "edit_00001_.png", "subfolder": "a", "type": "output"}]},
            "8": {
                "images": [
                    {"filename": "edit_00001_.png", "subfolder": "b", "type": "output"},
                    {"filename": "edit_00001_.png", "subfolder": "b", "type": "output"},
                ]
            },
            "9": {
                "images": [
                    {"filename": "edit_00001_.png", "subfolder": "", "type": "output"},
                    {"filename": "p.png", "subfolder": "../../escape", "type": "output"},
                    {"filename": "t.png", "subfolder": "", "type": "temp"},
                ]
            },
        }
    }
    (tmp_path / "edit_00001_.png").write_bytes(b"there before")
    saved = collect(SavedImages(), history, tmp_path)
    assert len(saved) == 5 and len(set(saved)) == 5
    assert {p.relative_to(tmp_path).as_posix() for p in saved} == {
        "a/edit_00001_.png",
        "b/edit_00001_.png",
        "b/edit_00001_-2.png",
        "edit_00001_-2.png",
        "escape/p.png",
    }
    assert (tmp_path / "a" / "edit_00001_.png").read_bytes() == b"a/edit_00001_.png"
    assert (tmp_path / "b" / "edit_00001_.png").read_bytes() == b"b/edit_00001_.png"
    assert (tmp_path / "edit_00001_.png").read_bytes() == b"there before"  # never overwritten


def test_typed_captions_give_csds_the_edited_words_not_the_whole_target():
    from headless.__main__ import typed_attribute

    assert typed_attribute("a man in a black suit", "a man in a red suit") == "red suit"
    assert typed_attribute("a man in a black suit", "a man in a red suit", "crimson") == "crimson"
    # no small replacement to name: the target caption stands in
    assert typed_attribute("a cat", "a dog sitting on a red chair by the window") != ""
