"""ComfyUI's real sampling path, in-process: img2img and EMS edits as the node graph runs them.

Every function here calls what the core nodes call — ``BasicScheduler`` (``calculate_sigmas``),
``RandomNoise``/``DisableNoise`` (``comfy.sample.prepare_noise`` / zeros), ``CFGGuider`` +
``KSamplerSelect`` + ``SamplerCustomAdvanced`` (``guider.sample``) — and the pack's own code for
the EMS parts: ``manipulate_conditioning`` / ``sweep_conditioning`` (EMSTextDirection /
EMSAlphaSweep) and ``run_csds`` (EMSCSDSLatentEdit).

The pack's modules are imported under its one name (``comfyui_ems``, see ``comfyui_ems.py``); the
adapters import ComfyUI, so they are imported after :func:`setup` (``pack_module``). Like ComfyUI's
executor, every run is under ``torch.inference_mode()`` (without it the CSDS loop would keep
autograd graphs alive).
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from bench import host
from comfyui_ems.ems.csds import PAPER, PAPER_DENOISE, PAPER_STEPS

REPO = Path(__file__).resolve().parents[1]


def setup(cpu: Optional[bool] = None) -> str:
    """Select the device before ComfyUI's model management loads (``bench.host.setup``)."""
    return host.setup(cpu)


def pack_module(name: str):
    """``comfyui_ems.<name>`` (e.g. ``nodes.csds_guider``), imported after :func:`setup`."""
    return importlib.import_module(f"comfyui_ems.{name}")


@dataclass
class EditSettings:
    """One edit's schedule and EMS parameters (defaults: the paper's SD3 setting; the CSDS ones
    are ``ems.csds.PAPER``)."""

    steps: int = PAPER_STEPS
    denoise: float = PAPER_DENOISE
    cfg: float = PAPER.cfg
    iterations: int = PAPER.iterations
    constraint: float = PAPER.constraint
    step_start: float = PAPER.step_start
    step_end: float = PAPER.step_end
    step_units: str = PAPER.step_units
    sampler: str = "euler"
    scheduler: str = "simple"
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    def csds(self):
        """The CSDS parameter object of these settings (the method's default residual space)."""
        return csds_params(
            cfg=self.cfg,
            iterations=self.iterations,
            constraint=self.constraint,
            step_start=self.step_start,
            step_end=self.step_end,
            step_units=self.step_units,
        )


def csds_params(**values):
    """A ``CSDSParams`` from the pack copy that ``run_csds`` comes from (validated on creation)."""
    return pack_module("ems.csds").CSDSParams(**values)


def schedule(model, steps: int, denoise: float, scheduler: str = "simple") -> torch.Tensor:
    """``BasicScheduler``: the last ``steps + 1`` sigmas of an ``int(steps/denoise)``-step schedule."""
    import comfy.samplers

    total = int(steps / denoise) if denoise < 1.0 else steps
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, total).cpu()
    return sigmas[-(steps + 1) :]


@torch.inference_mode()
def sample(
    model,
    positive,
    negative,
    latent: dict,
    sigmas: torch.Tensor,
    cfg: float,
    noise_seed: Optional[int],
    sampler: str = "euler",
) -> dict:
    """``SamplerCustomAdvanced(noise, CFGGuider, KSamplerSelect(sampler), sigmas, latent)``.

    ``noise_seed=None`` is ``DisableNoise`` (the latent already carries its noise)."""
    import comfy.model_management
    import comfy.sample
    import comfy.samplers
    import latent_preview

    samples = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    if noise_seed is None:
        noise = torch.zeros(samples.shape, dtype=samples.dtype, layout=samples.layout, device="cpu")
    else:
        noise = comfy.sample.prepare_noise(samples, noise_seed, latent.get("batch_index"))
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(positive, negative)
    guider.set_cfg(cfg)
    callback = latent_preview.prepare_callback(model, sigmas.shape[-1] - 1, {})
    out = guider.sample(
        noise,
        samples,
        comfy.samplers.sampler_object(sampler),
        sigmas,
        denoise_mask=latent.get("noise_mask"),
        callback=callback,
        disable_pbar=True,
        seed=0 if noise_seed is None else noise_seed,
    )
    result = dict(latent)
    result["samples"] = out.to(comfy.model_management.intermediate_device())
    return result


