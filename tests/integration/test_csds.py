"""EMSCSDSLatentEdit in a real ComfyUI — equivalences, exactness against an independent
implementation of the CSDS update, sweeps, refusals, determinism, and the one-call-per-iteration claim."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from support.comfy_server import ExecutionFailed, PromptRejected
from support.graph import Graph, tiny_sd3

SOURCE = "a photo of a woman in a black suit standing in a park"
TARGET = "a photo of a woman in a red suit standing in a park"
ATTRIBUTE = "red suit"
SEED = 1234

SPEC_INPUTS = {
    "model",
    "positive",
    "attribute",
    "negative",
    "latent_image",
    "sigmas",
    "noise_seed",
    "cfg",
    "iterations",
    "constraint",
    "step_start",
    "step_end",
    "residual_space",
}


@pytest.fixture(scope="module")
def image_name(comfy):
    rng = np.random.default_rng(0)
    pixels = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(comfy.base / "input" / "ems_test.png")
    return "ems_test.png"


class Output:
    """One output slot of a node, indexable like a node ([0] → that slot), so a loader with three
    outputs can stand in for three single-output loaders."""

    def __init__(self, node, slot: int):
        self.node, self.slot = node, slot

    def __getitem__(self, _):
        return self.node[self.slot]


def toy_world(g: Graph):
    """The trained toy SD3 (EMS Toy World Loader) as (model, clip, vae), shaped like ``tiny_sd3``."""
    toy = g.node("EMSToyWorldLoader")
    return Output(toy, 0), Output(toy, 1), Output(toy, 2)


LOADERS = {"tiny_sd3": tiny_sd3, "toy_world": toy_world}


def edit_graph(
    image_name,
    alpha=1.0,
    iterations=3,
    constraint=0.5,
    denoise=0.75,
    seed=SEED,
    sweep=None,
    downstream=False,
    cfg=3.0,
    residual_space=None,
    attribute=ATTRIBUTE,
    masked=False,
    loader="tiny_sd3",
    options=None,
    connect_source=False,
):
    """``options``: further widgets of the node (v3: drive, step_units, locality); ``connect_source``:
    wire EMS Encode Prompts' source into the node's ``source`` (the target_vs_source drive)."""
    g = Graph()
    unet, clip, vae = LOADERS[loader](g)
    enc = g.node(
        "EMSEncodePrompts",
        clip=clip[0],
        source_prompt=SOURCE,
        target_prompt=TARGET,
        attribute_prompt=attribute,
        negative_prompt="",
    )
    image = g.node("LoadImage", image=image_name)
    latent = g.node("VAEEncode", pixels=image[0], vae=vae[0])
    if masked:  # LoadImage's MASK is 1 where the PNG is transparent (the left half, see masked_image)
        latent = g.node("SetLatentNoiseMask", samples=latent[0], mask=image[1])
    sigmas = g.node("BasicScheduler", model=unet[0], scheduler="simple", steps=6, denoise=denoise)
    if sweep is None:
        positive = g.node("EMSTextDirection", source=enc[0], target=enc[1], alpha=alpha, manipulate_pooled=True)[0]
    else:
        positive = g.node("EMSAlphaSweep", source=enc[0], target=enc[1], alphas=sweep, manipulate_pooled=True)[0]
    edit = g.node(
        "EMSCSDSLatentEdit",
        model=unet[0],
        positive=positive,
        attribute=enc[2],
        negative=enc[3],
        latent_image=latent[0],
        sigmas=sigmas[0],
        noise_seed=seed,
        cfg=cfg,
        iterations=iterations,
        constraint=constraint,
        step_start=0.1,
        step_end=0.01,
        **({} if residual_space is None else {"residual_space": residual_space}),
        **(options or {}),
        **({"source": enc[0]} if connect_source else {}),
    )
    g.save(edit[0], "edit")
    for name, ref in (
        ("source", enc[0]),
        ("positive", positive),
        ("attribute", enc[2]),
        ("negative", enc[3]),
        ("latent", latent[0]),
        ("sigmas", sigmas[0]),
    ):
        g.save(ref, name)
    if downstream:
        guider = g.node("CFGGuider", model=unet[0], positive=positive, negative=enc[3], cfg=cfg)
        sampler = g.node("KSamplerSelect", sampler_name="euler")
        g.save(
            g.node(
                "SamplerCustomAdvanced",
                noise=g.node("DisableNoise")[0],
                guider=guider[0],
                sampler=sampler[0],
                sigmas=sigmas[0],
                latent_image=edit[0],
            )[0],
            "final",
        )
        g.save(
            g.node(
                "SamplerCustomAdvanced",
                noise=g.node("RandomNoise", noise_seed=seed)[0],
                guider=guider[0],
                sampler=sampler[0],
                sigmas=sigmas[0],
                latent_image=latent[0],
            )[0],
            "img2img",
        )
        # img2img with the source caption: what α = 0 must give with CSDS on (the push is scaled by α)
        source_guider = g.node("CFGGuider", model=unet[0], positive=enc[0], negative=enc[3], cfg=cfg)
        g.save(
            g.node(
                "SamplerCustomAdvanced",
                noise=g.node("RandomNoise", noise_seed=seed)[0],
                guider=source_guider[0],
                sampler=sampler[0],
                sigmas=sigmas[0],
                latent_image=latent[0],
            )[0],
            "img2img_source",
        )
    return g


def test_node_is_registered_with_the_spec_inputs(comfy):
    info = comfy.object_info()["EMSCSDSLatentEdit"]
    names = set(info["input"]["required"]) | set(info["input"].get("optional", {}))
    assert SPEC_INPUTS <= names and info["output_name"] == ["latent"]
    from comfyui_ems.ems.csds import DEFAULTS

    req = {**info["input"]["required"], **info["input"].get("optional", {})}
    for name, value in DEFAULTS.items():  # the node's defaults are the one declared set
        assert req[name][1]["default"] == value, name
    assert req["residual_space"][0] == ["model_output", "noise"] or req["residual_space"][1].get("options") == [
        "model_output",
        "noise",
    ]


def test_zero_iterations_then_disable_noise_equals_img2img(comfy, image_name):
    comfy.run(edit_graph(image_name, iterations=0, downstream=True).prompt)
    final, img2img = comfy.load_saved("final")["samples"], comfy.load_saved("img2img")["samples"]
    assert final.shape == img2img.shape == (1, 16, 8, 8)
    torch.testing.assert_close(final, img2img, rtol=1e-5, atol=1e-5)


def independent_csds(
    saved,
    seed,
    cfg,
    iterations,
    constraint,
    step_start=0.1,
    step_end=0.01,
    residual_space="model_output",
    alpha=1.0,
    drive="attribute",
    step_units="latent",
):
    """The CSDS update (with its α-scaled drive) written out again with raw ``apply_model`` calls on the same weights (no EMS code).

    r = (z − D)/σ (model_output: the velocity) or (z − (1−σ)·D)/σ (noise: ε); drive scaled by α
    (attribute), or r(c̃) − r(c0) unscaled (target_vs_source); image units: η·σ·(1 − σ)/(w·cfg)."""
    from bench.host import setup

    setup(cpu=True)
    import comfy.sd

    path = os.path.join(saved["base"], "models", "diffusion_models", "tiny_sd3.safetensors")
    model = comfy.sd.load_diffusion_model(path).model
    fmt = model.latent_format
    sigma = float(saved["sigmas"][0])
    x = fmt.process_in(saved["latent"]["samples"].float())
    noise = torch.randn(x.shape, generator=torch.manual_seed(seed))
    z0 = sigma * noise + (1 - sigma) * x

    def denoised(z, cond):
        t = torch.full((z.shape[0],), sigma)
        return model.apply_model(z, t, c_crossattn=cond[0][0], y=cond[0][1]["pooled_output"]).float()

    def guided(z, cond):
        neg = denoised(z, saved["negative"])
        return neg + cfg * (denoised(z, cond) - neg)

    w = 1.0 if residual_space == "model_output" else 1 - sigma

    def eps(z, cond):
        return (z - w * guided(z, cond)) / sigma

    z, eps0 = z0, eps(z0, saved["positive"])
    units = 1.0 if step_units == "latent" else sigma * (1 - sigma) / (w * cfg)
    with torch.no_grad():
        for k in range(iterations):
            eta = units * step_start * (step_end / step_start) ** (k / (iterations - 1))
            e_pos = eps(z, saved["positive"])
            if drive == "attribute":
                pushed = alpha * (eps(z, saved["attribute"]) - e_pos)
            else:
                pushed = e_pos - eps(z, saved["source"])
            g = pushed + constraint * (e_pos - eps0)
            z = z - eta * g
    return fmt.process_out(z / (1 - sigma))


@pytest.mark.parametrize("residual_space", ["model_output", "noise"])
def test_output_equals_an_independent_implementation_of_the_spec(comfy, image_name, residual_space):
    comfy.run(
        edit_graph(image_name, alpha=0.8, iterations=4, constraint=0.3, cfg=3.0, residual_space=residual_space).prompt
    )
    saved = {k: comfy.load_saved(k) for k in ("positive", "attribute", "negative", "latent", "sigmas", "edit")}
    saved["base"] = str(comfy.base)
    assert saved["positive"][0][1]["ems_alpha"].tolist() == [0.8]  # α travelled on the conditioning
    expected = independent_csds(
        saved, SEED, cfg=3.0, iterations=4, constraint=0.3, residual_space=residual_space, alpha=0.8
    )
    edit = saved["edit"]["samples"]
    no_edit = independent_csds(saved, SEED, cfg=3.0, iterations=0, constraint=0.3)
    assert (expected - no_edit).abs().max() > 1e-3, "the edit should move the latent"
    torch.testing.assert_close(edit, expected, rtol=1e-4, atol=1e-5)
    assert saved["edit"]["ems_csds"]["sigma"] == pytest.approx(float(saved["sigmas"][0]))
    assert saved["edit"]["ems_csds"]["residual_space"] == residual_space


def test_sweep_item_equals_the_single_edit_with_csds_on(comfy, image_name):
    alphas = [0.0, 0.5, 1.5]
    comfy.run(edit_graph(image_name, sweep="0, 0.5, 1.5", iterations=3).prompt)
    batch = comfy.load_saved("edit")
    assert batch["samples"].shape[0] == 3 and batch["batch_index"] == [0, 0, 0]
    for i, a in enumerate(alphas):
        comfy.run(edit_graph(image_name, alpha=a, iterations=3).prompt)
        single = comfy.load_saved("edit")["samples"]
        torch.testing.assert_close(batch["samples"][i : i + 1], single, rtol=1e-4, atol=1e-5)


def test_same_seed_same_result_and_another_seed_differs(comfy, image_name):
    comfy.run(edit_graph(image_name, seed=5).prompt)
    first = comfy.load_saved("edit")["samples"]
    comfy.run(edit_graph(image_name, seed=6).prompt)
    other = comfy.load_saved("edit")["samples"]
    comfy.run(edit_graph(image_name, seed=5).prompt)
    again = comfy.load_saved("edit")["samples"]
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_full_denoise_schedule_is_refused(comfy, image_name):
    with pytest.raises(ExecutionFailed) as e:
        comfy.run(edit_graph(image_name, denoise=1.0).prompt)
    msg = e.value.message
    assert "EMS CSDS Latent Edit" in msg and "denoise" in msg and "σ" in msg


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"step_start": 0.01, "step_end": 0.1}, "must not exceed step_start"),
        ({"constraint": -1.0}, "smaller than min"),  # ComfyUI's own validation, before execution
    ],
)
def test_bad_parameters_are_refused(comfy, image_name, change, fragment):
    g = edit_graph(image_name)
    node = next(n for n in g.prompt.values() if n["class_type"] == "EMSCSDSLatentEdit")
    node["inputs"].update(change)
    with pytest.raises((ExecutionFailed, PromptRejected)) as e:
        comfy.run(g.prompt)
    assert fragment in str(e.value)


def test_two_value_sigmas_minimum_and_batch_mismatch_are_refused(comfy, image_name):
    for step, ok in ((5, True), (6, False)):  # 7 sigmas: [5:] has two values, [6:] only one
        g = edit_graph(image_name)
        sched = next(k for k, n in g.prompt.items() if n["class_type"] == "BasicScheduler")
        split = g.node("SplitSigmas", sigmas=[sched, 0], step=step)
        next(n for n in g.prompt.values() if n["class_type"] == "EMSCSDSLatentEdit")["inputs"]["sigmas"] = split[1]
        if ok:
            comfy.run(g.prompt)
        else:
            with pytest.raises(ExecutionFailed, match="SIGMAS has 1 value"):
                comfy.run(g.prompt)
    g = edit_graph(image_name, sweep="0, 1")
    load = next(k for k, n in g.prompt.items() if n["class_type"] == "VAEEncode")
    batch = g.node("RepeatLatentBatch", samples=[load, 0], amount=3)
    node = next(n for n in g.prompt.values() if n["class_type"] == "EMSCSDSLatentEdit")
    node["inputs"]["latent_image"] = batch[0]
    with pytest.raises(ExecutionFailed) as e:
        comfy.run(g.prompt)
    assert "batch of 3" in e.value.message and "'positive' has a batch of 2" in e.value.message


@pytest.fixture(scope="module")
def scene_image(comfy):
    """A toy-world scene (64×64, a red circle on white), RGBA with its left half transparent (a
    LoadImage MASK of 1 there) — the toy model's kind of image, for the toy-world variants below."""
    from comfyui_ems.toyworld.scenes import Scene, render

    pixels = np.concatenate(
        [render(Scene("red", "circle", 1, "large", "white", layout=2_000_007)), np.full((64, 64, 1), 255, np.uint8)],
        axis=-1,
    )
    pixels[:, :32, 3] = 0
    Image.fromarray(pixels, "RGBA").save(comfy.base / "input" / "ems_scene.png")
    return "ems_scene.png"


