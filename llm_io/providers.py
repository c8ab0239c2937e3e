"""LLM providers: where EMS may send an image and which key goes with it — decided on the machine.

A workflow is untrusted input: it is shared as JSON and inside every PNG ComfyUI saves, and
ComfyUI runs every output node of a loaded graph and all it reads from, hidden ones too. So a
graph only *names* a provider; what a name means exists only on the machine that runs ComfyUI:

- built in: ``openai`` → https://api.openai.com/v1 with the key in ``OPENAI_API_KEY``;
  ``ollama`` → http://127.0.0.1:11434/v1 with no key;
- more in a JSON file at ``$EMS_LLM_CONFIG`` (default ``~/.config/ems/llm.json``)::

      {"providers": {"openrouter": {"base_url": "https://openrouter.ai/api/v1",
                                    "api_key_env": "OPENROUTER_API_KEY"},
                     "lmstudio":   {"base_url": "http://127.0.0.1:1234/v1"}}}

  An entry may redefine a built-in name (e.g. ``ollama`` on another machine). ``api_key_env``
  empty or absent = the server needs no key. The file holds variable *names*, never keys.

A provider's key (the environment variable, else the EMS key file ``$EMS_KEYS_FILE``, default
``~/.config/ems/keys.json``) is sent only to that provider's ``base_url``. The file is read on
every use, so an edit takes effect at the next queue; a changed environment needs a restart.
Messages name the config file (the place to edit) and never other paths on the machine, and
never say whether an environment variable the machine's config does not name is set.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

CONFIG_ENV = "EMS_LLM_CONFIG"
DEFAULT_CONFIG = "~/.config/ems/llm.json"
KEYS_FILE_ENV = "EMS_KEYS_FILE"
DEFAULT_KEYS_FILE = "~/.config/ems/keys.json"
OPENAI_URL = "https://api.openai.com/v1"
OLLAMA_URL = "http://127.0.0.1:11434/v1"
ENTRY_KEYS = ("base_url", "api_key_env")
EXAMPLE_NAME = "myserver"
# What the migration message shows for the address and the key variable: placeholders, never a workflow's values.
PLACEHOLDER = ("https://…/v1", "MYSERVER_API_KEY")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_SECRET_WORDS = ("key", "token", "secret", "password", "auth")


class ProviderError(RuntimeError):
    """A provider cannot be used; the message says why and what to edit. Never contains a key."""


@dataclass(frozen=True)
class Provider:
    name: str
    base_url: str  # an http(s) URL without credentials, query or fragment, no trailing slash
    api_key_env: str = ""  # "" = no key is sent
    origin: str = "built in"  # "built in" or the config file it came from (for messages)


BUILT_IN = {
    "openai": Provider("openai", OPENAI_URL, "OPENAI_API_KEY"),
    "ollama": Provider("ollama", OLLAMA_URL, ""),
}


def config_path(environ: Optional[Mapping[str, str]] = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get(CONFIG_ENV) or DEFAULT_CONFIG).expanduser()


def example_entry(
    base_url: str = "http://127.0.0.1:8000/v1", api_key_env: str = "MYSERVER_API_KEY", name: str = EXAMPLE_NAME
) -> str:
    entry = {"base_url": base_url, **({"api_key_env": api_key_env} if api_key_env else {})}
    return json.dumps({"providers": {name: entry}}, ensure_ascii=False)


# -- reading the file ------------------------------------------------------------------------------


def _bad(path: Path, what: str) -> ProviderError:
    return ProviderError(
        f"the LLM provider file {path} {what}. Its format: {example_entry()} "
        f"(api_key_env names an environment variable; leave it out for servers without a key)."
    )


def _odd_character(url: str) -> str:
    """The first character of ``url`` that is not printable ASCII, described, or "" if none."""
    names = {" ": "a space", "\t": "a tab", "\r": "a carriage return (CR)", "\n": "a line break (LF)"}
    for i, ch in enumerate(url, 1):
        if not "!" <= ch <= "~":
            what = names.get(ch) or (
                f"the control character U+{ord(ch):04X}" if ord(ch) < 160 else f"the non-ASCII character {ch!r}"
            )
            return f"{what} at character {i}"
    return ""


def check_base_url(url: object, where: str) -> str:
    """``url`` as a clean http(s) server root, or ProviderError saying what is wrong with it."""
    if not isinstance(url, str) or not url.strip():
        raise ProviderError(f'{where}: base_url must be a non-empty string like "http://127.0.0.1:8000/v1"')
    # Checked here, not left to the request: a line break or space would load, then fail at every
    # queue as "cannot reach the server", and a line break in a URL can smuggle an HTTP header.
    odd = _odd_character(url)
    if odd:
        raise ProviderError(
            f"{where}: base_url must be one line of plain ASCII without spaces, but it has {odd}; "
            "write the address alone (percent-encode other characters, an international host "
            "name in its xn-- form)"
        )
    url = url.rstrip("/")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # e.g. an IPv6 address with an unclosed '['
        raise ProviderError(
            f'{where}: base_url is not a valid URL; write it like "http://[::1]:8000/v1" or "http://127.0.0.1:8000/v1"'
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProviderError(
            f'{where}: base_url must start with http:// or https:// and name a host (e.g. "http://127.0.0.1:8000/v1")'
        )
    if parts.username is not None or parts.password is not None:
        # Credentials in a URL end up in logs and messages; keys belong in an environment variable.
        raise ProviderError(
            f"{where}: base_url must not contain a user name or password; put the key "
            "into an environment variable and name it in api_key_env"
        )
    if parts.query or parts.fragment:
        raise ProviderError(f"{where}: base_url must be the server's root without '?…' or '#…'")
    try:
        _ = parts.port  # urllib parses the port lazily and raises here
    except ValueError:
        raise ProviderError(f"{where}: base_url has a port that is not a number from 0 to 65535") from None
    return url


def _entry(name: str, raw: object, path: Path) -> Provider:
    where = f"the LLM provider file {path}, provider '{name}'"
    if not isinstance(raw, dict):
        raise ProviderError(f"{where}: must be an object like {json.dumps({'base_url': 'http://…/v1'})}")
    unknown = sorted(k for k in raw if k not in ENTRY_KEYS)
    if unknown:
        shown = ", ".join(repr(k[:40]) for k in unknown)
        hint = ""
        if any(w in k.lower() for k in unknown for w in _SECRET_WORDS if k != "api_key_env"):
            hint = (
                " Keys never go into this file: put the key into an environment variable (or the EMS "
                f"key file, {DEFAULT_KEYS_FILE}) and write that variable's NAME as api_key_env."
            )
        raise ProviderError(f"{where}: unknown field(s) {shown}; allowed: {', '.join(ENTRY_KEYS)}.{hint}")
    base_url = check_base_url(raw.get("base_url"), where)
    key_env = raw.get("api_key_env") or ""
    if not isinstance(key_env, str) or (key_env.strip() and not _VAR.match(key_env.strip())):
        raise ProviderError(
            f"{where}: api_key_env must be the NAME of an environment variable (letters, "
            "digits and _; e.g. MYSERVER_API_KEY), or empty for a server without a key"
        )
    return Provider(name, base_url, key_env.strip(), str(path))


def load_providers(environ: Optional[Mapping[str, str]] = None) -> dict[str, Provider]:
    """The providers defined on this machine: the built-ins, then the file's (which may redefine
    a built-in). A missing file means only the built-ins; a broken one is an error."""
    path = config_path(environ)
    providers = dict(BUILT_IN)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return providers
    except (OSError, UnicodeDecodeError) as e:
        raise _bad(path, f"cannot be read ({type(e).__name__})") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        where = f" at line {e.lineno}, column {e.colno}" if hasattr(e, "lineno") else ""
        raise _bad(path, f"is not valid JSON{where}") from None
    if not isinstance(data, dict):
        raise _bad(path, 'must hold a JSON object with a "providers" object')
    unknown = sorted(k for k in data if k != "providers")
    if unknown:
        raise _bad(
            path,
            f'has unknown top-level field(s) {", ".join(repr(k[:40]) for k in unknown)}; only "providers" is allowed',
        )
    entries = data.get("providers", {})
    if not isinstance(entries, dict):
        raise _bad(path, 'has a "providers" value that is not an object')
    for name, raw in entries.items():
        if not _NAME.match(name):
            raise _bad(
                path,
                f"has a provider name {name[:40]!r} that is not a plain name (letters, digits, "
                "'_', '-', '.'; at most 64 characters)",
            )
        providers[name] = _entry(name, raw, path)
    return providers


# -- choosing one ----------------------------------------------------------------------------------


def looks_like_url(name: str) -> bool:
    return "://" in name or name.startswith(("localhost", "127.", "www.")) or "/" in name


def _plain_var(name: object) -> str:
    """``name`` if it reads as an environment variable's name, else "" (a pasted key is never echoed)."""
    name = name.strip() if isinstance(name, str) else ""
    return name if _VAR.match(name or "-") and not _looks_like_key(name) else ""


