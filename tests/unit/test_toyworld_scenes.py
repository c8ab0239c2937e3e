"""The toy world's scenes, readout and edit cases (toyworld/scenes.py, readout.py, edits.py)."""

from __future__ import annotations

import numpy as np
import pytest

from comfyui_ems.toyworld import edits, readout, scenes
from comfyui_ems.toyworld.scenes import ATTRIBUTES, Scene


def test_readout_is_exact_on_rendered_scenes():
    """Every attribute of every val and test scene (540, all 270 combinations twice) read back."""
    wrong = []
    checked = scenes.split("val") + scenes.split("test")
    for scene in checked:
        seen = readout.read(scenes.render(scene))
        wrong += [(scene, k, seen[k]) for k in ATTRIBUTES if seen[k] != getattr(scene, k)]
    assert len(checked) == 540
    assert not wrong, f"{len(wrong)} misread attributes, e.g. {wrong[:3]}"


def test_readout_is_exact_on_random_training_scenes():
    rng = np.random.default_rng(123)
    sample = [scenes.random_scene(rng) for _ in range(300)]
    right = sum(readout.read(scenes.render(s)) == s.attributes() for s in sample)
    assert right / len(sample) >= 0.99


def test_readout_tolerates_blur_and_noise():
    """Model outputs are soft and noisy: a box-blurred, noisy render still reads right."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    sample = scenes.split("test")[::5]
    right = 0
    for scene in sample:
        image = scenes.render(scene).astype(np.float32)
        image = ndimage.uniform_filter(image, size=(2, 2, 1)) + rng.normal(0, 12, image.shape)
        right += readout.read(np.clip(image, 0, 255).astype(np.uint8)) == scene.attributes()
    assert right / len(sample) >= 0.9


def test_empty_image_reads_no_object():
    image = np.full((64, 64, 3), scenes.BACKGROUND_COLOURS["gray"], dtype=np.uint8)
    assert readout.read(image) == {"colour": None, "shape": None, "count": 0, "size": None, "background": "gray"}


def test_scene_validates_and_replaces():
    s = Scene("red", "circle", 1, "small", "white", layout=3)
    assert s.replace(colour="blue") == Scene("blue", "circle", 1, "small", "white", layout=3)
    with pytest.raises(ValueError, match="colour"):
        Scene("pink", "circle", 1, "small", "white")


def test_captions_cover_the_grammar():
    assert scenes.caption(Scene("red", "circle", 1, "small", "white")) == "a small red circle on a white background"
    assert (
        scenes.caption(Scene("blue", "square", 3, "large", "black")) == "three large blue squares on a black background"
    )
    assert len(set(scenes.all_captions())) == 270


def test_splits_are_deterministic_and_disjoint():
    layouts = {name: {s.layout for s in scenes.split(name)} for name in ("train", "val", "test")}
    assert scenes.split("test") == scenes.split("test")
    assert not (layouts["train"] & layouts["val"]) and not (layouts["val"] & layouts["test"])
    assert not (layouts["train"] & layouts["test"])
    rng = np.random.default_rng(0)
    assert all(scenes.random_scene(rng).layout < min(layouts["val"]) for _ in range(100))


def test_objects_keep_their_place_across_size_and_count_edits():
    s = Scene("green", "square", 1, "small", "gray", layout=11)
    assert np.all(scenes.objects_mask(s) <= scenes.objects_mask(s.replace(size="large")))
    assert np.all(scenes.objects_mask(s) <= scenes.objects_mask(s.replace(count=2)))


@pytest.mark.parametrize("kind", edits.EDIT_KINDS)
def test_progress_is_zero_at_source_and_one_at_target(kind):
    for case in [c for c in edits.edit_cases("val", 6) if c.kind == kind]:
        assert readout.progress(scenes.render(case.source), case.source, case.target, kind) == pytest.approx(
            0, abs=1e-6
        )
        assert readout.progress(scenes.render(case.target), case.source, case.target, kind) == pytest.approx(
            1, abs=1e-6
        )


def test_colour_progress_is_graded():
    case = next(c for c in edits.edit_cases("val", 3) if c.kind == "colour")
    a, b = scenes.render(case.source).astype(float), scenes.render(case.target).astype(float)
    halfway = np.round(0.5 * a + 0.5 * b).astype(np.uint8)
    assert readout.progress(halfway, case.source, case.target, "colour") == pytest.approx(0.5, abs=0.02)


def test_object_mask_covers_the_objects_only():
    s = Scene("red", "triangle", 2, "large", "white", layout=5)
    mask = readout.object_mask(scenes.render(s), s)
    drawn = scenes.objects_mask(s)
    assert mask[drawn].all() and mask.sum() < 1.5 * drawn.sum() + 200
    assert not mask[:2].any()


def test_edit_cases():
    cases = edits.edit_cases("test", 4, seed=1)
    assert cases == edits.edit_cases("test", 4, seed=1)
    assert [c.kind for c in cases] == [k for k in edits.EDIT_KINDS for _ in range(4)]
    for c in cases:
        changed = [k for k in ATTRIBUTES if getattr(c.source, k) != getattr(c.target, k)]
        assert changed == [c.kind] and c.source.layout == c.target.layout
        assert c.source_prompt == scenes.caption(c.source) and c.target_prompt == scenes.caption(c.target)
        assert c.attribute_prompt and set(c.attribute_prompt.split()) <= set(c.target_prompt.split())
    assert all(c.target.count == c.source.count + 1 for c in cases if c.kind == "count")
    assert all((c.source.size, c.target.size) == ("small", "large") for c in cases if c.kind == "size")
