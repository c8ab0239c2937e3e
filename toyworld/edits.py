"""Edit test cases: a source scene, the same scene with one attribute changed, and the prompts.

Kinds: colour → another colour; shape → another shape; count → one more object
(one → two, two → three); size small → large; background → another background. The attribute
prompt is the edited words with the object noun (our choice), e.g. "purple circles", "squares",
"two circles", "large circle", "black background".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scenes import ATTRIBUTES, Scene, caption, partial_caption, split as scene_split

EDIT_KINDS = ("colour", "shape", "count", "size", "background")


@dataclass(frozen=True)
class EditCase:
    source: Scene
    target: Scene
    kind: str
    source_prompt: str
    target_prompt: str
    attribute_prompt: str


# What each kind's attribute prompt names: the edited attribute with the object noun (our choice),
# i.e. a partial caption of the target; toy world v3 trains on these.
ATTRIBUTE_NAMED: dict[str, frozenset[str]] = {
    "colour": frozenset({"colour", "shape"}),
    "shape": frozenset({"shape"}),
    "count": frozenset({"count", "shape"}),
    "size": frozenset({"size", "shape"}),
    "background": frozenset({"background"}),
}


def attribute_prompt(target: Scene, kind: str) -> str:
    """The words the edit adds, with their noun: what EMS's attribute prompt describes."""
    if kind not in ATTRIBUTE_NAMED:
        raise ValueError(f"unknown edit kind {kind!r}; expected one of {EDIT_KINDS}")
    return partial_caption(target, ATTRIBUTE_NAMED[kind])


def _eligible(scene: Scene, kind: str) -> bool:
    if kind == "count":
        return scene.count < max(ATTRIBUTES["count"])
    if kind == "size":
        return scene.size == "small"
    return True


def _target(scene: Scene, kind: str, rng: np.random.Generator) -> Scene:
    if kind == "count":
        return scene.replace(count=scene.count + 1)
    if kind == "size":
        return scene.replace(size="large")
    others = [v for v in ATTRIBUTES[kind] if v != getattr(scene, kind)]
    return scene.replace(**{kind: others[int(rng.integers(len(others)))]})


def make_case(source: Scene, target: Scene, kind: str) -> EditCase:
    return EditCase(source, target, kind, caption(source), caption(target), attribute_prompt(target, kind))


def edit_cases(split: str, per_kind: int, seed: int = 0) -> list[EditCase]:
    """``per_kind`` cases of each kind in EDIT_KINDS, sources drawn from ``split`` (deterministic).

    Sources are distinct scenes within a kind; a kind's cases come in EDIT_KINDS order.
    """
    scenes = scene_split(split)
    cases = []
    for k, kind in enumerate(EDIT_KINDS):
        rng = np.random.default_rng([seed, k])
        pool = [s for s in scenes if _eligible(s, kind)]
        if per_kind > len(pool):
            raise ValueError(f"{split} has only {len(pool)} {kind} sources; asked for {per_kind}")
        for i in rng.permutation(len(pool))[:per_kind]:
            source = pool[int(i)]
            cases.append(make_case(source, _target(source, kind, rng), kind))
    return cases
