"""The toy model: SD3's architecture family as ComfyUI implements it, small enough for a CPU.

- MMDiT: ComfyUI's ``comfy.ldm.modules.diffusionmodules.mmdit.MMDiT`` (depth 3 → hidden 192,
  3 heads), patch size 2 on the 8×8 latent of a 64×64 scene (ComfyUI's SD3 path computes the
  patch grid as (h + 1) // p, which is wrong for p = 1), no learned position table (ComfyUI then
  uses its resolution-independent 2-D sin-cos positions, so any image size runs), context 4096 →
  128, pooled 2048; small because it trains on a shared 2-core CPU. Its state dict is detected
  and loaded by ComfyUI as SD3 (``comfy.sd.load_diffusion_model_state_dict``): flow sampling
  with shift 3, SD3 latent format.
- VAE: ComfyUI's ``AutoencoderKL`` with 16 latent channels and 8× downscale (ch 32, ch_mult
  1-2-2-4); latents live in SD3's format: the sampler sees (z − 0.0609)·1.5305.
- Text encoders: CLIP-L + CLIP-G + T5-XXL as ComfyUI's ``sd3_clip`` builds them, with SD3's real
  tokenizers and widths (768 / 1280 / 4096, so conditioning is SD3's layout: 154 tokens × 4096 —
  77 CLIP tokens zero-padded from 2048, then 77 T5 tokens — and pooled 2048), but three CLIP
  layers (SD3 reads the penultimate one) and one T5 layer, with tiny MLPs. They are frozen and
  random: their ~263 M parameters (mostly embedding tables) are rebuilt from a seed at load, and a SHA-256 of the rebuilt weights is
  checked against the one stored with the trained weights, so a changed random generator cannot
  silently change what the trained MMDiT was conditioned on.

ComfyUI must be importable (``ensure_comfy`` says how when it is not).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

WEIGHTS = Path(__file__).resolve().parent / "weights"
MMDIT_FILE = "toyworld_mmdit.safetensors"
VAE_FILE = "toyworld_vae.safetensors"
META_FILE = "toyworld.json"
# Toy world v3: the MMDiT fine-tuned on partial captions (train_v3); same VAE and text encoders.
V3_MMDIT_FILE = "toyworld_v3_mmdit.safetensors"
V3_VAE_FILE = "toyworld_v3_vae.safetensors"  # the same encoder, its decoder trained further
V3_META_FILE = "toyworld_v3.json"

MMDIT_CONFIG = {
    "in_channels": 16,
    "out_channels": 16,
    "patch_size": 2,
    "depth": 3,
    "adm_in_channels": 2048,
    "input_size": None,
    "pos_embed_max_size": None,
    "num_patches": None,
    "context_embedder_config": {"target": "torch.nn.Linear", "params": {"in_features": 4096, "out_features": 192}},
    "pos_embed_scaling_factor": None,
}

VAE_DDCONFIG = {
    "double_z": True,
    "z_channels": 16,
    "resolution": 64,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 32,
    "ch_mult": [1, 2, 2, 4],
    "num_res_blocks": 1,
    "attn_resolutions": [],
    "dropout": 0.0,
}

TEXT_ENCODER_CONFIG = {
    "clip_l_model_config": {"num_hidden_layers": 3, "intermediate_size": 32, "num_attention_heads": 2},
    "clip_g_model_config": {"num_hidden_layers": 3, "intermediate_size": 32, "num_attention_heads": 2},
    "t5xxl_model_config": {"num_layers": 1, "d_ff": 16, "num_heads": 2, "d_kv": 8},
}
TEXT_ENCODER_SEED = 1234


class ChecksumMismatch(RuntimeError):
    pass


def ensure_comfy() -> None:
    """Check that ``import comfy`` works: inside ComfyUI it does; a tool run outside it gets ComfyUI on
    PYTHONPATH from its entry point (``bash scripts/tool.sh -m …`` or ``make``)."""
    try:
        import comfy  # noqa: F401
    except ImportError:
        raise ImportError(
            "the toy world needs ComfyUI importable: run it through `bash scripts/tool.sh -m …` "
            "(or `make`), or set PYTHONPATH to a ComfyUI checkout"
        ) from None
    _cpu_if_no_gpu()


def _cpu_if_no_gpu() -> None:
    """Outside a ComfyUI server, tell ComfyUI (before its model_management loads) to use the CPU
    when there is no GPU, as ``main.py --cpu`` would; inside a server its own choice stands."""
    if "comfy.model_management" in sys.modules or torch.cuda.is_available():
        return
    import comfy.cli_args

    comfy.cli_args.args.cpu = True


def seeded_parameters(module: torch.nn.Module, seed: int, scale: float = 0.02, device="cpu") -> torch.nn.Module:
    """Fill every parameter from one seeded generator, in name order (norm weights around 1): the one
    initialisation of every SD3-family model built here (the toy world's, the tests' tiny SD3, the
    bench's full-size MMDiT). ``device`` is where the values are drawn (where the parameters live),
    so a 2B-parameter model initialises quickly on a GPU; on the CPU the values are the same as ever,
    which the toy world's text-encoder checksum relies on.

    ComfyUI's ops skip initialisation, so without this the weights are whatever memory held.
    """
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(module.named_parameters(), key=lambda kv: kv[0]):
            values = torch.randn(p.shape, generator=gen, dtype=torch.float32, device=device) * scale
            if p.ndim == 1 and name.endswith("weight") and ("norm" in name or "layer_norm" in name):
                values += 1.0
            p.copy_(values.to(p.dtype))
    return module


def fill_saved_buffers(module: torch.nn.Module) -> torch.nn.Module:
    """Give the saved buffers ComfyUI allocates with ``torch.empty`` the values checkpoints carry.

    The one there is: MMDiT's ``pos_embed`` (SD3/SD3.5 ship the fixed 2-D sin-cos table, which
    ComfyUI's MMDiT computes with ``get_2d_sincos_pos_embed``). Any other saved buffer is an error, not
    left as whatever memory held."""
    parameters = {name for name, _ in module.named_parameters()}
    for name, buffer in module.state_dict().items():
        if name in parameters:
            continue
        if name != "pos_embed":
            raise RuntimeError(f"{type(module).__name__}: no initialisation for the saved buffer {name!r}")
        from comfy.ldm.modules.diffusionmodules.mmdit import get_2d_sincos_pos_embed

        side = round(buffer.shape[1] ** 0.5)
        table = torch.from_numpy(get_2d_sincos_pos_embed(buffer.shape[2], side)).to(buffer.dtype)
        with torch.no_grad():
            module.pos_embed.copy_(table.reshape(buffer.shape))
    return module


def parameters_sha256(module: torch.nn.Module) -> str:
    """SHA-256 over every parameter's float32 bytes, in name order."""
    h = hashlib.sha256()
    for name, p in sorted(module.named_parameters(), key=lambda kv: kv[0]):
        h.update(name.encode())
        h.update(p.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def verify_checksum(module: torch.nn.Module, expected_sha256: str, what: str) -> None:
    """Raise ChecksumMismatch (saying what to do) unless ``module``'s weights hash to ``expected_sha256``."""
    got = parameters_sha256(module)
    if got != expected_sha256:
        raise ChecksumMismatch(
            f"EMS toy world: {what} hash to {got[:16]}…, not to {expected_sha256[:16]}… as when the toy "
            "model was trained. This PyTorch's random generator (or ComfyUI's text-encoder layout) "
            "differs from the one used for training, so the trained MMDiT would get conditioning it "
            "never saw. Retrain with `make toy-train` on this machine."
        )


# The rebuilt encoders are checked by what they compute, not by their bytes: an upstream change to
# ComfyUI's CLIP/T5 modules that keeps the computation (a renamed parameter in the same order, an
# added buffer, another kernel's rounding) still loads; one that changes it fails, naming the
# caption that moved and by how much. Captions of the toy grammar and the empty prompt; each
# embedding is kept as a fixed seeded projection to PROBE_SIZE numbers (tokens and pooled).
PROBE_CAPTIONS = (
    "two large red circles on a white background",
    "one small blue square on a black background",
    "three small green triangles on a gray background",
    "",
)
PROBE_SIZE = 16
PROBE_SEED = 7
PROBE_TOLERANCE = 1e-3  # relative L2: float noise is ~1e-6, a changed encoder moves by ~1


def probe_fingerprint(encode, captions=PROBE_CAPTIONS) -> dict[str, list[float]]:
    """{caption: PROBE_SIZE projections of its token embedding, then PROBE_SIZE of its pooled one};
    ``encode(text)`` → (tokens (1, T, D), pooled (1, P))."""
    out = {}
    for text in captions:
        tokens, pooled = encode(text)
        parts = []
        for tensor in (tokens, pooled):
            flat = tensor.detach().reshape(-1).to(torch.float64).cpu()
            gen = torch.Generator().manual_seed(PROBE_SEED + flat.numel())  # one projection per size
            projection = torch.randn(PROBE_SIZE, flat.numel(), generator=gen, dtype=torch.float64) / flat.numel() ** 0.5
            parts += (projection @ flat).tolist()
        out[text] = parts
    return out


def verify_probes(found: dict, expected: dict, what: str) -> None:
    """Raise ChecksumMismatch (naming the caption, the deviation and what to do) unless every probe
    caption's fingerprint is within PROBE_TOLERANCE of the recorded one."""
    for text, want in expected.items():
        got = found.get(text)
        if got is None or len(got) != len(want):
            raise ChecksumMismatch(f"EMS toy world: {what}: no fingerprint for the probe caption {text!r}.")
        a, b = torch.tensor(got, dtype=torch.float64), torch.tensor(want, dtype=torch.float64)
        error = float((a - b).norm() / b.norm().clamp_min(1e-12))
        if not error <= PROBE_TOLERANCE:
            raise ChecksumMismatch(
                f"EMS toy world: {what} embed the caption {text!r} {error:.2g} away (relative) from what the "
                f"encoders computed when the toy model was trained (tolerance {PROBE_TOLERANCE:g}). ComfyUI's "
                "text-encoder modules (or this PyTorch's random generator) changed in a way that changes the "
                "computation, so the trained MMDiT would get conditioning it never saw. Run the pack with the "
                "ComfyUI version it was trained with (0.3.64), or retrain with `make toy-train`."
            )


def clip_encoder(clip):
    """``encode(text)`` for :func:`probe_fingerprint` from a ComfyUI CLIP."""

    def encode(text: str):
        return clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)

    return encode


def build_text_encoders(expected: dict | None = None):
    """The frozen SD3-layout text encoders as a ComfyUI CLIP, rebuilt from TEXT_ENCODER_SEED.

    ``expected``: the weights' record of them (``text_encoders`` in toyworld.json). With its
    ``probes`` the rebuilt encoders must compute those fingerprints (``verify_probes``); a record
    without probes falls back to the weights' hash (``sha256``). Else ChecksumMismatch.
    """
    ensure_comfy()
    import comfy.sd
    import comfy.text_encoders.sd3_clip as sd3_clip

    class Target:
        params = {}
        clip = sd3_clip.sd3_clip(clip_l=True, clip_g=True, t5=True, dtype_t5=torch.float32)
        tokenizer = sd3_clip.SD3Tokenizer

    clip = comfy.sd.CLIP(Target(), model_options={**TEXT_ENCODER_CONFIG, "dtype": torch.float32})
    seeded_parameters(clip.cond_stage_model, TEXT_ENCODER_SEED)
    what = f"the text encoders rebuilt from seed {TEXT_ENCODER_SEED}"
    if expected is not None and expected.get("probes"):
        with torch.inference_mode():
            verify_probes(probe_fingerprint(clip_encoder(clip), tuple(expected["probes"])), expected["probes"], what)
    elif expected is not None:
        verify_checksum(clip.cond_stage_model, expected["sha256"], what)
    return clip


def encode(clip, text: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens (1, 154, 4096), pooled (1, 2048)) exactly as CLIPTextEncode computes them."""
    tokens = clip.tokenize(text)
    cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
    return cond, pooled


def new_vae_model():
    """ComfyUI's AutoencoderKL in the toy configuration (random, CPU)."""
    ensure_comfy()
    from comfy.ldm.models.autoencoder import AutoencoderKL

    return AutoencoderKL(ddconfig=dict(VAE_DDCONFIG), embed_dim=16)


def comfy_vae(state_dict: dict[str, torch.Tensor]):
    """A ComfyUI VAE object around the toy AutoencoderKL weights (16 channels, 8×, SD3 format)."""
    ensure_comfy()
    import comfy.sd

    sd = {k: v.float() for k, v in state_dict.items()}
    # float32 whatever the device: the VAE is tiny, and its folded latent scale wants the precision.
    vae = comfy.sd.VAE(sd=sd, config={"params": {"ddconfig": dict(VAE_DDCONFIG), "embed_dim": 16}}, dtype=torch.float32)
    vae.latent_channels = 16  # the config path leaves ComfyUI's SD1 default of 4
    return vae


def new_mmdit():
    """ComfyUI's MMDiT in the toy configuration, initialised as DiT/SD3 do: Xavier linears, zero
    adaLN modulation and zero final layer (each block starts as the identity)."""
    ensure_comfy()
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.mmdit import MMDiT

    cfg = {k: v for k, v in MMDIT_CONFIG.items() if k != "pos_embed_scaling_factor"}
    model = MMDiT(**cfg, dtype=torch.float32, device="cpu", operations=comfy.ops.disable_weight_init)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _name, module in sorted(model.named_modules(), key=lambda kv: kv[0]):
            if isinstance(module, torch.nn.Linear):
                bound = (6.0 / (module.in_features + module.out_features)) ** 0.5
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen) * 2 * bound - bound)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, torch.nn.Conv2d):
                w = module.weight.view(module.weight.shape[0], -1)
                bound = (6.0 / (w.shape[0] + w.shape[1])) ** 0.5
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen) * 2 * bound - bound)
                module.bias.zero_()
            elif isinstance(module, torch.nn.LayerNorm) and module.weight is not None:
                module.weight.fill_(1.0)
                module.bias.zero_()
        for name, module in model.named_modules():
            if name.endswith("adaLN_modulation") or name == "final_layer.linear":
                for p in module.parameters():
                    p.zero_()
        for p in model.t_embedder.parameters():
            if p.ndim == 2:
                p.normal_(0, 0.02, generator=gen)
    return model


