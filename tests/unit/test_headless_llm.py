"""The headless runner's LLM options: the destination and its key come from this machine's
providers or from the command line, never from the workflow it reads."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

import pytest

from headless.__main__ import COMMAND_LINE_PROVIDER, llm_env, llm_problems, refuse_legacy_captions, workflow_providers
from headless.workflow import WorkflowError
from comfyui_ems.llm_io.providers import load_providers
from support.messages import suggested_entries

REPO = Path(__file__).resolve().parents[2]


def args(**kw):
    return Namespace(
        **{
            "provider": None,
            "base_url": None,
            "api_key_env": None,
            "workflow": REPO / "example_workflows" / "06 Full EMS alpha grid, LLM captions (SD3 + LLM).json",
            **kw,
        }
    )


@pytest.fixture
def machine(tmp_path, monkeypatch):
    config = tmp_path / "llm.json"
    config.write_text(
        json.dumps({"providers": {"lab": {"base_url": "http://10.0.0.5:8000/v1", "api_key_env": "LAB_KEY"}}})
    )
    monkeypatch.setenv("EMS_LLM_CONFIG", str(config))
    monkeypatch.setenv("EMS_KEYS_FILE", str(tmp_path / "none.json"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("LAB_KEY", raising=False)
    return config


def test_shipped_workflows_name_the_openai_provider():
    for path in sorted((REPO / "example_workflows").glob("*.json")):
        wf = json.loads(path.read_text())
        if any(n["type"] == "EMSExtractCaptions" for n in wf["nodes"]):
            assert workflow_providers(path) == ["openai"], path.name


def test_the_workflows_provider_needs_its_key_and_an_undefined_one_is_named(machine, monkeypatch, tmp_path):
    assert "OPENAI_API_KEY, which is not set" in llm_problems(args())[0]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    assert llm_problems(args()) == []
    assert "LAB_KEY, which is not set" in llm_problems(args(provider="lab"))[0]
    problem = llm_problems(args(provider="elsewhere"))[0]
    assert "'elsewhere' is not defined" in problem and "lab, ollama, openai" in problem and str(machine) in problem


def test_command_line_server_and_its_key_variable(machine, monkeypatch):
    assert "MY_VAR, which is not set" in llm_problems(args(base_url="http://127.0.0.1:9/v1", api_key_env="MY_VAR"))[0]
    assert llm_problems(args(base_url="http://127.0.0.1:9/v1")) == []  # no key: a local server
    assert "user name or password" in llm_problems(args(base_url="http://u:p@127.0.0.1:9/v1"))[0]
    assert "not both" in llm_problems(args(base_url="http://127.0.0.1:9/v1", provider="lab"))[0]
    assert "goes with --base-url" in llm_problems(args(api_key_env="MY_VAR"))[0]
    (problem,) = llm_problems(args(provider="http://127.0.0.1:9/v1"))
    assert "--provider takes the NAME" in problem and "--base-url" in problem and "workflow" not in problem


def test_a_command_line_server_reaches_the_private_comfyui_as_a_provider_beside_the_machines(machine, tmp_path):
    assert llm_env(args(provider="lab"), tmp_path) == {}
    env = llm_env(args(base_url="http://127.0.0.1:9/v1/", api_key_env="MY_VAR"), tmp_path)
    written = Path(env["EMS_LLM_CONFIG"])
    assert written.parent == tmp_path
    providers = load_providers({"EMS_LLM_CONFIG": str(written)})
    assert providers[COMMAND_LINE_PROVIDER].base_url == "http://127.0.0.1:9/v1"
    assert providers[COMMAND_LINE_PROVIDER].api_key_env == "MY_VAR"
    assert providers["lab"].base_url == "http://10.0.0.5:8000/v1"  # the machine's providers stay usable
    assert "sk-" not in written.read_text()  # names only


def test_a_v1_workflow_is_refused_with_the_migration_message(machine):
    v1 = {
        "nodes": [
            {
                "id": 7,
                "type": "EMSExtractCaptions",
                "widgets_values": [
                    "make it red",
                    "gpt-4o",
                    "http://evil.example/v1",
                    "AWS_SECRET_ACCESS_KEY",
                    0.0,
                    0,
                    False,
                    "",
                    "",
                ],
            }
        ]
    }
    with pytest.raises(WorkflowError) as e:
        refuse_legacy_captions(v1)
    msg = str(e.value)
    assert "node 7" in msg and "an early EMS" in msg and str(machine) in msg
    # The workflow's server is named as its wish, never offered as an entry to paste.
    assert (
        "wanted to send your image and the key in the environment variable AWS_SECRET_ACCESS_KEY to "
        '"http://evil.example/v1"'
    ) in msg and "only if you trust it" in msg
    entries = suggested_entries(msg)
    assert entries and not [e for e in entries if "evil.example" in json.dumps(e) or "AWS_" in json.dumps(e)]
    refuse_legacy_captions(
        json.loads((REPO / "example_workflows" / "05 Full EMS edit, LLM captions (SD3 + LLM).json").read_text())
    )  # the provider layout: fine
