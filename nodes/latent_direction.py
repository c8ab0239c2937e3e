"""EMSLatentDirection: move a clean image latent along a reference pair a → b.

``linear`` is the EMS paper's Fig. 3b on clean latents; ``svd`` is our documented reading of
arXiv 2502.02225 (web/docs/EMSLatentDirection.md). The math lives in ems/latent_direction.py.
"""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io, ui

from ..ems.alphas import format_alpha, parse_alphas
from ..ems.latent_direction import AXES, MODES, SPECTRA, apply_direction, blend_mask
from .common import (
    CATEGORY,
    LOG,
    check_finite_inputs,
    check_finite_output,
    check_latent_layout,
    node_error,
    node_errors,
    repeat_latent,
)
from .schema import EDITING_WORDS, schema

NODE = "EMS Latent Direction"
ALPHA_LIMIT = 10.0
MAX_RANK = 4096


def batch_alphas(latent: dict, alpha: float, alphas: str) -> tuple[dict, list[float]]:
    """The latent batch and one α per item: a sweep string overrides ``alpha``.

    A batch-1 latent meeting k alphas is repeated k times with the same ``batch_index`` (so a
    sampler gives every item the same noise and the items differ only by α); a batch of k is
    edited item by item; any other batch is refused.
    """
    size = int(latent["samples"].shape[0])
    if not (alphas or "").strip():
        return latent, [float(alpha)] * size
    with node_errors(NODE):
        values = parse_alphas(alphas)
    if size == 1 and len(values) > 1:
        return repeat_latent(latent, len(values)), values
    if size != len(values):
        raise node_error(
            NODE,
            f"alphas lists {len(values)} values but latent has a batch of {size}. Use a batch-1 "
            "latent (it is repeated once per α), one α per item, or clear 'alphas'.",
        )
    return latent, values


SEARCH_ALIASES = [*EDITING_WORDS, "svd", "singular values", "latent direction", "reference image edit"]


def image_layout(samples: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) from an image latent or a single-frame (B, C, 1, H, W) one."""
    return samples.squeeze(2) if samples.ndim == 5 else samples


class EMSLatentDirection(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            search_aliases=SEARCH_ALIASES,
            node_id="EMSLatentDirection",
            display_name="EMS Latent Direction",
            category=f"{CATEGORY}/latent",
            description=(
                "Moves a clean image latent toward 'reference_b' and away from 'reference_a' by α. "
                "linear: latent + α(b − a) (the EMS paper's Fig. 3b). svd: the change of the singular "
                "values from a to b applied to the latent's own SVD, so it keeps its singular vectors "
                "(our reading of arXiv 2502.02225). Clean latent in, clean latent out: continue with "
                "KSampler (denoise < 1), EMS CSDS Latent Edit or VAE Decode."
            ),
            inputs=[
                io.Latent.Input("latent", tooltip="The image to edit: a clean latent from VAE Encode (any batch)."),
                io.Latent.Input(
                    "reference_a",
                    tooltip="The pair's 'without' side, clean, same size as latent (batch 1 "
                    "or one per item). For 'make it like a reference photo', "
                    "connect the latent itself here.",
                ),
                io.Latent.Input(
                    "reference_b",
                    tooltip="The pair's 'with' side: a reference photo's latent, or the "
                    "image generated from the attribute prompt with the same seed.",
                ),
                io.Float.Input(
                    "alpha",
                    default=1.0,
                    min=-ALPHA_LIMIT,
                    max=ALPHA_LIMIT,
                    step=0.01,
                    tooltip="Edit strength: 0 = the latent unchanged, 1 = the full a → b change (linear "
                    "with reference_a = latent: exactly reference_b), negative = the opposite, "
                    "above 1 = exaggerated. Ignored when 'alphas' is set.",
                ),
                io.Combo.Input(
                    "mode",
                    options=list(MODES),
                    default="linear",
                    tooltip="linear: latent + α(b − a), moves content and layout too. svd: only the "
                    "singular values change, the latent keeps its singular vectors "
                    "(its structure/identity); weaker but more conservative.",
                ),
                io.Combo.Input(
                    "axes",
                    options=list(AXES),
                    default="per_channel",
                    tooltip="svd only — which matrices are decomposed. per_channel: each latent channel "
                    "as an H×W matrix (rows × columns of the image). channels_x_pixels: one "
                    "C×(H·W) matrix (channels × positions), at most C singular values.",
                ),
                io.Int.Input(
                    "rank",
                    default=0,
                    min=0,
                    max=MAX_RANK,
                    tooltip="svd only — move only the k largest singular values (coarse structure, "
                    "colour/energy); 0 = all. Must not exceed min(rows, columns) of the matrices.",
                ),
                io.Combo.Input(
                    "spectrum",
                    options=list(SPECTRA),
                    default="shift",
                    tooltip="svd only — how the pair's change is measured and scaled. shift: "
                    "σ' = σ + α(σ_b − σ_a), spectra matched by rank (clamped at 0). ratio: "
                    "σ' = σ·(σ_b/σ_a)^α (relative). project: the pair measured along the "
                    "latent's own singular vectors, u_iᵀ(b − a)v_i (signed, no rank matching).",
                ),
                io.String.Input(
                    "alphas",
                    default="",
                    optional=True,
                    tooltip='Optional α sweep, e.g. "0, 0.5, 1" or "-1:2:7": a batch-1 latent comes '
                    "back once per α (same noise index, so a sampler renders a clean sweep). "
                    "Empty = use 'alpha'.",
                ),
            ],
            outputs=[
                io.Latent.Output(
                    "edited_latent",
                    display_name="latent",
                    tooltip="The edited clean latent, same size; batch = latent's (or one per α).",
                ),
                io.String.Output(
                    "labels", display_name="labels", tooltip="One label per item, e.g. 'α=0.5', for EMS Labelled Grid."
                ),
            ],
        )

    @classmethod
    def execute(cls, latent, reference_a, reference_b, alpha, mode, axes, rank, spectrum, alphas="") -> io.NodeOutput:
        for name, value in (("latent", latent), ("reference_a", reference_a), ("reference_b", reference_b)):
            check_latent_layout(NODE, name, value)
        check_finite_inputs(NODE, latent=latent, reference_a=reference_a, reference_b=reference_b)
        latent, values = batch_alphas(latent, alpha, alphas)
        # A single-frame latent (Qwen-Image's VAE: batch, channels, 1, height, width) is edited as the
        # image it is and given back in its own layout.
        frames = latent["samples"].ndim == 5
        samples = image_layout(latent["samples"])
        a = image_layout(reference_a["samples"]).to(samples.device)
        b = image_layout(reference_b["samples"]).to(samples.device)
        if a.shape == b.shape and torch.equal(a, b):
            LOG.warning(
                "%s: reference_a and reference_b are identical, so there is no direction; the latent "
                "comes back unchanged.",
                NODE,
            )
        options = {"axes": axes, "rank": int(rank), "spectrum": spectrum} if mode == "svd" else {}
        with node_errors(NODE):
            edited = apply_direction(samples, a, b, torch.tensor(values, dtype=torch.float64), mode, **options)
        # An inpainting mask limits the edit to where the sampler may change the image; it stays
        # on the output so the sampler respects it too.
        edited = blend_mask(samples, edited, latent.get("noise_mask"))
        out = {**latent, "samples": edited.unsqueeze(2) if frames else edited}
        check_finite_output(NODE, "latent", out)
        labels = "\n".join(format_alpha(v) for v in values)
        return io.NodeOutput(out, labels, ui=ui.PreviewText(labels))
