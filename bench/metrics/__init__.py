"""Image-editing metrics for EMS, as a library and a command (``python -m bench.metrics``).

- :mod:`.pixel` — PSNR, SSIM (Wang et al. 2004) and PIE-Bench's masked background variants;
- :mod:`.lpips` — LPIPS v0.1 (AlexNet / VGG16) from local weight files;
- :mod:`.clip_score` — CLIP score, ``100·max(cos, 0)``, from a local ``transformers`` CLIPModel;
- :mod:`.vqa` — the paper's MLLM-VQA "gradual change of X" protocol over an injectable ``ask``;
- :mod:`.sde` — the paper's Semantic Disentanglement mEtric through encode/decode callables;
- :mod:`.cli` — the command: pairs of files/folders → markdown + JSON table.

Conventions: images are ComfyUI IMAGE tensors (B, H, W, C) float in [0, 1]; edit masks are 1 on
the edited region (B, H, W); metrics return one float64 value per item, shape (B,). Nothing here
imports ComfyUI or downloads anything; ``transformers`` is imported only for CLIP.
The submodules ``lpips``, ``clip_score`` and ``sde`` keep their names (their same-named
functions are not re-exported here, so ``bench.metrics.lpips`` stays the module).
"""

from .clip_score import DEFAULT_CLIP_MODEL, ClipScorer, ClipWeightsMissing, masked_clip_score
from .lpips import LPIPS, LPIPSWeightsMissing, masked_lpips
from .pixel import (
    MetricInputError,
    background,
    edit_region,
    masked,
    masked_psnr,
    masked_ssim,
    mse,
    psnr,
    ssim,
    ssim_map,
)
from .sde import SDEResult, sde_from_reconstructions, semantic_disentanglement
from .vqa import VQAResult, build_question, openai_ask, parse_score, parse_yes_no, sweep_pairs, vqa_score

__all__ = [
    "DEFAULT_CLIP_MODEL",
    "ClipScorer",
    "ClipWeightsMissing",
    "masked_clip_score",
    "LPIPS",
    "LPIPSWeightsMissing",
    "masked_lpips",
    "MetricInputError",
    "background",
    "edit_region",
    "masked",
    "masked_psnr",
    "masked_ssim",
    "mse",
    "psnr",
    "ssim",
    "ssim_map",
    "SDEResult",
    "sde_from_reconstructions",
    "semantic_disentanglement",
    "VQAResult",
    "build_question",
    "openai_ask",
    "parse_score",
    "parse_yes_no",
    "sweep_pairs",
    "vqa_score",
]
