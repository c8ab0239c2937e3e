"""The pack in a real ComfyUI server, driven only over HTTP."""

from __future__ import annotations

import pytest
import torch

from support.comfy_server import ExecutionFailed
from support.graph import Graph, tiny_sd3

SOURCE = "a photo of a woman in a black suit standing in a park"
TARGET = "a photo of a woman in a red suit standing in a park"
LONG = ", ".join(["a very detailed photograph of a woman wearing an elegant tailored suit"] * 12)

SPEC_INPUTS = {
    "EMSEncodePrompts": {"clip", "source_prompt", "target_prompt", "attribute_prompt", "negative_prompt"},
    "EMSTextDirection": {"source", "target", "alpha", "manipulate_pooled", "base"},
    "EMSAlphaSweep": {"source", "target", "alphas", "manipulate_pooled", "base", "latent_image"},
}
SPEC_OUTPUTS = {
    "EMSEncodePrompts": ["source", "target", "attribute", "negative"],
    "EMSTextDirection": ["conditioning"],
    "EMSAlphaSweep": ["conditioning", "latent", "labels", "count"],
}


def inputs_of(info):
    return set(info["input"].get("required", {})) | set(info["input"].get("optional", {}))


def test_pack_imports_and_nodes_match_the_spec(comfy):
    log = comfy.log()
    failed = [line for line in log.splitlines() if "IMPORT FAILED" in line and "custom_nodes/" in line]
    assert not failed, log[-4000:]
    assert any(line.strip().endswith("custom_nodes/comfyui-ems") for line in log.splitlines()), log[-2000:]
    info = comfy.object_info()
    for node, names in SPEC_INPUTS.items():
        assert node in info, f"{node} not registered"
        assert names <= inputs_of(info[node]), (node, inputs_of(info[node]))
        assert info[node]["output_name"] == SPEC_OUTPUTS[node]
        assert info[node]["category"].startswith("EMS")
        for section in ("required", "optional"):
            for name, spec in info[node]["input"].get(section, {}).items():
                assert spec[1].get("tooltip"), f"{node}.{name} has no tooltip"
    pack_nodes = [n for n, i in info.items() if i.get("python_module", "").endswith("comfyui-ems")]
    assert len(pack_nodes) >= 6, pack_nodes
    for node in pack_nodes:
        assert node.startswith("EMS") and info[node]["category"].startswith("EMS/"), node
        assert info[node]["description"], f"{node} has no description"
        for section in ("required", "optional"):
            for name, spec in info[node]["input"].get(section, {}).items():
                assert spec[1].get("tooltip"), f"{node}.{name} has no tooltip"
    alpha = info["EMSTextDirection"]["input"]["required"]["alpha"][1]
    assert alpha["min"] <= -4 and alpha["max"] >= 4 and alpha["step"] == 0.01 and alpha["default"] == 1.0


def sample(g, unet, positive, negative, latent, seed=7, steps=3, denoise=1.0):
    return g.node(
        "KSampler",
        model=unet[0],
        positive=positive,
        negative=negative,
        latent_image=latent,
        seed=seed,
        steps=steps,
        cfg=3.0,
        sampler_name="euler",
        scheduler="simple",
        denoise=denoise,
    )


def text_graph(alpha=None, direct=None):
    g = Graph()
    unet, clip, _ = tiny_sd3(g)
    src = g.node("CLIPTextEncode", clip=clip[0], text=SOURCE)
    tgt = g.node("CLIPTextEncode", clip=clip[0], text=TARGET)
    neg = g.node("CLIPTextEncode", clip=clip[0], text="")
    latent = g.node("EmptySD3LatentImage", width=64, height=64, batch_size=1)
    if direct is not None:
        positive = {"source": src, "target": tgt}[direct][0]
    else:
        positive = g.node("EMSTextDirection", source=src[0], target=tgt[0], alpha=alpha, manipulate_pooled=True)[0]
    g.save(sample(g, unet, positive, neg[0], latent[0])[0], "out")
    return g


