"""Toy world v3 (toyworld/train_v3.py): the SD3 toy trained further on partial captions, with its
VAE's decoder trained further and the encoder frozen. Checked in-process (what the weights must
keep) and in a real ComfyUI server (the loader's "SD3 v3" family runs the shipped toy template)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from comfyui_ems.toyworld import model as M
from comfyui_ems.toyworld.scenes import render, split
from support.toy_templates import read_tiles, toy_template

HAVE_V3 = (M.WEIGHTS / M.V3_META_FILE).exists()
needs_weights = pytest.mark.skipif(not HAVE_V3, reason="no toy world v3 in toyworld/weights")


@pytest.fixture(scope="module")
def comfy_cpu():
    from bench.host import setup

    setup(cpu=True)


@needs_weights
def test_v3_keeps_the_encoder_so_every_toy_sees_the_same_latents_and_decodes_better(comfy_cpu):
    """The v3 VAE encodes bit for bit as the shared VAE (the MMDiT, the Flux toy and v3 were all
    trained on those latents) and only its decoder differs."""
    from comfyui_ems.toyworld.comfy_loader import load_toyworld
    from comfyui_ems.toyworld.quality import psnr, vae_roundtrip

    _, _, v2 = load_toyworld(family="sd3")
    model, _, v3 = load_toyworld(family="sd3v3")
    import comfy.supported_models

    assert isinstance(model.model.model_config, comfy.supported_models.SD3)
    images = np.stack([render(s) for s in split("test")[:24]])
    pixels = torch.from_numpy(images).float() / 255.0
    torch.testing.assert_close(v3.encode(pixels), v2.encode(pixels), rtol=0, atol=0)
    assert psnr(vae_roundtrip(v3, images), images) > psnr(vae_roundtrip(v2, images), images)


@needs_weights
def test_the_record_says_how_v3_was_made():
    record = json.loads((M.WEIGHTS / M.V3_META_FILE).read_text())
    training = record["training"]
    assert training["partial_captions"]["captions"] > 1000
    assert training["mmdit"]["steps"] > 0 and training["decoder"]["steps"] > 0
    assert record["text_encoders"] == json.loads((M.WEIGHTS / M.META_FILE).read_text())["text_encoders"]


@needs_weights
def test_the_toy_template_edits_colour_on_toy_world_v3(comfy):
    prompt = toy_template(comfy, "SD3 v3")
    history = comfy.run(prompt)
    assert history["status"]["status_str"] == "success"
    seen = read_tiles(comfy, prompt, history)
    assert seen[0]["colour"] == "red" and seen[-1]["colour"] == "blue", seen
