"""The MLLM-VQA protocol: question, parsing, aggregation, and the adapter to ems.llm."""

import math

import pytest

from ems.metrics.vqa import (SCORE_QUESTION, YESNO_QUESTION, ask_pair, build_question, parse_score, parse_yes_no,
                             sweep_pairs, vqa_score)


class ScriptedMLLM:
    """An ``ask`` callable that records what it was shown and replies from a script."""

    def __init__(self, replies):
        self.replies, self.calls = list(replies), []

    def __call__(self, images, question):
        self.calls.append((list(images), question))
        return self.replies.pop(0)


@pytest.mark.parametrize("answer,expected", [
    ("Yes", True), ("yes.", True), ("**Yes**, the suit is redder.", True), ("YES", True), ("Yeah", True),
    ("No", False), ("no, nothing changed", False), ("Nope.", False),
    ("No. Yes would be wrong.", False), ("Yes — no other change.", True),
    ("I cannot tell", None), ("", None), ("not sure", None), ("The answer is unknown", None), (None, None),
])
def test_parse_yes_no(answer, expected):
    assert parse_yes_no(answer) is expected


@pytest.mark.parametrize("answer,expected", [
    ("8", 0.8), ("Score: 7.5", 0.75), ("10/10", 1.0), ("0", 0.0), ("I'd say 3 out of 10", 0.3),
    ("eleven", None), ("11", None), ("-2", None), ("", None),
])
def test_parse_score(answer, expected):
    assert parse_score(answer) == (pytest.approx(expected) if expected is not None else None)


def test_question_names_the_attribute_and_the_protocol():
    q = build_question("  red   suit ")
    assert "gradual change of red suit" in q and "second image" in q and "yes or no" in q
    assert q == YESNO_QUESTION.replace("{attribute}", "red suit")
    assert build_question("smile", mode="score") == SCORE_QUESTION.replace("{attribute}", "smile")
    assert build_question("smile", template="More {attribute}?") == "More smile?"
    with pytest.raises(ValueError, match="attribute"):
        build_question("  ")
    with pytest.raises(ValueError, match="mode"):
        build_question("smile", mode="likert")
    with pytest.raises(ValueError, match="{attribute}"):
        build_question("smile", template="Is it better?")


def test_yes_percentage_over_pairs_with_unparsed_counted_as_no():
    mllm = ScriptedMLLM(["Yes.", "no", "I cannot tell", "yes"])
    pairs = [("src0", "ed0", "red suit"), ("src1", "ed1", "smile"), ("src2", "ed2", "snow"), ("src3", "ed3", "age")]
    result = vqa_score(pairs, mllm)
    assert result.count == 4 and result.unparsed == 1
    assert result.percentage == pytest.approx(50.0)
    # the source goes first, the edit second, and each question names its own attribute
    assert [c[0] for c in mllm.calls] == [["src0", "ed0"], ["src1", "ed1"], ["src2", "ed2"], ["src3", "ed3"]]
    assert "gradual change of smile" in mllm.calls[1][1]
    d = result.as_dict()
    assert d["percentage"] == pytest.approx(50.0) and [it["value"] for it in d["items"]] == [1.0, 0.0, None, 1.0]


def test_score_mode_averages_ratings():
    mllm = ScriptedMLLM(["8", "10/10", "eleven"])
    result = vqa_score([(0, 1, "x"), (1, 2, "x"), (2, 3, "x")], mllm, mode="score")
    assert result.percentage == pytest.approx(100 * (0.8 + 1.0 + 0.0) / 3)
    assert result.unparsed == 1


def test_empty_run_is_nan_and_non_string_replies_are_tolerated():
    assert math.isnan(vqa_score([], ScriptedMLLM([])).percentage)
    item = ask_pair("a", "b", "smile", lambda images, q: 1)
    assert item.answer == "1" and not item.parsed


def test_sweep_pairs_chain_consecutive_images():
    assert sweep_pairs(["e1", "e2", "e3"], "smile", source="src") == [
        ("src", "e1", "smile"), ("e1", "e2", "smile"), ("e2", "e3", "smile")]
    assert sweep_pairs(["e1", "e2"], "smile") == [("e1", "e2", "smile")]


def test_openai_adapter_goes_through_ems_llm(monkeypatch):
    llm = pytest.importorskip("ems.llm")
    from ems.metrics.vqa import openai_ask
    seen = {}

    def fake_ask_vision(config, question, images, **kwargs):
        seen.update(config=config, question=question, images=images)
        return "Yes"

    monkeypatch.setattr(llm, "ask_vision", fake_ask_vision)
    ask = openai_ask(model="qwen2.5-vl", base_url="http://localhost:11434/v1", api_key_env="")
    result = vqa_score([("src", "edited", "red suit")], ask)
    assert result.percentage == 100.0
    assert seen["images"] == ["src", "edited"] and "gradual change of red suit" in seen["question"]
    assert seen["config"].model == "qwen2.5-vl" and seen["config"].base_url == "http://localhost:11434/v1"
    assert seen["config"].temperature == 0.0
