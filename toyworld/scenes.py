"""Procedurally drawn scenes with known attributes, and their captions.

A scene is a few flat-coloured shapes (circle, square or triangle) of one colour and one size on a
flat background. Drawing is exact (no antialiasing): a pixel belongs to a shape when its centre
does, so ``toyworld.readout`` can read every attribute back from the pixels without error.

Geometry is chosen so the toy model's VAE (8× downscale) can keep it at 64×64: a large object is
22 px across (about 3 latent cells), a small one 14 px; objects never touch each other or the
2-pixel border the readout takes the background from.
``layout`` seeds the object positions; positions do not depend on size or count, so an edit
"small → large" or "one → two" keeps the objects that were there in place.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np

RESOLUTION = 64

# Saturated object colours and unsaturated backgrounds: no object colour is near a background, so
# a nearest-palette readout separates object from background even on a model's blurry output.
OBJECT_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "purple": (150, 60, 190),
}
BACKGROUND_COLOURS: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
    "black": (20, 20, 20),
}

ATTRIBUTES: dict[str, tuple] = {
    "colour": tuple(OBJECT_COLOURS),
    "shape": ("circle", "square", "triangle"),
    "count": (1, 2, 3),
    "size": ("small", "large"),
    "background": tuple(BACKGROUND_COLOURS),
}

# Half-extent in pixels at RESOLUTION (scaled for other resolutions).
RADIUS = {"small": 7, "large": 11}
_NUMBER_WORDS = {1: "a", 2: "two", 3: "three"}
_PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles"}

# Layout seeds of the splits: disjoint ranges, so no test scene's positions were seen in training.
_SPLIT_LAYOUTS = {"train": 0, "val": 1_000_000, "test": 2_000_000}
_SPLIT_PER_COMBINATION = {"train": 8, "val": 1, "test": 1}


@dataclass(frozen=True)
class Scene:
    colour: str
    shape: str
    count: int
    size: str
    background: str
    layout: int = 0

    def __post_init__(self):
        for name, values in ATTRIBUTES.items():
            if getattr(self, name) not in values:
                raise ValueError(f"Scene.{name} = {getattr(self, name)!r}; expected one of {values}")

    def replace(self, **changes) -> "Scene":
        return dataclasses.replace(self, **changes)

    def attributes(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in ATTRIBUTES}


def caption(scene: Scene) -> str:
    """E.g. "a small red circle on a white background", "two large blue squares on a black background"."""
    noun = scene.shape if scene.count == 1 else _PLURAL[scene.shape]
    return f"{_NUMBER_WORDS[scene.count]} {scene.size} {scene.colour} {noun} on a {scene.background} background"


def partial_caption(scene: Scene, named: frozenset[str] | set[str]) -> str:
    """The caption naming only the attributes in ``named`` (a subset of ATTRIBUTES); "" names none.

    Toy world v3 trains on these (our grammar): the number word only when count is named, the noun's
    plural still follows the count (as in "purple circles"); "shape(s)" when the shape is not named;
    the background phrase alone when no object attribute is named. With every attribute named it
    is :func:`caption`; the edit benchmark's attribute prompts are partial captions too
    (``toyworld.edits.attribute_prompt``).
    """
    unknown = set(named) - set(ATTRIBUTES)
    if unknown:
        raise ValueError(f"unknown attributes {sorted(unknown)}; expected some of {tuple(ATTRIBUTES)}")
    words = []
    if "count" in named:
        words.append(_NUMBER_WORDS[scene.count])
    words += [getattr(scene, a) for a in ("size", "colour") if a in named]
    plural = scene.count > 1
    if words or "shape" in named:
        words.append(
            (_PLURAL[scene.shape] if plural else scene.shape) if "shape" in named else ("shapes" if plural else "shape")
        )
    if "background" in named:
        words.append(f"on a {scene.background} background" if words else f"{scene.background} background")
    return " ".join(words)


def all_captions() -> list[str]:
    """Every caption of the grammar (270), in a fixed order."""
    return [caption(Scene(*combo)) for combo in itertools.product(*ATTRIBUTES.values())]


def all_partial_captions() -> list[str]:
    """Every partial caption of every scene combination, "" excluded, in a fixed order (deduplicated)."""
    subsets = [frozenset(c) for r in range(1, len(ATTRIBUTES) + 1) for c in itertools.combinations(ATTRIBUTES, r)]
    seen = dict.fromkeys(
        partial_caption(Scene(*combo), named) for combo in itertools.product(*ATTRIBUTES.values()) for named in subsets
    )
    return list(seen)


def centres(layout: int, resolution: int = RESOLUTION) -> list[tuple[float, float]]:
    """Three object centres (x, y) in pixels for this layout, far enough apart for large objects.

    Rejection sampling from a generator seeded by ``layout``; the first ``count`` are used, so the
    first object stays put when objects are added.
    """
    scale = resolution / RESOLUTION
    r = RADIUS["large"] * scale
    margin = r + 3 * scale  # keeps the 2-pixel border ring free
    min_distance = 2 * r + 2 * scale  # Chebyshev: squares and triangle bases are axis-aligned
    rng = np.random.default_rng([layout, 7919])
    for _ in range(1000):
        points = []
        for _ in range(3):
            for _ in range(200):
                p = rng.uniform(margin, resolution - margin, size=2)
                if all(np.abs(p - q).max() >= min_distance for q in points):
                    points.append(p)
                    break
        if len(points) == 3:
            return [(float(x), float(y)) for x, y in points]
    raise RuntimeError(f"no layout found for seed {layout}")  # pragma: no cover (never seen)


def shape_mask(shape: str, centre: tuple[float, float], radius: float, resolution: int) -> np.ndarray:
    """Pixels (H, W) whose centres lie inside the shape. Triangle: apex up, base = height = 2·radius."""
    ys, xs = np.mgrid[0:resolution, 0:resolution] + 0.5
    dx, dy = xs - centre[0], ys - centre[1]
    if shape == "circle":
        return dx * dx + dy * dy <= radius * radius
    if shape == "square":
        return (np.abs(dx) <= radius) & (np.abs(dy) <= radius)
    if shape == "triangle":
        # Inside when below the apex line and within the two slanted edges (half-width grows with depth).
        depth = dy + radius  # 0 at the apex, 2r at the base
        return (depth >= 0) & (dy <= radius) & (np.abs(dx) <= depth / 2)
    raise ValueError(f"unknown shape {shape!r}")


def objects_mask(scene: Scene, resolution: int = RESOLUTION) -> np.ndarray:
    """Union of the scene's objects (H, W) bool, as drawn."""
    radius = RADIUS[scene.size] * resolution / RESOLUTION
    mask = np.zeros((resolution, resolution), dtype=bool)
    for centre in centres(scene.layout, resolution)[: scene.count]:
        mask |= shape_mask(scene.shape, centre, radius, resolution)
    return mask


