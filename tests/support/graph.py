"""Build ComfyUI API-format prompts in code: ``g.node("KSampler", model=unet[0], …)``."""

from __future__ import annotations

import copy

from headless.workflow import new_id, nodes_of, relink


class Node:
    def __init__(self, graph: "Graph", node_id: str):
        self.graph, self.id = graph, node_id

    def __getitem__(self, index: int) -> list:
        return [self.id, index]


class Graph:
    def __init__(self):
        self.prompt: dict[str, dict] = {}

    def node(self, class_type: str, **inputs) -> Node:
        node_id = str(len(self.prompt) + 1)
        self.prompt[node_id] = {"class_type": class_type, "inputs": inputs}
        return Node(self, node_id)

    def save(self, value: list, name: str) -> Node:
        return self.node("EMSTestSaveTensor", value=value, name=name)


def tiny_sd3(g: Graph, model_name: str = "tiny_sd3.safetensors", seed: int = 0):
    """UNETLoader on the tiny MMDiT file + the test pack's tiny SD3 CLIP and VAE."""
    unet = g.node("UNETLoader", unet_name=model_name, weight_dtype="default")
    clip = g.node("EMSTestTinySD3CLIP", seed=seed)
    vae = g.node("EMSTestTinySD3VAE", seed=seed)
    return unet, clip, vae


def swap_to_tiny_sd3(prompt: dict, unet_name: str = "tiny_sd3.safetensors", seed: int = 0) -> dict:
    """Replace every SD3 loader with the tiny random-weight SD3 (needs the test pack).

    CheckpointLoaderSimple's MODEL/CLIP/VAE become UNETLoader(tiny file) + EMSTestTinySD3CLIP +
    EMSTestTinySD3VAE; separate UNETLoader/TripleCLIPLoader/VAELoader nodes are swapped one by one.
    """
    prompt = copy.deepcopy(prompt)

    def add(class_type: str, **inputs) -> str:
        key = new_id(prompt)
        prompt[key] = {"class_type": class_type, "inputs": inputs}
        return key

    unet = clip = vae = None
    for key in nodes_of(prompt, "CheckpointLoaderSimple"):
        unet = unet or add("UNETLoader", unet_name=unet_name, weight_dtype="default")
        clip = clip or add("EMSTestTinySD3CLIP", seed=seed)
        vae = vae or add("EMSTestTinySD3VAE", seed=seed)
        for slot, target in enumerate((unet, clip, vae)):
            relink(prompt, [key, slot], [target, 0])
        del prompt[key]
    for key in nodes_of(prompt, "UNETLoader"):
        prompt[key]["inputs"].update(unet_name=unet_name, weight_dtype="default")
    for loader, replacement in (("TripleCLIPLoader", "EMSTestTinySD3CLIP"), ("VAELoader", "EMSTestTinySD3VAE")):
        for key in nodes_of(prompt, loader):
            prompt[key] = {"class_type": replacement, "inputs": {"seed": seed}}
    return prompt


# Families whose tiny diffusion model UNETLoader can load (ComfyUI's detection reads their sizes from
# the file); the others are built through their model config class by EMSTestTinyFamilyModel.
DETECTED_FAMILIES = ("sd3", "sd35_large", "sd35_medium")


def swap_to_tiny_family(prompt: dict, family: str, seed: int = 0) -> dict:
    """Replace every model, text-encoder and VAE loader with ``family``'s tiny random-weight model
    (toyworld/tiny_families.py, through the test pack): CheckpointLoaderSimple's three outputs and
    UNETLoader / CLIPLoader / DualCLIPLoader / TripleCLIPLoader / VAELoader one by one."""
    prompt = copy.deepcopy(prompt)
    if family in DETECTED_FAMILIES:
        model = {
            "class_type": "UNETLoader",
            "inputs": {"unet_name": f"tiny_{family}.safetensors", "weight_dtype": "default"},
        }
    else:
        model = {"class_type": "EMSTestTinyFamilyModel", "inputs": {"family": family, "seed": seed}}
    parts = (
        model,
        {"class_type": "EMSTestTinyFamilyCLIP", "inputs": {"family": family, "seed": seed}},
        {"class_type": "EMSTestTinyFamilyVAE", "inputs": {"family": family, "seed": seed}},
    )
    made: dict[int, str] = {}

    def part(slot: int) -> str:
        if slot not in made:
            made[slot] = new_id(prompt)
            prompt[made[slot]] = copy.deepcopy(parts[slot])
        return made[slot]

    for key in nodes_of(prompt, "CheckpointLoaderSimple"):
        for slot in range(3):
            relink(prompt, [key, slot], [part(slot), 0])
        del prompt[key]
    for loaders, slot in (
        (("UNETLoader",), 0),
        (("CLIPLoader", "DualCLIPLoader", "TripleCLIPLoader"), 1),
        (("VAELoader",), 2),
    ):
        for loader in loaders:
            for key in nodes_of(prompt, loader):
                if key in made.values():  # one of ours (UNETLoader for a detected family)
                    continue
                relink(prompt, [key, 0], [part(slot), 0])
                del prompt[key]
    return prompt
