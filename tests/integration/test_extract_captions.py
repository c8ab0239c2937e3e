"""EMSExtractCaptions in a real ComfyUI server, observed only from
outside (HTTP, files, PNG metadata), talking to loopback OpenAI-compatible fakes.

The server's environment is a user's machine: a provider file (EMS_LLM_CONFIG) defines provider
``acc`` → the ``acc`` fake with its key in ACC_LLM_KEY, and other secrets sit beside it (an OpenAI
key, an AWS secret, a key file). A second fake plays the attacker: graphs that name its URL — next
to a configured provider, in the old layout's inputs, behind the built-in ``openai`` — must leave it with zero
requests, and no secret but ACC_LLM_KEY's (sent to ``acc`` only) may appear in any request, error,
history entry, log or saved file.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import time

import pytest
from PIL import Image

from support.cancel import interrupt_and_wait, message_kinds
from support.comfy_server import ComfyServer, ExecutionFailed, PromptRejected, prepare_base
from support.fake_openai import (
    ATTRIBUTE,
    SOURCE,
    TARGET,
    FakeOpenAI,
    error,
    html_page,
    huge_captions,
    ok,
    raw,
    slow,
    truncated,
)
from support.graph import Graph
from support.messages import suggested_entries

ACC_KEY = "sk-acc-integration-secret-7f3a9c1e5b"
KEY_VAR = "ACC_LLM_KEY"
OTHER_SECRETS = {
    "OPENAI_API_KEY": "sk-openai-must-not-leave-41d2c9",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-must-not-leave-9b1f",
    "EMS_TEST_UNRELATED_TOKEN": "unrelated-token-must-not-leave-77",
}
KEYFILE_SECRET = "keyfile-secret-must-not-leave-3c5e"
SECRETS = [ACC_KEY, KEYFILE_SECRET, *OTHER_SECRETS.values()]
NODE = "EMS Extract Captions"
IMAGE_NAME = "ems_caption_source.png"
SPEC_INPUTS = {
    "image",
    "instruction",
    "provider",
    "model",
    "temperature",
    "seed",
    "refresh",
    "source_prompt",
    "target_prompt",
}
SPEC_OUTPUTS = ["source_prompt", "target_prompt", "attribute_prompt", "edit_words"]


@pytest.fixture(scope="module")
def acc():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def attacker():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ems_machine_config")


@pytest.fixture(scope="module")
def comfy_llm(tmp_path_factory, acc, config_dir):
    """A ComfyUI server on a 'user machine': provider acc in the provider file, other secrets around."""
    base = prepare_base(tmp_path_factory.mktemp("comfy_llm"))
    picture = Image.new("RGB", (40, 24), (200, 30, 30))
    picture.paste((20, 40, 220), (20, 0, 40, 24))
    picture.save(base / "input" / IMAGE_NAME)
    (config_dir / "llm.json").write_text(
        json.dumps(
            {
                "providers": {
                    "acc": {"base_url": acc.url, "api_key_env": KEY_VAR},
                    "acc-nokey": {"base_url": acc.url, "api_key_env": "ACC_MISSING_KEY"},
                }
            }
        )
    )
    (config_dir / "keys.json").write_text(json.dumps({"KEYFILE_SECRET_VAR": KEYFILE_SECRET}))
    env = {
        KEY_VAR: ACC_KEY,
        **OTHER_SECRETS,
        "EMS_LLM_CONFIG": str(config_dir / "llm.json"),
        "EMS_KEYS_FILE": str(config_dir / "keys.json"),
        "EMS_CACHE_DIR": "",
        "ACC_MISSING_KEY": "",
    }
    server = ComfyServer(os.environ["COMFYUI_DIR"], base, env=env).start()
    yield server
    server.stop()


@pytest.fixture
def fake(acc, attacker):
    for server in (acc, attacker):
        server.reset()
        server.default = ok(
            json.dumps({"source_prompt": SOURCE, "target_prompt": TARGET, "attribute_prompt": ATTRIBUTE})
        )
    yield acc
    assert attacker.requests == [], "a graph made the node talk to the attacker"
    for request in acc.requests:  # acc gets its own key and nothing else secret
        assert request.bearer == ACC_KEY
        text = json.dumps(request.body) + json.dumps(request.headers)
        assert not [s for s in SECRETS if s != ACC_KEY and s in text]


def captions_graph(instruction, save=True, provider="acc", **overrides):
    g = Graph()
    image = g.node("LoadImage", image=IMAGE_NAME)
    inputs = dict(
        image=image[0],
        instruction=instruction,
        provider=provider,
        model="vision-test",
        temperature=0.0,
        seed=5,
        refresh=False,
    )
    node = g.node("EMSExtractCaptions", **{k: v for k, v in {**inputs, **overrides}.items() if v is not None})
    if save:
        for i, name in enumerate(SPEC_OUTPUTS):
            g.save(node[i], f"cap_{name}")
    return g, image, node


def outputs(comfy):
    return [comfy.load_saved(f"cap_{name}") for name in SPEC_OUTPUTS]


def clear_outputs(comfy):
    for name in SPEC_OUTPUTS:
        (comfy.base / "output" / f"cap_{name}.pt").unlink(missing_ok=True)


def no_secret_anywhere(comfy, *texts):
    everything = "\n".join([*texts, json.dumps(comfy.get("/history")), comfy.log()])
    assert not [s for s in SECRETS if s in everything]


def failure(comfy, g) -> str:
    with pytest.raises(ExecutionFailed) as e:
        comfy.run(g.prompt)
    assert e.value.node_type == "EMSExtractCaptions"
    msg = e.value.message
    assert msg.startswith(NODE) and "Traceback" not in msg
    # No secret, and no path on the machine but the provider file's own.
    assert not [s for s in SECRETS if s in msg]
    assert str(comfy.base) not in msg and "keys.json" not in msg.replace("~/.config/ems/keys.json", "")
    return msg


def test_node_matches_the_spec(comfy_llm):
    info = comfy_llm.object_info()["EMSExtractCaptions"]
    inputs = {**info["input"]["required"], **info["input"].get("optional", {})}
    assert set(inputs) == SPEC_INPUTS  # no base_url, no api_key_env: a graph cannot choose either
    assert set(info["input"].get("optional", {})) == {"source_prompt", "target_prompt"}
    assert info["output_name"] == SPEC_OUTPUTS and info["output"] == ["STRING"] * 4
    assert info["category"] == "EMS/extract" and info["display_name"] == "EMS Extract Captions (LLM)"
    assert all(spec[1].get("tooltip") for spec in inputs.values())
    assert inputs["provider"][1]["default"] == "openai" and inputs["model"][1]["default"] == "gpt-4o"
    assert inputs["temperature"][1]["default"] == 0 and inputs["instruction"][1]["multiline"] is True
    # A seed that randomises after every queue would defeat the cache and pay for every run.
    assert inputs["seed"][1]["control_after_generate"] is False
    assert info["input_order"]["required"][:3] == ["image", "instruction", "provider"]


def test_configured_provider_gets_its_key_and_nothing_leaks_into_workflow_or_png(comfy_llm, fake):
    g, image, node = captions_graph("make her suit red")
    g.node("SaveImage", images=image[0], filename_prefix="ems_key_check")
    workflow = {
        "nodes": [
            {
                "id": int(node.id),
                "type": "EMSExtractCaptions",
                "widgets_values": ["make her suit red", "acc", "vision-test", 0.0, 5, False],
            }
        ]
    }
    entry = comfy_llm.run(g.prompt, extra_data={"extra_pnginfo": {"workflow": workflow}})

    (req,) = fake.requests
    assert req.bearer == ACC_KEY and req.body["model"] == "vision-test"
    assert req.body["response_format"]["type"] == "json_schema"
    assert any("make her suit red" in t for t in req.texts)
    assert req.headers["user-agent"] == "comfyui-ems" and not [h for h in req.headers if h.startswith("x-stainless")]
    (url,) = req.image_urls
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
    original = Image.open(comfy_llm.base / "input" / IMAGE_NAME).convert("RGB")
    assert sent.size == original.size and sent.tobytes() == original.tobytes()

    assert outputs(comfy_llm) == [SOURCE, TARGET, ATTRIBUTE, "red"]
    shown = "\n".join(entry["outputs"][node.id]["text"])
    assert SOURCE in shown and TARGET in shown and "provider 'acc'" in shown

    pngs = sorted((comfy_llm.base / "output").glob("ems_key_check_*.png"))
    metadata = Image.open(pngs[-1]).text
    assert '"acc"' in metadata["prompt"]  # the metadata names the provider…
    assert not [s for s in SECRETS if any(s in v for v in metadata.values())]  # …and holds no secret
    assert fake.url not in metadata["prompt"]  # nor the provider's address
    no_secret_anywhere(comfy_llm)


# -- attack graphs ---------------------------------------------------------------------------------


def test_attacker_url_next_to_a_configured_provider_is_refused(comfy_llm, fake, attacker):
    g, _, _ = captions_graph("make her suit red, attack 1", base_url=attacker.url, api_key_env="AWS_SECRET_ACCESS_KEY")
    msg = failure(comfy_llm, g)
    assert "an early EMS" in msg and "base_url" in msg and str(comfy_llm.env["EMS_LLM_CONFIG"]) in msg
    assert fake.requests == []  # refused outright: not even the configured provider is asked
    no_secret_anywhere(comfy_llm, msg)
    # The attacker's server is named as the workflow's wish, not offered as an entry.
    assert f'the key in the environment variable AWS_SECRET_ACCESS_KEY to "{attacker.url}"' in msg
    assert_no_entry_from(msg, attacker.url, "AWS_SECRET_ACCESS_KEY")


def assert_no_entry_from(msg: str, *workflow_values: str) -> None:
    """The message offers provider entries to paste, none of them built from the workflow's values."""
    entries = [json.dumps(e) for e in suggested_entries(msg)]
    assert entries and not [e for e in entries for v in workflow_values if v in e], entries
    assert "only if you trust it" in msg


