"""The toy world's Flux (toyworld/model_flux.py, train_flux.py): what its training relies on, checked
in-process on ComfyUI's own Flux class, and the trained model inside a real ComfyUI server.

- ``trainable()`` gives exact gradients through blocks that add residuals in place (ComfyUI's Flux),
  which plain autograd refuses;
- the compact text (12 tokens + one standing for the padding, with a log-count attention bias)
  computes what the full 256-token forward does;
- the VAE mapped to Flux's latent format decodes what the SD3 toy's decodes and gives the model the
  same processed latent;
- the training stage writes what the loader loads, and the same command writes the same bytes;
- the loader's ``family`` input: Flux gives ComfyUI's Flux model; a graph without the input gets the
  SD3 toy as before; the shipped toy template edits colour on the Flux toy too.
"""

from __future__ import annotations

import json

import pytest
import torch

from comfyui_ems.toyworld import model as M
from comfyui_ems.toyworld import model_flux as MF
from support.toy_templates import read_tiles, toy_template

HAVE_FLUX_WEIGHTS = (M.WEIGHTS / MF.FLUX_META_FILE).exists()
needs_weights = pytest.mark.skipif(not HAVE_FLUX_WEIGHTS, reason="no trained toy Flux in toyworld/weights")


@pytest.fixture(scope="module")
def comfy_cpu():
    from bench.host import setup

    setup(cpu=True)
    torch.manual_seed(0)


def perturbed_flux(dtype=torch.float32):
    """The toy Flux with every parameter moved off its identity-block initialisation."""
    net = MF.new_flux().to(dtype)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _, p in sorted(net.named_parameters()):
            p.add_(torch.randn(p.shape, generator=gen, dtype=dtype) * 0.05)
    return net


def test_in_place_blocks_need_trainable_and_its_gradient_is_the_derivative(comfy_cpu):
    from comfyui_ems.toyworld.train_flux import trainable

    net = perturbed_flux(torch.float64)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 16, 4, 4, generator=gen, dtype=torch.float64)
    context = torch.randn(1, 5, 4096, generator=gen, dtype=torch.float64)
    pooled = torch.randn(1, 768, generator=gen, dtype=torch.float64)

    def loss():
        t, g = torch.tensor([0.4], dtype=torch.float64), torch.tensor([2.0], dtype=torch.float64)
        return net(x, t, context, y=pooled, guidance=g).pow(2).sum()

    with pytest.raises(RuntimeError, match="inplace"):
        loss().backward()  # ComfyUI's blocks: `txt += …` on a tensor saved for backward
    net.zero_grad()
    with trainable():
        value = loss()
    value.backward()
    params = [p for _, p in sorted(net.named_parameters())]
    direction = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params]
    analytic = sum(float((p.grad * d).sum()) for p, d in zip(params, direction))
    eps = 1e-4
    with torch.no_grad():
        for p, d in zip(params, direction):
            p.add_(eps * d)
        up = float(loss())
        for p, d in zip(params, direction):
            p.sub_(2 * eps * d)
        down = float(loss())
    numeric = (up - down) / (2 * eps)
    # Flux's RoPE attention runs in float32 whatever the weights' dtype: a relative 1e-2, not 1e-8
    assert abs(analytic - numeric) <= 1e-2 * abs(numeric), (analytic, numeric)


def test_compact_text_computes_the_full_forward(comfy_cpu):
    from comfyui_ems.toyworld.train_flux import compact

    clip = MF.build_text_encoders()
    net = perturbed_flux()
    texts = ["two large red circles on a white background", "one small blue square on a black background", ""]
    tokens, pooled = zip(*(M.encode(clip, t) for t in texts))
    tokens, pooled = torch.cat(tokens), torch.cat(pooled)
    assert tokens.shape == (3, 256, 4096) and pooled.shape == (3, 768)
    x, sigma, guidance = torch.randn(3, 16, 8, 8), torch.tensor([0.2, 0.5, 0.9]), torch.full((3,), 3.5)
    with torch.no_grad():
        full = net(x, sigma, tokens, y=pooled, guidance=guidance)
        short, mask = compact(tokens)
        out = net(x, sigma, short, y=pooled, guidance=guidance, attention_mask=mask)
        plain = net(x, sigma, short, y=pooled, guidance=guidance)  # without the log-count bias
    error = float((out - full).norm() / full.norm())
    assert error < 1e-5, error
    assert float((plain - full).norm() / full.norm()) > 100 * error, "the bias is what makes it exact"