def patcher_from_config(config, state_dict: dict[str, torch.Tensor], dtype=torch.float32):
    """A ModelPatcher as ``comfy.sd.load_diffusion_model_state_dict`` makes one after its detection step,
    with the model config given: for families whose detection hard-codes their full sizes (Flux and
    the others of ``tiny_families``). The weights must fit the model key for key."""
    ensure_comfy()
    import comfy.model_management as mm
    import comfy.model_patcher

    load_device, offload_device = mm.get_torch_device(), mm.unet_offload_device()
    config.set_inference_dtype(dtype, mm.unet_manual_cast(dtype, load_device, config.supported_inference_dtypes))
    model = config.get_model(state_dict, "").to(offload_device)
    expected = set(model.diffusion_model.state_dict())
    if set(state_dict) != expected:
        missing, unexpected = sorted(expected - set(state_dict)), sorted(set(state_dict) - expected)
        raise RuntimeError(
            f"the weights do not fit ComfyUI's {type(config).__name__} model: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    model.load_model_weights(state_dict, "")
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)


def load_meta() -> dict:
    path = WEIGHTS / META_FILE
    if not path.exists():
        raise FileNotFoundError(f"EMS toy world: no trained weights in {WEIGHTS} — run `python -m toyworld.train`")
    return json.loads(path.read_text())
