"""The pack on every model family people run, through a real ComfyUI server's HTTP API, on tiny
random-weight models built with each family's own ComfyUI classes (toyworld/tiny_families.py; the
diffusion model is loaded by UNETLoader, so ComfyUI's own detection names the family):

- EMS Encode Prompts gives the four prompts one token shape (and one attention mask);
- EMS Text Direction at α = 0 / 1 is the source / target conditioning exactly, so img2img with it
  equals img2img with the source / target caption;
- an EMS Alpha Sweep item equals its single run;
- EMS Flow Edit returns the source latent at α = 0 on every flow family, and refuses SDXL naming it;
- conditioning of another family is refused, naming both families.
"""

from __future__ import annotations

import os

import pytest
import torch

from support.comfy_server import ComfyServer, ExecutionFailed, prepare_base, write_family_model
from support.graph import Graph

SOURCE = "a photo of a woman in a black suit standing in a park"
TARGET = "a photo of a woman in a red suit standing in a park"
FLOW = ["sd3", "sd35_large", "sd35_medium", "flux_dev", "flux_schnell", "chroma", "qwen_image", "lumina2"]
FAMILIES = [*FLOW, "sdxl"]
NAMES = {
    "sd3": "SD3/SD3.5",
    "sd35_large": "SD3/SD3.5",
    "sd35_medium": "SD3/SD3.5",
    "flux_dev": "Flux.1 dev",
    "flux_schnell": "Flux.1 schnell",
    "chroma": "Chroma",
    "qwen_image": "Qwen-Image",
    "lumina2": "Lumina 2",
    "sdxl": "SDXL",
}


