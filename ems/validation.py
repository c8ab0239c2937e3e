"""One validation layer for the float inputs of every EMS node, plain Python.

ComfyUI checks a FLOAT widget against its ``min``/``max`` before a graph runs, but ``NaN`` passes
every comparison (``nan < min`` and ``nan > max`` are both False) and ``inf`` can arrive through the
API or a hand-edited workflow. A NaN α, cfg or λ makes every latent NaN and the saved PNG black,
marked success. So each float input is declared once here — its range and why — and the same
declaration gives the widget its bounds (``nodes/common.py: float_input``) and checks the value
at run time (``check``), for the nodes and for code that calls the method directly (bench).

The ranges are where the math is stable, not taste:
- ``alpha``: ±10 for both EMS Text Direction and EMS Alpha Sweep (the nodes promise at least
  ±4). Beyond ``SAFE_ALPHA`` the image usually breaks (our rule of thumb from the text side;
  the paper's Prop. 1 says a too-large α leaves the model's domain but gives no number), so the
  nodes allow it and warn.
- ``constraint`` λ and the step sizes η: the proximal term of the CSDS update contracts
  ``z − z_0`` by ``(1 − η·λ·μ)`` per step, with μ ∈ [0, 1/σ] (see ``ems/csds.py``); it cannot
  overshoot while ``λ·η ≤ σ``. The widgets bound η ≤ 1 and λ ≤ 10; ``ems.csds.check_stable``
  refuses λ·η_0 > σ once σ is known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SAFE_ALPHA = (-2.0, 3.0)


class InputError(ValueError):
    """An input the method cannot take; the message names the input, the cause and the fix.

    The base of every refusal in ``ems``: the messages name inputs ('source', 'alpha'), never a
    node, because the method does not know which node (or script) called it. ``nodes/common.py``
    turns these into errors that name the node.
    """


@dataclass(frozen=True)
class FloatRange:
    """A float input's accepted closed range and the reason for it (shown in errors and tooltips)."""

    name: str
    lo: float
    hi: float
    why: str = ""

    def check(self, value) -> float:
        """``value`` as a float if it is finite and within [lo, hi]; else :class:`InputError`."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{self.name} must be a number (got {value!r}).") from None
        if not math.isfinite(number):
            raise InputError(
                f"{self.name} is {number!r}; it must be a finite number between "
                f"{self.lo:g} and {self.hi:g}. A workflow or API request set it to "
                f"{number!r}: type a number in the widget."
            )
        if not self.lo <= number <= self.hi:
            why = f" ({self.why})" if self.why else ""
            raise InputError(f"{self.name} = {number:g} is outside {self.lo:g} … {self.hi:g}{why}.")
        return number

    def describe(self) -> str:
        return f"{self.lo:g} … {self.hi:g}"


ALPHA = FloatRange("alpha", -10.0, 10.0, "far beyond ±3 the edited image breaks")
CFG = FloatRange("cfg", 0.0, 100.0, "classifier-free guidance scale")
CONSTRAINT = FloatRange("constraint", 0.0, 10.0, "λ·step_start must also stay ≤ σ, the first sigma")
STEP_START = FloatRange("step_start", 0.0, 1.0, "larger steps make the CSDS update diverge")
STEP_END = FloatRange("step_end", 0.0, 1.0, "larger steps make the CSDS update diverge")
TEMPERATURE = FloatRange("temperature", 0.0, 2.0, "the range OpenAI-compatible servers accept")
SOURCE_CFG = FloatRange("source_cfg", 0.0, 100.0, "classifier-free guidance scale of the source point")
LOCALITY = FloatRange("locality", 0.0, 1.0, "a share of the largest prediction difference; 0 = off")
DRIVE = FloatRange("drive", 0.0, 4.0, "beyond a few times the coupling's own velocity it overshoots")

# Every float input of every EMS node, by name: the HTTP-tier test checks each FLOAT widget the
# server reports against this table, so a new float input cannot skip the layer unnoticed.
FLOAT_INPUTS = {
    r.name: r for r in (ALPHA, CFG, CONSTRAINT, STEP_START, STEP_END, TEMPERATURE, SOURCE_CFG, LOCALITY, DRIVE)
}


def check_floats(ranges: dict[str, FloatRange] | list[FloatRange], **values) -> dict[str, float]:
    """Check every ``name=value`` against its range; returns the values as floats.

    ``ranges`` lists the FloatRange objects by their ``name``; an input without a declared range
    is a programming error (KeyError), so no float input slips past unchecked.
    """
    table = ranges if isinstance(ranges, dict) else {r.name: r for r in ranges}
    return {name: table[name].check(value) for name, value in values.items()}


def outside_safe_alpha(alphas) -> list[float]:
    """The alphas outside ``SAFE_ALPHA`` (allowed, but worth a warning)."""
    lo, hi = SAFE_ALPHA
    return [a for a in alphas if a < lo or a > hi]


def safe_alpha_warning(alphas) -> str:
    """The one warning both α nodes give (they prefix their name), or "" when every α is inside
    ``SAFE_ALPHA``."""
    risky = outside_safe_alpha(alphas)
    if not risky:
        return ""
    listed = ", ".join(f"{a:g}" for a in risky)
    return (
        f"alpha {listed} is outside {SAFE_ALPHA[0]:g} … {SAFE_ALPHA[1]:g}, where edits "
        "usually stay on the image (our rule of thumb); expect a broken image."
    )


# -- Text-encoder families -------------------------------------------------------------------------
# (token width, pooled width, family) of each family's conditioning, as ComfyUI's text encoders
# produce it (comfy/text_encoders, comfy/sd1_clip.py). CLIPTextEncode always stores a
# ``pooled_output`` (None for encoders without one: T5 and LLM encoders), so a family is matched by
# its token width, and the pooled width tells apart families that share one (SDXL and AuraFlow:
# 2048; SD3, Flux and the T5-only models: 4096). ``None`` as pooled width: the family has none.
CONDITIONING_FAMILIES = (
    (768, 768, "SD1.x (CLIP-L)"),
    (1024, 1024, "SD2.x (OpenCLIP-H)"),
    (2048, 1280, "SDXL (CLIP-L + CLIP-G)"),
    (2048, None, "AuraFlow (Pile-T5-XL)"),
    (4096, 2048, "SD3/SD3.5 (CLIP-L + CLIP-G + T5)"),
    (4096, 768, "Flux (T5 + CLIP-L)"),
    (4096, None, "a T5-XXL-only model (Chroma, Wan, LTX-Video)"),
    (3584, None, "Qwen-Image (Qwen2.5-VL 7B)"),
    (2304, None, "Lumina 2 (Gemma 2 2B)"),
)


def conditioning_family(token_width: int, pooled_width) -> str:
    """A readable name for the text encoder a conditioning came from, from its widths.

    Both widths matching names the family; else the token width alone does (the first family of
    that width: a conditioning whose pooled vector was dropped or replaced is still that family's).
    """
    same_tokens = [row for row in CONDITIONING_FAMILIES if row[0] == token_width]
    for _, pooled, name in same_tokens:
        if pooled == pooled_width:
            return name
    if same_tokens:
        return same_tokens[0][2]
    pooled = f", {pooled_width}-wide pooled" if pooled_width else ", no pooled vector"
    return f"an encoder with {token_width}-wide tokens{pooled}"


def family_mismatch(
    input_name: str, model_family: str, model_tokens, model_pooled, cond_tokens: int, cond_pooled, fix: str = ""
) -> str:
    """The error message when a conditioning's widths do not fit the model, or "" when they do.

    ``model_family``: the model's readable family name; ``model_tokens`` / ``model_pooled``: the
    widths the model's text projections take (None = unknown, not checked; pooled 0 = the model
    takes no pooled vector). ``cond_pooled``: the width of the entry's ``pooled_output`` or None.
    ``fix``: how to get the right encoder (the caller knows the loaders; the method names none).
    """
    token_bad = model_tokens is not None and cond_tokens != model_tokens
    pooled_bad = model_pooled is not None and (cond_pooled or 0) != model_pooled
    if not (token_bad or pooled_bad):
        return ""
    expects = f"{model_tokens}-wide tokens" if model_tokens is not None else "its own token width"
    if model_pooled == 0:
        expects += " and no pooled vector"
    elif model_pooled is not None:
        expects += f" and a {model_pooled}-wide pooled vector"
    fix = fix or f"the text encoder that belongs to this {model_family} model"
    pooled_text = f"{cond_pooled}-wide pooled vector" if cond_pooled else "no pooled vector"
    return (
        f"'{input_name}' comes from {conditioning_family(cond_tokens, cond_pooled)} "
        f"({cond_tokens}-wide tokens, {pooled_text}), but the model is {model_family}, which expects "
        f"{expects}. Encode the prompts with the model's own text encoder: {fix}."
    )
