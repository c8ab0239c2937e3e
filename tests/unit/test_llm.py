"""llm_io/client.py against a loopback OpenAI-compatible server: requests, retries, errors, bounded replies, Cancel."""

from __future__ import annotations

import base64
import io

import pytest
import torch
from PIL import Image

from comfyui_ems.llm_io import client as llm
from comfyui_ems.llm_io.client import Cancelled, ChatClient, LLMConfig, LLMError, ask_vision, extract_json
from comfyui_ems.llm_io.providers import Provider
from support.fake_openai import (
    FakeOpenAI,
    captions_reply,
    error,
    html_page,
    huge_captions,
    ok,
    raw,
    refuse_structured,
    slow,
    truncated,
)

KEY = "sk-test-very-secret-key-0123456789"
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}


@pytest.fixture
def server():
    llm._NO_STRUCTURED.clear()
    with FakeOpenAI(default=ok('{"answer": "yes"}')) as s:
        yield s


def provider(server, key_env="MY_KEY"):
    return Provider("test", server.url if hasattr(server, "url") else server, key_env, "test file")


def client(server, sleeps=None, cancelled=lambda: False, **kw):
    config = LLMConfig(model="vision-x", provider=provider(server), **kw)
    return ChatClient(config, KEY, sleep=(sleeps.append if sleeps is not None else lambda s: None), cancelled=cancelled)


def messages():
    return [{"role": "user", "content": "hello"}]


# -- requests --------------------------------------------------------------------------------------


def test_request_carries_model_bearer_settings_and_json_schema(server):
    text = client(server, temperature=0.3, seed=7).complete(messages(), schema=SCHEMA, schema_name="qa")
    assert text == '{"answer": "yes"}'
    (req,) = server.requests
    assert req.bearer == KEY and req.path == "/v1/chat/completions"
    assert req.body["model"] == "vision-x" and req.body["temperature"] == 0.3 and req.body["seed"] == 7
    fmt = req.body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == SCHEMA


def test_server_without_structured_output_gets_plain_requests(server):
    server.default = refuse_structured(ok('{"answer": "plain"}'))
    c = client(server)
    assert c.complete(messages(), schema=SCHEMA) == '{"answer": "plain"}'
    assert ["response_format" in r.body for r in server.requests] == [True, False]
    c.complete(messages(), schema=SCHEMA)  # remembered: no second refused attempt
    assert ["response_format" in r.body for r in server.requests] == [True, False, False]


def test_429_then_ok_is_retried_with_backoff_and_retry_after(server):
    server.script(error(429), error(429, headers={"Retry-After": "2"}))
    sleeps = []
    assert client(server, sleeps).complete(messages()) == '{"answer": "yes"}'
    assert len(server.requests) == 3 and sleeps == [0.5, 2.0]


def test_5xx_is_retried(server):
    server.script(error(500), error(503))
    assert client(server).complete(messages())
    assert len(server.requests) == 3


def test_persistent_429_ends_in_a_clear_message(server):
    server.default = error(429)
    with pytest.raises(LLMError) as e:
        client(server, retries=2).complete(messages())
    assert "429" in str(e.value) and "after 3 attempts" in str(e.value)
    assert len(server.requests) == 3


def test_exhausted_quota_is_not_retried(server):
    server.default = error(
        429, "You exceeded your current quota", type_="insufficient_quota", code="insufficient_quota"
    )
    with pytest.raises(LLMError, match="quota"):
        client(server).complete(messages())
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_points_at_the_variable_and_never_shows_the_key(server, status):
    server.default = error(status, f"Incorrect API key provided: {KEY[:6]}***{KEY[-4:]} / {KEY}")
    with pytest.raises(LLMError) as e:
        client(server).complete(messages())
    msg = str(e.value)
    assert "MY_KEY" in msg and str(status) in msg
    assert KEY not in msg and KEY[-4:] not in msg  # the server's echo of the key is left out
    assert len(server.requests) == 1


def test_unknown_model_names_model_and_server(server):
    server.default = error(404, "model 'vision-x' not found")
    with pytest.raises(LLMError) as e:
        client(server).complete(messages())
    assert "vision-x" in str(e.value) and server.url in str(e.value) and "404" in str(e.value)


