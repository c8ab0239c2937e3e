"""Reading a scene's attributes back from pixels — exact on renders, tolerant on model outputs.

Every pixel is assigned its nearest palette colour (objects' and backgrounds'). The background is
read from the image border (objects never touch it); object pixels are those nearest an object
colour; objects are the connected components of those pixels (tiny specks ignored). Then:
colour = majority object colour; count = number of components; size = typical bounding-box extent;
shape = how much of its bounding box a component fills (square 1.0, circle ≈ 0.79, triangle ≈ 0.5).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .scenes import BACKGROUND_COLOURS, OBJECT_COLOURS, RADIUS, RESOLUTION, Scene, centres, objects_mask, render

_OBJECT_NAMES = list(OBJECT_COLOURS)
_BACKGROUND_NAMES = list(BACKGROUND_COLOURS)
_PALETTE = np.array(list(OBJECT_COLOURS.values()) + list(BACKGROUND_COLOURS.values()), dtype=np.float32)
_N_OBJECT = len(_OBJECT_NAMES)

# Fill ratio thresholds (area / bounding-box area) between triangle | circle | square.
_FILL_TRIANGLE_CIRCLE = 0.64
_FILL_CIRCLE_SQUARE = 0.86


def _scale(image: np.ndarray) -> float:
    return image.shape[0] / RESOLUTION


def _check(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    return image.astype(np.float32)


def palette_labels(image: np.ndarray) -> np.ndarray:
    """(H, W) int: index of the nearest palette colour (object colours first, then backgrounds)."""
    pixels = _check(image)
    distance = ((pixels[:, :, None, :] - _PALETTE[None, None]) ** 2).sum(-1)
    return distance.argmin(-1)


def background_colour(image: np.ndarray) -> np.ndarray:
    """Mean RGB of the 2-pixel border (float32 (3,))."""
    pixels = _check(image)
    border = np.concatenate(
        [
            pixels[:2].reshape(-1, 3),
            pixels[-2:].reshape(-1, 3),
            pixels[:, :2].reshape(-1, 3),
            pixels[:, -2:].reshape(-1, 3),
        ]
    )
    return border.mean(0)


def _nearest(colour: np.ndarray, names: list[str], table: dict) -> str:
    d = [np.sum((colour - np.array(table[n], dtype=np.float32)) ** 2) for n in names]
    return names[int(np.argmin(d))]


def foreground(image: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels nearest an object colour rather than a background colour."""
    return palette_labels(image) < _N_OBJECT


def components(image: np.ndarray) -> list[np.ndarray]:
    """Objects as boolean masks: 4-connected foreground components of at least a speck's size."""
    mask = foreground(image)
    labelled, n = ndimage.label(mask)
    min_area = 12 * _scale(image) ** 2  # a small triangle has ~100 px; blur specks are a few
    out = []
    for k in range(1, n + 1):
        comp = labelled == k
        if comp.sum() >= min_area:
            out.append(comp)
    return out


