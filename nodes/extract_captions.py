"""EMSExtractCaptions: EMS's Extract step — an OpenAI-compatible vision model writes the captions."""

from __future__ import annotations

import os
import time
from pathlib import Path

from comfy_api.v0_0_2 import io, ui

from ..ems import llm
from ..ems.caption_cache import CACHE_DIR_ENV, CaptionCache, cache_key
from ..ems.captions import (PROMPT_VERSION, SCHEMA, CaptionError, Captions, derive_attribute, extract_captions,
                            word_diff)
from .common import CATEGORY, LOG, node_error

NODE = "EMS Extract Captions"


def cache_dir() -> Path:
    """``$EMS_CACHE_DIR``, else ``<ComfyUI user dir>/ems/caption_cache`` (kept across restarts,
    unlike ComfyUI's temp directory, which is emptied at every start)."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    import folder_paths

    return Path(folder_paths.get_user_directory()) / "ems" / "caption_cache"


def preview(c: Captions, origin: str, warnings=()) -> str:
    lines = [f"source: {c.source}", f"target: {c.target}", f"attribute: {c.attribute}",
             f"edit words: {c.edit_words}", f"({origin})"]
    return "\n".join(lines + [f"warning: {w}" for w in warnings])


class EMSExtractCaptions(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EMSExtractCaptions",
            display_name="EMS Extract Captions (LLM)",
            category=f"{CATEGORY}/extract",
            description=("Asks a vision LLM (OpenAI or any OpenAI-compatible server) to caption the image "
                         "and to write the target caption that differs only in the edited words, plus the "
                         "attribute phrase. Answers are cached on disk; the API key is read from the "
                         "environment variable named in api_key_env, never from the workflow."),
            is_output_node=True,  # so the captions can be previewed before anything is wired to it
            inputs=[
                io.Image.Input("image", tooltip="The image to edit (one image; the LLM sees it downscaled "
                                                "to 1024 px)."),
                io.String.Input("instruction", multiline=True, default="",
                                tooltip='The edit in plain words, e.g. "make her coat purple".'),
                io.String.Input("model", default="gpt-4o",
                                tooltip="Vision model name on the server, e.g. gpt-4o, gpt-4o-mini, or "
                                        "llama3.2-vision / qwen2.5vl for Ollama."),
                io.String.Input("base_url", default="",
                                tooltip="OpenAI-compatible server root. Empty = OpenAI. Ollama: "
                                        "http://localhost:11434/v1; vLLM/LM Studio/OpenRouter/Azure: their /v1 URL."),
                io.String.Input("api_key_env", default="OPENAI_API_KEY",
                                tooltip="The NAME of the environment variable holding the key (never the key "
                                        "itself: widget values are saved in workflows and PNGs). Falls back to "
                                        "~/.config/ems/keys.json ($EMS_KEYS_FILE). Empty = no key (local servers)."),
                io.Float.Input("temperature", default=0.0, min=0.0, max=2.0, step=0.05,
                               tooltip="Sampling temperature; 0 gives the most repeatable captions."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=False,
                             tooltip="Request seed (servers that support it answer more repeatably). Part "
                                     "of the cache key: a new seed asks again."),
                io.Boolean.Input("refresh", default=False,
                                 tooltip="Ask the LLM again instead of using the disk cache (every queue "
                                         "while on). The new answer replaces the cached one."),
                io.String.Input("source_prompt", optional=True, multiline=True, default="",
                                tooltip="Optional: your own source caption (the LLM does not write it). "
                                        "With both captions set, no LLM is called: fully offline."),
                io.String.Input("target_prompt", optional=True, multiline=True, default="",
                                tooltip="Optional: your own target caption — the source with only the "
                                        "edited words changed."),
            ],
            # Output ids must differ from input ids (V3 rule); users see the display names.
            outputs=[
                io.String.Output("source_out", display_name="source_prompt", tooltip="t0: the image as it is."),
                io.String.Output("target_out", display_name="target_prompt", tooltip="t1: t0 with the edit."),
                io.String.Output("attribute_prompt", display_name="attribute_prompt",
                                 tooltip="The attribute phrase CSDS pushes toward (e.g. 'purple coat')."),
                io.String.Output("edit_words", display_name="edit_words",
                                 tooltip="The target's changed words (spans separated by ', ')."),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, refresh=False, **kwargs):
        # ComfyUI reuses a node's outputs while its inputs are unchanged; with refresh on, a new
        # fingerprint on every queue makes it run (and ask the LLM) again.
        return time.time_ns() if refresh else "cached"

    @classmethod
    def execute(cls, image, instruction, model, base_url, api_key_env, temperature, seed, refresh,
                source_prompt="", target_prompt="") -> io.NodeOutput:
        source, target = (source_prompt or "").strip(), (target_prompt or "").strip()
        if source and target:
            attribute = derive_attribute(source, target)
            if attribute:
                return cls.finish(Captions(source, target, attribute), "from your overrides, no LLM call")
            if not word_diff(source, target):
                raise node_error(NODE, "source_prompt and target_prompt are identical; the target must "
                                       "contain the edit.")
            # A diff too scattered to name: only the attribute phrase is asked for.
        captions, origin, warnings = cls.ask(image, instruction, model.strip(), base_url.strip(),
                                             api_key_env.strip(), temperature, seed, refresh, source, target)
        return cls.finish(captions, origin, warnings)

    @classmethod
    def ask(cls, image, instruction, model, base_url, api_key_env, temperature, seed, refresh, source, target):
        if not instruction.strip():
            raise node_error(NODE, "instruction is empty; describe the edit, e.g. 'make her coat purple'.")
        if not model:
            raise node_error(NODE, "model is empty; name a vision model on the server (e.g. gpt-4o).")
        if image.shape[0] != 1:
            raise node_error(NODE, f"image has a batch of {image.shape[0]}; EMS edits one image. Pick one "
                                   "with 'Image From Batch'.")
        pixels = llm.image_pixels(image)
        key = cache_key(pixels.tobytes(), pixels.shape, instruction=instruction.strip(), model=model,
                        base_url=base_url, prompt_version=PROMPT_VERSION, temperature=float(temperature),
                        seed=int(seed), source_override=source, target_override=target)
        cache = CaptionCache(cache_dir())
        hit = None if refresh else cache.get(key)
        if hit is not None:
            try:
                cached = Captions(hit["source_prompt"], hit["target_prompt"], hit["attribute_prompt"])
                return cached, "from the disk cache", list(hit.get("warnings") or [])
            except (KeyError, TypeError):
                LOG.warning("%s: ignoring a malformed cache entry; asking the LLM.", NODE)
        config = llm.LLMConfig(model=model, base_url=base_url, api_key_env=api_key_env,
                               temperature=float(temperature), seed=int(seed))
        try:
            client = llm.ChatClient(config, llm.resolve_api_key(api_key_env))
            captions, warnings = extract_captions(
                lambda messages: client.complete(messages, schema=SCHEMA, schema_name="ems_captions"),
                instruction, llm.image_data_url(pixels), source or None, target or None)
        except (llm.LLMError, CaptionError) as e:
            raise node_error(NODE, str(e)) from None
        for w in warnings:
            LOG.warning("%s: after one repair request the captions still have a problem: %s", NODE, w)
        cache.put(key, {**captions.as_dict(), "warnings": warnings}, model=model, base_url=base_url or llm.OPENAI_URL,
                  instruction=instruction.strip(), prompt_version=PROMPT_VERSION)
        return captions, f"asked {model} at {config.server}", warnings

    @classmethod
    def finish(cls, c: Captions, origin: str, warnings=()) -> io.NodeOutput:
        return io.NodeOutput(c.source, c.target, c.attribute, c.edit_words,
                             ui=ui.PreviewText(preview(c, origin, warnings)))
