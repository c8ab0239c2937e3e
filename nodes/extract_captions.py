"""EMSExtractCaptions: EMS's Extract step — a vision LLM, reached through a provider defined on the
machine, writes the captions.

A workflow is untrusted input: the graph names a ``provider``; the server and the key
behind that name come from the machine (:mod:`comfyui_ems.llm_io.providers`). Inputs an early EMS graph still carries
(``base_url``, ``api_key_env``) are not declared, so ComfyUI drops them before ``execute``; the node
reads its own raw inputs from the hidden prompt only to *refuse* such a graph with a message that
says what changed, never to use them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from pathlib import Path

import comfy.model_management
import folder_paths
from comfy_api.v0_0_2 import io, ui

from ..llm_io import client as llm
from ..llm_io.caption_cache import CACHE_DIR_ENV, CaptionCache, cache_key
from ..ems.captions import (
    PROMPT_VERSION,
    SCHEMA,
    CaptionError,
    Captions,
    derive_attribute,
    extract_captions,
    is_cache_entry,
    word_diff,
)
from ..llm_io.providers import ProviderError, get_provider, resolve_key, legacy_message
from ..ems.validation import TEMPERATURE
from .common import CATEGORY, LOG, check_floats, float_input, node_error, node_errors
from .schema import EDITING_WORDS, schema

NODE = "EMS Extract Captions"
V1_INPUTS = ("base_url", "api_key_env")


def cache_dir() -> Path:
    """``$EMS_CACHE_DIR``, else ``<ComfyUI user dir>/ems/caption_cache`` (kept across restarts,
    unlike ComfyUI's temp directory, which is emptied at every start)."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    return Path(folder_paths.get_user_directory()) / "ems" / "caption_cache"


def preview(c: Captions, origin: str, warnings=()) -> str:
    lines = [
        f"source: {c.source}",
        f"target: {c.target}",
        f"attribute: {c.attribute}",
        f"edit words: {c.edit_words}",
        f"({origin})",
    ]
    return "\n".join(lines + [f"warning: {w}" for w in warnings])


def interrupted() -> bool:
    """ComfyUI's Cancel flag (set by /interrupt), polled while the LLM request is in flight."""
    return comfy.model_management.processing_interrupted()


def raise_interrupted():
    """End the run the way ComfyUI's own nodes do on Cancel (reported as interrupted, not failed)."""
    comfy.model_management.throw_exception_if_processing_interrupted()
    raise comfy.model_management.InterruptProcessingException()


def legacy_inputs(prompt, unique_id) -> dict:
    """The old inputs (base_url, api_key_env) this node carries in the queued prompt, if any."""
    entry = prompt.get(str(unique_id)) if isinstance(prompt, dict) else None
    inputs = entry.get("inputs") if isinstance(entry, dict) else None
    if not isinstance(inputs, dict):
        return {}
    return {k: inputs[k] for k in V1_INPUTS if k in inputs}


# ComfyUI writes a node's fingerprint into the queued prompt, so it lands in /history and in the
# metadata of every PNG saved downstream: it is a keyed digest, not the provider's URL. The key is new
# at every start, which costs nothing (ComfyUI's output cache does not survive a restart either).
_FINGERPRINT_KEY = os.urandom(16)


def provider_fingerprint(name) -> str:
    """A digest of what ``name`` resolves to — name, server and key variable (never the key) — or of
    why it cannot be used; it changes when the provider file changes what the name means."""
    try:
        p = get_provider(name.strip() if isinstance(name, str) else "")
        meaning = ["provider", p.name, p.base_url, p.api_key_env]
    except ProviderError as e:
        meaning = ["unusable", str(e)]
    return hmac.new(_FINGERPRINT_KEY, json.dumps(meaning).encode(), hashlib.sha256).hexdigest()[:32]


def image_pixels(image):
    """The image as the LLM would see it, or an error naming the input and the usual cause."""
    try:
        return llm.image_pixels(image)
    except llm.NonFiniteImage as e:
        raise node_error(
            NODE,
            f"the input 'image' holds NaN or infinite values ({e.bad:,} of {e.total:,}), so "
            "there is no picture to caption — usually an fp16 VAE overflow upstream: run the VAE "
            "in fp32 (start ComfyUI with --fp32-vae). Nothing was sent to the LLM or cached.",
        ) from None


SEARCH_ALIASES = [*EDITING_WORDS, "llm captions", "vlm caption", "instruction edit"]


class EMSExtractCaptions(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            search_aliases=SEARCH_ALIASES,
            node_id="EMSExtractCaptions",
            display_name="EMS Extract Captions (LLM)",
            category=f"{CATEGORY}/extract",
            description=(
                "Asks a vision LLM to caption the image and to write the target caption that differs "
                "only in the edited words, plus the attribute phrase. The workflow names a provider; "
                "its server and key are defined on the machine running ComfyUI (built in: openai, "
                "ollama; more in ~/.config/ems/llm.json), never in the workflow. Answers are cached "
                "on disk."
            ),
            # Not an output node: ComfyUI then runs it only when a node that runs reads one of its
            # outputs. As an output node it ran with nothing connected, so a graph could hide it and
            # send any image LoadImage can read to the user's provider on every queue. To see the
            # captions alone, connect an output to Preview Any.
            is_output_node=False,
            inputs=[
                io.Image.Input(
                    "image", tooltip="The image to edit (one image; the LLM sees it downscaled to 1024 px)."
                ),
                io.String.Input(
                    "instruction",
                    multiline=True,
                    default="",
                    tooltip='The edit in plain words, e.g. "make her coat purple".',
                ),
                io.String.Input(
                    "provider",
                    default="openai",
                    tooltip="The NAME of an LLM provider defined on this machine: 'openai' "
                    "(OPENAI_API_KEY) and 'ollama' (local, no key) are built in; define "
                    "more in ~/.config/ems/llm.json ($EMS_LLM_CONFIG). The server and the "
                    "key come from there, never from the workflow.",
                ),
                io.String.Input(
                    "model",
                    default="gpt-4o",
                    tooltip="Vision model name on the provider, e.g. gpt-4o, gpt-4o-mini, or "
                    "qwen2.5vl / llama3.2-vision for Ollama.",
                ),
                float_input(
                    TEMPERATURE,
                    default=0.0,
                    step=0.05,
                    tooltip="Sampling temperature; 0 gives the most repeatable captions.",
                ),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=2**31 - 1,
                    control_after_generate=False,
                    tooltip="Request seed (servers that support it answer more repeatably). Part "
                    "of the cache key: a new seed asks again.",
                ),
                io.Boolean.Input(
                    "refresh",
                    default=False,
                    tooltip="Ask the LLM again instead of using the disk cache (every queue "
                    "while on). The new answer replaces the cached one.",
                ),
                io.String.Input(
                    "source_prompt",
                    optional=True,
                    multiline=True,
                    default="",
                    tooltip="Optional: your own source caption (the LLM does not write it). "
                    "With both captions set, no LLM is called: fully offline.",
                ),
                io.String.Input(
                    "target_prompt",
                    optional=True,
                    multiline=True,
                    default="",
                    tooltip="Optional: your own target caption — the source with only the edited words changed.",
                ),
            ],
            # Output ids must differ from input ids (V3 rule); users see the display names.
            outputs=[
                io.String.Output("source_out", display_name="source_prompt", tooltip="t0: the image as it is."),
                io.String.Output("target_out", display_name="target_prompt", tooltip="t1: t0 with the edit."),
                io.String.Output(
                    "attribute_prompt",
                    display_name="attribute_prompt",
                    tooltip="The attribute phrase CSDS pushes toward (e.g. 'purple coat').",
                ),
                io.String.Output(
                    "edit_words",
                    display_name="edit_words",
                    tooltip="The target's changed words (spans separated by ', ').",
                ),
            ],
            # Only to recognise (and refuse) an early EMS graph; see the module docstring.
            hidden=[io.Hidden.prompt, io.Hidden.unique_id],
        )

    @classmethod
    def fingerprint_inputs(cls, refresh=False, provider="", **kwargs):
        # ComfyUI reuses a node's outputs while its inputs and this fingerprint are unchanged. With
        # refresh on, a new one on every queue makes it run (and ask the LLM) again; otherwise it is
        # what the provider name means on this machine now, so an edited provider file takes effect
        # at the next queue instead of the old server's answer being reused.
        return time.time_ns() if refresh else "cached " + provider_fingerprint(provider)

    @classmethod
    def execute(
        cls, image, instruction, provider, model, temperature, seed, refresh, source_prompt="", target_prompt=""
    ) -> io.NodeOutput:
        hidden = getattr(cls, "hidden", None)
        old = legacy_inputs(getattr(hidden, "prompt", None), getattr(hidden, "unique_id", None))
        if old:
            # Refused even when a provider is named too: a graph that carries a server URL is
            # either an old workflow or a crafted one, and the user should know which inputs are dead.
            raise node_error(
                NODE,
                legacy_message(
                    *(v if isinstance(v, str) else "" for v in (old.get("base_url", ""), old.get("api_key_env", "")))
                ),
            )
        temperature = check_floats(NODE, [TEMPERATURE], temperature=temperature)["temperature"]
        source, target = (source_prompt or "").strip(), (target_prompt or "").strip()
        if source and target:
            attribute = derive_attribute(source, target)
            if attribute:
                return cls.finish(Captions(source, target, attribute), "from your overrides, no LLM call")
            if not word_diff(source, target):
                raise node_error(
                    NODE, "source_prompt and target_prompt are identical; the target must contain the edit."
                )
            # A diff too scattered to name: only the attribute phrase is asked for.
        captions, origin, warnings = cls.ask(
            image, instruction, provider.strip(), model.strip(), temperature, seed, refresh, source, target
        )
        return cls.finish(captions, origin, warnings)

    @classmethod
    def ask(cls, image, instruction, provider_name, model, temperature, seed, refresh, source, target):
        if not instruction.strip():
            raise node_error(NODE, "instruction is empty; describe the edit, e.g. 'make her coat purple'.")
        if not model:
            raise node_error(NODE, "model is empty; name a vision model on the provider (e.g. gpt-4o).")
        if image.shape[0] != 1:
            raise node_error(
                NODE, f"image has a batch of {image.shape[0]}; EMS edits one image. Pick one with 'Image From Batch'."
            )
        with node_errors(NODE, ProviderError):
            provider = get_provider(provider_name)
        pixels = image_pixels(image)
        key = cache_key(
            pixels.tobytes(),
            pixels.shape,
            instruction=instruction.strip(),
            model=model,
            provider=provider.name,
            base_url=provider.base_url,
            prompt_version=PROMPT_VERSION,
            temperature=float(temperature),
            seed=int(seed),
            source_override=source,
            target_override=target,
        )
        cache = CaptionCache(cache_dir())
        hit = None if refresh else cache.get(key, valid=is_cache_entry)
        if hit is not None:
            cached = Captions(hit["source_prompt"], hit["target_prompt"], hit["attribute_prompt"])
            return cached, "from the disk cache", list(hit.get("warnings") or [])
        config = llm.LLMConfig(model=model, provider=provider, temperature=float(temperature), seed=int(seed))
        api_key = None
        # Scrubbed again here: a caption error quotes the server's reply, which may echo the key.
        # (``clean`` reads api_key when an error is reported, so it sees the resolved key.)
        with node_errors(NODE, llm.LLMError, ProviderError, CaptionError, clean=lambda m: llm.scrub(m, api_key)):
            try:
                api_key = resolve_key(provider)
                client = llm.ChatClient(config, api_key, cancelled=interrupted)
                captions, warnings = extract_captions(
                    lambda messages: client.complete(messages, schema=SCHEMA, schema_name="ems_captions"),
                    instruction,
                    llm.image_data_url(pixels),
                    source or None,
                    target or None,
                )
            except llm.Cancelled:
                raise_interrupted()
        warnings = [llm.scrub(w, api_key) for w in warnings]
        for w in warnings:
            LOG.warning("%s: after one repair request the captions still have a problem: %s", NODE, w)
        cache.put(
            key,
            {**captions.as_dict(), "warnings": warnings},
            model=model,
            provider=provider.name,
            base_url=provider.base_url,
            instruction=instruction.strip(),
            prompt_version=PROMPT_VERSION,
        )
        return captions, f"asked {model} at provider '{provider.name}'", warnings

    @classmethod
    def finish(cls, c: Captions, origin: str, warnings=()) -> io.NodeOutput:
        return io.NodeOutput(
            c.source, c.target, c.attribute, c.edit_words, ui=ui.PreviewText(preview(c, origin, warnings))
        )
