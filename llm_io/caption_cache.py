"""A content-addressed disk cache for LLM captions, so the same edit is paid for once.

The key is a sha256 over the image's pixels and every setting that can change the answer
(instruction, provider and its URL, model, prompt version, temperature, seed, overrides). Entries are small
JSON files written atomically (temp file + ``os.replace``), so a crash never leaves half an entry;
an unreadable entry, or one of the wrong shape (the caller's ``valid``), is ignored with a
warning and rewritten on the next call. The caller chooses
the directory (the node uses ``$EMS_CACHE_DIR`` or ComfyUI's user directory), so this module stays
ComfyUI-free.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Optional

from .files import write_json_atomic

LOG = logging.getLogger("EMS")
CACHE_DIR_ENV = "EMS_CACHE_DIR"
FORMAT = 1


def cache_key(pixels: bytes, shape: tuple, **settings: Any) -> str:
    """sha256 over the image content (raw uint8 pixels + shape) and the settings, order-independent."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT, "shape": list(shape), **settings}, sort_keys=True, default=str).encode())
    h.update(b"\0")
    h.update(pixels)
    return h.hexdigest()


class CaptionCache:
    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str, valid: Optional[Callable[[dict], bool]] = None) -> Optional[dict]:
        """The stored value, or None when absent, unreadable or not ``valid`` (never raises)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            if entry.get("key") != key or not isinstance(entry.get("value"), dict):
                raise ValueError("not an EMS caption cache entry")
            if valid is not None and not valid(entry["value"]):
                raise ValueError("the entry's value has the wrong shape or fails the caption checks")
            return entry["value"]
        except (OSError, ValueError, AttributeError, TypeError) as e:
            LOG.warning("EMS: ignoring unreadable caption cache entry %s (%s); it will be rewritten.", path, e)
            return None

    def put(self, key: str, value: dict, **info: Any) -> Optional[Path]:
        """Store ``value`` atomically; a failure (read-only disk, …) only warns. ``info`` is kept
        beside the value for people browsing the cache (model, instruction, …)."""
        path = self.path(key)
        entry = {"key": key, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "info": info, "value": value}
        try:
            write_json_atomic(path, entry, indent=1)
        except OSError as e:
            LOG.warning("EMS: could not write the caption cache at %s (%s); continuing without it.", path, e)
            return None
        return path