# Loaded by UNETLoader through ComfyUI's detection; the others' sizes are hard-coded there, so they are
# built through their model config class by a test node (toyworld/tiny_families.py).
DETECTED = ["sd3", "sd35_large", "sd35_medium"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = prepare_base(tmp_path_factory.mktemp("families"))
    for family in DETECTED:
        write_family_model(base, family)
    srv = ComfyServer(os.environ["COMFYUI_DIR"], base).start()
    yield srv
    srv.stop()


def loaders(g: Graph, family: str):
    if family in DETECTED:
        unet = g.node("UNETLoader", unet_name=f"tiny_{family}.safetensors", weight_dtype="default")
    else:
        unet = g.node("EMSTestTinyFamilyModel", family=family, seed=0)
    clip = g.node("EMSTestTinyFamilyCLIP", family=family, seed=0)
    vae = g.node("EMSTestTinyFamilyVAE", family=family, seed=0)
    image = g.node("EmptyImage", width=64, height=64, batch_size=1, color=0x3366CC)
    latent = g.node("VAEEncode", pixels=image[0], vae=vae[0])
    return unet, clip, vae, latent


def img2img(g: Graph, unet, positive, negative, latent, cfg: float = 2.0):
    return g.node(
        "KSampler",
        model=unet[0],
        positive=positive,
        negative=negative,
        latent_image=latent,
        seed=3,
        steps=2,
        cfg=cfg,
        sampler_name="euler",
        scheduler="simple",
        denoise=0.6,
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_text_direction_is_exact_and_a_sweep_item_is_its_single_run(server, family):
    g = Graph()
    unet, clip, _, latent = loaders(g, family)
    enc = g.node(
        "EMSEncodePrompts",
        clip=clip[0],
        source_prompt=SOURCE,
        target_prompt=TARGET,
        attribute_prompt="red suit",
        negative_prompt="",
    )
    for name, alpha in (("at0", 0.0), ("at1", 1.0), ("half", 0.5)):
        d = g.node("EMSTextDirection", source=enc[0], target=enc[1], alpha=alpha, manipulate_pooled=True)
        g.save(d[0], f"{family}_{name}_cond")
        g.save(img2img(g, unet, d[0], enc[3], latent[0])[0], f"{family}_{name}")
    for name, slot in (("source", 0), ("target", 1), ("attribute", 2), ("negative", 3)):
        g.save(enc[slot], f"{family}_{name}_cond")
    g.save(img2img(g, unet, enc[0], enc[3], latent[0])[0], f"{family}_source")
    g.save(img2img(g, unet, enc[1], enc[3], latent[0])[0], f"{family}_target")
    sweep = g.node(
        "EMSAlphaSweep",
        source=enc[0],
        target=enc[1],
        alphas="0, 0.5, 1",
        manipulate_pooled=True,
        latent_image=latent[0],
    )
    g.save(img2img(g, unet, sweep[0], enc[3], sweep[1])[0], f"{family}_sweep")
    server.run(g.prompt, timeout=600)
    load = server.load_saved

    conds = {n: load(f"{family}_{n}_cond") for n in ("source", "target", "attribute", "negative")}
    shapes = {n: tuple(c[0][0].shape[1:]) for n, c in conds.items()}
    assert len(set(shapes.values())) == 1, shapes  # one token shape for all four prompts
    masks = [c[0][1].get("attention_mask") for c in conds.values()]
    assert all(m is None for m in masks) or all(torch.equal(m, masks[0]) for m in masks)  # one mask
    for name, ref in (("at0", "source"), ("at1", "target")):
        got, want = load(f"{family}_{name}_cond")[0], conds[ref][0]
        assert torch.equal(got[0], want[0]), (family, name)
        if want[1].get("pooled_output") is not None:
            assert torch.equal(got[1]["pooled_output"], want[1]["pooled_output"])
    src, tgt = load(f"{family}_source")["samples"], load(f"{family}_target")["samples"]
    assert not torch.equal(src, tgt), "the two captions should give different images"
    assert torch.equal(load(f"{family}_at0")["samples"], src)
    assert torch.equal(load(f"{family}_at1")["samples"], tgt)
    batch = load(f"{family}_sweep")["samples"]
    assert batch.shape[0] == 3
    torch.testing.assert_close(batch[1:2], load(f"{family}_half")["samples"], rtol=1e-4, atol=1e-4)


def flow_edit_graph(family: str, alpha: float = 0.0, guidance=None, **options):
    """EMS Flow Edit of the family's test image along the text direction at ``alpha``; saves the
    input latent (``<family>_flow_in``) and the edit (``<family>_flow_out``). ``guidance``: a
    (source, edit) pair of FluxGuidance values."""
    g = Graph()
    unet, clip, _, latent = loaders(g, family)
    enc = g.node(
        "EMSEncodePrompts",
        clip=clip[0],
        source_prompt=SOURCE,
        target_prompt=TARGET,
        attribute_prompt="",
        negative_prompt="",
    )
    source, positive = (
        enc[0],
        g.node("EMSTextDirection", source=enc[0], target=enc[1], alpha=alpha, manipulate_pooled=True)[0],
    )
    if guidance is not None:
        source = g.node("FluxGuidance", conditioning=source, guidance=guidance[0])[0]
        positive = g.node("FluxGuidance", conditioning=positive, guidance=guidance[1])[0]
    settings = {"steps": 3, "denoise": 0.6, "cfg": 3.0, "source_cfg": 2.0, "locality": 0.8, **options}
    sigmas = g.node(
        "BasicScheduler", model=unet[0], scheduler="simple", steps=settings["steps"], denoise=settings["denoise"]
    )
    edit = g.node(
        "EMSFlowEdit",
        model=unet[0],
        source=source,
        positive=positive,
        negative=enc[3],
        latent_image=latent[0],
        sigmas=sigmas[0],
        noise_seed=0,
        cfg=settings["cfg"],
        source_cfg=settings["source_cfg"],
        noise_average=1,
        locality=settings["locality"],
        drive=0.0,
    )
    g.save(latent[0], f"{family}_flow_in")
    g.save(edit[0], f"{family}_flow_out")
    return g


@pytest.mark.parametrize("family", FLOW)
def test_flow_edit_returns_the_source_at_alpha_0_and_edits_at_1(server, family):
    server.run(flow_edit_graph(family, 0.0).prompt, timeout=600)
    src = server.load_saved(f"{family}_flow_in")["samples"]
    assert torch.equal(server.load_saved(f"{family}_flow_out")["samples"], src)
    server.run(flow_edit_graph(family, 1.0).prompt, timeout=600)
    edited = server.load_saved(f"{family}_flow_out")["samples"]
    assert edited.shape == src.shape and torch.isfinite(edited).all() and not torch.equal(edited, src)


def test_flow_edit_refuses_sdxl_naming_it_and_the_alternative(server):
    with pytest.raises(ExecutionFailed) as e:
        server.run(flow_edit_graph("sdxl").prompt, timeout=600)
    message = e.value.message
    assert "EMS Flow Edit" in message and "not rectified flow" in message
    assert "EMS CSDS Latent Edit" in message or "img2img" in message, message


@pytest.mark.parametrize("family", [f for f in FAMILIES if f not in ("sd3", "sd35_large", "sd35_medium")])
def test_sd3_conditioning_into_another_family_is_refused_naming_both(server, family):
    g = Graph()
    unet, _, _, latent = loaders(g, family)
    sd3 = g.node("EMSTestConditioning", width=4096, pooled_width=2048, tokens=154, seed=1)
    sigmas = g.node("BasicScheduler", model=unet[0], scheduler="simple", steps=3, denoise=0.6)
    csds = g.node(
        "EMSCSDSLatentEdit",
        model=unet[0],
        positive=sd3[0],
        attribute=sd3[0],
        negative=sd3[0],
        latent_image=latent[0],
        sigmas=sigmas[0],
        noise_seed=0,
        cfg=3.0,
        iterations=1,
        constraint=0.5,
        step_start=0.03,
        step_end=0.003,
        residual_space="noise",
    )
    g.save(csds[0], f"{family}_refused")
    with pytest.raises(ExecutionFailed) as e:
        server.run(g.prompt, timeout=600)
    message = e.value.message
    assert "SD3/SD3.5" in message and NAMES[family] in message, message


@pytest.mark.parametrize("family", ["sd3", "flux_dev", "qwen_image", "sdxl"])  # 16 ch, 16 ch, 16 ch 5-D, 4 ch
@pytest.mark.parametrize("mode", ["linear", "svd"])
def test_latent_direction_on_each_latent_format(server, family, mode):
    g = Graph()
    _, _, vae, latent = loaders(g, family)
    other = g.node(
        "VAEEncode", pixels=g.node("EmptyImage", width=64, height=64, batch_size=1, color=0xCC3322)[0], vae=vae[0]
    )
    moved = g.node(
        "EMSLatentDirection",
        latent=latent[0],
        reference_a=latent[0],
        reference_b=other[0],
        alpha=1.0,
        mode=mode,
        axes="per_channel",
        rank=0,
        spectrum="shift",
        alphas="0, 1",
    )
    g.save(latent[0], f"{family}_{mode}_ld_in")
    g.save(other[0], f"{family}_{mode}_ld_ref")
    g.save(moved[0], f"{family}_{mode}_ld_out")
    server.run(g.prompt, timeout=600)
    src = server.load_saved(f"{family}_{mode}_ld_in")["samples"]
    out = server.load_saved(f"{family}_{mode}_ld_out")["samples"]
    assert out.shape == (2, *src.shape[1:])  # the latent's own layout, one item per α
    torch.testing.assert_close(out[:1], src, rtol=1e-5, atol=1e-5)  # α = 0: unchanged
    if mode == "linear":  # α = 1 along a → b with a = the latent: the reference itself
        torch.testing.assert_close(
            out[1:], server.load_saved(f"{family}_{mode}_ld_ref")["samples"], rtol=1e-4, atol=1e-4
        )
    else:
        assert not torch.equal(out[1:], src)


def flux_small_edit(server, source_guidance: float, edit_guidance: float, alpha: float = 0.05) -> float:
    """RMS change of EMS Flow Edit on the tiny Flux.1 dev at a small α, cfg 1 (guidance-distilled)."""
    g = flow_edit_graph(
        "flux_dev",
        alpha,
        (source_guidance, edit_guidance),
        steps=4,
        denoise=0.75,
        cfg=1.0,
        source_cfg=1.0,
        locality=0.0,
    )
    server.run(g.prompt, timeout=600)
    src, out = server.load_saved("flux_dev_flow_in")["samples"], server.load_saved("flux_dev_flow_out")["samples"]
    return float((out - src).pow(2).mean().sqrt())


def test_flux_same_guidance_on_both_sides_keeps_a_small_alpha_small(server):
    """Why the Flux template puts one FluxGuidance on the source and the edit: with different
    guidance the coupling also follows the guidance change, so even α = 0.05 moves the image far;
    with the same guidance only the (small) text step does. Measured on the tiny Flux.1 dev."""
    same = flux_small_edit(server, 3.5, 3.5)
    different = flux_small_edit(server, 1.5, 5.5)  # a low source and a high target guidance
    assert 0 < same < different / 3, (same, different)
