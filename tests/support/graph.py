"""Build ComfyUI API-format prompts in code: ``g.node("KSampler", model=unet[0], …)``."""

from __future__ import annotations


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