def test_v1_style_graph_without_a_provider_is_rejected_before_it_runs(comfy_llm, fake, attacker):
    g, _, _ = captions_graph(
        "make her suit red, attack 2", provider=None, base_url=attacker.url, api_key_env="OPENAI_API_KEY"
    )
    with pytest.raises(PromptRejected) as e:
        comfy_llm.run(g.prompt)
    body = json.dumps(e.value.body)
    assert "provider" in body and not [s for s in SECRETS if s in body]
    assert fake.requests == []
    no_secret_anywhere(comfy_llm, body)


def test_built_in_openai_with_an_extra_base_url_is_refused(comfy_llm, fake, attacker):
    g, _, _ = captions_graph("make her suit red, attack 3", provider="openai", base_url=attacker.url)
    msg = failure(comfy_llm, g)
    assert "an early EMS" in msg and attacker.url in msg  # says which server the graph asked for
    no_secret_anywhere(comfy_llm, msg)


@pytest.mark.parametrize("name", ["attacker", "URL"])
def test_undefined_provider_is_refused_listing_the_defined_ones(comfy_llm, fake, attacker, name):
    provider = attacker.url if name == "URL" else name
    msg = failure(comfy_llm, captions_graph(f"make her suit red, undefined {name}", provider=provider)[0])
    assert str(comfy_llm.env["EMS_LLM_CONFIG"]) in msg
    if name == "URL":  # what an old workflow's URL looks like after the frontend moved it to provider
        assert "not a URL" in msg and f'send your image to "{attacker.url}"' in msg
        assert_no_entry_from(msg, attacker.url)
    else:
        assert "'attacker' is not defined" in msg and "acc, acc-nokey, ollama, openai" in msg
    assert fake.requests == []
    no_secret_anywhere(comfy_llm, msg)


