"""EMSEncodePrompts: encode source/target/attribute/negative to one identical token shape."""

from __future__ import annotations

from comfy_api.v0_0_2 import io, ui

from ..ems import tokens as ems_tokens
from ..ems.captions import derive_attribute, edit_words, word_diff
from ..ems.conditioning import describe_tokens, share_mask
from .common import CATEGORY, LOG, check_finite_output, node_error, node_errors
from .schema import EDITING_WORDS, schema

NODE = "EMS Encode Prompts"
PROMPTS = ("source", "target", "attribute", "negative")


def _sub_tokenizer(tokenizer, stream: str):
    for name in (stream, f"clip_{stream}"):
        sub = getattr(tokenizer, name, None)
        if sub is not None and hasattr(sub, "embedding_key"):
            return sub
    return None


def attribute_fallback(source: str, target: str) -> str:
    """The attribute CSDS pushes toward when none is typed: the edited words, never the target.

    With the full target caption as attribute the CSDS drive at α = 1 is exactly zero (c̃ = c1 =
    attribute), so an empty attribute falls back to the words the edit changed: the diff's
    phrase ("black suit" → "red suit" gives "red suit"), else the changed words alone.
    """
    return derive_attribute(source, target) or edit_words(source, target)


def prompt_warnings(source: str, target: str) -> list[str]:
    """Warnings about prompts that make an edit that does nothing (shown on the node and logged)."""
    if not word_diff(source, target):
        same = "identical" if source.strip() == target.strip() else "the same words"
        return [
            f"{NODE}: source_prompt and target_prompt are {same}, so the text direction is zero and "
            "EMS will not edit anything. Change the words the edit is about in target_prompt."
        ]
    return []


def tokenize_equal(clip, prompts: dict[str, str]):
    """Tokenize every prompt to identical chunk counts and lengths.

    Returns the (possibly option-carrying) clip clone and ``{name: tokens}``.
    """
    clip = clip.clone()
    tokens = {k: clip.tokenize(p) for k, p in prompts.items()}
    longest = ems_tokens.variable_length_streams(tokens)
    if longest:
        for stream, length in longest.items():
            sub = _sub_tokenizer(clip.tokenizer, stream)
            if sub is None:
                raise node_error(
                    NODE,
                    f"cannot equalise the '{stream}' token stream of this text "
                    "encoder; its tokenizer exposes no min-length option.",
                )
            clip.set_tokenizer_option(f"{sub.embedding_key}_min_length", length)
        tokens = {k: clip.tokenize(p) for k, p in prompts.items()}
    counts = ems_tokens.chunk_counts(tokens)
    if any(len(c) < counts[s] for t in tokens.values() for s, c in t.items()):
        empty = clip.tokenize("")
        tokens = {k: ems_tokens.pad_chunks(t, counts, empty) for k, t in tokens.items()}
    return clip, tokens


SEARCH_ALIASES = [*EDITING_WORDS, "prompt pair", "source target prompt"]


class EMSEncodePrompts(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            search_aliases=SEARCH_ALIASES,
            node_id="EMSEncodePrompts",
            display_name="EMS Encode Prompts",
            category=f"{CATEGORY}/text",
            description=(
                "Encodes the four EMS prompts so that all of them have the same token "
                "length (same number of CLIP chunks, same T5 length) — without zero "
                "padding — which lets EMS interpolate them token by token and lets SD3 "
                "evaluate them in one batched model call."
            ),
            inputs=[
                io.Clip.Input("clip", tooltip="The text encoder (for SD3: CLIP-L + CLIP-G + T5-XXL)."),
                io.String.Input(
                    "source_prompt",
                    multiline=True,
                    default="",
                    tooltip="t0: a caption of the image as it is (EMS Extract Captions writes it).",
                ),
                io.String.Input(
                    "target_prompt",
                    multiline=True,
                    default="",
                    tooltip="t1: the same caption with only the edited words changed.",
                ),
                io.String.Input(
                    "attribute_prompt",
                    multiline=True,
                    default="",
                    tooltip="The attribute phrase CSDS pushes toward (e.g. 'purple coat'). "
                    "Empty = the words the target changes (e.g. 'red suit'), never the "
                    "whole target caption (that would make CSDS do nothing at α = 1).",
                ),
                io.String.Input(
                    "negative_prompt",
                    multiline=True,
                    default="",
                    tooltip="Negative prompt for classifier-free guidance (may be empty).",
                ),
            ],
            outputs=[
                io.Conditioning.Output("source", display_name="source", tooltip="c0 (source caption)."),
                io.Conditioning.Output("target", display_name="target", tooltip="c1 (target caption)."),
                io.Conditioning.Output(
                    "attribute", display_name="attribute", tooltip="The attribute conditioning for CSDS."
                ),
                io.Conditioning.Output("negative", display_name="negative", tooltip="The negative conditioning."),
            ],
        )

    @classmethod
    def execute(cls, clip, source_prompt, target_prompt, attribute_prompt, negative_prompt) -> io.NodeOutput:
        if clip is None:
            raise node_error(
                NODE,
                "no CLIP connected; connect the CLIP output of your SD3 loader "
                "(a checkpoint without text encoders needs 'TripleCLIPLoader').",
            )
        if not source_prompt.strip() or not target_prompt.strip():
            raise node_error(
                NODE,
                "source_prompt and target_prompt must both be set (connect EMS "
                "Extract Captions, or type the two captions).",
            )
        notes = prompt_warnings(source_prompt, target_prompt)
        attribute = attribute_prompt
        if not attribute_prompt.strip():
            attribute = attribute_fallback(source_prompt, target_prompt)
            if attribute:
                notes.append(f"{NODE}: attribute_prompt is empty; using the edited words {attribute!r}.")
            elif not notes:
                notes.append(
                    f"{NODE}: attribute_prompt is empty and the target only removes words; CSDS "
                    "pushes toward the empty prompt. Type the attribute to push toward."
                )
        for note in notes:
            LOG.warning("%s", note)
        prompts = {
            "source": source_prompt,
            "target": target_prompt,
            "attribute": attribute,
            "negative": negative_prompt,
        }
        clip, tokens = tokenize_equal(clip, prompts)
        conds = {k: clip.encode_from_tokens_scheduled(t) for k, t in tokens.items()}
        for name in PROMPTS:
            check_finite_output(NODE, name, conds[name])
        shapes = {k: tuple(c[0][0].shape[1:]) for k, c in conds.items()}
        if len(set(shapes.values())) > 1:
            listed = "; ".join(f"{k}: {describe_tokens(c[0][0])}" for k, c in conds.items())
            raise node_error(
                NODE,
                f"this text encoder produced unequal token lengths ({listed}); "
                "EMS cannot equalise it. Please report the model you use.",
            )
        # Language-model encoders mark pad tokens: every prompt attends to the same positions, so
        # a text direction at α = 0 / 1 is the source / target exactly (ems.conditioning.share_mask).
        with node_errors(NODE):
            conds = dict(zip(PROMPTS, share_mask([conds[k] for k in PROMPTS])))
        # Warnings go to the log and onto the node (web/js/ems_warnings.js shows the text; API
        # clients find it in /history/<prompt_id> → outputs → <this node's id> → "text").
        # Always a text ("" = nothing to say) so a warning shown on the node clears on the next run.
        return io.NodeOutput(*(conds[k] for k in PROMPTS), ui=ui.PreviewText("\n".join(notes)))
