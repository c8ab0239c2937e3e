"""llm_io/providers.py: the machine's LLM providers file — missing, malformed, unknown keys, no key."""

from __future__ import annotations

import json

import pytest

from comfyui_ems.llm_io.providers import (
    BUILT_IN,
    OLLAMA_URL,
    OPENAI_URL,
    Provider,
    ProviderError,
    get_provider,
    load_providers,
    resolve_key,
    legacy_message,
)
from support.messages import suggested_entries


def env_with(tmp_path, content=None, **extra):
    path = tmp_path / "llm.json"
    if content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return {"EMS_LLM_CONFIG": str(path), "EMS_KEYS_FILE": str(tmp_path / "keys.json"), **extra}, path


def test_missing_file_means_the_built_ins(tmp_path):
    env, _ = env_with(tmp_path)
    providers = load_providers(env)
    assert providers == BUILT_IN
    assert providers["openai"] == Provider("openai", OPENAI_URL, "OPENAI_API_KEY")
    assert providers["ollama"].base_url == OLLAMA_URL and providers["ollama"].api_key_env == ""


def test_default_location_is_under_the_users_config(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".config" / "ems").mkdir(parents=True)
    (tmp_path / ".config" / "ems" / "llm.json").write_text(
        json.dumps({"providers": {"lab": {"base_url": "http://10.0.0.5:8000/v1/"}}})
    )
    lab = get_provider("lab", {"HOME": str(tmp_path)})
    assert lab.base_url == "http://10.0.0.5:8000/v1" and lab.api_key_env == ""


def test_file_providers_and_a_redefined_built_in(tmp_path):
    env, path = env_with(
        tmp_path,
        {
            "providers": {
                "acc": {"base_url": "http://127.0.0.1:9999/v1", "api_key_env": "ACC_LLM_KEY"},
                "ollama": {"base_url": "http://gpu-box:11434/v1"},
            }
        },
    )
    providers = load_providers(env)
    assert providers["acc"] == Provider("acc", "http://127.0.0.1:9999/v1", "ACC_LLM_KEY", str(path))
    assert providers["ollama"].base_url == "http://gpu-box:11434/v1"
    assert providers["openai"] == BUILT_IN["openai"]


@pytest.mark.parametrize(
    "content, words",
    [
        ("{not json", "not valid JSON at line 1, column 2"),
        ("[]", "must hold a JSON object"),
        ({"providers": []}, "not an object"),
        ({"provider": {}}, "unknown top-level field(s) 'provider'"),
        ({"providers": {"bad name!": {"base_url": "http://x/v1"}}}, "not a plain name"),
        ({"providers": {"a": "http://x/v1"}}, "must be an object"),
        ({"providers": {"a": {}}}, "base_url must be a non-empty string"),
        ({"providers": {"a": {"base_url": "ftp://x/v1"}}}, "http:// or https://"),
        ({"providers": {"a": {"base_url": "http://user:pw@x/v1"}}}, "user name or password"),
        ({"providers": {"a": {"base_url": "http://x/v1?key=1"}}}, "without '?…'"),
        ({"providers": {"a": {"base_url": "http://x/v1", "api_key_env": "sk-abc def"}}}, "NAME of an environment"),
        ({"providers": {"a": {"base_url": "http://x/v1", "model": "gpt"}}}, "unknown field(s) 'model'"),
    ],
)
def test_malformed_files_are_errors_naming_the_file_and_the_fix(tmp_path, content, words):
    env, path = env_with(tmp_path, content)
    with pytest.raises(ProviderError) as e:
        get_provider("openai", env)  # a broken file is reported even when a built-in is asked for
    assert words in str(e.value) and str(path) in str(e.value)


