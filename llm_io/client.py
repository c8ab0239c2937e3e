"""A small client for OpenAI-compatible chat completions: providers, retries, Cancel, bounded replies.

Works with OpenAI and any server speaking its chat-completions protocol (Ollama, vLLM, LM Studio,
OpenRouter, Azure's compatible endpoint). *Where* a request goes and *which key* goes with it come
from a :class:`~comfyui_ems.llm_io.providers.Provider` — defined on the machine, never by a workflow (see
:mod:`comfyui_ems.llm_io.providers`). The key is sent only to that provider's ``base_url``, never logged and never
part of a message.

The HTTP exchange is the standard library's, on purpose:
- a reply is read up to :data:`MAX_REPLY_BYTES` and refused beyond it (a caption is a sentence);
- redirects are not followed (a redirect would carry the key to an address nobody configured);
- the request carries no client fingerprint (OS, CPU, Python version), only a plain user agent;
- the wait runs in a worker thread and the caller polls ``cancelled()`` every
  :data:`POLL_SECONDS`, so ComfyUI's Cancel ends a wait on a slow server within a fraction of a
  second, and backoff sleeps between retries stop on Cancel too. An abandoned exchange ends by
  itself at its timeout (it is a daemon thread; nothing is done with its reply).

Reuse (e.g. the MLLM-VQA metric): ``ask_vision(LLMConfig(model="gpt-4o", provider=get_provider("openai")),
"Is the coat purple?", [image])`` returns the reply text, or the parsed JSON object with ``schema``.
"""

from __future__ import annotations

import base64
import http.client
import io
import ipaddress
import json
import logging
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional

import numpy as np
from PIL import Image

from ..ems.captions import extract_json
from .providers import BUILT_IN, OPENAI_URL, Provider, ProviderError, config_path, resolve_key  # noqa: F401

LOG = logging.getLogger("EMS")

TIMEOUT_ENV = "EMS_LLM_TIMEOUT"
DEFAULT_TIMEOUT = 180.0  # local vision models may need minutes to load on the first request
MAX_IMAGE_SIDE = 1024  # larger images cost more tokens and time without better captions
MAX_BACKOFF = 30.0
MAX_REPLY_BYTES = 1 << 20  # a chat reply carrying a few sentences is a few kB
MAX_ERROR_BYTES = 64 << 10
POLL_SECONDS = 0.1
USER_AGENT = "comfyui-ems"

# Servers that refused a json_schema response_format: ask them in plain mode from then on.
_NO_STRUCTURED: set[tuple[str, str]] = set()


class LLMError(RuntimeError):
    """A user-facing failure: says what went wrong and how to fix it; never contains the key."""


class Cancelled(LLMError):
    """The caller's ``cancelled()`` said stop (ComfyUI's Cancel) while waiting on the server."""

    def __init__(self):
        super().__init__("cancelled while waiting for the LLM server")


def _default_timeout() -> float:
    try:
        value = float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT)
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


@dataclass(frozen=True)
class LLMConfig:
    model: str = "gpt-4o"
    provider: Provider = BUILT_IN["openai"]
    temperature: float = 0.0
    seed: Optional[int] = None
    timeout: float = field(default_factory=_default_timeout)
    retries: int = 3  # extra attempts after 429, 408, timeouts, connection errors and 5xx

    @property
    def server(self) -> str:
        return self.provider.base_url

    @property
    def where(self) -> str:
        return f"provider '{self.provider.name}' ({self.provider.base_url})"


def scrub(text: str, key: Optional[str]) -> str:
    """``text`` without the key — also without a partly masked echo of it (servers answer e.g.
    "Incorrect API key provided: sk-proj-****1234"): every word sharing the key's first 6 or last 4
    characters is replaced, so no fragment that narrows the key down reaches a message or a log."""
    if not key:
        return text
    marks = {key[:6], key[-4:]}
    return re.sub(
        r"\S+", lambda m: "***" if any(k in m.group(0) for k in marks) else m.group(0), text.replace(key, "***")
    )


# -- images ----------------------------------------------------------------------------------------


