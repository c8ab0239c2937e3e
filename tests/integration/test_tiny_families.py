"""The tiny model families (toyworld.tiny_families) inside a real ComfyUI imported in-process: each is
detected as its family, samples as it (flow or eps), is conditioned with its real layout, and runs
two steps of ComfyUI's own sampler on the latent its VAE makes of a 64×64 image."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def env():
    from bench.host import CallCounter, setup

    setup(cpu=True)
    import comfy.model_sampling
    import comfy.sample

    from comfyui_ems.toyworld import tiny_families

    return {
        "tf": tiny_families,
        "sampling": comfy.model_sampling,
        "sample": comfy.sample,
        "Counter": CallCounter,
        "clips": {},
    }


FAMILIES = ["sd3", "sd35_large", "sd35_medium", "flux_dev", "flux_schnell", "chroma", "qwen_image", "lumina2", "sdxl"]

# What ComfyUI's detection yields for the tiny state dict: the family's class (None: SDXL matches only
# its full-size layout), and for the MMDiTs the config that tells SD3, SD3.5 Large and Medium apart.
DETECTED = {
    "sd3": ("SD3", {"qk_norm": None, "x_block_self_attn_layers": []}),
    "sd35_large": ("SD3", {"qk_norm": "rms", "x_block_self_attn_layers": []}),
    "sd35_medium": ("SD3", {"qk_norm": "rms", "x_block_self_attn_layers": [0]}),
    "flux_dev": ("Flux", {"guidance_embed": True}),
    "flux_schnell": ("FluxSchnell", {"guidance_embed": False}),
    "chroma": ("Chroma", {}),
    "qwen_image": ("QwenImage", {}),
    "lumina2": ("Lumina2", {}),
    "sdxl": (None, {}),
}

# (token width, pooled width, conditioning keys besides pooled_output) for the prompt "a red car"
CONDITIONING = {
    "sd3": (4096, 2048, set()),
    "sd35_large": (4096, 2048, set()),
    "sd35_medium": (4096, 2048, set()),
    "flux_dev": (4096, 768, set()),
    "flux_schnell": (4096, 768, set()),
    "chroma": (4096, None, set()),
    "qwen_image": (3584, None, set()),  # ComfyUI drops Qwen's all-ones attention mask
    "lumina2": (2304, None, {"attention_mask"}),
    "sdxl": (2048, 1280, set()),
}


def test_the_table_names_every_family_in_order(env):
    assert list(env["tf"].FAMILIES) == FAMILIES


def clip_for(env, family):
    """The family's CLIP, shared with the previous family when they use the same encoders (SD3 and
    SD3.5, Flux dev and schnell); one is kept at a time."""
    key = env["tf"].FAMILIES[family].text_encoder
    clips = env["clips"]
    if key not in clips:
        clips.clear()
        clips[key] = env["tf"].clip(family)
    return clips[key]


def test_the_gemma_stand_in_tokenizer_is_deterministic(env):
    import hashlib

    tf = env["tf"]
    first = tf.gemma_tokenizer_model()
    tf.gemma_tokenizer_model.cache_clear()
    assert hashlib.sha256(tf.gemma_tokenizer_model()).digest() == hashlib.sha256(first).digest()


@pytest.mark.parametrize("family", FAMILIES)
def test_family(env, family):
    tf, spec = env["tf"], env["tf"].FAMILIES[family]

    # Detection (UNETLoader's first step) on the tiny state dict.
    detected = tf.detected_config(family)
    want_class, want_config = DETECTED[family]
    assert (type(detected).__name__ if detected is not None else None) == want_class
    assert spec.detection == ("none" if want_class is None else "full" if family.startswith("sd3") else "class")
    for key, value in want_config.items():
        assert detected.unet_config.get(key) == value, key

    # The state dict: a seed gives the same finite weights every time (ComfyUI allocates with torch.empty).
    first, again = tf.state_dict(family, seed=5), tf.state_dict(family, seed=5)
    assert all(torch.equal(first[k], again[k]) and torch.isfinite(v).all() for k, v in first.items())

    # The MODEL: the family's config class and model sampling.
    model = tf.model_patcher(family)
    assert type(model.model.model_config).__name__ == spec.config_class
    for key, value in want_config.items():
        assert model.model.model_config.unet_config.get(key) == value, key
    sampling = env["sampling"]
    assert isinstance(model.model.model_sampling, sampling.CONST if spec.flow else sampling.EPS)
    assert spec.flow == (family != "sdxl")

    # Conditioning layout.
    clip = clip_for(env, family)
    positive = clip.encode_from_tokens_scheduled(clip.tokenize("a red car"))
    negative = clip.encode_from_tokens_scheduled(clip.tokenize(""))
    tokens, extra = positive[0]
    token_width, pooled_width, extra_keys = CONDITIONING[family]
    assert (spec.token_width, spec.pooled_width, set(spec.extra_cond_keys)) == (token_width, pooled_width, extra_keys)
    assert tokens.ndim == 3 and tokens.shape[0] == 1 and tokens.shape[-1] == token_width
    pooled = extra.get("pooled_output")
    assert (None if pooled is None else tuple(pooled.shape)) == (None if pooled_width is None else (1, pooled_width))
    assert set(extra) - {"pooled_output"} == extra_keys
    if "attention_mask" in extra_keys:
        assert tuple(extra["attention_mask"].shape) == (1, tokens.shape[1])

    # VAE: the family's latent, and back.
    vae = tf.vae(family)
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    latent = vae.encode(image)
    assert tuple(latent.shape) == (1, spec.latent_channels) + (1,) * (spec.latent_dims - 2) + (8, 8)
    decoded = vae.decode(latent)
    assert tuple(decoded.reshape(-1, *decoded.shape[-3:]).shape) == (1, 64, 64, 3)
    assert torch.isfinite(decoded).all()

    # Two steps of ComfyUI's sampler (cfg 2: positive and negative), from that latent.
    counter = env["Counter"]()
    patched = counter.install(model)
    sample = env["sample"]
    noise = sample.prepare_noise(latent, 0)
    out = sample.sample(patched, noise, 2, 2.0, "euler", "simple", positive, negative, latent, denoise=0.8, seed=0)
    assert out.shape == latent.shape
    assert torch.isfinite(out).all()
    assert len(counter.calls) >= 2 and sum(counter.calls) == 2 * 2  # cond + uncond, two steps


@pytest.mark.parametrize("family", FAMILIES)
def test_model_file(env, family, tmp_path):
    """UNETLoader loads the tiny file of every family ComfyUI detects at the tiny size; the others refuse."""
    tf = env["tf"]
    path = tmp_path / f"tiny_{family}.safetensors"
    if tf.FAMILIES[family].detection != "full":
        with pytest.raises(ValueError, match="hard-codes"):
            tf.write_model_file(family, path)
        return
    import comfy.sd

    tf.write_model_file(family, path, seed=3)
    model = comfy.sd.load_diffusion_model(str(path))
    assert type(model.model.model_config).__name__ == tf.FAMILIES[family].config_class
    want = tf.state_dict(family, seed=3)
    got = model.model.diffusion_model.state_dict()
    bad = [
        (k, got[k].dtype, v.dtype, (got[k] - v).abs().max().item())
        for k, v in want.items()
        if not torch.equal(got[k], v)
    ]
    assert not bad, bad[:5]
