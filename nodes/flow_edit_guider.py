"""EMS Flow Edit inside ComfyUI's sampling machinery: a CFGGuider holding both coupled points'
conditionings and a KSAMPLER function running the loop of ``ems.flow_edit``.

``guider.sample`` gives the coupling what ComfyUI's own samplers get — model loading and
offloading, LoRA/hooks/patches, memory-aware batch splitting, progress bar, preview, Cancel. The
guider is sampled with zero noise; the KSAMPLER function ignores its noised entry value and edits
the clean source latent (``process_latent_in`` of the input, as ``inner_sample`` computes it), so
the run ends with the clean edited latent, which ComfyUI hands back through ``process_latent_out``.

One batched model call per step: the target conditioning c̃, the source c0 (and, with the drive,
c0 again for the target point) are stacked into one conditioning whose batch blocks line up with
the stacked points [z_tar, z_src (, z_tar)] of every noise; ``calc_cond_batch`` evaluates it and
the negative together. Conditionings that cannot be stacked (different token shapes, combined
entries) are evaluated with one call per point instead.
"""

from __future__ import annotations

import math

import torch

import comfy.model_management
import comfy.model_sampling
import comfy.samplers
import comfy.utils
import latent_preview

from ..ems.conditioning import stack_batches
from ..ems.flow_edit import FlowEditParams, StepNoise, flow_edit, item_plan


def is_rectified_flow(model_sampling) -> bool:
    """z_σ = σ·n + (1 − σ)·x0, the coupling's premise: CONST sampling whose noise scaling really
    mixes (newer image-to-image flow samplings subclass CONST but return the latent unchanged)."""
    if not isinstance(model_sampling, comfy.model_sampling.CONST):
        return False
    probe = model_sampling.noise_scaling(torch.tensor([0.25]), torch.ones(1, 1, 1, 1), torch.zeros(1, 1, 1, 1))
    return bool(torch.allclose(probe.float(), torch.full_like(probe.float(), 0.25)))


class FlowEditGuider(comfy.samplers.CFGGuider):
    """Conds: ``coupled`` (the stack) or ``positive`` / ``source`` one by one, and ``negative``."""

    def set_flow_conds(self, positive, source, negative, drive: bool, batch: int):
        blocks = [positive, source] + ([source] if drive else [])
        coupled = stack_batches(blocks, batch)
        self.stacked = coupled is not None
        conds = {"coupled": coupled} if self.stacked else {"positive": positive, "source": source}
        self.inner_set_conds({**conds, "negative": negative})

    def predict_noise(self, x, timestep, model_options={}, seed=None):  # noqa: B006 - CFGGuider's own signature
        # Used as an ordinary guider this is plain CFG on the target (or the stack).
        cond = self.conds.get("positive") or self.conds.get("coupled")
        return comfy.samplers.sampling_function(
            self.inner_model, x, timestep, self.conds.get("negative"), cond, self.cfg, model_options=model_options
        )

    def guided(self, names, x, timestep, scales, model_options):
        """CFG-guided denoised predictions of the conds ``names`` at ``x``, item j at ``scales[j]``.

        One ``calc_cond_batch`` for all of them and the negative (skipped when every scale is 1).
        Per-item CFG goes through ComfyUI's ``cfg_function``, so CFG patches still apply.
        """
        skip = all(math.isclose(s, 1.0) for s in scales) and not model_options.get("disable_cfg1_optimization", False)
        negative = None if skip else self.conds.get("negative")
        conds = [self.conds.get(n) for n in names] + [negative]
        if "sampler_calc_cond_batch_function" in model_options:
            out = model_options["sampler_calc_cond_batch_function"](
                {
                    "conds": conds,
                    "input": x,
                    "sigma": timestep,
                    "model": self.inner_model,
                    "model_options": model_options,
                }
            )
        else:
            out = comfy.samplers.calc_cond_batch(self.inner_model, conds, x, timestep, model_options)
        results = []
        for cond, c_out in zip(conds[:-1], out[:-1]):
            items = []
            for j, scale in enumerate(scales):
                pair = [c_out[j : j + 1], out[-1][j : j + 1]]
                for fn in model_options.get("sampler_pre_cfg_function", []):
                    pair = fn(
                        {
                            "conds": [cond, negative],
                            "conds_out": pair,
                            "cond_scale": scale,
                            "timestep": timestep[j : j + 1],
                            "input": x[j : j + 1],
                            "sigma": timestep[j : j + 1],
                            "model": self.inner_model,
                            "model_options": model_options,
                        }
                    )
                items.append(
                    comfy.samplers.cfg_function(
                        self.inner_model,
                        pair[0],
                        pair[1],
                        scale,
                        x[j : j + 1],
                        timestep[j : j + 1],
                        model_options=model_options,
                        cond=cond,
                        uncond=negative,
                    )
                )
            results.append(torch.cat(items))
        return results


