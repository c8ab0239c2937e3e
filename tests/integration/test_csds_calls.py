"""One batched model call per CSDS iteration (its stated cost), counted with a model wrapper
inside a real ComfyUI imported in-process."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def env():
    from bench.host import CallCounter, setup

    setup(cpu=True)
    from comfyui_ems.toyworld import tiny_sd3

    from importlib import import_module

    guider = import_module("comfyui_ems.nodes.csds_guider")
    common = import_module("comfyui_ems.nodes.common")
    return {
        "model": tiny_sd3.model_patcher(0),
        "tiny": tiny_sd3,
        "run_csds": guider.run_csds,
        "params": import_module("comfyui_ems.ems.csds").CSDSParams,
        "reconcile": lambda *a: common.reconcile_batch("EMS CSDS Latent Edit", *a[:2], attribute=a[2], negative=a[3]),
        "Counter": CallCounter,
    }


def run(env, iterations, cfg=7.5, attribute_tokens=154, latent_batch=1, positive_batch=1):
    tiny = env["tiny"]
    counter = env["Counter"]()
    model = counter.install(env["model"])
    latent = {"samples": torch.randn(latent_batch, 16, 8, 8, generator=torch.Generator().manual_seed(0))}
    sigmas = torch.tensor([0.9, 0.6, 0.0])
    positive, attribute = tiny.conditioning(1, batch=positive_batch), tiny.conditioning(2, attribute_tokens)
    negative = tiny.conditioning(3)
    latent = env["reconcile"](latent, positive, attribute, negative)
    params = env["params"](cfg=cfg, iterations=iterations, constraint=0.5, step_start=0.1, step_end=0.01)
    out = env["run_csds"](model, positive, attribute, negative, latent, sigmas, 42, params)
    return counter.calls, out


def test_one_batched_call_per_iteration(env):
    calls, out = run(env, iterations=5)
    assert calls == [3] * 5, calls  # [positive, attribute, negative] in one forward, 5 times
    assert out["samples"].shape == (1, 16, 8, 8)


def test_cfg_one_skips_the_negative(env):
    calls, _ = run(env, iterations=4, cfg=1.0)
    assert calls == [2] * 4


def test_zero_iterations_make_no_model_call(env):
    calls, _ = run(env, iterations=0)
    assert calls == []


def test_a_k_item_sweep_is_still_one_call_per_iteration(env):
    calls, out = run(env, iterations=3, positive_batch=4)
    assert calls == [3 * 4] * 3, calls
    assert out["samples"].shape[0] == 4 and out["batch_index"] == [0] * 4


def test_unequal_token_shapes_cost_a_second_call(env):
    # Why EMSEncodePrompts exists: SD3 batches only identical shapes.
    calls, _ = run(env, iterations=2, attribute_tokens=231)
    assert len(calls) == 4


FAMILIES = ["sd35_large", "sd35_medium", "flux_dev", "flux_schnell", "chroma", "qwen_image", "lumina2", "sdxl"]


@pytest.mark.parametrize("family", FAMILIES)
def test_one_batched_call_per_iteration_on_every_family(env, family):
    """Each family's tiny model (toyworld/tiny_families.py) with its own encoder's conditioning, as
    EMS Encode Prompts gives it: [positive, attribute, negative] in one forward per iteration."""
    from importlib import import_module

    from comfyui_ems.toyworld import tiny_families

    encode = import_module("comfyui_ems.nodes.encode_prompts").EMSEncodePrompts.execute
    clip = tiny_families.clip(family)
    source, target, attribute, negative = encode(
        clip, "a woman in a black suit", "a woman in a red suit", "red suit", "blurry"
    ).result
    counter = env["Counter"]()
    model = counter.install(tiny_families.model_patcher(family))
    vae = tiny_families.vae(family)
    latent = {"samples": vae.encode(torch.rand(1, 64, 64, 3))}
    sigmas = model.get_model_object("model_sampling").sigmas
    sigmas = torch.stack([sigmas[int(len(sigmas) * 0.6)], sigmas[int(len(sigmas) * 0.3)], sigmas[0] * 0])
    latent = env["reconcile"](latent, target, attribute, negative)
    params = env["params"](cfg=3.0, iterations=3, constraint=0.5, step_start=0.03, step_end=0.003)
    out = env["run_csds"](model, target, attribute, negative, latent, sigmas, 0, params)
    assert counter.calls == [3] * 3, counter.calls
    assert out["samples"].shape == latent["samples"].shape and torch.isfinite(out["samples"]).all()
