"""The Manipulate step on SD3-shaped and other families' conditioning, without ComfyUI."""

import pytest
import torch

from comfyui_ems.ems.conditioning import (
    ConditioningMismatch,
    TokenLayout,
    TokenLengthMismatch,
    describe_tokens,
    manipulate,
    manipulate_conditioning,
    sd3_layout,
    sweep_conditioning,
    text_direction,
)


def sd3_tokens(seed, chunks=1, t5=77, batch=1):
    g = torch.Generator().manual_seed(seed)
    clip = torch.randn(batch, 77 * chunks, 2048, generator=g)
    clip = torch.cat([clip, torch.zeros(batch, 77 * chunks, 2048)], dim=-1)
    return torch.cat([clip, torch.randn(batch, t5, 4096, generator=g)], dim=1)


def sd3_cond(seed, chunks=1, t5=77, batch=1, **extra):
    g = torch.Generator().manual_seed(seed + 1000)
    return [[sd3_tokens(seed, chunks, t5, batch), {"pooled_output": torch.randn(batch, 2048, generator=g), **extra}]]


def test_lerp_is_exact_at_the_ends():
    c0, c1 = sd3_tokens(0), sd3_tokens(1)
    assert torch.equal(manipulate(c0, c1, 0.0), c0)
    assert torch.equal(manipulate(c0, c1, 1.0), c1)
    half = manipulate(c0, c1, 0.5)
    assert torch.allclose(half, (c0 + c1) / 2, atol=1e-6)


def test_extrapolation_and_reversal_follow_the_direction():
    c0, c1 = sd3_tokens(0), sd3_tokens(1)
    d = text_direction(c0, c1)
    assert torch.allclose(manipulate(c0, c1, -1.0), c0 - d, atol=1e-5)
    assert torch.allclose(manipulate(c0, c1, 3.0), c0 + 3 * d, atol=1e-5)


def test_base_chaining_gives_multi_attribute_sum():
    c0, c1, c2 = sd3_tokens(0), sd3_tokens(1), sd3_tokens(2)
    first = manipulate_conditioning(sd3_cond(0), sd3_cond(1), 0.7)
    # second direction: from c0 towards c2, starting at the first result
    chained = manipulate_conditioning(sd3_cond(0), sd3_cond(2), 0.4, base=first)
    expected = c0 + 0.7 * (c1 - c0) + 0.4 * (c2 - c0)
    assert torch.allclose(chained[0][0], expected, atol=1e-5)
    p0, p1, p2 = (sd3_cond(s)[0][1]["pooled_output"] for s in (0, 1, 2))
    assert torch.allclose(chained[0][1]["pooled_output"], p0 + 0.7 * (p1 - p0) + 0.4 * (p2 - p0), atol=1e-5)


def test_pooled_is_moved_or_kept():
    src, tgt = sd3_cond(0), sd3_cond(1)
    on = manipulate_conditioning(src, tgt, 0.25, manipulate_pooled=True)
    off = manipulate_conditioning(src, tgt, 0.25, manipulate_pooled=False)
    p0, p1 = src[0][1]["pooled_output"], tgt[0][1]["pooled_output"]
    assert torch.allclose(on[0][1]["pooled_output"], torch.lerp(p0, p1, 0.25))
    assert torch.equal(off[0][1]["pooled_output"], p0)
    assert torch.equal(on[0][0], off[0][0])


def test_other_keys_come_from_target_and_inputs_are_not_mutated():
    src, tgt = sd3_cond(0, guidance=1.0), sd3_cond(1, guidance=3.5)
    before = src[0][0].clone()
    out = manipulate_conditioning(src, tgt, 0.5)
    assert out[0][1]["guidance"] == 3.5
    assert torch.equal(src[0][0], before) and out[0][0] is not src[0][0]


def test_sd3_layout_is_detected():
    assert sd3_layout(sd3_tokens(0, chunks=2, t5=90)) == TokenLayout(2, 90)
    assert sd3_layout(torch.randn(1, 77, 768)) is None  # SD1.5
    assert sd3_layout(torch.randn(1, 256, 4096)) is None  # Flux-like T5 only
    assert "2 CLIP chunks of 77 + 90 T5 tokens" in describe_tokens(sd3_tokens(0, 2, 90))


def test_unequal_lengths_are_refused_with_lengths_and_fix():
    with pytest.raises(ConditioningMismatch) as e:
        manipulate_conditioning(sd3_cond(0, chunks=1, t5=77), sd3_cond(1, chunks=2, t5=120), 0.5)
    msg = str(e.value)
    assert isinstance(e.value, TokenLengthMismatch)  # the nodes add which node fixes it
    assert msg.startswith("'source' has 154 tokens") and "274 tokens" in msg
    assert "encode the prompts together" in msg and "CLIP chunks and T5 tokens" in msg


