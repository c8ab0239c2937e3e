"""CSDS v3 options: the target_vs_source drive, step sizes in image units, and locality."""

import pytest
import torch

from comfyui_ems.ems.csds import (
    DEFAULTS,
    DRIVES,
    RESIDUAL_SPACES,
    STEP_UNITS,
    CSDSError,
    CSDSParams,
    check_stable,
    csds_edit,
)


class Constant:
    """D(z, positive) = m_pos, D(z, reference) = m_ref whatever z is."""

    def __init__(self, m_pos, m_ref):
        self.m_pos, self.m_ref = m_pos, m_ref

    def __call__(self, z):
        return self.m_pos.expand_as(z), self.m_ref.expand_as(z)


def tensors(seed=0, shape=(2, 4, 6, 6)):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3)]


def params(**changes):
    base = dict(
        cfg=1.0,
        iterations=1,
        constraint=0.0,
        step_start=0.1,
        step_end=0.1,
        residual_space="model_output",
        step_units="latent",
    )
    return CSDSParams(**{**base, **changes})


def test_the_options_are_validated():
    for bad in ({"drive": "target"}, {"step_units": "pixels"}, {"locality": 1.5}, {"locality": float("nan")}):
        with pytest.raises(CSDSError):
            params(**bad)
    assert DRIVES == ("attribute", "target_vs_source") and STEP_UNITS == ("latent", "image")


@pytest.mark.parametrize("space", RESIDUAL_SPACES)
def test_target_vs_source_moves_along_the_positive_minus_the_source(space):
    """One step, λ = 0: z moves by η·(w/σ)·(D_c̃ − D_c0) — toward the positive, away from the source."""
    z0, m_pos, m_src = tensors()
    sigma = 0.7
    out = csds_edit(Constant(m_pos, m_src), z0, sigma, params(drive="target_vs_source", residual_space=space), True)
    w = 1.0 - sigma if space == "noise" else 1.0
    torch.testing.assert_close(out, z0 + 0.1 * w / sigma * (m_pos - m_src), rtol=1e-12, atol=1e-12)


