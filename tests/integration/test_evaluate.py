"""``python -m bench.paper`` on a 2-item manifest with the tiny SD3; a rerun skips finished items;
``--sde`` and ``--vqa-model`` (against the loopback OpenAI-compatible server) add per-item columns."""

from __future__ import annotations

import json
import subprocess
import sys
import base64
import io
import math
from pathlib import Path

from support.comfy_server import tool_env

import numpy as np
from PIL import Image

from support.fake_openai import FakeOpenAI, ok

REPO = Path(__file__).resolve().parents[2]


def manifest(tmp: Path) -> Path:
    rng = np.random.default_rng(0)
    for name in ("cat", "car"):
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype("uint8")).save(tmp / f"{name}.png")
    mask = np.zeros((32, 32), dtype="uint8")
    mask[8:24, 8:24] = 255
    Image.fromarray(mask).save(tmp / "cat_mask.png")
    items = [
        {
            "image": "cat.png",
            "source_prompt": "a photo of a cat",
            "target_prompt": "a photo of a smiling cat",
            "attribute": "smiling",
            "mask": "cat_mask.png",
        },
        {"id": "car1", "image": "car.png", "source_prompt": "a red car", "target_prompt": "a blue car"},
    ]
    path = tmp / "manifest.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    return path


def evaluate(path: Path, out: Path, *extra: str, alphas: str = "0,1", env: dict | None = None):
    cmd = [
        sys.executable,
        "-m",
        "bench.paper",
        str(path),
        "--out",
        str(out),
        "--tiny",
        "--size",
        "32",
        "--steps",
        "4",
        "--iterations",
        "2",
        "--alphas",
        alphas,
        *extra,
    ]
    return subprocess.run(cmd, cwd=REPO, env=tool_env(**(env or {})), capture_output=True, text=True, timeout=240)


def test_manifest_end_to_end_and_resume(tmp_path):
    path, out = manifest(tmp_path), tmp_path / "out"
    first = evaluate(path, out)
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert [(r["item"], r["alpha"]) for r in report["rows"]] == [
        ("cat", 0.0),
        ("cat", 1.0),
        ("car1", 0.0),
        ("car1", 1.0),
    ]
    assert {"psnr", "ssim", "psnr_bg", "ssim_bg"} <= set(report["metrics"])
    assert all(r["psnr"] is not None and 0 <= r["ssim"] <= 1 for r in report["rows"])
    assert report["rows"][0]["psnr_bg"] is not None and report["rows"][2].get("psnr_bg") is None  # car1 has no mask
    assert set(report["mean_per_alpha"]) == {"0", "1"}
    assert (out / "items" / "cat" / "alpha_1.png").is_file()
    assert "Mean per α" in (out / "results.md").read_text(encoding="utf-8")

    finished = out / "items" / "car1" / "result.json"
    stamp = finished.stat().st_mtime_ns
    second = evaluate(path, out)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "evaluated 0 item(s), skipped 2 finished" in second.stderr
    assert finished.stat().st_mtime_ns == stamp
    assert json.loads((out / "results.json").read_text(encoding="utf-8"))["rows"] == report["rows"]


KEY_VAR, KEY = "EMS_TEST_VQA_KEY", "sk-vqa-test-key-1234"
# Requests arrive in order: cat (source→α0, α0→α1), then car1 (the same two pairs).
ANSWERS = ["Yes.", "**Yes**, the smile grows.", "No.", "I cannot tell."]


def pixels(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def saved(out: Path, item: str, name: str) -> np.ndarray:
    return np.asarray(Image.open(out / "items" / item / f"{name}.png").convert("RGB"))


def test_sde_and_vqa_columns_from_the_host_model_and_the_canned_answers(tmp_path):
    path, out = manifest(tmp_path), tmp_path / "out"
    options = ["--sde", "--vqa-model", "vqa-test-model", "--vqa-api-key-env", KEY_VAR, "--vqa-runs", "1"]
    env = {KEY_VAR: KEY, "EMS_KEYS_FILE": str(tmp_path / "no-keys.json")}
    with FakeOpenAI() as server:
        server.script(*(ok(a) for a in ANSWERS))
        # α given out of order: the VQA pairs still follow ascending α (source → α=0 → α=1)
        first = evaluate(path, out, *options, "--vqa-base-url", server.url, alphas="1,0", env=env)
        assert first.returncode == 0, first.stderr[-3000:]
        requests = list(server.requests)
        again = evaluate(path, out, *options, "--vqa-base-url", server.url, alphas="1,0", env=env)
        assert again.returncode == 0 and "evaluated 0 item(s), skipped 2 finished" in again.stderr
        assert len(server.requests) == 4  # the rerun asked nothing

    report = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert report["settings"]["sde"] is True and report["settings"]["vqa"]["model"] == "vqa-test-model"
    cat, car = report["per_item"]
    for row in (cat, car):  # SDE = E_c / E_c̃ + E_c̃, finite and positive
        assert math.isfinite(row["sde"]) and row["sde"] > 0
        assert row["sde"] == row["sde_err_c"] / row["sde_err_flipped"] + row["sde_err_flipped"]
    assert (cat["vqa"], cat["vqa_unparsed"]) == (100.0, 0) and cat["vqa_answers"] == ANSWERS[:2]
    assert (car["vqa"], car["vqa_unparsed"]) == (0.0, 1)
    assert report["mean_per_item"]["vqa"] == 50.0
    assert report["mean_per_item"]["sde"] == (cat["sde"] + car["sde"]) / 2
    md = (out / "results.md").read_text(encoding="utf-8")
    assert "## Per item: sde, sde_err_c, sde_err_flipped, sde_ratio, vqa" in md and "| car1 | " in md

    assert len(requests) == 4
    for request, (item, attribute, first_image, second_image) in zip(
        requests,
        [
            ("cat", "smiling", "source", "alpha_0"),
            ("cat", "smiling", "alpha_0", "alpha_1"),
            ("car1", "a blue car", "source", "alpha_0"),
            ("car1", "a blue car", "alpha_0", "alpha_1"),
        ],
    ):
        assert request.body["model"] == "vqa-test-model" and request.bearer == KEY
        question = " ".join(request.texts)
        assert f"gradual change of {attribute} relative to the first image" in question
        assert len(request.image_urls) == 2
        assert np.array_equal(pixels(request.image_urls[0]), saved(out, item, first_image))
        assert np.array_equal(pixels(request.image_urls[1]), saved(out, item, second_image))


def test_the_settings_key_covers_sde_and_vqa():
    from bench.paper.evaluate import parse_args, run_settings, settings_key
    from bench.harness import EditSettings

    def key(*extra):
        return settings_key(run_settings(parse_args(["m.json", "--out", "o", "--tiny", *extra]), EditSettings()))

    url = ("--vqa-base-url", "http://127.0.0.1:1/v1")
    keys = {
        key(),
        key("--sde"),
        key("--vqa-model", "a"),
        key("--vqa-model", "b"),
        key("--vqa-model", "a", *url),
        key("--vqa-model", "a", "--vqa-provider", "ollama"),
        key("--vqa-model", "a", "--vqa-runs", "1"),
    }
    assert len(keys) == 7
    assert key("--vqa-model", "a", *url, "--vqa-api-key-env", "OTHER") == key(
        "--vqa-model", "a", *url
    )  # the key is no setting
