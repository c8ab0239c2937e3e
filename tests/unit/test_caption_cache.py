"""ems/caption_cache.py: content-addressed keys, atomic writes, corrupt entries ignored."""

from __future__ import annotations

import logging
import os

import pytest

from comfyui_ems.llm_io.caption_cache import CaptionCache, cache_key

PIXELS = bytes(range(48))
SETTINGS = dict(
    instruction="make it red",
    model="gpt-4o",
    base_url="",
    prompt_version="v1",
    temperature=0.0,
    seed=0,
    source_override="",
    target_override="",
)
VALUE = {"source_prompt": "a black suit", "target_prompt": "a red suit", "attribute_prompt": "red suit"}


def test_key_covers_image_content_and_every_setting():
    key = cache_key(PIXELS, (4, 4, 3), **SETTINGS)
    assert key == cache_key(PIXELS, (4, 4, 3), **dict(reversed(list(SETTINGS.items()))))
    assert len(key) == 64
    assert cache_key(PIXELS[:-1] + b"\xff", (4, 4, 3), **SETTINGS) != key
    assert cache_key(PIXELS, (2, 8, 3), **SETTINGS) != key
    changed = {
        "instruction": "make it blue",
        "model": "gpt-4o-mini",
        "base_url": "http://x/v1",
        "prompt_version": "v2",
        "temperature": 0.5,
        "seed": 1,
        "source_override": "s",
        "target_override": "t",
    }
    for name, value in changed.items():
        assert cache_key(PIXELS, (4, 4, 3), **{**SETTINGS, name: value}) != key, name


def test_round_trip_survives_a_new_instance(tmp_path):
    key = cache_key(PIXELS, (4, 4, 3), **SETTINGS)
    assert CaptionCache(tmp_path).get(key) is None
    path = CaptionCache(tmp_path).put(key, VALUE, model="gpt-4o")
    assert path.is_file() and path.parent.parent == tmp_path
    assert CaptionCache(tmp_path).get(key) == VALUE
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left


@pytest.mark.parametrize("content", ["{truncated", '{"key": "other", "value": {}}', "[]", ""])
def test_corrupt_entry_is_ignored_with_a_warning_and_rewritten(tmp_path, caplog, content):
    cache, key = CaptionCache(tmp_path), cache_key(PIXELS, (4, 4, 3), **SETTINGS)
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_text(content)
    with caplog.at_level(logging.WARNING, logger="EMS"):
        assert cache.get(key) is None
    assert "unreadable caption cache entry" in caplog.text
    cache.put(key, VALUE)
    assert cache.get(key) == VALUE


def test_a_failed_write_leaves_the_old_entry_and_no_temp_file(tmp_path, monkeypatch, caplog):
    cache, key = CaptionCache(tmp_path), cache_key(PIXELS, (4, 4, 3), **SETTINGS)
    cache.put(key, VALUE)

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with caplog.at_level(logging.WARNING, logger="EMS"):
        assert cache.put(key, {**VALUE, "attribute_prompt": "new"}) is None
    assert "could not write" in caplog.text
    monkeypatch.undo()
    assert cache.get(key) == VALUE
    assert [p.name for p in cache.path(key).parent.iterdir()] == [cache.path(key).name]


def test_unwritable_location_only_warns(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with caplog.at_level(logging.WARNING, logger="EMS"):
        assert CaptionCache(blocker / "cache").put("ab" * 32, VALUE) is None
    assert "could not write" in caplog.text


def test_an_entry_of_the_wrong_shape_is_a_miss(tmp_path, caplog):
    cache, key = CaptionCache(tmp_path), cache_key(PIXELS, (4, 4, 3), **SETTINGS)
    cache.put(key, {**VALUE, "target_prompt": ["not", "text"]})
    valid = lambda v: all(isinstance(v.get(k), str) for k in VALUE)  # noqa: E731
    with caplog.at_level(logging.WARNING, logger="EMS"):
        assert cache.get(key, valid=valid) is None
    assert "wrong shape" in caplog.text
    cache.put(key, VALUE)
    assert cache.get(key, valid=valid) == VALUE
