"""ems.grid: the labelled sweep grid (layout, labels, dtype), without ComfyUI."""

from __future__ import annotations

import pytest
import torch

from comfyui_ems.ems.grid import GridError, grid_shape, labelled_grid, split_labels


def test_auto_columns_put_a_small_sweep_in_one_row_and_a_large_one_in_a_square():
    assert grid_shape(5, 0) == (1, 5)
    assert grid_shape(9, 0) == (3, 3)
    assert grid_shape(10, 0) == (3, 4)
    assert grid_shape(5, 2) == (3, 2)
    assert grid_shape(3, 10) == (1, 3)  # never wider than the batch


def test_labels_are_split_per_image_and_padded_or_trimmed():
    assert split_labels("α=0\nα=0.5\nα=1\n", 3) == ["α=0", "α=0.5", "α=1"]
    assert split_labels("α=0", 3) == ["α=0", "", ""]
    assert split_labels("a\nb\nc", 2) == ["a", "b"]
    assert split_labels("", 2) == ["", ""]


def test_tiles_are_copied_exactly_and_the_label_strip_has_ink():
    images = torch.rand(3, 32, 40, 3)
    grid = labelled_grid(images, ["α=0", "α=0.5", "α=1"], columns=0, gap=4)
    assert grid.shape[0] == 1 and grid.shape[-1] == 3 and grid.dtype == images.dtype
    assert grid.shape[2] == 3 * 40 + 4 * 4  # one row, gaps around every tile
    for i in range(3):
        x = 4 + i * (40 + 4)
        tile = grid[0, 4 : 4 + 32, x : x + 40]
        torch.testing.assert_close(tile, images[i], atol=1 / 255, rtol=0)
        strip = grid[0, 4 + 32 :, x : x + 40]
        assert (strip < 0.5).any(), f"no text drawn under tile {i}"


def test_unlabelled_grid_has_no_label_strip():
    grid = labelled_grid(torch.zeros(4, 16, 16, 3), ["", "", "", ""], columns=2, gap=2)
    assert grid.shape == (1, 2 * 16 + 3 * 2, 2 * 16 + 3 * 2, 3)


def test_different_labels_draw_different_pixels():
    images = torch.ones(2, 64, 64, 3) * 0.5
    a = labelled_grid(images, ["α=0", "α=1"])
    b = labelled_grid(images, ["α=0", "α=−1"])
    assert not torch.equal(a, b)


def test_the_method_reads_no_font_file_and_spells_greek_in_ascii_without_one():
    """ems.grid draws with Pillow's own font unless handed one; the node hands it a system font
    that draws α (nodes/fonts.py), so the two differ exactly where the label is not ASCII."""
    from comfyui_ems.nodes.fonts import system_font

    images = torch.ones(1, 64, 64, 3) * 0.5
    assert torch.equal(labelled_grid(images, ["α=−1"]), labelled_grid(images, ["alpha=-1"]))
    font, unicode_ok = system_font(12)
    if unicode_ok:  # a system with DejaVu/Arial/Liberation
        drawn = labelled_grid(images, ["α=−1"], load_font=system_font)
        assert not torch.equal(drawn, labelled_grid(images, ["alpha=-1"], load_font=system_font))


def test_bad_input_is_refused_clearly():
    with pytest.raises(GridError, match="empty"):
        labelled_grid(torch.zeros(0, 8, 8, 3), [])
    with pytest.raises(GridError, match="IMAGE batch"):
        labelled_grid(torch.zeros(8, 8, 3), [])


def test_long_labels_are_fitted_with_few_measurements_and_quickly():
    """Fitting measured once per removed character (40,000 characters: 71 s)."""
    import time

    from PIL import Image, ImageDraw

    from comfyui_ems.ems import grid

    from comfyui_ems.nodes.fonts import system_font

    font, _ = system_font(12)
    draw = ImageDraw.Draw(Image.new("RGB", (8, 8)))
    calls = []
    measure = draw.textlength
    draw.textlength = lambda text, **kw: calls.append(len(text)) or measure(text, **kw)
    fitted = grid._fit(draw, "x" * 40_000, font, 64, "…")
    assert fitted.endswith("…") and measure(fitted, font=font) <= 64 and len(fitted) > 2
    assert measure(fitted[:-1] + "x…", font=font) > 64  # the longest prefix that fits
    assert len(calls) <= 10 and max(calls) <= 65  # O(log n) measurements of at most width characters
    assert grid._fit(draw, "α=1", font, 64, "…") == "α=1"
    started = time.perf_counter()
    labelled_grid(torch.rand(64, 32, 32, 3), ["α=0.5 " * 1700] * 64)  # 64 labels of 10,200 characters
    assert time.perf_counter() - started < 5


def test_the_tile_hook_runs_before_every_tile_and_can_stop_the_grid():
    seen = []
    labelled_grid(torch.rand(5, 8, 8, 3), ["a"] * 5, on_tile=lambda i, n: seen.append((i, n)))
    assert seen == [(i, 5) for i in range(5)]

    class Cancelled(Exception):
        pass

    def cancel_at_3(i, n):
        if i == 3:
            raise Cancelled

    with pytest.raises(Cancelled):
        labelled_grid(torch.rand(64, 8, 8, 3), ["a"] * 64, on_tile=cancel_at_3)
