"""SDE through the host model (bench/paper/host_sde.py) with the tiny SD3, in-process: f noises the
VAE latent to σ_t with RandomNoise(seed), h(f(x), c) is exactly img2img under c, and the SDE that
``bench.metrics.sde`` reports equals the formula applied by hand to f's and h's own outputs."""

from __future__ import annotations

import math

import pytest
import torch

SETTINGS = dict(steps=4, denoise=0.75, cfg=3.0, seed=7)


@pytest.fixture(scope="module")
def host():
    from bench import harness

    harness.setup(cpu=True)
    from comfyui_ems.toyworld import tiny_sd3

    from bench.paper.host_sde import HostModel

    model, vae = tiny_sd3.model_patcher(0), tiny_sd3.vae(0)
    c, c_flipped, negative = (tiny_sd3.conditioning(seed) for seed in (1, 2, 3))
    s = harness.EditSettings(**SETTINGS)
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    return {
        "harness": harness,
        "model": model,
        "vae": vae,
        "c": c,
        "c_flipped": c_flipped,
        "negative": negative,
        "s": s,
        "image": image,
        "sigmas": harness.schedule(model, s.steps, s.denoise),
        "f_h": HostModel(model, vae, negative, s.cfg, s.seed),
    }


def test_f_is_vae_encode_plus_forward_noise_to_sigma_t(host):
    """process_in(f(x))·(1 − σ) = σ·n + (1 − σ)·process_in(encode(x)), n = randn from torch.manual_seed(seed)."""
    sigma = float(host["sigmas"][0])
    assert 0 < sigma < 1
    latent = host["vae"].encode(host["image"])
    fmt = host["model"].get_model_object("latent_format")
    noise = torch.randn(latent.shape, generator=torch.manual_seed(SETTINGS["seed"]))
    z = host["f_h"].encode_and_noise(host["image"], host["sigmas"])
    expected = sigma * noise + (1 - sigma) * fmt.process_in(latent)
    assert torch.allclose(fmt.process_in(z) * (1 - sigma), expected, atol=1e-5)


def test_h_of_f_is_img2img_under_the_same_seed(host):
    """DisableNoise continuation from f's latent = RandomNoise(seed) img2img over the same sigmas."""
    f_h, vae = host["f_h"], host["vae"]
    z = f_h.encode_and_noise(host["image"], host["sigmas"])
    ours = f_h.denoise_and_decode(z, host["c"], host["sigmas"])
    with torch.inference_mode():  # as ComfyUI runs nodes (the sampler returns inference tensors)
        plain = host["harness"].img2img(
            host["model"],
            host["c"],
            host["negative"],
            {"samples": vae.encode(host["image"])},
            host["s"],
            host["sigmas"],
        )
        decoded = vae.decode(plain["samples"]).float().clamp(0, 1)
    assert torch.allclose(ours, decoded, atol=1e-4)


def test_host_sde_equals_the_formula_on_f_and_h_by_hand(host):
    from bench.paper.host_sde import host_sde

    result = host_sde(
        host["model"], host["vae"], host["image"], host["c"], host["c_flipped"], host["negative"], host["s"]
    )

    f_h, x, sigmas = host["f_h"], host["image"], host["sigmas"]
    z = f_h.encode_and_noise(x, sigmas)
    x_c = f_h.denoise_and_decode(z.clone(), host["c"], sigmas)
    x_flipped = f_h.denoise_and_decode(z.clone(), host["c_flipped"], sigmas)
    err_c = math.sqrt(((x.double() - x_c.double()) ** 2).sum().item())
    err_flipped = math.sqrt(((x.double() - x_flipped.double()) ** 2).sum().item())
    assert x_c.shape == x.shape and not torch.equal(x_c, x_flipped)  # c and c̃ lead to different images

    # default: per-pixel rms distances (the paper's scale); "l2": the summed norm
    n = math.sqrt(x.numel())
    assert result.err_c.item() == pytest.approx(err_c / n, rel=1e-9)
    assert result.err_flipped.item() == pytest.approx(err_flipped / n, rel=1e-9)
    assert result.sde.item() == pytest.approx(err_c / err_flipped + err_flipped / n, rel=1e-9)
    assert math.isfinite(result.sde.item()) and result.sde.item() > 0
    summed = host_sde(
        host["model"], host["vae"], host["image"], host["c"], host["c_flipped"], host["negative"], host["s"], norm="l2"
    )
    assert summed.err_flipped.item() == pytest.approx(err_flipped, rel=1e-9)
    assert summed.sde.item() == pytest.approx(err_c / err_flipped + err_flipped, rel=1e-9)