def test_the_flux_format_vae_decodes_the_same_and_feeds_the_same_latent(comfy_cpu):
    import safetensors.torch
    import comfy.latent_formats

    raw = {k: v.float() for k, v in safetensors.torch.load_file(str(M.WEIGHTS / M.VAE_FILE)).items()}
    sd3_vae, flux_vae = M.comfy_vae(raw), M.comfy_vae(MF.flux_vae_state_dict(raw))
    pixels = torch.rand(2, 64, 64, 3)
    z_sd3, z_flux = sd3_vae.encode(pixels), flux_vae.encode(pixels)
    seen_sd3 = comfy.latent_formats.SD3().process_in(z_sd3)
    seen_flux = comfy.latent_formats.Flux().process_in(z_flux)
    assert torch.allclose(seen_flux, seen_sd3, atol=1e-4), float((seen_flux - seen_sd3).abs().max())
    assert (z_flux - z_sd3).abs().max() > 0.1, "the raw latents differ: the formats do"
    assert torch.allclose(flux_vae.decode(z_flux), sd3_vae.decode(z_sd3), atol=1e-4)


def test_the_training_stage_writes_what_the_loader_loads_and_the_same_bytes_twice(comfy_cpu, tmp_path):
    from comfyui_ems.toyworld.comfy_loader import load_toyworld
    from comfyui_ems.toyworld.train_flux import train_stage

    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        out.mkdir()
        (out / M.VAE_FILE).write_bytes((M.WEIGHTS / M.VAE_FILE).read_bytes())
        meta = train_stage(out, pool=64, steps=3, batch=4, threads=2)
        outs.append(out)
    assert (outs[0] / MF.FLUX_FILE).read_bytes() == (outs[1] / MF.FLUX_FILE).read_bytes()
    assert meta["training"]["flux"]["compact_error"] < 1e-5
    model, clip, vae = load_toyworld(outs[0], family="flux")
    assert type(model.model.model_config).__name__ == "Flux"
    assert type(model.model.diffusion_model).__module__ == "comfy.ldm.flux.model"
    assert isinstance(model.model.latent_format, type(__import__("comfy.latent_formats").latent_formats.Flux()))
    cond, pooled = M.encode(clip, "one small red circle on a gray background")
    assert cond.shape == (1, 256, 4096) and pooled.shape == (1, 768)
    record = json.loads((outs[0] / MF.FLUX_META_FILE).read_text())
    record["text_encoders"]["probes"][""][0] += 1.0
    (outs[0] / MF.FLUX_META_FILE).write_text(json.dumps(record))
    with pytest.raises(M.ChecksumMismatch, match="Flux text encoders"):
        load_toyworld(outs[0], family="flux")


def test_the_loader_offers_the_family_and_a_graph_without_it_loads_the_sd3_toy(comfy):
    info = comfy.object_info()["EMSToyWorldLoader"]
    family = info["input"]["optional"]["family"]
    choices = ["SD3", "Flux", "SD3 v3"]
    assert family[0] == choices or family[1].get("options") == choices, family
    history = comfy.run(toy_template(comfy, None))
    assert history["status"]["status_str"] == "success"


@needs_weights
def test_the_toy_template_edits_colour_on_the_flux_toy(comfy):
    """Template 01 with the loader switched to Flux: red circles at α = 0, blue at α = 1, circles
    throughout (the settings are the SD3 toy's, unchanged)."""
    prompt = toy_template(comfy, "Flux")
    history = comfy.run(prompt)
    assert history["status"]["status_str"] == "success"
    seen = read_tiles(comfy, prompt, history)
    assert seen[0]["colour"] == "red" and seen[-1]["colour"] == "blue", seen
    assert all(r["shape"] == "circle" for r in seen), seen
