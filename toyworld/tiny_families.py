"""Tiny random-weight models of the families people run, built with each family's own ComfyUI classes.

One table (``FAMILIES``) and one set of builders: ``state_dict`` / ``model_patcher`` (the diffusion
model as UNETLoader returns it), ``clip`` (the family's real tokenizer and conditioning layout: real
token and pooled widths, tiny layers), ``vae`` (the family's latent format) and ``write_model_file``.
Every parameter is drawn by the toy world's ``seeded_parameters`` (ComfyUI's ops skip init), so a
seed gives the same model every time. A forward pass on the latent of a 64×64 image takes 3–12 ms on
a CPU; the text encoders dominate the build time (the T5/CLIP embedding tables: 1–3 s).

How each family is built (``FamilySpec.detection``):

- ``"full"`` (SD3, SD3.5 Large, SD3.5 Medium): ComfyUI's detection reads every size of an MMDiT
  from its key shapes, so ``model_patcher`` loads the tiny state dict exactly as UNETLoader does
  (``comfy.sd.load_diffusion_model_state_dict``). ComfyUI has one model config for all three
  (``supported_models.SD3``); what tells them apart is the detected ``unet_config``: SD3.5 adds RMS
  q/k norms (``ln_q`` keys → ``qk_norm="rms"``), SD3.5 Medium (MMDiT-X) also has second self-attention
  blocks in the image stream (``x_block.attn2`` keys → ``x_block_self_attn_layers``).
- ``"class"`` (Flux dev/schnell, Chroma, Qwen-Image, Lumina 2): detection names the family from the
  keys (``comfy.model_detection.model_config_from_unet`` yields the class listed here), but it
  hard-codes the widths (Flux/Chroma: hidden 3072, 24 heads, axes 16/56/56; Chroma's approximator
  5120 wide; Lumina 2: dim 2304, 24 heads; Qwen-Image: 24 heads of 128), so UNETLoader would build a
  full-size model the tiny weights do not fit. The model is built through that same config class
  with a tiny ``unet_config`` and loaded the way ``load_diffusion_model_state_dict`` loads it.
- ``"none"`` (SDXL): detection reads the UNet's layout from its shapes but matches SDXL only for its
  exact full-size layout (320 channels, transformer depths 2/2/10/10), so a tiny UNet is detected as
  no family; built directly through ``supported_models.SDXL``.

Text encoders keep the widths the pack reads (token / pooled): SD3/SD3.5 4096 + 2048, Flux 4096 +
768, Chroma 4096 (no pooled), Qwen-Image 3584 (Qwen2.5-VL with its chat template; the template is
cut off the output), Lumina 2 2304 (Gemma 2 with an attention mask), SDXL 2048 + 1280; depth, heads
and MLPs are shrunk through ComfyUI's ``<name>_model_config`` model options. Two exceptions:

- Qwen-Image: Qwen2.5-VL's embedding table is 152064 × 3584 (545 M parameters, 2.2 GB in float32,
  ~5 s to seed), and its vision tower has 32 layers of 1280 whatever the config says. The tiny
  encoder keeps the real tokenizer and ids but reads a ``QWEN_EMBEDDING_ROWS``-row table modulo its
  row count (ComfyUI's ``custom_operations`` hook, its ``manual_cast`` ops otherwise), and gets a
  one-layer, 64-wide vision tower (``<name>_class`` hook). Tokens of different ids may share a row.
- Lumina 2: ComfyUI reads Gemma's tokenizer from the weights file (``spiece_model``), which is not
  on these machines. ``gemma_tokenizer_model()`` trains a small SentencePiece BPE model (byte
  fallback, Gemma's special ids: pad 0, eos 1, bos 2, unk 3) on a fixed word list, deterministically
  and once per process, and hands it to ComfyUI as the weights file would (``tokenizer_data``).
  Token ids are therefore not Gemma's; the layout (bos first, no padding, attention mask) is.

VAEs: a tiny ``AutoencoderKL`` (8×, 16 channels for SD3/Flux/Chroma/Lumina 2, 4 for SDXL) through
``comfy.sd.VAE``'s config path, as ``tiny_sd3.vae``; Qwen-Image gets ComfyUI's Wan 2.1 VAE, detected
by ``comfy.sd.VAE`` from its keys (5-D latents, 16 channels, 8×, Wan 2.1 latent format), with the
``WanVAE`` it constructs made 16 wide instead of 96 for the duration of the call.

Import only after ComfyUI's ``comfy`` package is importable (and ``--cpu`` is set on CPU machines).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import torch

from .model import fill_saved_buffers, patcher_from_config, seeded_parameters
from .tiny_sd3 import TINY_MMDIT, TINY_TE_CONFIG, TINY_VAE_CONFIG


@dataclass(frozen=True)
class FamilySpec:
    """One family: what ComfyUI calls it, how big the tiny one is, what it is conditioned with."""

    config_class: str  # comfy.supported_models.<name>: what detection yields for the real family
    unet_config: Mapping  # the tiny diffusion model's config (a full one for the class)
    detection: str  # "full" | "class" | "none" (module docstring)
    text_encoder: str  # key of _TEXT_ENCODERS
    te_options: Mapping  # model_options shrinking the text encoders
    # Defaults: what most families share (a KL VAE with 16 channels, flow matching, T5-wide tokens).
    vae: str = "kl"  # "kl" | "wan21"
    latent_channels: int = 16
    flow: bool = True  # flow-matching (CONST) rather than eps prediction
    token_width: int = 4096  # conditioning tokens, as the real family produces them
    pooled_width: int | None = None  # pooled_output width; None where the family has none
    extra_cond_keys: frozenset = field(default_factory=frozenset)  # what else the text encoder adds

    @property
    def latent_dims(self) -> int:
        """Spatial dims of a latent: 2 (B, C, H, W), or 3 for the Wan VAE's (B, C, T, H, W)."""
        return 3 if self.vae == "wan21" else 2


