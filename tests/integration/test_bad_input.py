"""Through a real ComfyUI server's HTTP API: every wrong input ends in an error that
names the EMS node (read back from /history), with no image written — never a black image
marked success. Plus the warnings API clients can see."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from support.comfy_server import ExecutionFailed
from support.graph import Graph, tiny_sd3

SOURCE = "a photo of a woman in a black suit standing in a park"
TARGET = "a photo of a woman in a red suit standing in a park"
CSDS = "EMS CSDS Latent Edit"


@pytest.fixture(scope="module")
def image_name(comfy):
    pixels = (np.random.default_rng(3).random((64, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(comfy.base / "input" / "ems_bad_input.png")
    return "ems_bad_input.png"


def pipeline(
    image_name,
    prefix,
    alpha=1.0,
    sweep=None,
    csds=None,
    positive_override=None,
    source=SOURCE,
    target=TARGET,
    latent_from_csds=False,
):
    """The full EMS edit ending in SaveImage(prefix); ``csds`` overrides the CSDS node's inputs."""
    g = Graph()
    unet, clip, vae = tiny_sd3(g)
    enc = g.node(
        "EMSEncodePrompts",
        clip=clip[0],
        source_prompt=source,
        target_prompt=target,
        attribute_prompt="red suit",
        negative_prompt="",
    )
    latent = g.node("VAEEncode", pixels=g.node("LoadImage", image=image_name)[0], vae=vae[0])
    sigmas = g.node("BasicScheduler", model=unet[0], scheduler="simple", steps=4, denoise=0.75)
    if sweep is None:
        direction = g.node("EMSTextDirection", source=enc[0], target=enc[1], alpha=alpha, manipulate_pooled=True)
    else:
        direction = g.node("EMSAlphaSweep", source=enc[0], target=enc[1], alphas=sweep, manipulate_pooled=True)
    positive = positive_override(g) if positive_override else direction[0]
    inputs = dict(
        model=unet[0],
        positive=positive,
        attribute=enc[2],
        negative=enc[3],
        latent_image=latent[0],
        sigmas=sigmas[0],
        noise_seed=1,
        cfg=3.0,
        iterations=2,
        constraint=0.5,
        step_start=0.1,
        step_end=0.01,
    )
    inputs.update(csds or {})
    edit = g.node("EMSCSDSLatentEdit", **inputs)
    if latent_from_csds:
        inputs = dict(inputs, latent_image=edit[0])
        edit = g.node("EMSCSDSLatentEdit", **inputs)
    guider = g.node("CFGGuider", model=unet[0], positive=direction[0], negative=enc[3], cfg=3.0)
    out = g.node(
        "SamplerCustomAdvanced",
        noise=g.node("DisableNoise")[0],
        guider=guider[0],
        sampler=g.node("KSamplerSelect", sampler_name="euler")[0],
        sigmas=sigmas[0],
        latent_image=edit[0],
    )
    g.node("SaveImage", images=g.node("VAEDecode", samples=out[0], vae=vae[0])[0], filename_prefix=prefix)
    return g, enc


def images(comfy, prefix):
    return sorted((comfy.base / "output").glob(f"{prefix}*.png"))


def refused(comfy, graph, prefix) -> str:
    with pytest.raises(ExecutionFailed) as e:
        comfy.run(graph.prompt)
    assert images(comfy, prefix) == [], "no image may be written for a refused input"
    return e.value.message


@pytest.mark.parametrize(
    "field, value",
    [
        ("cfg", math.nan),
        ("constraint", math.nan),
        ("step_start", math.nan),
        ("step_end", math.nan),
    ],
)
def test_non_finite_csds_inputs_are_errors_naming_the_node(comfy, image_name, field, value):
    prefix = f"bad_{field}_{value}"
    g, _ = pipeline(image_name, prefix, csds={field: value})
    msg = refused(comfy, g, prefix)
    assert CSDS in msg and field in msg and "finite" in msg


def test_infinite_cfg_is_rejected_before_running(comfy, image_name):
    # ±inf fails ComfyUI's own min/max check (NaN passes every comparison, hence the tests above).
    from support.comfy_server import PromptRejected

    g, _ = pipeline(image_name, "bad_cfg_inf", csds={"cfg": math.inf})
    with pytest.raises(PromptRejected) as e:
        comfy.run(g.prompt)
    assert "cfg" in str(e.value) and images(comfy, "bad_cfg_inf") == []


def test_nan_alpha_is_an_error_naming_text_direction(comfy, image_name):
    g, _ = pipeline(image_name, "bad_alpha_nan", alpha=math.nan)
    msg = refused(comfy, g, "bad_alpha_nan")
    assert "EMS Text Direction" in msg and "alpha" in msg and "finite" in msg


def test_huge_alpha_in_a_sweep_is_an_error_with_the_shared_range(comfy, image_name):
    g, _ = pipeline(image_name, "bad_sweep_1e30", sweep="0, 1e30")
    msg = refused(comfy, g, "bad_sweep_1e30")
    assert "EMS Alpha Sweep" in msg and "-10 … 10" in msg and "EMS Text Direction" in msg


def test_constraint_above_the_stable_bound_is_an_error(comfy, image_name):
    # σ of BasicScheduler(simple, 4 steps, denoise 0.75) on SD3 is < 1, so λ = 10 at η_0 = 0.1 is over.
    g, _ = pipeline(image_name, "bad_lambda", csds={"constraint": 10.0})
    msg = refused(comfy, g, "bad_lambda")
    assert CSDS in msg and "exceeds σ" in msg and "Keep constraint ≤" in msg