@torch.inference_mode()
def sample_clean(
    model, guider, sampler, latent: dict, sigmas: torch.Tensor, seed: int = 0, masked: bool = True
) -> dict:
    """``guider.sample`` with zero noise (the sampler function works on the clean latent itself) → LATENT."""
    import comfy.model_management
    import comfy.sample

    samples = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    zeros = torch.zeros(samples.shape, dtype=samples.dtype, layout=samples.layout, device="cpu")
    out = guider.sample(
        zeros,
        samples,
        sampler,
        sigmas,
        denoise_mask=latent.get("noise_mask") if masked else None,
        disable_pbar=True,
        seed=seed,
    )
    result = dict(latent)
    result["samples"] = out.to(comfy.model_management.intermediate_device())
    return result


def _set_phase(counter, name: str) -> None:
    if counter is not None:
        counter.phase = name


@torch.inference_mode()  # ComfyUI executes every node under inference mode
def img2img(model, positive, negative, latent: dict, s: EditSettings, sigmas=None, counter=None) -> dict:
    """Plain img2img: RandomNoise(seed) + CFGGuider over BasicScheduler(steps, denoise)."""
    sigmas = schedule(model, s.steps, s.denoise, s.scheduler) if sigmas is None else sigmas
    _set_phase(counter, "sampling")
    return sample(model, positive, negative, latent, sigmas, s.cfg, s.seed, s.sampler)


@torch.inference_mode()
def ems_edit(
    model,
    source,
    target,
    attribute,
    negative,
    latent: dict,
    alphas: Union[float, Sequence[float]],
    s: EditSettings,
    text_only: bool = False,
    sigmas=None,
    counter=None,
) -> dict:
    """An EMS edit as the shipped workflow runs it.

    Text side: EMSTextDirection (one α) or EMSAlphaSweep (several α, one batch). Image side: CSDS
    on the noised latent (``run_csds``), then ordinary sampling from its leftover-noise latent
    with DisableNoise and the same sigmas. ``text_only`` skips CSDS: img2img with c̃ (the
    paper's prompt-only ablation)."""
    conditioning = pack_module("ems.conditioning")
    sigmas = schedule(model, s.steps, s.denoise, s.scheduler) if sigmas is None else sigmas
    _set_phase(counter, "text")
    if isinstance(alphas, (int, float)):
        positive = conditioning.manipulate_conditioning(source, target, float(alphas))
        count = 1
    else:
        positive = conditioning.sweep_conditioning(source, target, [float(a) for a in alphas])
        count = len(alphas)
    if count > 1:
        latent = pack_module("nodes.common").repeat_latent(latent, count)  # what EMSAlphaSweep does
    if text_only:
        _set_phase(counter, "sampling")
        return sample(model, positive, negative, latent, sigmas, s.cfg, s.seed, s.sampler)
    run_csds = pack_module("nodes.csds_guider").run_csds
    _set_phase(counter, "csds")
    z = run_csds(model, positive, attribute, negative, latent, sigmas, s.seed, s.csds())
    _set_phase(counter, "sampling")
    return sample(model, positive, negative, z, sigmas, s.cfg, None, s.sampler)


@torch.inference_mode()
def flow_edit(
    model,
    source,
    target,
    negative,
    latent: dict,
    alphas: Union[float, Sequence[float]],
    s: EditSettings,
    sigmas=None,
    counter=None,
    **options,
) -> dict:
    """EMS Flow Edit as the shipped workflow runs it: EMSTextDirection (one α) or EMSAlphaSweep (a
    batch) → EMSFlowEdit on the clean latent, the same BasicScheduler(steps, denoise) as img2img.
    ``options``: FlowEditParams fields (default: the node's, with ``s.cfg`` as both scales)."""
    sigmas = schedule(model, s.steps, s.denoise, s.scheduler) if sigmas is None else sigmas
    alphas = [float(alphas)] if isinstance(alphas, (int, float)) else [float(a) for a in alphas]
    positive = pack_module("ems.conditioning").sweep_conditioning(source, target, alphas)
    if len(alphas) > 1:
        latent = pack_module("nodes.common").repeat_latent(latent, len(alphas))
    params = pack_module("ems.flow_edit").FlowEditParams(**{"cfg": s.cfg, "source_cfg": s.cfg, **options})
    _set_phase(counter, "sampling")
    return pack_module("nodes.flow_edit_guider").run_flow_edit(
        model, positive, source, negative, latent, sigmas, s.seed, params
    )
