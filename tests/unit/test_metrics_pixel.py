"""PSNR, SSIM and PIE-Bench's masked variants against hand-computed values."""

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from bench.metrics.pixel import (
    MetricInputError,
    background,
    gaussian_window,
    masked,
    masked_psnr,
    masked_ssim,
    mse,
    psnr,
    ssim,
    ssim_map,
)


def rand_image(seed, b=1, h=32, w=32, c=3, lo=0.0, hi=1.0):
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(b, h, w, c, generator=g)


# --------------------------------------------------------------------------------------- PSNR


def test_psnr_of_a_constant_offset_is_20_log10_range_over_offset():
    a = rand_image(0, b=2, hi=0.5)
    offsets = torch.tensor([0.1, 0.05]).view(2, 1, 1, 1)
    b = a + offsets
    # MSE = d² exactly, so PSNR = 10·log10(1/d²) = 20·log10(1/d)
    assert torch.allclose(mse(a, b), torch.tensor([0.01, 0.0025], dtype=torch.float64), rtol=1e-5)
    assert torch.allclose(psnr(a, b), torch.tensor([20.0, 20 * math.log10(20)], dtype=torch.float64), atol=1e-4)


def test_psnr_uses_the_data_range():
    a = rand_image(1, hi=200.0).round()
    b = a + 25.0
    assert psnr(a, b, data_range=255.0).item() == pytest.approx(20 * math.log10(255 / 25), abs=1e-9)
    assert psnr(a, b, data_range=1.0).item() == pytest.approx(20 * math.log10(1 / 25), abs=1e-9)


def test_psnr_of_a_change_in_part_of_the_image():
    a = torch.zeros(1, 8, 8, 3)
    b = a.clone()
    b[:, :, :4] = 0.2  # half the pixels differ by 0.2 → MSE = 0.04 / 2
    assert psnr(a, b).item() == pytest.approx(10 * math.log10(1 / 0.02), abs=1e-6)


def test_psnr_of_identical_images_is_infinite():
    a = rand_image(2)
    assert torch.isinf(psnr(a, a)).all() and (psnr(a, a) > 0).all()


def test_single_hwc_image_and_batch_broadcast():
    a = rand_image(3)
    b = rand_image(4, b=3)
    assert psnr(a[0], b[:1]).shape == (1,)
    out = psnr(a, b)
    assert out.shape == (3,)
    assert torch.allclose(out[1], psnr(a, b[1:2])[0])