def test_other_families_interpolate_what_is_there():
    sd15 = ([[torch.randn(1, 77, 768), {}]], [[torch.randn(1, 77, 768), {}]])
    out = manipulate_conditioning(*sd15, 0.5)
    assert out[0][0].shape == (1, 77, 768) and "pooled_output" not in out[0][1]
    sdxl = [[[torch.randn(1, 154, 2048), {"pooled_output": torch.randn(1, 1280), "width": 1024}]] for _ in range(2)]
    out = manipulate_conditioning(*sdxl, 2.0)
    assert out[0][1]["width"] == 1024 and out[0][1]["pooled_output"].shape == (1, 1280)
    flux = [[[torch.randn(1, 256, 4096), {"pooled_output": torch.randn(1, 768), "guidance": 3.5}]] for _ in range(2)]
    assert manipulate_conditioning(*flux, -1.0)[0][0].shape == (1, 256, 4096)


def test_missing_pooled_on_one_side_is_refused():
    a = [[torch.randn(1, 77, 768), {}]]
    b = [[torch.randn(1, 77, 768), {"pooled_output": torch.randn(1, 768)}]]
    with pytest.raises(ConditioningMismatch, match="pooled_output"):
        manipulate_conditioning(a, b, 0.5)


def test_non_conditioning_input_is_refused():
    with pytest.raises(ConditioningMismatch, match="not a CONDITIONING"):
        manipulate_conditioning(torch.randn(1, 77, 768), sd3_cond(0), 0.5)


def test_half_precision_is_kept_and_exact_at_zero():
    c0, c1 = sd3_tokens(0).half(), sd3_tokens(1).half()
    out = manipulate(c0, c1, 0.0)
    assert out.dtype == torch.float16 and torch.equal(out, c0)


def test_sweep_item_i_equals_single_run():
    src, tgt = sd3_cond(0), sd3_cond(1)
    alphas = [-1.0, 0.0, 0.3, 1.0, 2.5]
    sweep = sweep_conditioning(src, tgt, alphas)
    assert sweep[0][0].shape[0] == len(alphas)
    for i, a in enumerate(alphas):
        single = manipulate_conditioning(src, tgt, a)
        assert torch.equal(sweep[0][0][i : i + 1], single[0][0])
        assert torch.equal(sweep[0][1]["pooled_output"][i : i + 1], single[0][1]["pooled_output"])


def test_batch_one_broadcasts_against_a_batched_base():
    src, tgt = sd3_cond(0), sd3_cond(1)
    base = sweep_conditioning(src, tgt, [0.0, 1.0])
    out = manipulate_conditioning(src, sd3_cond(2), 0.5, base=base)
    assert out[0][0].shape[0] == 2
    assert torch.allclose(out[0][0][1], (tgt[0][0] + 0.5 * (sd3_cond(2)[0][0] - src[0][0]))[0], atol=1e-5)


def test_entry_count_mismatch_is_refused():
    with pytest.raises(ConditioningMismatch, match="numbers of entries"):
        manipulate_conditioning(sd3_cond(0) + sd3_cond(2), sd3_cond(1), 0.5)


def test_every_output_records_its_alpha_per_item():
    from comfyui_ems.ems.conditioning import ALPHA_KEY

    src, tgt = sd3_cond(0), sd3_cond(1)
    single = manipulate_conditioning(src, tgt, 0.25)
    assert single[0][1][ALPHA_KEY].dtype == torch.float64 and single[0][1][ALPHA_KEY].tolist() == [0.25]
    sweep = sweep_conditioning(src, tgt, [0.0, -1.0, 2.5])
    assert sweep[0][1][ALPHA_KEY].tolist() == [0.0, -1.0, 2.5]
    # a chained direction records its own α, not its base's
    chained = manipulate_conditioning(src, sd3_cond(2), 0.7, base=sweep)
    assert chained[0][1][ALPHA_KEY].tolist() == [0.7] * 3
    assert ALPHA_KEY not in src[0][1] and ALPHA_KEY not in tgt[0][1]


def test_conditioning_alpha_reads_broadcasts_and_refuses_disagreement():
    from comfyui_ems.ems.conditioning import ALPHA_KEY, conditioning_alpha

    src, tgt = sd3_cond(0), sd3_cond(1)
    assert conditioning_alpha(src, 1) is None  # a plain prompt: no α → full push
    one = manipulate_conditioning(src, tgt, 0.5)
    assert conditioning_alpha(one, 3).tolist() == [0.5] * 3
    # ConditioningCombine-style list: a plain entry does not vote; equal α agree
    assert conditioning_alpha(one + src + one, 1).tolist() == [0.5]
    with pytest.raises(ConditioningMismatch, match="different α"):
        conditioning_alpha(one + manipulate_conditioning(src, tgt, 1.0), 1)
    with pytest.raises(ConditioningMismatch, match="2 α values"):
        conditioning_alpha(sweep_conditioning(src, tgt, [0.0, 1.0]), 3)
    # what ComfyUI's conditioning nodes do to an entry: copy the dict and set keys
    copied = [[one[0][0], {**one[0][1], "strength": 1.0}]]
    assert conditioning_alpha(copied, 1).tolist() == [0.5] and ALPHA_KEY in copied[0][1]


