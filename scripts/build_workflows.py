"""Build the shipped example workflows (UI format) from the compact descriptions below.

    bash scripts/tool.sh -m scripts.build_workflows                            # starts a server
    python -m scripts.build_workflows --object-info object_info.json           # offline

Widget order and defaults come from the server's /object_info (see headless/uigraph.py), so
rerun this after changing a node's inputs. It also refreshes tests/unit/data/workflow_nodes.json,
the committed record of every node type the workflows use (the unit tier checks links against it
without ComfyUI).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from comfyui_ems.ems.alphas import DEFAULT_SWEEP
from comfyui_ems.ems.csds import DEFAULTS as CSDS_DEFAULTS
from comfyui_ems.ems.csds import PAPER, PAPER_DENOISE, PAPER_STEPS
from comfyui_ems.ems.flow_edit import DEFAULTS as FLOW_DEFAULTS
from comfyui_ems.toyworld.settings import TOY
from headless.uigraph import UIGraph
from headless.workflow import VIRTUAL_NODES

REPO = Path(__file__).resolve().parents[1]

WORKFLOW_DIR = REPO / "example_workflows"
NODE_RECORD = REPO / "tests" / "unit" / "data" / "workflow_nodes.json"

# The paper's schedule (ems/csds.py: PAPER_STEPS, PAPER_DENOISE, PAPER.cfg).
# (The paper states no CSDS iteration count; the CSDS values below are the node's measured defaults.)
CKPT = "sd3_medium_incl_clips_t5xxlfp8.safetensors"
# What the frontend shows for a missing model file (name, where to get it, which models/ folder),
# the way core templates carry it; the file is gated (accept the licence on its page first).
SD3_MODEL = {
    "name": CKPT,
    "url": f"https://huggingface.co/stabilityai/stable-diffusion-3-medium/resolve/main/{CKPT}",
    "directory": "checkpoints",
}
STEPS, DENOISE, CFG, SEED = PAPER_STEPS, PAPER_DENOISE, PAPER.cfg, 42
# The CSDS widget values are the node's declared defaults (ems/csds.py DEFAULTS, set by measurement),
# every one written into the graph (cfg is the graph's own, shared with the CFGGuider).
CSDS = {k: v for k, v in CSDS_DEFAULTS.items() if k != "cfg"}
NEGATIVE = "blurry, low quality, distorted"
# The typed captions of the offline graphs: identical but for the edited words.
SOURCE_CAPTION = "a photo of a woman in a black suit standing in a park"
TARGET_CAPTION = "a photo of a woman in a red suit standing in a park"

NOTE_MODEL = f"""### Model
This graph loads **SD3-medium with its text encoders in one file**
(`{CKPT}`, from the SD3-medium repository) with *Load Checkpoint*. Put it in
`ComfyUI/models/checkpoints/`.

Using separate files instead? Replace *Load Checkpoint* by **Load Diffusion Model**
(`sd3_medium.safetensors`) + **TripleCLIPLoader** (clip_g, clip_l, t5xxl) + **Load VAE**.
SD3.5 works the same way."""

NOTE_SIGMAS = f"""### One schedule for both halves
**BasicScheduler** (steps {STEPS}, denoise {DENOISE}) feeds the *same* SIGMAS to
**EMS CSDS Latent Edit** and **SamplerCustomAdvanced**: CSDS noises the image to the first sigma
and edits it there, the sampler continues from exactly that point.

The sampler's noise must be **DisableNoise** — the latent already carries its noise.
denoise < 1 is required (EMS edits a real image); lower denoise keeps more of the original."""

NOTE_CSDS = f"""### CSDS (image side)
- **drive** {CSDS["drive"]}: push toward the attribute prompt (the paper). `target_vs_source` pushes
  from the source caption toward the edited one instead (its `source` is already wired).
