from comfyui_ems.ems.tokens import chunk_counts, pad_chunks, token_shape, variable_length_streams


def chunk(n, fill):
    return [(fill, 1.0)] * n


def test_missing_clip_chunks_are_filled_with_the_empty_prompt():
    short = {"l": [chunk(77, 1)], "g": [chunk(77, 1)], "t5xxl": [chunk(80, 5)]}
    long = {"l": [chunk(77, 2), chunk(77, 3)], "g": [chunk(77, 2), chunk(77, 3)], "t5xxl": [chunk(130, 6)]}
    empty = {"l": [chunk(77, 9)], "g": [chunk(77, 9)], "t5xxl": [chunk(77, 0)]}
    counts = chunk_counts({"a": short, "b": long})
    assert counts == {"l": 2, "g": 2, "t5xxl": 1}
    padded = pad_chunks(short, counts, empty)
    assert padded["l"][1] == empty["l"][0] and padded["l"][1] is not empty["l"][0]
    assert token_shape(padded)["l"] == token_shape(long)["l"]
    assert short["l"] == [chunk(77, 1)]  # input untouched


def test_variable_length_streams_report_the_longest():
    a = {"l": [chunk(77, 1)], "t5xxl": [chunk(80, 5)]}
    b = {"l": [chunk(77, 1)], "t5xxl": [chunk(130, 6)]}
    assert variable_length_streams({"a": a, "b": b}) == {"t5xxl": 130}
    assert variable_length_streams({"a": a, "b": a}) == {}
