"""EMSTextDirection: c = base + α·(c1 − c0) on tokens and pooled (EMS's Manipulate step)."""

from __future__ import annotations

from comfy_api.v0_0_2 import io, ui

from ..ems import validation as v
from ..ems.conditioning import manipulate_conditioning
from .common import CATEGORY, LOG, check_finite_inputs, check_finite_output, check_floats, float_input, node_errors
from .schema import EDITING_WORDS, schema

NODE = "EMS Text Direction"
ALPHA_LIMIT = v.ALPHA.hi
ALPHA_HELP = (
    f"Allowed {v.ALPHA.describe()}; edits usually stay on the image within {v.SAFE_ALPHA[0]:g} … "
    f"{v.SAFE_ALPHA[1]:g} (our rule of thumb; the paper's Prop. 1 says too large an α breaks the "
    "image) and the node warns outside it. The α is recorded on the conditioning: EMS CSDS Latent "
    "Edit scales its image-side push by it (α = 0: none)."
)


def alpha_input():
    return float_input(
        v.ALPHA,
        1.0,
        0.01,
        tooltip=(
            "Edit strength α: 0 = source, 1 = target, between = partial edit, negative = the "
            "opposite edit, above 1 = exaggerated. " + ALPHA_HELP
        ),
    )


def direction_inputs():
    return [
        io.Conditioning.Input("source", tooltip="c0: the source caption's conditioning."),
        io.Conditioning.Input("target", tooltip="c1: the target caption's conditioning (same token length as source)."),
    ]


def pooled_input():
    return io.Boolean.Input(
        "manipulate_pooled",
        default=True,
        tooltip="Also move the pooled CLIP vector (the paper does). Off keeps the base's pooled vector.",
    )


def base_input():
    return io.Conditioning.Input(
        "base",
        optional=True,
        tooltip="Start point (default: source). Chain several directions by feeding one node's "
        "output as the next one's base: C0 + Λ(C1 − C0) for multi-attribute edits.",
    )


def warn_unsafe(node: str, alphas: list[float]) -> str:
    """Log the shared safe-range warning and return it ("" when every α is inside) for the node's UI."""
    warning = v.safe_alpha_warning(alphas)
    if not warning:
        return ""
    message = f"{node}: {warning}"
    LOG.warning("%s", message)
    return message


SEARCH_ALIASES = [*EDITING_WORDS, "prompt interpolation", "text direction", "conditioning arithmetic"]


class EMSTextDirection(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            search_aliases=SEARCH_ALIASES,
            node_id="EMSTextDirection",
            display_name="EMS Text Direction",
            category=f"{CATEGORY}/text",
            description=(
                "Moves the conditioning along the text direction: base + α·(target − "
                "source), on the token embeddings and on the pooled embedding, and records α "
                "on it for EMS CSDS Latent Edit."
            ),
            inputs=[*direction_inputs(), alpha_input(), pooled_input(), base_input()],
            outputs=[
                io.Conditioning.Output(
                    "conditioning",
                    display_name="conditioning",
                    tooltip="c̃ = base + α(c1 − c0); use as the sampler's positive.",
                )
            ],
        )

    @classmethod
    def execute(cls, source, target, alpha, manipulate_pooled, base=None) -> io.NodeOutput:
        alpha = check_floats(NODE, [v.ALPHA], alpha=alpha)["alpha"]
        warning = warn_unsafe(NODE, [alpha])
        check_finite_inputs(NODE, source=source, target=target, base=base)
        with node_errors(NODE):
            cond = manipulate_conditioning(source, target, alpha, manipulate_pooled, base)
        check_finite_output(NODE, "conditioning", cond)
        # Always a text ("" = no warning) so the node's shown warning clears (web/js/ems_warnings.js).
        return io.NodeOutput(cond, ui=ui.PreviewText(warning))
