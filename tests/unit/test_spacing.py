"""Even α steps (ems.spacing) against responses whose change along α is known in closed form."""

from __future__ import annotations

import math

import pytest
import torch

from comfyui_ems.ems.spacing import SpacingError, arc_length, invert, probe_grid, respace


def response(grid, shape, size=(4, 3, 3)):
    """Features moving along one fixed direction by ``shape(α)``: the change from α to α' is
    |shape(α') − shape(α)| times a constant, so equal steps of change are equal steps of shape."""
    direction = torch.randn(size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return torch.stack([shape(a) * direction for a in grid])


def logistic(k=12.0, mid=0.6):
    return lambda a: 1.0 / (1.0 + math.exp(-k * (a - mid)))


def logistic_inverse(fraction, k=12.0, mid=0.6, lo=0.0, hi=1.0):
    f = logistic(k, mid)
    y = f(lo) + fraction * (f(hi) - f(lo))
    return mid - math.log(1.0 / y - 1.0) / k


def test_a_linear_response_keeps_even_alphas():
    grid = probe_grid([0.0, 1.0], 17)
    placed = respace([0.0, 0.25, 0.5, 0.75, 1.0], grid, response(grid, lambda a: 2.0 * a))
    assert placed.alphas == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0], abs=1e-9) and not placed.flat


def test_a_late_jump_moves_the_inner_alphas_to_equal_steps_of_change():
    grid = probe_grid([0.0, 1.0], 129)
    placed = respace([0.0, 0.25, 0.5, 0.75, 1.0], grid, response(grid, logistic()))
    expected = [logistic_inverse(f) for f in (0.25, 0.5, 0.75)]
    assert placed.alphas[0] == 0.0 and placed.alphas[-1] == 1.0  # the ends stay as typed, exactly
    assert placed.alphas[1:-1] == pytest.approx(expected, abs=2e-3)
    assert all(0.5 < a < 0.75 for a in placed.alphas[1:-1])  # where the change happens


def test_the_grid_resolution_bounds_the_error():
    """With 17 probe points the placement is linear between grid points: within one grid step."""
    grid = probe_grid([0.0, 1.0], 17)
    placed = respace([0.0, 0.25, 0.5, 0.75, 1.0], grid, response(grid, logistic()))
    expected = [logistic_inverse(f) for f in (0.25, 0.5, 0.75)]
    assert all(abs(a - e) < 1 / 16 for a, e in zip(placed.alphas[1:-1], expected))


def test_uneven_typed_values_keep_their_shares_of_the_change():
    grid = probe_grid([0.0, 1.0], 129)
    placed = respace([0.0, 0.1, 1.0], grid, response(grid, logistic()))
    assert placed.alphas[1] == pytest.approx(logistic_inverse(0.1), abs=2e-3)


def test_a_decreasing_sweep_and_a_sweep_across_zero():
    grid = probe_grid([1.0, 0.0], 129)
    placed = respace([1.0, 0.5, 0.0], grid, response(grid, logistic()))
    assert placed.alphas[0] == 1.0 and placed.alphas[-1] == 0.0
    assert placed.alphas[1] == pytest.approx(logistic_inverse(0.5), abs=2e-3)
    grid = probe_grid([-1.0, 1.0], 129)
    placed = respace([-1.0, 0.0, 1.0], grid, response(grid, lambda a: a**3))  # cube: half the change each side
    assert placed.alphas[1] == pytest.approx(0.0, abs=2e-3)


def test_no_measured_change_keeps_the_typed_values():
    grid = probe_grid([0.0, 1.0], 9)
    placed = respace([0.0, 0.3, 1.0], grid, torch.ones(9, 2, 2))
    assert placed.flat and placed.alphas == [0.0, 0.3, 1.0]