# -- cache, overrides, errors ----------------------------------------------------------------------


def test_disk_cache_survives_a_restart_and_refresh_asks_again(comfy_llm, fake):
    g, _, node = captions_graph("make her suit red, cached")
    comfy_llm.run(g.prompt)
    assert len(fake.requests) == 1
    entries = list((comfy_llm.base / "user" / "ems" / "caption_cache").rglob("*.json"))
    assert entries and not [s for s in SECRETS if any(s in p.read_text() for p in entries)]

    comfy_llm.restart()
    clear_outputs(comfy_llm)
    entry = comfy_llm.run(g.prompt)
    assert len(fake.requests) == 1, "the identical run after a restart must come from the disk cache"
    assert outputs(comfy_llm) == [SOURCE, TARGET, ATTRIBUTE, "red"]
    assert "disk cache" in "\n".join(entry["outputs"][node.id]["text"])

    fake.script(
        ok(
            json.dumps(
                {
                    "source_prompt": SOURCE,
                    "target_prompt": SOURCE.replace("black", "blue"),
                    "attribute_prompt": "blue suit",
                }
            )
        )
    )
    g_refresh, _, _ = captions_graph("make her suit red, cached", refresh=True)
    comfy_llm.run(g_refresh.prompt)
    assert len(fake.requests) == 2 and outputs(comfy_llm)[2] == "blue suit"
    comfy_llm.run(g_refresh.prompt)  # refresh on: every queue asks, despite identical inputs
    assert len(fake.requests) == 3
    comfy_llm.run(g.prompt)  # refresh off again: the refreshed answer is what the cache holds
    assert len(fake.requests) == 3


