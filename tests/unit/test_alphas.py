import pytest

from comfyui_ems.ems.alphas import AlphaOutOfRange, AlphaScheduleError, format_alpha, outside_safe_range, parse_alphas


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0, 0.25, 1", [0.0, 0.25, 1.0]),
        ("0 0.5  1", [0.0, 0.5, 1.0]),
        ("-1; 2", [-1.0, 2.0]),
        ("0:1:5", [0.0, 0.25, 0.5, 0.75, 1.0]),
        ("1:-1:3", [1.0, 0.0, -1.0]),
        (" 0.5:2:1 ", [0.5]),
    ],
)
def test_parse(text, expected):
    assert parse_alphas(text) == pytest.approx(expected)


def test_range_ends_are_exact():
    values = parse_alphas("-1:2:7")
    assert values[0] == -1.0 and values[-1] == 2.0 and len(values) == 7


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty"),
        ("0, abc", "'abc' is not a number"),
        ("0:1", "three parts"),
        ("0:1:2.5", "whole number"),
        ("0:1:0", "whole number"),
        ("0:1:1000", "more than 64"),
        ("nan", "not finite"),
    ],
)
def test_bad_strings_are_rejected_with_the_syntax(text, fragment):
    with pytest.raises(AlphaScheduleError) as e:
        parse_alphas(text)
    assert fragment in str(e.value) and not str(e.value).startswith("EMS")  # the node adds its name


def test_labels_and_safe_range():
    assert [format_alpha(a) for a in (0.0, 0.25, -1.0, 1 / 3, -0.0)] == ["α=0", "α=0.25", "α=-1", "α=0.333", "α=0"]
    assert outside_safe_range([0, 1, 5, -3]) == [5, -3]


@pytest.mark.parametrize("text", ["1e30", "0, 10.5", "-11:0:3", "0:1e39:2"])
def test_alphas_outside_the_text_direction_range_are_refused(text):
    # Same bound as EMS Text Direction's widget (ems/validation.py ALPHA): ±10.
    with pytest.raises(AlphaOutOfRange) as e:
        parse_alphas(text)
    assert str(e.value).startswith("alpha = ") and "-10 … 10" in str(e.value)
    assert parse_alphas("-10, 10") == [-10.0, 10.0]
