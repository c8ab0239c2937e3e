"""The EMS Flow Edit coupling (ems/flow_edit.py) on closed-form stand-ins for the model."""

from __future__ import annotations

import math

import pytest
import torch

from comfyui_ems.ems.flow_edit import (
    DEFAULTS,
    FlowEditError,
    FlowEditParams,
    StepNoise,
    check_schedule,
    coupled_points,
    degree,
    flow_edit,
    locality_weights,
    target_scales,
    velocity,
)

SIGMAS = [0.8, 0.5, 0.25, 0.0]
PLAIN = FlowEditParams(noise_average=1, locality=0.0)  # FlowEdit's coupling alone (with the degree rule)


def linear_model(shift: torch.Tensor, gain: float = 0.5):
    """D(z) = gain·z + shift per point; returns predict(z_tar, z_src, σ) with the target shifted."""

    def predict(z_tar, z_src, sigma):
        return gain * z_tar + shift, gain * z_src, gain * z_tar

    return predict


def x_src(batch=1, seed=0):
    return torch.randn(batch, 4, 6, 6, generator=torch.Generator().manual_seed(seed))


def test_defaults_are_one_valid_parameter_object():
    assert FlowEditParams().as_dict() == DEFAULTS


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"cfg": float("nan")}, "finite"),
        ({"source_cfg": -1.0}, "≥ 0"),
        ({"noise_average": 0}, "whole number"),
        ({"noise_average": 2.5}, "whole number"),
        ({"locality": 1.5}, "0 … 1"),
        ({"drive": -0.1}, "0 … 4"),
    ],
)
def test_bad_parameters_are_refused_once_with_the_reason(change, fragment):
    with pytest.raises(FlowEditError, match=fragment):
        FlowEditParams(**change)


@pytest.mark.parametrize(
    "sigmas, fragment",
    [
        ([0.5], "start and an end"),
        ([1.2, 0.0], "starts at σ = 1.2"),
        ([0.5, 0.6, 0.0], "must not increase"),
        ([0.5, float("nan")], "non-finite"),
        ([0.0, 0.0], "starts at σ = 0"),
    ],
)
def test_bad_schedules_are_refused(sigmas, fragment):
    with pytest.raises(FlowEditError, match=fragment):
        check_schedule(sigmas)


def test_degree_rule_moves_the_target_scale_from_the_source_scale():
    assert target_scales(torch.tensor([0.0, 0.5, 1.0, -0.5, 2.0]), 5, 7.0, 3.0) == [3.0, 5.0, 7.0, 5.0, 7.0]
    assert target_scales(None, 2, 7.0, 3.0) == [7.0, 7.0]  # a plain prompt: the full target scale
    assert degree(torch.tensor([0.25]), 3).tolist() == [0.25] * 3
    with pytest.raises(FlowEditError):
        degree(torch.tensor([0.1, 0.2]), 3)


def test_coupled_points_share_the_noise_and_differ_by_the_edit():
    x, n = x_src(), torch.randn(2, 1, 4, 6, 6)
    edit = x + 0.3
    z_src, z_tar = coupled_points(x, edit, n, 0.6)
    assert z_src.shape == (2, 1, 4, 6, 6)
    torch.testing.assert_close(z_src, 0.4 * x + 0.6 * n)
    torch.testing.assert_close(z_tar - z_src, torch.full_like(z_src, 0.3))


def test_identical_predictions_leave_the_source_exactly():
    x = x_src()
    same = lambda zt, zs, s: (0.5 * zt, 0.5 * zs, None)  # noqa: E731 - the target's model = the source's
    out = flow_edit(same, x, SIGMAS, FlowEditParams(), StepNoise(0, x.shape))
    torch.testing.assert_close(out, x, rtol=0, atol=1e-6)


def test_one_step_matches_the_formula():
    """z_edit += (σ1 − σ0)·[v(z_tar, c̃) − v(z_src, c0)] with v = (z − D)/σ, here D_tar − D_src = shift
    (z_tar = z_src at the first step), so the first step moves by −(σ1 − σ0)·shift/σ0."""
    x, shift = x_src(), torch.full((1, 4, 6, 6), 0.2)
    out = flow_edit(linear_model(shift), x, [0.8, 0.5], PLAIN, StepNoise(0, x.shape))
    torch.testing.assert_close(out - x, -(0.5 - 0.8) * shift / 0.8, rtol=1e-5, atol=1e-6)


