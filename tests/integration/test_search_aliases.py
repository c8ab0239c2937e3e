"""Search aliases: every EMS node declares the words people search for ("semantic edit", "svd" …);
a host whose V3 schema has ``search_aliases`` gets them, and the pinned 0.3.64, whose schema has no
such field, registers the very same nodes without them (an unknown keyword would have stopped the
node from registering). In-process, with ComfyUI's own ``io.Schema``."""

from __future__ import annotations

import dataclasses
import json
import os
import types
from importlib import import_module

import pytest

from support.browser import find_chromium

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


# What a host with the field sends: /object_info with each EMS node's search_aliases. 0.3.64 cannot,
# so the page's fetch adds to the real answer exactly what the nodes declare for such a host.
ALIASES_JS = """
(() => {
  const aliases = %s;
  const real = window.fetch.bind(window);
  window.fetch = async (input, init) => {
    const response = await real(input, init);
    const path = new URL(typeof input === 'string' ? input : input.url, location.href).pathname;
    if (path !== '/api/object_info') return response;
    const info = await response.json();
    for (const [id, words] of Object.entries(aliases)) if (info[id]) info[id].search_aliases = words;
    return new Response(JSON.stringify(info), {status: 200, headers: {'Content-Type': 'application/json'}});
  };
})()
"""

# The frontend's own node search (the service the search box uses), from its Pinia store.
SEARCH_JS = """
((queries) => {
  const pinia = document.querySelector('#vue-app').__vue_app__.config.globalProperties.$pinia;
  const search = pinia._s.get('nodeDef').nodeSearchService;
  return Object.fromEntries(queries.map(q => [q, search.searchNode(q).slice(0, 8).map(n => n.name)]));
})
"""
QUERIES = ["semantic edit", "image editing", "fine-grained", "sd3 edit", "svd"]


def search_in_frontend(server, aliases: dict | None) -> dict:
    from support.browser import Chromium
    from support.frontend import open_comfy

    async def script(page):
        if aliases is not None:
            await page.send("Page.addScriptToEvaluateOnNewDocument", source=ALIASES_JS % json.dumps(aliases))
        await open_comfy(page, server)
        return await page.evaluate(f"({SEARCH_JS})({json.dumps(QUERIES)})")

    with Chromium() as browser:
        return browser.run(script)


@pytest.fixture(scope="module")
def frontend_158(tmp_path_factory):
    from support.comfy_server import ComfyServer, prepare_base
    from support.frontend import require_frontend

    static = require_frontend("1.58.1")
    base = prepare_base(tmp_path_factory.mktemp("aliases_base"))
    server = ComfyServer(os.environ["COMFYUI_DIR"], base, extra_args=["--front-end-root", str(static)]).start()
    yield server
    server.stop()


@pytest.mark.skipif(find_chromium() is None, reason="FRONTEND TEST SKIPPED: no Chromium (scripts/install-browser.sh)")
def test_the_newest_frontend_finds_ems_nodes_by_their_aliases(host, monkeypatch, frontend_158):
    """Frontend 1.58.1's node search (name, display name and search_aliases): "semantic edit",
    "image editing", "fine-grained", "sd3 edit" find an EMS node and "svd" finds EMS Latent
    Direction once the host sends the aliases; without them none of these finds an EMS node."""
    io, schema, nodes = host
    monkeypatch.setattr(schema, "io", types.SimpleNamespace(Schema=newer_schema(io)))
    aliases = {s.node_id: s.search_aliases for s in (n.define_schema() for n in nodes)}
    without = search_in_frontend(frontend_158, None)
    found = search_in_frontend(frontend_158, aliases)
    for query in QUERIES:
        assert not [n for n in without[query] if n.startswith("EMS")], (query, without[query])
        assert [n for n in found[query] if n.startswith("EMS")], (query, found[query])
    assert "EMSLatentDirection" in found["svd"]
