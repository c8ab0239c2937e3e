"""CSDS (SPEC §2) against analytic denoisers where the answer is known in closed form."""

import math

import pytest
import torch

from ems.csds import CSDSError, csds_edit, epsilon_from_denoised, step_sizes


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


def closed_form(z0, m_pos, m_attr, sigma, a, etas, lam):
    # u = z − z0;  g = −(a/σ)(m_attr − m_pos) + λ·u/σ  ⇒  u ← (1 − ηλ/σ)·u + η·(a/σ)(m_attr − m_pos)
    d = a / sigma * (m_attr - m_pos)
    u = torch.zeros_like(z0)
    for eta in etas:
        u = (1 - eta * lam / sigma) * u + eta * d
    return z0 + u


@pytest.mark.parametrize("flow", [True, False])
@pytest.mark.parametrize("lam", [0.0, 0.5, 2.0])
def test_matches_the_closed_form(flow, lam):
    z0, m_pos, m_attr = setup()
    sigma = 0.8
    den = ConstantDenoiser(m_pos, m_attr)
    out = csds_edit(den, z0, sigma, 7, lam, 0.1, 0.01, flow)
    a = 1 - sigma if flow else 1.0
    expected = closed_form(z0, m_pos, m_attr, sigma, a, step_sizes(7, 0.1, 0.01), lam)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    assert den.calls == 7


def test_moves_toward_the_attribute():
    z0, m_pos, m_attr = setup(1)
    out = csds_edit(ConstantDenoiser(m_pos, m_attr), z0, 0.6, 10, 0.0, 0.1, 0.01, True)
    move = (out - z0).flatten()
    toward = (m_attr - m_pos).flatten()
    assert torch.dot(move, toward) > 0
    assert torch.nn.functional.cosine_similarity(move, toward, dim=0) > 0.999


def test_first_step_follows_the_denoised_difference_for_any_model():
    g = torch.Generator().manual_seed(3)
    w_pos, w_attr = torch.randn(4, 4, generator=g), torch.randn(4, 4, generator=g)
    z0 = torch.randn(2, 4, 5, 5, generator=g, dtype=torch.float64)

    def nonlinear(z):
        mix = lambda w: torch.tanh(torch.einsum("oc,bchw->bohw", w.double(), z))
        return mix(w_pos), mix(w_attr)

    sigma, eta = 0.9, 0.05
    z1 = csds_edit(nonlinear, z0, sigma, 1, 0.7, eta, eta, True)
    d_pos, d_attr = nonlinear(z0)
    torch.testing.assert_close(z1 - z0, eta * (1 - sigma) / sigma * (d_attr - d_pos), rtol=1e-10, atol=1e-12)


def test_larger_constraint_keeps_the_latent_closer():
    z0, m_pos, m_attr = setup(2)
    dist = [float((csds_edit(ConstantDenoiser(m_pos, m_attr), z0, 0.75, 20, lam, 0.1, 0.01, True) - z0).norm())
            for lam in (0.0, 0.1, 0.5, 1.0)]
    assert dist == sorted(dist, reverse=True) and dist[0] > dist[-1] > 0


def test_zero_iterations_or_zero_steps_do_not_move():
    z0, m_pos, m_attr = setup()
    den = ConstantDenoiser(m_pos, m_attr)
    assert torch.equal(csds_edit(den, z0, 0.5, 0, 0.5, 0.1, 0.01, True), z0) and den.calls == 0
    assert torch.equal(csds_edit(den, z0, 0.5, 5, 0.5, 0.0, 0.0, True), z0)


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
    assert all(r == pytest.approx(ratios[0]) for r in ratios) and ratios[0] == pytest.approx(0.1 ** 0.25)
    assert step_sizes(1, 0.1, 0.01) == [0.1] and step_sizes(0, 0.1, 0.01) == []
    assert step_sizes(3, 0.1, 0.0) == [0.1, 0.0, 0.0]


@pytest.mark.parametrize("args, fragment", [
    ((3, 0.01, 0.1), "must not exceed step_start"),
    ((-1, 0.1, 0.01), "iterations must be ≥ 0"),
    ((3, -0.1, -0.2), "must be ≥ 0"),
])
def test_bad_steps_are_refused(args, fragment):
    with pytest.raises(CSDSError, match=fragment):
        step_sizes(*args)


def test_full_denoise_is_refused_for_flow_models():
    z0, m_pos, m_attr = setup()
    with pytest.raises(CSDSError, match="denoise < 1"):
        csds_edit(ConstantDenoiser(m_pos, m_attr), z0, 1.0, 3, 0.5, 0.1, 0.01, True)
    with pytest.raises(CSDSError, match="constraint"):
        csds_edit(ConstantDenoiser(m_pos, m_attr), z0, 0.5, 3, -1.0, 0.1, 0.01, True)
    # ε-models live in k-diffusion space where σ > 1 is ordinary.
    out = csds_edit(ConstantDenoiser(m_pos, m_attr), z0, 14.6, 2, 0.5, 0.1, 0.01, False)
    assert math.isfinite(float(out.sum()))