@pytest.mark.parametrize("damage", ["wrong shape", "identical captions"])
def test_a_cache_entry_of_the_wrong_shape_is_a_miss(comfy_llm, fake, damage):
    """Also an entry a fresh reply could not be served as: identical captions
    and an empty attribute — a fresh reply like that is an error, so the cached one is asked again."""
    g, _, _ = captions_graph(f"make her suit red, damaged cache ({damage})")
    comfy_llm.run(g.prompt)
    cache = comfy_llm.base / "user" / "ems" / "caption_cache"
    newest = max(cache.rglob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    entry = json.loads(newest.read_text())
    if damage == "wrong shape":
        entry["value"]["target_prompt"] = ["not", "text"]
    else:
        entry["value"].update(target_prompt=entry["value"]["source_prompt"], attribute_prompt="")
    newest.write_text(json.dumps(entry))
    comfy_llm.restart()  # ComfyUI's in-memory output cache would otherwise answer
    clear_outputs(comfy_llm)
    comfy_llm.run(g.prompt)
    assert len(fake.requests) == 2 and outputs(comfy_llm)[1] == TARGET  # asked again, rewritten
    assert json.loads(newest.read_text())["value"]["target_prompt"] == TARGET


def test_overrides_need_no_server_and_no_key(comfy_llm, fake):
    g, _, _ = captions_graph(
        "make her suit red", provider="not-defined-anywhere", source_prompt=SOURCE, target_prompt=TARGET
    )
    comfy_llm.run(g.prompt)
    assert outputs(comfy_llm) == [SOURCE, TARGET, ATTRIBUTE, "red"]
    assert fake.requests == []


def test_identical_overrides_are_refused_without_a_request(comfy_llm, fake):
    msg = failure(comfy_llm, captions_graph("make her suit red", source_prompt=SOURCE, target_prompt=SOURCE)[0])
    assert "identical" in msg and fake.requests == []


def test_missing_key_names_its_variable(comfy_llm, fake):
    msg = failure(comfy_llm, captions_graph("make her suit red, no key", provider="acc-nokey")[0])
    assert "ACC_MISSING_KEY" in msg and "not set" in msg
    assert fake.requests == []


def test_rejected_key_points_at_its_variable(comfy_llm, fake):
    fake.default = error(401, f"Incorrect API key provided: {ACC_KEY[:8]}****{ACC_KEY[-4:]}")
    msg = failure(comfy_llm, captions_graph("make her suit red, 401")[0])
    assert KEY_VAR in msg and "401" in msg and ACC_KEY[-4:] not in msg
    assert len(fake.requests) == 1  # a rejected key is not retried


@pytest.mark.parametrize("echo", [f"{ACC_KEY[:12]}****{ACC_KEY[-6:]}", f"****{ACC_KEY[-4:]}", f"{ACC_KEY[:6]}…"])
def test_a_partly_masked_key_in_an_error_body_stays_out_of_the_message_history_and_log(comfy_llm, fake, echo):
    """A 4xx body echoing part of the key (401/403 bodies are left out entirely)."""
    fake.default = error(400, f"Incorrect API key provided: {echo}. You can find your key elsewhere.")
    # Its own model: a 400 also marks (server, model) as refusing structured output.
    msg = failure(comfy_llm, captions_graph(f"make her suit red, echo {echo[-3:]}", model="vision-echo")[0])
    assert "HTTP 400" in msg and "Incorrect API key provided: ***" in msg
    everything = "\n".join([msg, json.dumps(comfy_llm.get("/history")), comfy_llm.log()])
    assert echo not in everything and ACC_KEY[:12] not in everything and "****" + ACC_KEY[-4:] not in everything
    assert "sk-acc" not in everything


def test_a_nan_image_is_refused_naming_the_input_and_the_cause(comfy_llm, fake):
    """A NaN image was sent as a black one, and the answer cached."""
    cache = comfy_llm.base / "user" / "ems" / "caption_cache"
    before = sorted(cache.rglob("*.json")) if cache.exists() else []
    g = Graph()
    image = g.node("LoadImage", image=IMAGE_NAME)
    # blend_factor NaN passes ComfyUI's min/max check (every comparison with NaN is false): a NaN image.
    broken = g.node("ImageBlend", image1=image[0], image2=image[0], blend_factor=math.nan, blend_mode="normal")
    node = g.node(
        "EMSExtractCaptions",
        image=broken[0],
        instruction="make her suit red, nan image",
        provider="acc",
        model="vision-test",
        temperature=0.0,
        seed=5,
        refresh=False,
    )
    g.save(node[0], "cap_nan_image")
    msg = failure(comfy_llm, g)
    assert "the input 'image' holds NaN or infinite values" in msg and "fp16 VAE overflow" in msg
    assert "--fp32-vae" in msg
    assert fake.requests == []
    assert (sorted(cache.rglob("*.json")) if cache.exists() else []) == before  # nothing cached


def test_a_caption_node_whose_outputs_nothing_reads_never_asks_the_llm(comfy_llm, fake):
    """As an output node it ran unconnected, so a hidden one could send any image
    core LoadImage can read (it accepts ../ paths) to the user's provider on every queue."""
    assert comfy_llm.object_info()["EMSExtractCaptions"]["output_node"] is False
    Image.new("RGB", (8, 8), (1, 2, 3)).save(comfy_llm.base / "private.png")  # outside ComfyUI's input folder
    g = Graph()
    hidden = g.node(
        "EMSExtractCaptions",
        image=g.node("LoadImage", image="../private.png")[0],
        instruction="describe it, hidden",
        provider="acc",
        model="vision-test",
        temperature=0.0,
        seed=0,
        refresh=True,
    )
    g.node("SaveImage", images=g.node("LoadImage", image=IMAGE_NAME)[0], filename_prefix="ems_hidden_check")
    for _ in range(2):
        entry = comfy_llm.run(g.prompt)
    assert fake.requests == [] and hidden.id not in entry["outputs"]

    lone = Graph()
    lone.node(
        "EMSExtractCaptions",
        image=lone.node("LoadImage", image=IMAGE_NAME)[0],
        instruction="alone",
        provider="acc",
        model="vision-test",
        temperature=0.0,
        seed=0,
        refresh=True,
    )
    with pytest.raises(PromptRejected):  # nothing in it runs: ComfyUI refuses the graph
        comfy_llm.run(lone.prompt)
    assert fake.requests == []

    g.node("PreviewAny", source=hidden[0])  # once an output is read by a node that runs, it asks
    comfy_llm.run(g.prompt)
    assert len(fake.requests) == 1


def test_an_edited_provider_file_takes_effect_at_the_next_queue(comfy_llm, fake, config_dir):
    """ComfyUI reused the node's outputs while the provider behind its name changed."""
    config = config_dir / "llm.json"
    original = config.read_text()
    providers = json.loads(original)

    def define(entry):
        providers["providers"]["switch"] = entry
        config.write_text(json.dumps(providers))

    g, _, _ = captions_graph("make her suit red, switched provider", provider="switch")
    captions = ok(
        json.dumps(
            {
                "source_prompt": SOURCE,
                "target_prompt": SOURCE.replace("black", "green"),
                "attribute_prompt": "green suit",
            }
        )
    )
    with FakeOpenAI(default=captions) as moved:
        try:
            define({"base_url": fake.url, "api_key_env": KEY_VAR})
            comfy_llm.run(g.prompt)
            comfy_llm.run(g.prompt)  # nothing changed: ComfyUI's own cache answers
            assert len(fake.requests) == 1
            define({"base_url": moved.url})
            comfy_llm.run(g.prompt)
            assert len(moved.requests) == 1 and moved.requests[0].bearer == ""  # the new entry, its (no) key
            assert outputs(comfy_llm)[2] == "green suit"
            define({"base_url": moved.url, "api_key_env": ""})  # same meaning: nothing to ask again
            comfy_llm.run(g.prompt)
            assert len(moved.requests) == 1 and len(fake.requests) == 1
            # ComfyUI stores a node's fingerprint in the queued prompt (/history, PNG metadata): a digest.
            assert moved.url not in json.dumps(comfy_llm.get("/history"))
        finally:
            config.write_text(original)


@pytest.mark.parametrize(
    "reply, words",
    [
        (raw("Internal proxy junk %%% not json"), "not JSON"),
        (truncated(), "cut-off JSON"),
        (html_page(200), "an HTML page"),
        (raw('{"choices": [{"message": {"content": 42}}]}'), "content is int"),
        (ok(json.dumps({"source_prompt": SOURCE, "target_prompt": 7, "attribute_prompt": "x"})), "target_prompt (int)"),
    ],
)
def test_malformed_replies_are_errors_naming_the_node_and_the_fix(comfy_llm, fake, reply, words):
    fake.default = reply
    msg = failure(comfy_llm, captions_graph(f"make her suit red, {words}")[0])
    assert words in msg and "<html" not in msg.lower()
    assert "base_url" in msg or "repair" in msg  # the fix: the provider's URL, or what the model did


def test_a_100000_word_caption_is_refused_and_never_cached(comfy_llm, fake):
    fake.default = huge_captions(100_000)
    g, _, _ = captions_graph("make her suit red, huge")
    msg = failure(comfy_llm, g)
    assert "target_prompt of 399,999 characters" in msg and "at most 4,000" in msg and len(msg) < 2000
    assert len(fake.requests) == 1  # refused at once: the 400 kB is not sent back in a repair request
    fake.default = ok(json.dumps({"source_prompt": SOURCE, "target_prompt": TARGET, "attribute_prompt": ATTRIBUTE}))
    comfy_llm.run(g.prompt)
    assert len(fake.requests) == 2 and outputs(comfy_llm)[1] == TARGET  # nothing was cached
    cache = comfy_llm.base / "user" / "ems" / "caption_cache"
    assert max(p.stat().st_size for p in cache.rglob("*.json")) < 10_000


def test_cancel_ends_a_run_waiting_on_a_slow_server_within_seconds(comfy_llm, fake):
    fake.default = slow(25)
    prompt_id = comfy_llm.queue(captions_graph("make her suit red, slow")[0].prompt)
    deadline = time.time() + 60
    while not fake.requests and time.time() < deadline:
        time.sleep(0.1)
    assert fake.requests, "the request never reached the provider"
    entry, took = interrupt_and_wait(comfy_llm, prompt_id, limit=20, poll=0.1)
    print(f"Cancel ended the run {took:.2f} s after /interrupt (the reply would have taken 25 s)")
    assert entry, "the run did not end after Cancel"
    assert took < 10, f"Cancel took {took:.1f}s"
    kinds = message_kinds(entry)
    assert "execution_interrupted" in kinds and "execution_error" not in kinds
    time.sleep(2)
    assert len(fake.requests) == 1  # no retry after Cancel


def test_pack_scripts_are_served_and_import_only_the_public_app_module(comfy_llm):
    """Every frontend script of the pack is served, and imports nothing but ComfyUI's public
    scripts/app.js (frontend-internal modules move between frontend releases)."""
    import re
    import urllib.parse
    import urllib.request

    served = [path for path in comfy_llm.get("/extensions") if path.startswith("/extensions/comfyui-ems/")]
    assert "/extensions/comfyui-ems/js/ems_captions.js" in served
    for script in served:
        source = urllib.request.urlopen(comfy_llm.url + script, timeout=30).read().decode()
        modules = re.findall(r'^import .* from "([^"]+)";', source, flags=re.M)
        assert modules == ["../../../scripts/app.js"], (script, modules)
        resolved = urllib.parse.urljoin(comfy_llm.url + script, modules[0])
        assert urllib.request.urlopen(resolved, timeout=30).status == 200, resolved


# -- an early EMS workflow in the real frontend ------------------------------------------------------------


def legacy_workflow(base_url: str, key_env: str) -> dict:
    """A UI workflow as an early EMS saved it: LoadImage → EMS Extract Captions with the old widgets → Preview Any
    (the caption node runs only when a node that runs reads its outputs)."""
    return {
        "last_node_id": 3,
        "last_link_id": 2,
        "version": 0.4,
        "config": {},
        "extra": {},
        "groups": [],
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "STRING"]],
        "nodes": [
            {
                "id": 1,
                "type": "LoadImage",
                "pos": [0, 0],
                "size": [300, 300],
                "flags": {},
                "order": 0,
                "mode": 0,
                "inputs": [],
                "outputs": [
                    {"name": "IMAGE", "type": "IMAGE", "links": [1]},
                    {"name": "MASK", "type": "MASK", "links": None},
                ],
                "properties": {},
                "widgets_values": [IMAGE_NAME, "image"],
            },
            {
                "id": 2,
                "type": "EMSExtractCaptions",
                "pos": [400, 0],
                "size": [400, 400],
                "flags": {},
                "order": 1,
                "mode": 0,
                "inputs": [{"name": "image", "type": "IMAGE", "link": 1}],
                "outputs": [
                    {"name": n, "type": "STRING", "links": [2] if n == SPEC_OUTPUTS[0] else None} for n in SPEC_OUTPUTS
                ],
                "properties": {},
                "widgets_values": ["make her suit red, v1", "vision-test", base_url, key_env, 0.25, 7, False, "", ""],
            },
            {
                "id": 3,
                "type": "PreviewAny",
                "pos": [900, 0],
                "size": [300, 200],
                "flags": {},
                "order": 2,
                "mode": 0,
                "inputs": [{"name": "source", "type": "*", "link": 2}],
                "outputs": [],
                "properties": {},
                "widgets_values": [],
            },
        ],
    }