def run_latent(comfy, g):
    comfy.run(g.prompt)
    return comfy.load_saved("out")["samples"]


def test_alpha_zero_and_one_reproduce_source_and_target_exactly(comfy):
    ref_src = run_latent(comfy, text_graph(direct="source"))
    ref_tgt = run_latent(comfy, text_graph(direct="target"))
    assert not torch.equal(ref_src, ref_tgt)
    assert torch.equal(run_latent(comfy, text_graph(alpha=0.0)), ref_src)
    assert torch.equal(run_latent(comfy, text_graph(alpha=1.0)), ref_tgt)
    half = run_latent(comfy, text_graph(alpha=0.5))
    d_src, d_tgt = (half - ref_src).norm(), (half - ref_tgt).norm()
    total = (ref_tgt - ref_src).norm()
    assert 0 < d_src < total and 0 < d_tgt < total


@pytest.mark.parametrize("alpha", [-1.0, 3.0])
def test_extrapolation_and_reversal_run(comfy, alpha):
    out = run_latent(comfy, text_graph(alpha=alpha))
    assert torch.isfinite(out).all() and out.shape == (1, 16, 8, 8)


def test_sweep_renders_one_batch_whose_items_equal_single_runs(comfy):
    alphas = [0.0, 0.4, 1.0]
    g = Graph()
    unet, clip, _ = tiny_sd3(g)
    src = g.node("CLIPTextEncode", clip=clip[0], text=SOURCE)
    tgt = g.node("CLIPTextEncode", clip=clip[0], text=TARGET)
    neg = g.node("CLIPTextEncode", clip=clip[0], text="")
    latent = g.node("EmptySD3LatentImage", width=64, height=64, batch_size=1)
    sweep = g.node(
        "EMSAlphaSweep",
        source=src[0],
        target=tgt[0],
        alphas="0, 0.4, 1",
        manipulate_pooled=True,
        latent_image=latent[0],
    )
    g.save(sample(g, unet, sweep[0], neg[0], sweep[1])[0], "out")
    g.save(sweep[2], "labels")
    g.save(sweep[3], "count")
    batch = run_latent(comfy, g)
    assert batch.shape[0] == 3
    assert comfy.load_saved("labels") == "α=0\nα=0.4\nα=1" and comfy.load_saved("count") == 3
    for i, a in enumerate(alphas):
        single = run_latent(comfy, text_graph(alpha=a))
        torch.testing.assert_close(batch[i : i + 1], single, rtol=1e-5, atol=1e-5)


def encode_graph(source, target):
    g = Graph()
    unet, clip, _ = tiny_sd3(g)
    enc = g.node(
        "EMSEncodePrompts",
        clip=clip[0],
        source_prompt=source,
        target_prompt=target,
        attribute_prompt="red suit",
        negative_prompt="blurry",
    )
    direction = g.node("EMSTextDirection", source=enc[0], target=enc[1], alpha=0.6, manipulate_pooled=True)
    latent = g.node("EmptySD3LatentImage", width=64, height=64, batch_size=1)
    g.save(sample(g, unet, direction[0], enc[3], latent[0])[0], "out")
    for i, name in enumerate(["source", "target", "attribute", "negative"]):
        g.save(enc[i], f"enc_{name}")
    return g


def test_short_and_very_long_prompts_encode_to_one_shape(comfy):
    out = run_latent(comfy, encode_graph(SOURCE, LONG))
    assert torch.isfinite(out).all()
    shapes = {
        name: comfy.load_saved(f"enc_{name}")[0][0].shape for name in ("source", "target", "attribute", "negative")
    }
    assert len(set(shapes.values())) == 1, shapes
    tokens = shapes["source"][1]
    assert tokens > 154, "the long prompt should need more than one CLIP chunk / longer T5"
    # Equal lengths come from real encodings: no zero rows in the short prompt's T5 part.
    src = comfy.load_saved("enc_source")[0][0]
    assert (src[0].abs().sum(-1) > 0).all()


