"""CSDS (the update and its α-scaled drive) against analytic denoisers where the answer is known in closed form."""

import dataclasses
import math

import pytest
import torch

from comfyui_ems.ems.csds import (
    DEFAULTS,
    PAPER,
    RESIDUAL_SPACES,
    CSDSError,
    CSDSParams,
    check_stable,
    csds_edit,
    degree_weights,
    epsilon_from_denoised,
    residual,
)


def P(iterations, constraint, step_start, step_end, residual_space=DEFAULTS["residual_space"]):
    """Steps in latent units: the update as the module doc writes it (image units: test_csds_v3.py)."""
    return CSDSParams(
        iterations=iterations,
        constraint=constraint,
        step_start=step_start,
        step_end=step_end,
        residual_space=residual_space,
        step_units="latent",
    )


def step_sizes(iterations, step_start, step_end):
    return P(iterations, 0.0, step_start, step_end).step_sizes()


class ConstantDenoiser:
    """D(z, c) = m_c whatever z is: ε is then linear in z and CSDS has a closed form."""

    def __init__(self, m_pos, m_attr):
        self.m_pos, self.m_attr, self.calls = m_pos, m_attr, 0

    def __call__(self, z):
        self.calls += 1
        return self.m_pos.expand_as(z), self.m_attr.expand_as(z)


def setup(seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (1, 4, 3, 3)
    return [torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3)]


def closed_form(z0, m_pos, m_attr, sigma, w, etas, lam, alpha=1.0):
    # r = (z − w·m)/σ, u = z − z0:  g = −α(w/σ)(m_attr − m_pos) + λ·u/σ
    #   ⇒  u ← (1 − ηλ/σ)·u + η·α·(w/σ)(m_attr − m_pos)
    d = alpha * w / sigma * (m_attr - m_pos)
    u = torch.zeros_like(z0)
    for eta in etas:
        u = (1 - eta * lam / sigma) * u + eta * d
    return z0 + u


def weight(space, flow, sigma):
    """w in r = (z − w·D)/σ: 1 for the model's output (velocity for flow), a(σ) for the noise ε."""
    return 1.0 - sigma if (space == "noise" and flow) else 1.0


@pytest.mark.parametrize("space", RESIDUAL_SPACES)
@pytest.mark.parametrize("flow", [True, False])
@pytest.mark.parametrize("lam", [0.0, 0.5, 2.0])
def test_matches_the_closed_form(space, flow, lam):
    z0, m_pos, m_attr = setup()
    sigma = 0.8 if flow else 3.0
    den = ConstantDenoiser(m_pos, m_attr)
    out = csds_edit(den, z0, sigma, P(7, lam, 0.1, 0.01, space), flow)
    expected = closed_form(z0, m_pos, m_attr, sigma, weight(space, flow, sigma), step_sizes(7, 0.1, 0.01), lam)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    assert den.calls == 7


def test_velocity_reading_is_one_over_one_minus_sigma_stronger_on_flow_models():
    # At the same z, the ε-residual is (1 − σ)× the velocity residual.
    z0, m_pos, m_attr = setup(5)
    sigma = 0.904
    moves = {
        s: csds_edit(ConstantDenoiser(m_pos, m_attr), z0, sigma, P(1, 0.0, 0.1, 0.1, s), True) - z0
        for s in RESIDUAL_SPACES
    }
    torch.testing.assert_close(moves["noise"], (1 - sigma) * moves["model_output"], rtol=1e-12, atol=1e-12)
    # ε/v-prediction models: both readings are (z − D)/σ.
    same = [
        csds_edit(ConstantDenoiser(m_pos, m_attr), z0, 2.0, P(3, 0.5, 0.1, 0.01, s), False) for s in RESIDUAL_SPACES
    ]
    assert torch.equal(same[0], same[1])


def test_residual_space_default_is_declared_once_and_valid():
    assert DEFAULTS["residual_space"] in RESIDUAL_SPACES
    z0, m_pos, m_attr = setup()
    with pytest.raises(CSDSError, match="residual_space"):
        P(2, 0.5, 0.1, 0.01, "velocity")
    with pytest.raises(CSDSError, match="residual_space"):
        residual(z0, m_pos, 0.5, True, "eps")


