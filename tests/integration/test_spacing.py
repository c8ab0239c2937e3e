"""EMS Alpha Sweep's even spacing inside a real ComfyUI: one batched probe call, the placement
re-computed independently from raw model calls, and the labels reporting the α used (in-process);
then the node through a server over HTTP, refusals included."""

from __future__ import annotations

import math

import pytest
import torch

from support.comfy_server import ExecutionFailed
from support.graph import Graph, tiny_sd3

TYPED = [0.0, 0.25, 0.5, 0.75, 1.0]


@pytest.fixture(scope="module")
def env():
    from importlib import import_module

    from bench.host import CallCounter, setup

    setup(cpu=True)
    from comfyui_ems.toyworld import tiny_sd3 as tiny

    return {
        "model": tiny.model_patcher(0),
        "tiny": tiny,
        "Counter": CallCounter,
        "node": import_module("comfyui_ems.nodes.alpha_sweep").EMSAlphaSweep,
        "sweep": import_module("comfyui_ems.ems.conditioning").sweep_conditioning,
        "spacing": import_module("comfyui_ems.ems.spacing"),
    }


def run_even(env, alphas="0, 0.25, 0.5, 0.75, 1"):
    tiny = env["tiny"]
    counter = env["Counter"]()
    model = counter.install(env["model"])
    latent = {"samples": torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(0))}
    source, target = tiny.conditioning(1), tiny.conditioning(2)
    sigmas = torch.linspace(0.7, 0.0, 5)
    with torch.inference_mode():
        out = env["node"].execute(source, target, alphas, True, None, latent, "even", model, sigmas)
    return counter.calls, out, (model, source, target, latent, sigmas)


def raw_predictions(env, model, source, target, latent, sigmas, grid):
    """The probe written out again: noise_scaling of the latent with the fixed seed's noise at σ0,
    one raw apply_model per grid α (cond only)."""
    import comfy.sample

    base = model.model
    ms = base.model_sampling
    sigma = float(sigmas[0])
    x0 = base.latent_format.process_in(latent["samples"].float())
    noise = comfy.sample.prepare_noise(latent["samples"], 0, [0])
    x = ms.noise_scaling(torch.tensor([sigma]), noise, x0)
    preds = []
    with torch.inference_mode():
        for a in grid:
            (cond,) = env["sweep"](source, target, [a])
            out = base.apply_model(x, torch.tensor([sigma]), c_crossattn=cond[0], y=cond[1]["pooled_output"])
            preds.append(out[0])
    return preds


def independent_placement(env, model, source, target, latent, sigmas):
    """rms steps of the raw predictions, piecewise-linear inversion at the typed shares."""
    spacing = env["spacing"]
    grid = spacing.probe_grid(TYPED, spacing.DEFAULT_DENSITY)
    preds = raw_predictions(env, model, source, target, latent, sigmas, grid)
    s = [0.0]
    for p, q in zip(preds, preds[1:]):
        s.append(s[-1] + math.sqrt(float((q.double() - p.double()).pow(2).mean())))
    expected = []
    for share in (0.25, 0.5, 0.75):
        t = share * s[-1]
        j = next(i for i, v in enumerate(s) if v >= t)
        w = (t - s[j - 1]) / (s[j] - s[j - 1])
        expected.append(grid[j - 1] + w * (grid[j] - grid[j - 1]))
    return expected


def test_even_spacing_is_one_batched_probe_call_and_matches_an_independent_placement(env):
    calls, out, inputs = run_even(env)
    assert calls == [17], calls  # the probe grid in one call; the sweep itself calls no model
    cond, _, labels, count = out.result
    used = [float(line.split("=")[1]) for line in labels.splitlines()]
    assert count == 5 and used[0] == 0.0 and used[-1] == 1.0
    assert used == sorted(used) and len(set(used)) == 5
    expected = independent_placement(env, *inputs)
    assert used[1:-1] == pytest.approx(expected, abs=1.5e-3)  # the labels round to 3 decimals
    # the conditioning is the sweep at exactly the reported α
    reference = env["sweep"](inputs[1], inputs[2], used)
    torch.testing.assert_close(cond[0][0], reference[0][0])


