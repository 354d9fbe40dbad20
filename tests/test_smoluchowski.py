"""Rates from PMF + diffusion (issue 24, the force-field-independent part): the Smoluchowski MFPT
against its exact solution (flat profile) with second-order convergence and against Kramers' high-barrier
limit, detailed balance and the bias's direction, and D(z) from umbrella windows recovered from Brownian
dynamics with a known D (md.testsystems) within NSIGMA_MAX bootstrap errors."""

import numpy as np
import pytest

from ionkinetics.calibrate._smoluchowski import _kramers_high_barrier_per_ps, mean_first_passage_time_ps, site_rates_from_profile
from ionkinetics.md._adaptive import AdaptivePlan
from ionkinetics.md._diffusion import diffusion_profile, window_diffusion
from ionkinetics.md.testsystems import BrownianUmbrellaSampler

NSIGMA_MAX = 4.0


def test_mfpt_on_a_flat_profile_is_exact_and_second_order():
    d = 2e-3  # nm²/ps
    errors = []
    for n in (21, 41, 81):
        z = np.linspace(-1.0, 1.0, n)
        tau = mean_first_passage_time_ps(z, np.zeros(n), d)
        exact = (z + 1.0) * (1.0 - z) / (2 * d)  # (x − a)(b − x)/2D
        errors.append(np.max(np.abs(tau - exact)) / exact.max())
    assert errors[-1] < 1e-10  # the scheme is exact for a flat profile
    # and second order on a curved one: W = 2 cos²(πz/2) between absorbing ends
    ref = None
    errs = []
    for n in (41, 81, 161, 321):
        z = np.linspace(-1.0, 1.0, n)
        tau = mean_first_passage_time_ps(z, 2 * np.cos(np.pi * z / 2) ** 2, d)
        t0 = tau[n // 2]
        errs.append(t0)
    ref = errs[-1]
    e = np.abs(np.array(errs[:-1]) - ref)
    order = np.log2(e[:-1] / e[1:])
    assert np.all(order > 1.8)


def test_escape_over_a_high_barrier_approaches_kramers():
    z = np.linspace(-0.2, 1.2, 2801)
    d = np.full(z.size, 2e-3)
    ratios = []
    for barrier in (6.0, 10.0, 14.0):
        # a well at 0 and a barrier at 0.5 nm: U = barrier·(3s² − 2s³) for 0 ≤ s = z/0.5 ≤ 1, then down to the
        # exit at 1.2 nm; for s < 0 a wall (the same curvature at the well, +50 kT at the left end)
        s = z / 0.5
        right = np.where(s <= 1, barrier * (3 * s**2 - 2 * s**3), barrier * (1 - 3 * (s - 1) ** 2 + 2 * (s - 1) ** 3))
        u = np.where(s < 0, barrier * 3 * s**2 + 2000.0 * s**4, right)
        tau = mean_first_passage_time_ps(z, u, d)
        i_min, i_max = int(np.argmin(np.abs(z))), int(np.argmin(np.abs(z - 0.5)))
        ratios.append((1.0 / tau[i_min]) / _kramers_high_barrier_per_ps(z, u, d, i_min, i_max))
    # Kramers' harmonic limit is within a few per cent of the exact MFPT rate for barriers of 6 kT and more
    assert np.all(np.abs(np.array(ratios) - 1.0) < 0.05), ratios


def test_site_rates_obey_detailed_balance_and_the_bias_direction():
    z = np.linspace(-1.0, 1.0, 401)
    w = -6.0 * np.exp(-(z**2) / (2 * 0.1**2)) + 3.0 * np.exp(-((np.abs(z) - 0.35) ** 2) / (2 * 0.08**2))
    f = 0.5 * (1 + np.tanh(z / 0.2))  # the drop crossed, measured in practice
    kw = dict(charge_e=1.0, field_share=f, reference_area_nm2=2.2)
    r0 = site_rates_from_profile(z, w, 2e-3, v=0.0, **kw)
    assert r0.escape_plus_fraction == pytest.approx(0.5, abs=1e-5)  # a symmetric profile at rest (grid rounding)
    assert r0.trap_per_molar_per_ns == pytest.approx(r0.escape_per_ns * r0.binding_constant_per_molar, rel=1e-12)
    r1 = site_rates_from_profile(z, w, 2e-3, v=0.3, **kw)
    assert r1.escape_plus_fraction > 0.9  # a cation leaves down the field
    assert r1.escape_per_ns > r0.escape_per_ns
    with pytest.raises(ValueError, match=r"field_share must lie in \[0, 1\]"):
        site_rates_from_profile(z, w, 2e-3, v=0.1, charge_e=1.0, field_share=2 * f, reference_area_nm2=2.2)
    with pytest.raises(ValueError, match="z_nm must be a uniform, increasing grid"):
        mean_first_passage_time_ps(z[::-1], w, 2e-3)


@pytest.mark.slow  # 2 x 400 ps of Brownian dynamics at 2.5 fs steps
def test_diffusion_from_windows_recovers_the_known_d():
    plan = AdaptivePlan(sample_every_ps=0.05, k_z_kj_per_mol_nm2=2000.0)
    d_true = 2e-3
    sampler = BrownianUmbrellaSampler(lambda z: 0 * z, lambda z: 0 * z, plan, diffusion_nm2_per_ps=d_true, dt_ps=0.0025, seed=9)
    z, _, _ = sampler.sample((0.3, 0.8), equilibration_ps=5.0, sampling_ps=400.0, start=None)
    windows = [{"z_nm": zz, "z0_nm": z0, "sample_every_ps": 0.05} for zz, z0 in zip(z, (0.3, 0.8), strict=True)]
    prof = diffusion_profile(windows, n_boot=100, seed=1)
    # what the estimator should return on this exact discrete process: Euler–Maruyama steps of dt make z an
    # AR(1) chain, z' = a·z + noise, a = 1 − D·k·dt, stationary variance 2D·dt/(1 − a²); sampled every m
    # steps its lag-one correlation is ρ = a^m and g = (1 + ρ)/(1 − ρ)
    k = plan.k_z_kj_per_mol_nm2 / plan.kt_kj_per_mol
    a, m, dt = 1 - d_true * k * 0.0025, round(0.05 / 0.0025), 0.0025
    var, rho = 2 * d_true * dt / (1 - a * a), a**m
    expected = 2 * var * (1 - rho) / ((1 + rho) * 0.05)
    assert abs(expected - d_true) < 0.01 * d_true  # the estimator's own bias at this sampling is under 1 %
    for w in prof:
        assert w.relaxation_over_interval > 3
        assert abs(w.d_nm2_per_ps - expected) <= NSIGMA_MAX * w.d_err_nm2_per_ps
    with pytest.raises(ValueError, match="z_nm must be at least 20 finite samples"):
        window_diffusion(np.zeros(5), 0.1)


def test_potential_profile_of_a_screened_capacitor_and_its_field_share():
    """Two charged planes (±σ at z = ∓0.5 nm) and the applied field that cancels their field outside, as a
    perfectly screening electrolyte would: φ drops by the bias, all of it between the planes, linearly."""
    from ionkinetics.md._potential import COULOMB_KJ_NM_PER_MOL_E2, field_share, potential_profile

    box = np.array([3.0, 3.0, 6.0])
    xy = np.array([[x, y] for x in (0.5, 1.5, 2.5) for y in (0.5, 1.5, 2.5)])
    dz = 0.02
    z_plus, z_minus = -0.5 + dz / 2, 0.5 - dz / 2  # on bin centres: no smearing
    pos = np.vstack([np.column_stack([xy, np.full(9, z_plus)]), np.column_stack([xy, np.full(9, z_minus)])])
    q = np.concatenate([np.full(9, 0.1), np.full(9, -0.1)])
    sigma = 0.9 / 9.0  # e/nm²
    e_in = 4 * np.pi * COULOMB_KJ_NM_PER_MOL_E2 * sigma  # the planes' field between them, kJ/mol/nm/e
    gap = z_minus - z_plus
    e_app = e_in * gap / box[2]  # cancels the planes' (tin-foil, mean-zero) field outside them
    prof = potential_profile(pos, q, box, efield_kj_per_mol_nm_e=e_app, bin_width_nm=dz)
    assert prof.drop_v * 96.48533212331002 == pytest.approx(e_app * box[2], rel=1e-9)  # the whole bias, E·L_z
    f = field_share(prof, z_lo_nm=-1.5, z_hi_nm=1.5, z_nm=np.array([-1.0, -0.7, 0.0, 0.7, 1.0]))
    np.testing.assert_allclose(f, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-9)
    inside = np.linspace(z_plus + 0.05, z_minus - 0.05, 7)
    np.testing.assert_allclose(field_share(prof, z_lo_nm=-1.5, z_hi_nm=1.5, z_nm=inside), (inside - z_plus) / gap, atol=1e-9)
    with pytest.raises(ValueError, match="must drop between the planes"):
        field_share(potential_profile(pos, np.zeros(18), box), z_lo_nm=-1.5, z_hi_nm=1.5)
