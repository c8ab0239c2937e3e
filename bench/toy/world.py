"""The toy world as every toy-world study runs it: the models, one method on one case, the cache.

Shared by the comparison (:mod:`.compare`), the calibration (:mod:`.calibrate`), the fronts
(:mod:`.front`) and the latent-direction study (:mod:`bench.latent`), so that none of them
imports another: the settings a run may override (:data:`DEFAULTS`, :func:`settings_from`), the
models (:func:`load_models`, :func:`model_identity`), the per-case inputs (:class:`World`), one
method's run (:func:`run_method`) and the result cache (:func:`cached_method`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from comfyui_ems.toyworld import tiny_sd3

from comfyui_ems.toyworld.comfy_loader import FAMILIES, load_toyworld, weight_files
from comfyui_ems.toyworld.scenes import render

from bench import harness
from bench.host import CallCounter

from .methods import METHODS, RUNNERS, ToySettings, encode_case, latent_direction_available
from .score import to_image, to_uint8

# The settings a run may override on the command line; their defaults are ToySettings' (the toy
# world's calibrated values, written once there).
DEFAULTS = {
    k: getattr(ToySettings, k)
    for k in (
        "steps",
        "denoise",
        "cfg",
        "iterations",
        "constraint",
        "step_start",
        "step_end",
        "residual_space",
        "fe_denoise",
        "fe_cfg",
        "fe_source_cfg",
        "fe_noise_average",
        "fe_locality",
        "fe_drive",
        "csds_drive",
        "csds_step_units",
        "csds_locality",
    )
}


def settings_from(args, **changes):
    base = {k: getattr(args, k) for k in DEFAULTS}
    base.update(seed=args.seed, reference=args.reference, reference_steps=args.reference_steps)
    base.update(changes)
    return ToySettings(**base)


# The toy model every study runs on unless told otherwise: toy world v3, the SD3 toy trained further
# on partial captions, so it reads the attribute prompts the image side is driven by ("sd3" is the
# v2 toy the earlier reports were measured on; "flux" the Flux toy).
TOY_FAMILY = "sd3v3"


def add_family_arg(ap) -> None:
    """The studies' shared ``--family`` option (default :data:`TOY_FAMILY`)."""
    ap.add_argument(
        "--family",
        choices=FAMILIES,
        default=TOY_FAMILY,
        help="which trained toy model (default %(default)s: toy world v3; sd3: the v2 toy; flux: the Flux toy)",
    )


def model_identity(tiny: bool = False, seed: int = 0, weights=None, family: str = "sd3") -> str:
    """What the results depend on besides settings: the tiny model's seed, or the weight files."""
    if tiny:
        return f"tiny-{seed}"
    files = weight_files(family, weights)
    stamp = [f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files if f.exists()]
    return f"{files[0].parent.resolve()}|{'|'.join(stamp)}"


def load_models(tiny: bool, seed: int = 0, weights=None, family: str = "sd3"):
    """(model, clip, vae): the trained toy model of ``family``, or the tests' tiny random SD3. After host.setup."""
    if tiny:
        return tiny_sd3.model_patcher(seed), tiny_sd3.clip(seed), tiny_sd3.vae(seed)
    return load_toyworld(weights, family=family)


class World:
    """The model, its VAE and CLIP, with a call counter, and per-case inputs cached."""

    def __init__(self, models, seed: int, model_id: str = "", cache: Path | None = None):
        model, self.clip, self.vae = models
        self.model_id, self.cache = model_id, cache
        self.counter = CallCounter()
        self.model = self.counter.install(model)
        self.seed = seed
        self._cache: dict = {}

    def render(self, scene) -> torch.Tensor:
        return to_image(render(scene))

    @torch.inference_mode()
    def inputs(self, case) -> dict:
        """Source pixels, the clean source LATENT (VAE Encode), the four conditionings."""
        key = (case.source, case.target, case.kind)
        if key not in self._cache:
            pixels = render(case.source)
            latent = {"samples": self.vae.encode(self.render(case.source))}
            self._cache[key] = {"pixels": pixels, "latent": latent, "conds": encode_case(self.clip, case)}
        return self._cache[key]

    @torch.inference_mode()
    def decode(self, latent: dict) -> torch.Tensor:
        images = self.vae.decode(latent["samples"]).float().clamp(0, 1)
        return images.reshape(-1, *images.shape[-3:])


