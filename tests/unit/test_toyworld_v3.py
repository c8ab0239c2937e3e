"""Toy world v3's pieces that need no model: partial captions, the attribute prompts as partial
captions, the training sampler's mixture, and the placement readout (unnamed content)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from comfyui_ems.toyworld.edits import ATTRIBUTE_NAMED, EDIT_KINDS, attribute_prompt, edit_cases
from comfyui_ems.toyworld.readout import placed
from comfyui_ems.toyworld.scenes import (
    ATTRIBUTES,
    Scene,
    all_captions,
    all_partial_captions,
    caption,
    partial_caption,
    render,
    split,
)

SCENE = Scene("red", "circle", 2, "small", "white", layout=5)


def test_a_partial_caption_names_exactly_the_chosen_attributes():
    assert partial_caption(SCENE, set(ATTRIBUTES)) == caption(SCENE)
    assert partial_caption(SCENE, set()) == ""
    assert partial_caption(SCENE, {"colour", "shape"}) == "red circles"  # plural follows the count
    assert partial_caption(SCENE, {"colour"}) == "red shapes"
    assert partial_caption(SCENE, {"background"}) == "white background"
    assert partial_caption(SCENE, {"count", "background"}) == "two shapes on a white background"
    assert partial_caption(SCENE.replace(count=1), {"size", "shape"}) == "small circle"
    with pytest.raises(ValueError, match="unknown attributes"):
        partial_caption(SCENE, {"texture"})


def test_every_value_named_appears_and_no_other():
    for named in (set(c) for r in range(1, 6) for c in itertools.combinations(ATTRIBUTES, r)):
        text = partial_caption(SCENE, named).split()
        for attr in ("colour", "size", "background"):
            assert (getattr(SCENE, attr) in text) == (attr in named), (named, text)
        assert ("circles" in text) == ("shape" in named)
        assert ("two" in text) == ("count" in named)


def test_the_partial_grammar_holds_every_full_caption_and_every_attribute_prompt():
    grammar = set(all_partial_captions())
    assert "" not in grammar and set(all_captions()) <= grammar
    assert len(grammar) == len(all_partial_captions())
    for case in edit_cases("test", 20):
        assert case.attribute_prompt in grammar
        assert case.attribute_prompt == partial_caption(case.target, ATTRIBUTE_NAMED[case.kind])


def test_attribute_prompts_are_what_the_bench_always_used():
    target = Scene("purple", "square", 3, "large", "black")
    expected = {
        "colour": "purple squares",
        "shape": "squares",
        "count": "three squares",
        "size": "large squares",
        "background": "black background",
    }
    assert {k: attribute_prompt(target, k) for k in EDIT_KINDS} == expected


def test_the_training_sampler_mixes_full_attribute_and_random_captions():
    from comfyui_ems.toyworld import train_v3 as T

    scenes = [Scene(*combo, layout=0) for combo in list(itertools.product(*ATTRIBUTES.values()))[:40]]
    texts = all_partial_captions()
    table = T.caption_table(scenes, {t: i for i, t in enumerate(texts)})
    assert table.shape == (40, 31)
    assert [texts[i] for i in table[:, -1]] == [caption(s) for s in scenes]
    pick = T.partial_sampler(table)
    gen = torch.Generator().manual_seed(0)
    idx = torch.arange(40).repeat(250)
    rows = pick(idx, gen)
    full = (rows == table[idx, -1]).float().mean().item()
    attr_cols = table[idx][:, list(T._ATTRIBUTE_SUBSETS)]
    attribute = (rows[:, None] == attr_cols).any(1).float().mean().item()
    # full: P_FULL plus the random subsets' 1/31; attribute-prompt subsets: P_ATTRIBUTE plus 5/31 of the rest
    rest = 1 - T.P_FULL - T.P_ATTRIBUTE
    assert full == pytest.approx(T.P_FULL + rest / 31, abs=0.02)
    assert attribute == pytest.approx(T.P_ATTRIBUTE + rest * 5 / 31, abs=0.02)
    assert torch.equal(rows, pick(idx, torch.Generator().manual_seed(0)))  # seeded


def test_placement_reads_where_objects_are_not_what_they_are():
    for scene in split("test")[::7]:
        assert placed(render(scene), scene) == 1.0
        for kind, value in (("colour", "blue"), ("shape", "triangle"), ("size", "large")):
            edited = scene.replace(**{kind: value})
            assert placed(render(edited), scene) == 1.0, (scene, kind)
    moved = SCENE.replace(layout=SCENE.layout + 1)
    assert placed(render(moved), SCENE) < 1.0
    assert placed(np.full((64, 64, 3), 245, np.uint8), SCENE) == 0.0
    half = placed(render(SCENE.replace(count=1)), SCENE)
    assert half == 0.5