def test_items_that_do_not_move_stay_bit_for_bit_and_others_equal_their_single_runs():
    x = x_src().repeat(3, 1, 1, 1)
    shift = torch.randn(3, 4, 6, 6, generator=torch.Generator().manual_seed(4))
    moves = torch.tensor([False, True, True])
    out = flow_edit(linear_model(shift), x, SIGMAS, PLAIN, StepNoise(9, x.shape, [0, 0, 0]), moves=moves)
    assert torch.equal(out[0], x[0])
    for i in (1, 2):
        single = flow_edit(linear_model(shift[i : i + 1]), x[:1], SIGMAS, PLAIN, StepNoise(9, (1, 4, 6, 6)))
        torch.testing.assert_close(out[i : i + 1], single, rtol=1e-6, atol=1e-6)


def test_a_mask_keeps_the_outside_exactly():
    x = x_src()
    mask = torch.zeros(1, 4, 6, 6)
    mask[..., :3] = 1.0
    out = flow_edit(
        linear_model(torch.full((1, 4, 6, 6), 0.3)),
        x,
        SIGMAS,
        FlowEditParams(locality=0.3),
        StepNoise(0, x.shape),
        mask=mask,
    )
    assert torch.equal(out[..., 3:], x[..., 3:]) and (out[..., :3] - x[..., :3]).abs().max() > 1e-3


def test_noise_average_draws_several_noises_per_step_and_calls_once():
    calls = []

    def predict(zt, zs, s):
        calls.append(zt.shape[0])
        return 0.5 * zt + 0.1, 0.5 * zs, None

    x = x_src(batch=2)
    flow_edit(predict, x, SIGMAS, FlowEditParams(noise_average=3), StepNoise(0, x.shape))
    assert calls == [6, 6, 6]


def test_step_noise_follows_batch_index_like_random_noise():
    a = StepNoise(5, (3, 4, 2, 2), [0, 0, 2]).draw(2)
    assert a.shape == (2, 3, 4, 2, 2)
    assert torch.equal(a[:, 0], a[:, 1]) and not torch.equal(a[:, 0], a[:, 2])
    sweep = StepNoise(5, (3, 4, 2, 2), [0, 0, 0]).draw(2)  # EMS Alpha Sweep repeats the index
    single = StepNoise(5, (1, 4, 2, 2)).draw(2)
    assert all(torch.equal(single[:, 0], sweep[:, i]) for i in range(3))  # every sweep item's noise is the single run's
    assert not torch.equal(a[0], a[1])  # fresh noise every step
    g = torch.random.get_rng_state()
    StepNoise(1, (1, 4, 2, 2)).draw(1)
    assert torch.equal(g, torch.random.get_rng_state()), "the global RNG is not touched"


def test_locality_weights_are_one_where_the_velocities_differ_most():
    v = torch.zeros(1, 4, 8, 8)
    v[..., 2:4, 2:4] = 1.0
    w = locality_weights(v, 0.5)
    assert w.shape == (1, 1, 8, 8) and float(w.max()) == 1.0 and float(w.min()) == 0.0
    assert float(w[..., 2, 2]) == 1.0 and float(w[..., 7, 7]) == 0.0
    # one pixel above the square the smoothed d is half the peak: with τ = 0.8 between τ/2 and τ
    assert float(locality_weights(v, 0.8)[..., 1, 2]) == pytest.approx(2 * 0.5 / 0.8 - 1)


def test_the_drive_adds_the_target_minus_source_prediction_at_the_target_point():
    x, shift = x_src(), torch.full((1, 4, 6, 6), 0.2)

    def predict(zt, zs, s):
        return 0.5 * zt + shift, 0.5 * zs, 0.5 * zt  # D(z_tar, c0) without the shift

    base = flow_edit(predict, x, [0.8, 0.5], PLAIN, StepNoise(0, x.shape))
    driven = flow_edit(
        predict, x, [0.8, 0.5], FlowEditParams(noise_average=1, locality=0.0, drive=0.5), StepNoise(0, x.shape)
    )
    torch.testing.assert_close(driven - x, 1.5 * (base - x), rtol=1e-5, atol=1e-6)


def test_velocity_is_the_flow_velocity():
    z, d = torch.ones(1, 1, 1, 1), torch.zeros(1, 1, 1, 1)
    assert math.isclose(float(velocity(z, d, 0.25)), 4.0)