- **step_start → step_end** {CSDS["step_start"]:g} → {CSDS["step_end"]:g} in **{CSDS["step_units"]}** units:
  the share of the prompts' prediction difference each step moves the image, the same push at any
  denoise and cfg (the paper's 0.1 → 0.01 are `latent` units)
- **iterations** {CSDS["iterations"]} (0 = text-only edit); **constraint λ** {CSDS["constraint"]:g}:
  higher keeps the image closer to the original (paper: 0.1–1.0)
- **locality** {CSDS["locality"]:g} (off); **residual_space** {CSDS["residual_space"]}
- **cfg** should match the CFGGuider's cfg (7.5 in the paper).
Defaults measured in the toy world; the node's help page has the numbers."""

NOTE_ALPHA = """### α — how much to edit
0 = the source image, 1 = the full edit, 0.5 = half, > 1 exaggerates, < 0 reverses.
Roughly −2 … 3 is usable (our rule of thumb); far outside, the image breaks (the paper's
Prop. 1 says so but gives no number)."""

NOTE_LLM = """### Captions from an LLM
**EMS Extract Captions** asks a multimodal LLM for the source caption, the target caption
(same words except the edit) and the attribute phrase.

`provider` names a provider defined on the machine running ComfyUI — never a URL or a key:
`openai` (key in the environment variable `OPENAI_API_KEY`, set before starting ComfyUI) or
`ollama` (local, no key: `ollama pull qwen2.5vl`, then `model` = `qwen2.5vl`). More providers go
in `~/.config/ems/llm.json` (see the README, "API key setup").
Results are cached: re-queuing does not call the API again."""

NOTE_MANUAL = """### Fully offline
No LLM: type the two captions yourself. Keep them identical except for the words you edit —
that difference *is* the edit direction. The attribute prompt names the change ("red suit")."""


def load_and_encode(g: UIGraph, image: str = "example.png"):
    ckpt = g.node("CheckpointLoaderSimple", properties={"models": [SD3_MODEL]}, ckpt_name=CKPT)
    img = g.node("LoadImage", image=image)
    scaled = g.node("ImageScaleToTotalPixels", image=img[0], upscale_method="lanczos", megapixels=1.0)
    latent = g.node("VAEEncode", pixels=scaled[0], vae=ckpt[2])
    return ckpt, scaled, latent


def llm_captions(g: UIGraph, image, instruction: str):
    cap = g.node(
        "EMSExtractCaptions",
        image=image[0],
        instruction=instruction,
        provider="openai",
        model="gpt-4o",
        temperature=0.0,
        seed=0,
        refresh=False,
    )
    g.node("PreviewAny", title="Captions (source)", source=cap[0])
    g.node("PreviewAny", title="Captions (target)", source=cap[1])
    return cap


def typed_prompts(g: UIGraph, clip):
    """EMS Encode Prompts on the typed captions (no LLM): the suit edit."""
    return g.node(
        "EMSEncodePrompts",
        clip=clip,
        source_prompt=SOURCE_CAPTION,
        target_prompt=TARGET_CAPTION,
        attribute_prompt="red suit",
        negative_prompt=NEGATIVE,
    )


def csds_and_sample(g: UIGraph, ckpt, positive, enc, latent, sched, seed=SEED, cfg=CFG):
    edit = g.node(
        "EMSCSDSLatentEdit",
        model=ckpt[0],
        positive=positive,
        attribute=enc[2],
        negative=enc[3],
        latent_image=latent[0],
        sigmas=sched[0],
        noise_seed=seed,
        cfg=cfg,
        **CSDS,
        source=enc[0],
    )
    guider = g.node("CFGGuider", model=ckpt[0], positive=positive, negative=enc[3], cfg=cfg)
    sampler = g.node("KSamplerSelect", sampler_name="euler")
    noise = g.node("DisableNoise")
    out = g.node(
        "SamplerCustomAdvanced",
        noise=noise[0],
        guider=guider[0],
        sampler=sampler[0],
        sigmas=sched[0],
        latent_image=edit[0],
    )
    return g.node("VAEDecode", samples=out[0], vae=ckpt[2])


def scheduler(g: UIGraph, ckpt, denoise: float = DENOISE):
    return g.node("BasicScheduler", model=ckpt[0], scheduler="simple", steps=STEPS, denoise=denoise)


def save_grid(g: UIGraph, decoded, labels, name: str):
    """An α batch as one labelled grid, saved as ``ems/<name>``."""
    grid = g.node("EMSLabelledGrid", images=decoded[0], labels=labels, columns=0)
    g.node("SaveImage", images=grid[0], filename_prefix=f"ems/{name}")


def save_sweep(g: UIGraph, decoded, labels, prefix: str = ""):
    """An α batch saved tile by tile (``ems/<prefix>sweep``) and as a labelled grid (``ems/<prefix>grid``)."""
    g.node("SaveImage", images=decoded[0], filename_prefix=f"ems/{prefix}sweep")
    save_grid(g, decoded, labels, f"{prefix}grid")


def full_edit(g: UIGraph):
    g.note(NOTE_MODEL, column=0)
    g.note(NOTE_LLM, column=1)
    g.note(NOTE_ALPHA, column=3)
    g.note(NOTE_SIGMAS, column=4)
    g.note(NOTE_CSDS, column=5)
    ckpt, scaled, latent = load_and_encode(g)
    cap = llm_captions(g, scaled, "make the suit red")
    enc = g.node(
        "EMSEncodePrompts",
        clip=ckpt[1],
        source_prompt=cap[0],
        target_prompt=cap[1],
        attribute_prompt=cap[2],
        negative_prompt=NEGATIVE,
    )
    direction = g.node("EMSTextDirection", source=enc[0], target=enc[1], alpha=1.0, manipulate_pooled=True)
    decoded = csds_and_sample(g, ckpt, direction[0], enc, latent, scheduler(g, ckpt))
    g.node("SaveImage", images=decoded[0], filename_prefix="ems/edit")


def alpha_sweep(g: UIGraph):
    g.note(NOTE_MODEL, column=0)
    g.note(NOTE_LLM, column=1)
    g.note(
        NOTE_ALPHA + "\n\n**EMS Alpha Sweep** renders every α in one batch with the same noise, "
        "so the images differ only by α. `start:stop:count` also works (`0:1.5:7`).",
        column=3,
    )
    g.note(NOTE_SIGMAS, column=4)
    g.note(
        "### Labelled grid\n**EMS Labelled Grid** writes each tile's α under it (from the "
        "sweep's `labels`). The single edits are saved too.",
        column=7,
    )
    ckpt, scaled, latent = load_and_encode(g)
    cap = llm_captions(g, scaled, "make the suit red")
    enc = g.node(
        "EMSEncodePrompts",
        clip=ckpt[1],
        source_prompt=cap[0],
        target_prompt=cap[1],
        attribute_prompt=cap[2],
        negative_prompt=NEGATIVE,
    )
    sweep = g.node(
        "EMSAlphaSweep", source=enc[0], target=enc[1], alphas="0, 0.25, 0.5, 0.75, 1, 1.25", manipulate_pooled=True
    )
    decoded = csds_and_sample(g, ckpt, sweep[0], enc, latent, scheduler(g, ckpt))
    save_sweep(g, decoded, sweep[2])


def text_only(g: UIGraph):
    g.note(NOTE_MODEL, column=0)
    g.note(NOTE_LLM, column=1)
    g.note(
        "### Ablation: text side only\nNo CSDS: plain img2img (**KSampler**, denoise "
        f"{DENOISE}) conditioned on the EMS text direction. Compare with *05 Full EMS edit, LLM captions (SD3 + LLM)*: the paper "
        "reports that without CSDS the edit is weaker and the image drifts more "
        "(PSNR 20.2 vs 20.8, CLIP 31.2 vs 34.3).",
        column=4,
    )
    ckpt, scaled, latent = load_and_encode(g)
    cap = llm_captions(g, scaled, "make the suit red")
    enc = g.node(
        "EMSEncodePrompts",
        clip=ckpt[1],
        source_prompt=cap[0],
        target_prompt=cap[1],
        attribute_prompt=cap[2],
        negative_prompt=NEGATIVE,
    )
    direction = g.node("EMSTextDirection", source=enc[0], target=enc[1], alpha=1.0, manipulate_pooled=True)
    out = g.node(
        "KSampler",
        model=ckpt[0],
        seed=SEED,
        steps=STEPS,
        cfg=CFG,
        sampler_name="euler",
        scheduler="simple",
        positive=direction[0],
        negative=enc[3],
        latent_image=latent[0],
        denoise=DENOISE,
    )
    decoded = g.node("VAEDecode", samples=out[0], vae=ckpt[2])
    g.node("SaveImage", images=decoded[0], filename_prefix="ems/text_only")


def manual_prompts(g: UIGraph):
    g.note(NOTE_MODEL, column=0)
    g.note(NOTE_MANUAL, column=1)
    g.note(NOTE_SIGMAS, column=3)
    g.note(NOTE_CSDS, column=4)
    ckpt, _, latent = load_and_encode(g)
    enc = typed_prompts(g, ckpt[1])
    direction = g.node("EMSTextDirection", source=enc[0], target=enc[1], alpha=1.0, manipulate_pooled=True)
    decoded = csds_and_sample(g, ckpt, direction[0], enc, latent, scheduler(g, ckpt))
    g.node("SaveImage", images=decoded[0], filename_prefix="ems/manual")


def multi_attribute(g: UIGraph):
    g.note(NOTE_MODEL, column=0)
    g.note(
        "### Two edits at once\nEach **EMS Encode Prompts** pair describes one change from the same "
        "source caption. The second **EMS Text Direction** starts from the first one's output "
        "(`base`): c = c0 + α1(c1 − c0) + α2(c2 − c0) — the paper's C0 + Λ(C1 − C0).\n\n"
        "Keep the captions short enough to stay in one CLIP chunk so both pairs have the same token "
        "length (the node tells you if they don't).",
        column=1,
    )
    g.note(
        "### Attribute for CSDS\nThe first pair's attribute prompt names **both** changes, so CSDS pushes toward both.",
        column=4,
    )
    ckpt, _, latent = load_and_encode(g)
    source = SOURCE_CAPTION
    first = g.node(
        "EMSEncodePrompts",
        title="EMS Encode Prompts (suit colour)",
        clip=ckpt[1],
        source_prompt=source,
        target_prompt=TARGET_CAPTION,
        attribute_prompt="red suit, sunglasses",
        negative_prompt=NEGATIVE,
    )
    second = g.node(
        "EMSEncodePrompts",
        title="EMS Encode Prompts (sunglasses)",
        clip=ckpt[1],
        source_prompt=source,
        target_prompt="a photo of a woman in a black suit wearing sunglasses standing in a park",
        attribute_prompt="sunglasses",
        negative_prompt=NEGATIVE,
    )
    d1 = g.node(
        "EMSTextDirection",
        title="EMS Text Direction (α1: red)",
        source=first[0],
        target=first[1],
        alpha=1.0,
        manipulate_pooled=True,
    )
    d2 = g.node(
        "EMSTextDirection",
        title="EMS Text Direction (α2: sunglasses)",
        source=second[0],
        target=second[1],
        alpha=0.8,
        manipulate_pooled=True,
        base=d1[0],
    )
    decoded = csds_and_sample(g, ckpt, d2[0], first, latent, scheduler(g, ckpt))
    g.node("SaveImage", images=decoded[0], filename_prefix="ems/multi")


def bidirectional(g: UIGraph):
    g.note(NOTE_MODEL, column=0)
    g.note(
        "### Both directions\nNegative α applies the **opposite** edit (younger instead of older), "
        "positive α the edit itself — one sweep from −1 to 1.5.\n\nThis graph is text-only "
        "(KSampler img2img): CSDS pushes toward one attribute, which fights a negative α. For a "
        "CSDS version use one direction per run.",
        column=1,
    )
    g.note(NOTE_ALPHA, column=3)
    ckpt, _, latent = load_and_encode(g)
    enc = g.node(
        "EMSEncodePrompts",
        clip=ckpt[1],
        source_prompt="a portrait photo of a man",
        target_prompt="a portrait photo of an old man",
        attribute_prompt="old man",
        negative_prompt=NEGATIVE,
    )
    sweep = g.node(
        "EMSAlphaSweep", source=enc[0], target=enc[1], alphas="-1:1.5:6", manipulate_pooled=True, latent_image=latent[0]
    )
    out = g.node(
        "KSampler",
        model=ckpt[0],
        seed=SEED,
        steps=STEPS,
        cfg=CFG,
        sampler_name="euler",
        scheduler="simple",
        positive=sweep[0],
        negative=enc[3],
        latent_image=sweep[1],
        denoise=DENOISE,
    )
    decoded = g.node("VAEDecode", samples=out[0], vae=ckpt[2])
    save_grid(g, decoded, sweep[2], "bidirectional_grid")


NOTE_LATENT_MODES = """### linear or svd
- **linear**: latent + α(b − a) — moves content, layout and colour toward b.
- **svd**: only the singular values of the latent change by the a → b change of the pair's
  spectrum; the image keeps its own singular vectors (its structure). Our reading of
  arXiv 2502.02225 — see the node's help page for what is the paper's and what is ours.

α = 0 returns the latent unchanged, in both modes."""


def same_size(g: UIGraph, like, title: str, image: str = "example.png"):
    """Load an image and scale it to exactly the size of ``like`` (latents must match)."""
    size = g.node("GetImageSize", image=like[0])
    img = g.node("LoadImage", title=title, image=image)
    return g.node("ImageScale", image=img[0], upscale_method="lanczos", width=size[0], height=size[1], crop="center")


def latent_reference(g: UIGraph):
    g.note(NOTE_MODEL, column=0)
    g.note(
        "### Edit toward a reference photo\nPick **your image** in the first *Load Image* and the "
        "**reference photo** in *Load Image (reference photo)*; it is scaled to your image's size.\n\n"
        "**EMS Latent Direction** with `reference_a` = your image and `reference_b` = the reference: "
        "linear α = 1 *is* the reference, α = 0.3 a 30 % step toward it (the EMS paper's Fig. 3b, on "
        "clean latents).",
        column=1,
    )
    g.note(NOTE_LATENT_MODES, column=2)
    g.note(
        "### Sweep and re-render\n`alphas` renders several strengths in one batch with the same noise; "
        "clear it to use the single `alpha`.\n\nThe **KSampler** (denoise 0.55) turns the moved latent "
        "back into a clean image: lower keeps the blend literal, higher lets the model reinterpret it.",
        column=4,
    )
    ckpt, scaled, latent = load_and_encode(g)
    ref = same_size(g, scaled, "Load Image (reference photo)")
    ref_latent = g.node("VAEEncode", pixels=ref[0], vae=ckpt[2])
    moved = g.node(
        "EMSLatentDirection",
        latent=latent[0],
        reference_a=latent[0],
        reference_b=ref_latent[0],
        alpha=0.5,
        mode="linear",
        axes="per_channel",
        rank=0,
        spectrum="shift",
        alphas="0, 0.25, 0.5, 0.75",
    )
    pos = g.node("CLIPTextEncode", title="Prompt (what the result shows)", clip=ckpt[1], text="a photo")
    neg = g.node("CLIPTextEncode", title="Negative", clip=ckpt[1], text=NEGATIVE)
    out = g.node(
        "KSampler",
        model=ckpt[0],
        seed=SEED,
        steps=STEPS,
        cfg=CFG,
        sampler_name="euler",
        scheduler="simple",
        positive=pos[0],
        negative=neg[0],
        latent_image=moved[0],
        denoise=0.55,
    )
    decoded = g.node("VAEDecode", samples=out[0], vae=ckpt[2])
    save_grid(g, decoded, moved[1], "latent_reference_grid")


def latent_prompt_pair(g: UIGraph):
    g.note(NOTE_MODEL, column=0)
    g.note(
        "### Attribute from a prompt pair\nTwo images are generated **with the same seed** from "
        '"a portrait photo of a man" and "… wearing glasses": their latents differ (mostly) by the '
        "attribute. **EMS Latent Direction** applies that difference to *your* image — the second seed "
        "paper's setting (one pair of latents from two prompts, arXiv 2502.02225).\n\nKeep the two "
        "prompts identical except for the attribute.",
        column=1,
    )
    g.note(NOTE_LATENT_MODES, column=3)
    g.note(
        "### Re-render\nThe last **KSampler** (denoise 0.6, the *with* prompt) turns the edited latent "
        "into a clean image. Raise α or denoise if the attribute is too weak, lower them if your image "
        "drifts.",
        column=5,
    )
    ckpt, scaled, latent = load_and_encode(g)
    size = g.node("GetImageSize", image=scaled[0])
    empty = g.node("EmptySD3LatentImage", width=size[0], height=size[1], batch_size=1)
    without = g.node("CLIPTextEncode", title="Prompt a (without)", clip=ckpt[1], text="a portrait photo of a man")
    with_ = g.node(
        "CLIPTextEncode",
        title="Prompt b (with the attribute)",
        clip=ckpt[1],
        text="a portrait photo of a man wearing glasses",
    )
    neg = g.node("CLIPTextEncode", title="Negative", clip=ckpt[1], text=NEGATIVE)
    pair = []
    for name, prompt in (("a", without), ("b", with_)):
        k = g.node(
            "KSampler",
            title=f"KSampler (reference {name}, same seed)",
            model=ckpt[0],
            seed=SEED,
            steps=STEPS,
            cfg=CFG,
            sampler_name="euler",
            scheduler="simple",
            positive=prompt[0],
            negative=neg[0],
            latent_image=empty[0],
            denoise=1.0,
        )
        g.node("PreviewImage", title=f"Reference {name}", images=g.node("VAEDecode", samples=k[0], vae=ckpt[2])[0])
        pair.append(k)
    moved = g.node(
        "EMSLatentDirection",
        latent=latent[0],
        reference_a=pair[0][0],
        reference_b=pair[1][0],
        alpha=1.0,
        mode="linear",
        axes="per_channel",
        rank=0,
        spectrum="shift",
        alphas="",
    )
    out = g.node(
        "KSampler",
        model=ckpt[0],
        seed=SEED,
        steps=STEPS,
        cfg=CFG,
        sampler_name="euler",
        scheduler="simple",
        positive=with_[0],
        negative=neg[0],
        latent_image=moved[0],
        denoise=0.6,
    )
    decoded = g.node("VAEDecode", samples=out[0], vae=ckpt[2])
    g.node("SaveImage", images=decoded[0], filename_prefix="ems/latent_prompt_pair")


# EMS Flow Edit on SD3: FlowEdit's published SD3 schedule (33 of 50 steps ≈ denoise 0.66); the CFG pair
# is the node's declared default (ems/flow_edit.py).

FLOW_DENOISE = 0.66
FLOW = {k: FLOW_DEFAULTS[k] for k in ("cfg", "source_cfg", "noise_average", "locality", "drive")}

NOTE_FLOW = f"""### EMS Flow Edit — α = 0 is your picture
**EMS Flow Edit** edits the clean latent itself: no re-generation, so what the two captions agree
on stays where it is, and α = 0 returns your image exactly. It needs no DisableNoise and no second
sampler: clean latent in, clean latent out → VAE Decode.

- **denoise** (BasicScheduler) {FLOW_DENOISE}: how far back the edit may reach. Higher allows larger
  changes (shape, count), lower keeps more.
- **cfg** {FLOW["cfg"]:g} / **source_cfg** {FLOW["source_cfg"]:g}: target and source guidance
  (FlowEdit's SD3 pair). The target scale grows with |α| from source_cfg, so small α are gentle.
- **noise_average**, **locality**, **drive**: see the node's help page (defaults measured in the toy world)."""

NOTE_FLOW_CAPTIONS = """### The two captions
Type the source caption (what the photo shows) and the target caption — identical except for
the words you edit. Their difference *is* the edit; EMS Flow Edit moves only that.
The attribute prompt is not used by EMS Flow Edit (it is CSDS's)."""


def flow_edit_tail(g: UIGraph, model, vae, positive, enc, latent, sched, seed=SEED, flow=None, source=None):
    """EMS Flow Edit (source: ``enc``'s, unless given) and its decode."""
    edit = g.node(
        "EMSFlowEdit",
        model=model,
        source=enc[0] if source is None else source,
        positive=positive,
        negative=enc[3],
        latent_image=latent[0],
        sigmas=sched[0],
        noise_seed=seed,
        **(flow or FLOW),
    )
    return g.node("VAEDecode", samples=edit[0], vae=vae)


def flow_edit(g: UIGraph):
    g.note(NOTE_MODEL, column=0)
    g.note(NOTE_FLOW_CAPTIONS, column=1)
    g.note(NOTE_ALPHA, column=3)
    g.note(NOTE_FLOW, column=4)
    ckpt, _, latent = load_and_encode(g)
    enc = typed_prompts(g, ckpt[1])
    direction = g.node("EMSTextDirection", source=enc[0], target=enc[1], alpha=1.0, manipulate_pooled=True)
    sched = scheduler(g, ckpt, FLOW_DENOISE)
    decoded = flow_edit_tail(g, ckpt[0], ckpt[2], direction[0], enc, latent, sched)
    g.node("SaveImage", images=decoded[0], filename_prefix="ems/flow_edit")


def flow_edit_sweep(g: UIGraph):
    g.note(NOTE_MODEL, column=0)
    g.note(NOTE_FLOW_CAPTIONS, column=1)
    g.note(
        NOTE_ALPHA + "\n\n**EMS Alpha Sweep** renders every α in one batch; item i equals the single "
        "edit at α_i, and α = 0 is your image exactly.",
        column=3,
    )
    g.note(NOTE_FLOW, column=4)
    ckpt, _, latent = load_and_encode(g)
    enc = typed_prompts(g, ckpt[1])
    sweep = g.node("EMSAlphaSweep", source=enc[0], target=enc[1], alphas=DEFAULT_SWEEP, manipulate_pooled=True)
    sched = scheduler(g, ckpt, FLOW_DENOISE)
    decoded = flow_edit_tail(g, ckpt[0], ckpt[2], sweep[0], enc, latent, sched)
    save_sweep(g, decoded, sweep[2], "flow_")


# The toy world's measured settings (toyworld/settings.py): TOY. Both toy templates edit the same
# drawn scene (two large red circles) to blue.
TOY_SOURCE = "two large red circles on a white background"
TOY_TARGET = "two large blue circles on a white background"
TOY_ATTRIBUTE = "blue circles"
# The CSDS template runs on toy world v3, the SD3 toy trained further on partial captions: it reads
# attribute prompts such as CSDS's "blue circles". The EMS Flow Edit template (no attribute prompt)
# stays on the first SD3 toy, where its settings were measured; on v3 one of its tiles reads as
# a square.
TOY_FAMILY_CSDS, TOY_FAMILY_FLOW = "SD3 v3", "SD3"

NOTE_TOY = (
    "### Toy world — nothing to download\n**EMS Toy World Loader (dev)** is a small model of SD3's "
    "architecture trained on drawn scenes; **EMS Toy Scene (dev)** draws the scene to edit (64×64). "
    'Prompts follow the toy grammar: "two large red circles on a white background".\n\n'
    "Its *family* widget picks the toy: SD3 (the first), SD3 v3 (trained further on partial "
    'captions, so it reads short prompts like "blue circles"), Flux (the first toy in Flux\'s '
    "architecture: same scenes, grammar and settings).\n\n"
    "A toy, not SD3: use it to see what the method does, then swap in *Load Checkpoint* (and the SD3 "
    "settings of the matching SD3 template)."
)


def toy_scene_and_prompts(g: UIGraph, family: str):
    toy = g.node("EMSToyWorldLoader", family=family)
    scene = g.node(
        "EMSToyScene", colour="red", shape="circle", count="2", size="large", background="white", layout=2_000_007
    )
    latent = g.node("VAEEncode", pixels=scene[0], vae=toy[2])
    enc = g.node(
        "EMSEncodePrompts",
        clip=toy[1],
        source_prompt=TOY_SOURCE,
        target_prompt=TOY_TARGET,
        attribute_prompt=TOY_ATTRIBUTE,
        negative_prompt="",
    )
    return toy, scene, latent, enc


def toy_alpha_sweep(g: UIGraph):
    g.note(NOTE_TOY, column=0)
    g.note(NOTE_MANUAL, column=1)
    g.note(
        NOTE_ALPHA + "\n\n**EMS Alpha Sweep** renders every α in one batch with the same noise, "
        "so the tiles differ only by α.",
        column=3,
    )
    g.note(
        f"### The paper's pipeline, toy settings\n**EMS CSDS Latent Edit** pushes the noised latent toward "
        f"the attribute, then **SamplerCustomAdvanced** finishes from the *same* SIGMAS with **DisableNoise**. "
        f"Measured for this toy model: {TOY.steps} steps at denoise {TOY.denoise:g}, cfg {TOY.cfg:g} "
        "(SD3's 0.75 / 7.5 give blank or noisy toy tiles), no negative prompt, the node's CSDS defaults.\n\n"
        "α = 0 is img2img with the source caption: the scene redrawn a little. For α = 0 = the scene "
        "exactly, see *EMS Flow Edit sweep (toy world)*.",
        column=5,
    )
    toy, _, latent, enc = toy_scene_and_prompts(g, TOY_FAMILY_CSDS)
    sweep = g.node("EMSAlphaSweep", source=enc[0], target=enc[1], alphas=DEFAULT_SWEEP, manipulate_pooled=True)
    sched = g.node("BasicScheduler", model=toy[0], scheduler="simple", steps=TOY.steps, denoise=TOY.denoise)
    decoded = csds_and_sample(g, toy, sweep[0], enc, latent, sched, seed=TOY.seed, cfg=TOY.cfg)
    save_sweep(g, decoded, sweep[2], "toy_")


def toy_flow_edit_sweep(g: UIGraph):
    g.note(NOTE_TOY, column=0)
    g.note(NOTE_FLOW_CAPTIONS, column=1)
    g.note(
        f"### Toy settings\nMeasured for this toy model: {TOY.steps} steps at denoise {TOY.flow_denoise:g}, "
        f"cfg {TOY.flow_cfg:g} / source_cfg {TOY.flow_source_cfg:g}, no negative prompt. α = 0 is the drawn "
        "scene after the toy VAE's round trip, exactly.",
        column=4,
    )
    toy, _, latent, enc = toy_scene_and_prompts(g, TOY_FAMILY_FLOW)
    sweep = g.node("EMSAlphaSweep", source=enc[0], target=enc[1], alphas=DEFAULT_SWEEP, manipulate_pooled=True)
    sched = g.node("BasicScheduler", model=toy[0], scheduler="simple", steps=TOY.steps, denoise=TOY.flow_denoise)
    flow = dict(
        FLOW,
        cfg=TOY.flow_cfg,
        source_cfg=TOY.flow_source_cfg,
        noise_average=TOY.flow_noise_average,
        locality=TOY.flow_locality,
        drive=TOY.flow_drive,
    )
    decoded = flow_edit_tail(g, toy[0], toy[2], sweep[0], enc, latent, sched, seed=TOY.seed, flow=flow)
    save_sweep(g, decoded, sweep[2], "toy_flow_")


# -- Other model families -----------------------------------------------------------------------
# The same EMS graphs on the families people run. Their settings are starting points, not measured:
# no weights of these models can be had where this pack is built (they are verified on tiny
# random-weight models of each family: tests/integration/test_families.py).
HF = "https://huggingface.co"


def model_file(name: str, repo_path: str, directory: str) -> dict:
    return {"name": name, "url": f"{HF}/{repo_path}/{name}", "directory": directory}


def file_loader(g: UIGraph, class_type: str, files: list[dict], **values):
    return g.node(class_type, properties={"models": files}, **values)


def typed_family_prompts(g: UIGraph, clip, negative: str = NEGATIVE):
    return g.node(
        "EMSEncodePrompts",
        clip=clip,
        source_prompt=SOURCE_CAPTION,
        target_prompt=TARGET_CAPTION,
        attribute_prompt="red suit",
        negative_prompt=negative,
    )


def image_latent(g: UIGraph, vae):
    img = g.node("LoadImage", image="example.png")
    scaled = g.node("ImageScaleToTotalPixels", image=img[0], upscale_method="lanczos", megapixels=1.0)
    return g.node("VAEEncode", pixels=scaled[0], vae=vae)


def family_flow_grid(g: UIGraph, model, clip, vae, steps: int, denoise: float, flow: dict, prefix: str, guidance=None):
    latent = image_latent(g, vae)
    enc = typed_family_prompts(g, clip, negative="" if guidance is not None else NEGATIVE)
    sweep = g.node("EMSAlphaSweep", source=enc[0], target=enc[1], alphas=DEFAULT_SWEEP, manipulate_pooled=True)
    source, positive = enc[0], sweep[0]
    if guidance is not None:  # Flux: the distilled guidance, the same on both sides of the edit
        source = g.node("FluxGuidance", title="FluxGuidance (source)", conditioning=enc[0], guidance=guidance)[0]
        positive = g.node("FluxGuidance", title="FluxGuidance (edit)", conditioning=sweep[0], guidance=guidance)[0]
    sched = g.node("BasicScheduler", model=model, scheduler="simple", steps=steps, denoise=denoise)
    decoded = flow_edit_tail(g, model, vae, positive, enc, latent, sched, flow=flow, source=source)
    save_grid(g, decoded, sweep[2], f"{prefix}_grid")


NOTE_FAMILY = """### Not measured on this model
The pack is verified on every family with tiny random-weight models (exact α = 0 / 1, sweep = single
runs, one batched model call per step) and measured only in its toy world. These settings are
starting points: sweep α and try a few denoise values on your own images."""


def sd35_flow_grid(g: UIGraph):
    text_encoders = "Comfy-Org/stable-diffusion-3.5-fp8/resolve/main/text_encoders"
    g.note(
        "### SD3.5 Large\nFiles: `sd3.5_large.safetensors` (Stability AI, gated: accept the licence on its page) in "
        "`models/checkpoints`; `clip_l`, `clip_g` and `t5xxl_fp16` in `models/text_encoders`. SD3.5 Medium: the "
        "same graph with `sd3.5_medium.safetensors`.\n\nSD3's EMS Flow Edit settings (FlowEdit's SD3 pair).",
        column=0,
    )
    g.note(NOTE_FAMILY, column=1)
    ckpt = file_loader(
        g,
        "CheckpointLoaderSimple",
        [model_file("sd3.5_large.safetensors", "stabilityai/stable-diffusion-3.5-large/resolve/main", "checkpoints")],
        ckpt_name="sd3.5_large.safetensors",
    )
    clip = file_loader(
        g,
        "TripleCLIPLoader",
        [
            model_file(n, text_encoders, "text_encoders")
            for n in ("clip_l.safetensors", "clip_g.safetensors", "t5xxl_fp16.safetensors")
        ],
        clip_name1="clip_l.safetensors",
        clip_name2="clip_g.safetensors",
        clip_name3="t5xxl_fp16.safetensors",
    )
    family_flow_grid(g, ckpt[0], clip[0], ckpt[2], STEPS, FLOW_DENOISE, FLOW, "sd35_flow")


def flux_flow_grid(g: UIGraph):
    g.note(
        "### Flux.1 dev\nFiles: `flux1-dev.safetensors` (Black Forest Labs, gated) in `models/diffusion_models`, "
        "`clip_l` and `t5xxl_fp16` in `models/text_encoders`, `ae.safetensors` in `models/vae`.\n\n"
        "**Guidance-distilled**: Flux.1 dev takes its guidance as a number on the conditioning (FluxGuidance), "
        "not as classifier-free guidance. So EMS Flow Edit runs with cfg 1 and source_cfg 1 (no negative "
        "branch: one model call per point, half of CFG's) and the *same* FluxGuidance on the source and the "
        "edit, so that the edit comes from the text direction alone (α = 0 is your image exactly either way). "
        "Flux.1 schnell: the same graph with `flux1-schnell.safetensors`, 4 steps.",
        column=0,
    )
    g.note(NOTE_FAMILY, column=1)
    unet = file_loader(
        g,
        "UNETLoader",
        [model_file("flux1-dev.safetensors", "black-forest-labs/FLUX.1-dev/resolve/main", "diffusion_models")],
        unet_name="flux1-dev.safetensors",
        weight_dtype="default",
    )
    encoders = "comfyanonymous/flux_text_encoders/resolve/main"
    clip = file_loader(
        g,
        "DualCLIPLoader",
        [model_file(n, encoders, "text_encoders") for n in ("clip_l.safetensors", "t5xxl_fp16.safetensors")],
        clip_name1="clip_l.safetensors",
        clip_name2="t5xxl_fp16.safetensors",
        type="flux",
    )
    vae = file_loader(
        g,
        "VAELoader",
        [model_file("ae.safetensors", "black-forest-labs/FLUX.1-dev/resolve/main", "vae")],
        vae_name="ae.safetensors",
    )
    flow = dict(FLOW, cfg=1.0, source_cfg=1.0)
    family_flow_grid(g, unet[0], clip[0], vae[0], 28, 0.75, flow, "flux_flow", guidance=3.5)


def qwen_flow_grid(g: UIGraph):
    repo = "Comfy-Org/Qwen-Image_ComfyUI/resolve/main/split_files"
    g.note(
        "### Qwen-Image\nFiles (Comfy-Org's repackaging): `qwen_image_fp8_e4m3fn.safetensors` in "
        "`models/diffusion_models`, `qwen_2.5_vl_7b_fp8_scaled.safetensors` in `models/text_encoders`, "
        "`qwen_image_vae.safetensors` in `models/vae`.\n\nQwen-Image uses real classifier-free guidance, so "
        "EMS Flow Edit keeps a target / source pair (4 / 1.5 here, our starting point). Its latents are single "
        "video-style frames; every EMS node takes them.",
        column=0,
    )
    g.note(NOTE_FAMILY, column=1)
    unet = file_loader(
        g,
        "UNETLoader",
        [model_file("qwen_image_fp8_e4m3fn.safetensors", f"{repo}/diffusion_models", "diffusion_models")],
        unet_name="qwen_image_fp8_e4m3fn.safetensors",
        weight_dtype="default",
    )
    clip = file_loader(
        g,
        "CLIPLoader",
        [model_file("qwen_2.5_vl_7b_fp8_scaled.safetensors", f"{repo}/text_encoders", "text_encoders")],
        clip_name="qwen_2.5_vl_7b_fp8_scaled.safetensors",
        type="qwen_image",
    )
    vae = file_loader(
        g,
        "VAELoader",
        [model_file("qwen_image_vae.safetensors", f"{repo}/vae", "vae")],
        vae_name="qwen_image_vae.safetensors",
    )
    flow = dict(FLOW, cfg=4.0, source_cfg=1.5)
    family_flow_grid(g, unet[0], clip[0], vae[0], 30, FLOW_DENOISE, flow, "qwen_flow")


def sdxl_csds_grid(g: UIGraph):
    g.note(
        "### SDXL\nFile: `sd_xl_base_1.0.safetensors` (Stability AI) in `models/checkpoints`.\n\nSDXL predicts "
        "noise (ε), not a flow, so EMS Flow Edit does not apply (it refuses SDXL); this is the paper's "
        "pipeline instead: text direction + CSDS + sampler, with the same SIGMAS for both halves and "
        "DisableNoise. CSDS runs on ε models with `residual_space` noise.",
        column=0,
    )
    g.note(NOTE_FAMILY, column=1)
    g.note(NOTE_SIGMAS, column=4)
    ckpt = file_loader(
        g,
        "CheckpointLoaderSimple",
        [
            model_file(
                "sd_xl_base_1.0.safetensors", "stabilityai/stable-diffusion-xl-base-1.0/resolve/main", "checkpoints"
            )
        ],
        ckpt_name="sd_xl_base_1.0.safetensors",
    )
    latent = image_latent(g, ckpt[2])
    enc = typed_family_prompts(g, ckpt[1])
    sweep = g.node("EMSAlphaSweep", source=enc[0], target=enc[1], alphas=DEFAULT_SWEEP, manipulate_pooled=True)
    sched = g.node("BasicScheduler", model=ckpt[0], scheduler="karras", steps=30, denoise=0.6)
    decoded = csds_and_sample(g, ckpt, sweep[0], enc, latent, sched, cfg=7.0)
    save_grid(g, decoded, sweep[2], "sdxl_csds_grid")


# The file name is the title the template browser shows (ComfyUI reads no other), and its number the order
# (the frontend's alphabetical sort; the backend lists in file-system order).
WORKFLOWS = {
    "13 EMS Flow Edit alpha grid on SD3.5 Large (SD3.5)": sd35_flow_grid,
    "14 EMS Flow Edit alpha grid on Flux.1 dev (Flux)": flux_flow_grid,
    "15 EMS Flow Edit alpha grid on Qwen-Image (Qwen-Image)": qwen_flow_grid,
    "16 Full EMS alpha grid on SDXL, CSDS (SDXL)": sdxl_csds_grid,
    "01 Toy world, EMS Flow Edit alpha grid (nothing to download)": toy_flow_edit_sweep,
    "02 Toy world, full EMS method alpha grid (nothing to download)": toy_alpha_sweep,
    "03 EMS Flow Edit, typed captions (SD3)": flow_edit,
    "04 EMS Flow Edit alpha grid, typed captions (SD3)": flow_edit_sweep,
    "05 Full EMS edit, LLM captions (SD3 + LLM)": full_edit,
    "06 Full EMS alpha grid, LLM captions (SD3 + LLM)": alpha_sweep,
    "07 Full EMS edit, typed captions (SD3)": manual_prompts,
    "08 Two edits at once, typed captions (SD3)": multi_attribute,
    "09 An edit and its opposite, text side only (SD3)": bidirectional,
    "10 Ablation, text side only, LLM captions (SD3 + LLM)": text_only,
    "11 Latent edit toward a reference photo (SD3)": latent_reference,
    "12 Latent edit from a prompt pair (SD3)": latent_prompt_pair,
}


def build(object_info: dict, out_dir: Path = WORKFLOW_DIR) -> dict[str, dict]:
    out_dir.mkdir(parents=True, exist_ok=True)
    built, used = {}, set()
    for name, describe in WORKFLOWS.items():
        g = UIGraph(object_info)
        describe(g)
        ui = g.to_ui()
        (out_dir / f"{name}.json").write_text(json.dumps(ui, indent=1, ensure_ascii=False) + "\n")
        built[name] = ui
        used |= {n["type"] for n in ui["nodes"]} - VIRTUAL_NODES
    record = {
        t: {
            "inputs": {
                k: (v[0] if isinstance(v[0], str) else "COMBO")
                for s in ("required", "optional")
                for k, v in object_info[t]["input"].get(s, {}).items()
            },
            "outputs": object_info[t]["output"],
        }
        for t in sorted(used)
    }
    NODE_RECORD.parent.mkdir(parents=True, exist_ok=True)
    NODE_RECORD.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return built


def server_object_info() -> dict:
    from headless.comfy_process import ComfyServer, prepare_base

    comfy = os.environ.get("COMFYUI_DIR")
    if not comfy:
        sys.exit("set COMFYUI_DIR to a ComfyUI checkout (or pass --object-info FILE)")
    with tempfile.TemporaryDirectory(prefix="ems-build-") as tmp, ComfyServer(comfy, prepare_base(Path(tmp))) as s:
        return s.object_info()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--object-info", type=Path, help="a saved /object_info JSON instead of starting ComfyUI")
    args = ap.parse_args()
    info = json.loads(args.object_info.read_text()) if args.object_info else server_object_info()
    for name in build(info):
        print(f"wrote {WORKFLOW_DIR.relative_to(REPO)}/{name}.json")


if __name__ == "__main__":
    main()