def render(scene: Scene, resolution: int = RESOLUTION) -> np.ndarray:
    """The scene as an (H, W, 3) uint8 RGB image, drawn without antialiasing."""
    image = np.empty((resolution, resolution, 3), dtype=np.uint8)
    image[:] = BACKGROUND_COLOURS[scene.background]
    image[objects_mask(scene, resolution)] = OBJECT_COLOURS[scene.colour]
    return image


def split(name: str) -> list[Scene]:
    """Deterministic scenes of a split: every attribute combination (270) with layouts of that split.

    train: 8 layouts per combination (2,160 scenes); val and test: 1 each (270). Layout seeds of the
    splits are disjoint ranges. Training itself draws fresh train-range layouts as it goes.
    """
    if name not in _SPLIT_LAYOUTS:
        raise ValueError(f"split {name!r}; expected one of {tuple(_SPLIT_LAYOUTS)}")
    base, per = _SPLIT_LAYOUTS[name], _SPLIT_PER_COMBINATION[name]
    scenes = []
    for i, combo in enumerate(itertools.product(*ATTRIBUTES.values())):
        for j in range(per):
            scenes.append(Scene(*combo, layout=base + i * per + j))
    return scenes


def random_scene(rng: np.random.Generator, split_name: str = "train") -> Scene:
    """A random scene with a layout from ``split_name``'s range (training draws these)."""
    values = [rng.choice(len(v)) for v in ATTRIBUTES.values()]
    combo = [v[i] for v, i in zip(ATTRIBUTES.values(), values)]
    return Scene(*combo, layout=_SPLIT_LAYOUTS[split_name] + int(rng.integers(0, 1_000_000)))
