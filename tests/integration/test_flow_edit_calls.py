"""One batched model call per EMS Flow Edit step — both coupled points and their negatives —
counted with a model wrapper inside a real ComfyUI imported in-process."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def env():
    from importlib import import_module

    from bench.host import CallCounter, setup

    setup(cpu=True)
    from comfyui_ems.toyworld import tiny_sd3

    return {
        "model": tiny_sd3.model_patcher(0),
        "tiny": tiny_sd3,
        "Counter": CallCounter,
        "node": import_module("comfyui_ems.nodes.flow_edit").EMSFlowEdit,
        "sweep": import_module("comfyui_ems.ems.conditioning").sweep_conditioning,
    }


def run(env, alphas, cfg=5.0, source_cfg=2.0, target_tokens=154, steps=3, **options):
    tiny = env["tiny"]
    counter = env["Counter"]()
    model = counter.install(env["model"])
    latent = {"samples": torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(0))}
    source, negative = tiny.conditioning(1), tiny.conditioning(3)
    target = tiny.conditioning(2, target_tokens)
    positive = env["sweep"](source, target, alphas) if target_tokens == 154 else target
    sigmas = torch.linspace(0.8, 0.0, steps + 1)
    options = {"noise_average": 1, **options}  # one noise per step unless a test says otherwise
    out = env["node"].execute(model, source, positive, negative, latent, sigmas, 3, cfg, source_cfg, **options)
    return counter.calls, out.result[0]["samples"]


def test_one_batched_call_per_step(env):
    calls, out = run(env, [0.0, 0.5, 1.0])
    assert calls == [2 * 2 * 3] * 3, calls  # [target, source] × 3 items, with negatives, once per step
    assert out.shape == (3, 16, 8, 8)


def test_the_default_noise_average_widens_the_one_call(env):
    from comfyui_ems.ems.flow_edit import DEFAULTS

    calls, _ = run(env, [0.5, 1.0], noise_average=DEFAULTS["noise_average"])
    assert calls == [DEFAULTS["noise_average"] * 2 * 2 * 2] * 3, calls


def test_noise_average_and_drive_stay_in_the_one_call(env):
    calls, _ = run(env, [1.0], noise_average=3, drive=0.5)
    assert calls == [3 * 3 * 2] * 3, calls  # 3 noises × [target, source, source at the target point] × cond/uncond


def test_cfg_one_on_both_points_skips_the_negative(env):
    calls, _ = run(env, [1.0], cfg=1.0, source_cfg=1.0)
    assert calls == [2] * 3


def test_unequal_token_shapes_cost_more_calls(env):
    # Why EMS Encode Prompts exists: SD3 batches only identical shapes. The target (231 tokens) runs
    # alone, its negative alone, the source with its negative: three calls a step instead of one.
    calls, _ = run(env, [1.0], target_tokens=231)
    assert calls == [1, 1, 2] * 3, calls
