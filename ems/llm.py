"""A small OpenAI-compatible chat client for EMS: keys, retries, structured output, clear errors.

Works with OpenAI and any server speaking its chat-completions protocol (Ollama, vLLM, LM Studio,
OpenRouter, Azure's compatible endpoint) through ``base_url``. The ``openai`` SDK is imported only
when a request is made, so a missing SDK never breaks the rest of the pack.

API keys never travel through the graph: ``api_key_env`` is the *name* of an environment variable;
failing that, the key is read from a JSON key file outside ComfyUI (``{"OPENAI_API_KEY": "sk-…"}``)
at ``$EMS_KEYS_FILE`` or, by default, ``~/.config/ems/keys.json``. The key is never logged and never
appears in an error message.

Reuse (e.g. an MLLM-VQA metric): ``ask_vision(LLMConfig(model="gpt-4o"), "Is the coat purple?",
[image])`` returns the reply text, or the parsed JSON object when a ``schema`` is given.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

LOG = logging.getLogger("EMS")

OPENAI_URL = "https://api.openai.com/v1"
KEYS_FILE_ENV = "EMS_KEYS_FILE"
DEFAULT_KEYS_FILE = "~/.config/ems/keys.json"
TIMEOUT_ENV = "EMS_LLM_TIMEOUT"
DEFAULT_TIMEOUT = 180.0  # local vision models may need minutes to load on the first request
NO_KEY = "not-needed"  # servers without auth (Ollama) still need *some* string for the SDK
MAX_IMAGE_SIDE = 1024  # larger images cost more tokens and time without better captions
MAX_BACKOFF = 30.0

_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Servers that refused a json_schema response_format: ask them in plain mode from then on.
_NO_STRUCTURED: set[tuple[str, str]] = set()


class LLMError(RuntimeError):
    """A user-facing failure: says what went wrong and how to fix it; never contains the key."""


@dataclass(frozen=True)
class LLMConfig:
    model: str = "gpt-4o"
    base_url: str = ""  # "" = OpenAI
    api_key_env: str = "OPENAI_API_KEY"  # "" = the server needs no key
    temperature: float = 0.0
    seed: Optional[int] = None
    timeout: float = field(default_factory=lambda: float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT))
    retries: int = 3  # extra attempts after 429, timeouts, connection errors and 5xx

    @property
    def server(self) -> str:
        return self.base_url.strip().rstrip("/") or OPENAI_URL


# -- keys ------------------------------------------------------------------------------------------

def keys_file_path(environ=None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get(KEYS_FILE_ENV) or DEFAULT_KEYS_FILE).expanduser()


def resolve_api_key(api_key_env: str, environ=None) -> str:
    """The key for ``api_key_env``: the environment variable of that name, else the key file."""
    environ = os.environ if environ is None else environ
    name = (api_key_env or "").strip()
    if not name:
        return NO_KEY
    if not _VAR_NAME.match(name) or _looks_like_key(name):
        # Most likely a pasted key. Do not echo it: it is already in the workflow and must go.
        raise LLMError("api_key_env must be the NAME of an environment variable (like OPENAI_API_KEY), "
                       "not the key itself. Remove the key from this field: widget values are saved "
                       "in the workflow and in every PNG. Put the key into that variable instead.")
    value = (environ.get(name) or "").strip()
    if value:
        return value
    path = keys_file_path(environ)
    if path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise LLMError(f"the key file {path} is not readable JSON ({type(e).__name__}); it must "
                           f'hold an object like {{"{name}": "<key>"}}.') from None
        value = str(stored.get(name) or "").strip() if isinstance(stored, dict) else ""
        if value:
            return value
    raise LLMError(f"no API key: the environment variable {name} is not set and the key file {path} "
                   f"has no '{name}' entry. Set {name} in the environment that starts ComfyUI (or add it "
                   f"to the key file; {KEYS_FILE_ENV} moves the file), then restart ComfyUI. For a local "
                   "server without authentication (Ollama), leave api_key_env empty.")


def _looks_like_key(name: str) -> bool:
    # Variable names are short words; keys are long runs of mixed letters and digits.
    return len(name) >= 24 and "_" not in name and any(c.isdigit() for c in name) and any(c.isalpha() for c in name)


def _scrub(text: str, key: str) -> str:
    return text.replace(key, "***") if key and key != NO_KEY else text


# -- images ----------------------------------------------------------------------------------------

def image_pixels(image):
    """An image as a uint8 numpy array (H, W, C): a ComfyUI IMAGE item/batch-1, array or PIL image."""
    import numpy as np

    if hasattr(image, "detach"):  # torch tensor, float 0…1 as ComfyUI stores it
        import torch

        t = image.detach().cpu()
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise ValueError(f"expected one image, got a batch of {t.shape[0]}")
            t = t[0]
        if t.is_floating_point():
            t = (t.clamp(0, 1) * 255).round()
        return t.to(torch.uint8).numpy()
    if hasattr(image, "mode") and hasattr(image, "size"):  # PIL
        return np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr.astype("float32"), 0, 1) * 255).round().astype(np.uint8)
    return arr


def encode_png(image, max_side: int = MAX_IMAGE_SIDE) -> bytes:
    """PNG bytes of ``image`` (anything ``image_pixels`` takes, or already-encoded bytes)."""
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    from PIL import Image

    arr = image_pixels(image)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    pil = Image.fromarray(arr)
    if pil.mode not in ("RGB", "L"):
        pil = pil.convert("RGB")
    if max(pil.size) > max_side:
        scale = max_side / max(pil.size)
        pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), Image.LANCZOS)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def image_data_url(image) -> str:
    """A ``data:image/png;base64,…`` URL for a chat message's ``image_url`` part."""
    if isinstance(image, str) and image.startswith("data:"):
        return image
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode("ascii")


