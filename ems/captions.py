"""EMS's *Extract* step as text: the caption prompt, its JSON schema, parsing and checks.

EMS needs three strings per edit: the source caption t0 (the image as it is), the target caption
t1 (t0 with only the edited words changed, so the token positions of everything else stay aligned
for ``c0 + α(c1 − c0)``) and the attribute phrase CSDS pushes toward. The LLM is asked for all
three as JSON; the reply is checked (target differs from source only around the edit, source fits
one 77-token CLIP chunk) and, if needed, repaired once. The chat itself is a callable, so this
module knows nothing about HTTP.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Callable, Optional

# Bump when the prompt or the checks change: it is part of the cache key.
PROMPT_VERSION = "ems-captions-1"
CLIP_TOKENS = 75  # a 77-token chunk minus start and end tokens
# Our bounds, not the paper's: a caption is one sentence. A reply beyond MAX_CAPTION_CHARS per field
# is refused outright (no repair, never cached): a 100,000-word "caption" made EMS Encode Prompts
# pad every prompt to it. An attribute phrase over MAX_ATTRIBUTE_WORDS gets one repair request.
MAX_CAPTION_CHARS = 4000
MAX_ATTRIBUTE_WORDS = 12
MAX_ECHO_CHARS = 4000  # how much of a bad reply goes back to the model in the repair request
MAX_CHANGED_SPANS = 2
FUNCTION_WORDS = frozenset(
    "a an the and or but of in on at to with by for from into onto over under near next behind is are "
    "was were be being been has have had her his their its my your our this that these those while as".split()
)

SCHEMA = {
    "type": "object",
    "properties": {
        "source_prompt": {"type": "string", "description": "the image as it is, one sentence"},
        "target_prompt": {"type": "string", "description": "source_prompt with only the edited words changed"},
        "attribute_prompt": {"type": "string", "description": "short phrase naming the edited result"},
    },
    "required": ["source_prompt", "target_prompt", "attribute_prompt"],
    "additionalProperties": False,
}

SYSTEM_PROMPT = """You write captions for EMS, an image editor for Stable Diffusion 3 that edits a \
real photo by moving from a source caption to a target caption. Given an image and an edit \
instruction, reply with one JSON object with exactly these keys:
- "source_prompt": one plain sentence describing the image as it is now, at most 40 words, \
naming the thing the edit touches and its current state.
- "target_prompt": the source_prompt with ONLY the words the edit needs changed. Keep every other \
word, the word order and the punctuation identical, and keep the same number of words where the \
language allows (swap "black" for "red"; never rephrase).
- "attribute_prompt": a short phrase (1 to 5 words) naming the edited result.
Example: instruction "make her suit red" -> {"source_prompt": "a woman in a black suit standing \
in a park", "target_prompt": "a woman in a red suit standing in a park", "attribute_prompt": \
"red suit"}.
Reply with the JSON object only, no other text."""


class CaptionError(ValueError):
    """The captions cannot be used; the message says why."""


class CaptionTooLong(CaptionError):
    """A field is beyond MAX_CAPTION_CHARS: refused at once (asking again would echo it back)."""


@dataclass(frozen=True)
class Captions:
    source: str
    target: str
    attribute: str

    @property
    def edit_words(self) -> str:
        return edit_words(self.source, self.target)

    def as_dict(self) -> dict:
        return {"source_prompt": self.source, "target_prompt": self.target, "attribute_prompt": self.attribute}


# -- words and diffs -------------------------------------------------------------------------------


def _norm(word: str) -> str:
    return re.sub(r"^\W+|\W+$", "", word.lower())


def words(text: str) -> list[str]:
    return text.split()


@dataclass(frozen=True)
class Change:
    """One changed span: source words [s0, s1) became target words [t0, t1)."""

    s0: int
    s1: int
    t0: int
    t1: int


def word_diff(source: str, target: str) -> list[Change]:
    """Changed spans between two captions, compared word by word (case and punctuation ignored)."""
    a = [_norm(w) for w in words(source)]
    b = [_norm(w) for w in words(target)]
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    return [Change(i1, i2, j1, j2) for op, i1, i2, j1, j2 in matcher.get_opcodes() if op != "equal"]


def edit_words(source: str, target: str) -> str:
    """The target's changed words: words of one span joined by spaces, spans by ", "."""
    tw = words(target)
    spans = [" ".join(_norm(w) for w in tw[c.t0 : c.t1]) for c in word_diff(source, target) if c.t1 > c.t0]
    return ", ".join(s for s in spans if s)


