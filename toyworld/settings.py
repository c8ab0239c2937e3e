"""The toy model's measured settings, written once: the bench, the headless demo and the toy
workflows read them from here.

Measured on the first SD3 toy (``bench/reports/v2/toyworld-calibration.md`` for the img2img path,
``bench/reports/v2/toyworld-front.md`` for EMS Flow Edit) and kept for toy world v3, which continues
it. They belong to these toy models, not to SD3.
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
