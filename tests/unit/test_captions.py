"""ems/captions.py: diffs, checks, parsing and the ask → check → repair-once flow."""

from __future__ import annotations

import json

import pytest

from comfyui_ems.ems.captions import (
    CLIP_TOKENS,
    SCHEMA,
    CaptionError,
    Captions,
    build_messages,
    check_captions,
    derive_attribute,
    edit_words,
    estimate_clip_tokens,
    extract_captions,
    parse_reply,
    word_diff,
)

SRC = "a photo of a woman in a black suit standing in a park"
TGT = "a photo of a woman in a red suit standing in a park"
URL = "data:image/png;base64,AAAA"


def reply(source=SRC, target=TGT, attribute="red suit"):
    return json.dumps({"source_prompt": source, "target_prompt": target, "attribute_prompt": attribute})


class Chat:
    """A scripted chat function that records the conversations it was given."""

    def __init__(self, *replies):
        self.replies, self.calls = list(replies), []

    def __call__(self, messages):
        self.calls.append([dict(m) for m in messages])
        return self.replies.pop(0)


def test_word_diff_finds_the_edited_span_ignoring_case_and_punctuation():
    (change,) = word_diff(SRC, TGT)
    assert (change.s0, change.s1, change.t0, change.t1) == (7, 8, 7, 8)
    assert word_diff("A cat, sitting.", "a cat sitting") == []
    assert edit_words(SRC, TGT) == "red"
    assert edit_words("a dog on a sofa with a ball", "a cat on a sofa with a red ball") == "cat, red"


@pytest.mark.parametrize(
    "source,target,attribute",
    [
        (SRC, TGT, "red suit"),
        ("a dog on a sofa", "a cat on a sofa", "cat"),
        ("a smiling man.", "a crying man.", "crying man"),
        ("a house", "a house on fire", "on fire"),
        (SRC, SRC, None),  # nothing changed
        ("a b c d e f g h", "z b y d x f w h", None),  # scattered rewrite
    ],
)
def test_attribute_is_derived_from_a_small_diff(source, target, attribute):
    assert derive_attribute(source, target) == attribute


def test_clip_token_estimate_is_conservative():
    assert estimate_clip_tokens(SRC) == len(SRC.split())
    assert estimate_clip_tokens("photograph, 1990s") == 2 + 1 + 4 + 1  # long word split, digits, comma
    assert estimate_clip_tokens(" ".join(["word"] * 80)) > CLIP_TOKENS


def test_checks_flag_identical_long_and_rewritten_targets():
    assert check_captions(Captions(SRC, TGT, "red suit")) == []
    assert any("identical" in p for p in check_captions(Captions(SRC, SRC, "x")))
    long = " ".join(["a woman in a black suit"] * 14)
    assert any("too long" in p for p in check_captions(Captions(long, long.replace("black", "red", 1), "red suit")))
    assert check_captions(Captions(long, long.replace("black", "red", 1), "r"), check_source=False) == []
    rewrite = "an elegant lady wearing a crimson outfit in a garden"
    assert any("rewrites more than the edit" in p for p in check_captions(Captions(SRC, rewrite, "red suit")))


def test_parse_reply_accepts_fences_and_rejects_other_shapes():
    assert parse_reply(f"```json\n{reply()}\n```") == Captions(SRC, TGT, "red suit")
    with pytest.raises(CaptionError, match="not the expected JSON"):
        parse_reply("A woman in a suit.")
    with pytest.raises(CaptionError, match="lacks text for attribute_prompt"):
        parse_reply('{"source_prompt": "a", "target_prompt": "b"}')


def test_schema_is_strict_json_schema():
    assert SCHEMA["additionalProperties"] is False
    assert set(SCHEMA["required"]) == set(SCHEMA["properties"])


def test_messages_carry_instruction_image_and_fixed_captions():
    system, user = build_messages("make her suit red", URL, source=SRC)
    assert system["role"] == "system" and "JSON" in system["content"]
    text, image = user["content"]
    assert "make her suit red" in text["text"] and json.dumps(SRC) in text["text"]
    assert image == {"type": "image_url", "image_url": {"url": URL}}


def test_good_reply_needs_one_call():
    chat = Chat(reply())
    assert extract_captions(chat, "make her suit red", URL) == (Captions(SRC, TGT, "red suit"), [])
    assert len(chat.calls) == 1


def test_bad_reply_gets_one_repair_request_naming_the_problem():
    chat = Chat(reply(target=SRC), reply())
    captions, warnings = extract_captions(chat, "make her suit red", URL)
    assert captions.target == TGT and warnings == [] and len(chat.calls) == 2
    repair = chat.calls[1]
    assert repair[-2]["role"] == "assistant" and "identical" in repair[-1]["content"]


