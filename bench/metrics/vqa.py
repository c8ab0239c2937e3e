"""MLLM-VQA: a multimodal LLM judges whether an edit shows a *gradual* change of the attribute.

What the paper says, and what is ours. The EMS paper (arXiv 2408.13335) reports MLLM-VQA on its
ZOFIE benchmark (43.8 for EMS vs 29.2 prompt-only, as its numbers are quoted); the protocol, as
described, asks the paper's question and averages 5 runs per pair. The paper's own wording of the
question could **not** be retrieved where this pack is built (searches of arXiv 2408.13335 and its
mirrors return only the abstract), so :data:`YESNO_QUESTION` below is **our** wording, written
from the protocol's description: the model sees two images — the source (or the previous image of
an α sweep) first, the edited image second — and is asked whether the second reflects a gradual
change of X relative to the first, X being the attribute phrase of the edit ("red suit",
"smile"). Replace it with the paper's exact question through ``template`` when you have it.
:data:`RUNS` = 5 is the protocol's number of runs as described (not checked against the paper's
text, which is out of reach here): every pair is asked ``runs`` times and the score is the mean
over all answers (= the mean of the ``runs`` per-run percentages). Averaging only means something
when answers can differ, so the adapter's default temperature is 1.0 (the OpenAI API's own
default; our choice).

This module owns the question, the parsing and the aggregation; the model call is injected as
``ask(images, question) -> str`` (images in order: first, second — whatever the callable
accepts: tensors, PIL images, paths). :func:`openai_ask` adapts the pack's OpenAI-compatible
client: the destination and its key come from a provider defined on the machine
(:mod:`comfyui_ems.llm_io.providers`) or built by the person at the command line, never from a file the run reads.

Two modes:
- ``"yesno"`` (default): answer parsed as yes/no; score = 100 · #yes / #answers.
  An answer that is neither counts as "no" (conservative) and is reported in ``unparsed``.
- ``"score"`` (ours): the model rates the change 0–10; score = 100 · mean(rating / 10), unparsed or
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
    "Answer with a single word: yes or no."
)
SCORE_QUESTION = (
    "The first image is the original and the second image is an edited version of it. "
    "On a scale from 0 to 10, how clearly does the second image reflect a gradual change of "
    "{attribute} relative to the first image (0 = no change of {attribute}, 10 = a clear change "
    "of {attribute} with everything else kept)? Answer with a single number."
)
SCORE_SCALE = 10.0
MODES = ("yesno", "score")
RUNS = 5  # answers per pair, averaged (the paper's protocol as described; its text is out of reach)
TEMPERATURE = 1.0  # so that the runs can differ (our choice; the OpenAI API's default)


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
    answers: list[str]
    values: list[Optional[float]]  # per run: 1/0 for yes/no, rating/scale for "score"; None if unparsed

    @property
    def answer(self) -> str:
        return self.answers[0] if self.answers else ""

    @property
    def unparsed(self) -> int:
        return sum(v is None for v in self.values)

    @property
    def parsed(self) -> bool:
        return bool(self.values) and self.unparsed == 0

    @property
    def value(self) -> Optional[float]:
        """Mean over runs, unparsed answers counting as 0; None when no answer parsed at all."""
        if not self.values or self.unparsed == len(self.values):
            return None
        return sum(v or 0.0 for v in self.values) / len(self.values)


@dataclass
class VQAResult:
    mode: str
    runs: int = 1
    items: list[VQAItem] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def unparsed(self) -> int:
        """Answers (over all pairs and runs) that said neither yes nor no / gave no usable number."""
        return sum(it.unparsed for it in self.items)

    @property
    def percentage(self) -> float:
        """100 · mean over every answer (pairs × runs; unparsed count as 0); NaN for no pairs."""
        answers = [v or 0.0 for it in self.items for v in it.values]
        return 100.0 * sum(answers) / len(answers) if answers else math.nan

    @property
    def run_percentages(self) -> list[float]:
        """The percentage of each run on its own (their mean is ``percentage``)."""
        return (
            [100.0 * sum(it.values[r] or 0.0 for it in self.items) / len(self.items) for r in range(self.runs)]
            if self.items
            else []
        )

    def as_dict(self) -> dict:
        return {
            "mode": self.mode,
            "runs": self.runs,
            "percentage": self.percentage,
            "count": self.count,
            "unparsed": self.unparsed,
            "run_percentages": self.run_percentages,
            "items": [{"attribute": it.attribute, "answers": it.answers, "value": it.value} for it in self.items],
        }


def _value(answer: str, mode: str) -> Optional[float]:
    if mode == "yesno":
        verdict = parse_yes_no(answer)
        return None if verdict is None else float(verdict)
    return parse_score(answer)


def ask_pair(
    first: Any,
    second: Any,
    attribute: str,
    ask: Ask,
    mode: str = "yesno",
    template: Optional[str] = None,
    runs: int = 1,
) -> VQAItem:
    """Ask about one (first, second) pair ``runs`` times and parse the answers."""
    if runs < 1:
        raise ValueError(f"VQA runs must be at least 1, got {runs}")
    question = build_question(attribute, mode, template)
    answers = []
    for _ in range(runs):
        answer = ask([first, second], question)
        answers.append(answer if isinstance(answer, str) else str(answer))
    return VQAItem(attribute, question, answers, [_value(a, mode) for a in answers])


def vqa_score(
    pairs: Iterable[tuple[Any, Any, str]],
    ask: Ask,
    mode: str = "yesno",
    template: Optional[str] = None,
    runs: int = RUNS,
) -> VQAResult:
    """Run the protocol over ``(first_image, second_image, attribute)`` triples, ``runs`` answers each."""
    result = VQAResult(mode, runs)
    for first, second, attribute in pairs:
        result.items.append(ask_pair(first, second, attribute, ask, mode, template, runs))
    return result


def sweep_pairs(images: Sequence[Any], attribute: str, source: Any = None) -> list[tuple[Any, Any, str]]:
    """Pairs for an α sweep: each image against the previous one (the first against ``source``
    when given), so every pair asks whether the change continues gradually."""
    seq = ([source] if source is not None else []) + list(images)
    return [(seq[i], seq[i + 1], attribute) for i in range(len(seq) - 1)]


def openai_ask(
    model: str = "gpt-4o",
    provider: Any = "openai",
    temperature: float = TEMPERATURE,
    seed: Optional[int] = None,
    environ=None,
    cancelled: Callable[[], bool] = lambda: False,
    **config: Any,
) -> Ask:
    """An ``ask`` callable backed by the pack's OpenAI-compatible client (:mod:`comfyui_ems.llm_io.client`, the same
    one the captions node uses). ``provider`` is the NAME of a provider defined on this machine
    (built in: ``openai``, ``ollama``; more in ``$EMS_LLM_CONFIG``) or a
    :class:`~comfyui_ems.llm_io.providers.Provider` a command line built from what the person typed. The key
    comes from that provider's variable and is sent only to its URL; it is checked here, before
    any question is asked."""
    from comfyui_ems.llm_io.client import (
        LLMConfig,
        LLMError,
        ask_vision,
    )  # imported lazily: the metrics work without it
    from comfyui_ems.llm_io.providers import Provider, ProviderError, get_provider, resolve_key

    try:
        chosen = provider if isinstance(provider, Provider) else get_provider(str(provider), environ)
        resolve_key(chosen, environ)
    except ProviderError as e:
        raise LLMError(str(e)) from None
    cfg = LLMConfig(model=model, provider=chosen, temperature=temperature, seed=seed, **config)

    def ask(images: Sequence[Any], question: str) -> str:
        return ask_vision(cfg, question, list(images), environ=environ, cancelled=cancelled)

    ask.config = cfg  # type: ignore[attr-defined]
    return ask
