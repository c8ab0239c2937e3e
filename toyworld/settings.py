"""The toy model's measured settings, written once: the bench, the headless demo and the toy
workflows read them from here.

Measured on the toy world (``bench/reports/toyworld-calibration.md`` for the img2img path,
``bench/reports/toyworld-front.md`` for EMS Flow Edit). They belong to this toy model, not to SD3.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ToySchedule:
    steps: int = 12  # ours, for a 2-core CPU
    seed: int = 0  # the noise seed every toy-world measurement uses
    denoise: float = 0.55  # img2img path (text-only EMS, CSDS): calibrated on the val split
    cfg: float = 3.0
    flow_denoise: float = 0.55  # EMS Flow Edit
    flow_cfg: float = 3.0
    flow_source_cfg: float = 3.0
    flow_noise_average: int = 2
    flow_locality: float = 0.8
    flow_drive: float = 0.0


TOY = ToySchedule()
