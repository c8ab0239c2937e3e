"""MLLM-VQA: the paper's automatic check that an edit shows a *gradual* change of the attribute.

Protocol (EMS paper, ZOFIE benchmark): a multimodal LLM is shown two images — the source (or
the previous image of an α sweep) first, the edited image second — and asked whether the second
image reflects a gradual change of X relative to the first, X being the attribute phrase of the
edit ("red suit", "smile"). The score is the percentage of pairs answered "yes".

This module owns the question, the parsing and the aggregation; the model call is injected as
``ask(images, question) -> str`` (images in order: first, second — whatever the callable
accepts: tensors, PIL images, paths). :func:`openai_ask` adapts the pack's OpenAI-compatible
client when it is available.

Two modes:
- ``"yesno"`` (default, the paper's): answer parsed as yes/no; score = 100 · #yes / #pairs.
  An answer that is neither counts as "no" (conservative) and is reported in ``unparsed``.
- ``"score"``: the model rates the change 0–10; score = 100 · mean(rating / 10), unparsed or
  out-of-range ratings count as 0 and are reported in ``unparsed``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence

Ask = Callable[[Sequence[Any], str], str]

YESNO_QUESTION = (
    "The first image is the original and the second image is an edited version of it. "
    "Does the second image reflect a gradual change of {attribute} relative to the first image? "
    "Answer with a single word: yes or no.")
SCORE_QUESTION = (
    "The first image is the original and the second image is an edited version of it. "
    "On a scale from 0 to 10, how clearly does the second image reflect a gradual change of "
    "{attribute} relative to the first image (0 = no change of {attribute}, 10 = a clear change "
    "of {attribute} with everything else kept)? Answer with a single number.")
SCORE_SCALE = 10.0
MODES = ("yesno", "score")


def build_question(attribute: str, mode: str = "yesno", template: Optional[str] = None) -> str:
    """The question for one pair; ``template`` overrides the wording (must contain ``{attribute}``)."""
    if mode not in MODES:
        raise ValueError(f"VQA mode {mode!r} is not one of {MODES}")
    attribute = " ".join(str(attribute).split())
    if not attribute:
        raise ValueError("VQA needs the attribute phrase of the edit (e.g. 'red suit'), got an empty string")
    template = template or (YESNO_QUESTION if mode == "yesno" else SCORE_QUESTION)
    if "{attribute}" not in template:
        raise ValueError("a VQA question template must contain '{attribute}'")
    return template.replace("{attribute}", attribute)


_WORD = re.compile(r"[a-z]+")


def parse_yes_no(answer: str) -> Optional[bool]:
    """True for yes, False for no, None when the answer says neither.

    The first "yes"/"no" word decides ("Yes, the suit is redder" → True, "No." → False,
    "**Yes**" → True); "yeah"/"yep"/"nope" count; "not"/"none"/"know" do not.
    """
    if not isinstance(answer, str):
        return None
    for word in _WORD.findall(answer.lower()):
        if word in ("yes", "yeah", "yep", "y"):
            return True
        if word in ("no", "nope", "n"):
            return False
    return None


_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?")


def parse_score(answer: str, scale: float = SCORE_SCALE) -> Optional[float]:
    """The first number in the answer divided by ``scale`` (so in [0, 1]); None when there is
    no number or it lies outside [0, scale]. "8/10" → 0.8, "Score: 7.5" → 0.75."""
    if not isinstance(answer, str):
        return None
    m = _NUMBER.search(answer)
    if not m:
        return None
    value = float(m.group())
    if not (0.0 <= value <= scale) or not math.isfinite(value):
        return None
    return value / scale


@dataclass
class VQAItem:
    attribute: str
    question: str
    answer: str
    value: Optional[float]  # 1/0 for yes/no, rating/scale for "score"; None if unparsed

    @property
    def parsed(self) -> bool:
        return self.value is not None


@dataclass
class VQAResult:
    mode: str
    items: list[VQAItem] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def unparsed(self) -> int:
        return sum(not it.parsed for it in self.items)

    @property
    def percentage(self) -> float:
        """100 · mean value over all pairs (unparsed count as 0); NaN for no pairs."""
        if not self.items:
            return math.nan
        return 100.0 * sum(it.value or 0.0 for it in self.items) / len(self.items)

    def as_dict(self) -> dict:
        return {"mode": self.mode, "percentage": self.percentage, "count": self.count,
                "unparsed": self.unparsed,
                "items": [{"attribute": it.attribute, "answer": it.answer, "value": it.value} for it in self.items]}


def ask_pair(first: Any, second: Any, attribute: str, ask: Ask, mode: str = "yesno",
             template: Optional[str] = None) -> VQAItem:
    """Ask about one (first, second) pair and parse the answer."""
    question = build_question(attribute, mode, template)
    answer = ask([first, second], question)
    answer = answer if isinstance(answer, str) else str(answer)
    if mode == "yesno":
        verdict = parse_yes_no(answer)
        value = None if verdict is None else float(verdict)
    else:
        value = parse_score(answer)
    return VQAItem(attribute, question, answer, value)


def vqa_score(pairs: Iterable[tuple[Any, Any, str]], ask: Ask, mode: str = "yesno",
              template: Optional[str] = None) -> VQAResult:
    """Run the protocol over ``(first_image, second_image, attribute)`` triples."""
    result = VQAResult(mode)
    for first, second, attribute in pairs:
        result.items.append(ask_pair(first, second, attribute, ask, mode, template))
    return result


def sweep_pairs(images: Sequence[Any], attribute: str, source: Any = None) -> list[tuple[Any, Any, str]]:
    """Pairs for an α sweep: each image against the previous one (the first against ``source``
    when given), so every pair asks whether the change continues gradually."""
    seq = ([source] if source is not None else []) + list(images)
    return [(seq[i], seq[i + 1], attribute) for i in range(len(seq) - 1)]


def openai_ask(model: str = "gpt-4o", base_url: str = "", api_key_env: str = "OPENAI_API_KEY",
               temperature: float = 0.0, seed: Optional[int] = None, **config: Any) -> Ask:
    """An ``ask`` callable backed by the pack's OpenAI-compatible client (:mod:`ems.llm`, the
    same one the captions node uses): any server speaking chat completions with image input.
    Keys come from the environment variable named by ``api_key_env`` or the EMS key file."""
    from ems.llm import LLMConfig, ask_vision  # imported lazily: the metrics work without it

    cfg = LLMConfig(model=model, base_url=base_url, api_key_env=api_key_env, temperature=temperature,
                    seed=seed, **config)

    def ask(images: Sequence[Any], question: str) -> str:
        return ask_vision(cfg, question, list(images))

    ask.config = cfg  # type: ignore[attr-defined]
    return ask
