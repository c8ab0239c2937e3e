"""The MLLM-VQA protocol: question, parsing, aggregation, and the adapter to comfyui_ems.llm_io.client."""

import math

import pytest
import torch

from bench.metrics.vqa import (
    SCORE_QUESTION,
    YESNO_QUESTION,
    ask_pair,
    build_question,
    parse_score,
    parse_yes_no,
    sweep_pairs,
    vqa_score,
)


class ScriptedMLLM:
    """An ``ask`` callable that records what it was shown and replies from a script."""

    def __init__(self, replies):
        self.replies, self.calls = list(replies), []

    def __call__(self, images, question):
        self.calls.append((list(images), question))
        return self.replies.pop(0)


@pytest.mark.parametrize(
    "answer,expected",
    [
        ("Yes", True),
        ("yes.", True),
        ("**Yes**, the suit is redder.", True),
        ("YES", True),
        ("Yeah", True),
        ("No", False),
        ("no, nothing changed", False),
        ("Nope.", False),
        ("No. Yes would be wrong.", False),
        ("Yes — no other change.", True),
        ("I cannot tell", None),
        ("", None),
        ("not sure", None),
        ("The answer is unknown", None),
        (None, None),
    ],
)
def test_parse_yes_no(answer, expected):
    assert parse_yes_no(answer) is expected


@pytest.mark.parametrize(
    "answer,expected",
    [
        ("8", 0.8),
        ("Score: 7.5", 0.75),
        ("10/10", 1.0),
        ("0", 0.0),
        ("I'd say 3 out of 10", 0.3),
        ("eleven", None),
        ("11", None),
        ("-2", None),
        ("", None),
    ],
)
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
    result = vqa_score(pairs, mllm, runs=1)
    assert result.count == 4 and result.unparsed == 1
    assert result.percentage == pytest.approx(50.0)
    # the source goes first, the edit second, and each question names its own attribute
    assert [c[0] for c in mllm.calls] == [["src0", "ed0"], ["src1", "ed1"], ["src2", "ed2"], ["src3", "ed3"]]
    assert "gradual change of smile" in mllm.calls[1][1]
    d = result.as_dict()
    assert d["percentage"] == pytest.approx(50.0) and [it["value"] for it in d["items"]] == [1.0, 0.0, None, 1.0]


def test_score_mode_averages_ratings():
    mllm = ScriptedMLLM(["8", "10/10", "eleven"])
    result = vqa_score([(0, 1, "x"), (1, 2, "x"), (2, 3, "x")], mllm, mode="score", runs=1)
    assert result.percentage == pytest.approx(100 * (0.8 + 1.0 + 0.0) / 3)
    assert result.unparsed == 1


def test_empty_run_is_nan_and_non_string_replies_are_tolerated():
    assert math.isnan(vqa_score([], ScriptedMLLM([])).percentage)
    item = ask_pair("a", "b", "smile", lambda images, q: 1)
    assert item.answer == "1" and not item.parsed


def test_sweep_pairs_chain_consecutive_images():
    assert sweep_pairs(["e1", "e2", "e3"], "smile", source="src") == [
        ("src", "e1", "smile"),
        ("e1", "e2", "smile"),
        ("e2", "e3", "smile"),
    ]
    assert sweep_pairs(["e1", "e2"], "smile") == [("e1", "e2", "smile")]


def test_five_runs_are_averaged_by_default():
    from bench.metrics.vqa import RUNS

    assert RUNS == 5
    mllm = ScriptedMLLM(["yes", "no", "yes", "yes", "maybe"] + ["no"] * 5)
    result = vqa_score([("s", "e1", "red"), ("e1", "e2", "red")], mllm)
    assert len(mllm.calls) == 10 and result.runs == 5
    assert result.items[0].value == pytest.approx(3 / 5) and result.items[1].value == 0.0
    assert result.percentage == pytest.approx(100 * 3 / 10) and result.unparsed == 1
    assert result.run_percentages == [50.0, 0.0, 50.0, 50.0, 0.0]
    assert sum(result.run_percentages) / 5 == pytest.approx(result.percentage)
    assert result.as_dict()["items"][0]["answers"] == ["yes", "no", "yes", "yes", "maybe"]


def test_openai_adapter_against_a_loopback_provider(tmp_path):
    """The adapter through comfyui_ems.llm_io.client to a loopback OpenAI-compatible fake, named as a provider in
    the machine's config: five questions per pair, both images, the provider's key, and the mean."""
    import json

    from support.fake_openai import FakeOpenAI, ok

    from bench.metrics.vqa import openai_ask

    answers = iter(["Yes", "yes.", "No", "Yes", "yes"])
    with FakeOpenAI(default=lambda request: ok(next(answers))) as server:
        config = tmp_path / "llm.json"
        config.write_text(json.dumps({"providers": {"judge": {"base_url": server.url, "api_key_env": "JUDGE_KEY"}}}))
        env = {"EMS_LLM_CONFIG": str(config), "JUDGE_KEY": "sk-judge", "EMS_KEYS_FILE": str(tmp_path / "none")}
        ask = openai_ask(model="qwen2.5-vl", provider="judge", environ=env)
        red, blue = torch.zeros(8, 8, 3), torch.zeros(8, 8, 3)
        red[..., 0], blue[..., 2] = 1.0, 1.0
        result = vqa_score([(red, blue, "red suit")], ask)
    assert result.percentage == pytest.approx(80.0) and len(server.requests) == 5
    for req in server.requests:
        assert req.bearer == "sk-judge" and req.body["model"] == "qwen2.5-vl" and req.body["temperature"] == 1.0
        assert len(req.image_urls) == 2 and any("gradual change of red suit" in t for t in req.texts)


def test_openai_adapter_refuses_an_undefined_provider_before_asking(tmp_path):
    from comfyui_ems.llm_io.client import LLMError
    from bench.metrics.vqa import openai_ask

    with pytest.raises(LLMError, match="'nowhere' is not defined.*ollama, openai"):
        openai_ask(provider="nowhere", environ={"EMS_LLM_CONFIG": str(tmp_path / "none.json")})
    with pytest.raises(LLMError, match="OPENAI_API_KEY"):
        openai_ask(
            provider="openai",
            environ={"EMS_LLM_CONFIG": str(tmp_path / "none.json"), "EMS_KEYS_FILE": str(tmp_path / "none")},
        )