def derive_attribute(source: str, target: str) -> Optional[str]:
    """An attribute phrase from the diff alone ("black suit" → "red suit" gives "red suit"), or
    None when the diff is not a small replacement/insertion (then the LLM has to name it)."""
    changes = [c for c in word_diff(source, target) if c.t1 > c.t0]
    if not changes or len(changes) > MAX_CHANGED_SPANS:
        return None
    tw = words(target)
    parts = []
    for c in changes:
        span = tw[c.t0 : c.t1]
        # An edited modifier means little alone: "red" → "red suit" (the next content word).
        if c.t1 < len(tw) and _norm(tw[c.t1]) not in FUNCTION_WORDS and not re.search(r"[.,;:!?]$", span[-1]):
            span = span + [tw[c.t1]]
        parts.append(" ".join(_norm(w) for w in span))
    phrase = ", ".join(p for p in parts if p)
    return phrase if phrase and len(phrase.split()) <= 8 else None


def estimate_clip_tokens(text: str) -> int:
    """A slight over-estimate of CLIP's BPE token count (no tokenizer needed): common words are one
    token, long rare words split, every digit and punctuation run is its own token."""
    count = 0
    for piece in re.findall(r"[^\W\d_]+|\d|[^\w\s]+", text.lower()):
        count += 1 + (len(piece) - 1) // 8 if piece[0].isalpha() else 1
    return count


# -- prompt and reply ------------------------------------------------------------------------------


def build_messages(
    instruction: str, image_url: str, source: Optional[str] = None, target: Optional[str] = None
) -> list[dict]:
    text = f"Edit instruction: {instruction.strip()}"
    if source:
        text += f"\nUse exactly this source_prompt: {json.dumps(source)}"
    if target:
        text += f"\nUse exactly this target_prompt: {json.dumps(target)}"
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {
            "role": "user",
            "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": image_url}}],
        },
    ]


def extract_json(text: str) -> dict:
    """The JSON object in a model's reply; tolerates code fences and prose around it."""
    text = (text or "").strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    candidates = [text] + ([fenced.group(1)] if fenced else [])
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for c in candidates:
        try:
            value = json.loads(c)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise ValueError("no JSON object in the reply")


def parse_reply(text: str) -> Captions:
    """Captions from a reply (tolerates code fences and prose around the JSON)."""
    try:
        data = extract_json(text)
    except ValueError:
        raise CaptionError(f"the reply is not the expected JSON object: {(text or '').strip()[:200]!r}") from None
    values = {k: data.get(k) for k in SCHEMA["required"]}
    if not all(isinstance(v, str) for v in values.values()):
        wrong = ", ".join(
            f"{k} ({'missing' if v is None else type(v).__name__})" for k, v in values.items() if not isinstance(v, str)
        )
        raise CaptionError(f"the reply's JSON lacks text for {wrong}: {json.dumps(data, default=str)[:200]}")
    too_long = {k: len(v) for k, v in values.items() if len(v) > MAX_CAPTION_CHARS}
    if too_long:
        listed = ", ".join(f"{k} of {n:,} characters" for k, n in too_long.items())
        raise CaptionTooLong(
            f"the model wrote {listed}; at most {MAX_CAPTION_CHARS:,} are accepted (a caption "
            "is one sentence), so the reply was refused and not cached. Use another model, or "
            "type the captions into source_prompt and target_prompt"
        )
    return Captions(*(" ".join(values[k].split()) for k in SCHEMA["required"]))