def _is_local(url: str) -> bool:
    try:
        return urllib.parse.urlsplit(url).hostname in ("localhost", "127.0.0.1", "::1")
    except ValueError:
        return False


def _port(url: str) -> Optional[int]:
    try:
        return urllib.parse.urlsplit(url).port
    except ValueError:
        return None


def _untrusted(url: str, api_key_env: object) -> str:
    """Where the workflow wanted the image and a key to go — said as the workflow's claim, never
    offered as configuration (the URL and the variable came from whoever wrote the workflow)."""
    shown = json.dumps(re.sub(r"[\x00-\x1f\x7f]+", " ", url)[:200])
    var = _plain_var(api_key_env)
    key = (
        f" and the key in the environment variable {var}"
        if var
        else " and a key"
        if isinstance(api_key_env, str) and api_key_env.strip()
        else ""
    )
    return (
        f" This workflow wanted to send your image{key} to {shown}; that address comes from the workflow, "
        "not from you: add a server as a provider only if you trust it and would have chosen it yourself."
    )


def legacy_message(
    base_url: str = "", api_key_env: str = "", environ=None, lead: str = "this node was saved by an early EMS, where "
) -> str:
    """What changed since early EMS (a graph carried base_url/api_key_env) and how to define a provider.

    The example entry is generic on purpose: an entry built from the graph's values would be a
    ready-made configuration for whoever wrote the graph."""
    path = config_path(environ)
    url = (base_url or "").strip() or OPENAI_URL  # the old layout's default server
    var = _plain_var(api_key_env)
    if url.rstrip("/") == OPENAI_URL and var in ("", "OPENAI_API_KEY"):
        hint = " For OpenAI with OPENAI_API_KEY, just set provider to 'openai' (built in)."
    elif _port(url) == 11434 and _is_local(url) and not var:
        hint = " For Ollama on this machine, just set provider to 'ollama' (built in)."
    else:
        hint = _untrusted(url, api_key_env)
    return (
        f"{lead}the workflow chose the server (base_url) and the key "
        "variable (api_key_env). Now a workflow can no longer choose either — a shared workflow "
        "could send your image and your keys anywhere — it names a provider defined on this machine, "
        f"and those inputs are ignored.{hint} To use a server of your own, define it in {path} (the "
        f"environment variable {CONFIG_ENV} moves the file), e.g. {example_entry(*PLACEHOLDER)} with your "
        "server's address and the NAME of the variable holding its key (leave api_key_env out if it needs "
        f"no key), then set provider to '{EXAMPLE_NAME}'."
    )