def test_layout_and_size_errors_are_explained():
    with pytest.raises(MetricInputError, match="permute"):
        psnr(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
    with pytest.raises(MetricInputError, match="differ in size"):
        psnr(torch.rand(1, 16, 16, 3), torch.rand(1, 16, 17, 3))
    with pytest.raises(MetricInputError, match="at least 11"):
        ssim(torch.rand(1, 10, 16, 3), torch.rand(1, 10, 16, 3))


# --------------------------------------------------------------------------------------- SSIM


def test_gaussian_window_is_normalised_and_centred():
    g = gaussian_window(11, 1.5)
    assert g.sum().item() == pytest.approx(1.0)
    assert int(g.argmax()) == 5 and torch.allclose(g, g.flip(0))
    assert (g[4] / g[5]).item() == pytest.approx(math.exp(-1 / (2 * 1.5**2)))


def test_ssim_of_identical_images_is_one():
    a = rand_image(5, b=2)
    assert torch.allclose(ssim(a, a), torch.ones(2, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("p,q,data_range", [(0.2, 0.6, 1.0), (0.9, 0.1, 1.0), (0.3, 0.35, 2.0)])
def test_ssim_of_constant_images_reduces_to_the_luminance_term(p, q, data_range):
    a = torch.full((1, 16, 20, 3), p, dtype=torch.float64)
    b = torch.full((1, 16, 20, 3), q, dtype=torch.float64)
    c1 = (0.01 * data_range) ** 2
    expected = (2 * p * q + c1) / (p * p + q * q + c1)
    assert ssim(a, b, data_range=data_range).item() == pytest.approx(expected, rel=1e-9)


def test_ssim_map_matches_the_definition_computed_independently():
    """Reference: scipy's Gaussian filter (σ 1.5, radius 5 = 11 taps), biased local statistics,
    only windows fully inside the image (crop 5 px), per-channel mean then channel mean."""
    a = rand_image(6, h=24, w=19).double()
    b = (a + 0.2 * rand_image(7, h=24, w=19).double()).clamp(0, 1)
    c1, c2 = 0.01**2, 0.03**2
    per_channel = []
    for ch in range(3):
        x, y = a[0, :, :, ch].numpy(), b[0, :, :, ch].numpy()

        def filt(v):
            return gaussian_filter(v, sigma=1.5, truncate=5 / 1.5, mode="reflect")[5:-5, 5:-5]

        mx, my = filt(x), filt(y)
        vx, vy, cxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
        m = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        per_channel.append(m)
    ours = ssim_map(a, b)
    assert ours.shape == (1, 3, 14, 9)
    assert np.allclose(ours[0].numpy(), np.stack(per_channel), atol=1e-10)
    assert ssim(a, b).item() == pytest.approx(float(np.mean([m.mean() for m in per_channel])), abs=1e-12)
    assert ssim(a, b).item() < 0.99


def test_ssim_is_symmetric_and_falls_with_noise():
    a = rand_image(8).double()
    noise = rand_image(9).double() - 0.5
    small, large = (a + 0.05 * noise).clamp(0, 1), (a + 0.5 * noise).clamp(0, 1)
    assert ssim(a, small).item() == pytest.approx(ssim(small, a).item(), abs=1e-12)
    assert 1 > ssim(a, small).item() > ssim(a, large).item()


# ---------------------------------------------------------------------------------- masked


def half_mask(h=16, w=16):
    m = torch.zeros(1, h, w)
    m[:, :, : w // 2] = 1  # left half edited
    return m


def test_masked_psnr_ignores_the_edited_region_and_averages_over_the_whole_image():
    src = rand_image(10, h=16, w=16, hi=0.8)
    edited = src.clone()
    edited[:, :, :8] = rand_image(11, h=16, w=8)  # arbitrary change inside the edit mask
    mask = half_mask()
    assert torch.isinf(masked_psnr(src, edited, mask)).all()
    assert psnr(src, edited).item() < 40  # the whole-image metric does see the edit

    d = 0.1
    edited[:, :, 12:] += d  # background change on a quarter of the image
    # PIE-Bench: both images × (1 − mask), MSE over all H·W·C values → d² · 1/4
    assert masked_psnr(src, edited, mask).item() == pytest.approx(10 * math.log10(4 / d**2), abs=1e-4)
    assert torch.allclose(
        masked_psnr(src, edited, mask), psnr(src * (1 - mask[..., None]), edited * (1 - mask[..., None]))
    )


def test_masked_metrics_are_nan_without_background_and_accept_mask_layouts():
    a, b = rand_image(12, b=2, h=16, w=16), rand_image(13, b=2, h=16, w=16)
    masks = torch.stack([torch.ones(16, 16), half_mask()[0]])
    out = masked_psnr(a, b, masks)
    assert math.isnan(out[0].item()) and math.isfinite(out[1].item())
    assert math.isnan(masked_ssim(a, b, masks)[0].item())
    # (H, W), (1, H, W) and (B, H, W, 1) masks agree; batch-1 broadcasts
    m = half_mask()
    ref = masked_psnr(a, b, m.expand(2, -1, -1))
    assert torch.equal(masked_psnr(a, b, m[0]), ref)
    assert torch.equal(masked_psnr(a, b, m.expand(2, -1, -1)[..., None]), ref)
    with pytest.raises(MetricInputError, match="edit mask"):
        masked_psnr(a, b, torch.zeros(1, 8, 8))


def test_masked_ssim_sees_background_changes_only():
    src = rand_image(14, h=32, w=32)
    edited = src.clone()
    edited[:, :, :16] = 1 - edited[:, :, :16]
    mask = half_mask(32, 32)
    assert masked_ssim(src, edited, mask).item() == pytest.approx(1.0, abs=1e-12)
    assert ssim(src, edited).item() < 0.9
    edited[:, 20:, 20:] = (edited[:, 20:, 20:] + 0.3).clamp(0, 1)
    assert masked_ssim(src, edited, mask).item() < 0.99
    # an empty edit mask is the plain metric
    assert masked_ssim(src, edited, torch.zeros(1, 32, 32)).item() == pytest.approx(ssim(src, edited).item())


def test_background_and_generic_masked_wrapper():
    img = torch.ones(1, 4, 4, 3)
    mask = torch.zeros(4, 4)
    mask[0, 0] = 1
    mask[1, 1] = 0.25  # soft masks weight the pixel
    bg = background(img, mask)
    assert bg[0, 0, 0].tolist() == [0, 0, 0] and bg[0, 1, 1, 0].item() == pytest.approx(0.75)
    calls = []

    def metric(x, y):
        calls.append((x.clone(), y.clone()))
        return (x - y).abs().flatten(1).sum(1)

    masked(metric, img, img * 0.5, mask)
    assert torch.equal(calls[0][0], bg) and torch.equal(calls[0][1], bg * 0.5)
