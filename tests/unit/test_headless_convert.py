"""UI → API conversion against a newer ComfyUI: inputs the server added get its own defaults."""

from __future__ import annotations

import pytest

from headless.workflow import WorkflowError, ui_to_api

# ImageScaleToTotalPixels as ComfyUI 0.3.64 lists it, and as 0.38 does (it gained a required
# `resolution_steps` INT after `megapixels`).
OLD = {
    "input": {
        "required": {
            "image": ["IMAGE"],
            "upscale_method": [["nearest-exact", "bilinear", "area"]],
            "megapixels": ["FLOAT", {"default": 1.0, "min": 0.01, "max": 16.0}],
        }
    },
    "input_order": {"required": ["image", "upscale_method", "megapixels"]},
}
NEW = {
    "input": {
        "required": {**OLD["input"]["required"], "resolution_steps": ["INT", {"default": 1, "min": 1, "max": 256}]}
    },
    "input_order": {"required": ["image", "upscale_method", "megapixels", "resolution_steps"]},
}
LOAD = {"input": {"required": {"image": [["a.png"], {"image_upload": True}]}}, "input_order": {"required": ["image"]}}


def workflow(widgets: list) -> dict:
    return {
        "nodes": [
            {"id": 1, "type": "LoadImage", "inputs": [], "widgets_values": ["a.png", "image"]},
            {
                "id": 2,
                "type": "ImageScaleToTotalPixels",
                "inputs": [{"name": "image", "link": 1}],
                "widgets_values": widgets,
            },
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"]],
    }


def test_an_input_a_newer_comfyui_added_gets_that_servers_default():
    filled: list[str] = []
    prompt = ui_to_api(workflow(["area", 0.25]), {"LoadImage": LOAD, "ImageScaleToTotalPixels": NEW}, filled)
    assert prompt["2"]["inputs"] == {
        "image": ["1", 0],
        "upscale_method": "area",
        "megapixels": 0.25,
        "resolution_steps": 1,
    }
    assert filled == ["ImageScaleToTotalPixels.resolution_steps=1"]


def test_the_same_workflow_on_the_old_server_fills_nothing():
    filled: list[str] = []
    prompt = ui_to_api(workflow(["area", 0.25]), {"LoadImage": LOAD, "ImageScaleToTotalPixels": OLD}, filled)
    assert prompt["2"]["inputs"] == {"image": ["1", 0], "upscale_method": "area", "megapixels": 0.25}
    assert filled == []


def test_a_node_that_lost_an_input_is_refused_by_name():
    with pytest.raises(WorkflowError, match=r"node 2 \(ImageScaleToTotalPixels\) has 4 widget values .* has 2"):
        ui_to_api(workflow(["area", 0.25, 8, "extra"]), {"LoadImage": LOAD, "ImageScaleToTotalPixels": OLD})


def test_an_api_format_file_is_refused_with_the_fix():
    with pytest.raises(WorkflowError, match="Workflow → Save"):
        ui_to_api({"1": {"class_type": "LoadImage", "inputs": {}}}, {"LoadImage": LOAD})


def test_a_seeded_node_that_gained_an_input_keeps_its_values_in_place():
    """The frontend saves the control widget after a seed, so an older node's values are a prefix of
    the new layout even when their count equals the new layout without control widgets."""
    old_values = [7, "randomize", 20]  # noise_seed, control_after_generate, steps
    new = {
        "input": {
            "required": {
                "noise_seed": ["INT", {"default": 0}],
                "steps": ["INT", {"default": 20}],
                "residual_space": [["model_output", "noise"]],
            }
        },
        "input_order": {"required": ["noise_seed", "steps", "residual_space"]},
    }
    wf = {"nodes": [{"id": 1, "type": "Gained", "inputs": [], "widgets_values": old_values}], "links": []}
    filled: list[str] = []
    assert ui_to_api(wf, {"Gained": new}, filled)["1"]["inputs"] == {
        "noise_seed": 7,
        "steps": 20,
        "residual_space": "model_output",
    }
    assert filled == ["Gained.residual_space='model_output'"]