@pytest.mark.parametrize(
    "base_url, words",
    [
        # Loaded before, then failed at every queue as "is the server running".
        ("http://127.0.0.1:8000/v1\r\n", "a carriage return (CR) at character 25"),
        ("http://x/v1\nX-Header: 1", "a line break (LF) at character 12"),
        ("http://127.0.0.1 :8000/v1", "a space at character 17"),
        (" http://x/v1", "a space at character 1"),
        ("http://x/v1\t", "a tab at character 12"),
        ("http://x\x00/v1", "the control character U+0000"),
        ("http://bücher.example/v1", "the non-ASCII character 'ü'"),
        ("http://x:99999/v1", "port that is not a number"),
        ("http://[::1/v1", "not a valid URL"),
    ],
)
def test_a_base_url_that_cannot_be_requested_is_refused_at_load_naming_the_field(tmp_path, base_url, words):
    """Such a URL used to load, then fail at every queue as "is the server running"."""
    env, path = env_with(tmp_path, {"providers": {"a": {"base_url": base_url}}})
    with pytest.raises(ProviderError) as e:
        load_providers(env)
    msg = str(e.value)
    assert words in msg and str(path) in msg and "provider 'a': base_url" in msg
    assert "\r" not in msg and "\n" not in msg


def test_a_key_written_into_the_file_is_refused_without_echoing_it(tmp_path):
    secret = "sk-live-0123456789abcdefghij"
    env, _ = env_with(tmp_path, {"providers": {"a": {"base_url": "http://x/v1", "api_key": secret}}})
    with pytest.raises(ProviderError) as e:
        load_providers(env)
    assert "Keys never go into this file" in str(e.value) and secret not in str(e.value)


def test_undefined_provider_lists_the_defined_names_and_the_file(tmp_path):
    env, path = env_with(tmp_path, {"providers": {"acc": {"base_url": "http://127.0.0.1:1/v1"}}})
    with pytest.raises(ProviderError) as e:
        get_provider("attacker", env)
    msg = str(e.value)
    assert "'attacker' is not defined" in msg and "acc, ollama, openai" in msg and str(path) in msg
    path.unlink()
    with pytest.raises(ProviderError, match="does not exist yet"):
        get_provider("acc", env)


def test_a_url_as_provider_explains_the_change(tmp_path):
    env, path = env_with(tmp_path)
    with pytest.raises(ProviderError) as e:
        get_provider("http://attacker.example:8080/v1", env)
    msg = str(e.value)
    assert "not a URL" in msg and "EMS_LLM_CONFIG" in msg and str(path) in msg
    assert_generic_entries(msg, "http://attacker.example:8080/v1")
    assert 'send your image to "http://attacker.example:8080/v1"' in msg and "only if you trust it" in msg


def test_provider_without_a_key_sends_none_and_a_key_comes_from_env_then_key_file(tmp_path):
    env, _ = env_with(
        tmp_path,
        {
            "providers": {
                "local": {"base_url": "http://127.0.0.1:1/v1", "api_key_env": ""},
                "acc": {"base_url": "http://127.0.0.1:2/v1", "api_key_env": "ACC_LLM_KEY"},
            }
        },
    )
    assert resolve_key(get_provider("local", env), env) is None
    assert (
        resolve_key(get_provider("acc", {**env, "ACC_LLM_KEY": " sk-env "}), {**env, "ACC_LLM_KEY": " sk-env "})
        == "sk-env"
    )
    (tmp_path / "keys.json").write_text(json.dumps({"ACC_LLM_KEY": "sk-file"}))
    assert resolve_key(get_provider("acc", env), env) == "sk-file"


def test_missing_key_names_its_variable_but_no_path_but_the_config(tmp_path):
    env, path = env_with(
        tmp_path, {"providers": {"acc": {"base_url": "http://127.0.0.1:2/v1", "api_key_env": "ACC_LLM_KEY"}}}
    )
    with pytest.raises(ProviderError) as e:
        resolve_key(get_provider("acc", env), env)
    msg = str(e.value)
    assert "ACC_LLM_KEY" in msg and "not set" in msg and str(path) in msg
    assert str(tmp_path / "keys.json") not in msg  # the key file is named by its variable, not its path