def is_cache_entry(value: object) -> bool:
    """Whether a stored value is what this module writes (else the cache treats it as a miss): the
    right shape, and captions a fresh reply could have produced — an entry that fails the checks
    that make a reply an error (identical captions, an empty one), or with an empty attribute
    (never stored: it is filled in before caching), is not served, however it got there."""
    if not isinstance(value, dict):
        return False
    fields = [value.get(k) for k in SCHEMA["required"]]
    warnings = value.get("warnings", [])
    shaped = (
        all(isinstance(f, str) and f.strip() and len(f) <= MAX_CAPTION_CHARS for f in fields)
        and isinstance(warnings, list)
        and len(warnings) <= 10
        and all(isinstance(w, str) and len(w) <= MAX_CAPTION_CHARS for w in warnings)
    )
    return bool(shaped) and not is_fatal(check_captions(Captions(*(" ".join(f.split()) for f in fields))))


def check_captions(c: Captions, check_source: bool = True) -> list[str]:
    """What is wrong with the captions for EMS (empty list = fine)."""
    problems = []
    if not c.source or not c.target:
        return ["source_prompt and target_prompt must both be non-empty"]
    changes = word_diff(c.source, c.target)
    if not changes:
        problems.append("target_prompt is identical to source_prompt; it must contain the edit")
    if check_source and estimate_clip_tokens(c.source) > CLIP_TOKENS:
        problems.append(
            f"source_prompt is too long (about {estimate_clip_tokens(c.source)} CLIP tokens); "
            f"it must stay under {CLIP_TOKENS} tokens (about 40 words)"
        )
    n = len(words(c.target))
    changed = sum(max(ch.s1 - ch.s0, ch.t1 - ch.t0) for ch in changes)
    if len(changes) > MAX_CHANGED_SPANS or changed > max(4, n // 3):
        problems.append(
            f"target_prompt rewrites more than the edit ({changed} of {n} words changed in "
            f"{len(changes)} places); change only the words the edit needs and copy the rest"
        )
    if not c.attribute:
        problems.append("attribute_prompt is empty")
    elif len(words(c.attribute)) > MAX_ATTRIBUTE_WORDS:
        problems.append(
            f"attribute_prompt has {len(words(c.attribute))} words; it must be a short phrase "
            "(1 to 5 words) naming the edited result"
        )
    return problems


def repair_message(problems: list[str]) -> dict:
    listed = "\n".join(f"- {p}" for p in problems)
    return {
        "role": "user",
        "content": f"Your reply has problems:\n{listed}\nReply again with the corrected JSON object only.",
    }


def is_fatal(problems: list[str]) -> bool:
    return any("identical" in p or "non-empty" in p for p in problems)


def extract_captions(
    chat: Callable[[list[dict]], str],
    instruction: str,
    image_url: str,
    source: Optional[str] = None,
    target: Optional[str] = None,
) -> tuple[Captions, list[str]]:
    """Ask ``chat`` for captions, check them, repair once. Returns the captions and the problems
    that remain (warnings). Given ``source``/``target`` replace what the model wrote."""
    messages = build_messages(instruction, image_url, source, target)

    def ask() -> tuple[Optional[Captions], list[str], str]:
        reply = chat(messages)
        try:
            c = parse_reply(reply)
        except CaptionTooLong:
            raise
        except CaptionError as e:
            return None, [str(e)], reply
        src, tgt = source or c.source, target or c.target
        c = Captions(src, tgt, c.attribute or derive_attribute(src, tgt) or "")
        return c, check_captions(c, check_source=not source), reply

    captions, problems, reply = ask()
    if problems:
        messages += [{"role": "assistant", "content": reply[:MAX_ECHO_CHARS]}, repair_message(problems)]
        captions, problems, _ = ask()
    if captions is None:
        raise CaptionError(problems[0] + " (also after one repair request)")
    if is_fatal(problems):
        raise CaptionError("; ".join(problems) + " (also after one repair request)")
    if not captions.attribute:
        captions = Captions(captions.source, captions.target, captions.target)
    return captions, problems