def test_non_json_twice_is_an_error():
    with pytest.raises(CaptionError, match="not the expected JSON.*after one repair"):
        extract_captions(Chat("Sure! A woman.", "Still not JSON"), "make her suit red", URL)


def test_still_rewritten_after_repair_is_a_warning_not_an_error():
    rewrite = "an elegant lady wearing a crimson outfit in a garden"
    chat = Chat(reply(target=rewrite), reply(target=rewrite))
    captions, warnings = extract_captions(chat, "make her suit red", URL)
    assert captions.target == rewrite and len(warnings) == 1 and "rewrites" in warnings[0]
    assert len(chat.calls) == 2  # one repair only


def test_given_captions_replace_the_models_and_a_missing_attribute_is_derived():
    chat = Chat(reply(source="something else", attribute=""))
    captions, _ = extract_captions(chat, "make her suit red", URL, source=SRC)
    assert captions == Captions(SRC, TGT, "red suit")


# -- bounded replies -------------------------------------------------------------------------------


def test_a_100000_word_caption_is_refused_at_once_without_echoing_it_back():
    from comfyui_ems.ems.captions import MAX_CAPTION_CHARS, CaptionTooLong

    chat = Chat(reply(target=" ".join(["red"] * 100_000)), reply())
    with pytest.raises(CaptionTooLong) as e:
        extract_captions(chat, "make her suit red", URL)
    assert "target_prompt of 399,999 characters" in str(e.value) and f"{MAX_CAPTION_CHARS:,}" in str(e.value)
    assert len(chat.calls) == 1  # no repair request: it would send the 400 kB back


@pytest.mark.parametrize(
    "data, words",
    [
        ({"source_prompt": SRC, "target_prompt": 7, "attribute_prompt": "x"}, "target_prompt (int)"),
        ({"source_prompt": [SRC], "target_prompt": TGT, "attribute_prompt": "x"}, "source_prompt (list)"),
        ({"source_prompt": SRC, "target_prompt": TGT}, "attribute_prompt (missing)"),
    ],
)
def test_json_of_wrong_types_is_a_caption_error(data, words):
    with pytest.raises(CaptionError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_reply(json.dumps(data))


def test_a_long_attribute_phrase_gets_a_repair_request():
    chat = Chat(reply(attribute=" ".join(["very"] * 30) + " red suit"), reply())
    captions, warnings = extract_captions(chat, "make her suit red", URL)
    assert captions.attribute == "red suit" and warnings == [] and len(chat.calls) == 2
    assert "short phrase" in chat.calls[1][-1]["content"]


def test_repair_request_echoes_at_most_a_bounded_part_of_a_bad_reply():
    from comfyui_ems.ems.captions import MAX_ECHO_CHARS

    chat = Chat("prose " * 50_000, reply())
    extract_captions(chat, "make her suit red", URL)
    assert len(chat.calls[1][-2]["content"]) == MAX_ECHO_CHARS


def test_cache_entries_of_the_wrong_shape_are_recognised():
    from comfyui_ems.ems.captions import is_cache_entry

    good = {"source_prompt": SRC, "target_prompt": TGT, "attribute_prompt": "red suit", "warnings": []}
    assert is_cache_entry(good)
    for bad in (
        {**good, "target_prompt": 3},
        {**good, "source_prompt": ""},
        {**good, "warnings": "w"},
        {**good, "target_prompt": "x" * 5000},
        [good],
        {k: v for k, v in good.items() if k != "attribute_prompt"},
    ):
        assert not is_cache_entry(bad), bad


@pytest.mark.parametrize(
    "change",
    [
        {"target_prompt": SRC, "attribute_prompt": ""},  # identical captions, empty attribute
        {"target_prompt": SRC},  # identical captions: an error for a fresh reply
        {"target_prompt": SRC.upper() + "."},  # identical but for case and punctuation
        {"attribute_prompt": ""},  # never stored: a fresh reply's empty attribute is filled in
        {"target_prompt": " "},  # blank: "must both be non-empty"
    ],
)
def test_a_cache_entry_that_a_fresh_reply_could_not_produce_is_not_served(change):
    """A cache hit passes the same fatal checks as a fresh reply (a hand-edited or planted entry)."""
    from comfyui_ems.ems.captions import is_cache_entry

    good = {"source_prompt": SRC, "target_prompt": TGT, "attribute_prompt": "red suit", "warnings": []}
    assert not is_cache_entry({**good, **change})
