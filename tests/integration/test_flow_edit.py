"""EMSFlowEdit in a real ComfyUI server: α = 0 is the input latent bit for bit, a sweep item equals its
single run, the outside of a noise mask is the source exactly, the output equals an independent
implementation of the coupling, non-flow models and bad schedules are refused."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from support.cancel import interrupt_and_wait, message_kinds
from support.comfy_server import ExecutionFailed
from support.graph import Graph, tiny_sd3

SOURCE = "a photo of a woman in a black suit standing in a park"
TARGET = "a photo of a woman in a red suit standing in a park"
SEED = 77
SPEC_INPUTS = {"model", "source", "positive", "negative", "latent_image", "sigmas", "noise_seed", "cfg", "source_cfg"}


@pytest.fixture(scope="module")
def image_name(comfy):
    rng = np.random.default_rng(3)
    pixels = (rng.random((64, 64, 4)) * 255).astype(np.uint8)
    pixels[..., 3] = 255
    pixels[:, :32, 3] = 0  # LoadImage's MASK is 1 on the transparent left half
    Image.fromarray(pixels, "RGBA").save(comfy.base / "input" / "ems_flow.png")
    return "ems_flow.png"


def flow_graph(
    image_name,
    alpha=1.0,
    sweep=None,
    denoise=0.75,
    steps=4,
    cfg=5.0,
    source_cfg=2.0,
    seed=SEED,
    masked=False,
    extra=None,
    sampling=None,
):
    g = Graph()
    unet, clip, vae = tiny_sd3(g)
    model = unet[0]
    if sampling is not None:  # e.g. ModelSamplingDiscrete(eps): the same weights as an ε-prediction model
        model = g.node("ModelSamplingDiscrete", model=model, sampling=sampling, zsnr=False)[0]
    enc = g.node(
        "EMSEncodePrompts",
        clip=clip[0],
        source_prompt=SOURCE,
        target_prompt=TARGET,
        attribute_prompt="red suit",
        negative_prompt="",
    )
    image = g.node("LoadImage", image=image_name)
    latent = g.node("VAEEncode", pixels=image[0], vae=vae[0])
    if masked:
        latent = g.node("SetLatentNoiseMask", samples=latent[0], mask=image[1])
    sigmas = g.node("BasicScheduler", model=model, scheduler="simple", steps=steps, denoise=denoise)
    if sweep is None:
        positive = g.node("EMSTextDirection", source=enc[0], target=enc[1], alpha=alpha, manipulate_pooled=True)[0]
    else:
        positive = g.node("EMSAlphaSweep", source=enc[0], target=enc[1], alphas=sweep, manipulate_pooled=True)[0]
    edit = g.node(
        "EMSFlowEdit",
        model=model,
        source=enc[0],
        positive=positive,
        negative=enc[3],
        latent_image=latent[0],
        sigmas=sigmas[0],
        noise_seed=seed,
        cfg=cfg,
        source_cfg=source_cfg,
        **(extra or {}),
    )
    g.save(edit[0], "edit")
    for name, ref in (
        ("positive", positive),
        ("source", enc[0]),
        ("negative", enc[3]),
        ("latent", latent[0]),
        ("sigmas", sigmas[0]),
    ):
        g.save(ref, name)
    return g


def test_node_is_registered_with_the_spec_inputs_and_the_declared_defaults(comfy):
    info = comfy.object_info()["EMSFlowEdit"]
    req = {**info["input"]["required"], **info["input"].get("optional", {})}
    assert SPEC_INPUTS <= set(req) and info["output_name"] == ["latent"]
    from comfyui_ems.ems.flow_edit import DEFAULTS

    for name, value in DEFAULTS.items():
        assert req[name][1]["default"] == value, name


def test_alpha_zero_returns_the_input_latent_bit_for_bit(comfy, image_name):
    comfy.run(flow_graph(image_name, alpha=0.0).prompt)
    assert torch.equal(comfy.load_saved("edit")["samples"], comfy.load_saved("latent")["samples"])
    comfy.run(flow_graph(image_name, sweep="0, 1").prompt)
    edit, source = comfy.load_saved("edit")["samples"], comfy.load_saved("latent")["samples"]
    assert edit.shape[0] == 2 and torch.equal(edit[:1], source)
    assert (edit[1:] - source).abs().max() > 1e-3, "α = 1 must edit"


def test_sweep_items_equal_their_single_runs(comfy, image_name):
    alphas = [0.0, 0.5, 1.0, -0.5]
    comfy.run(flow_graph(image_name, sweep=", ".join(map(str, alphas)), extra={"noise_average": 2}).prompt)
    batch = comfy.load_saved("edit")["samples"]
    for i, a in enumerate(alphas):
        comfy.run(flow_graph(image_name, alpha=a, extra={"noise_average": 2}).prompt)
        torch.testing.assert_close(batch[i : i + 1], comfy.load_saved("edit")["samples"], rtol=1e-4, atol=1e-4)


def test_outside_a_noise_mask_the_output_is_the_source(comfy, image_name):
    comfy.run(flow_graph(image_name, masked=True, extra={"locality": 0.3}).prompt)
    edit, source = comfy.load_saved("edit"), comfy.load_saved("latent")
    inside, outside = (..., slice(0, 4)), (..., slice(4, 8))  # 64 px → 8 latent columns
    assert torch.equal(edit["samples"][outside], source["samples"][outside])
    assert (edit["samples"][inside] - source["samples"][inside]).abs().max() > 1e-3


def independent_flow_edit(saved, seed, cfg, source_cfg, alpha, locality=0.0):
    """The coupling written out again with raw ``apply_model`` calls on the same weights (no EMS code):
    per-step noise from one generator, CFG per point, the degree rule on the target scale, and the
    locality weight clamp(2d/τ − 1, 0, 1) of the max-normalised, 3×3-smoothed channel mean d of |V|."""
    from bench.host import setup

    setup(cpu=True)
    import comfy.sd

    path = os.path.join(saved["base"], "models", "diffusion_models", "tiny_sd3.safetensors")
    model = comfy.sd.load_diffusion_model(path).model
    fmt = model.latent_format
    sigmas = [float(s) for s in saved["sigmas"]]
    x_src = fmt.process_in(saved["latent"]["samples"].float())
    gen = torch.Generator().manual_seed(seed)
    w_tar = source_cfg + min(1.0, abs(alpha)) * (cfg - source_cfg)

    def guided(z, sigma, cond, w):
        t = torch.full((z.shape[0],), sigma)

        def d(c):
            return model.apply_model(z, t, c_crossattn=c[0][0], y=c[0][1]["pooled_output"]).float()

        neg = d(saved["negative"])
        return neg + w * (d(cond) - neg)

    z_edit = x_src.clone()
    with torch.no_grad():
        for s, s_next in zip(sigmas, sigmas[1:]):
            n = torch.randn((1, *x_src.shape[1:]), generator=gen)
            z_src = (1 - s) * x_src + s * n
            z_tar = z_src + (z_edit - x_src)
            v_tar = (z_tar - guided(z_tar, s, saved["positive"], w_tar)) / s
            v_src = (z_src - guided(z_src, s, saved["source"], source_cfg)) / s
            v = v_tar - v_src
            if locality > 0:
                d = torch.nn.functional.avg_pool2d(v.abs().mean(1, keepdim=True), 3, 1, 1, count_include_pad=False)
                v = v * (2 * d / d.max() / locality - 1).clamp(0, 1)
            z_edit = z_edit + (s_next - s) * v
    return saved["latent"]["samples"] + (fmt.process_out(z_edit) - fmt.process_out(x_src))


@pytest.mark.parametrize("locality", [0.0, 0.8])
def test_output_equals_an_independent_implementation(comfy, image_name, locality):
    comfy.run(
        flow_graph(
            image_name, alpha=0.6, cfg=4.0, source_cfg=1.5, extra={"locality": locality, "noise_average": 1}
        ).prompt
    )
    saved = {k: comfy.load_saved(k) for k in ("positive", "source", "negative", "latent", "sigmas", "edit")}
    saved["base"] = str(comfy.base)
    expected = independent_flow_edit(saved, SEED, cfg=4.0, source_cfg=1.5, alpha=0.6, locality=locality)
    assert (expected - saved["latent"]["samples"]).abs().max() > 1e-3
    torch.testing.assert_close(saved["edit"]["samples"], expected, rtol=1e-4, atol=1e-4)


def test_same_seed_same_result_another_seed_differs(comfy, image_name):
    runs = []
    for seed in (5, 6, 5):
        comfy.run(flow_graph(image_name, seed=seed).prompt)
        runs.append(comfy.load_saved("edit")["samples"])
    assert torch.equal(runs[0], runs[2]) and not torch.equal(runs[0], runs[1])


def test_a_non_flow_model_is_refused_with_the_alternative(comfy, image_name):
    with pytest.raises(ExecutionFailed) as e:
        comfy.run(flow_graph(image_name, sampling="eps").prompt)
    msg = e.value.message
    assert "EMS Flow Edit" in msg and "rectified flow" in msg and "EMS CSDS Latent Edit" in msg


def test_a_schedule_that_stops_above_zero_is_refused(comfy, image_name):
    g = flow_graph(image_name)
    sched = next(k for k, n in g.prompt.items() if n["class_type"] == "BasicScheduler")
    split = g.node("SplitSigmas", sigmas=[sched, 0], step=2)
    next(n for n in g.prompt.values() if n["class_type"] == "EMSFlowEdit")["inputs"]["sigmas"] = split[0]
    with pytest.raises(ExecutionFailed) as e:
        comfy.run(g.prompt)
    assert "EMS Flow Edit" in e.value.message and "ends at σ" in e.value.message


def test_a_csds_output_is_refused(comfy, image_name):
    g = flow_graph(image_name)
    node = next(n for n in g.prompt.values() if n["class_type"] == "EMSFlowEdit")
    csds = g.node(
        "EMSCSDSLatentEdit",
        model=node["inputs"]["model"],
        positive=node["inputs"]["positive"],
        attribute=node["inputs"]["source"],
        negative=node["inputs"]["negative"],
        latent_image=node["inputs"]["latent_image"],
        sigmas=node["inputs"]["sigmas"],
        noise_seed=1,
        cfg=3.0,
        iterations=1,
        constraint=0.5,
        step_start=0.1,
        step_end=0.01,
    )
    node["inputs"]["latent_image"] = csds[0]
    with pytest.raises(ExecutionFailed) as e:
        comfy.run(g.prompt)
    assert "EMS Flow Edit" in e.value.message and "clean latent" in e.value.message


@pytest.fixture(scope="module")
def bad_latents(comfy):
    import safetensors.torch

    good = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(2))
    nan = good.clone()
    nan.view(-1)[5] = float("nan")
    for name, tensor in {"flow_nan": nan, "flow_sd15": torch.randn(1, 4, 8, 8)}.items():
        safetensors.torch.save_file(
            {"latent_tensor": tensor.contiguous(), "latent_format_version_0": torch.tensor([])},
            str(comfy.base / "input" / f"{name}.latent"),
        )
    return ["flow_nan", "flow_sd15"]


@pytest.mark.parametrize("name, fragment", [("flow_nan", "contains 1 NaN"), ("flow_sd15", "has 4 channels")])
def test_bad_latents_are_refused_in_one_line_naming_the_node(comfy, image_name, bad_latents, name, fragment):
    g = flow_graph(image_name)
    node = next(n for n in g.prompt.values() if n["class_type"] == "EMSFlowEdit")
    node["inputs"]["latent_image"] = g.node("LoadLatent", latent=f"{name}.latent")[0]
    with pytest.raises(ExecutionFailed) as e:
        comfy.run(g.prompt)
    msg = e.value.message
    assert msg.startswith("EMS Flow Edit") and "'latent_image'" in msg and fragment in msg, msg
    assert "Traceback" not in msg and len(msg.splitlines()) <= 2


def test_cancel_stops_a_long_flow_edit_within_2_s(comfy, image_name):
    import time

    g = flow_graph(image_name, steps=4000, denoise=0.99)  # minutes of work on the CPU
    mark = len(comfy.log())
    prompt_id = comfy.queue(g.prompt)
    deadline = time.time() + 120
    while "EMS Flow Edit: 1 of 1 item(s) edited" not in comfy.log()[mark:] and time.time() < deadline:
        time.sleep(0.05)
    assert time.time() < deadline, "the node never started"
    time.sleep(0.5)  # well inside its loop
    entry, took = interrupt_and_wait(comfy, prompt_id, limit=60)
    assert entry and message_kinds(entry).count("execution_interrupted") == 1
    assert took < 2.0, f"Cancel took {took:.2f} s"