def test_target_vs_source_is_not_scaled_by_alpha_again_and_alpha_zero_is_exact():
    """The drive carries α through c̃ already; an item at α = 0 comes back bit for bit even if the two
    predictions differ by float noise."""
    z0, m_pos, m_src = tensors()
    p = params(drive="target_vs_source")
    out = csds_edit(Constant(m_pos, m_src), z0, 0.5, p, True, alpha=torch.tensor([0.0, 0.5]))
    assert torch.equal(out[0], z0[0])
    torch.testing.assert_close(out[1], z0[1] + 0.1 / 0.5 * (m_pos - m_src)[1], rtol=1e-12, atol=1e-12)
    # the attribute drive, by contrast, is scaled by α (the degree rule)
    out_attr = csds_edit(Constant(m_pos, m_src), z0, 0.5, params(), True, alpha=torch.tensor([0.0, 0.5]))
    torch.testing.assert_close(out_attr[1], z0[1] + 0.5 * 0.1 / 0.5 * (m_src - m_pos)[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("flow", [True, False])
@pytest.mark.parametrize("space", RESIDUAL_SPACES)
@pytest.mark.parametrize("sigma", [0.3, 0.6, 0.9])
@pytest.mark.parametrize("cfg", [1.0, 3.0, 7.5])
def test_image_units_give_the_same_push_on_the_clean_image_at_every_sigma_cfg_and_space(flow, space, sigma, cfg):
    """With CFG'd predictions D = cfg·δ + base, one step in image units moves the implied clean image
    x̂0 = (z − σ·n)/a(σ) by s·δ, whatever σ, cfg and residual space."""
    z0, delta, base = tensors()
    m_pos, m_attr = base, base + cfg * delta  # the CFG'd difference is cfg × the unguided one
    p = params(cfg=cfg, residual_space=space, step_units="image", step_start=0.2, step_end=0.2)
    out = csds_edit(Constant(m_pos, m_attr), z0, sigma, p, flow)
    a = 1.0 - sigma if flow else 1.0
    torch.testing.assert_close((out - z0) / a, 0.2 * delta, rtol=1e-10, atol=1e-10)


def test_latent_units_push_harder_at_low_sigma_and_high_cfg():
    """What image units fix: the same latent-unit step gives a push ∝ cfg/(σ·a(σ)) on the image."""
    z0, delta, base = tensors()

    def push(sigma, cfg):
        out = csds_edit(
            Constant(base, base + cfg * delta), z0, sigma, params(cfg=cfg, residual_space="model_output"), True
        )
        return float(((out - z0) / (1 - sigma)).norm() / delta.norm())

    assert push(0.5, 7.5) / push(0.5, 3.0) == pytest.approx(2.5)
    assert push(0.5, 3.0) / push(0.9, 3.0) == pytest.approx((0.9 * 0.1) / (0.5 * 0.5))


def test_image_units_are_checked_for_stability_in_latent_units():
    """λ·η_0 ≤ σ holds for the step actually taken: image units at high cfg make small latent steps."""
    p = params(
        cfg=7.5, constraint=10.0, step_start=1.0, step_end=0.1, step_units="image", residual_space="model_output"
    )
    check_stable(0.5, p, True)  # η_0 = 1·0.5·0.5/7.5 = 0.033; 10 × 0.033 ≤ 0.5
    with pytest.raises(CSDSError, match="constraint"):
        check_stable(0.5, params(cfg=0.5, constraint=10.0, step_start=1.0, step_end=0.1, step_units="image"), True)


def test_locality_confines_the_push_to_where_the_drive_is_large():
    """A drive that lives in one corner: with locality, nothing moves far from it; without, everything does."""
    z0 = torch.zeros(1, 4, 8, 8, dtype=torch.float64)
    m_pos = torch.zeros_like(z0)
    m_ref = torch.full_like(z0, 0.01)
    m_ref[..., :2, :2] = 1.0
    plain = csds_edit(Constant(m_pos, m_ref), z0, 0.5, params(), True)
    local = csds_edit(Constant(m_pos, m_ref), z0, 0.5, params(locality=0.5), True)
    assert plain[..., 6:, 6:].abs().min() > 0
    assert torch.equal(local[..., 5:, 5:], z0[..., 5:, 5:])
    torch.testing.assert_close(local[..., 0, 0], plain[..., 0, 0])


def test_zero_cfg_in_image_units_is_no_push_not_a_division_by_zero():
    z0, m_pos, m_ref = tensors()
    out = csds_edit(Constant(m_pos, m_ref), z0, 0.5, params(cfg=0.0, step_units="image"), True)
    assert torch.equal(out, z0)


@pytest.mark.parametrize("units", STEP_UNITS)
def test_the_refusal_names_bounds_that_hold(units):
    """The constraint and step_start the message suggests are exactly the stable edge, in either units."""
    import re

    p = params(cfg=2.0, constraint=4.0, step_start=0.9, step_end=0.09, step_units=units)
    with pytest.raises(CSDSError) as e:
        check_stable(0.3, p, True)
    lam, step = (float(x) for x in re.search(r"constraint ≤ ([\d.]+).*step_start ≤ ([\d.]+)", str(e.value)).groups())
    for ok, scale in ((True, 0.99), (False, 1.02)):
        for changed in (dict(constraint=lam * scale), dict(step_start=step * scale, step_end=step * scale / 10)):
            q = params(**{**p.as_dict(), **changed})
            if ok:
                check_stable(0.3, q, True)
            else:
                with pytest.raises(CSDSError):
                    check_stable(0.3, q, True)


def test_the_default_first_step_on_sd3_is_about_v0_1s():
    """The CHANGELOG's figure: on SD3 at denoise 0.75 (σ ≈ 0.90) and cfg 7.5 the default image-unit
    first step is 0.3·σ/cfg = 0.036 in the residual's space, 1.2× v0.1's latent-unit 0.03."""
    first = CSDSParams().latent_step_sizes(0.9, True)[0]
    assert DEFAULTS["step_units"] == "image" and DEFAULTS["residual_space"] == "noise"
    assert first == pytest.approx(0.036) and first / 0.03 == pytest.approx(1.2)