def user_message(text: str, images: Iterable = ()) -> dict:
    parts: list[dict] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": image_data_url(im)}} for im in images]
    return {"role": "user", "content": parts}


# -- JSON from a reply -----------------------------------------------------------------------------

def extract_json(text: str) -> dict:
    """The JSON object in a model's reply; tolerates code fences and prose around it."""
    text = (text or "").strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    candidates = [text] + ([fenced.group(1)] if fenced else [])
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    for c in candidates:
        try:
            value = json.loads(c)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise ValueError("no JSON object in the reply")


# -- the client ------------------------------------------------------------------------------------

def _openai():
    try:
        import openai
    except ImportError:
        raise LLMError("the 'openai' Python package is not installed in ComfyUI's Python; run "
                       "'python -m pip install openai' with that Python and restart ComfyUI.") from None
    return openai


class ChatClient:
    """One configured connection; ``complete`` returns the reply text or raises ``LLMError``."""

    def __init__(self, config: LLMConfig, api_key: str, sleep: Callable[[float], None] = time.sleep):
        self.config, self._key, self._sleep = config, api_key, sleep
        openai = _openai()
        # max_retries=0: retries are ours, so they are logged and their count is in the message.
        self._client = openai.OpenAI(api_key=api_key, base_url=config.server, timeout=config.timeout,
                                     max_retries=0)

    def complete(self, messages: list[dict], schema: Optional[dict] = None, schema_name: str = "reply") -> str:
        cfg = self.config
        request: dict[str, Any] = {"model": cfg.model, "messages": messages, "temperature": cfg.temperature}
        if cfg.seed is not None:
            request["seed"] = int(cfg.seed)
        if schema is not None and (cfg.server, cfg.model) not in _NO_STRUCTURED:
            structured = {"type": "json_schema",
                          "json_schema": {"name": schema_name, "schema": schema, "strict": True}}
            try:
                return self._send({**request, "response_format": structured})
            except _StructuredRefused:
                LOG.info("EMS: %s refused JSON-schema output for %s; asking for JSON in plain text.",
                         cfg.server, cfg.model)
                _NO_STRUCTURED.add((cfg.server, cfg.model))
        return self._send(request)

    def _send(self, request: dict) -> str:
        openai = _openai()
        cfg, attempt = self.config, 0
        retryable = (openai.RateLimitError, openai.APITimeoutError, openai.APIConnectionError,
                     openai.InternalServerError)
        while True:
            try:
                response = self._client.chat.completions.create(**request)
                break
            except retryable as e:
                if _is_quota(e) or attempt >= cfg.retries:
                    raise self._error(e, attempt + 1) from None
                delay = min(_retry_after(e) or 0.5 * 2 ** attempt, MAX_BACKOFF)
                LOG.warning("EMS: %s from %s; retrying in %.1fs (attempt %d of %d).",
                            _short_reason(e), cfg.server, delay, attempt + 2, cfg.retries + 1)
                self._sleep(delay)
                attempt += 1
            except (openai.BadRequestError, openai.UnprocessableEntityError) as e:
                if "response_format" in request:
                    raise _StructuredRefused() from None
                raise self._error(e, attempt + 1) from None
            except openai.APIError as e:
                raise self._error(e, attempt + 1) from None
        choices = getattr(response, "choices", None) or []
        message = choices[0].message if choices else None
        text = getattr(message, "content", None) if message is not None else None
        if not text:
            refusal = getattr(message, "refusal", None)
            raise LLMError(f"the model {cfg.model} on {cfg.server} returned no text"
                           + (f" (refusal: {_scrub(str(refusal), self._key)[:200]})" if refusal else "") + ".")
        return text

    def _error(self, e: Exception, attempts: int) -> LLMError:
        openai, cfg = _openai(), self.config
        var = cfg.api_key_env.strip()
        status = getattr(e, "status_code", None)
        tries = f"after {attempts} attempt{'s' if attempts != 1 else ''}"
        if isinstance(e, (openai.AuthenticationError, openai.PermissionDeniedError)):
            # The server's own text is left out on purpose: OpenAI's 401 body echoes part of the key.
            source = f"the key in the environment variable {var}" if var else "no key (api_key_env is empty)"
            return LLMError(f"{cfg.server} rejected {source} ({status} "
                            f"{'unauthorized' if status == 401 else 'forbidden'}). Check the key stored in "
                            f"{var or 'the variable you name in api_key_env'} (or its entry in the key file "
                            f"{keys_file_path()}); it may be wrong, revoked, or for another server.")
        if isinstance(e, openai.NotFoundError):
            return LLMError(f"model '{cfg.model}' was not found on {cfg.server} (404). Check the model name "
                            "(for Ollama, pull it first: 'ollama pull <model>') and that base_url is the "
                            "server's OpenAI-compatible root (it usually ends in /v1).")
        if isinstance(e, openai.RateLimitError):
            if _is_quota(e):
                return LLMError(f"{cfg.server} says the account's quota is used up (429 insufficient_quota); "
                                "add credit or use another key/server. Retrying will not help.")
            return LLMError(f"rate-limited by {cfg.server} (429) {tries}; wait a minute and queue again.")
        if isinstance(e, openai.APITimeoutError):
            return LLMError(f"no answer from {cfg.server} within {cfg.timeout:g}s {tries}. Set the environment "
                            f"variable {TIMEOUT_ENV} (seconds) to wait longer; local models can be slow to load.")
        if isinstance(e, openai.APIConnectionError):
            return LLMError(f"cannot reach {cfg.server} {tries}: is the server running and is base_url right "
                            "(e.g. http://localhost:11434/v1 for Ollama)? Empty base_url means OpenAI.")
        detail = _scrub(str(getattr(e, "message", "") or e), self._key)[:300]
        return LLMError(f"{cfg.server} answered {status or 'an error'} {tries}: {detail}")


