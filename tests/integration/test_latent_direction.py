"""EMSLatentDirection in a real ComfyUI over HTTP with the tiny SD3 — registration, the
exact linear cases, the SVD reading's α = 0 identity, sweeps, masks, refusals, and a KSampler after it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from support.comfy_server import ExecutionFailed
from support.graph import Graph, tiny_sd3

NODE = "EMSLatentDirection"
SVD = dict(axes="per_channel", rank=0, spectrum="shift")


@pytest.fixture(scope="module")
def images(comfy):
    """Three different 64² images (latent 16×8×8), a 32² one, and one whose left half is transparent."""
    names = {}
    for i, (name, size) in enumerate((("ld_src", 64), ("ld_ref_a", 64), ("ld_ref_b", 64), ("ld_small", 32))):
        pixels = (np.random.default_rng(10 + i).random((size, size, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(comfy.base / "input" / f"{name}.png")
        names[name] = f"{name}.png"
    rgba = np.full((64, 64, 4), 255, np.uint8)
    rgba[..., :3] = (np.random.default_rng(20).random((64, 64, 3)) * 255).astype(np.uint8)
    rgba[:, :32, 3] = 0  # LoadImage's MASK is 1 − alpha: 1 on the left half
    Image.fromarray(rgba, "RGBA").save(comfy.base / "input" / "ld_masked.png")
    names["ld_masked"] = "ld_masked.png"
    return names


def encode(g, vae, image):
    return g.node("VAEEncode", pixels=g.node("LoadImage", image=image)[0], vae=vae[0])


def direction(g, latent, a, b, alpha=1.0, mode="linear", alphas=None, **svd):
    inputs = dict(latent=latent, reference_a=a, reference_b=b, alpha=alpha, mode=mode, **{**SVD, **svd})
    if alphas is not None:
        inputs["alphas"] = alphas
    return g.node(NODE, **inputs)


def test_registered_with_the_spec_inputs(comfy):
    info = comfy.object_info()[NODE]
    req, opt = info["input"]["required"], info["input"].get("optional", {})
    assert {"latent", "reference_a", "reference_b", "alpha", "mode"} <= set(req)
    assert {"axes", "rank", "spectrum"} <= set(req) and "alphas" in opt
    for name in ("latent", "reference_a", "reference_b"):
        assert req[name][0] == "LATENT"
    assert {"linear", "svd"} <= set(req["mode"][1]["options"] if "options" in req["mode"][1] else req["mode"][0])
    alpha = req["alpha"][1]
    assert alpha["min"] <= -4 and alpha["max"] >= 4 and alpha["step"] == 0.01 and alpha["default"] == 1.0
    assert info["output"][0] == "LATENT" and info["output_name"][0] == "latent"
    assert info["category"].startswith("EMS/") and info["description"]
    for spec in {**req, **opt}.values():
        assert spec[1].get("tooltip")


def test_linear_exact_cases(comfy, images):
    g = Graph()
    _, _, vae = tiny_sd3(g)
    src, ra, rb = (encode(g, vae, images[n])[0] for n in ("ld_src", "ld_ref_a", "ld_ref_b"))
    g.save(src, "ld_latent"), g.save(ra, "ld_a"), g.save(rb, "ld_b")
    g.save(direction(g, src, ra, rb, alpha=0.0)[0], "ld_lin0")
    g.save(direction(g, src, src, rb, alpha=1.0)[0], "ld_lin1")
    g.save(direction(g, src, ra, rb, alpha=0.7)[0], "ld_lin07")
    comfy.run(g.prompt)
    latent, a, b = (comfy.load_saved(n)["samples"] for n in ("ld_latent", "ld_a", "ld_b"))
    assert latent.shape == (1, 16, 8, 8) and not torch.equal(a, b)
    assert torch.equal(comfy.load_saved("ld_lin0")["samples"], latent)
    assert torch.equal(comfy.load_saved("ld_lin1")["samples"], b)
    torch.testing.assert_close(comfy.load_saved("ld_lin07")["samples"], latent + 0.7 * (b - a), rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    "svd", [SVD, dict(axes="channels_x_pixels", rank=4, spectrum="ratio")], ids=["per_channel", "channels_x_pixels"]
)
def test_svd_alpha_zero_is_the_latent_and_alpha_one_changes_it(comfy, images, svd):
    g = Graph()
    _, _, vae = tiny_sd3(g)
    src, ra, rb = (encode(g, vae, images[n])[0] for n in ("ld_src", "ld_ref_a", "ld_ref_b"))
    g.save(src, "ld_latent")
    g.save(direction(g, src, ra, rb, alpha=0.0, mode="svd", **svd)[0], "ld_svd0")
    g.save(direction(g, src, ra, rb, alpha=1.0, mode="svd", **svd)[0], "ld_svd1")
    comfy.run(g.prompt)
    latent = comfy.load_saved("ld_latent")["samples"]
    zero, one = comfy.load_saved("ld_svd0")["samples"], comfy.load_saved("ld_svd1")["samples"]
    torch.testing.assert_close(zero, latent, rtol=0, atol=1e-6)
    assert one.shape == latent.shape and one.dtype == latent.dtype and torch.isfinite(one).all()
    assert (one - latent).abs().max() > 1e-3


def test_output_continues_in_a_ksampler(comfy, images):
    g = Graph()
    unet, clip, vae = tiny_sd3(g)
    src, ra, rb = (encode(g, vae, images[n])[0] for n in ("ld_src", "ld_ref_a", "ld_ref_b"))
    pos = g.node("CLIPTextEncode", clip=clip[0], text="a photo")
    neg = g.node("CLIPTextEncode", clip=clip[0], text="")
    for mode in ("linear", "svd"):
        edited = direction(g, src, ra, rb, alpha=0.5, mode=mode)
        out = g.node(
            "KSampler",
            model=unet[0],
            positive=pos[0],
            negative=neg[0],
            latent_image=edited[0],
            seed=3,
            steps=2,
            cfg=2.0,
            sampler_name="euler",
            scheduler="simple",
            denoise=0.5,
        )
        g.save(out[0], f"ld_sampled_{mode}")
        g.save(g.node("VAEDecode", samples=out[0], vae=vae[0])[0], f"ld_image_{mode}")
    comfy.run(g.prompt)
    for mode in ("linear", "svd"):
        sampled = comfy.load_saved(f"ld_sampled_{mode}")["samples"]
        assert sampled.shape == (1, 16, 8, 8) and torch.isfinite(sampled).all()
        assert comfy.load_saved(f"ld_image_{mode}").shape == (1, 64, 64, 3)


def test_alpha_sweep_repeats_a_batch1_latent_with_one_noise_index(comfy, images):
    g = Graph()
    _, _, vae = tiny_sd3(g)
    src, ra, rb = (encode(g, vae, images[n])[0] for n in ("ld_src", "ld_ref_a", "ld_ref_b"))
    node = direction(g, src, ra, rb, alphas="0, 0.5, 1", mode="linear")
    g.save(src, "ld_latent"), g.save(ra, "ld_a"), g.save(rb, "ld_b")
    g.save(node[0], "ld_sweep"), g.save(node[1], "ld_labels")
    comfy.run(g.prompt)
    latent, a, b = (comfy.load_saved(n)["samples"] for n in ("ld_latent", "ld_a", "ld_b"))
    sweep = comfy.load_saved("ld_sweep")
    assert sweep["samples"].shape == (3, 16, 8, 8) and sweep["batch_index"] == [0, 0, 0]
    assert torch.equal(sweep["samples"][0:1], latent)
    torch.testing.assert_close(sweep["samples"][1:2], latent + 0.5 * (b - a), rtol=0, atol=1e-4)
    torch.testing.assert_close(sweep["samples"][2:3], latent + (b - a), rtol=0, atol=1e-4)
    assert comfy.load_saved("ld_labels") == "α=0\nα=0.5\nα=1"


def test_noise_mask_limits_the_edit_and_stays_on_the_latent(comfy, images):
    g = Graph()
    _, _, vae = tiny_sd3(g)
    img = g.node("LoadImage", image=images["ld_masked"])
    src = g.node("VAEEncode", pixels=img[0], vae=vae[0])
    masked = g.node("SetLatentNoiseMask", samples=src[0], mask=img[1])
    ra, rb = (encode(g, vae, images[n])[0] for n in ("ld_ref_a", "ld_ref_b"))
    g.save(src[0], "ld_latent")
    g.save(direction(g, masked[0], ra, rb, alpha=1.0, mode="linear")[0], "ld_masked")
    comfy.run(g.prompt)
    latent, out = comfy.load_saved("ld_latent")["samples"], comfy.load_saved("ld_masked")
    assert "noise_mask" in out
    assert torch.equal(out["samples"][..., 4:], latent[..., 4:])  # right half: mask 0, untouched
    assert (out["samples"][..., :3] - latent[..., :3]).abs().amin() > 0  # left half: edited


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("size", "reference_b has shape (1, 16, 4, 4) but latent is (1, 16, 8, 8)"),
        ("rank", "rank 9 is larger than the matrices allow"),
        ("sweep", "alphas lists 2 values but latent has a batch of 3"),
    ],
)
def test_bad_inputs_are_refused_with_the_node_name(comfy, images, case, fragment):
    g = Graph()
    _, _, vae = tiny_sd3(g)
    src, ra, rb = (encode(g, vae, images[n])[0] for n in ("ld_src", "ld_ref_a", "ld_ref_b"))
    kwargs = {}
    if case == "size":
        rb = encode(g, vae, images["ld_small"])[0]
    elif case == "rank":
        kwargs = dict(mode="svd", rank=9)
    elif case == "sweep":
        src = g.node("RepeatLatentBatch", samples=src, amount=3)[0]
        kwargs = dict(alphas="0, 1")
    g.save(direction(g, src, ra, rb, **kwargs)[0], "ld_refused")
    with pytest.raises(ExecutionFailed) as e:
        comfy.run(g.prompt)
    assert e.value.message.startswith("EMS Latent Direction") and fragment in e.value.message, e.value.message