def test_other_errors_scrub_the_key(server):
    server.default = error(400, f"bad request from {KEY}")
    with pytest.raises(LLMError) as e:
        client(server).complete(messages())
    assert KEY not in str(e.value) and "***" in str(e.value)


MASKED_KEY = "sk-fake-SECRET-1111111111112222222222"


@pytest.mark.parametrize("status", [400, 404, 409, 418, 422, 500])
@pytest.mark.parametrize(
    "echo",
    [
        "Incorrect API key provided: sk-fake-SECRET-****2222222222.",
        "Invalid key 'sk-fake-SECRET-…'",  # only the first characters
        "key ending in ****2222 is invalid",  # only the last four
        "bad request (key=sk-fake-SECRET-1111111111112222222222)",  # all of it, glued to other text
    ],
)
def test_a_partly_masked_key_in_an_error_body_never_reaches_the_message(server, status, echo):
    server.default = error(status, echo)
    config = LLMConfig(model="vision-x", provider=provider(server), retries=0)
    with pytest.raises(LLMError) as e:
        ChatClient(config, MASKED_KEY, sleep=lambda s: None).complete(messages(), schema=SCHEMA)
    msg = str(e.value)
    assert "SECRET" not in msg and "2222" not in msg and "sk-fak" not in msg, msg
    assert str(status) in msg


def test_scrub_keeps_the_words_that_share_nothing_with_the_key():
    text = "model vision-x does not accept images; key sk-fake-SECRET-****2222222222 was used"
    assert llm.scrub(text, MASKED_KEY) == "model vision-x does not accept images; key *** was used"
    assert llm.scrub(text, None) == text


def test_timeout_is_retried_then_explained(server):
    server.default = slow(5)
    with pytest.raises(LLMError) as e:
        client(server, timeout=0.3, retries=1).complete(messages())
    assert "EMS_LLM_TIMEOUT" in str(e.value) and "after 2 attempts" in str(e.value)
    assert len(server.requests) == 2


def test_unreachable_server_is_explained():
    config = LLMConfig(model="m", provider=provider("http://127.0.0.1:9/v1"), retries=1)
    with pytest.raises(LLMError) as e:
        ChatClient(config, KEY, sleep=lambda s: None).complete(messages())
    assert "cannot reach provider 'test' (http://127.0.0.1:9/v1)" in str(e.value)


def test_empty_reply_is_an_error(server):
    server.default = ok("")
    with pytest.raises(LLMError, match="returned no text"):
        client(server).complete(messages())


# -- vision helper ---------------------------------------------------------------------------------


