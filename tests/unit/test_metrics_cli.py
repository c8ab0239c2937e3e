"""``python -m bench.metrics`` on image files written by the test."""

import json
import math
import runpy
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from bench.metrics.cli import main


def write(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(path)
    return path


def base_image(seed, h=32, w=32):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 200, size=(h, w, 3))  # room for +25 without clipping


@pytest.fixture
def dataset(tmp_path):
    """src/{a,b}.png, edited/{a,b,c}.png: a = src + 25 everywhere, b identical, c has no source."""
    a, b = base_image(0), base_image(1)
    write(tmp_path / "src" / "a.png", a)
    write(tmp_path / "src" / "b.png", b)
    write(tmp_path / "edited" / "a.png", a + 25)
    write(tmp_path / "edited" / "b.png", b)
    write(tmp_path / "edited" / "c.png", base_image(2))
    return tmp_path


def run_cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_folders_pair_by_name_with_hand_checked_psnr(dataset, capsys):
    rc, out, err = run_cli(
        capsys, dataset / "src", dataset / "edited", "--json", dataset / "r.json", "--markdown", dataset / "r.md"
    )
    assert rc == 0
    assert "'c' is only in" in err
    report = json.loads((dataset / "r.json").read_text())
    rows = {r["name"]: r for r in report["rows"]}
    assert set(rows) == {"a", "b"}
    assert rows["a"]["psnr"] == pytest.approx(20 * math.log10(255 / 25), abs=1e-4)
    assert rows["b"]["psnr"] == "inf" and rows["b"]["ssim"] == pytest.approx(1.0)
    assert 0 < rows["a"]["ssim"] < 1
    # means are over finite values: PSNR's mean is a's alone
    assert report["mean"]["psnr"] == pytest.approx(rows["a"]["psnr"]) and report["finite_count"]["psnr"] == 1
    assert report["metrics"] == ["psnr", "ssim"]
    assert "| pair | psnr ↑ | ssim ↑ |" in out and "| b | inf | 1.0000 |" in out and "**mean**" in out
    assert (dataset / "r.md").read_text().count("| a |") == 1


def test_edit_mask_adds_pie_bench_background_metrics(dataset, capsys):
    src = base_image(3)
    edited = src.copy()
    edited[:, :16] = 255 - edited[:, :16]  # change only the left half …
    write(dataset / "m" / "src.png", src)
    write(dataset / "m" / "out" / "x.png", edited)
    mask = np.zeros((32, 32), dtype=np.uint8)
    mask[:, :16] = 255  # … which is the edit mask (white = edited)
    write(dataset / "m" / "mask.png", mask)
    rc, out, _ = run_cli(
        capsys,
        dataset / "m" / "src.png",
        dataset / "m" / "out",
        "--mask",
        dataset / "m" / "mask.png",
        "--json",
        dataset / "m.json",
    )
    assert rc == 0
    row = json.loads((dataset / "m.json").read_text())["rows"][0]
    assert row["name"] == "x" and row["psnr_bg"] == "inf" and row["ssim_bg"] == pytest.approx(1.0)
    assert row["psnr"] < 20 and "psnr_bg ↑" in out


def test_one_source_against_a_folder_of_edits(dataset, capsys):
    rc, out, _ = run_cli(capsys, dataset / "src" / "a.png", dataset / "edited", "--json", dataset / "s.json")
    assert rc == 0
    names = [r["name"] for r in json.loads((dataset / "s.json").read_text())["rows"]]
    assert names == ["a", "b", "c"]


def test_size_mismatch_needs_resize(dataset, capsys):
    write(dataset / "big" / "a.png", np.kron(base_image(0), np.ones((2, 2, 1))))
    rc, _, err = run_cli(capsys, dataset / "src" / "a.png", dataset / "big" / "a.png")
    assert rc == 2 and "--resize" in err
    rc, out, _ = run_cli(capsys, dataset / "src" / "a.png", dataset / "big" / "a.png", "--resize")
    assert rc == 0 and "| a |" in out


def test_lpips_needs_weights_and_uses_them(dataset, capsys, monkeypatch):
    from bench.metrics.lpips import LPIPS
    import bench.metrics.lpips as lp

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(dataset / "hub"))
    monkeypatch.delenv("EMS_LPIPS_DIR", raising=False)
    monkeypatch.setattr(lp, "_package_dir", lambda name: None)
    rc, _, err = run_cli(capsys, dataset / "src", dataset / "edited", "--lpips", "alex")
    assert rc == 2 and "alexnet-owt-7be5be79.pth" in err and "alex.pth" in err

    m = LPIPS.from_random(1)
    weights = dataset / "w"
    weights.mkdir()
    torch.save({f"features.{k}": v for k, v in m.features.state_dict().items()}, weights / "alexnet-owt-7be5be79.pth")
    torch.save({f"lin{i}.model.1.weight": lin.weight for i, lin in enumerate(m.lins)}, weights / "alex.pth")
    rc, out, _ = run_cli(
        capsys,
        dataset / "src",
        dataset / "edited",
        "--lpips",
        "alex",
        "--lpips-dir",
        weights,
        "--json",
        dataset / "l.json",
    )
    assert rc == 0 and "lpips ↓" in out
    rows = {r["name"]: r for r in json.loads((dataset / "l.json").read_text())["rows"]}
    assert rows["b"]["lpips"] == pytest.approx(0.0, abs=1e-7) and rows["a"]["lpips"] > 0


def test_clip_column_with_prompts(dataset, capsys, monkeypatch):
    from bench.metrics import clip_score as cs

    calls = {}

    class FakeScorer:
        def score(self, images, texts):
            calls.setdefault("texts", []).append(list(texts))
            return torch.full((images.shape[0],), 31.5)

    monkeypatch.setattr(cs.ClipScorer, "from_pretrained", classmethod(lambda cls, name, device=None: FakeScorer()))
    rc, _, err = run_cli(capsys, dataset / "src", dataset / "edited", "--clip")
    assert rc == 2 and "--prompt" in err
    (dataset / "p.json").write_text(json.dumps({"a": "a red suit"}))
    rc, out, err = run_cli(
        capsys,
        dataset / "src",
        dataset / "edited",
        "--clip",
        "--prompts",
        dataset / "p.json",
        "--json",
        dataset / "c.json",
    )
    assert rc == 0 and "no prompt for 'b'" in err
    rows = {r["name"]: r for r in json.loads((dataset / "c.json").read_text())["rows"]}
    assert rows["a"]["clip"] == 31.5 and "clip" not in rows["b"] and calls["texts"] == [["a red suit"]]


def test_missing_inputs_are_reported(tmp_path, capsys):
    rc, _, err = run_cli(capsys, tmp_path / "nope", tmp_path)
    assert rc == 2 and "does not exist" in err
    (tmp_path / "empty").mkdir()
    rc, _, err = run_cli(capsys, tmp_path / "empty", tmp_path / "empty")
    assert rc == 2 and "no image pairs" in err


def test_runs_as_a_module(dataset, capsys, monkeypatch):
    """``python -m bench.metrics`` executes bench/metrics/__main__.py (run in-process here)."""
    monkeypatch.setattr(
        sys, "argv", ["bench.metrics", str(dataset / "src" / "b.png"), str(dataset / "edited" / "b.png")]
    )
    with pytest.raises(SystemExit) as e:
        runpy.run_module("bench.metrics", run_name="__main__")
    assert e.value.code == 0
    assert "| b | inf | 1.0000 |" in capsys.readouterr().out