def assert_generic_entries(msg: str, *workflow_values: str) -> None:
    entries = suggested_entries(msg)
    assert entries, msg
    for entry in entries:
        text = json.dumps(entry)
        assert not [v for v in workflow_values if v and v in text], (entry, workflow_values)
        (server,) = entry["providers"].values()
        assert server["base_url"] == "https://…/v1" and server["api_key_env"] == "MYSERVER_API_KEY"


@pytest.mark.parametrize(
    "base_url, key_env",
    [
        ("http://evil.example/v1", "AWS_SECRET_ACCESS_KEY"),  # the attacker's entry, ready to paste
        ("", "AWS_SECRET_ACCESS_KEY"),  # OpenAI's server, another secret
        ("http://evil.example:11434/v1", ""),  # Ollama's port on someone else's host
        ("http://evil.example/v1\n\nAdd it, it is safe", "GITHUB_TOKEN"),
    ],
)
def test_v1_message_suggests_no_entry_built_from_the_workflow_and_names_its_server_as_untrusted(
    tmp_path, base_url, key_env
):
    env, path = env_with(tmp_path)
    msg = legacy_message(base_url, key_env, env)
    assert_generic_entries(msg, base_url.strip() or OPENAI_URL, key_env)
    wanted = base_url.splitlines()[0] if base_url else OPENAI_URL
    assert "This workflow wanted to send your image" in msg and wanted in msg and "only if you trust it" in msg
    assert "\n" not in msg and str(path) in msg
    if key_env:
        assert f"the key in the environment variable {key_env} to" in msg  # said, not configured
    assert "'openai'" not in msg and "'ollama'" not in msg  # no built-in stands for these


def test_v1_message_never_echoes_a_pasted_key_and_suggests_built_ins(tmp_path):
    env, path = env_with(tmp_path)
    pasted = "3f9a0c1b7d2e4f6a8b9c0d1e2f3a4b5c"
    msg = legacy_message("http://evil.example/v1", pasted, env)
    assert pasted not in msg and "http://evil.example/v1" in msg and str(path) in msg
    assert "your image and a key to" in msg
    for built_in, args in (("'openai'", ("", "OPENAI_API_KEY")), ("'ollama'", ("http://localhost:11434/v1", ""))):
        msg = legacy_message(*args, env)
        assert built_in in msg and "wanted to send" not in msg  # the old layout meant exactly the built-in
        assert_generic_entries(msg)


def test_the_legacy_widget_layout_is_recognised_and_the_provider_layout_is_not():
    from comfyui_ems.llm_io.providers import legacy_widget_values

    v1 = ["make it red", "gpt-4o", "http://x:1/v1", "MY_KEY", 0.0, 0, False, "", ""]
    assert legacy_widget_values(v1) == {
        "instruction": "make it red",
        "model": "gpt-4o",
        "base_url": "http://x:1/v1",
        "api_key_env": "MY_KEY",
        "temperature": 0.0,
        "seed": 0,
        "refresh": False,
        "source_prompt": "",
        "target_prompt": "",
    }
    assert legacy_widget_values(["make it red", "openai", "gpt-4o", 0.0, 0, False, "", ""]) is None
    assert legacy_widget_values({"instruction": "x"}) is None and legacy_widget_values(None) is None


def test_the_node_docs_example_provider_file_is_valid(tmp_path):
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "web" / "docs" / "EMSExtractCaptions.md").read_text(encoding="utf-8")
    example = re.search(r'```json\n(\{"providers".*?)```', doc, re.S).group(1)
    env, _ = env_with(tmp_path, example)
    providers = load_providers(env)
    assert providers["openrouter"].api_key_env == "OPENROUTER_API_KEY" and providers["lmstudio"].api_key_env == ""
