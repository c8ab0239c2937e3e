"""Search aliases: every EMS node declares the words people search for ("semantic edit", "svd" …);
a host whose V3 schema has ``search_aliases`` gets them, and the pinned 0.3.64, whose schema has no
such field, registers the very same nodes without them (an unknown keyword would have stopped the
node from registering). In-process, with ComfyUI's own ``io.Schema``."""

from __future__ import annotations

import dataclasses
import types
from importlib import import_module

import pytest

MODULES = [
    "alpha_sweep",
    "csds_latent_edit",
    "encode_prompts",
    "extract_captions",
    "flow_edit",
    "labelled_grid",
    "latent_direction",
    "text_direction",
    "toy_scene",
    "toy_world_loader",
]
EDITING = {"EMSAlphaSweep", "EMSCSDSLatentEdit", "EMSEncodePrompts", "EMSExtractCaptions", "EMSFlowEdit"}
EDITING |= {"EMSLatentDirection", "EMSTextDirection"}


@pytest.fixture(scope="module")
def host():
    from bench.host import setup

    setup(cpu=True)
    from comfy_api.v0_0_2 import io

    schema = import_module("comfyui_ems.nodes.schema")
    node_classes = []
    for name in MODULES:
        module = import_module(f"comfyui_ems.nodes.{name}")
        node_classes += [
            v
            for v in vars(module).values()
            if isinstance(v, type) and issubclass(v, io.ComfyNode) and v is not io.ComfyNode
        ]
    return io, schema, node_classes


def newer_schema(io):
    """io.Schema as hosts after 0.3.64 declare it: the same fields plus search_aliases."""

    @dataclasses.dataclass
    class Schema(io.Schema):
        search_aliases: list = dataclasses.field(default_factory=list)

    return Schema


def test_this_host_registers_every_node_without_the_field(host):
    io, schema, nodes = host
    assert "search_aliases" not in schema.host_fields()  # ComfyUI 0.3.64
    assert {n.define_schema().node_id for n in nodes} >= EDITING | {"EMSLabelledGrid", "EMSToyScene"}


def test_a_host_with_the_field_gets_every_nodes_aliases(host, monkeypatch):
    io, schema, nodes = host
    monkeypatch.setattr(schema, "io", types.SimpleNamespace(Schema=newer_schema(io)))
    declared = {}
    for node in nodes:
        s = node.define_schema()
        declared[s.node_id] = s.search_aliases
        assert len(s.search_aliases) == len(set(s.search_aliases)) > 0, s.node_id
    for node_id in EDITING:
        assert {"semantic edit", "image editing", "fine-grained edit", "sd3 edit"} <= set(declared[node_id]), node_id
    assert "svd" in declared["EMSLatentDirection"]
    assert "flowedit" in declared["EMSFlowEdit"]


def test_aliases_are_dropped_not_refused_where_the_schema_lacks_the_field(host):
    io, schema, _ = host
    plain = schema.schema(node_id="X", search_aliases=["semantic edit"], inputs=[], outputs=[])
    assert isinstance(plain, io.Schema) and not hasattr(plain, "search_aliases")
    newer = schema.schema(
        schema_class=newer_schema(io), node_id="X", search_aliases=["svd", "svd"], inputs=[], outputs=[]
    )
    assert newer.search_aliases == ["svd"]