def _frozen(d: dict) -> Mapping:
    return MappingProxyType(d)


# Text encoders: the SD3 family's are tiny_sd3's (CLIP-L, CLIP-G, T5 at their real widths, 1–3 layers).
_SD3_TE = _frozen(TINY_TE_CONFIG)
_CLIP_L = {"num_hidden_layers": 3, "intermediate_size": 32, "num_attention_heads": 2}  # CLIP-L and -G
_T5 = {"num_layers": 1, "d_ff": 16, "num_heads": 2, "d_kv": 8}
# hidden 64, 2 heads of 32 = 8 + 12 + 12 rope dims (the real ones are 16 + 56 + 56 of 128)
_FLUX = {
    "image_model": "flux",
    "in_channels": 16,
    "out_channels": 16,
    "patch_size": 2,
    "vec_in_dim": 768,
    "context_in_dim": 4096,
    "hidden_size": 64,
    "mlp_ratio": 4.0,
    "num_heads": 2,
    "depth": 1,
    "depth_single_blocks": 1,
    "axes_dim": [8, 12, 12],
    "theta": 10000,
    "qkv_bias": True,
}
GEMMA_VOCAB = 512
QWEN_EMBEDDING_ROWS = 4096

FAMILIES: dict[str, FamilySpec] = {
    "sd3": FamilySpec(
        config_class="SD3",
        unet_config=_frozen(dict(TINY_MMDIT)),
        detection="full",
        text_encoder="sd3",
        te_options=_SD3_TE,
        pooled_width=2048,
    ),
    "sd35_large": FamilySpec(
        config_class="SD3",
        unet_config=_frozen({**TINY_MMDIT, "qk_norm": "rms"}),
        detection="full",
        text_encoder="sd3",
        te_options=_SD3_TE,
        pooled_width=2048,
    ),
    "sd35_medium": FamilySpec(
        config_class="SD3",
        # MMDiT-X: a second self-attention in block 0's image stream (SD3.5 Medium has it in blocks 0–12)
        unet_config=_frozen({**TINY_MMDIT, "qk_norm": "rms", "x_block_self_attn_layers": [0]}),
        detection="full",
        text_encoder="sd3",
        te_options=_SD3_TE,
        pooled_width=2048,
    ),
    "flux_dev": FamilySpec(
        config_class="Flux",
        unet_config=_frozen({**_FLUX, "guidance_embed": True}),
        detection="class",
        text_encoder="flux",
        te_options=_frozen({"clip_l_model_config": _CLIP_L, "t5xxl_model_config": _T5}),
        pooled_width=768,
    ),
    "flux_schnell": FamilySpec(
        config_class="FluxSchnell",
        unet_config=_frozen({**_FLUX, "guidance_embed": False}),
        detection="class",
        text_encoder="flux",
        te_options=_frozen({"clip_l_model_config": _CLIP_L, "t5xxl_model_config": _T5}),
        pooled_width=768,
    ),
    "chroma": FamilySpec(
        config_class="Chroma",
        unet_config=_frozen(
            {
                **{k: v for k, v in _FLUX.items() if k != "vec_in_dim"},
                "image_model": "chroma",
                "in_channels": 64,  # Chroma's config counts the 2×2 patch (as detection does)
                "out_channels": 64,
                "in_dim": 64,  # the approximator's input: 16 timestep + 16 guidance + 32 index
                "out_dim": 64,  # = hidden_size: one modulation vector
                "hidden_dim": 32,
                "n_layers": 1,
            }
        ),
        detection="class",
        text_encoder="chroma",
        te_options=_frozen({"t5xxl_model_config": _T5}),
    ),
    "qwen_image": FamilySpec(
        config_class="QwenImage",
        unet_config=_frozen(
            {
                "image_model": "qwen_image",
                "patch_size": 2,
                "in_channels": 64,  # 16 latent channels × the 2×2 patch (what detection reads)
                "out_channels": 16,
                "num_layers": 1,
                "attention_head_dim": 32,
                "num_attention_heads": 2,
                "joint_attention_dim": 3584,
                "axes_dims_rope": [8, 12, 12],
            }
        ),
        detection="class",
        text_encoder="qwen_image",
        te_options=_frozen(
            {
                "qwen25_7b_model_config": {
                    "num_hidden_layers": 1,
                    "intermediate_size": 16,
                    "num_attention_heads": 2,
                    "num_key_value_heads": 1,
                }
            }
        ),
        vae="wan21",
        token_width=3584,
    ),
    "lumina2": FamilySpec(
        config_class="Lumina2",
        unet_config=_frozen(
            {
                "image_model": "lumina2",
                "patch_size": 2,
                "in_channels": 16,
                "dim": 64,
                "cap_feat_dim": 2304,
                "n_layers": 1,
                "n_refiner_layers": 1,
                "n_heads": 2,
                "n_kv_heads": 1,
                "multiple_of": 16,
                "qk_norm": True,
                "axes_dims": [8, 12, 12],
                "axes_lens": [300, 512, 512],
            }
        ),
        detection="class",
        text_encoder="lumina2",
        te_options=_frozen(
            {
                # three layers: Lumina 2 reads the penultimate hidden state (ComfyUI asserts |-2| < layers)
                "gemma2_2b_model_config": {
                    "vocab_size": GEMMA_VOCAB,
                    "num_hidden_layers": 3,
                    "intermediate_size": 16,
                    "num_attention_heads": 2,
                    "num_key_value_heads": 1,
                }
            }
        ),
        token_width=2304,
        extra_cond_keys=frozenset({"attention_mask"}),
    ),
    "sdxl": FamilySpec(
        config_class="SDXL",
        unet_config=_frozen(
            {
                "use_checkpoint": False,
                "image_size": 32,
                "use_spatial_transformer": True,
                "legacy": False,
                "num_classes": "sequential",
                "adm_in_channels": 2816,  # 1280 pooled + 6 × 256 size embeddings
                "in_channels": 4,
                "out_channels": 4,
                "model_channels": 64,  # SDXL's config forces 64-channel heads
                "num_res_blocks": [1, 1],
                "channel_mult": [1, 2],
                "transformer_depth": [0, 1],
                "transformer_depth_output": [0, 0, 1, 1],
                "transformer_depth_middle": 1,
                "use_linear_in_transformer": True,
                "context_dim": 2048,
                "use_temporal_resblock": False,
                "use_temporal_attention": False,
            }
        ),
        detection="none",
        text_encoder="sdxl",
        te_options=_frozen({"clip_l_model_config": _CLIP_L, "clip_g_model_config": _CLIP_L}),
        latent_channels=4,
        flow=False,
        token_width=2048,
        pooled_width=1280,
    ),
}


