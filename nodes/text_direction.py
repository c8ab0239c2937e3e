"""EMSTextDirection: c = base + α·(c1 − c0) on tokens and pooled (EMS's Manipulate step)."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..ems.alphas import SAFE_RANGE, outside_safe_range
from ..ems.conditioning import ConditioningMismatch, manipulate_conditioning
from .common import CATEGORY, LOG, node_error

NODE = "EMS Text Direction"
ALPHA_LIMIT = 10.0


def alpha_input():
    return io.Float.Input(
        "alpha", default=1.0, min=-ALPHA_LIMIT, max=ALPHA_LIMIT, step=0.01,
        tooltip=(f"Edit strength α: 0 = source, 1 = target, between = partial edit, negative = the "
                 f"opposite edit, above 1 = exaggerated. Usually safe within {SAFE_RANGE[0]:g}…"
                 f"{SAFE_RANGE[1]:g}; too large an α breaks the image (the paper's Prop. 1)."))


def direction_inputs():
    return [
        io.Conditioning.Input("source", tooltip="c0: the source caption's conditioning."),
        io.Conditioning.Input("target", tooltip="c1: the target caption's conditioning (same token length as source)."),
    ]


def pooled_input():
    return io.Boolean.Input(
        "manipulate_pooled", default=True,
        tooltip="Also move the pooled CLIP vector (the paper does). Off keeps the base's pooled vector.")


def base_input():
    return io.Conditioning.Input(
        "base", optional=True,
        tooltip="Start point (default: source). Chain several directions by feeding one node's "
                "output as the next one's base: C0 + Λ(C1 − C0) for multi-attribute edits.")


def warn_unsafe(node: str, alphas: list[float]) -> None:
    risky = outside_safe_range(alphas)
    if risky:
        LOG.warning("%s: alpha %s is outside %g…%g; expect a broken image (paper, Prop. 1).",
                    node, ", ".join(f"{a:g}" for a in risky), *SAFE_RANGE)


class EMSTextDirection(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EMSTextDirection",
            display_name="EMS Text Direction",
            category=f"{CATEGORY}/text",
            description=("Moves the conditioning along the text direction: base + α·(target − "
                         "source), on the token embeddings and on the pooled embedding."),
            inputs=[*direction_inputs(), alpha_input(), pooled_input(), base_input()],
            outputs=[io.Conditioning.Output("conditioning", display_name="conditioning",
                                            tooltip="c̃ = base + α(c1 − c0); use as the sampler's positive.")],
        )

    @classmethod
    def execute(cls, source, target, alpha, manipulate_pooled, base=None) -> io.NodeOutput:
        warn_unsafe(NODE, [alpha])
        try:
            cond = manipulate_conditioning(source, target, alpha, manipulate_pooled, base, node=NODE)
        except ConditioningMismatch as e:
            raise node_error(NODE, str(e)) from None
        return io.NodeOutput(cond)
