"""ems.tensors: finiteness, the magnitude bound and the image-latent layout checks, without ComfyUI."""

from __future__ import annotations

import math

import pytest
import torch

from comfyui_ems.ems import tensors as t


def latent(shape=(1, 16, 8, 8), **extra):
    return {"samples": torch.randn(shape, generator=torch.Generator().manual_seed(0)), **extra}


def conditioning(width=4096, pooled=2048, **extras):
    return [[torch.randn(1, 77, width), {"pooled_output": torch.randn(1, pooled), **extras}]]


def test_real_values_of_every_kind_pass():
    for value in (latent(), torch.rand(2, 64, 64, 3), conditioning(), None, "not a tensor"):
        assert t.value_problem(value) == ("", "")


@pytest.mark.parametrize("poison", [math.nan, math.inf, -math.inf])
def test_one_non_finite_element_is_found_and_counted(poison):
    x = latent()
    x["samples"][0, 3, 2, 1] = poison
    part, problem = t.value_problem(x)
    kind = "NaN" if math.isnan(poison) else "infinite"
    assert part == "samples" and problem == f"1 {kind} of 1,024 values"


def test_every_part_of_each_kind_is_checked():
    mask = torch.ones(1, 8, 8)
    mask[0, 0, 0] = math.nan
    assert t.value_problem(latent(noise_mask=mask))[0] == "noise_mask"
    cond = conditioning()
    cond[0][1]["pooled_output"][0, 5] = math.inf
    assert t.value_problem(cond) == ("pooled_output", "1 infinite of 2,048 values")
    two = conditioning() + conditioning()
    two[1][0][0, 0, 0] = math.nan
    assert t.value_problem(two)[0] == "entry 1 tokens"
    image = torch.rand(1, 4, 4, 3)
    image[0, 0, 0, 0] = math.nan
    assert t.value_problem(image) == ("", "1 NaN of 48 values")


def test_an_additive_attention_mask_may_hold_minus_inf():
    cond = conditioning(attention_mask=torch.tensor([[0.0, -math.inf]]))
    assert t.value_problem(cond) == ("", "")


def test_absurd_magnitudes_are_refused_and_nan_is_reported_first():
    huge = latent()
    huge["samples"] *= 1e30
    part, problem = t.value_problem(huge)
    assert part == "samples" and problem.startswith("values up to ") and "e+30" in problem
    assert t.value_problem(huge, limit=None) == ("", "")  # outputs: finiteness only
    mixed = conditioning()
    mixed[0][0][0, 0, 0] = 1e30
    mixed[0][1]["pooled_output"][0, 0] = math.nan
    assert t.value_problem(mixed)[1].endswith("NaN of 2,048 values")


def test_the_bound_is_above_real_values_and_below_where_half_precision_overflows():
    assert 100 < t.MAX_ABS < torch.finfo(torch.float16).max
    edge = torch.full((1, 16, 8, 8), t.MAX_ABS)
    assert t.value_problem({"samples": edge}) == ("", "")
    assert t.value_problem({"samples": edge * 1.01})[1]


def test_layout_names_what_the_latent_is():
    assert t.layout_problem((1, 16, 8, 8)) == ""
    assert t.layout_problem((1, 16, 2, 8, 8)) == (
        "is not an image latent: expected (batch, channels, height, "
        "width), got 5-D (1, 16, 2, 8, 8) — a video latent (batch, "
        "channels, frames, height, width)"
    )
    assert "got 3-D" in t.layout_problem((1, 64, 100))
    assert t.layout_problem((0, 16, 8, 8)) == "is an empty batch"
    assert t.layout_problem((1, 16, 1, 8, 8)) == ""  # a single frame: Qwen-Image's VAE writes images so
    assert t.layout_problem((0, 16, 1, 8, 8)) == "is an empty batch"


def test_channels_against_the_model():
    assert t.channel_problem((1, 16, 8, 8), 16) == ""
    assert t.channel_problem((1, 16, 8, 8), None) == ""
    assert t.channel_problem((1, 4, 8, 8), 16, "this SD3 model") == "has 4 channels but this SD3 model takes 16"


def test_the_side_limit_is_the_position_embedding_grid():
    # SD3-medium: a 192 × 192 grid of 2 × 2 patches → 384 latent pixels (3072 image pixels) per side.
    assert t.max_latent_side(192, 2) == 384
    assert t.max_latent_side(None, 2) is None and t.max_latent_side(64, None) is None
    assert t.size_problem((1, 16, 384, 384), 384) == ""
    assert t.size_problem((1, 16, 8, 8), None) == ""
    message = t.size_problem((1, 16, 512, 256), 384, "this SD3 model")
    assert message.startswith("is 256×512 latent pixels, but this SD3 model takes at most 384×384")