def test_step_start_above_the_widget_bound_is_rejected_before_running(comfy, image_name):
    from support.comfy_server import PromptRejected

    g, _ = pipeline(image_name, "bad_step", csds={"step_start": 5.0})
    with pytest.raises(PromptRejected) as e:
        comfy.run(g.prompt)
    assert "step_start" in str(e.value)


@pytest.mark.parametrize(
    "width, pooled, family",
    [
        (768, 0, "SD1.x"),
        (768, 768, "SD1.x"),
        (1024, 1024, "SD2.x"),
        (2048, 1280, "SDXL"),
        (4096, 768, "Flux"),
    ],
)
def test_other_families_conditioning_into_csds_is_an_error_naming_both(comfy, image_name, width, pooled, family):
    prefix = f"bad_family_{width}_{pooled}"
    g, _ = pipeline(
        image_name,
        prefix,
        positive_override=lambda g: g.node("EMSTestConditioning", width=width, pooled_width=pooled, tokens=77, seed=0)[
            0
        ],
    )
    msg = refused(comfy, g, prefix)
    assert CSDS in msg and family in msg and "SD3" in msg and "TripleCLIPLoader" in msg
    assert "addmm" not in msg and "cannot be multiplied" not in msg
    assert "an encoder with" not in msg  # CLIPTextEncode's SD1.x has a 768-wide pooled


def test_a_csds_latent_into_csds_is_an_error(comfy, image_name):
    g, _ = pipeline(image_name, "bad_double_csds", latent_from_csds=True)
    msg = refused(comfy, g, "bad_double_csds")
    assert CSDS in msg and "already carries noise" in msg and "VAE Encode" in msg


def test_the_good_pipeline_writes_its_image(comfy, image_name):
    # The same graph with valid inputs succeeds: the refusals above are about the inputs.
    g, _ = pipeline(image_name, "good_pipeline")
    comfy.run(g.prompt)
    assert len(images(comfy, "good_pipeline")) == 1


def test_identical_prompts_warn_on_the_node_and_in_history(comfy, image_name):
    g, enc = pipeline(image_name, "same_prompts", source=SOURCE, target=SOURCE)
    entry = comfy.run(g.prompt)
    text = "\n".join(entry["outputs"][enc.id]["text"])
    assert "EMS Encode Prompts" in text and "identical" in text and "will not edit anything" in text
    assert "will not edit anything" in comfy.log()


def test_both_alpha_nodes_give_the_same_safe_range_warning_in_history(comfy):
    g = Graph()
    _, clip, _ = tiny_sd3(g)
    src = g.node("CLIPTextEncode", clip=clip[0], text=SOURCE)
    tgt = g.node("CLIPTextEncode", clip=clip[0], text=TARGET)
    direction = g.node("EMSTextDirection", source=src[0], target=tgt[0], alpha=5.0, manipulate_pooled=True)
    sweep = g.node("EMSAlphaSweep", source=src[0], target=tgt[0], alphas="0, 5", manipulate_pooled=True)
    g.save(direction[0], "warn_direction")
    g.save(sweep[0], "warn_sweep")
    outputs = comfy.run(g.prompt)["outputs"]
    single, swept = "\n".join(outputs[direction.id]["text"]), "\n".join(outputs[sweep.id]["text"])
    assert "alpha 5 is outside -2 … 3" in single and "alpha 5 is outside -2 … 3" in swept
    assert single.split(": ", 1)[1] == swept.split("⚠ ", 1)[1].split(": ", 1)[1]  # one wording


def test_every_ems_float_widget_has_the_declared_range(comfy):
    """One validation layer. Each FLOAT input of each EMS node must be declared in
    ems/validation.py FLOAT_INPUTS, with the widget's min/max equal to the declared range."""
    from comfyui_ems.ems.validation import FLOAT_INPUTS

    info = comfy.object_info()
    seen = []
    for node_id, node in info.items():
        if not node_id.startswith("EMS") or node_id.startswith("EMSTest"):
            continue
        for section in ("required", "optional"):
            for name, spec in node["input"].get(section, {}).items():
                if spec[0] != "FLOAT":
                    continue
                declared = FLOAT_INPUTS.get(name)
                assert declared is not None, f"{node_id}.{name} is not declared in ems/validation.py"
                assert (spec[1]["min"], spec[1]["max"]) == (declared.lo, declared.hi), f"{node_id}.{name}"
                seen.append(f"{node_id}.{name}")
    assert "EMSCSDSLatentEdit.constraint" in seen and "EMSTextDirection.alpha" in seen


def test_nan_temperature_is_an_error_naming_extract_captions(comfy, image_name):
    """Refused before anything else, even on the offline path (typed overrides, no LLM call)."""
    g = Graph()
    caps = g.node(
        "EMSExtractCaptions",
        image=g.node("LoadImage", image=image_name)[0],
        instruction="make it red",
        provider="openai",
        model="gpt-4o",
        temperature=math.nan,
        seed=0,
        refresh=False,
        source_prompt=SOURCE,
        target_prompt=TARGET,
    )
    g.save(caps[0], "nan_temperature")
    with pytest.raises(ExecutionFailed) as e:
        comfy.run(g.prompt)
    assert "EMS Extract Captions" in e.value.message and "temperature" in e.value.message
    assert "finite" in e.value.message