def _spec(family: str) -> FamilySpec:
    try:
        return FAMILIES[family]
    except KeyError:
        raise KeyError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}") from None


def _plain(value):
    """A spec's (read-only) config as the plain dicts/lists ComfyUI's classes expect."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def model_config(family: str):
    """The family's ComfyUI model config (``comfy.supported_models.<config_class>``) at the tiny size."""
    import comfy.supported_models

    spec = _spec(family)
    return getattr(comfy.supported_models, spec.config_class)(_plain(spec.unet_config))


# ---------------------------------------------------------------------------------------------
# diffusion model


def state_dict(family: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random diffusion-model state dict of ``family`` in ComfyUI's key format (no prefix)."""
    model = model_config(family).get_model({}, device="cpu")
    seeded_parameters(model.diffusion_model, seed)
    fill_saved_buffers(model.diffusion_model)
    return {k: v.contiguous() for k, v in model.diffusion_model.state_dict().items()}


def detected_config(family: str, seed: int = 0):
    """What ComfyUI's detection makes of the tiny state dict (UNETLoader's first step): a model config
    whose class is the family's, at the tiny size where ``detection == "full"`` and at the sizes
    detection hard-codes where ``"class"``; None where ``"none"``."""
    import comfy.model_detection

    return comfy.model_detection.model_config_from_unet(state_dict(family, seed), "")


def model_patcher(family: str, seed: int = 0, dtype=torch.float32):
    """The tiny ``family`` MODEL (ModelPatcher) as UNETLoader would return it."""
    import comfy.sd

    spec = _spec(family)
    sd = state_dict(family, seed)
    if spec.detection == "full":
        patcher = comfy.sd.load_diffusion_model_state_dict(sd, model_options={"dtype": dtype})
    else:
        patcher = patcher_from_config(model_config(family), sd, dtype)
    if type(patcher.model.model_config).__name__ != spec.config_class:  # pragma: no cover - a ComfyUI change
        raise RuntimeError(f"{family}: ComfyUI built a {type(patcher.model.model_config).__name__} model")
    return patcher


def write_model_file(family: str, path, seed: int = 0) -> str:
    """Save the tiny diffusion model as safetensors for UNETLoader (``models/diffusion_models``).

    Only families ComfyUI detects at the tiny size (``detection == "full"``) load there; for the
    others UNETLoader would build the full-size model, so this refuses rather than write a file that
    fails later with a size mismatch."""
    import safetensors.torch

    spec = _spec(family)
    if spec.detection != "full":
        raise ValueError(
            f"{family}: ComfyUI's detection hard-codes this family's sizes, so UNETLoader cannot load a tiny "
            "one; use model_patcher() in-process"
        )
    path = str(path)
    safetensors.torch.save_file(state_dict(family, seed), path)
    return path


# ---------------------------------------------------------------------------------------------
# text encoders


def _sd3_target():
    import comfy.text_encoders.sd3_clip as m

    return m.SD3Tokenizer, m.sd3_clip(clip_l=True, clip_g=True, t5=True, dtype_t5=torch.float32), {}, {}


def _flux_target():
    import comfy.text_encoders.flux as m

    return m.FluxTokenizer, m.flux_clip(dtype_t5=torch.float32), {}, {}


def _chroma_target():
    import comfy.text_encoders.pixart_t5 as m

    return m.PixArtTokenizer, m.pixart_te(dtype_t5=torch.float32), {}, {}


def _sdxl_target():
    import comfy.sdxl_clip as m

    return m.SDXLTokenizer, m.SDXLClipModel, {}, {}


def _qwen_image_target():
    import comfy.text_encoders.qwen_image as m

    options = {"qwen25_7b_class": _tiny_qwen_vl_model(), "custom_operations": _capped_embedding_ops()}
    return m.QwenImageTokenizer, m.te(dtype_llama=torch.float32), options, {}


def _lumina2_target():
    import comfy.text_encoders.lumina2 as m

    tokenizer_data = {"spiece_model": torch.ByteTensor(list(gemma_tokenizer_model()))}
    return m.LuminaTokenizer, m.te(dtype_llama=torch.float32), {}, tokenizer_data


# key → () → (tokenizer class, text-encoder class, extra model_options, tokenizer_data)
_TEXT_ENCODERS = {
    "sd3": _sd3_target,
    "flux": _flux_target,
    "chroma": _chroma_target,
    "sdxl": _sdxl_target,
    "qwen_image": _qwen_image_target,
    "lumina2": _lumina2_target,
}


def clip(family: str, seed: int = 0):
    """A tiny CLIP (``comfy.sd.CLIP``) with the family's tokenizer and conditioning layout."""
    import comfy.sd

    spec = _spec(family)
    tokenizer, encoder, options, tokenizer_data = _TEXT_ENCODERS[spec.text_encoder]()

    class Target:
        params = {}
        clip = encoder

    Target.tokenizer = tokenizer
    model_options = {**_plain(spec.te_options), **options, "dtype": torch.float32}
    te = comfy.sd.CLIP(Target(), tokenizer_data=tokenizer_data, model_options=model_options)
    seeded_parameters(te.cond_stage_model, seed + 1)
    return te


@functools.cache
def _capped_embedding_ops():
    """ComfyUI's ``manual_cast`` ops whose Embedding keeps at most QWEN_EMBEDDING_ROWS rows and reads
    token ``i`` from row ``i % rows``."""
    import comfy.ops

    class CappedEmbeddingOps(comfy.ops.manual_cast):
        class Embedding(comfy.ops.manual_cast.Embedding):
            def __init__(self, num_embeddings, embedding_dim, *args, **kwargs):
                super().__init__(min(num_embeddings, QWEN_EMBEDDING_ROWS), embedding_dim, *args, **kwargs)

            def forward(self, input, *args, **kwargs):
                return super().forward(input % self.num_embeddings, *args, **kwargs)

    return CappedEmbeddingOps


@functools.cache
def _tiny_qwen_vl_model():
    """ComfyUI's Qwen2.5-VL text-encoder wrapper with a one-layer, 64-wide vision tower."""
    import comfy.text_encoders.qwen_image as qwen_image
    from comfy.text_encoders import qwen_vl

    class TinyQwen25_7BVLIModel(qwen_image.Qwen25_7BVLIModel):
        def __init__(self, device="cpu", dtype=None, model_options={}, **kwargs):  # noqa: B006 (ComfyUI's signature)
            super().__init__(device=device, dtype=dtype, model_options=model_options, **kwargs)
            transformer = self.transformer
            transformer.visual = qwen_vl.Qwen2VLVisionTransformer(
                hidden_size=64,
                output_hidden_size=transformer.model.config.hidden_size,
                intermediate_size=32,
                num_heads=2,
                num_layers=1,
                device=device,
                dtype=dtype,
                ops=self.operations,
            )

    return TinyQwen25_7BVLIModel


# A fixed vocabulary for the stand-in Gemma tokenizer: prompt words of the kinds the pack edits.
_GEMMA_WORDS = """
a an the one two three four five many some several few no and or with without of in on at by for from to
into over under above below near behind beside between inside outside next front back left right top bottom
red orange yellow green blue purple pink brown black white gray grey gold silver dark light bright pale
vivid colorful small large big tiny huge tall short long wide narrow round square flat thin thick old new
young ancient modern simple detailed smooth rough soft hard shiny matte wet dry warm cold hot cool quiet
loud happy sad calm angry sleepy wild cute beautiful ugly strange circle circles square squares triangle
triangles star stars line lines dot dots shape shapes background foreground scene image photo picture
painting drawing sketch render illustration portrait landscape closeup view style art artwork poster
cat cats dog dogs bird birds horse horses fish cow sheep lion tiger bear fox wolf rabbit mouse owl eagle
man woman person people child children boy girl face hair eyes hand hands smile dress shirt hat coat
shoes glasses car cars truck bus bicycle boat ship train plane road street bridge city town village
house houses building tower castle church room window door wall floor roof garden park forest tree
trees flower flowers grass leaf leaves mountain mountains hill river lake sea ocean beach sand rock
stone snow rain cloud clouds sky sun moon night day morning evening sunset sunrise winter summer spring
autumn fire water ice wood metal glass paper plastic table chair bed lamp book cup bottle plate apple
banana orange cake bread food kitchen market shop office school library museum street light shadow
reflection sitting standing running walking flying swimming sleeping eating reading holding wearing
looking smiling playing jumping lying made covered filled painted drawn photographed lit seen shown
you are an assistant designed to generate superior images degree text prompt alignment based on
textual prompts user high quality realistic cinematic sharp focus soft lighting depth field
""".split()


@functools.cache
def gemma_tokenizer_model() -> bytes:
    """A small SentencePiece BPE model (GEMMA_VOCAB pieces, byte fallback, Gemma's special ids), trained
    on ``_GEMMA_WORDS`` in a fixed order with one thread: the same bytes every time."""
    import io

    import sentencepiece

    words = _GEMMA_WORDS
    sentences = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    sentences += [" ".join(words[i::7]) for i in range(7)]
    out = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=out,
        model_type="bpe",
        vocab_size=GEMMA_VOCAB,
        byte_fallback=True,
        character_coverage=1.0,
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        num_threads=1,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# VAEs


TINY_WAN_VAE = {"dim": 16, "num_res_blocks": 1}  # ComfyUI builds dim 96, num_res_blocks 2


def vae(family: str, seed: int = 0):
    """A tiny VAE (``comfy.sd.VAE``) with the family's latent channels, 8× downscale and latent layout."""
    import comfy.sd

    spec = _spec(family)
    if spec.vae == "wan21":
        import comfy.ldm.wan.vae as wan

        model = seeded_parameters(wan.WanVAE(**_wan_config(spec.latent_channels)), seed + 2)
        with _tiny_wan_vae():
            out = comfy.sd.VAE(sd=model.state_dict())
    else:
        from comfy.ldm.models.autoencoder import AutoencoderKL

        channels = spec.latent_channels
        ddconfig = {**TINY_VAE_CONFIG, "z_channels": channels}
        model = seeded_parameters(AutoencoderKL(ddconfig=dict(ddconfig), embed_dim=channels), seed + 2)
        out = comfy.sd.VAE(
            sd=model.state_dict(), config={"params": {"ddconfig": dict(ddconfig), "embed_dim": channels}}
        )
        out.latent_channels = channels  # the config path leaves ComfyUI's SD1 default of 4
    if out.latent_channels != spec.latent_channels:  # pragma: no cover - a ComfyUI change
        raise RuntimeError(f"{family}: ComfyUI built a {out.latent_channels}-channel VAE")
    return out


def _wan_config(z_dim: int) -> dict:
    """ComfyUI's Wan 2.1 VAE config (comfy/sd.py) with TINY_WAN_VAE's sizes."""
    base = {"dim": 96, "z_dim": z_dim, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_scales": []}
    return {**base, "temperal_downsample": [False, True, True], "dropout": 0.0, **TINY_WAN_VAE}


@contextlib.contextmanager
def _tiny_wan_vae():
    """While ``comfy.sd.VAE`` detects a Wan 2.1 VAE, the ``WanVAE`` it constructs gets TINY_WAN_VAE's sizes."""
    import comfy.ldm.wan.vae as wan

    real = wan.WanVAE

    def tiny(**kwargs):
        return real(**{**kwargs, **TINY_WAN_VAE})

    wan.WanVAE = tiny
    try:
        yield
    finally:
        wan.WanVAE = real