# -- language-model encoders: one attention mask for every prompt of an edit ----------------------


def lm_cond(seed, length=12, words=None, width=3584):
    """A Qwen-Image/Lumina-2-shaped conditioning: (1, L, width) tokens, no pooled vector, and the
    (1, L) mask of its first ``words`` positions (no mask key when every position is a word)."""
    g = torch.Generator().manual_seed(seed)
    extras = {"pooled_output": None}
    if words is not None and words < length:
        extras["attention_mask"] = (torch.arange(length) < words).long().unsqueeze(0)
    return [[torch.randn(1, length, width, generator=g), extras]]


def test_share_mask_gives_every_prompt_the_union_of_their_masks():
    from comfyui_ems.ems.conditioning import share_mask

    short, long_, full = lm_cond(0, words=5), lm_cond(1, words=9), lm_cond(2)
    a, b = share_mask([short, long_])
    union = (torch.arange(12) < 9).long().unsqueeze(0)
    assert torch.equal(a[0][1]["attention_mask"], union) and torch.equal(b[0][1]["attention_mask"], union)
    assert torch.equal(a[0][0], short[0][0])  # the tokens are untouched
    # a prompt with no mask attends everywhere, so the union is everything — kept as a mask of ones
    # (Lumina 2 reads its token count from the mask)
    a, c = share_mask([short, full])
    assert torch.equal(a[0][1]["attention_mask"], torch.ones(1, 12, dtype=torch.long))
    assert torch.equal(c[0][1]["attention_mask"], a[0][1]["attention_mask"])
    plain = share_mask([lm_cond(3), lm_cond(4)])
    assert all("attention_mask" not in c[0][1] for c in plain)  # no mask anywhere: none added


def test_with_shared_masks_alpha_0_and_1_are_the_source_and_target_exactly():
    from comfyui_ems.ems.conditioning import share_mask

    src, tgt = share_mask([lm_cond(0, words=5), lm_cond(1, words=9)])
    at0 = manipulate_conditioning(src, tgt, 0.0)
    at1 = manipulate_conditioning(src, tgt, 1.0)
    assert torch.equal(at0[0][0], src[0][0]) and torch.equal(at0[0][1]["attention_mask"], src[0][1]["attention_mask"])
    assert torch.equal(at1[0][0], tgt[0][0]) and torch.equal(at1[0][1]["attention_mask"], tgt[0][1]["attention_mask"])
    sweep = sweep_conditioning(src, tgt, [0.0, 0.5, 1.0])
    assert sweep[0][0].shape[0] == 3 and torch.equal(sweep[0][1]["attention_mask"], src[0][1]["attention_mask"])


def test_unequal_masks_without_encode_prompts_become_their_union():
    at = manipulate_conditioning(lm_cond(0, words=5), lm_cond(1, words=9), 0.3)
    assert torch.equal(at[0][1]["attention_mask"], (torch.arange(12) < 9).long().unsqueeze(0))


def test_a_mask_that_does_not_fit_the_tokens_is_refused():
    bad = lm_cond(1, words=3)
    bad[0][1]["attention_mask"] = torch.ones(1, 7, dtype=torch.long)
    with pytest.raises(ConditioningMismatch, match="does not fit 12 tokens"):
        manipulate_conditioning(lm_cond(0, words=5), bad, 0.5)


def test_flux_guidance_and_other_extras_come_from_the_target():
    src = sd3_cond(0, guidance=3.5)
    tgt = sd3_cond(1, guidance=2.0)
    assert manipulate_conditioning(src, tgt, 0.5)[0][1]["guidance"] == 2.0


def test_equal_masks_stack_as_one_and_unequal_ones_do_not_stack():
    from comfyui_ems.ems.conditioning import share_mask, stack_batches

    src, tgt = share_mask([lm_cond(0, words=5), lm_cond(1, words=9)])
    stacked = stack_batches([src, tgt], batch=1)
    assert stacked[0][0].shape[0] == 2 and torch.equal(stacked[0][1]["attention_mask"], src[0][1]["attention_mask"])
    assert stack_batches([lm_cond(0, words=5), lm_cond(1, words=9)], batch=1) is None
