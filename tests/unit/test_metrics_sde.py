"""SDE = ‖x − h(f(x,t),c,t)‖ / ‖x − h(f(x,t),c̃,t)‖ + ‖x − h(f(x,t),c̃,t)‖ on a toy encoder/decoder;
per-pixel rms distances by default, the summed L2 norm by name."""

import math

import pytest
import torch

from bench.metrics.sde import item_norm, sde_from_reconstructions, semantic_disentanglement


def noise_like(x, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(x.shape, generator=g, dtype=x.dtype)


def toy(x):
    """f: identity + deterministic noise scaled by t. h: removes that noise, then scales the image
    by a per-condition factor s_c (a known linear map), so x̂_c = s_c·x exactly and
    ‖x − x̂_c‖ = |1 − s_c|·‖x‖."""
    n = noise_like(x)
    calls = {"f": 0, "h": []}

    def f(img, t):
        calls["f"] += 1
        return img + t * n

    def h(z, c, t):
        calls["h"].append((z.clone(), c))
        return (z - t * n) * c

    return f, h, calls


def test_sde_by_hand_per_item_summed_l2():
    x = torch.zeros(2, 2, 2, 3, dtype=torch.float64)
    x[0] = 0.5  # ‖x0‖ = 0.5·√12
    x[1, 0, 0, 0] = 2.0  # ‖x1‖ = 2
    f, h, _ = toy(x)
    r = semantic_disentanglement(x, f, h, c=0.9, c_flipped=0.5, t=0.75, norm="l2")
    norms = torch.tensor([0.5 * math.sqrt(12), 2.0], dtype=torch.float64)
    e_c, e_f = 0.1 * norms, 0.5 * norms
    assert torch.allclose(r.err_c, e_c, atol=1e-12)
    assert torch.allclose(r.err_flipped, e_f, atol=1e-12)
    assert torch.allclose(r.ratio, torch.full((2,), 0.2, dtype=torch.float64), atol=1e-12)
    # the literal formula: ratio PLUS the second norm
    assert r.sde[0].item() == pytest.approx(0.2 + 0.25 * math.sqrt(12), abs=1e-12)
    assert r.sde[1].item() == pytest.approx(0.2 + 1.0, abs=1e-12)


def test_default_is_per_pixel_rms_by_hand():
    """Default norm: ‖·‖₂ / √(H·W·C). x0 is 0.5 everywhere (12 values): rms(x0) = 0.5, so
    E_c = 0.1·0.5, E_c̃ = 0.5·0.5 and SDE = 0.2 + 0.25 — a value on the paper's scale."""
    x = torch.zeros(2, 2, 2, 3, dtype=torch.float64)
    x[0] = 0.5
    x[1, 0, 0, 0] = 2.0  # rms(x1) = 2 / √12
    f, h, _ = toy(x)
    r = semantic_disentanglement(x, f, h, c=0.9, c_flipped=0.5, t=0.75)
    assert r.err_c.tolist() == pytest.approx([0.05, 0.2 / math.sqrt(12)], abs=1e-12)
    assert r.err_flipped.tolist() == pytest.approx([0.25, 1.0 / math.sqrt(12)], abs=1e-12)
    assert r.sde.tolist() == pytest.approx([0.2 + 0.25, 0.2 + 1.0 / math.sqrt(12)], abs=1e-12)
    summed = semantic_disentanglement(x, f, h, c=0.9, c_flipped=0.5, t=0.75, norm="l2")
    assert torch.allclose(summed.ratio, r.ratio)  # the ratio does not depend on the norm; the added term does
    assert not torch.allclose(summed.sde, r.sde)


def test_rms_sde_does_not_grow_with_resolution_but_summed_does():
    """The same per-pixel error at 16² and at 64²: rms SDE identical, summed-L2 SDE 4× the added term."""
    values = {}
    for side in (16, 64):
        x = torch.full((1, side, side, 3), 0.6, dtype=torch.float64)
        x_c, x_f = x - 0.05, x - 0.3  # the flipped label changes every pixel by 0.3
        values[side] = (
            sde_from_reconstructions(x, x_c, x_f).sde.item(),
            sde_from_reconstructions(x, x_c, x_f, norm="l2").sde.item(),
        )
    assert values[16][0] == pytest.approx(values[64][0], abs=1e-12)
    assert values[16][0] == pytest.approx(0.05 / 0.3 + 0.3, abs=1e-12)
    assert 1.0 > values[16][0] > 0.4  # rms: ratio + a few tenths
    assert values[64][1] - 1 / 6 == pytest.approx(4 * (values[16][1] - 1 / 6), rel=1e-9)
    assert values[64][1] > 30  # 0.3·√(64·64·3) ≈ 33: far off the paper's scale, and it grows with the image


def test_f_runs_once_and_both_reconstructions_start_from_the_same_z():
    x = torch.rand(1, 4, 4, 3, dtype=torch.float64)
    f, h, calls = toy(x)
    semantic_disentanglement(x, f, h, c=1.0, c_flipped=0.0, t=0.5)
    assert calls["f"] == 1
    (z1, c1), (z2, c2) = calls["h"]
    assert torch.equal(z1, z2) and (c1, c2) == (1.0, 0.0)


def test_an_in_place_decoder_cannot_leak_into_the_second_call():
    x = torch.rand(1, 4, 4, 3, dtype=torch.float64)

    def f(img, t):
        return img.clone()

    def h(z, c, t):
        z.mul_(c)  # works in place on its input
        return z

    r = semantic_disentanglement(x, f, h, c=1.0, c_flipped=2.0, t=0.5, norm="l2")
    assert r.err_c.item() == pytest.approx(0.0, abs=1e-12)
    assert r.err_flipped.item() == pytest.approx(x.norm().item(), rel=1e-12)


def test_perfect_reconstruction_and_a_flip_that_changes_nothing():
    x = torch.rand(1, 4, 4, 3, dtype=torch.float64)
    f, h, _ = toy(x)
    r = semantic_disentanglement(x, f, h, c=1.0, c_flipped=0.0, t=0.3)
    assert r.sde.item() == pytest.approx(0.0 + item_norm(x).item())  # E_c = 0, E_c̃ = rms(x)
    same = sde_from_reconstructions(x, 0.5 * x, x.clone())  # the flipped label reproduces x exactly
    assert math.isinf(same.ratio.item()) and math.isinf(same.sde.item())
    assert math.isnan(sde_from_reconstructions(x, x.clone(), x.clone()).ratio.item())  # 0 / 0


def test_rms_norm_divides_by_the_element_count():
    x = torch.rand(2, 4, 6, 3, dtype=torch.float64)
    assert torch.allclose(item_norm(x, "rms"), item_norm(x, "l2") / math.sqrt(72))
    f, h, _ = toy(x)
    r = semantic_disentanglement(x, f, h, c=0.8, c_flipped=0.4, t=0.5, norm="rms")
    assert torch.allclose(r.err_flipped, 0.6 * item_norm(x, "rms"))
    with pytest.raises(ValueError, match="norm"):
        item_norm(x, "l1")


def test_reconstructions_must_match_the_input_shape():
    x = torch.rand(1, 4, 4, 3)
    with pytest.raises(ValueError, match="h must decode back"):
        sde_from_reconstructions(x, x, x[:, :2])
    r = sde_from_reconstructions(x, x, torch.zeros_like(x))
    assert r.as_dict()["err_c"] == [0.0]
