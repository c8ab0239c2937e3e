"""Issue 4, end to end: EMSExtractCaptions in a real ComfyUI server talking to a loopback
OpenAI-compatible server, observed only from outside (HTTP, files, PNG metadata)."""

from __future__ import annotations

import base64
import io
import json
import os

import pytest
from PIL import Image

from support.comfy_server import ComfyServer, ExecutionFailed, prepare_base
from support.fake_openai import ATTRIBUTE, SOURCE, TARGET, FakeOpenAI, error, ok
from support.graph import Graph

KEY = "sk-ems-integration-secret-7f3a9c1e5b"
KEY_VAR = "EMS_TEST_OPENAI_KEY"
NODE = "EMS Extract Captions"
IMAGE_NAME = "ems_caption_source.png"
SPEC_INPUTS = {"image", "instruction", "model", "base_url", "api_key_env", "temperature", "seed", "refresh",
               "source_prompt", "target_prompt"}
SPEC_OUTPUTS = ["source_prompt", "target_prompt", "attribute_prompt", "edit_words"]


@pytest.fixture(scope="module")
def llm_server():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def comfy_llm(tmp_path_factory):
    """A ComfyUI server whose environment holds the key in KEY_VAR (and no key file)."""
    base = prepare_base(tmp_path_factory.mktemp("comfy_llm"))
    picture = Image.new("RGB", (40, 24), (200, 30, 30))
    picture.paste((20, 40, 220), (20, 0, 40, 24))
    picture.save(base / "input" / IMAGE_NAME)
    env = {KEY_VAR: KEY, "EMS_KEYS_FILE": str(base / "no-keys.json"), "EMS_CACHE_DIR": ""}
    server = ComfyServer(os.environ["COMFYUI_DIR"], base, env=env).start()
    yield server
    server.stop()


@pytest.fixture
def fake(llm_server):
    llm_server.reset()
    llm_server.default = ok(json.dumps({"source_prompt": SOURCE, "target_prompt": TARGET,
                                        "attribute_prompt": ATTRIBUTE}))
    return llm_server


def captions_graph(fake_url, instruction, save=True, **overrides):
    g = Graph()
    image = g.node("LoadImage", image=IMAGE_NAME)
    inputs = dict(image=image[0], instruction=instruction, model="vision-test", base_url=fake_url,
                  api_key_env=KEY_VAR, temperature=0.0, seed=5, refresh=False)
    node = g.node("EMSExtractCaptions", **{**inputs, **overrides})
    if save:
        for i, name in enumerate(SPEC_OUTPUTS):
            g.save(node[i], f"cap_{name}")
    return g, image, node


def outputs(comfy):
    return [comfy.load_saved(f"cap_{name}") for name in SPEC_OUTPUTS]


def clear_outputs(comfy):
    for name in SPEC_OUTPUTS:
        (comfy.base / "output" / f"cap_{name}.pt").unlink(missing_ok=True)


def test_node_matches_the_spec(comfy_llm):
    info = comfy_llm.object_info()["EMSExtractCaptions"]
    inputs = {**info["input"]["required"], **info["input"].get("optional", {})}
    assert set(inputs) == SPEC_INPUTS
    assert set(info["input"].get("optional", {})) == {"source_prompt", "target_prompt"}
    assert info["output_name"] == SPEC_OUTPUTS and info["output"] == ["STRING"] * 4
    assert info["category"] == "EMS/extract" and info["display_name"] == "EMS Extract Captions (LLM)"
    assert all(spec[1].get("tooltip") for spec in inputs.values())
    assert inputs["model"][1]["default"] == "gpt-4o" and inputs["base_url"][1]["default"] == ""
    assert inputs["api_key_env"][1]["default"] == "OPENAI_API_KEY" and inputs["temperature"][1]["default"] == 0
    assert inputs["instruction"][1]["multiline"] is True
    # A seed that randomises after every queue would defeat the cache and pay for every run.
    assert inputs["seed"][1]["control_after_generate"] is False


def test_request_outputs_and_no_key_in_workflow_or_png(comfy_llm, fake):
    g, image, node = captions_graph(fake.url, "make her suit red")
    g.node("SaveImage", images=image[0], filename_prefix="ems_key_check")
    workflow = {"nodes": [{"id": int(node.id), "type": "EMSExtractCaptions",
                           "widgets_values": ["make her suit red", "vision-test", fake.url, KEY_VAR, 0.0, 5, False]}]}
    entry = comfy_llm.run(g.prompt, extra_data={"extra_pnginfo": {"workflow": workflow}})

    (req,) = fake.requests
    assert req.bearer == KEY and req.body["model"] == "vision-test"
    assert req.body["response_format"]["type"] == "json_schema"
    assert any("make her suit red" in t for t in req.texts)
    (url,) = req.image_urls
    assert url.startswith("data:image/png;base64,")
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
    original = Image.open(comfy_llm.base / "input" / IMAGE_NAME).convert("RGB")
    assert sent.size == original.size and sent.tobytes() == original.tobytes()

    assert outputs(comfy_llm) == [SOURCE, TARGET, ATTRIBUTE, "red"]
    shown = "\n".join(entry["outputs"][node.id]["text"])
    assert SOURCE in shown and TARGET in shown and "vision-test" in shown

    pngs = sorted((comfy_llm.base / "output").glob("ems_key_check_*.png"))
    assert pngs, "SaveImage wrote nothing"
    metadata = Image.open(pngs[-1]).text
    assert KEY_VAR in metadata["prompt"] and KEY_VAR in metadata["workflow"]  # the metadata is there…
    assert all(KEY not in value for value in metadata.values())  # …but not the key
    assert KEY not in json.dumps(g.prompt) + json.dumps(workflow) + json.dumps(comfy_llm.get("/history"))
    assert KEY not in comfy_llm.log()


