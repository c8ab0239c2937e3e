"""ems/latent_direction.py: exact cases for both modes, batch rules, dtypes and refusals."""

import pytest
import torch

from comfyui_ems.ems.latent_direction import (
    LatentDirectionError,
    apply_direction,
    blend_mask,
    spectrum_change,
    svd_direction,
    to_matrices,
)

B, C, H, W = 3, 4, 6, 5


def rand(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.manual_seed(seed)).to(dtype)


@pytest.fixture
def trio():
    return rand(B, C, H, W, seed=0), rand(1, C, H, W, seed=1), rand(1, C, H, W, seed=2)


def with_spectrum(u, s, vh):
    return (u * s.unsqueeze(-2)) @ vh


def orthonormal(n, k, seed):
    q, _ = torch.linalg.qr(torch.randn(n, k, generator=torch.manual_seed(seed), dtype=torch.float64))
    return q


# ------------------------------------------------------------------ α = 0 and the linear mode


@pytest.mark.parametrize(
    "mode, options",
    [
        ("linear", {}),
        ("svd", {}),
        ("svd", {"axes": "channels_x_pixels"}),
        ("svd", {"spectrum": "ratio"}),
        ("svd", {"spectrum": "project"}),
        ("svd", {"rank": 2}),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_alpha_zero_returns_the_latent_bit_for_bit(trio, mode, options, dtype):
    latent, a, b = (t.to(dtype) for t in trio)
    out = apply_direction(latent, a, b, 0.0, mode, **options)
    assert out.dtype == dtype and out.shape == latent.shape
    assert torch.equal(out, latent)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_linear_with_a_equal_to_latent_and_alpha_one_is_reference_b_exactly(dtype):
    # magnitudes far apart: latent + (b − latent) would round away from b in float64
    latent = rand(1, C, H, W, seed=3, dtype=dtype) * 3.7
    b = rand(1, C, H, W, seed=4, dtype=dtype) * 1e-3
    assert torch.equal(apply_direction(latent, latent, b, 1.0, "linear"), b)


def test_linear_is_latent_plus_alpha_times_the_difference(trio):
    latent, a, b = trio
    for alpha in (0.7, -1.5, 3.0):
        expected = latent.double() + alpha * (b.double() - a.double())
        torch.testing.assert_close(apply_direction(latent, a, b, alpha), expected.float(), rtol=0, atol=1e-6)


def test_linear_is_affine_in_alpha(trio):
    """The edit at α is α times the edit at 1 (what makes a sweep a straight line)."""
    latent, a, b = (t.double() for t in trio)
    one = apply_direction(latent, a, b, 1.0) - latent
    torch.testing.assert_close(apply_direction(latent, a, b, 0.3) - latent, 0.3 * one)


# ------------------------------------------------------------------ batch rules


def test_batch1_references_apply_to_every_item_and_a_batch_of_alpha_is_per_item(trio):
    latent, a, b = trio
    alphas = torch.tensor([0.0, 0.5, -2.0])
    for mode in ("linear", "svd"):
        out = apply_direction(latent, a, b, alphas, mode)
        for i, alpha in enumerate(alphas.tolist()):
            single = apply_direction(latent[i : i + 1], a, b, alpha, mode)
            torch.testing.assert_close(out[i : i + 1], single, rtol=0, atol=1e-6)
        assert torch.equal(out[0], latent[0])


def test_per_item_references(trio):
    latent = trio[0]
    a, b = rand(B, C, H, W, seed=5), rand(B, C, H, W, seed=6)
    out = apply_direction(latent, a, b, 1.0, "svd")
    for i in range(B):
        torch.testing.assert_close(
            out[i : i + 1], apply_direction(latent[i : i + 1], a[i : i + 1], b[i : i + 1], 1.0, "svd")
        )


def test_alpha_as_a_zero_dim_tensor(trio):
    latent, a, b = trio
    torch.testing.assert_close(apply_direction(latent, a, b, torch.tensor(0.5)), apply_direction(latent, a, b, 0.5))


# ------------------------------------------------------------------ the SVD reading


def test_svd_moves_only_the_singular_values_that_differ():
    """Latent, a and b share no singular vectors; a and b differ at σ_1 and σ_3 only. The edited
    latent keeps its own U, V and its spectrum changes by α·Δσ exactly there."""
    n = 6
    u, v = orthonormal(n, n, 10), orthonormal(n, n, 11)
    s = torch.tensor([9.0, 7.0, 5.0, 3.0, 2.0, 1.0], dtype=torch.float64)
    s_a = torch.tensor([8.0, 6.0, 4.0, 2.5, 1.5, 0.5], dtype=torch.float64)
    s_b = s_a.clone()
    s_b[1] += 0.8
    s_b[3] -= 0.4
    latent = with_spectrum(u, s, v.T).view(1, 1, n, n)
    a = with_spectrum(orthonormal(n, n, 12), s_a, orthonormal(n, n, 13).T).view(1, 1, n, n)
    b = with_spectrum(orthonormal(n, n, 14), s_b, orthonormal(n, n, 15).T).view(1, 1, n, n)
    alpha = 1.5
    out = apply_direction(latent, a, b, alpha, "svd")
    expected = s.clone()
    expected[1] += alpha * 0.8
    expected[3] -= alpha * 0.4
    torch.testing.assert_close(torch.linalg.svdvals(out[0, 0]), expected)
    # identity: the result is still diagonal in the latent's own singular vectors
    torch.testing.assert_close(u.T @ out[0, 0] @ v, torch.diag(expected))


def test_svd_rank_limits_the_edit_to_the_leading_values():
    n = 5
    u, v = orthonormal(n, n, 20), orthonormal(n, n, 21)
    s = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0], dtype=torch.float64)
    latent = with_spectrum(u, s, v.T).view(1, 1, n, n)
    a = with_spectrum(u, torch.ones(n, dtype=torch.float64) * torch.arange(n, 0, -1), v.T).view(1, 1, n, n)
    b = 2 * a
    out = apply_direction(latent, a, b, 1.0, "svd", rank=2)
    torch.testing.assert_close(
        torch.linalg.svdvals(out[0, 0]), torch.tensor([10.0, 8.0, 3.0, 2.0, 1.0], dtype=torch.float64)
    )