@pytest.mark.parametrize("loader", ["tiny_sd3", "toy_world"])
def test_alpha_zero_with_csds_on_equals_img2img_with_the_source_caption(comfy, image_name, scene_image, loader):
    """α = 0 is no edit through the whole pipeline, single and as sweep item 0 — on the
    random tiny SD3 and on the trained toy model (a rendered scene)."""
    image_name = scene_image if loader == "toy_world" else image_name
    comfy.run(edit_graph(image_name, alpha=0.0, iterations=4, downstream=True, loader=loader).prompt)
    final, source = comfy.load_saved("final")["samples"], comfy.load_saved("img2img_source")["samples"]
    target = comfy.load_saved("img2img")["samples"]  # with c̃ = c0 at α = 0 this is the same graph
    torch.testing.assert_close(final, source, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(target, source, rtol=1e-4, atol=1e-4)
    comfy.run(edit_graph(image_name, sweep="0, 1", iterations=4, downstream=True, loader=loader).prompt)
    final = comfy.load_saved("final")["samples"]
    assert final.shape[0] == 2
    torch.testing.assert_close(final[:1], source, rtol=1e-4, atol=1e-4)
    assert (final[1:] - source).abs().max() > 1e-3, "α = 1 should edit"


def test_degree_grades_the_image_side_push(comfy, image_name):
    comfy.run(edit_graph(image_name, iterations=0).prompt)
    start = comfy.load_saved("edit")["samples"]
    comfy.run(edit_graph(image_name, sweep="-1, 0, 0.5, 1", iterations=3).prompt)
    moved = comfy.load_saved("edit")["samples"] - start
    size = [float(m.norm()) for m in moved]
    assert size[1] == 0.0 and 0 < size[2] < size[3], size
    assert float((moved[0] * moved[3]).sum()) < 0, "negative α pushes the other way"


def test_empty_attribute_uses_the_edited_words_and_still_moves_at_alpha_one(comfy, image_name):
    comfy.run(edit_graph(image_name, attribute="", iterations=0).prompt)
    start = comfy.load_saved("edit")["samples"]
    comfy.run(edit_graph(image_name, attribute="", iterations=3).prompt)
    empty_attr, edit = comfy.load_saved("attribute"), comfy.load_saved("edit")["samples"]
    assert (edit - start).abs().max() > 1e-3, "CSDS must not vanish at α = 1 with an empty attribute"
    comfy.run(edit_graph(image_name, attribute="red suit", iterations=3).prompt)
    typed = comfy.load_saved("attribute")
    assert torch.equal(empty_attr[0][0], typed[0][0])  # the diff's phrase: "red suit"
    torch.testing.assert_close(comfy.load_saved("edit")["samples"], edit, rtol=0, atol=0)
    assert "using the edited words 'red suit'" in comfy.log()


@pytest.fixture(scope="module")
def masked_image(comfy):
    """RGBA test image whose left half is transparent: LoadImage's MASK is 1 there."""
    rng = np.random.default_rng(1)
    pixels = (rng.random((64, 64, 4)) * 255).astype(np.uint8)
    pixels[..., 3] = 255
    pixels[:, :32, 3] = 0
    Image.fromarray(pixels, "RGBA").save(comfy.base / "input" / "ems_masked.png")
    return "ems_masked.png"


@pytest.mark.parametrize("loader", ["tiny_sd3", "toy_world"])
def test_masked_edit_leaves_the_outside_as_masked_img2img_does(comfy, masked_image, scene_image, loader):
    masked_image = scene_image if loader == "toy_world" else masked_image
    comfy.run(edit_graph(masked_image, iterations=4, downstream=True, masked=True, loader=loader).prompt)
    final, img2img = comfy.load_saved("final")["samples"], comfy.load_saved("img2img")["samples"]
    source, edit = comfy.load_saved("latent"), comfy.load_saved("edit")
    inside, outside = (..., slice(0, 4)), (..., slice(4, 8))  # 64 px → 8 latent columns
    assert source["noise_mask"] is not None and edit["noise_mask"] is not None
    torch.testing.assert_close(final[outside], img2img[outside], rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(final[outside], source["samples"][outside], rtol=1e-3, atol=1e-3)
    assert torch.equal(edit["samples"][outside], source["samples"][outside])
    assert (final[inside] - source["samples"][inside]).abs().max() > 1e-2, "the masked half is edited"
    comfy.run(edit_graph(masked_image, iterations=0, masked=True, loader=loader).prompt)
    no_edit = comfy.load_saved("edit")["samples"]
    assert (edit["samples"][inside] - no_edit[inside]).abs().max() > 1e-3, "CSDS moved the masked half"


def _with_positive(g, wrap):
    """Route the CSDS node's positive through core nodes built by ``wrap(g, positive) -> ref``."""
    node = next(n for n in g.prompt.values() if n["class_type"] == "EMSCSDSLatentEdit")
    node["inputs"]["positive"] = wrap(g, node["inputs"]["positive"])
    return g


@pytest.mark.parametrize(
    "wrap",
    [
        lambda g, p: g.node("ConditioningSetTimestepRange", conditioning=p, start=0.0, end=1.0)[0],
        lambda g, p: g.node("ConditioningCombine", conditioning_1=p, conditioning_2=p)[0],
        lambda g, p: g.node("ConditioningSetAreaStrength", conditioning=p, strength=1.0)[0],
    ],
    ids=["SetTimestepRange", "Combine", "SetAreaStrength"],
)
def test_alpha_survives_core_conditioning_nodes(comfy, image_name, wrap):
    comfy.run(edit_graph(image_name, alpha=0.0, iterations=0).prompt)
    untouched = comfy.load_saved("edit")["samples"]
    comfy.run(_with_positive(edit_graph(image_name, alpha=0.0, iterations=3), wrap).prompt)
    assert torch.equal(comfy.load_saved("edit")["samples"], untouched), "α = 0 reached CSDS: no edit"


def test_combining_directions_at_different_alpha_is_refused(comfy, image_name):
    def wrap(g, p):
        enc = next(k for k, n in g.prompt.items() if n["class_type"] == "EMSEncodePrompts")
        other = g.node("EMSTextDirection", source=[enc, 0], target=[enc, 1], alpha=0.5, manipulate_pooled=True)
        return g.node("ConditioningCombine", conditioning_1=p, conditioning_2=other[0])[0]

    with pytest.raises(ExecutionFailed) as e:
        comfy.run(_with_positive(edit_graph(image_name, alpha=1.0), wrap).prompt)
    assert "EMS CSDS Latent Edit" in e.value.message and "different α" in e.value.message


def test_few_steps_that_round_to_a_full_schedule_get_the_real_reason(comfy, image_name):
    g = edit_graph(image_name)
    sched = next(n for n in g.prompt.values() if n["class_type"] == "BasicScheduler")
    sched["inputs"].update(steps=2, denoise=0.75)  # int(2 / 0.75) = 2: the whole 2-step schedule
    with pytest.raises(ExecutionFailed) as e:
        comfy.run(g.prompt)
    assert "int(steps / denoise)" in e.value.message and "steps 2 at denoise 0.75" in e.value.message


# -- v3 options: the target_vs_source drive, step sizes in image units, locality --

TVS = {"drive": "target_vs_source"}


def saved_edit(comfy):
    keys = ("source", "positive", "attribute", "negative", "latent", "sigmas", "edit")
    saved = {k: comfy.load_saved(k) for k in keys}
    saved["base"] = str(comfy.base)
    return saved


@pytest.mark.parametrize("step_units", ["latent", "image"])
@pytest.mark.parametrize("drive", ["attribute", "target_vs_source"])
def test_drive_and_units_equal_an_independent_implementation(comfy, image_name, drive, step_units):
    options = {"drive": drive, "step_units": step_units, "residual_space": "model_output"}
    g = edit_graph(image_name, alpha=0.8, iterations=4, constraint=0.3, options=options, connect_source=True)
    comfy.run(g.prompt)
    saved = saved_edit(comfy)
    expected = independent_csds(
        saved, SEED, cfg=3.0, iterations=4, constraint=0.3, alpha=0.8, drive=drive, step_units=step_units
    )
    no_edit = independent_csds(saved, SEED, cfg=3.0, iterations=0, constraint=0.3)
    assert (expected - no_edit).abs().max() > 1e-4, "the edit should move the latent"
    torch.testing.assert_close(saved["edit"]["samples"], expected, rtol=1e-4, atol=1e-5)
    assert saved["edit"]["ems_csds"]["drive"] == drive


def test_a_prompt_without_step_units_keeps_the_latent_units_it_was_saved_with(comfy, image_name):
    """Graphs saved before the option existed (v0.1) meant latent units; new nodes default to image."""
    edits = {}
    for units in (None, "latent", "image"):
        options = {} if units is None else {"step_units": units}
        comfy.run(edit_graph(image_name, iterations=3, options=options).prompt)
        edits[units] = comfy.load_saved("edit")["samples"]
    assert torch.equal(edits[None], edits["latent"])
    assert (edits["image"] - edits["latent"]).abs().max() > 1e-4


def test_target_vs_source_at_alpha_zero_is_exactly_no_edit(comfy, image_name):
    """Sweep item α = 0 comes back as the un-pushed noised latent, bit for bit; α = 1 moves."""
    comfy.run(edit_graph(image_name, iterations=0).prompt)
    start = comfy.load_saved("edit")["samples"]
    comfy.run(edit_graph(image_name, sweep="0, 1", iterations=3, options=TVS, connect_source=True).prompt)
    moved = comfy.load_saved("edit")["samples"]
    assert torch.equal(moved[:1], start)
    assert (moved[1:] - start).abs().max() > 1e-4


def test_target_vs_source_is_graded_and_linear_in_alpha_at_first_order(comfy, image_name):
    comfy.run(edit_graph(image_name, iterations=0).prompt)
    start = comfy.load_saved("edit")["samples"]
    comfy.run(edit_graph(image_name, sweep="-0.5, 0.5, 1", iterations=1, options=TVS, connect_source=True).prompt)
    moved = comfy.load_saved("edit")["samples"] - start
    # one step, λ irrelevant at z_0: the push is D(c̃(α)) − D(c0), about α × that at α = 1
    torch.testing.assert_close(moved[1], 0.5 * moved[2], rtol=0.1, atol=1e-4)
    assert float((moved[0] * moved[2]).sum()) < 0, "negative α pushes the other way"


def test_target_vs_source_without_a_source_is_refused_with_the_fix(comfy, image_name):
    with pytest.raises(ExecutionFailed) as e:
        comfy.run(edit_graph(image_name, options=TVS).prompt)
    assert "EMS CSDS Latent Edit" in e.value.message and "source" in e.value.message


def test_locality_weakens_the_push_where_the_drive_is_small(comfy, image_name):
    """One iteration (the constraint term is zero at z_0, so only the drive moves z): locality's
    weight is at most 1 and below 1 wherever the drive's difference is under τ of its peak, so the
    push shrinks there and nowhere grows (the confinement itself: tests/unit/test_csds_v3.py)."""
    comfy.run(edit_graph(image_name, iterations=0).prompt)
    start = comfy.load_saved("edit")["samples"]
    moved = {}
    for locality in (0.0, 0.9):
        options = {**TVS, "locality": locality}
        comfy.run(edit_graph(image_name, alpha=1.0, iterations=1, options=options, connect_source=True).prompt)
        moved[locality] = (comfy.load_saved("edit")["samples"] - start).abs()
    assert float(moved[0.9].sum()) < float(moved[0.0].sum())
    assert bool((moved[0.9] <= moved[0.0] + 1e-6).all())
