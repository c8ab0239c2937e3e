"""Every model family the pack meets is named as users know it, with the text encoder that belongs
to it, and its text widths are read from what ComfyUI's detection records (stand-in models: the
widths below are the detected configs of the real families, read from ComfyUI 0.3.64's detection)."""

from __future__ import annotations

import types

import pytest
import torch

from comfyui_ems.nodes.common import EMSNodeError, check_families, model_family, model_text_widths


def stand_in(class_name: str, unet_config: dict):
    config = type(class_name, (), {})()
    config.unet_config = unet_config
    return types.SimpleNamespace(model=types.SimpleNamespace(model_config=config))


SD3 = {"context_embedder_config": {"params": {"in_features": 4096}}, "adm_in_channels": 2048}
FAMILIES = [
    ("SD3", SD3, "SD3/SD3.5", 4096, 2048),
    ("Flux", {"context_in_dim": 4096, "vec_in_dim": 768, "guidance_embed": True}, "Flux.1 dev", 4096, 768),
    ("FluxSchnell", {"context_in_dim": 4096, "vec_in_dim": 768}, "Flux.1 schnell", 4096, 768),
    ("Chroma", {"context_in_dim": 4096}, "Chroma", 4096, 0),
    ("QwenImage", {"image_model": "qwen_image", "in_channels": 64}, "Qwen-Image", 3584, 0),
    ("Lumina2", {"cap_feat_dim": 2304}, "Lumina 2", 2304, 0),
    ("SDXL", {"context_dim": 2048, "adm_in_channels": 2816}, "SDXL", 2048, None),
]


@pytest.mark.parametrize("cls, unet, name, tokens, pooled", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_each_family_is_named_with_its_widths_and_encoder(cls, unet, name, tokens, pooled):
    model = stand_in(cls, unet)
    assert model_text_widths(model) == (name, tokens, pooled)
    assert model_family(model).encoder  # every known family says which encoder belongs to it


def test_a_wrong_family_is_refused_naming_both_and_the_fix():
    sd3_cond = [[torch.zeros(1, 154, 4096), {"pooled_output": torch.zeros(1, 2048)}]]
    with pytest.raises(EMSNodeError) as e:
        check_families("EMS Flow Edit", stand_in("QwenImage", {}), positive=sd3_cond)
    msg = str(e.value)
    assert msg.startswith("EMS Flow Edit: 'positive' comes from SD3/SD3.5") and "the model is Qwen-Image" in msg
    assert "qwen_2.5_vl_7b" in msg
    check_families("EMS Flow Edit", stand_in("SD3", SD3), positive=sd3_cond)  # the right family passes


def test_a_t5_only_family_refuses_a_pooled_vector_it_cannot_take():
    chroma = stand_in("Chroma", {"context_in_dim": 4096})
    t5_only = [[torch.zeros(1, 256, 4096), {"pooled_output": None}]]
    check_families("EMS Flow Edit", chroma, positive=t5_only)
    with pytest.raises(EMSNodeError, match="expects 4096-wide tokens and no pooled vector"):
        check_families(
            "EMS Flow Edit", chroma, positive=[[torch.zeros(1, 256, 4096), {"pooled_output": torch.zeros(1, 768)}]]
        )


def test_an_unknown_family_keeps_its_class_name():
    assert model_text_widths(stand_in("HiDream", {}))[0] == "HiDream"