@pytest.mark.parametrize("alpha", [-1.0, 0.25, 0.5, 2.0])
def test_degree_scales_the_drive_and_keeps_the_constraint(alpha):
    z0, m_pos, m_attr = setup(6)
    sigma, lam = 0.7, 0.5
    out = csds_edit(
        ConstantDenoiser(m_pos, m_attr),
        z0,
        sigma,
        P(6, lam, 0.1, 0.01, "model_output"),
        True,
        alpha=torch.tensor([alpha]),
    )
    expected = closed_form(z0, m_pos, m_attr, sigma, 1.0, step_sizes(6, 0.1, 0.01), lam, alpha)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_alpha_zero_items_come_back_exactly_and_others_are_graded():
    g = torch.Generator().manual_seed(8)
    w = torch.randn(4, 4, generator=g, dtype=torch.float64)
    z0 = torch.randn(1, 4, 5, 5, generator=g, dtype=torch.float64).repeat(4, 1, 1, 1)
    alphas = torch.tensor([0.0, 0.5, 1.0, -1.0])

    def nonlinear(z):  # any model: the positive and attribute predictions differ and depend on z
        d = torch.tanh(torch.einsum("oc,bchw->bohw", w, z))
        return d, d + 0.3 * torch.sin(z)

    out = csds_edit(nonlinear, z0, 0.8, P(5, 0.5, 0.1, 0.01), True, alpha=alphas)
    assert torch.equal(out[0], z0[0])  # α = 0: no image-side edit at all
    moves = [(out[i] - z0[i]).norm().item() for i in range(4)]
    assert 0 < moves[1] < moves[2]
    direction = (out[2] - z0[2]).flatten()
    assert torch.dot((out[3] - z0[3]).flatten(), direction) < 0  # negative α pushes away
    # no α = the full push (the unscaled update)
    torch.testing.assert_close(csds_edit(nonlinear, z0, 0.8, P(5, 0.5, 0.1, 0.01), True)[2], out[2])


def test_degree_weights_broadcast_and_refuse_a_wrong_length():
    assert torch.equal(degree_weights(None, 3), torch.ones(3, dtype=torch.float64))
    assert torch.equal(degree_weights(torch.tensor([0.5]), 2), torch.tensor([0.5, 0.5], dtype=torch.float64))
    with pytest.raises(CSDSError, match="2 α values for a batch of 3"):
        degree_weights(torch.tensor([0.5, 1.0]), 3)


def test_a_mask_restricts_every_step():
    z0, m_pos, m_attr = setup(9)
    mask = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    mask[..., :, :2] = 1.0
    out = csds_edit(ConstantDenoiser(m_pos, m_attr), z0, 0.8, P(5, 0.5, 0.1, 0.01), True, mask=mask)
    assert torch.equal(out[..., 2:], z0[..., 2:])
    full = csds_edit(ConstantDenoiser(m_pos, m_attr), z0, 0.8, P(5, 0.5, 0.1, 0.01), True)
    torch.testing.assert_close(out[..., :2], full[..., :2])


def test_the_stable_bound_is_lambda_times_step_at_most_sigma():
    check_stable(0.9, P(5, 9.0, 0.1, 0.01))  # 0.9 ≤ 0.9
    with pytest.raises(CSDSError, match=r"exceeds σ = 0\.9.*constraint ≤ 9"):
        check_stable(0.9, P(5, 9.5, 0.1, 0.01))
    check_stable(0.9, P(0, 9.5, 0.1, 0.01))  # no iteration: nothing can diverge
    with pytest.raises(CSDSError, match="finite"):
        P(5, float("nan"), 0.1, 0.01)
    z0, m_pos, m_attr = setup()
    assert torch.equal(csds_edit(ConstantDenoiser(m_pos, m_attr), z0, 0.5, P(0, 50.0, 0.1, 0.01), True), z0)


def test_within_the_bound_the_latent_approaches_its_fixed_point_without_overshooting():
    # Constant denoiser: u ← (1 − ηλ/σ)·u + η·(w/σ)·Δm, fixed point u* = w·Δm/λ. With ηλ ≤ σ
    # every step moves u monotonically toward u* (the factor lies in [0, 1)).
    z0, m_pos, m_attr = setup(10)
    sigma, eta = 0.5, 0.1
    lam = sigma / eta  # the bound itself
    out = csds_edit(ConstantDenoiser(m_pos, m_attr), z0, sigma, P(30, lam, eta, eta, "model_output"), True)
    fixed = (m_attr - m_pos) / lam  # w = 1 on the model_output reading
    torch.testing.assert_close(out - z0, fixed, rtol=1e-9, atol=1e-9)
    with pytest.raises(CSDSError, match="overshoot"):
        csds_edit(ConstantDenoiser(m_pos, m_attr), z0, sigma, P(30, 2.5 * lam, eta, eta), True)


def test_moves_toward_the_attribute():
    z0, m_pos, m_attr = setup(1)
    out = csds_edit(ConstantDenoiser(m_pos, m_attr), z0, 0.6, P(10, 0.0, 0.1, 0.01), True)
    move = (out - z0).flatten()
    toward = (m_attr - m_pos).flatten()
    assert torch.dot(move, toward) > 0
    assert torch.nn.functional.cosine_similarity(move, toward, dim=0) > 0.999


def test_first_step_follows_the_denoised_difference_for_any_model():
    g = torch.Generator().manual_seed(3)
    w_pos, w_attr = torch.randn(4, 4, generator=g), torch.randn(4, 4, generator=g)
    z0 = torch.randn(2, 4, 5, 5, generator=g, dtype=torch.float64)

    def nonlinear(z):
        def mix(w):
            return torch.tanh(torch.einsum("oc,bchw->bohw", w.double(), z))

        return mix(w_pos), mix(w_attr)

    sigma, eta = 0.9, 0.05
    z1 = csds_edit(nonlinear, z0, sigma, P(1, 0.7, eta, eta, "noise"), True)
    d_pos, d_attr = nonlinear(z0)
    torch.testing.assert_close(z1 - z0, eta * (1 - sigma) / sigma * (d_attr - d_pos), rtol=1e-10, atol=1e-12)
    z1 = csds_edit(nonlinear, z0, sigma, P(1, 0.7, eta, eta, "model_output"), True)
    torch.testing.assert_close(z1 - z0, eta / sigma * (d_attr - d_pos), rtol=1e-10, atol=1e-12)


