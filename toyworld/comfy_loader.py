"""The toy world in ComfyUI: the node "EMS Toy World Loader (dev)" and ``load_toyworld()``.

It returns what CheckpointLoaderSimple returns for SD3 — MODEL, CLIP, VAE — so every EMS workflow
runs on the toy model with only the loader swapped (at the toy's 64×64, i.e. ImageScaleToTotalPixels
at 0.004 megapixels; other sizes run, but the model has only seen 64×64).
The MODEL is loaded by ComfyUI's own SD3 detection from the MMDiT state dict, the VAE is ComfyUI's
AutoencoderKL, the CLIP is ComfyUI's sd3_clip with SD3's tokenizers; the encoders' weights are
rebuilt from their seed and checked against the checksum recorded at training.
"""

from __future__ import annotations

import json
from pathlib import Path

import safetensors.torch
import torch

from . import model as M

NODE = "EMS Toy World Loader (dev)"
_CACHE: dict = {}


class ToyWorldError(RuntimeError):
    pass


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise ToyWorldError(f"{NODE}: missing {path.name} in {path.parent}. The toy model's weights ship "
                            "with the pack; regenerate them with `python -m toyworld.train` from the pack folder.")
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
        raise ToyWorldError(f"{NODE}: no {M.META_FILE} in {weights}; run `python -m toyworld.train`.")
    meta = json.loads(files[2].read_text())
    unet = comfy.sd.load_diffusion_model_state_dict(_load_state_dict(files[0]), model_options={"dtype": torch.float32})
    if unet is None or not isinstance(unet.model.model_config, comfy.supported_models.SD3):
        raise ToyWorldError(f"{NODE}: ComfyUI did not recognise {files[0].name} as SD3 (this ComfyUI is too old or new?).")
    vae = M.comfy_vae(_load_state_dict(files[1]))
    clip = M.build_text_encoders(expected_sha256=meta["text_encoders"]["sha256"])
    _CACHE.clear()
    _CACHE[key] = (unet, clip, vae)
    return _CACHE[key]


def _node_class():
    from comfy_api.v0_0_2 import io

    class EMSToyWorldLoader(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(
                node_id="EMSToyWorldLoader",
                display_name=NODE,
                category="EMS/dev",
                description=("Loads the EMS toy world: a tiny text-to-image model of SD3's architecture "
                             "(MMDiT, 16-channel VAE, SD3 text-conditioning layout) trained on drawn "
                             "scenes of coloured circles, squares and triangles at 64×64. Swap it for "
                             "Load Checkpoint to see and score EMS edits without SD3 weights. "
                             "A toy, not SD3: prompts must follow its grammar, e.g. "
                             "'two small red circles on a white background'."),
                inputs=[],
                outputs=[
                    io.Model.Output("model", display_name="MODEL",
                                    tooltip="The toy MMDiT, loaded by ComfyUI as SD3 (flow sampling, shift 3)."),
                    io.Clip.Output("clip", display_name="CLIP",
                                   tooltip="Frozen seeded CLIP-L/CLIP-G/T5 with SD3's tokenizers "
                                           "(SD3 conditioning layout: 154×4096 tokens, pooled 2048)."),
                    io.Vae.Output("vae", display_name="VAE",
                                  tooltip="The toy 16-channel 8× VAE in SD3's latent format; images are 64×64."),
                ],
            )

        @classmethod
        def execute(cls) -> io.NodeOutput:
            try:
                model, clip, vae = load_toyworld()
            except (ToyWorldError, M.ChecksumMismatch, FileNotFoundError) as e:
                raise RuntimeError(str(e) if str(e).startswith(NODE) else f"{NODE}: {e}") from None
            return io.NodeOutput(model, clip, vae)

    return EMSToyWorldLoader


def __getattr__(name: str):
    # The node class needs comfy_api, so it is built on first access: this module (and
    # load_toyworld) stays importable outside a ComfyUI server.
    if name == "EMSToyWorldLoader":
        cls = _node_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)
