"""The tools that measure EMS inside a real ComfyUI imported in-process, one package per study.
Not part of the node pack: ComfyUI never imports it.

- :mod:`bench.cost` (``python -m bench``, also ``python -m bench.cost``): wall time, peak memory and
  model calls of EMS next to plain img2img;
- :mod:`bench.paper` (``python -m bench.paper``): EMS over a manifest of real images, scored with
  the paper's metrics (PSNR/SSIM/LPIPS/CLIP, SDE through the host model, MLLM-VQA);
- :mod:`bench.toy` (``python -m bench.toy``, ``python -m bench.toy.front``): every editing path in
  the toy world, scored by the scenes' exact readout; the CSDS calibration (``--calibrate``);
- :mod:`bench.latent` (``python -m bench.latent``): EMS Latent Direction's variants in the toy world.

Shared by all of them: :mod:`bench.host` (the host set-up and the call counter), :mod:`bench.harness`
(ComfyUI's sampling path as the graph runs it) and the metrics library :mod:`bench.metrics`
(``python -m bench.metrics``). Every report is written to :data:`REPORTS` (``bench/reports/``).
"""

from pathlib import Path

REPORTS = Path(__file__).resolve().parent / "reports"