def test_larger_constraint_keeps_the_latent_closer():
    z0, m_pos, m_attr = setup(2)
    dist = [
        float((csds_edit(ConstantDenoiser(m_pos, m_attr), z0, 0.75, P(20, lam, 0.1, 0.01), True) - z0).norm())
        for lam in (0.0, 0.1, 0.5, 1.0)
    ]
    assert dist == sorted(dist, reverse=True) and dist[0] > dist[-1] > 0


def test_zero_iterations_or_zero_steps_do_not_move():
    z0, m_pos, m_attr = setup()
    den = ConstantDenoiser(m_pos, m_attr)
    assert torch.equal(csds_edit(den, z0, 0.5, P(0, 0.5, 0.1, 0.01), True), z0) and den.calls == 0
    assert torch.equal(csds_edit(den, z0, 0.5, P(5, 0.5, 0.0, 0.0), True), z0)


def test_epsilon_inverts_the_forward_process():
    g = torch.Generator().manual_seed(4)
    x0, eps = torch.randn(2, 16, 4, 4, generator=g), torch.randn(2, 16, 4, 4, generator=g)
    sigma = 0.7
    z_flow = (1 - sigma) * x0 + sigma * eps
    torch.testing.assert_close(epsilon_from_denoised(z_flow, x0, sigma, True), eps)
    z_eps = x0 + sigma * eps
    torch.testing.assert_close(epsilon_from_denoised(z_eps, x0, sigma, False), eps)


def test_step_sizes_decay_geometrically():
    etas = step_sizes(5, 0.1, 0.01)
    assert etas[0] == pytest.approx(0.1) and etas[-1] == pytest.approx(0.01)
    ratios = [b / a for a, b in zip(etas, etas[1:])]
    assert all(r == pytest.approx(ratios[0]) for r in ratios) and ratios[0] == pytest.approx(0.1**0.25)
    assert step_sizes(1, 0.1, 0.01) == [0.1] and step_sizes(0, 0.1, 0.01) == []
    assert step_sizes(3, 0.1, 0.0) == [0.1, 0.0, 0.0]


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"step_start": 0.01, "step_end": 0.1}, "must not exceed step_start"),
        ({"iterations": -1}, "iterations must be a whole number ≥ 0"),
        ({"iterations": 2.5}, "iterations must be a whole number ≥ 0"),
        ({"step_start": -0.1, "step_end": -0.2}, "must be ≥ 0"),
        ({"constraint": -1.0}, "constraint λ must be ≥ 0"),
        ({"cfg": float("inf")}, "cfg must be a finite number"),
        ({"cfg": -1.0}, "cfg must be ≥ 0"),
        ({"residual_space": "eps"}, "residual_space must be one of model_output, noise"),
    ],
)
def test_bad_parameters_are_refused_once_with_the_reason(change, fragment):
    with pytest.raises(CSDSError, match=fragment):
        CSDSParams(**change)


def test_defaults_are_one_valid_parameter_object():
    assert CSDSParams().as_dict() == DEFAULTS
    assert list(DEFAULTS) == [
        "cfg",
        "iterations",
        "constraint",
        "step_start",
        "step_end",
        "residual_space",
        "drive",
        "step_units",
        "locality",
    ]
    # the paper's SD3 setting differs from the defaults only in what the paper fixes
    changed = {k for k, v in PAPER.as_dict().items() if v != DEFAULTS[k]}
    assert changed == {"iterations", "step_start", "step_end", "step_units"} and PAPER.step_sizes()[0] == 0.1
    assert PAPER.step_units == "latent"  # the paper gives its steps in the residual's space
    with pytest.raises(dataclasses.FrozenInstanceError):  # validated once: it cannot change afterwards
        PAPER.constraint = 50.0


def test_full_denoise_is_refused_for_flow_models():
    z0, m_pos, m_attr = setup()
    with pytest.raises(CSDSError, match=r"int\(steps / denoise\)"):
        csds_edit(ConstantDenoiser(m_pos, m_attr), z0, 1.0, P(3, 0.5, 0.1, 0.01), True)
    with pytest.raises(CSDSError, match="constraint"):
        csds_edit(ConstantDenoiser(m_pos, m_attr), z0, 0.5, P(3, -1.0, 0.1, 0.01), True)
    # ε-models live in k-diffusion space where σ > 1 is ordinary.
    out = csds_edit(ConstantDenoiser(m_pos, m_attr), z0, 14.6, P(2, 0.5, 0.1, 0.01), False)
    assert math.isfinite(float(out.sum()))
