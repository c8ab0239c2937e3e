"""The editing methods the toy-world evaluation compares, each as the ComfyUI graph runs it.

Every method takes one edit case (its clean source latent and the four conditionings from EMS
Encode Prompts) and a list of α, and returns the edited LATENT batch (one item per α, same noise
seed for all). They share the same schedule (BasicScheduler(steps, denoise)), CFG and seed:

- ``img2img``      RandomNoise + CFGGuider(target caption) — the plain baseline; it has no degree,
                   so it runs at α = 1 only.
- ``text_only``    EMS Alpha Sweep → img2img with c̃(α) = c0 + α(c1 − c0) (the paper's
                   prompt-only ablation).
- ``ems``          EMS Alpha Sweep → EMS CSDS Latent Edit → SamplerCustomAdvanced(DisableNoise),
                   the full method (the shipped ``06 Full EMS alpha grid, LLM captions (SD3 + LLM)`` workflow).
- ``flowedit``     the FlowEdit-style baseline of :mod:`bench.toy.flowedit`, target c̃(α).
- ``ode_inversion`` Euler inversion under the source caption, then sampling under c̃(α)
                   (:mod:`bench.toy.ode_inversion`).
- ``ems_flowedit`` EMS Alpha Sweep → EMS Flow Edit (the node's own computation, ``run_flow_edit``)
                   on its own schedule (``fe_denoise``) and CFG pair.
- ``latent_linear`` / ``latent_svd``  EMS Latent Direction on the clean latent, then (``latent_stage``)
                   img2img with c̃(α) — compare with ``text_only`` for what the direction adds —,
                   with the source caption (the v2 protocol: at denoise 0.55 it redraws most of
                   the edit away), or nothing (the edited latent decoded). Its reference pair: the toy model's own text-to-image generations for the source
                   and the target caption with the same seed (what a user without a second photo
                   would do; ``reference="render"`` uses the drawn scenes instead — an oracle).

The runners call ComfyUI, so run them after :func:`bench.host.setup`; the two baselines'
modules (``flowedit``, ``ode_inversion``) subclass ComfyUI's guider at import, so they are
imported inside their runners.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch

from comfyui_ems.ems.csds import CSDSParams
from comfyui_ems.toyworld.settings import TOY

from bench import harness

NODE_CSDS = CSDSParams()  # the node's defaults, measured in the toy world
METHODS = ("img2img", "text_only", "ems", "flowedit", "ems_flowedit", "ode_inversion", "latent_linear", "latent_svd")


@dataclass
class ToySettings:
    """One run's schedule and EMS parameters. Defaults: the toy world's measured schedules
    (``toyworld.settings.TOY``) and the node's CSDS defaults (``NODE_CSDS``: iterations, λ and
    residual space from the v2 calibration, drive, step units and step sizes from toy world v3's
    fronts)."""

    steps: int = TOY.steps
    denoise: float = TOY.denoise
    cfg: float = TOY.cfg
    iterations: int = NODE_CSDS.iterations
    constraint: float = NODE_CSDS.constraint
    step_start: float = NODE_CSDS.step_start
    step_end: float = NODE_CSDS.step_end
    residual_space: str = NODE_CSDS.residual_space
    sampler: str = "euler"
    scheduler: str = "simple"
    seed: int = TOY.seed
    reference: str = "generated"  # latent directions: "generated" pair or "render" (oracle) pair
    reference_steps: int = 12  # text-to-image steps for the generated reference pair
    # latent directions: what follows the edited clean latent — "sweep": img2img with c̃(α) (the
    # direction next to the text edit it accompanies), "source": img2img with the source caption
    # (the v2 protocol, which redraws the edit away), "decode": nothing (the latent itself, decoded)
    latent_stage: str = "sweep"
    # EMS Flow Edit (ems_flowedit): its schedule and options; the node's defaults otherwise.
    fe_denoise: float = TOY.flow_denoise
    fe_cfg: float = TOY.flow_cfg
    fe_source_cfg: float = TOY.flow_source_cfg
    fe_noise_average: int = TOY.flow_noise_average
    fe_locality: float = TOY.flow_locality
    fe_drive: float = TOY.flow_drive
    # CSDS v3 options (ems): the drive, the step sizes' units, locality; the node's defaults otherwise.
    csds_drive: str = NODE_CSDS.drive
    csds_step_units: str = NODE_CSDS.step_units
    csds_locality: float = NODE_CSDS.locality
    # CSDS's own cfg when it differs from the sampler's (None: the shared cfg); the node ships 7.5
    csds_cfg: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def encode_case(clip, case, negative: str = ""):
    """EMS Encode Prompts: (source, target, attribute, negative) with identical token shapes."""
    tokenize_equal = harness.pack_module("nodes.encode_prompts").tokenize_equal
    prompts = {
        "source": case.source_prompt,
        "target": case.target_prompt,
        "attribute": case.attribute_prompt,
        "negative": negative,
    }
    clip, tokens = tokenize_equal(clip, prompts)
    return tuple(clip.encode_from_tokens_scheduled(tokens[k]) for k in ("source", "target", "attribute", "negative"))


def sweep(conds, alphas) -> list:
    """EMS Alpha Sweep's conditioning: item i = c0 + alphas[i]·(c1 − c0)."""
    source, target = conds[0], conds[1]
    return harness.pack_module("ems.conditioning").sweep_conditioning(source, target, [float(a) for a in alphas])


def repeated(latent: dict, count: int) -> dict:
    return harness.pack_module("nodes.common").repeat_latent(latent, count) if count > 1 else latent