class _StructuredRefused(Exception):
    pass


def _is_quota(e) -> bool:
    body = getattr(e, "body", None)
    code = body.get("code") if isinstance(body, dict) else None
    return code == "insufficient_quota"


def _retry_after(e) -> Optional[float]:
    response = getattr(e, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _short_reason(e) -> str:
    status = getattr(e, "status_code", None)
    return f"HTTP {status}" if status else type(e).__name__


# -- one-call helper for other modules -------------------------------------------------------------

def ask_vision(config: LLMConfig, question: str, images: Iterable = (), *, schema: Optional[dict] = None,
               system: Optional[str] = None, environ=None) -> Any:
    """Ask a vision model ``question`` about ``images`` (ComfyUI IMAGE items, arrays, PIL images or
    PNG/JPEG bytes). Returns the reply text, or the parsed JSON object when ``schema`` (a JSON
    schema for an object) is given. Raises ``LLMError`` with a user-facing message.
    """
    client = ChatClient(config, resolve_api_key(config.api_key_env, environ))
    messages = ([{"role": "system", "content": system}] if system else []) + [user_message(question, images)]
    text = client.complete(messages, schema=schema)
    if schema is None:
        return text
    try:
        return extract_json(text)
    except ValueError:
        raise LLMError(f"the model {config.model} on {config.server} did not reply with JSON: "
                       f"{text.strip()[:200]!r}") from None