def test_a_v1_workflow_opens_in_the_frontend_and_runs_to_the_migration_message(comfy_llm, fake, attacker):
    from support.browser import Chromium, find_chromium
    from support.frontend import load_workflow, open_comfy

    if find_chromium() is None:
        pytest.skip("FRONTEND TEST SKIPPED: no Chromium — apt-get install chromium (scripts/test.sh does)")

    async def script(page):
        await open_comfy(page, comfy_llm)
        return [
            await load_workflow(page, legacy_workflow(attacker.url, "AWS_SECRET_ACCESS_KEY")),
            await load_workflow(page, legacy_workflow("", "OPENAI_API_KEY")),
            await load_workflow(page, legacy_workflow("http://localhost:11434/v1", "")),
        ], page.console

    with Chromium() as browser:
        (custom, openai, ollama), console = browser.run(script)
    for loaded in (custom, openai, ollama):
        assert loaded["missing"] == [] and loaded["count"] == 3
    node = custom["output"]["2"]["inputs"]
    assert {k: node[k] for k in ("instruction", "model", "temperature", "seed", "refresh")} == {
        "instruction": "make her suit red, v1",
        "model": "vision-test",
        "temperature": 0.25,
        "seed": 7,
        "refresh": False,
    }
    assert node["provider"] == attacker.url and "base_url" not in node and "api_key_env" not in node
    assert openai["output"]["2"]["inputs"]["provider"] == "openai"
    assert ollama["output"]["2"]["inputs"]["provider"] == "ollama"
    assert any("saved by an early EMS" in c["text"] for c in console)

    # What the frontend queues for the old workflow runs to the message, and asks nobody.
    prompt = custom["output"]
    with pytest.raises(ExecutionFailed) as e:
        comfy_llm.run(prompt)
    assert e.value.node_type == "EMSExtractCaptions" and "an early EMS" in e.value.message
    assert attacker.url in e.value.message and str(comfy_llm.env["EMS_LLM_CONFIG"]) in e.value.message
    assert fake.requests == [] and not [s for s in SECRETS if s in e.value.message]