def test_encode_prompts_equals_clip_text_encode_when_no_padding_is_needed(comfy):
    g = Graph()
    _, clip, _ = tiny_sd3(g)
    enc = g.node(
        "EMSEncodePrompts",
        clip=clip[0],
        source_prompt=SOURCE,
        target_prompt=TARGET,
        attribute_prompt="",
        negative_prompt="",
    )
    ref = g.node("CLIPTextEncode", clip=clip[0], text=SOURCE)
    g.save(enc[0], "enc")
    g.save(ref[0], "ref")
    comfy.run(g.prompt)
    enc, ref = comfy.load_saved("enc"), comfy.load_saved("ref")
    assert torch.equal(enc[0][0], ref[0][0])
    assert torch.equal(enc[0][1]["pooled_output"], ref[0][1]["pooled_output"])


def test_raw_conditionings_of_different_lengths_are_refused_with_their_lengths(comfy):
    g = Graph()
    _, clip, _ = tiny_sd3(g)
    src = g.node("CLIPTextEncode", clip=clip[0], text=SOURCE)
    tgt = g.node("CLIPTextEncode", clip=clip[0], text=LONG)
    direction = g.node("EMSTextDirection", source=src[0], target=tgt[0], alpha=0.5, manipulate_pooled=True)
    g.save(direction[0], "never")
    with pytest.raises(ExecutionFailed) as e:
        comfy.run(g.prompt)
    msg = e.value.message
    assert "EMS Text Direction" in msg and "154 tokens" in msg and "EMS Encode Prompts" in msg
    assert "CLIP chunk" in msg and "T5 tokens" in msg


def test_bad_alpha_schedule_is_refused_clearly(comfy):
    g = Graph()
    _, clip, _ = tiny_sd3(g)
    src = g.node("CLIPTextEncode", clip=clip[0], text=SOURCE)
    sweep = g.node("EMSAlphaSweep", source=src[0], target=src[0], alphas="0, half, 1", manipulate_pooled=True)
    g.save(sweep[0], "never")
    with pytest.raises(ExecutionFailed) as e:
        comfy.run(g.prompt)
    assert "EMS Alpha Sweep" in e.value.message and "'half' is not a number" in e.value.message


def test_sweep_latent_output_without_latent_image_is_an_error_in_history(comfy):
    # An ExecutionBlocker's message reaches only the browser and /history says
    # success, so the sweep raises instead when its latent output is used without a latent.
    g = Graph()
    unet, clip, _ = tiny_sd3(g)
    src = g.node("CLIPTextEncode", clip=clip[0], text=SOURCE)
    tgt = g.node("CLIPTextEncode", clip=clip[0], text=TARGET)
    sweep = g.node("EMSAlphaSweep", source=src[0], target=tgt[0], alphas="0, 1", manipulate_pooled=True)
    g.save(sample(g, unet, sweep[0], src[0], sweep[1])[0], "never")
    with pytest.raises(ExecutionFailed) as e:  # read from /history by ComfyServer.wait
        comfy.run(g.prompt)
    assert "EMS Alpha Sweep" in e.value.message and "latent_image" in e.value.message
    assert not (comfy.base / "output" / "never.pt").exists()
    # with the latent output unused, the rest of the sweep works
    g = Graph()
    _, clip, _ = tiny_sd3(g)
    src = g.node("CLIPTextEncode", clip=clip[0], text=SOURCE)
    tgt = g.node("CLIPTextEncode", clip=clip[0], text=TARGET)
    sweep = g.node("EMSAlphaSweep", source=src[0], target=tgt[0], alphas="0, 1", manipulate_pooled=True)
    g.save(sweep[2], "labels")
    comfy.run(g.prompt)
    assert comfy.load_saved("labels") == "α=0\nα=1"
