"""EMS scored with the paper's metrics (``python -m bench.paper``): a manifest of real images
(ZOFIE / PIE-Bench shape) edited at several α through ComfyUI's own path, each α scored with
:mod:`bench.metrics` (PSNR, SSIM, PIE-Bench background variants, LPIPS, CLIP score), plus per
item the paper's SDE through the host model (:mod:`.host_sde`) and MLLM-VQA (:mod:`.evaluate`)."""