def test_disk_cache_survives_a_restart_and_refresh_asks_again(comfy_llm, fake):
    g, _, node = captions_graph(fake.url, "make her suit red, cached")
    comfy_llm.run(g.prompt)
    assert len(fake.requests) == 1
    entries = list((comfy_llm.base / "user" / "ems" / "caption_cache").rglob("*.json"))
    assert entries and all(KEY not in p.read_text() for p in entries)

    comfy_llm.restart()
    clear_outputs(comfy_llm)
    entry = comfy_llm.run(g.prompt)
    assert len(fake.requests) == 1, "the identical run after a restart must come from the disk cache"
    assert outputs(comfy_llm) == [SOURCE, TARGET, ATTRIBUTE, "red"]
    assert "disk cache" in "\n".join(entry["outputs"][node.id]["text"])

    fake.script(ok(json.dumps({"source_prompt": SOURCE, "target_prompt": SOURCE.replace("black", "blue"),
                               "attribute_prompt": "blue suit"})))
    g_refresh, _, _ = captions_graph(fake.url, "make her suit red, cached", refresh=True)
    comfy_llm.run(g_refresh.prompt)
    assert len(fake.requests) == 2 and outputs(comfy_llm)[2] == "blue suit"
    comfy_llm.run(g_refresh.prompt)  # refresh on: every queue asks, despite identical inputs
    assert len(fake.requests) == 3
    comfy_llm.run(g.prompt)  # refresh off again: the refreshed answer is what the cache holds
    assert len(fake.requests) == 3


def test_overrides_need_no_server_and_no_key(comfy_llm, fake):
    g, _, _ = captions_graph("http://127.0.0.1:9/v1", "make her suit red", api_key_env="EMS_NOT_SET_ANYWHERE",
                          source_prompt=SOURCE, target_prompt=TARGET)
    comfy_llm.run(g.prompt)
    assert outputs(comfy_llm) == [SOURCE, TARGET, ATTRIBUTE, "red"]
    assert fake.requests == []


def test_identical_overrides_are_refused_without_a_request(comfy_llm, fake):
    g, _, _ = captions_graph("http://127.0.0.1:9/v1", "make her suit red", source_prompt=SOURCE,
                             target_prompt=SOURCE)
    msg = failure(comfy_llm, g)
    assert "identical" in msg and fake.requests == []


def failure(comfy, g) -> str:
    with pytest.raises(ExecutionFailed) as e:
        comfy.run(g.prompt)
    assert e.value.node_type == "EMSExtractCaptions"
    assert NODE in e.value.message and KEY not in e.value.message
    return e.value.message


def test_missing_key_names_the_variable(comfy_llm, fake):
    g, _, _ = captions_graph(fake.url, "make her suit red, no key", api_key_env="EMS_MISSING_KEY_VAR")
    msg = failure(comfy_llm, g)
    assert "EMS_MISSING_KEY_VAR" in msg and "not set" in msg
    assert fake.requests == []


def test_rejected_key_points_at_its_variable(comfy_llm, fake):
    fake.default = error(401, f"Incorrect API key provided: {KEY[:8]}****{KEY[-4:]}")
    msg = failure(comfy_llm, captions_graph(fake.url, "make her suit red, 401")[0])
    assert KEY_VAR in msg and "401" in msg and KEY[-4:] not in msg
    assert len(fake.requests) == 1  # a rejected key is not retried


def test_non_json_reply_is_a_clear_error_after_one_repair(comfy_llm, fake):
    fake.default = ok("The image shows a woman in a black suit.")
    msg = failure(comfy_llm, captions_graph(fake.url, "make her suit red, prose")[0])
    assert "not the expected JSON" in msg and "repair" in msg
    assert len(fake.requests) == 2


def test_caption_preview_script_is_served_and_its_imports_resolve(comfy_llm):
    import urllib.parse
    import urllib.request

    script = "/extensions/comfyui-ems/js/ems_captions.js"
    assert script in comfy_llm.get("/extensions")
    source = urllib.request.urlopen(comfy_llm.url + script, timeout=30).read().decode()
    for module in ("../../../scripts/app.js", "../../../scripts/widgets.js"):
        assert f'from "{module}"' in source
        resolved = urllib.parse.urljoin(comfy_llm.url + script, module)
        assert urllib.request.urlopen(resolved, timeout=30).status == 200, resolved