def test_ratio_spectrum_scales_multiplicatively():
    sigma = torch.tensor([[[4.0, 2.0]]], dtype=torch.float64)
    sa = torch.tensor([[[2.0, 1.0]]], dtype=torch.float64)
    sb = torch.tensor([[[4.0, 1.0]]], dtype=torch.float64)
    change = spectrum_change(sigma, sa, sb, torch.tensor([2.0], dtype=torch.float64), spectrum="ratio")
    torch.testing.assert_close(sigma + change, torch.tensor([[[16.0, 2.0]]], dtype=torch.float64))
    shift = spectrum_change(sigma, sa, sb, torch.tensor([-5.0], dtype=torch.float64), spectrum="shift")
    assert (sigma + shift).min() == 0.0  # a spectrum never goes negative


def test_project_spectrum_measures_the_pair_along_the_latents_own_vectors():
    """b − a = 0.6·u_2 v_2ᵀ + (a part off the latent's diagonal): only σ_2 moves, by α·0.6, signed."""
    n = 5
    u, v = orthonormal(n, n, 30), orthonormal(n, n, 31)
    s = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0], dtype=torch.float64)
    latent = with_spectrum(u, s, v.T).view(1, 1, n, n)
    a = rand(1, 1, n, n, seed=32).double()
    off_diagonal = torch.outer(u[:, 0], v[:, 3])  # u_0ᵀ(·)v_0 = 0 … its diagonal in the latent basis is 0
    b = a + 0.6 * torch.outer(u[:, 2], v[:, 2]) + 0.9 * off_diagonal
    for alpha in (1.0, -2.0):
        out = apply_direction(latent, a, b, alpha, "svd", spectrum="project")
        coords = u.T @ out[0, 0] @ v
        expected = s.clone()
        expected[2] += alpha * 0.6
        torch.testing.assert_close(coords, torch.diag(expected))


def test_identical_references_change_nothing(trio):
    latent, a, _ = trio
    for mode in ("linear", "svd"):
        torch.testing.assert_close(apply_direction(latent, a, a.clone(), 2.0, mode), latent, rtol=0, atol=1e-5)


def test_svd_with_a_equal_to_latent_takes_bs_spectrum_and_keeps_its_vectors():
    latent, b = rand(1, C, H, W, seed=7).double(), rand(1, C, H, W, seed=8).double()
    out = apply_direction(latent, latent, b, 1.0, "svd")
    torch.testing.assert_close(torch.linalg.svdvals(out), torch.linalg.svdvals(b))
    assert not torch.allclose(out, b)