def test_a_flat_stretch_gets_no_value_inside_it():
    """Nothing changes for α < 0.5: the first inner value lands where the change begins."""
    grid = probe_grid([0.0, 1.0], 129)
    placed = respace([0.0, 0.5, 1.0], grid, response(grid, lambda a: max(0.0, a - 0.5)))
    assert placed.alphas[1] == pytest.approx(0.75, abs=1e-2)


def test_arc_length_and_invert():
    s = arc_length(torch.tensor([[0.0], [1.0], [1.0], [3.0]]))
    assert s.tolist() == [0.0, 1.0, 1.0, 3.0]
    assert invert([0.0, 1.0, 2.0, 3.0], s, [0.5, 1.0, 2.0]) == pytest.approx([0.5, 1.0, 2.5])


@pytest.mark.parametrize("alphas", [[0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
def test_values_that_cannot_be_spaced_are_refused_with_the_fix(alphas):
    with pytest.raises(SpacingError, match="even spacing needs"):
        probe_grid(alphas)


def test_a_non_finite_probe_is_refused():
    with pytest.raises(SpacingError, match="not finite"):
        respace([0.0, 1.0], [0.0, 0.5, 1.0], torch.tensor([[0.0], [float("nan")], [1.0]]))


# -- the automatic range ------------------------------------------------------------------------------

from comfyui_ems.ems.alphas import AlphaScheduleError, parse_alphas, parse_auto  # noqa: E402
from comfyui_ems.ems.spacing import AUTO_STEP, auto_grid, auto_stop  # noqa: E402


def path_response(grid, position):
    """Features at ``position(α)``, a point in a 2-D plane embedded in the latent: the edit moves
    along the first axis, 'breaking' moves along the second."""
    e1 = torch.zeros(2, 4, 4, dtype=torch.float64)
    e2 = torch.zeros(2, 4, 4, dtype=torch.float64)
    e1[0] = 1.0
    e2[1] = 1.0
    return torch.stack([x * e1 + y * e2 for x, y in map(position, grid)])


def test_the_auto_grid_reaches_one_unit_and_the_limit():
    grid = auto_grid(0.0, 1, 3.0)
    assert grid[int(1 / AUTO_STEP)] == 1.0 and grid[-1] == 3.0 and len(grid) == 25
    assert auto_grid(0.5, -1, -2.0)[int(1 / AUTO_STEP)] == -0.5


def test_a_response_that_turns_away_stops_before_the_turn():
    grid = auto_grid(0.0, 1, 3.0)
    stop = auto_stop(grid, path_response(grid, lambda a: (min(a, 1.5), max(0.0, a - 1.5) * 3)))
    assert stop.reason == "turns away" and stop.alpha == 1.5


def test_a_saturating_response_stops_where_it_fades():
    grid = auto_grid(0.0, 1, 3.0)
    stop = auto_stop(grid, path_response(grid, lambda a: (a if a <= 2 else 2 + 0.1 * (a - 2), 0.0)))
    assert stop.reason == "fades" and stop.alpha == 2.0


def test_a_response_that_holds_goes_to_the_end_and_never_stops_before_one_unit():
    grid = auto_grid(0.0, 1, 3.0)
    assert auto_stop(grid, path_response(grid, lambda a: (a, 0.0))).reason == "range end"
    early = auto_stop(grid, path_response(grid, lambda a: (min(a, 0.5), 0.0)))  # nothing after 0.5
    assert early.alpha == 1.0 and early.reason == "fades"


def test_auto_ranges_parse_and_ordinary_schedules_do_not():
    assert parse_auto("0:auto:5").sign == 1 and parse_auto("0 : -auto : 4").sign == -1
    assert parse_auto("0:1:5") is None and parse_auto("0, 1") is None
    with pytest.raises(AlphaScheduleError, match="from 2 to"):
        parse_auto("0:auto:1")
    with pytest.raises(AlphaScheduleError, match="less than one unit"):
        parse_auto("2.5:auto:5")
    with pytest.raises(AlphaScheduleError, match="needs the model"):
        parse_alphas("0:auto:5")