def test_an_automatic_range_is_one_probe_call_and_stops_where_an_independent_reading_does(env):
    calls, out, inputs = run_even(env, alphas="0:auto:5")
    spacing = env["spacing"]
    grid = spacing.auto_grid(0.0, 1, 3.0)
    assert calls == [len(grid)], calls
    used = [float(line.split("=")[1]) for line in out.result[2].splitlines()]
    # the stop, read again from raw predictions: the first step past α = 1 that fades or turns away
    preds = [p.double().flatten() for p in raw_predictions(env, *inputs, grid)]
    unit = preds[8] - preds[0]
    stop = grid[-1]
    for j in range(8, len(grid) - 1):
        step = preds[j + 1] - preds[j]
        rate = math.sqrt(float(step.pow(2).mean())) / spacing.AUTO_STEP
        cos = float(step @ unit) / (float(step.norm()) * float(unit.norm()))
        if rate < spacing.FADE_RATE * math.sqrt(float(unit.pow(2).mean())) or cos < spacing.TURN_COS:
            stop = grid[j]
            break
    assert used[0] == 0.0 and used[-1] == pytest.approx(stop) and stop >= 1.0
    assert len(used) == 5 and used == sorted(used)  # even spacing on top: still the one call


def test_as_typed_calls_no_model(env):
    tiny = env["tiny"]
    counter = env["Counter"]()
    model = counter.install(env["model"])
    latent = {"samples": torch.zeros(1, 16, 8, 8)}
    out = env["node"].execute(
        tiny.conditioning(1),
        tiny.conditioning(2),
        "0, 0.5, 1",
        True,
        None,
        latent,
        "as typed",
        model,
        torch.linspace(0.7, 0.0, 5),
    )
    assert counter.calls == [] and out.result[2] == "α=0\nα=0.5\nα=1"


# -- through a server ---------------------------------------------------------------------------------


def sweep_graph(spacing="even", connect=("model", "latent_image", "sigmas"), alphas="0, 0.25, 0.5, 0.75, 1"):
    g = Graph()
    unet, clip, _ = tiny_sd3(g)
    src = g.node("CLIPTextEncode", clip=clip[0], text="a photo of a woman in a black suit")
    tgt = g.node("CLIPTextEncode", clip=clip[0], text="a photo of a woman in a red suit")
    latent = g.node("EmptySD3LatentImage", width=64, height=64, batch_size=1)
    sigmas = g.node("BasicScheduler", model=unet[0], scheduler="simple", steps=4, denoise=0.6)
    wires = {"model": unet[0], "latent_image": latent[0], "sigmas": sigmas[0]}
    sweep = g.node(
        "EMSAlphaSweep",
        source=src[0],
        target=tgt[0],
        alphas=alphas,
        manipulate_pooled=True,
        spacing=spacing,
        **{k: v for k, v in wires.items() if k in connect},
    )
    g.save(sweep[2], "labels")
    g.save(sweep[0], "conditioning")
    return g


def test_the_server_registers_spacing_and_reports_the_alphas_used(comfy):
    info = comfy.object_info()["EMSAlphaSweep"]["input"]["optional"]
    kind, spec = info["spacing"][0], info["spacing"][1]
    options = kind if isinstance(kind, list) else spec["options"]  # V3 combos: "COMBO" + options
    assert options == ["as typed", "even"] and spec["default"] == "as typed"
    assert {"model", "sigmas"} <= set(info)
    comfy.run(sweep_graph().prompt)
    labels = comfy.load_saved("labels").splitlines()
    assert labels[0] == "α=0" and labels[-1] == "α=1" and len(labels) == 5
    assert comfy.load_saved("conditioning")[0][0].shape[0] == 5


@pytest.mark.parametrize(
    "connect, missing", [(("latent_image", "sigmas"), "model"), (("model",), "latent_image, sigmas")]
)
def test_even_without_what_it_measures_with_names_the_inputs(comfy, connect, missing):
    with pytest.raises(ExecutionFailed) as e:
        comfy.run(sweep_graph(connect=connect).prompt)
    assert e.value.message.startswith("EMS Alpha Sweep: spacing 'even' measures the edit with the model")
    assert f"needs {missing} connected" in e.value.message and "'as typed'" in e.value.message


def test_even_refuses_unordered_alphas_with_the_fix(comfy):
    with pytest.raises(ExecutionFailed) as e:
        comfy.run(sweep_graph(alphas="0, 1, 0.5").prompt)
    assert "increasing or decreasing order" in e.value.message and e.value.message.startswith("EMS Alpha Sweep:")
