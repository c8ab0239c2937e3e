"""The toy world in ComfyUI: ``load_toyworld()`` (the node "EMS Toy World Loader (dev)" is nodes/toy_world_loader.py).

Two architectures share the scenes and the VAE: the SD3-family toy (below) and the Flux toy
(``family="flux"``, :mod:`.model_flux`): ComfyUI's Flux class built through Flux.1 dev's config
class, with a Flux CLIP (CLIP-L + T5, 256 tokens) and the VAE in Flux's latent format.

It returns what CheckpointLoaderSimple returns for SD3 — MODEL, CLIP, VAE — so every EMS workflow
runs on the toy model with only the loader swapped (at the toy's 64×64: feed it EMS Toy Scene (dev),
or scale an image to 64×64 with ImageScale; other sizes run, but the model has only seen 64×64).
The MODEL is loaded by ComfyUI's own SD3 detection from the MMDiT state dict, the VAE is ComfyUI's
AutoencoderKL, the CLIP is ComfyUI's sd3_clip with SD3's tokenizers; the encoders' weights are
rebuilt from their seed and checked by what they compute: the embeddings of fixed probe captions,
within a tolerance, against those recorded at training (``model.verify_probes``).
"""

from __future__ import annotations

import json
from pathlib import Path

import safetensors.torch
import torch

from . import model as M
from . import model_flux as MF

_CACHE: dict = {}


class ToyWorldError(RuntimeError):
    pass


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise ToyWorldError(
            f"missing {path.name} in {path.parent}. The toy model's weights ship with the pack; "
            "regenerate them with `make toy-train` from the pack folder."
        )
    return {k: v.float() for k, v in safetensors.torch.load_file(str(path)).items()}


# The toy models: SD3's MMDiT (the default), Flux (model_flux), and toy world v3 — the SD3 toy
# fine-tuned on partial captions (train_v3), the instrument for the image side.
FAMILIES = ("sd3", "flux", "sd3v3")
_FILES = {
    "sd3": (M.MMDIT_FILE, M.VAE_FILE, M.META_FILE),
    "flux": (MF.FLUX_FILE, M.VAE_FILE, MF.FLUX_META_FILE),
    "sd3v3": (M.V3_MMDIT_FILE, M.V3_VAE_FILE, M.V3_META_FILE),
}


def weight_files(family: str = "sd3", weights: Path | None = None) -> list[Path]:
    """[diffusion model, VAE, record] of a toy model in ``weights`` (default toyworld/weights). The SD3
    and Flux toys share one VAE; v3's has the same encoder and a decoder trained further."""
    weights = Path(weights or M.WEIGHTS)
    return [weights / n for n in _FILES[family]]


def load_toyworld(weights: Path | None = None, family: str = "sd3"):
    """(model, clip, vae) as ComfyUI objects. ``family`` "sd3" (and "sd3v3", toy world v3): a
    ModelPatcher detected as SD3, an SD3 CLIP; "flux": ComfyUI's Flux (Flux.1 dev's config class) with a Flux CLIP (CLIP-L + T5). Both
    share one VAE, in the family's latent format.

    Cached per family, weights folder and file times (rebuilding the encoders takes ~15 s on a CPU).
    Raises ToyWorldError when the weights are missing and model.ChecksumMismatch when the rebuilt
    text encoders are not the ones the model was trained with.
    """
    if family not in FAMILIES:
        raise ToyWorldError(f"unknown toy family {family!r}; choose one of {', '.join(FAMILIES)}")
    weights = Path(weights or M.WEIGHTS)
    files = weight_files(family, weights)
    key = (family, str(weights), tuple(f.stat().st_mtime_ns if f.exists() else 0 for f in files))
    if key in _CACHE:
        return _CACHE[key]
    M.ensure_comfy()
    if family == "flux":
        return _remember(key, _load_flux(files))
    import comfy.sd
    import comfy.supported_models

    if not files[2].exists():
        raise ToyWorldError(f"no {files[2].name} in {weights}; regenerate the weights with `make toy-train`.")
    meta = json.loads(files[2].read_text())
    unet = comfy.sd.load_diffusion_model_state_dict(_load_state_dict(files[0]), model_options={"dtype": torch.float32})
    if unet is None or not isinstance(unet.model.model_config, comfy.supported_models.SD3):
        raise ToyWorldError(f"ComfyUI did not recognise {files[0].name} as SD3 (this ComfyUI is too old or new?).")
    vae = M.comfy_vae(_load_state_dict(files[1]))
    clip = M.build_text_encoders(expected=meta["text_encoders"])
    return _remember(key, (unet, clip, vae))


def _load_flux(files: list[Path]):
    if not files[2].exists():
        raise ToyWorldError(
            f"no {MF.FLUX_META_FILE} in {files[2].parent}; train the Flux toy with "
            "`make toy-train` (or `python -m toyworld.train --family flux`)."
        )
    meta = json.loads(files[2].read_text())
    unet = MF.model_patcher(_load_state_dict(files[0]))
    vae = M.comfy_vae(MF.flux_vae_state_dict(_load_state_dict(files[1])))
    clip = MF.build_text_encoders(expected=meta["text_encoders"])
    return unet, clip, vae


def _remember(key, loaded):
    """One entry: the loaded models are large next to the time a reload takes."""
    _CACHE.clear()
    _CACHE[key] = loaded
    return loaded
