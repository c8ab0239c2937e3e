"""EMS Flow Edit: inversion-free editing of a clean latent along EMS's text direction (plain PyTorch).

The coupling is FlowEdit's (Kulikov et al., arXiv 2412.08629), written from its formula. For a
rectified-flow model (z_σ = (1 − σ)·x0 + σ·n, velocity v = (z − D)/σ with D the denoised
prediction) the *clean* edited latent z_edit starts at the source x_src and, for each step
σ_i → σ_{i+1} of the schedule, moves along a velocity difference taken at two coupled points:

    n_a      ~ N(0, I), a = 1 … A           fresh noise every step, no inversion
    z_src,a  = (1 − σ_i)·x_src + σ_i·n_a      the source, forward-noised
    z_tar,a  = z_src,a + (z_edit − x_src)     the same noise, shifted by the edit so far
    V        = mean_a [v(z_tar,a, c̃, w_t) − v(z_src,a, c0, w_s)]
    z_edit  += (σ_{i+1} − σ_i) · m ⊙ V

c̃ = c0 + α(c1 − c0) comes from EMS Text Direction / Alpha Sweep, so α grades the edit; w_t and w_s
are the target and source CFG scales; m is 1, a latent noise mask, and/or the locality weight.

What is FlowEdit's and what is ours:
- FlowEdit's: the coupling, fresh noise per step, separate source and target CFG, averaging A
  noises per step (its n_avg; ``noise_average``).
- Ours, the **degree rule**: item i's target scale is w_s + min(1, |α_i|)·(w_t − w_s). A larger
  target scale is itself an edit (at z_tar = z_src the difference is (w_t − w_s)·(D_c0 − D_uncond)),
  so without this α = 0 would still change the picture. With it, α = 0 makes the target *equal* the
  source in every respect, V is zero by construction and the output is the input latent exactly;
  such items (``moves`` false) skip the arithmetic, so float noise from the batched call cannot leak
  in. A positive without α gets the full target scale.
- Ours, **locality** (``locality`` = τ > 0): the idea of confining the update to where the two
  velocities differ is UniEdit-Flow's; the form is ours. Per item and step, the channel mean of |V|,
  smoothed over 3×3 latent pixels and divided by its maximum, gives d ∈ [0, 1]; the update is
  weighted by clamp(2d/τ − 1, 0, 1): nothing where d ≤ τ/2, all of it where d ≥ τ. Where the
  prompts agree V is mostly the noise's disagreement, which is what redraws content the edit does
  not touch.
- Ours, the **image-side drive** (``drive`` = β > 0): the target-vs-source drive of EMS's image side,
  r(z, c̃) − r(z, c0), taken at the coupled target point only: V += β·mean_a[v(z_tar,a, c̃, w_t) −
  v(z_tar,a, c0, w_s)]. Linear in α, zero at α = 0 (c̃ = c0, w_t = w_s); one extra batch item per
  noise and item.

Shapes: latents (B, C, H, W) (any trailing layout works); ``predict`` receives the stacked points
and returns denoised predictions of the same shape (see :func:`flow_edit`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Optional, Sequence

import torch

from .conditioning import conditioning_alpha, items_equal
from .locality import locality_weights
from .validation import InputError

MAX_NOISE_AVERAGE = 16


class FlowEditError(InputError):
    """Parameters or a schedule the coupling cannot run with; the message says which and why."""


@dataclass(frozen=True)
class FlowEditParams:
    """One EMS Flow Edit run's parameters, validated once (see the module doc for their meaning).

    The field defaults are the only place the method's defaults are written: the node, its doc
    table and the bench read them (``DEFAULTS``). cfg / source_cfg: FlowEdit's published SD3
    configuration (target 13.5, source 3.5, at 33 of 50 steps). The options' defaults were chosen
    in the toy world (the node doc gives the numbers).
    """

    cfg: float = 13.5
    source_cfg: float = 3.5
    noise_average: int = 2
    locality: float = 0.8
    drive: float = 0.0

    def __post_init__(self):
        for name in ("cfg", "source_cfg", "locality", "drive"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise FlowEditError(f"{name} must be a finite number (got {value!r}).")
        if self.cfg < 0 or self.source_cfg < 0:
            raise FlowEditError(f"cfg and source_cfg must be ≥ 0 (got {self.cfg:g}, {self.source_cfg:g}).")
        if not (isinstance(self.noise_average, int) and 1 <= self.noise_average <= MAX_NOISE_AVERAGE):
            raise FlowEditError(
                f"noise_average must be a whole number from 1 to {MAX_NOISE_AVERAGE} "
                f"(got {self.noise_average!r}); each one adds a batch item per step."
            )
        if not 0.0 <= self.locality <= 1.0:
            raise FlowEditError(f"locality must lie in 0 … 1 (got {self.locality:g}); 0 is off.")
        if not 0.0 <= self.drive <= 4.0:
            raise FlowEditError(f"drive must lie in 0 … 4 (got {self.drive:g}); 0 is off.")

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULTS = FlowEditParams().as_dict()  # a view for the widgets and docs, derived from the fields


def check_schedule(sigmas: Sequence[float]) -> list[float]:
    """The schedule as floats: at least two values, non-increasing, within (0, 1] at the start.

    A flow model's latent at σ = 1 is pure noise, so a full schedule still works (the coupling
    then starts from noise) but edits the most; σ > 1 is not a rectified-flow schedule.
    """
    values = [float(s) for s in sigmas]
    if len(values) < 2:
        raise FlowEditError(
            f"the schedule has {len(values)} value(s); it needs a start and an end (BasicScheduler with steps ≥ 1)."
        )
    if not all(math.isfinite(s) and s >= 0 for s in values):
        raise FlowEditError("the schedule holds a negative or non-finite sigma.")
    if not 0 < values[0] <= 1.0:
        raise FlowEditError(
            f"the schedule starts at σ = {values[0]:g}; a rectified-flow schedule "
            "starts in (0, 1] (use BasicScheduler with this model, denoise < 1)."
        )
    if any(b > a for a, b in zip(values, values[1:])):
        raise FlowEditError("the schedule must not increase (it runs from noisy to clean).")
    return values


def degree(alpha: Optional[torch.Tensor], batch: int) -> torch.Tensor:
    """min(1, |α|) per item, (batch,) float64; 1 for every item without α."""
    if alpha is None:
        return torch.ones(batch, dtype=torch.float64)
    alpha = torch.as_tensor(alpha, dtype=torch.float64).flatten()
    if alpha.numel() == 1:
        alpha = alpha.expand(batch)
    if alpha.numel() != batch:
        raise FlowEditError(f"{alpha.numel()} α values for a batch of {batch}")
    return alpha.abs().clamp(max=1.0)


def target_scales(alpha: Optional[torch.Tensor], batch: int, cfg: float, source_cfg: float) -> list[float]:
    """The target CFG scale of each item under the degree rule (module doc)."""
    return [source_cfg + float(d) * (cfg - source_cfg) for d in degree(alpha, batch)]


def item_plan(positive: list, source: list, batch: int, params: FlowEditParams) -> tuple[list[float], torch.Tensor]:
    """(target CFG scale per item, which items move (B,) bool) for CONDITIONINGs c̃ and c0.

    The scales follow the degree rule from the α ``positive`` records; an item moves unless its c̃
    equals c0 exactly (then the coupling's velocity difference is zero by construction).
    Raises ``ConditioningMismatch`` when the recorded α cannot be read.
    """
    alpha = conditioning_alpha(positive, batch)
    moves = torch.tensor([not same for same in items_equal(positive, source, batch)])
    return target_scales(alpha, batch, params.cfg, params.source_cfg), moves


def coupled_points(
    x_src: torch.Tensor, z_edit: torch.Tensor, noise: torch.Tensor, sigma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(z_src, z_tar) for noises ``noise`` (A, B, …) against latents (B, …): both (A, B, …)."""
    z_src = (1.0 - sigma) * x_src + sigma * noise
    return z_src, z_src + (z_edit - x_src)


def velocity(z: torch.Tensor, denoised: torch.Tensor, sigma: float) -> torch.Tensor:
    """v = (z − D)/σ, the flow velocity implied by a denoised prediction."""
    return (z - denoised) / sigma


class StepNoise:
    """Fresh noise for every step, drawn from one seeded generator of our own (the global RNG is
    not touched). Items with the same ``batch_index`` get the same noise, as ComfyUI's RandomNoise
    gives them, so item i of an α sweep (a repeated index) equals the single run at α_i."""

    def __init__(self, seed: int, shape: Sequence[int], batch_index: Optional[Sequence[int]] = None):
        self.generator = torch.Generator().manual_seed(int(seed))
        self.item_shape = (1, *shape[1:])
        self.index = list(range(shape[0])) if batch_index is None else [int(i) for i in batch_index]
        if len(self.index) != shape[0]:
            raise FlowEditError(f"batch_index has {len(self.index)} entries for a batch of {shape[0]}")

    def draw(self, count: int) -> torch.Tensor:
        """``count`` noises for the batch: (count, B, …) on the CPU, float32."""
        out = []
        for _ in range(count):
            pool = [torch.randn(self.item_shape, generator=self.generator) for _ in range(max(self.index) + 1)]
            out.append(torch.cat([pool[i] for i in self.index]))
        return torch.stack(out)


# predict(z_tar, z_src, sigma) -> (D_tar under c̃ at w_t, D_src under c0 at w_s, D under c0 at w_s
# at z_tar or None when drive is off); inputs and outputs (A·B, …), item a·B + b = noise a, item b.
Predict = Callable[[torch.Tensor, torch.Tensor, float], tuple]


def flow_edit(
    predict: Predict,
    x_src: torch.Tensor,
    sigmas: Sequence[float],
    params: FlowEditParams,
    noise: StepNoise,
    moves: Optional[torch.Tensor] = None,
    mask: Optional[torch.Tensor] = None,
    callback: Optional[Callable[[int, torch.Tensor], None]] = None,
) -> torch.Tensor:
    """Run the coupling over ``sigmas`` from the clean source ``x_src`` (B, …); returns z_edit.

    ``predict`` is called once per step. ``moves`` (B,) bool: items that may change (False: the
    target is the source, so the item stays ``x_src`` exactly). ``mask`` (broadcastable to x_src,
    values in [0, 1]): where the latent may change. ``callback(i, z_edit)`` after every step.
    """
    schedule = check_schedule(sigmas)
    batch, count = x_src.shape[0], params.noise_average
    keep = None if moves is None else moves.to(x_src.device).reshape(-1, *([1] * (x_src.ndim - 1)))
    z_edit = x_src.clone()
    for i, (sigma, sigma_next) in enumerate(zip(schedule, schedule[1:])):
        n = noise.draw(count).to(x_src)
        z_src, z_tar = coupled_points(x_src, z_edit, n, sigma)
        flat = (count * batch, *x_src.shape[1:])
        d_tar, d_src, d_drive = predict(z_tar.reshape(flat), z_src.reshape(flat), sigma)
        v_tar = velocity(z_tar, d_tar.reshape(z_tar.shape).to(z_tar), sigma)
        v_delta = (v_tar - velocity(z_src, d_src.reshape(z_src.shape).to(z_src), sigma)).mean(dim=0)
        if d_drive is not None and params.drive > 0:
            v_drive = v_tar - velocity(z_tar, d_drive.reshape(z_tar.shape).to(z_tar), sigma)
            v_delta = v_delta + params.drive * v_drive.mean(dim=0)
        if params.locality > 0:
            v_delta = v_delta * locality_weights(v_delta, params.locality)
        if mask is not None:
            v_delta = v_delta * mask
        moved = z_edit + (sigma_next - sigma) * v_delta
        z_edit = moved if keep is None else torch.where(keep, moved, z_edit)
        if callback is not None:
            callback(i, z_edit)
    return z_edit
