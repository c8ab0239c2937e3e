"""The float-input validation layer: finite values, stable ranges, shared α bounds,
and model/conditioning family messages — all without ComfyUI."""

import math

import pytest

from comfyui_ems.ems import validation as v


@pytest.mark.parametrize("spec", [v.ALPHA, v.CFG, v.CONSTRAINT, v.STEP_START, v.STEP_END])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "nan"])
def test_non_finite_values_are_refused_by_name(spec, bad):
    with pytest.raises(v.InputError) as e:
        spec.check(bad)
    assert spec.name in str(e.value) and "finite" in str(e.value)


def test_ranges_are_closed_and_explained():
    assert v.ALPHA.check(-10) == -10.0 and v.ALPHA.check(10.0) == 10.0
    with pytest.raises(v.InputError, match=r"alpha = 1e\+30 is outside -10 … 10"):
        v.ALPHA.check(1e30)
    with pytest.raises(v.InputError, match="σ"):
        v.CONSTRAINT.check(10.5)
    with pytest.raises(v.InputError, match="must be a number"):
        v.CFG.check(None)


def test_check_floats_covers_every_named_input():
    assert v.check_floats([v.CFG, v.CONSTRAINT], cfg=7, constraint=0.5) == {"cfg": 7.0, "constraint": 0.5}
    with pytest.raises(KeyError):  # an undeclared float input is a programming error
        v.check_floats([v.CFG], alpha=1.0)


def test_bounds_are_where_the_update_is_stable():
    # λ·η_0 ≤ σ < 1 for flow models; the widget ranges must allow the paper's settings
    # (λ 0.1–1.0, η 0.1 → 0.01, cfg 7.5) and nothing that cannot be stable at σ < 1 with η ≥ 0.1.
    assert v.CONSTRAINT.hi * 0.1 <= 1.0 and v.STEP_START.hi <= 1.0
    for spec, value in ((v.CONSTRAINT, 1.0), (v.STEP_START, 0.1), (v.STEP_END, 0.01), (v.CFG, 7.5)):
        spec.check(value)


def test_one_safe_range_warning_for_both_alpha_nodes():
    assert v.safe_alpha_warning([0.0, 1.0, 3.0]) == ""
    text = v.safe_alpha_warning([-2.5, 1.0, 4.0])
    assert text.startswith("alpha -2.5, 4 is outside -2 … 3")  # each node prefixes its name


def test_family_mismatch_names_both_families_and_the_fix():
    msg = v.family_mismatch("positive", "SD3/SD3.5", 4096, 2048, 768, None, fix="the SD3 text encoders")
    assert msg.startswith("'positive' comes from SD1.x") and "the model is SD3/SD3.5" in msg
    assert "4096-wide tokens" in msg and msg.endswith("the SD3 text encoders.")
    assert "the text encoder that belongs to this Chroma model" in v.family_mismatch(
        "p", "Chroma", 4096, None, 3584, None
    )
    assert v.family_mismatch("positive", "SD3", 4096, 2048, 4096, 2048) == ""
    flux_into_sd3 = v.family_mismatch("negative", "SD3", 4096, 2048, 4096, 768)
    assert "Flux" in flux_into_sd3 and "'negative'" in flux_into_sd3
    sd3_into_sdxl = v.family_mismatch("positive", "SDXL", 2048, None, 4096, 2048)
    assert "SD3/SD3.5" in sd3_into_sdxl and "SDXL" in sd3_into_sdxl
    assert "an encoder with 512-wide tokens" in v.family_mismatch("p", "SD3", 4096, None, 512, None)


@pytest.mark.parametrize(
    "tokens, pooled, family",
    [
        (768, 768, "SD1.x"),  # what CLIPTextEncode gives an SD1.5 checkpoint: a pooled vector is always there
        (768, None, "SD1.x"),
        (1024, 1024, "SD2.x"),
        (2048, 1280, "SDXL"),
        (2048, None, "AuraFlow"),
        (4096, 2048, "SD3"),
        (4096, 768, "Flux"),
        (4096, None, "T5-XXL-only"),
        (3584, None, "Qwen-Image"),
        (2304, None, "Lumina 2"),
        (768, 1280, "SD1.x"),  # an unknown pooled width: the token width still names the family
    ],
)
def test_families_are_named_by_token_width_refined_by_pooled(tokens, pooled, family):
    assert family in v.conditioning_family(tokens, pooled)
    assert "an encoder with" not in v.conditioning_family(tokens, pooled)


def test_sd15_conditioning_into_sd3_names_sd1x_not_the_widths():
    msg = v.family_mismatch("positive", "SD3", 4096, 2048, 768, 768)
    assert "comes from SD1.x (CLIP-L) (768-wide tokens, 768-wide pooled vector)" in msg
    assert "an encoder with" not in msg