def csds_params(s: ToySettings):
    """The ``CSDSParams`` run_csds takes, from these settings."""
    return harness.csds_params(
        cfg=s.cfg if s.csds_cfg is None else s.csds_cfg,
        iterations=s.iterations,
        constraint=s.constraint,
        step_start=s.step_start,
        step_end=s.step_end,
        residual_space=s.residual_space,
        drive=s.csds_drive,
        step_units=s.csds_step_units,
        locality=s.csds_locality,
    )


def has_residual_space() -> bool:
    return "residual_space" in harness.pack_module("ems.csds").CSDSParams.__dataclass_fields__


def _phase(counter, name):
    if counter is not None:
        counter.phase = name


@torch.inference_mode()
def img2img(model, conds, latent, alphas, s: ToySettings, sigmas, counter=None, **_) -> dict:
    _phase(counter, "sampling")
    return harness.sample(model, conds[1], conds[3], latent, sigmas, s.cfg, s.seed, s.sampler)


@torch.inference_mode()
def text_only(model, conds, latent, alphas, s: ToySettings, sigmas, counter=None, **_) -> dict:
    positive = sweep(conds, alphas)
    _phase(counter, "sampling")
    return harness.sample(model, positive, conds[3], repeated(latent, len(alphas)), sigmas, s.cfg, s.seed, s.sampler)


@torch.inference_mode()
def ems(model, conds, latent, alphas, s: ToySettings, sigmas, counter=None, **_) -> dict:
    run_csds = harness.pack_module("nodes.csds_guider").run_csds
    positive = sweep(conds, alphas)
    latent = repeated(latent, len(alphas))
    _phase(counter, "csds")
    reference = conds[2] if s.csds_drive == "attribute" else conds[0]  # the attribute, or the source caption
    z = run_csds(model, positive, reference, conds[3], latent, sigmas, s.seed, csds_params(s))
    _phase(counter, "sampling")
    return harness.sample(model, positive, conds[3], z, sigmas, s.cfg, None, s.sampler)


@torch.inference_mode()
def flowedit(model, conds, latent, alphas, s: ToySettings, sigmas, counter=None, **_) -> dict:
    from .flowedit import flowedit as run  # imports ComfyUI's samplers: only after host.setup

    _phase(counter, "sampling")
    return run(model, sweep(conds, alphas), conds[0], conds[3], repeated(latent, len(alphas)), sigmas, s.cfg, s.seed)


@torch.inference_mode()
def ems_flowedit(model, conds, latent, alphas, s: ToySettings, sigmas, counter=None, **_) -> dict:
    own = harness.schedule(model, s.steps, s.fe_denoise, s.scheduler)  # its own schedule, not the shared one
    return harness.flow_edit(
        model,
        conds[0],
        conds[1],
        conds[3],
        latent,
        alphas,
        s,
        sigmas=own,
        counter=counter,
        cfg=s.fe_cfg,
        source_cfg=s.fe_source_cfg,
        noise_average=s.fe_noise_average,
        locality=s.fe_locality,
        drive=s.fe_drive,
    )


@torch.inference_mode()
def ode_inversion(model, conds, latent, alphas, s: ToySettings, sigmas, counter=None, **_) -> dict:
    from .ode_inversion import ode_inversion as run  # imports ComfyUI's samplers: only after host.setup

    _phase(counter, "sampling")
    return run(model, sweep(conds, alphas), conds[0], conds[3], repeated(latent, len(alphas)), sigmas, s.cfg)


def latent_direction_available() -> bool:
    try:
        harness.pack_module("ems.latent_direction")
        return True
    except ImportError:
        return False


@torch.inference_mode()
def reference_pair(model, vae, conds, case, s: ToySettings, counter=None, render=None) -> tuple[dict, dict]:
    """(reference_a, reference_b) clean LATENTs: the model's generations for the source and the
    target caption from the same seed (EmptySD3LatentImage + RandomNoise + full schedule), or the
    drawn scenes (``s.reference == "render"``)."""
    if s.reference == "render":
        return ({"samples": vae.encode(render(case.source))}, {"samples": vae.encode(render(case.target))})
    shape = tuple(vae.encode(render(case.source)).shape) if render else None
    empty = {"samples": torch.zeros(shape)}
    sigmas = harness.schedule(model, s.reference_steps, 1.0, s.scheduler)
    _phase(counter, "reference")
    a = harness.sample(model, conds[0], conds[3], empty, sigmas, s.cfg, s.seed, s.sampler)
    b = harness.sample(model, conds[1], conds[3], empty, sigmas, s.cfg, s.seed, s.sampler)
    return a, b


def _latent_direction(mode: str) -> Callable:
    @torch.inference_mode()
    def method(model, conds, latent, alphas, s: ToySettings, sigmas, counter=None, references=None, **_):
        apply_direction = harness.pack_module("ems.latent_direction").apply_direction
        ref_a, ref_b = references
        _phase(counter, "direction")
        edited = repeated(latent, len(alphas))
        alpha = torch.tensor([float(a) for a in alphas], dtype=torch.float64)
        edited["samples"] = apply_direction(edited["samples"], ref_a["samples"], ref_b["samples"], alpha, mode=mode)
        if s.latent_stage == "decode":
            return edited
        positive = sweep(conds, alphas) if s.latent_stage == "sweep" else conds[0]
        _phase(counter, "sampling")
        return harness.sample(model, positive, conds[3], edited, sigmas, s.cfg, s.seed, s.sampler)

    method.__name__ = f"latent_{mode}"
    return method


RUNNERS = {
    "img2img": img2img,
    "text_only": text_only,
    "ems": ems,
    "flowedit": flowedit,
    "ems_flowedit": ems_flowedit,
    "ode_inversion": ode_inversion,
    "latent_linear": _latent_direction("linear"),
    "latent_svd": _latent_direction("svd"),
}