def test_matrix_axes():
    x = torch.arange(2 * 3 * 4 * 5.0).view(2, 3, 4, 5)
    assert to_matrices(x, "per_channel").shape == (2, 3, 4, 5)
    m = to_matrices(x, "channels_x_pixels")
    assert m.shape == (2, 1, 3, 20) and torch.equal(m[1, 0, 2], x[1, 2].flatten())
    assert apply_direction(x, x[:1], x[1:], 1.0, "svd", axes="channels_x_pixels").shape == x.shape


def test_svd_result_is_float64_internally():
    """A float16 latent edited by svd equals the float64 computation rounded once."""
    latent, a, b = rand(1, C, H, W, seed=1), rand(1, C, H, W, seed=2), rand(1, C, H, W, seed=3)
    half = apply_direction(latent.half(), a.half(), b.half(), 0.8, "svd")
    full = svd_direction(
        latent.half().double(), a.half().double(), b.half().double(), torch.tensor([0.8], dtype=torch.float64)
    )
    assert torch.equal(half, full.half())


# ------------------------------------------------------------------ masks


def test_mask_keeps_the_outside_exactly_and_edits_the_inside():
    latent, a, b = rand(2, C, 4, 4, seed=1), rand(1, C, 4, 4, seed=2), rand(1, C, 4, 4, seed=3)
    edited = apply_direction(latent, a, b, 1.0)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :16, :] = 1.0  # top half, at pixel resolution (8× the latent)
    out = blend_mask(latent, edited, mask)
    assert torch.equal(out[..., 2:, :], latent[..., 2:, :])
    assert torch.equal(out[..., :1, :], edited[..., :1, :])
    assert blend_mask(latent, edited, None) is edited


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("nan_latent", "latent contains NaN"),
        ("inf_ref", "reference_b contains NaN or infinite"),
        ("nan_alpha", "alpha must be a finite number"),
        ("shape", "reference_a has shape (1, 4, 6, 6)"),
        ("channels", "reference_b has shape (1, 3, 6, 5)"),
        ("batch", "reference_a has a batch of 2"),
        ("alphas", "2 alpha values for a latent batch of 3"),
        ("mode", "mode must be one of linear, svd"),
        ("rank", "rank 7 is larger than the matrices allow"),
        ("rank_joint", "at most 4 singular values"),
        ("zero", "channel 1 of item 0 of latent is all zeros"),
        ("axes", "axes must be one of"),
        ("option", "unknown svd option"),
        ("ndim", "expected an image latent"),
    ],
)
def test_degenerate_inputs_are_refused_with_a_message(trio, case, fragment):
    latent, a, b = trio
    kwargs = {"mode": "linear"}
    if case == "nan_latent":
        latent = latent.clone()
        latent[0, 0, 0, 0] = float("nan")
    elif case == "inf_ref":
        b = b.clone()
        b[0, 1, 2, 3] = float("inf")
    elif case == "nan_alpha":
        kwargs["alpha"] = float("nan")
    elif case == "shape":
        a = rand(1, C, H, H)
    elif case == "channels":
        b = rand(1, C - 1, H, W)
    elif case == "batch":
        a = rand(2, C, H, W)
    elif case == "alphas":
        kwargs["alpha"] = torch.tensor([0.1, 0.2])
    elif case == "mode":
        kwargs["mode"] = "spline"
    elif case == "rank":
        kwargs.update(mode="svd", rank=7)
    elif case == "rank_joint":
        kwargs.update(mode="svd", rank=5, axes="channels_x_pixels")
    elif case == "zero":
        latent = latent.clone()
        latent[0, 1] = 0.0
        kwargs["mode"] = "svd"
    elif case == "axes":
        kwargs.update(mode="svd", axes="diagonal")
    elif case == "option":
        kwargs.update(mode="svd", sharpness=2)
    elif case == "ndim":
        latent = latent[0]
    kwargs.setdefault("alpha", 1.0)
    with pytest.raises(LatentDirectionError) as e:
        apply_direction(latent, a, b, **kwargs)
    assert fragment in str(e.value) and not str(e.value).startswith("EMS")  # the node adds its name
    assert isinstance(e.value, ValueError)


def test_zero_latent_is_fine_in_linear_mode():
    z = torch.zeros(1, C, H, W)
    a, b = rand(1, C, H, W, seed=1), rand(1, C, H, W, seed=2)
    torch.testing.assert_close(apply_direction(z, a, b, 1.0), b - a)