def image_pixels(image):
    """An image as a uint8 numpy array (H, W, C): a ComfyUI IMAGE item/batch-1, array or PIL image.
    Float pixels must be finite (else :class:`NonFiniteImage`)."""
    if hasattr(image, "detach"):  # torch tensor, float 0…1 as ComfyUI stores it
        import torch

        t = image.detach().cpu()
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise ValueError(f"expected one image, got a batch of {t.shape[0]}")
            t = t[0]
        if t.is_floating_point():
            check_finite(int((~torch.isfinite(t)).sum()), t.numel())
            t = (t.clamp(0, 1) * 255).round()
        return t.to(torch.uint8).numpy()
    if hasattr(image, "mode") and hasattr(image, "size"):  # PIL
        return np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating):
            check_finite(int((~np.isfinite(arr)).sum()), arr.size)
        arr = (np.clip(arr.astype("float32"), 0, 1) * 255).round().astype(np.uint8)
    return arr


class NonFiniteImage(ValueError):
    """An image with NaN/inf values: there is no picture to send (clamping would send a black one)."""

    def __init__(self, bad: int, total: int):
        super().__init__(f"the image holds {bad:,} NaN or infinite values of {total:,}")
        self.bad, self.total = bad, total


def check_finite(bad: int, total: int) -> None:
    if bad:
        raise NonFiniteImage(bad, total)


def encode_png(image, max_side: int = MAX_IMAGE_SIDE) -> bytes:
    """PNG bytes of ``image`` (anything ``image_pixels`` takes, or already-encoded bytes)."""
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
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


# -- HTTP ------------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises HTTPError with the 3xx status


