"""The pack's node schemas, with what only newer hosts read.

``search_aliases`` (extra words the node search matches) joined ComfyUI's V3 ``io.Schema`` after
0.3.64; there, an unknown keyword would stop the node from registering at all. So the aliases are
passed only where the host's ``io.Schema`` declares the field, and a host without it registers the
same node without them.
"""

from __future__ import annotations

import dataclasses

from comfy_api.v0_0_2 import io

# What people type when they look for an editing node: every EMS editing node answers to these.
EDITING_WORDS = ("semantic edit", "image editing", "fine-grained edit", "sd3 edit", "edit strength")


def host_fields(schema_class=None) -> set[str]:
    return {f.name for f in dataclasses.fields(schema_class or io.Schema)}


def schema(*, search_aliases=(), schema_class=None, **fields) -> io.Schema:
    """``io.Schema(**fields)``, plus ``search_aliases`` where the host's schema has that field."""
    schema_class = schema_class or io.Schema
    if search_aliases and "search_aliases" in host_fields(schema_class):
        fields["search_aliases"] = list(dict.fromkeys(search_aliases))
    return schema_class(**fields)