def toy_world(family: str, seed: int = 0, cache: Path | None = None, weights=None, tiny: bool = False) -> World:
    """The :class:`World` of one trained toy model (``tiny``: the tests' tiny random SD3), its cached
    results keyed by that model's identity."""
    return World(load_models(tiny, seed, weights, family), seed, model_identity(tiny, seed, weights, family), cache)


def available_methods(requested=None) -> tuple[list[str], dict]:
    missing = {}
    if not latent_direction_available():
        for m in ("latent_linear", "latent_svd"):
            missing[m] = "ems.latent_direction is not in this checkout"
    wanted = requested or list(METHODS)
    unknown = [m for m in wanted if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; choose from {METHODS}")
    return [m for m in wanted if m not in missing], missing


def run_method(world: World, method: str, case, alphas, s, references=None) -> tuple[torch.Tensor, dict]:
    """Decoded images (k, H, W, 3) of one method on one case, with its calls, batch items and time."""
    inp = world.inputs(case)
    sigmas = harness.schedule(world.model, s.steps, s.denoise, s.scheduler)
    world.counter.reset()
    start, cpu = time.perf_counter(), time.process_time()
    out = RUNNERS[method](
        world.model, inp["conds"], inp["latent"], alphas, s, sigmas, counter=world.counter, references=references
    )
    images = world.decode(out)
    log = world.counter.log
    return images, {
        "calls": len(log),
        "items": sum(b for _, b in log),
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,
        "edits": len(alphas),
    }


# Settings each method's result depends on (besides the case, α and the model): the cache key.
SHARED_KEYS = ("steps", "denoise", "cfg", "sampler", "scheduler", "seed")
METHOD_KEYS = {
    "ems": (
        "iterations",
        "constraint",
        "step_start",
        "step_end",
        "residual_space",
        "csds_drive",
        "csds_step_units",
        "csds_locality",
        "csds_cfg",
    ),
    "ems_flowedit": ("fe_denoise", "fe_cfg", "fe_source_cfg", "fe_noise_average", "fe_locality", "fe_drive"),
    "latent_linear": ("reference", "reference_steps", "latent_stage"),
    "latent_svd": ("reference", "reference_steps", "latent_stage"),
}
CACHE_VERSION = 2  # bumped when a method's computation changes


def cache_key(world: World, method: str, case, alphas, s) -> str:
    # None = "as before" (an option added later), left out so that earlier results keep their keys
    keys = SHARED_KEYS + METHOD_KEYS.get(method, ())
    settings = {k: getattr(s, k) for k in keys if getattr(s, k) is not None}
    ident = {
        "v": CACHE_VERSION,
        "method": method,
        "model": world.model_id,
        "alphas": list(alphas),
        "source": case.source.attributes(),
        "layout": case.source.layout,
        "target": case.target.attributes(),
        "kind": case.kind,
        "attribute": case.attribute_prompt,
        "settings": settings,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]


def cached_method(world: World, method: str, case, alphas, s, references) -> tuple[np.ndarray, dict]:
    """(uint8 images, cost) from the cache, or computed (``references()`` gives the latent pair)."""
    path = world.cache / f"{cache_key(world, method, case, alphas, s)}.npz" if world.cache else None
    if path is not None and path.exists():
        data = np.load(path)
        return data["images"], {**json.loads(str(data["cost"])), "cached": True}
    refs, ref_cost = references() if method.startswith("latent_") else (None, None)
    images, cost = run_method(world, method, case, alphas, s, refs)
    if ref_cost:  # the pair is part of what the edit costs
        cost = {**cost, **{k: cost[k] + ref_cost[k] for k in ("calls", "items", "seconds", "cpu_seconds")}}
    pixels = to_uint8(images)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, images=pixels, cost=json.dumps(cost))
        os.replace(tmp, path)
    return pixels, {**cost, "cached": False}


_PAIRS: dict = {}


def references_of(world: World, case, s):
    """``references()`` for :func:`cached_method`: the latent directions' reference pair for ``case``,
    made only when a result is not cached, and once per case for both modes (its cost is not charged)."""
    from .methods import reference_pair

    def references():
        key = (world.model_id, case.source, case.target, s.reference, s.reference_steps)
        if key not in _PAIRS:
            inp = world.inputs(case)
            _PAIRS[key] = reference_pair(world.model, world.vae, inp["conds"], case, s, world.counter, world.render)
        return _PAIRS[key], {}

    return references