def _opener(url: str) -> urllib.request.OpenerDirector:
    """Honours HTTP(S)_PROXY / NO_PROXY as other clients do, except for a server on this machine
    (Ollama, LM Studio): a proxy cannot reach the user's localhost, and the key would pass through it
    for nothing."""
    if _is_loopback(url):
        return urllib.request.build_opener(_NoRedirect, urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(_NoRedirect)


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class _Reply:
    status: int
    headers: dict
    body: bytes
    too_large: bool


class _Unreachable(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _TimedOut(Exception):
    pass


def _exchange(request: urllib.request.Request, timeout: float, box: dict, done: threading.Event) -> None:
    """One POST, run in a worker thread; the outcome goes into ``box``."""
    try:
        try:
            response = _opener(request.full_url).open(request, timeout=timeout)
        except urllib.error.HTTPError as e:
            response = e  # a status >= 300: its body says why
        with response:
            limit = MAX_REPLY_BYTES if 200 <= response.getcode() < 300 else MAX_ERROR_BYTES
            body = response.read(limit + 1) if response.fp is not None else b""
            box["reply"] = _Reply(
                response.getcode(), {k.lower(): v for k, v in response.headers.items()}, body[:limit], len(body) > limit
            )
    except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
        box["error"] = e
    finally:
        done.set()


def post_json(
    url: str, payload: dict, key: Optional[str], timeout: float, cancelled: Callable[[], bool] = lambda: False
) -> _Reply:
    """POST ``payload`` to ``url``; waits at most ``timeout`` seconds in all and polls ``cancelled``."""
    headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": USER_AGENT}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers, method="POST")
    box: dict = {}
    done = threading.Event()
    threading.Thread(target=_exchange, args=(request, timeout, box, done), daemon=True, name="ems-llm-request").start()
    deadline = time.monotonic() + timeout
    while not done.wait(POLL_SECONDS):
        if cancelled():
            raise Cancelled()
        if time.monotonic() > deadline:
            raise _TimedOut()
    if "reply" in box:
        return box["reply"]
    e = box.get("error")
    if isinstance(e, (socket.timeout, TimeoutError)) or "timed out" in str(e):
        raise _TimedOut()
    if isinstance(e, http.client.IncompleteRead):
        raise _Unreachable("the connection closed in the middle of the reply")
    if isinstance(e, urllib.error.URLError):
        reason = getattr(e, "reason", e)
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise _TimedOut()
        raise _Unreachable(type(reason).__name__ if not isinstance(reason, str) else "connection failed")
    if isinstance(e, (OSError, http.client.HTTPException)):
        raise _Unreachable(type(e).__name__)
    raise e  # a bug, not a network condition


def _error_detail(reply: _Reply, key: Optional[str]) -> tuple[str, Optional[str]]:
    """(the server's own error message, cleaned and short; its error code) from a JSON error body.
    Non-JSON bodies (HTML pages, proxies) are not echoed."""
    try:
        body = json.loads(reply.body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return "", None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, str):
        return _clean(scrub(err, key)), None
    if not isinstance(err, dict):
        return "", None
    message = err.get("message") if isinstance(err.get("message"), str) else ""
    code = err.get("code") if isinstance(err.get("code"), str) else None
    return _clean(scrub(message, key)), code


def _clean(text: str, limit: int = 300) -> str:
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()
    return text[:limit] + ("…" if len(text) > limit else "")


def _retry_after(reply: _Reply) -> Optional[float]:
    try:
        value = float(reply.headers.get("retry-after", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


# -- the client ------------------------------------------------------------------------------------


class ChatClient:
    """One provider and model; ``complete`` returns the reply text or raises ``LLMError``."""

    def __init__(
        self,
        config: LLMConfig,
        api_key: Optional[str],
        sleep: Optional[Callable[[float], None]] = None,
        cancelled: Callable[[], bool] = lambda: False,
    ):
        self.config, self._key, self._cancelled = config, api_key, cancelled
        self._sleep = sleep or self._wait

    def _wait(self, seconds: float) -> None:
        """Sleep between retries, waking on Cancel."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self._cancelled():
                raise Cancelled()
            time.sleep(min(POLL_SECONDS, left))

    def complete(self, messages: list[dict], schema: Optional[dict] = None, schema_name: str = "reply") -> str:
        cfg = self.config
        request: dict[str, Any] = {"model": cfg.model, "messages": messages, "temperature": cfg.temperature}
        if cfg.seed is not None:
            request["seed"] = int(cfg.seed)
        if schema is not None and (cfg.server, cfg.model) not in _NO_STRUCTURED:
            structured = {"type": "json_schema", "json_schema": {"name": schema_name, "schema": schema, "strict": True}}
            try:
                return self._send({**request, "response_format": structured})
            except _StructuredRefused:
                LOG.info(
                    "EMS: %s refused JSON-schema output for %s; asking for JSON in plain text.", cfg.where, cfg.model
                )
                _NO_STRUCTURED.add((cfg.server, cfg.model))
        return self._send(request)

    def _send(self, request: dict) -> str:
        cfg, attempt = self.config, 0
        url = cfg.server + "/chat/completions"
        while True:
            if self._cancelled():
                raise Cancelled()
            tries = f"after {attempt + 1} attempt{'s' if attempt else ''}"
            try:
                reply = post_json(url, request, self._key, cfg.timeout, self._cancelled)
            except _TimedOut:
                failure, delay = (
                    LLMError(
                        f"no answer from {cfg.where} within {cfg.timeout:g}s {tries}. Set the environment variable "
                        f"{TIMEOUT_ENV} (seconds) to wait longer; local models can be slow to load."
                    ),
                    None,
                )
                failure.reason = "no answer"  # type: ignore[attr-defined]
            except _Unreachable as e:
                failure, delay = (
                    LLMError(
                        f"cannot reach {cfg.where} {tries} ({e.reason}): is the server running, and is its base_url "
                        f"right? Providers are defined in {config_path()}."
                    ),
                    None,
                )
                failure.reason = e.reason  # type: ignore[attr-defined]
            else:
                if 200 <= reply.status < 300:
                    return self._text(reply)
                failure, delay = self._status_error(reply, request, tries)
            if getattr(failure, "final", False) or attempt >= cfg.retries:
                raise failure
            delay = min(delay if delay is not None else 0.5 * 2**attempt, MAX_BACKOFF)
            LOG.warning(
                "EMS: %s from %s; retrying in %.1fs (attempt %d of %d).",
                failure.reason,
                cfg.where,
                delay,
                attempt + 2,
                cfg.retries + 1,
            )  # type: ignore[attr-defined]
            self._sleep(delay)
            attempt += 1

    def _status_error(self, reply: _Reply, request: dict, tries: str) -> tuple[LLMError, Optional[float]]:
        """The error for a non-2xx reply, and the delay before a retry (errors marked final are not retried)."""
        cfg, status = self.config, reply.status
        detail, code = _error_detail(reply, self._key)

        def final(message: str) -> LLMError:
            e = LLMError(message)
            e.final = True  # type: ignore[attr-defined]
            return e

        if status in (400, 422) and "response_format" in request:
            raise _StructuredRefused()
        if status in (401, 403):
            # The server's own text is left out on purpose: OpenAI's 401 body echoes part of the key.
            var = cfg.provider.api_key_env
            source = f"the key in the environment variable {var}" if var else "the request without a key"
            fix = (
                f"Check the key stored in {var}: it may be wrong, revoked, or for another server."
                if var
                else f"Give the provider an api_key_env in {config_path()}."
            )
            return final(
                f"{cfg.where} rejected {source} ({status} {'unauthorized' if status == 401 else 'forbidden'}). {fix}"
            ), None
        if status == 404:
            return final(
                f"model '{cfg.model}' was not found on {cfg.where} (404). Check the model name (for "
                "Ollama, pull it first: 'ollama pull <model>') and that the provider's base_url is the "
                "server's OpenAI-compatible root (it usually ends in /v1)."
            ), None
        if 300 <= status < 400:
            return final(
                f"{cfg.where} answered with a redirect ({status}); EMS does not follow redirects, "
                "since the key would go to an address nobody configured. Set the provider's base_url "
                f"to the final address in {config_path()}."
            ), None
        if status == 429:
            if code == "insufficient_quota":
                return final(
                    f"{cfg.where} says the account's quota is used up (429 insufficient_quota); add "
                    "credit or use another provider. Retrying will not help."
                ), None
            e = LLMError(f"rate-limited by {cfg.where} (429) {tries}; wait a minute and queue again.")
            e.reason = "HTTP 429"  # type: ignore[attr-defined]
            return e, _retry_after(reply)
        text = f"{cfg.where} answered HTTP {status} {tries}" + (f": {detail}" if detail else ".")
        if status in (408, 409) or status >= 500:
            e = LLMError(text)
            e.reason = f"HTTP {status}"  # type: ignore[attr-defined]
            return e, _retry_after(reply)
        return final(text), None

    def _text(self, reply: _Reply) -> str:
        """The message text of a 2xx reply, or an error for a reply that is too large or malformed."""
        cfg = self.config
        fix = (
            "Check that the provider's base_url is the server's OpenAI-compatible root (it usually ends in "
            f"/v1; providers are defined in {config_path()}), or type the captions yourself."
        )
        if reply.too_large:
            raise LLMError(
                f"{cfg.where} sent a reply larger than {MAX_REPLY_BYTES // 1024} KiB; refused (a "
                f"caption is one sentence). {fix}"
            )
        try:
            data = json.loads(reply.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            kind = (
                "an HTML page"
                if reply.body.lstrip()[:1] == b"<"
                else ("cut-off JSON" if reply.body.lstrip()[:1] in (b"{", b"[") else "something that is not JSON")
            )
            raise LLMError(
                f"{cfg.where} answered {kind} instead of a chat-completions reply ({len(reply.body)} bytes). {fix}"
            ) from None
        choices = data.get("choices") if isinstance(data, dict) else None
        first = choices[0] if isinstance(choices, list) and choices else None
        message = first.get("message") if isinstance(first, dict) else None
        if not isinstance(message, dict):
            raise LLMError(
                f"{cfg.where} answered JSON that is not a chat-completions reply (no choices[0].message). {fix}"
            )
        content = message.get("content")
        if isinstance(content, list):  # some servers send content parts
            content = (
                "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
                or None
            )
        if content is not None and not isinstance(content, str):
            raise LLMError(f"{cfg.where} answered a message whose content is {type(content).__name__}, not text. {fix}")
        if not content:
            refusal = message.get("refusal")
            raise LLMError(
                f"the model {cfg.model} on {cfg.where} returned no text"
                + (
                    f" (refusal: {_clean(scrub(refusal, self._key), 200)})"
                    if isinstance(refusal, str) and refusal
                    else ""
                )
                + "."
            )
        return content


class _StructuredRefused(Exception):
    pass


# -- one-call helper for other modules -------------------------------------------------------------


def ask_vision(
    config: LLMConfig,
    question: str,
    images: Iterable = (),
    *,
    schema: Optional[dict] = None,
    system: Optional[str] = None,
    environ: Optional[Mapping[str, str]] = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> Any:
    """Ask a vision model ``question`` about ``images`` (ComfyUI IMAGE items, arrays, PIL images or
    PNG/JPEG bytes). Returns the reply text, or the parsed JSON object when ``schema`` (a JSON
    schema for an object) is given. Raises ``LLMError`` with a user-facing message.
    """
    try:
        key = resolve_key(config.provider, environ)
    except ProviderError as e:
        raise LLMError(str(e)) from None
    client = ChatClient(config, key, cancelled=cancelled)
    messages = ([{"role": "system", "content": system}] if system else []) + [user_message(question, images)]
    text = client.complete(messages, schema=schema)
    if schema is None:
        return text
    try:
        return extract_json(text)
    except ValueError:
        raise LLMError(
            f"the model {config.model} on {config.where} did not reply with JSON: {_clean(text, 200)!r}"
        ) from None
