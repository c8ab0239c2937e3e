"""Equal-length tokenization, so that every EMS prompt encodes to the same token shape.

ComfyUI tokenizers return ``{stream: [chunk, …]}`` where each chunk is a list of
``(token_id, weight, …)`` tuples: CLIP streams (``"l"``, ``"g"``) use fixed 77-token chunks and
grow by whole chunks; T5 (``"t5xxl"``) is one chunk whose length follows the prompt.

Equal shapes come from more *real* tokens, never from zeros: missing CLIP chunks are filled with
the encoding of the empty prompt (what a prompt ending in ``BREAK`` gets, and how other UIs pad
the shorter of two prompts), and T5 is padded with its own pad token by the tokenizer's
``<key>_min_length`` option.
"""

from __future__ import annotations

from typing import Mapping

TokenDict = Mapping[str, list]


def chunk_counts(tokens: Mapping[str, TokenDict]) -> dict[str, int]:
    """Most chunks any prompt has, per stream."""
    counts: dict[str, int] = {}
    for per_prompt in tokens.values():
        for stream, chunks in per_prompt.items():
            counts[stream] = max(counts.get(stream, 0), len(chunks))
    return counts


def variable_length_streams(tokens: Mapping[str, TokenDict]) -> dict[str, int]:
    """Streams whose single chunk differs in length between prompts → the longest length."""
    out: dict[str, int] = {}
    streams = {s for per_prompt in tokens.values() for s in per_prompt}
    for stream in streams:
        chunks = [p[stream] for p in tokens.values() if stream in p]
        if all(len(c) == 1 for c in chunks):
            lengths = {len(c[0]) for c in chunks}
            if len(lengths) > 1:
                out[stream] = max(lengths)
    return out


def pad_chunks(tokens: TokenDict, counts: Mapping[str, int], empty: TokenDict) -> dict[str, list]:
    """Append empty-prompt chunks to each multi-chunk stream until it has ``counts[stream]``."""
    out = {}
    for stream, chunks in tokens.items():
        missing = counts.get(stream, len(chunks)) - len(chunks)
        if missing > 0:
            filler = empty[stream][0]
            chunks = list(chunks) + [list(filler) for _ in range(missing)]
        out[stream] = chunks
    return out


def token_shape(tokens: TokenDict) -> dict[str, tuple[int, ...]]:
    """Chunk lengths per stream — equal across prompts means equal encoded shapes."""
    return {stream: tuple(len(c) for c in chunks) for stream, chunks in tokens.items()}