def get_provider(name: str, environ: Optional[Mapping[str, str]] = None) -> Provider:
    """The provider ``name`` as this machine defines it, or ProviderError listing the defined names."""
    name = (name or "").strip()
    if name and looks_like_url(name):
        raise ProviderError(
            legacy_message(
                name,
                "",
                environ,
                lead="provider must be the NAME of a provider defined on this machine, not a URL. In an early EMS ",
            )
        )
    providers = load_providers(environ)
    if name in providers:
        return providers[name]
    path = config_path(environ)
    shown = repr(name[:64]) if name else "(empty)"
    state = "" if path.is_file() else " (that file does not exist yet)"
    raise ProviderError(
        f"provider {shown} is not defined on this machine. Defined: {', '.join(sorted(providers))}. "
        f"Pick one of those, or define it in {path}{state} — the environment variable "
        f"{CONFIG_ENV} moves the file — e.g. {example_entry()} (api_key_env names the "
        "environment variable holding its key; leave it out for a server without a key)."
    )


def _looks_like_key(name: str) -> bool:
    # Variable names are short words; keys are long runs of mixed letters and digits.
    return len(name) >= 24 and "_" not in name and any(c.isdigit() for c in name) and any(c.isalpha() for c in name)


def resolve_key(provider: Provider, environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The key for ``provider`` (None when it needs none): its environment variable, else that
    variable's entry in the EMS key file. The variable is the machine's choice, so naming it in a
    message tells a workflow nothing it could choose."""
    environ = os.environ if environ is None else environ
    var = provider.api_key_env
    if not var:
        return None
    value = (environ.get(var) or "").strip()
    if value:
        return value
    keys = Path(environ.get(KEYS_FILE_ENV) or DEFAULT_KEYS_FILE).expanduser()
    if keys.is_file():
        try:
            stored = json.loads(keys.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ProviderError(
                f"provider '{provider.name}' needs the key in {var}; it is not in the environment "
                f"and the EMS key file ({KEYS_FILE_ENV}, default {DEFAULT_KEYS_FILE}) is not "
                f"readable JSON ({type(e).__name__})."
            ) from None
        value = str(stored.get(var) or "").strip() if isinstance(stored, dict) else ""
        if value:
            return value
    tail = (
        f" If the server needs no key, remove api_key_env from '{provider.name}' in {config_path(environ)}."
        if provider.origin != "built in"
        else ""
    )
    raise ProviderError(
        f"provider '{provider.name}' needs an API key in the environment variable {var}, which is "
        f"not set for this ComfyUI (nor in the EMS key file, {KEYS_FILE_ENV}, default "
        f"{DEFAULT_KEYS_FILE}). Set {var} in the environment that starts ComfyUI and restart "
        f"it.{tail}"
    )


def legacy_widget_values(values: object) -> Optional[dict]:
    """``{"base_url", "api_key_env", ...}`` when a UI workflow's ``widgets_values`` for EMS Extract
    Captions has the old layout (instruction, model, base_url, api_key_env, temperature, seed,
    refresh, …), else None. The provider layout has a number where the old one had api_key_env."""
    if not isinstance(values, list) or len(values) < 7:
        return None
    strings, number = values[:4], values[4]
    if not all(isinstance(v, str) for v in strings) or isinstance(number, bool) or not isinstance(number, (int, float)):
        return None
    return {
        "instruction": values[0],
        "model": values[1],
        "base_url": values[2],
        "api_key_env": values[3],
        "temperature": values[4],
        "seed": values[5],
        "refresh": values[6],
        **({"source_prompt": values[7]} if len(values) > 7 else {}),
        **({"target_prompt": values[8]} if len(values) > 8 else {}),
    }
