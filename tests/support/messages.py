"""Reading what error messages offer: the provider-file entries a message suggests pasting."""

from __future__ import annotations

import json


def suggested_entries(msg: str) -> list[dict]:
    """Every provider-file entry a message offers to paste ({"providers": …} objects in its text)."""
    decoder, found, at = json.JSONDecoder(), [], msg.find('{"providers"')
    while at >= 0:
        entry, end = decoder.raw_decode(msg, at)
        found.append(entry)
        at = msg.find('{"providers"', end)
    return found