def decode(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def test_ask_vision_sends_every_image_and_parses_json(server):
    red = torch.zeros(1, 8, 12, 3)
    red[..., 0] = 1.0
    blue = torch.zeros(16, 4, 3)
    blue[..., 2] = 1.0
    answer = ask_vision(
        LLMConfig(model="vqa", provider=provider(server)),
        "Same colour?",
        [red, blue],
        schema=SCHEMA,
        system="Be brief.",
        environ={"MY_KEY": KEY},
    )
    assert answer == {"answer": "yes"}
    (req,) = server.requests
    assert req.bearer == KEY and "Same colour?" in req.texts and "Be brief." in req.texts
    first, second = (decode(u) for u in req.image_urls)
    assert first.size == (12, 8) and first.getpixel((0, 0)) == (255, 0, 0)
    assert second.size == (4, 16) and second.getpixel((0, 0)) == (0, 0, 255)


def test_ask_vision_text_and_non_json(server):
    config = LLMConfig(model="vqa", provider=provider(server, key_env=""))
    server.default = ok("It is purple.")
    assert ask_vision(config, "What colour?", [torch.rand(4, 4, 3)]) == "It is purple."
    assert "authorization" not in server.requests[0].headers  # a provider without a key gets none
    with pytest.raises(LLMError, match="did not reply with JSON"):
        ask_vision(config, "What colour?", [], schema=SCHEMA)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("kind", ["torch", "numpy"])
def test_a_non_finite_image_is_refused_instead_of_sent_as_a_black_one(value, kind):
    image = torch.rand(1, 8, 8, 3)
    image[0, 2, 3, 1] = value
    if kind == "numpy":
        image = image[0].numpy()
    with pytest.raises(llm.NonFiniteImage) as e:
        llm.image_data_url(image)
    assert (e.value.bad, e.value.total) == (1, 8 * 8 * 3) and "NaN or infinite" in str(e.value)
    assert llm.image_pixels(torch.ones(1, 2, 2, 3) * 2).max() == 255  # finite but out of range: clamped


def test_large_images_are_downscaled_for_the_request():
    png = llm.encode_png(torch.rand(1, 2048, 1024, 3))
    assert Image.open(io.BytesIO(png)).size == (512, 1024)


def test_extract_json_tolerates_fences_and_prose():
    assert extract_json('```json\n{"a": 1}\n```') == {"a": 1}
    assert extract_json('Sure! {"a": 2} Hope this helps.') == {"a": 2}
    with pytest.raises(ValueError):
        extract_json("no json here")


# -- what goes out, and bounded replies ------------------------------------------------------------


def test_requests_carry_no_client_fingerprint(server):
    client(server).complete(messages())
    headers = server.requests[0].headers
    assert headers["user-agent"] == llm.USER_AGENT
    assert not [h for h in headers if h.startswith("x-stainless") or "python" in headers[h].lower()]


def test_redirects_are_not_followed_so_the_key_stays_with_the_provider(server):
    with FakeOpenAI() as elsewhere:
        server.default = error(307, headers={"Location": elsewhere.url + "/chat/completions"})
        with pytest.raises(LLMError, match="redirect"):
            client(server).complete(messages())
        assert elsewhere.requests == [] and len(server.requests) == 1


@pytest.mark.parametrize(
    "reply, words",
    [
        (html_page(), "HTML page"),
        (truncated(), "cut-off JSON"),
        (raw("Internal junk \x00\x01"), "not JSON"),
        (ok(None), "returned no text"),
        (raw('{"choices": "nope"}'), "not a chat-completions reply"),
        (raw('{"choices": [{"message": {"content": {"a": 1}}}]}'), "content is dict"),
    ],
)
def test_malformed_replies_are_clear_errors_and_not_retried(server, reply, words):
    server.default = reply
    with pytest.raises(LLMError) as e:
        client(server).complete(messages())
    assert words in str(e.value) and "provider 'test'" in str(e.value)
    assert len(server.requests) == 1
    assert "<html" not in str(e.value).lower()  # a page's content is never echoed


def test_a_reply_beyond_the_size_bound_is_refused(server, monkeypatch):
    monkeypatch.setattr(llm, "MAX_REPLY_BYTES", 100_000)
    server.default = huge_captions(100_000)  # ~400 kB
    with pytest.raises(LLMError, match="larger than 97 KiB"):
        client(server).complete(messages())


def test_cancel_ends_a_slow_request_and_stops_retries(server):
    import threading
    import time

    server.default = slow(20)
    flag = threading.Event()
    threading.Timer(0.5, flag.set).start()
    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        client(server, timeout=60, cancelled=flag.is_set).complete(messages())
    assert time.monotonic() - t0 < 2.0 and len(server.requests) == 1


def test_backoff_between_retries_wakes_on_cancel(server):
    import threading
    import time

    server.default = error(429, headers={"Retry-After": "20"})
    flag = threading.Event()
    threading.Timer(0.5, flag.set).start()
    t0 = time.monotonic()
    config = LLMConfig(model="vision-x", provider=provider(server))
    with pytest.raises(Cancelled):
        ChatClient(config, KEY, cancelled=flag.is_set).complete(messages())  # the real, interruptible sleep
    assert time.monotonic() - t0 < 2.0 and len(server.requests) == 1


def test_a_captions_reply_parses(server):
    server.default = captions_reply()
    assert '"source_prompt"' in client(server).complete(messages())


def test_a_server_on_this_machine_is_never_reached_through_a_proxy(server, monkeypatch):
    # A proxy that does not exist: a request routed through it would fail.
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert client(server).complete(messages()) == '{"answer": "yes"}'
    assert llm._is_loopback("http://localhost:11434/v1") and llm._is_loopback("http://[::1]:8000/v1")
    assert not llm._is_loopback("https://api.openai.com/v1") and not llm._is_loopback("http://10.0.0.5/v1")
