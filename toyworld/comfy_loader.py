"""The toy world in ComfyUI: ``load_toyworld()`` (the node "EMS Toy World Loader (dev)" is nodes/toy_world_loader.py).

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


def load_toyworld(weights: Path | None = None):
    """(model, clip, vae) as ComfyUI objects: a ModelPatcher detected as SD3, an SD3 CLIP, a VAE.

    Cached per weights folder and file times (rebuilding the encoders takes ~15 s on a CPU).
    Raises ToyWorldError when the weights are missing and model.ChecksumMismatch when the rebuilt
    text encoders are not the ones the model was trained with.
    """
    weights = Path(weights or M.WEIGHTS)
    files = [weights / M.MMDIT_FILE, weights / M.VAE_FILE, weights / M.META_FILE]
    key = (str(weights), tuple(f.stat().st_mtime_ns if f.exists() else 0 for f in files))
    if key in _CACHE:
        return _CACHE[key]
    M.ensure_comfy()
    import comfy.sd
    import comfy.supported_models

    if not files[2].exists():
        raise ToyWorldError(f"no {M.META_FILE} in {weights}; regenerate the weights with `make toy-train`.")
    meta = json.loads(files[2].read_text())
    unet = comfy.sd.load_diffusion_model_state_dict(_load_state_dict(files[0]), model_options={"dtype": torch.float32})
    if unet is None or not isinstance(unet.model.model_config, comfy.supported_models.SD3):
        raise ToyWorldError(f"ComfyUI did not recognise {files[0].name} as SD3 (this ComfyUI is too old or new?).")
    vae = M.comfy_vae(_load_state_dict(files[1]))
    clip = M.build_text_encoders(expected=meta["text_encoders"])
    _CACHE.clear()
    _CACHE[key] = (unet, clip, vae)
    return _CACHE[key]