def _extent_and_fill(comp: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(comp)
    h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    return float(max(h, w)), float(comp.sum() / (h * w))


def _shape_from_fill(fill: float) -> str:
    if fill < _FILL_TRIANGLE_CIRCLE:
        return "triangle"
    return "circle" if fill < _FILL_CIRCLE_SQUARE else "square"


def read(image: np.ndarray) -> dict[str, object]:
    """Every attribute of ``image`` (H, W, 3) uint8: colour, shape, count, size, background.

    Values are those of ``scenes.ATTRIBUTES`` except where nothing is seen: count 0 and colour,
    shape, size ``None`` when no object is found.
    """
    labels = palette_labels(image)
    background = _nearest(background_colour(image), _BACKGROUND_NAMES, BACKGROUND_COLOURS)
    comps = components(image)
    out: dict[str, object] = {
        "colour": None,
        "shape": None,
        "count": len(comps),
        "size": None,
        "background": background,
    }
    if not comps:
        return out
    union = np.logical_or.reduce(comps)
    counts = np.bincount(labels[union], minlength=_N_OBJECT)[:_N_OBJECT]
    out["colour"] = _OBJECT_NAMES[int(counts.argmax())]
    stats = [_extent_and_fill(c) for c in comps]
    extent = float(np.median([e for e, _ in stats]))
    threshold = (2 * RADIUS["small"] + 2 * RADIUS["large"]) / 2 * _scale(image)
    out["size"] = "large" if extent >= threshold else "small"
    shapes = [_shape_from_fill(f) for _, f in stats]
    out["shape"] = max(set(shapes), key=lambda s: (shapes.count(s), s))
    return out


def object_colour(image: np.ndarray) -> np.ndarray | None:
    """Mean RGB (3,) of the foreground pixels, or None when there are none."""
    mask = foreground(image)
    if not mask.any():
        return None
    return _check(image)[mask].mean(0)


def _soft_count(image: np.ndarray, scene: Scene) -> float:
    """Components counted by area against one whole object of ``scene``'s size and shape:
    a half-formed blob counts ½, an object never more than 1."""
    single = float(objects_mask(scene.replace(count=1), image.shape[0]).sum())
    return float(sum(min(1.0, c.sum() / single) for c in components(image)))


def _feature(image: np.ndarray, kind: str, reference: Scene) -> np.ndarray:
    """A continuous measurement of ``kind`` on ``image`` (a vector for colours, else a scalar)."""
    if kind == "colour":
        c = object_colour(image)
        return np.zeros(3, np.float32) + np.nan if c is None else c
    if kind == "background":
        return background_colour(image)
    if kind == "size":
        return np.array([foreground(image).sum()], dtype=np.float32)
    if kind == "count":
        return np.array([_soft_count(image, reference)], dtype=np.float32)
    if kind == "shape":
        comps = components(image)
        if not comps:
            return np.array([np.nan], dtype=np.float32)
        biggest = max(comps, key=lambda c: c.sum())
        return np.array([_extent_and_fill(biggest)[1]], dtype=np.float32)
    raise ValueError(f"unknown edit kind {kind!r}")


def progress(image: np.ndarray, source: Scene, target: Scene, kind: str) -> float:
    """How far ``image`` has moved from ``source`` toward ``target`` in attribute ``kind``.

    0 at the source's rendering, 1 at the target's, linear in between (and beyond, either way):
    the measurement (colour: object mean RGB; background: border mean RGB; size: object area;
    count: soft blob count; shape: bounding-box fill of the largest object) projected onto the
    line from the source's value to the target's value, both measured on their renderings at
    this image's resolution. NaN when the image shows no object and ``kind`` needs one.
    """
    resolution = np.asarray(image).shape[0]
    a = _feature(render(source, resolution), kind, source)
    b = _feature(render(target, resolution), kind, source)
    x = _feature(image, kind, source)
    direction = b - a
    return float(np.dot(x - a, direction) / np.dot(direction, direction))


def object_mask(image: np.ndarray, scene: Scene, dilate: int = 2) -> np.ndarray:
    """(H, W) bool: where ``scene``'s objects are drawn, grown by ``dilate`` pixels.

    Taken from the scene's geometry (not from the pixels, which on an edited image may hold
    anything), at ``image``'s resolution. For "preservation outside the edited object" use the
    union of the source's and the target's masks (a size or count edit adds pixels the source
    lacked).
    """
    resolution = np.asarray(image).shape[0]
    mask = objects_mask(scene, resolution)
    if dilate > 0:
        mask = ndimage.binary_dilation(mask, iterations=dilate)
    return mask


PLACEMENT_TOLERANCE = 3.0  # pixels at 64 px: objects are ≥ 24 px apart, a blurred outline moves ~1–2


def placed(image: np.ndarray, scene: Scene, tolerance: float = PLACEMENT_TOLERANCE) -> float:
    """Share of ``scene``'s objects that ``image`` still shows where the scene put them: an object
    is placed when some component's bounding-box centre lies within ``tolerance`` pixels (scaled
    with the resolution) of its drawn centre. Positions are content no caption names, so this is
    what a text-only edit cannot restore once it is redrawn. Bounding-box centres coincide with the
    drawn centre for every shape (a triangle's centroid does not), so a shape edit keeps them."""
    scale = _scale(image)
    boxes = []
    for comp in components(image):
        ys, xs = np.nonzero(comp)
        boxes.append(((xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2))
    targets = centres(scene.layout, image.shape[0])[: scene.count]
    hits = [any(np.hypot(bx - cx, by - cy) <= tolerance * scale for bx, by in boxes) for cx, cy in targets]
    return float(np.mean(hits))