def flow_edit_sampler(
    model, x, sigmas, extra_args=None, callback=None, disable=None, *, source, params, noise, scales, moves
):
    """KSAMPLER function; ``model`` is ComfyUI's inpaint wrapper around the FlowEditGuider."""
    extra_args = extra_args or {}
    guider = model.inner_model
    options = extra_args.get("model_options", {})
    x_src = guider.inner_model.process_latent_in(source.to(x.device)).to(x.dtype)
    count, batch = params.noise_average, x_src.shape[0]
    tar_scales = list(scales) * count
    src_scales = [params.source_cfg] * (batch * count)
    drive = params.drive > 0

    def predict(z_tar, z_src, sigma):
        t = torch.full((z_tar.shape[0],), sigma, device=x.device, dtype=x.dtype)
        if guider.stacked:  # one call: per noise a block [z_tar, z_src (, z_tar)] against the stack
            blocks = [z_tar.reshape(count, batch, *z_tar.shape[1:]), z_src.reshape(count, batch, *z_src.shape[1:])]
            if drive:
                blocks.append(blocks[0])
            points = torch.stack(blocks, dim=1).reshape(-1, *z_tar.shape[1:])
            per_noise = list(scales) + [params.source_cfg] * batch * (len(blocks) - 1)
            (d,) = guider.guided(["coupled"], points, torch.cat([t] * len(blocks)), per_noise * count, options)
            d = d.reshape(count, len(blocks), batch, *z_tar.shape[1:])
            parts = [d[:, k].reshape(-1, *z_tar.shape[1:]) for k in range(len(blocks))]
            return parts[0], parts[1], parts[2] if drive else None
        # Unstackable conditionings: one call per point and conditioning.
        d_tar = guider.guided(["positive"], z_tar, t, tar_scales, options)[0]
        d_src = guider.guided(["source"], z_src, t, src_scales, options)[0]
        d_drive = guider.guided(["source"], z_tar, t, src_scales, options)[0] if drive else None
        return d_tar, d_src, d_drive

    def on_step(i, z_edit):
        if callback is not None:
            callback({"x": z_edit, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": z_edit})
        comfy.model_management.throw_exception_if_processing_interrupted()

    mask = extra_args.get("denoise_mask")
    return flow_edit(
        predict, x_src, [float(s) for s in sigmas], params, noise, moves=moves.to(x.device), mask=mask, callback=on_step
    )


def run_flow_edit(
    model,
    positive,
    source,
    negative,
    latent: dict,
    sigmas: torch.Tensor,
    noise_seed: int,
    params: FlowEditParams,
    plan=None,
) -> dict:
    """The node's computation on a validated, batch-reconciled LATENT; returns the clean LATENT.

    ``plan``: (scales, moves) from ``ems.flow_edit.item_plan``, computed here when not given.

    Items whose ``moves`` is False come back as the input samples exactly; every other item is the
    input plus the edit (``process_latent_out`` of the edited minus that of the source latent), so
    wherever the coupling left the latent alone — outside a noise mask — the output is the input.
    """
    samples = latent["samples"]
    scales, moves = plan if plan is not None else item_plan(positive, source, int(samples.shape[0]), params)
    steps = int(sigmas.shape[-1]) - 1
    guider = FlowEditGuider(model)
    guider.set_flow_conds(positive, source, negative, params.drive > 0, int(samples.shape[0]))
    guider.set_cfg(params.cfg)
    noise = StepNoise(noise_seed, tuple(samples.shape), latent.get("batch_index"))
    sampler = comfy.samplers.KSAMPLER(
        flow_edit_sampler,
        extra_options={"source": samples, "params": params, "noise": noise, "scales": scales, "moves": moves},
    )
    callback = latent_preview.prepare_callback(model, steps)
    zeros = torch.zeros(samples.shape, dtype=samples.dtype, layout=samples.layout, device="cpu")
    out = guider.sample(
        zeros,
        samples,
        sampler,
        sigmas,
        denoise_mask=latent.get("noise_mask"),
        callback=callback,
        disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED,
        seed=noise_seed,
    )
    base = model.model
    reference = base.process_latent_out(base.process_latent_in(samples.to(out.device)).to(out.dtype).float())
    edited = samples.to(out.device) + (out - reference).to(samples.dtype)
    keep = moves.to(out.device).reshape(-1, *([1] * (samples.ndim - 1)))
    result = dict(latent)
    result["samples"] = torch.where(keep, edited, samples.to(out.device)).to(
        comfy.model_management.intermediate_device()
    )
    return result
