"""Through a real ComfyUI server's HTTP API: non-finite, absurdly large and wrong-shape
tensors into EMS nodes end in a short error naming the node, the input and the likely cause (never
an all-NaN latent or a black PNG marked success, never a raw traceback from inside the model); a
node whose own result comes out non-finite raises; and EMS Labelled Grid neither stalls on long
labels nor ignores Cancel."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import safetensors.torch
import torch
from PIL import Image

from support.cancel import interrupt_and_wait, message_kinds
from support.comfy_server import ExecutionFailed
from support.graph import Graph, tiny_sd3

SOURCE = "a photo of a woman in a black suit standing in a park"
TARGET = "a photo of a woman in a red suit standing in a park"
CSDS, SWEEP, DIRECTION = "EMS CSDS Latent Edit", "EMS Alpha Sweep", "EMS Text Direction"
GRID, ENCODE, LATENT_DIRECTION = "EMS Labelled Grid", "EMS Encode Prompts", "EMS Latent Direction"


def _latent(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _with_nan(x):
    x = x.clone()
    x.view(-1)[37] = math.nan
    return x


LATENTS = {  # file name in ComfyUI's input folder → latent tensor (LoadLatent reads these)
    "ems_nan": _with_nan(_latent((1, 16, 8, 8))),
    "ems_1e30": _latent((1, 16, 8, 8)) * 1e30,
    "ems_sd15": _latent((1, 4, 8, 8)),
    "ems_video": _latent((1, 16, 2, 8, 8)),
    "ems_4096px": _latent((1, 16, 512, 512)),  # a 4096² image's latent
    "ems_clean": _latent((1, 16, 8, 8), seed=1),
    "ems_tiny": _latent((1, 16, 8, 8), seed=1) * 1e-3,
    "ems_large": _latent((1, 16, 8, 8), seed=2) * 1e3,
}


@pytest.fixture(scope="module")
def inputs(comfy):
    for name, tensor in LATENTS.items():
        # "latent_format_version_0" tells LoadLatent the values are already scaled (no 1/0.18215).
        safetensors.torch.save_file(
            {"latent_tensor": tensor.contiguous(), "latent_format_version_0": torch.tensor([])},
            str(comfy.base / "input" / f"{name}.latent"),
        )
    pixels = (np.random.default_rng(5).random((64, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(comfy.base / "input" / "ems_tensors.png")
    return "ems_tensors.png"


def load(g, name):
    return g.node("LoadLatent", latent=f"{name}.latent")[0]


def images(comfy, prefix):
    return sorted((comfy.base / "output").glob(f"{prefix}*.png"))


def refused(comfy, g, prefix=None) -> str:
    with pytest.raises(ExecutionFailed) as e:
        comfy.run(g.prompt)
    if prefix:
        assert images(comfy, prefix) == [], "no image may be written for a refused input"
    message = e.value.message
    assert "Traceback" not in message and len(message.splitlines()) <= 2 and len(message) < 1200, message
    return message


def edit_graph(latent=None, positive=None, attribute=None, sweep=None, model=None, prefix="t17"):
    """Encode → direction (or sweep) → CSDS → sampler → decode → SaveImage(prefix).

    ``latent(g)`` gives CSDS's latent_image (default: the clean 16-channel test latent); with a
    ``sweep`` it goes through EMS Alpha Sweep first. ``positive(g, c)`` may replace the positive,
    ``attribute(g, c)`` the attribute, ``model(g, unet)`` the model CSDS gets.
    """
    g = Graph()
    unet, clip, vae = tiny_sd3(g)
    enc = g.node(
        "EMSEncodePrompts",
        clip=clip[0],
        source_prompt=SOURCE,
        target_prompt=TARGET,
        attribute_prompt="red suit",
        negative_prompt="",
    )
    image_latent = latent(g) if latent else load(g, "ems_clean")
    if sweep is None:
        pos = g.node("EMSTextDirection", source=enc[0], target=enc[1], alpha=1.0, manipulate_pooled=True)[0]
    else:
        swept = g.node(
            "EMSAlphaSweep",
            source=enc[0],
            target=enc[1],
            alphas=sweep,
            manipulate_pooled=True,
            latent_image=image_latent,
        )
        pos, image_latent = swept[0], swept[1]
    sigmas = g.node("BasicScheduler", model=unet[0], scheduler="simple", steps=4, denoise=0.75)
    edit = g.node(
        "EMSCSDSLatentEdit",
        model=model(g, unet[0]) if model else unet[0],
        positive=positive(g, pos) if positive else pos,
        attribute=attribute(g, enc[2]) if attribute else enc[2],
        negative=enc[3],
        latent_image=image_latent,
        sigmas=sigmas[0],
        noise_seed=1,
        cfg=3.0,
        iterations=2,
        constraint=0.5,
        step_start=0.1,
        step_end=0.01,
    )
    guider = g.node("CFGGuider", model=unet[0], positive=pos, negative=enc[3], cfg=3.0)
    out = g.node(
        "SamplerCustomAdvanced",
        noise=g.node("DisableNoise")[0],
        guider=guider[0],
        sampler=g.node("KSamplerSelect", sampler_name="euler")[0],
        sigmas=sigmas[0],
        latent_image=edit[0],
    )
    g.node("SaveImage", images=g.node("VAEDecode", samples=out[0], vae=vae[0])[0], filename_prefix=prefix)
    return g


def poisoned(poison, part="tokens"):
    return lambda g, c: g.node("EMSTestPoisonConditioning", conditioning=c, poison=poison, part=part)[0]


# -- 1. Non-finite and absurd latents, conditionings, images -----------------------------------------


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("ems_nan", "contains 1 NaN of 1,024 values"),
        ("ems_1e30", f"has values up to {float(LATENTS['ems_1e30'].abs().amax()):.3g} in magnitude"),
    ],
)
def test_a_non_finite_or_absurd_latent_into_csds_is_refused_naming_the_cause(comfy, inputs, name, fragment):
    prefix = f"t17_latent_{name}"
    msg = refused(comfy, edit_graph(latent=lambda g: load(g, name), prefix=prefix), prefix)
    assert msg.startswith(CSDS) and "'latent_image'" in msg and fragment in msg, msg
    assert "fp16" in msg and "--fp32-vae" in msg


def test_the_same_latent_through_alpha_sweep_is_refused_by_the_sweep(comfy, inputs):
    msg = refused(
        comfy, edit_graph(latent=lambda g: load(g, "ems_nan"), sweep="0, 1", prefix="t17_sweep_nan"), "t17_sweep_nan"
    )
    assert msg.startswith(SWEEP) and "'latent_image'" in msg and "NaN" in msg


@pytest.mark.parametrize(
    "node, name, part, poison, fragment",
    [
        (DIRECTION, "source", "tokens", "nan", "'source' contains 1 NaN of"),
        (
            DIRECTION,
            "target",
            "pooled_output",
            "inf",
            "'target' contains 1 infinite of 2,048 values (its pooled_output)",
        ),
        (SWEEP, "source", "tokens", "times_1e30", "'source' has values up to "),
        (CSDS, "attribute", "tokens", "nan", "'attribute' contains 1 NaN of"),
    ],
)
def test_a_non_finite_or_absurd_conditioning_is_refused_by_the_node_that_takes_it(
    comfy, inputs, node, name, part, poison, fragment
):
    case = f"t17_{name}_{part}_{poison}"
    g = Graph()
    _, clip, _ = tiny_sd3(g)
    enc = g.node(
        "EMSEncodePrompts",
        clip=clip[0],
        source_prompt=SOURCE,
        target_prompt=TARGET,
        attribute_prompt="red suit",
        negative_prompt="",
    )
    if node == CSDS:
        g = edit_graph(attribute=poisoned(poison, part), prefix=case)
    else:
        source, target = enc[0], enc[1]
        bad = g.node(
            "EMSTestPoisonConditioning", conditioning=enc[0 if name == "source" else 1], poison=poison, part=part
        )[0]
        source, target = (bad, target) if name == "source" else (source, bad)
        if node == DIRECTION:
            out = g.node("EMSTextDirection", source=source, target=target, alpha=1.0, manipulate_pooled=True)
        else:
            out = g.node("EMSAlphaSweep", source=source, target=target, alphas="0, 1", manipulate_pooled=True)
        g.save(out[0], case)
    msg = refused(comfy, g)
    assert msg.startswith(node) and fragment in msg, msg
    assert "--fp32-text-enc" in msg


def test_a_nan_image_into_the_grid_is_refused(comfy, inputs):
    g = Graph()
    image = g.node("LoadImage", image=inputs)[0]
    grid = g.node(
        "EMSLabelledGrid", images=g.node("EMSTestPoisonImage", images=image, poison="nan")[0], labels="α=0", columns=0
    )
    g.node("SaveImage", images=grid[0], filename_prefix="t17_grid_nan")
    msg = refused(comfy, g, "t17_grid_nan")
    assert msg.startswith(GRID) and "'images' contains 1 NaN of 12,288 values" in msg and "--fp32-vae" in msg


def test_a_nan_reference_into_latent_direction_is_refused_by_the_shared_check(comfy, inputs):
    g = Graph()
    out = g.node(
        "EMSLatentDirection",
        latent=load(g, "ems_clean"),
        reference_a=load(g, "ems_clean"),
        reference_b=load(g, "ems_nan"),
        alpha=1.0,
        mode="linear",
        axes="per_channel",
        rank=0,
        spectrum="shift",
    )
    g.save(out[0], "t17_ld_nan")
    msg = refused(comfy, g)
    assert msg.startswith(LATENT_DIRECTION) and "'reference_b' contains 1 NaN of 1,024 values" in msg


# -- 1. A node's own non-finite result -----------------------------------------------------------------


def test_encode_prompts_refuses_an_overflowing_text_encoders_output(comfy, inputs):
    g = Graph()
    enc = g.node(
        "EMSEncodePrompts",
        clip=g.node("EMSTestOverflowingCLIP", seed=0)[0],
        source_prompt=SOURCE,
        target_prompt=TARGET,
        attribute_prompt="red suit",
        negative_prompt="",
    )
    g.save(enc[0], "t17_encode_overflow")
    msg = refused(comfy, g)
    assert msg.startswith(f"{ENCODE} produced non-finite values in its output 'source'"), msg
    assert "--fp32-text-enc" in msg


def test_csds_refuses_its_own_non_finite_result(comfy, inputs):
    model = lambda g, unet: g.node("EMSTestOverflowingModel", model=unet)[0]  # noqa: E731
    msg = refused(comfy, edit_graph(model=model, prefix="t17_csds_overflow"), "t17_csds_overflow")
    assert msg.startswith(f"{CSDS} produced non-finite values in its output 'latent'"), msg
    assert "fp16" in msg and "weight_dtype" in msg


def test_latent_direction_refuses_its_own_overflowing_result(comfy, inputs):
    # ratio spectrum: σ·(σ_b/σ_a)^α with σ_b/σ_a = 1e6 and α = 10 is 1e60, beyond float32.
    g = Graph()
    out = g.node(
        "EMSLatentDirection",
        latent=load(g, "ems_clean"),
        reference_a=load(g, "ems_tiny"),
        reference_b=load(g, "ems_large"),
        alpha=10.0,
        mode="svd",
        axes="per_channel",
        rank=0,
        spectrum="ratio",
    )
    g.save(out[0], "t17_ld_overflow")
    msg = refused(comfy, g)
    assert msg.startswith(f"{LATENT_DIRECTION} produced non-finite values in its output 'latent'"), msg


# -- 5, 12. Wrong-shape latents: one shared check ------------------------------------------------------


@pytest.mark.parametrize(
    "name, sweep, node, fragment",
    [
        ("ems_sd15", None, CSDS, "'latent_image' has 4 channels but this SD3 model takes 16"),
        (
            "ems_video",
            None,
            CSDS,
            "'latent_image' is not an image latent: expected (batch, channels, height, width), got 5-D",
        ),
        ("ems_sd15", "0, 1", CSDS, "'latent_image' has 4 channels but this SD3 model takes 16"),
        ("ems_video", "0, 1", SWEEP, "got 5-D (1, 16, 2, 8, 8) — a video latent"),
        ("ems_4096px", None, CSDS, "'latent_image' is 512×512 latent pixels, but this SD3 model takes at most 128×128"),
    ],
)
def test_a_wrong_shape_latent_is_refused_in_a_few_words(comfy, inputs, name, sweep, node, fragment):
    prefix = f"t17_shape_{name}_{bool(sweep)}"
    msg = refused(comfy, edit_graph(latent=lambda g: load(g, name), sweep=sweep, prefix=prefix), prefix)
    assert msg.startswith(node) and fragment in msg, msg
    if name == "ems_4096px":
        assert "1024" in msg and "Scale the image down" in msg


def test_latent_direction_gives_the_shared_layout_message(comfy, inputs):
    g = Graph()
    out = g.node(
        "EMSLatentDirection",
        latent=load(g, "ems_video"),
        reference_a=load(g, "ems_clean"),
        reference_b=load(g, "ems_clean"),
        alpha=1.0,
        mode="linear",
        axes="per_channel",
        rank=0,
        spectrum="shift",
    )
    g.save(out[0], "t17_ld_video")
    msg = refused(comfy, g)
    assert msg.startswith(LATENT_DIRECTION) and "'latent' is not an image latent" in msg and "got 5-D" in msg


# -- 4. The grid: long labels, Cancel ------------------------------------------------------------------


def grid_graph(image, labels, count, prefix):
    g = Graph()
    batch = g.node("RepeatImageBatch", image=g.node("LoadImage", image=image)[0], amount=count)
    grid = g.node("EMSLabelledGrid", images=batch[0], labels=labels, columns=0)
    g.node("SaveImage", images=grid[0], filename_prefix=prefix)
    return g


def node_seconds(entry) -> float:
    """Seconds from the run's start to its end, by the server's own message timestamps."""
    stamps = {kind: data.get("timestamp") for kind, data in entry["status"]["messages"]}
    return (stamps["execution_success"] - stamps["execution_start"]) / 1000


@pytest.mark.parametrize("count, length, limit", [(1, 40_000, 2.0), (64, 10_000, 5.0)])
def test_long_labels_no_longer_stall_the_server(comfy, inputs, count, length, limit):
    # Before: one 40,000-character label took 71 s, 64 labels of 10,000 took 269 s.
    labels = "\n".join(f"{i}:" + "x" * (length - 2) for i in range(count))
    prefix = f"t17_grid_{count}x{length}"
    entry = comfy.run(grid_graph(inputs, labels, count, prefix).prompt)
    took = node_seconds(entry)
    print(f"{count} label(s) of {length:,} characters: {took:.2f} s")
    assert took < limit and len(images(comfy, prefix)) == 1


def test_cancel_stops_a_64_tile_grid_within_2_s(comfy, inputs):
    marker = comfy.base / "output" / "t17_grid_waiting"
    marker.unlink(missing_ok=True)
    g = Graph()
    batch = g.node("RepeatImageBatch", image=g.node("LoadImage", image=inputs)[0], amount=64)
    labels = g.node("EMSTestLabelsWaitingForCancel", count=64, length=10_000, marker=marker.name)
    grid = g.node("EMSLabelledGrid", images=batch[0], labels=labels[0], columns=0)
    g.node("SaveImage", images=grid[0], filename_prefix="t17_grid_cancel")
    prompt_id = comfy.queue(g.prompt)
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the grid node never started"
    entry, took = interrupt_and_wait(comfy, prompt_id)  # lands while the grid node runs (it has read its labels)
    print(f"Cancel ended the 64-tile grid {took:.2f} s after /interrupt")
    assert entry and entry["status"].get("completed") is not None, "the run did not end after Cancel"
    kinds = message_kinds(entry)
    assert "execution_interrupted" in kinds and "execution_error" not in kinds, kinds
    assert took < 2.0 and images(comfy, "t17_grid_cancel") == []


@pytest.mark.parametrize("latent", ["clean", "empty_4_channel"])
def test_good_latents_still_run(comfy, inputs, latent):
    # The controls: the refusals above are about the tensors. An all-zero 4-channel latent
    # (EmptyLatentImage) is not refused: ComfyUI widens an empty latent to the model's channels.
    make = None if latent == "clean" else (lambda g: g.node("EmptyLatentImage", width=64, height=64, batch_size=1)[0])
    prefix = f"t17_good_{latent}"
    comfy.run(edit_graph(latent=make, prefix=prefix).prompt)
    assert len(images(comfy, prefix)) == 1
