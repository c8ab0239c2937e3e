"""A loopback HTTP server that speaks OpenAI's chat-completions protocol, for tests.

The real ``openai`` client (in the test process or inside a ComfyUI server) talks to it; it
records every request (path, headers, JSON body) and answers from a script of canned replies::

    with FakeOpenAI() as server:
        server.script(error(429), captions_reply(SOURCE, TARGET, "red suit"))
        ... LLMConfig(base_url=server.url) ...
        assert server.requests[0].bearer == "sk-test"

When the script is empty, ``default`` answers (valid EMS captions unless set otherwise). A reply
may also be a callable ``request -> Reply`` (e.g. to refuse structured output). ``Reply.body`` as a
string is sent byte for byte (junk, an HTML page, cut-off JSON), with ``content_type``. A delayed
reply waits in a stop-aware way, so a test can stop the server under a client that gave up.
Two servers side by side (a configured provider and an "attacker") show where requests went.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Union

SOURCE = "a photo of a woman in a black suit standing in a park"
TARGET = "a photo of a woman in a red suit standing in a park"
ATTRIBUTE = "red suit"


@dataclass
class Reply:
    status: int = 200
    body: Union[dict, str] = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    content_type: str = "application/json"


@dataclass
class Request:
    path: str
    headers: dict  # lower-case names
    body: dict

    @property
    def bearer(self) -> str:
        auth = self.headers.get("authorization", "")
        return auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""

    def parts(self, kind: str) -> list:
        out = []
        for m in self.body.get("messages", []):
            content = m.get("content")
            if isinstance(content, str) and kind == "text":
                out.append(content)
            elif isinstance(content, list):
                for p in content:
                    if p.get("type") == kind:
                        out.append(p["text"] if kind == "text" else p["image_url"]["url"])
        return out

    @property
    def texts(self) -> list[str]:
        return self.parts("text")

    @property
    def image_urls(self) -> list[str]:
        return self.parts("image_url")


def ok(content: str, model: str = "fake-model") -> Reply:
    return Reply(
        200,
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        },
    )


def captions_reply(source: str = SOURCE, target: str = TARGET, attribute: str = ATTRIBUTE) -> Reply:
    return ok(json.dumps({"source_prompt": source, "target_prompt": target, "attribute_prompt": attribute}))


def error(
    status: int, message: str = "", type_: str = "invalid_request_error", code=None, headers: dict | None = None
) -> Reply:
    message = message or {
        401: "Incorrect API key provided: sk-tes**********cret.",
        404: "The model does not exist",
        429: "Rate limit reached",
        500: "Internal error",
    }.get(status, "error")
    return Reply(status, {"error": {"message": message, "type": type_, "param": None, "code": code}}, headers or {})


def slow(seconds: float, then: Reply | None = None) -> Reply:
    reply = then or captions_reply()
    return Reply(reply.status, reply.body, reply.headers, seconds, reply.content_type)


def raw(text: str, status: int = 200, content_type: str = "application/json") -> Reply:
    """A body sent as is: junk, an HTML page, cut-off JSON."""
    return Reply(status, text, {}, 0.0, content_type)


def html_page(status: int = 200) -> Reply:
    return raw(
        "<!DOCTYPE html><html><head><title>Sign in</title></head><body>Welcome to the router</body></html>",
        status,
        "text/html",
    )


def truncated(reply: Reply | None = None, keep: float = 0.6) -> Reply:
    """A valid reply's JSON cut off part-way (a proxy that dropped the rest)."""
    body = json.dumps((reply or captions_reply()).body)
    return raw(body[: int(len(body) * keep)])


def huge_captions(words: int = 100_000) -> Reply:
    """Captions whose target is ``words`` words long (a model gone wrong, or a hostile server)."""
    return captions_reply(SOURCE, " ".join(["red"] * words), ATTRIBUTE)


def refuse_structured(then: Reply | None = None) -> Callable[[Request], Reply]:
    """A server without json_schema support: 400 when response_format is sent."""

    def answer(request: Request) -> Reply:
        if "response_format" in request.body:
            return error(400, "response_format json_schema is not supported")
        return then or captions_reply()

    return answer


class FakeOpenAI:
    def __init__(self, default: Reply | Callable | None = None):
        self.default = default or captions_reply()
        self.requests: list[Request] = []
        self._script: list = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies) -> "FakeOpenAI":
        with self._lock:
            self._script.extend(replies)
        return self

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._script.clear()

    def start(self) -> "FakeOpenAI":
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _next(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            reply = self._script.pop(0) if self._script else self.default
        return reply(request) if callable(reply) else reply

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_raw": raw.decode(errors="replace")}
                request = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                if not self.path.endswith("/chat/completions"):
                    return self._send(error(404, f"no route {self.path}"))
                reply = fake._next(request)
                if reply.delay and fake._stopping.wait(reply.delay):
                    return
                self._send(reply)

            def _send(self, reply: Reply):
                data = (reply.body if isinstance(reply.body, str) else json.dumps(reply.body)).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        return Handler
