"""The Markov occupancy model against exact answers, another implementation and statistics."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg

import ionkinetics as ik
from conftest import NSIGMA_MAX, assert_allclose
from helpers import make_calibration, xla_compiles
from ionkinetics.kinetics import (
    generator,
    mean_field_scan,
    mean_relaxation_time_ns,
    open_conductance_ps,
    propagators,
    protocols,
    simulate,
    stack_params,
    state_weights,
    steady_state,
    switching_energy,
    transition_matrix,
    transition_rates_per_ns,
)

TWO_STATE = make_calibration()
# K+ at the crown centre and Mg2+ plugging either mouth: four states, a leak, all rate shapes.
FOUR_STATE = make_calibration(
    "crown6:NaCl@1.0+KCl@0.5+MgCl2@0.25",
    dopants=(("K+", "center", 0.08, 0.1, 3e-5, 0.55, 0.0), ("Mg2+", "entrance", 0.05, 0.6, 0.08, 0.3, 0.02)),
)


def two_state_closed_form(cal, v, w0, t_ns):
    trap, escape = (float(x[0]) for x in transition_rates_per_ns(cal.params, v))
    lam = trap + escape
    w_inf = escape / lam
    return w_inf + (w0 - w_inf) * np.exp(-lam * np.asarray(t_ns))


def test_two_state_matches_closed_form_to_1e_10():
    proto = protocols.step(0.5, t_on_ns=10.0, t_off_ns=60.0, duration_ns=200.0)
    tr = simulate(TWO_STATE, proto, dt_ns=0.05)
    w0 = float(steady_state(TWO_STATE.params, 0.0)[0])
    on = (tr.t_ns >= 10) & (tr.t_ns <= 60)
    assert_allclose(tr.w[on], two_state_closed_form(TWO_STATE, 0.5, w0, tr.t_ns[on] - 10), rtol=0, atol=1e-10)
    w60 = tr.w[np.searchsorted(tr.t_ns, 60.0)]
    off = tr.t_ns >= 60
    assert_allclose(tr.w[off], two_state_closed_form(TWO_STATE, 0.0, w60, tr.t_ns[off] - 60), rtol=0, atol=1e-10)
    assert_allclose(tr.w[tr.t_ns <= 10], w0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("v", [-0.4, 0.0, 0.13, 0.5])
def test_generator_conserves_probability_and_steady_state_is_stationary(v):
    q = np.asarray(generator(FOUR_STATE.params, v))
    pi = np.asarray(steady_state(FOUR_STATE.params, v))
    assert_allclose(q.sum(axis=1), 0.0, rtol=0, atol=1e-15)
    assert np.all(q - np.diag(np.diag(q)) >= 0)
    assert_allclose(pi @ q, 0.0, rtol=0, atol=1e-14 * np.abs(q).max())
    assert_allclose(pi.sum(), 1.0, rtol=0, atol=1e-14)


@pytest.mark.parametrize("cal", [TWO_STATE, FOUR_STATE], ids=["2-state", "4-state"])
def test_propagators_match_scipy_expm_and_quadrature(cal):
    v, dt_ns = 0.37, 0.8
    q = np.asarray(generator(cal.params, v))
    p, a = (np.asarray(x) for x in propagators(cal.params, v, dt_ns))
    assert_allclose(p, scipy.linalg.expm(q * dt_ns), rtol=1e-12, atol=1e-14)
    a_quad = scipy.integrate.quad_vec(lambda s: scipy.linalg.expm(q * s), 0.0, dt_ns, epsabs=1e-14, epsrel=1e-12)[0]
    assert_allclose(a, a_quad, rtol=1e-10, atol=1e-13)
    assert_allclose(transition_matrix(cal.params, v, dt_ns), p, rtol=1e-12, atol=1e-14)


def test_probability_conserved_and_exact_whatever_the_step():
    proto = protocols.pulse_train(0.5, width_ns=4.0, period_ns=20.0, count=5, duration_ns=120.0)
    fine = simulate(FOUR_STATE, proto, dt_ns=0.01)
    coarse = simulate(FOUR_STATE, proto, dt_ns=1.0)
    assert_allclose(fine.p.sum(-1), 1.0, rtol=0, atol=1e-12)
    assert np.all(fine.p >= -1e-15)
    # exact piecewise-constant stepping: a 100x coarser grid agrees at the shared times
    shared = np.searchsorted(fine.t_ns, coarse.t_ns)
    assert_allclose(fine.p[shared], coarse.p, rtol=0, atol=1e-11)
    assert_allclose(fine.e_aj[shared], coarse.e_aj, rtol=1e-10, atol=1e-14)


E_PA_NS = 1.602176634e-19 / 1e-9 / 1e-12  # one elementary charge per ns, pA


def gating_vector_numpy(cal, v):
    """The dopants' displacement current per unit occupancy, pA, from the calibration's rate dicts
    (plain numpy, written from the physics, not from the JAX code): each event moves its charge
    across the Bell exponents' electrical distance along its path."""
    x = v / ik.kinetics.thermal_voltage_v(cal.temperature_k)

    def terms(r, kp, dp, km, dm, kmax):
        up, down = r[kp] * np.exp(r[dp] * x), r[km] * np.exp(-r[dm] * x)
        return up * r[kmax] / (up + down + r[kmax]), down * r[kmax] / (up + down + r[kmax])

    j_open, j_blocked = 0.0, []
    for d in cal.dopants:
        t, e = dict(d.trap), dict(d.escape)
        keys_t = ("k_plus_per_ns_per_molar", "delta_plus", "k_minus_per_ns_per_molar", "delta_minus", "k_max_per_ns_per_molar")
        keys_e = ("k_plus_per_ns", "delta_plus", "k_minus_per_ns", "delta_minus", "k_max_per_ns")
        states = [(t, e, +1)] if d.site == "center" else [(t, e, +1), (t, e, -1)]
        for tr, es, sign in states:
            if sign < 0:  # the trans mouth: the cis state's rates mirrored, V -> -V
                tr = {
                    **tr,
                    "k_plus_per_ns_per_molar": tr["k_minus_per_ns_per_molar"],
                    "delta_plus": tr["delta_minus"],
                    "k_minus_per_ns_per_molar": tr["k_plus_per_ns_per_molar"],
                    "delta_minus": tr["delta_plus"],
                }
                es = {
                    **es,
                    "k_plus_per_ns": es["k_minus_per_ns"],
                    "delta_plus": es["delta_minus"],
                    "k_minus_per_ns": es["k_plus_per_ns"],
                    "delta_minus": es["delta_plus"],
                }
            d_cis, d_trans = tr["delta_plus"] + es["delta_minus"], tr["delta_minus"] + es["delta_plus"]
            t_up, t_down = terms(tr, *keys_t)
            e_up, e_down = terms(es, *keys_e)
            j_open += d.molar * (t_up * d_cis - t_down * d_trans)
            j_blocked.append(e_up * d_trans - e_down * d_cis)
    return E_PA_NS * np.array([j_open, *j_blocked])


def test_energy_equals_integral_of_current_times_voltage():
    proto = protocols.step(0.45, t_on_ns=5.0, t_off_ns=25.0, duration_ns=40.0)
    tr = simulate(FOUR_STATE, proto, dt_ns=0.5)
    params = FOUR_STATE.params
    p_on = np.asarray(steady_state(params, 0.0))
    q = np.asarray(generator(params, 0.45))
    weights = np.asarray(state_weights(params))
    g_open = float(open_conductance_ps(params.open, 0.45))
    j = gating_vector_numpy(FOUR_STATE, 0.45)

    def power_aj_per_ns(t):
        p = p_on @ scipy.linalg.expm(q * t)
        return (g_open * (p @ weights) * 0.45 + p @ j) * 0.45 * 1e-3

    exact = scipy.integrate.quad(power_aj_per_ns, 0.0, 20.0, epsabs=1e-15, epsrel=1e-12)[0]
    assert_allclose(switching_energy(tr, 5.0, 25.0), exact, rtol=1e-9, atol=0)
    assert switching_energy(tr, 0.0, 5.0) == 0.0  # no voltage, no energy
    # the trace's current is the carrier's G·V plus the same displacement current
    at = (tr.t_ns > 5.0) & (tr.t_ns < 25.0)
    assert_allclose(tr.i_pa[at], tr.g_ps[at] * 0.45 + tr.p[at] @ j, rtol=1e-12, atol=1e-12)


def test_displacement_charge_of_a_plugging_switch_is_the_electrical_distance():
    """Conservation: an entrance (mouth) site has no steady dopant current, so over a complete
    switch the dopant current integrates to e·|z|·f times the change in cis minus trans plugs."""
    cal = ik.load_calibration("B3N:KCl@1.0+RbCl@0.5")
    dist = cal.dopants[0].electrical_distance
    assert dist is not None and 0 < dist <= 0.5
    proto = protocols.step(0.3, t_on_ns=1.0, t_off_ns=301.0, duration_ns=302.0)
    tr = simulate(cal, proto, dt_ns=0.05)
    i_gate = tr.i_pa - tr.g_ps * tr.v
    on = (tr.t_ns >= 1.0) & (tr.t_ns <= 301.0)
    charge_e = scipy.integrate.trapezoid(i_gate[on], tr.t_ns[on]) / E_PA_NS
    p0, p1 = tr.p[np.searchsorted(tr.t_ns, 1.0)], tr.p[np.searchsorted(tr.t_ns, 301.0)]
    assert abs(i_gate[np.searchsorted(tr.t_ns, 300.0)]) < 1e-9  # steady: no dopant current through a mouth
    expected = dist * ((p1[1] - p0[1]) - (p1[2] - p0[2]))
    assert expected > 0.5 * dist  # most pores plug: the check is not vacuous
    assert_allclose(charge_e, expected, rtol=2e-3, atol=0)  # trapezoid error of the 0.05 ns grid


def test_mean_relaxation_time_two_state_and_integral_definition():
    for v in (0.0, 0.3, 0.5):
        trap, escape = (float(x[0]) for x in transition_rates_per_ns(TWO_STATE.params, v))
        tau = mean_relaxation_time_ns(TWO_STATE.params, v, jnp.array([1.0, 0.0]))
        assert_allclose(tau, 1.0 / (trap + escape), rtol=1e-12, atol=0)
    # four states: tau is the integral of (w - w_inf)/(w0 - w_inf), here by quadrature
    params, v = FOUR_STATE.params, 0.4
    p0 = np.asarray(steady_state(params, 0.0))
    q = np.asarray(generator(params, v))
    w_inf = float(steady_state(params, v)[0])
    integrand = lambda t: ((p0 @ scipy.linalg.expm(q * t))[0] - w_inf) / (p0[0] - w_inf)  # noqa: E731
    quad = scipy.integrate.quad(integrand, 0.0, np.inf, limit=400, epsabs=1e-12)[0]
    assert_allclose(mean_relaxation_time_ns(params, v, jnp.asarray(p0)), quad, rtol=1e-7, atol=0)


@pytest.mark.parametrize("cal", [TWO_STATE, FOUR_STATE], ids=["center", "center+entrance"])
def test_symmetric_system_responds_identically_to_plus_and_minus_v(cal):
    assert cal.symmetric
    v_k = protocols.sine(0.4, frequency_ghz=0.02, duration_ns=100.0, phase_rad=0.3).sample(0.1)
    plus = simulate(cal, v_k, dt_ns=0.1)  # an array starts from the steady state at its first value
    minus = simulate(cal, -v_k, dt_ns=0.1)
    # −V mirrors the membrane: a cis plug becomes a trans plug, every other state maps to itself.
    names = list(cal.state_names)
    mirror = [names.index(n.replace("@cis", "@x").replace("@trans", "@cis").replace("@x", "@trans")) for n in names]
    assert_allclose(plus.p, minus.p[..., mirror], rtol=0, atol=1e-13)
    assert_allclose(plus.i_pa, -minus.i_pa, rtol=1e-12, atol=1e-13)


def test_asymmetric_center_rates_break_the_symmetry():
    cal = FOUR_STATE
    d = cal.dopants[0]
    trap = dict(d.trap, k_minus_per_ns_per_molar=0.0)  # K+ trapped only with the field
    skewed = cal.replace(dopants=[dataclasses.replace(d, trap=trap), cal.dopants[1]])
    assert not skewed.symmetric
    g = ik.conductance(skewed, np.array([0.3, -0.3]))
    assert abs(g[0] - g[1]) > 1e-3 * g.max()


def test_stochastic_mean_and_variance_are_binomial():
    """From all-open, each of N pores is open at t with the mean-field probability p(t):
    n_open(t) ~ Binomial(N, p(t)) exactly. Checked over M independent membranes."""
    n_pores, n_membranes = 200, 400
    proto = protocols.step(0.5, t_on_ns=0.0, t_off_ns=3.0, duration_ns=40.0)
    v_k = np.tile(proto.sample(0.05), (n_membranes, 1))
    p0 = jnp.array([1.0, 0.0])
    mean = simulate(TWO_STATE, proto, dt_ns=0.05, p0=p0)
    noisy = simulate(TWO_STATE, v_k, dt_ns=0.05, p0=p0, n_pores=n_pores, key=jax.random.key(7))
    for t in (0.5, 2.0, 5.0, 20.0, 40.0):
        i = np.searchsorted(mean.t_ns, t)
        p = mean.w[i]
        var = p * (1 - p) / n_pores
        sample = noisy.w[:, i]
        z_mean = (sample.mean() - p) / np.sqrt(var / n_membranes)
        assert abs(z_mean) < NSIGMA_MAX, f"t={t}: mean off by {z_mean:.2f} sigma"
        # sample variance of near-normal data has standard error var*sqrt(2/(M-1))
        z_var = (sample.var(ddof=1) - var) / (var * np.sqrt(2 / (n_membranes - 1)))
        assert abs(z_var) < NSIGMA_MAX, f"t={t}: variance off by {z_var:.2f} sigma"


def test_stochastic_multinomial_four_states_matches_mean_field():
    n_pores, n_membranes = 500, 200
    proto = protocols.pulse_train(0.5, width_ns=3.0, period_ns=10.0, count=3, duration_ns=30.0)
    mean = simulate(FOUR_STATE, proto, dt_ns=0.1)
    # a list of protocols (not raw arrays) so every membrane starts from the protocol's rest state
    noisy = simulate(FOUR_STATE, [proto] * n_membranes, dt_ns=0.1, n_pores=n_pores, key=jax.random.key(3))
    assert_allclose(noisy.p.sum(-1), 1.0, rtol=0, atol=1e-12)
    for i in np.searchsorted(mean.t_ns, [2.0, 9.0, 23.0, 30.0]):
        for s in range(4):
            p = mean.p[i, s]
            se = np.sqrt(max(p * (1 - p), 1e-12) / (n_pores * n_membranes))
            # the initial state is itself a random draw, so the per-state spread is still binomial
            assert abs(noisy.p[:, i, s].mean() - p) < NSIGMA_MAX * se + 1e-12


def test_stochastic_same_key_same_run_and_independent_of_save_every():
    proto = protocols.step(0.5, 5.0, 20.0, duration_ns=40.0)
    a = simulate(FOUR_STATE, proto, 0.1, n_pores=1000, key=jax.random.key(11))
    b = simulate(FOUR_STATE, proto, 0.1, n_pores=1000, key=jax.random.key(11), save_every=4)
    c = simulate(FOUR_STATE, proto, 0.1, n_pores=1000, key=jax.random.key(12))
    assert_allclose(a.p[::4], b.p, rtol=0, atol=0)
    assert not np.array_equal(a.p, c.p)
    assert_allclose(a.p * 1000, np.round(a.p * 1000), rtol=0, atol=1e-9)  # whole pores


def test_batches_equal_single_runs():
    cals = [TWO_STATE, make_calibration(dopants=(("K+", "center", 0.2, 0.3, 1e-4, 0.4, 0.05),))]
    proto = protocols.pulse_train(0.4, 2.0, 10.0, 4, duration_ns=50.0)
    batch = simulate(stack_params([c.params for c in cals]), proto, 0.1)
    for i, cal in enumerate(cals):
        single = simulate(cal, proto, 0.1)
        assert_allclose(batch.p[i], single.p, rtol=0, atol=1e-14)
        assert_allclose(batch.g_ps[i], single.g_ps, rtol=1e-14, atol=0)
    voltages = simulate(TWO_STATE, np.stack([proto.sample(0.1), -proto.sample(0.1)]), 0.1)
    assert_allclose(voltages.w[0], simulate(TWO_STATE, proto.sample(0.1), 0.1).w, rtol=0, atol=1e-14)


def test_simulate_compiles_once_for_equal_shapes():
    proto = protocols.step(0.3, 1.0, 5.0, duration_ns=10.0)
    other = make_calibration(dopants=(("K+", "center", 0.5, 0.2, 1e-3, 0.3, 0.1),))
    simulate(TWO_STATE, proto, 0.05)
    with xla_compiles() as compiled:
        for cal in (TWO_STATE, other, TWO_STATE):
            simulate(cal, protocols.step(0.4, 2.0, 6.0, duration_ns=10.0), 0.05)
        simulate(other, protocols.step(0.1, 1.0, 5.0, duration_ns=20.0), 0.1)  # another dt, same number of steps
    assert compiled == []


def _per_step(monkeypatch):
    """Force simulate's per-step scan (the path every run took before runs, and the one it still
    takes with save_every = 1 or a voltage that moves every few steps)."""
    from ionkinetics.kinetics import _simulate

    monkeypatch.setattr(_simulate, "_runs", lambda *args: None)


@pytest.mark.parametrize(
    "cal",
    # four states compile 8 more programs (16 s): the slow tier, which CI runs; the default tier
    # checks their factors in test_propagator_and_energy_equals_the_van_loan_block
    [TWO_STATE, pytest.param(FOUR_STATE, marks=pytest.mark.slow)],
    ids=["2 states", "4 states"],
)
def test_runs_give_the_per_step_scan(cal, monkeypatch):
    """With save_every > 1 a tabulated drive advances one scan iteration per constant-voltage run
    (P^n and the energy over n steps by repeated squaring, saved times cutting the runs): every field
    of the trace equals the per-step scan's to round-off, for one device, a parameter batch, an
    amplitude sweep on the shared index row, and devices with their own jump times."""
    from ionkinetics.kinetics._simulate import _drive, _runs

    slower = dataclasses.replace(
        cal.params, escape=dataclasses.replace(cal.params.escape, k_plus_per_ns=cal.params.escape.k_plus_per_ns * 0.3)
    )
    train = protocols.pulse_train(0.45, 2.0, 7.0, 6, duration_ns=50.0)
    cases = {
        "one device": (cal, train),
        "parameter batch": (stack_params([cal.params, slower]), train),
        "amplitude sweep": (cal, [protocols.pulse_train(a, 2.0, 7.0, 6, duration_ns=50.0) for a in (0.2, -0.3, 0.5)]),
        "own jump times": (cal, [protocols.pulse_train(0.4, w, 7.0, 6, duration_ns=50.0) for w in (1.05, 2.0, 3.5)]),
    }
    k = cal.params.n_states
    for name, (c, protocol) in cases.items():
        drive = _drive(protocol, 0.05)
        assert drive.steps.ndim == (2 if name == "own jump times" else 1), name
        runs = _runs(drive.steps, 20, 3 * k * (k + 1))
        assert runs is not None and runs.grid.shape[-2:] == (50, 2), name  # 50 saved intervals of <= 2 runs: 100 of 1000 steps
        fast = simulate(c, protocol, 0.05, save_every=20)
        with monkeypatch.context() as m:
            _per_step(m)
            ref = simulate(c, protocol, 0.05, save_every=20)
        assert fast.p.shape == ref.p.shape and fast.p.shape[-2] == 51, name
        assert_allclose(fast.p, ref.p, rtol=0, atol=1e-13)
        assert_allclose(fast.e_aj, ref.e_aj, rtol=1e-12, atol=1e-18)
        assert_allclose(fast.g_ps, ref.g_ps, rtol=1e-12, atol=0)
        assert_allclose(fast.i_pa, ref.i_pa, rtol=1e-12, atol=1e-18)
        assert_allclose(fast.v, ref.v, rtol=0, atol=0)
        assert np.array_equal(fast.ok, ref.ok) and np.all(fast.ok), name


def test_runs_flag_a_device_that_goes_non_finite_as_the_per_step_scan_does(monkeypatch):
    """A parameter gone NaN (a diverged fit) makes the occupancy NaN from the first run on: both paths
    raise, or flag ``ok`` with throw=False, for that device alone."""
    from ionkinetics.kinetics._simulate import _drive, _runs

    params = TWO_STATE.params
    broken = dataclasses.replace(
        params, escape=dataclasses.replace(params.escape, k_plus_per_ns=params.escape.k_plus_per_ns * np.nan)
    )
    both = stack_params([params, broken])
    proto = protocols.pulse_train(0.3, 2.0, 7.0, 3, duration_ns=21.0)
    assert _runs(_drive(proto, 0.05).steps, 10, 12) is not None
    for path in ("runs", "per step"):
        with monkeypatch.context() as m:
            if path == "per step":
                _per_step(m)
            with pytest.raises(FloatingPointError, match=r"1 of 2 devices"):
                simulate(both, proto, 0.05, save_every=10)
            tr = simulate(both, proto, 0.05, save_every=10, throw=False)
        assert tr.ok.tolist() == [True, False], path
        assert np.isnan(tr.p[1, -1]).all(), path


def test_runs_compile_once_when_the_jumps_move():
    """The grid of runs is (saved intervals x the most runs an interval can hold given the jumps'
    spacing) and the pair table is padded to 16: a sweep of jump times, on and off the saved times,
    over calibrations and at another dt with the same number of steps, compiles nothing."""
    from ionkinetics.kinetics._simulate import _drive, _runs

    other = make_calibration(dopants=(("K+", "center", 0.5, 0.2, 1e-3, 0.3, 0.1),))
    first = protocols.step(0.3, 1.0, 5.0, duration_ns=10.0)
    assert _runs(_drive(first, 0.05).steps, 10, 6).grid.shape == (20, 2)  # the runs path, not the per-step scan
    simulate(TWO_STATE, first, 0.05, save_every=10)
    with xla_compiles() as compiled:
        for cal, t_on, t_off in ((other, 2.0, 6.0), (TWO_STATE, 1.05, 7.45), (other, 0.1, 9.95)):
            simulate(cal, protocols.step(0.4, t_on, t_off, duration_ns=10.0), 0.05, save_every=10)
        simulate(other, protocols.step(0.1, 2.1, 5.0, duration_ns=20.0), 0.1, save_every=10)
    assert compiled == []


def _unpadded(monkeypatch):
    """Compile simulate for the run's own number of saved intervals (no bucket, no padding)."""
    from ionkinetics.kinetics import _simulate

    monkeypatch.setattr(_simulate, "_saved_bucket", lambda n_saved: n_saved)


@pytest.mark.parametrize(
    "name",
    [
        "per step, one device",
        # the vmapped per-step scan and the shared-row runs grid: two more compile pairs, slow tier
        pytest.param("per step, parameter batch", marks=pytest.mark.slow),
        pytest.param("runs, amplitude sweep", marks=pytest.mark.slow),
        "runs, own jump times",
        "stochastic",
    ],
)
def test_a_run_padded_to_its_bucket_equals_the_unpadded_run(name, monkeypatch):
    """Issue 27: simulate pads the steps to a power of two of saved intervals (voltage held, padding
    skipped) and cuts the trace back; every field equals the unpadded run's, on the per-step scan
    (one device, a parameter batch), the runs path (amplitude sweep, devices with their own jump
    times) and a stochastic membrane (the same key draws the same pores)."""
    from ionkinetics.kinetics._simulate import _drive, _runs, _saved_bucket

    train = protocols.pulse_train(0.45, 2.0, 7.0, 4, duration_ns=37.0)  # 740 steps: padded to 1024 / 80 to 128
    assert _saved_bucket(740) == 1024 and _saved_bucket(74) == 128
    batch = stack_params([TWO_STATE.params, make_calibration(dopants=(("K+", "center", 0.5, 0.2, 1e-3, 0.3, 0.1),)).params])
    cases = {
        "per step, one device": (TWO_STATE, train, {}),
        "per step, parameter batch": (batch, train, {}),
        "runs, amplitude sweep": (TWO_STATE, [protocols.pulse_train(a, 2.0, 7.0, 4, duration_ns=37.0) for a in (0.2, -0.4)], {}),
        "runs, own jump times": (TWO_STATE, [protocols.pulse_train(0.4, w, 7.0, 4, duration_ns=37.0) for w in (1.05, 3.5)], {}),
        "stochastic": (TWO_STATE, train, {"n_pores": 50, "key": jax.random.key(3)}),
    }
    cal, protocol, options = cases[name]
    save_every = 10 if name.startswith("runs") else 1
    on_runs = _runs(_drive(protocol, 0.05).steps, save_every, 24) is not None
    assert on_runs == name.startswith("runs")
    padded = simulate(cal, protocol, 0.05, save_every=save_every, **options)
    with monkeypatch.context() as m:
        _unpadded(m)
        ref = simulate(cal, protocol, 0.05, save_every=save_every, **options)
    assert padded.t_ns.shape == ref.t_ns.shape == (740 // save_every + 1,)
    for field in ("t_ns", "v", "p", "w", "g_ps", "i_pa", "e_aj"):
        got, want = getattr(padded, field), getattr(ref, field)
        assert got.shape == want.shape, field
        assert_allclose(got, want, rtol=1e-12, atol=1e-15, err_msg=field)
    assert np.array_equal(padded.ok, ref.ok) and np.all(padded.ok)


def test_a_new_duration_or_dt_compiles_nothing_within_a_bucket():
    """Issue 27: after one run, other durations, dts and so numbers of saved points that fall in the
    same power-of-two bucket of saved intervals reuse the compiled program, on the per-step scan
    (save_every = 1) and on the runs path (save_every = 10)."""
    from ionkinetics.kinetics._simulate import _drive, _runs, _saved_bucket

    def step(duration_ns):
        return protocols.step(0.4, 2.4, 20.4, duration_ns=duration_ns)  # jumps on the 0.04, 0.05 and 0.06 ns grids

    sweep = [(34.0, 0.05), (40.0, 0.05), (48.0, 0.05), (30.0, 0.04), (45.0, 0.06), (36.5, 0.05)]  # 680 to 960 steps
    for save_every in (1, 10):
        first = step(33.0)  # 660 steps
        on_runs = _runs(_drive(first, 0.05).steps, save_every, 6) is not None
        assert on_runs == (save_every > 1)
        simulate(TWO_STATE, first, 0.05, save_every=save_every)
        with xla_compiles() as compiled:
            for duration_ns, dt_ns in sweep:
                n_steps = round(duration_ns / dt_ns)
                assert _saved_bucket(n_steps // save_every) == _saved_bucket(660 // save_every)  # one bucket
                tr = simulate(TWO_STATE, step(duration_ns), dt_ns, save_every=save_every)
                assert tr.t_ns[-1] == pytest.approx(duration_ns) and tr.w.shape == (n_steps // save_every + 1,)
        assert compiled == [], save_every


@pytest.mark.parametrize(
    "name",
    ["parameter batch", pytest.param("amplitude sweep", marks=pytest.mark.slow)],  # 2 more compiles: slow tier
)
def test_a_batch_saved_every_step_takes_the_runs_path_and_equals_the_per_step_scan(name, monkeypatch):
    """Issue 27 goal 2: with save_every = 1 a batch of at least ``_BATCH_RUNS`` devices runs the
    device-last run recurrence (one run per saved step; the cheaper loop for a batch) and one device
    keeps the per-step scan; every field equals the per-step scan's to 1e-12, for a parameter batch
    and an amplitude sweep."""
    from ionkinetics.kinetics._simulate import _BATCH_RUNS, _drive, _runs

    def scaled(f):
        return dataclasses.replace(
            TWO_STATE.params,
            escape=dataclasses.replace(TWO_STATE.params.escape, k_plus_per_ns=TWO_STATE.params.escape.k_plus_per_ns * f),
        )

    train = protocols.pulse_train(0.45, 2.0, 7.0, 4, duration_ns=30.0)
    cases = {
        "parameter batch": (stack_params([scaled(f) for f in np.linspace(0.3, 3.0, _BATCH_RUNS)]), train),
        "amplitude sweep": (
            TWO_STATE,
            [protocols.pulse_train(a, 2.0, 7.0, 4, duration_ns=30.0) for a in np.linspace(-0.5, 0.5, _BATCH_RUNS)],
        ),
    }
    steps = _drive(train, 0.05).steps
    assert _runs(steps, 1, 6, n_devices=_BATCH_RUNS) is not None and _runs(steps, 1, 6, n_devices=1) is None
    from ionkinetics.kinetics import _simulate

    def no_per_step_scan(*args, **kwargs):
        raise AssertionError("simulate took the per-step scan")

    cal, protocol = cases[name]
    with monkeypatch.context() as m:
        m.setattr(_simulate, "_run_mean_field", no_per_step_scan)
        fast = simulate(cal, protocol, 0.05)
    with monkeypatch.context() as m:
        _per_step(m)
        ref = simulate(cal, protocol, 0.05)
    assert fast.p.shape == ref.p.shape == (_BATCH_RUNS, 601, 2)
    for field in ("t_ns", "v", "p", "w", "g_ps", "i_pa", "e_aj"):
        assert_allclose(getattr(fast, field), getattr(ref, field), rtol=1e-12, atol=1e-15, err_msg=field)
    assert np.array_equal(fast.ok, ref.ok) and np.all(fast.ok)


def test_runs_gradient_equals_the_per_step_scan_gradient():
    """The run factors (repeated squaring, bit selection) are differentiable: d(final energy)/d(escape
    prefactor) through the runs path equals the per-step scan's gradient."""
    from ionkinetics.kinetics._simulate import _run_mean_field_runs, _runs

    proto = protocols.pulse_train(0.5, 2.0, 8.0, 3, duration_ns=24.0)
    levels, index = np.unique(proto.sample(0.2), return_inverse=True)
    index = index.astype(np.int32)
    runs = _runs(index, 5, 6)
    assert runs is not None
    saved_level = index[np.minimum(np.arange(0, index.size + 1, 5), index.size - 1)]
    base = TWO_STATE.params

    def scaled(scale):
        return dataclasses.replace(base, escape=dataclasses.replace(base.escape, k_plus_per_ns=base.escape.k_plus_per_ns * scale))

    def by_runs(scale):
        out = _run_mean_field_runs(
            scaled(scale),
            runs.grid,
            0.2,
            0.0,
            None,
            levels,
            runs.pair_level,
            runs.pair_length,
            saved_level,
            n_bits=runs.n_bits,
            max_squarings=4,
            batch=(False, False, False, False),
        )
        return out[1][-1, 0]

    def by_steps(scale):
        params = scaled(scale)
        return mean_field_scan(
            params, jnp.asarray(index), 0.2, steady_state(params, 0.0), save_every=5, levels=jnp.asarray(levels)
        )[1][-1]

    assert_allclose(by_runs(1.0), by_steps(1.0), rtol=1e-13, atol=0)
    assert_allclose(jax.grad(by_runs)(1.0), jax.grad(by_steps)(1.0), rtol=1e-10, atol=0)


def test_gradient_through_the_scan_matches_finite_differences():
    v_k = jnp.asarray(protocols.pulse_train(0.5, 2.0, 8.0, 3, duration_ns=24.0).sample(0.2))
    base = TWO_STATE.params

    def final_energy(scale):
        params = dataclasses.replace(
            base, escape=dataclasses.replace(base.escape, k_plus_per_ns=base.escape.k_plus_per_ns * scale)
        )
        p0 = steady_state(params, 0.0)
        return mean_field_scan(params, v_k, 0.2, p0)[1][-1]

    grad = jax.grad(final_energy)(1.0)
    h = 1e-5
    fd = (final_energy(1.0 + h) - final_energy(1.0 - h)) / (2 * h)
    assert_allclose(grad, fd, rtol=1e-6, atol=0)


def test_bad_inputs_raise_clear_errors():
    proto = protocols.step(0.5, 1.03, 5.0, duration_ns=10.0)
    with pytest.raises(ValueError, match=r"jump at t=1\.03"):
        simulate(TWO_STATE, proto, 0.05)
    with pytest.raises(ValueError, match="dt_ns must divide"):
        simulate(TWO_STATE, protocols.dc(0.1, 1.0), 0.3)
    with pytest.raises(ValueError, match="needs an explicit key"):
        simulate(TWO_STATE, protocols.dc(0.1, 1.0), 0.1, n_pores=10)
    with pytest.raises(ValueError, match="n_pores must be an integer >= 1"):
        simulate(TWO_STATE, protocols.dc(0.1, 1.0), 0.1, n_pores=0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="dt_ns must be a number > 0"):
        simulate(TWO_STATE, protocols.dc(0.1, 1.0), -0.1)
    with pytest.raises(ValueError, match="p0 must be non-negative and sum to 1"):
        simulate(TWO_STATE, protocols.dc(0.1, 1.0), 0.1, p0=[0.5, 0.6])
    with pytest.raises(ValueError, match="save_every must be a positive integer dividing"):
        simulate(TWO_STATE, protocols.dc(0.1, 1.0), 0.1, save_every=3)
    with pytest.raises(ValueError, match="batch sizes of cal, protocol and p0 must agree"):
        simulate(stack_params([TWO_STATE.params] * 2), np.zeros((3, 10)), 0.1)
    with pytest.raises(ValueError, match="same number of states"):
        stack_params([TWO_STATE.params, FOUR_STATE.params])
    with pytest.raises(ValueError, match="t1_ns must be >= t0_ns"):
        switching_energy(simulate(TWO_STATE, protocols.dc(0.1, 1.0), 0.1), 0.5, 0.2)
    with pytest.raises(TypeError, match="cal must be a Calibration or KineticParams"):
        simulate("crown6", protocols.dc(0.1, 1.0), 0.1)


def test_protocol_shapes_and_errors():
    pt = protocols.pulse_train(0.5, width_ns=2.0, period_ns=5.0, count=3, t_start_ns=1.0, duration_ns=20.0)
    v = pt.sample(0.5)
    assert v.shape == (40,)
    on = np.nonzero(v)[0] * 0.5
    assert_allclose(on, [1.0, 1.5, 2.0, 2.5, 6.0, 6.5, 7.0, 7.5, 11.0, 11.5, 12.0, 12.5], rtol=0, atol=0)
    s = protocols.sine(0.2, frequency_ghz=0.25, duration_ns=4.0)
    assert_allclose(s.sample(1.0), 0.2 * np.sin(2 * np.pi * 0.25 * np.array([0.5, 1.5, 2.5, 3.5])), rtol=0, atol=1e-15)
    sm = protocols.sampled([0.0, 1.0, 3.0], [0.1, -0.2])
    assert_allclose(sm.sample(0.5), [0.1, 0.1, -0.2, -0.2, -0.2, -0.2], rtol=0, atol=0)
    with pytest.raises(ValueError, match="width_ns must be < period_ns"):
        protocols.pulse_train(0.5, width_ns=5.0, period_ns=5.0, count=2)
    with pytest.raises(ValueError, match="count must be an integer >= 1"):
        protocols.pulse_train(0.5, 1.0, 5.0, count=0)
    with pytest.raises(ValueError, match="t_on_ns < t_off_ns"):
        protocols.step(0.5, 10.0, 5.0)
    with pytest.raises(ValueError, match="needs duration_ns"):
        protocols.step(0.5, 10.0)
    with pytest.raises(ValueError, match="frequency_ghz must be > 0"):
        protocols.sine(0.1, 0.0, 10.0)
    with pytest.raises(ValueError, match="one more entry than v"):
        protocols.sampled([0.0, 1.0], [0.1, 0.2])


def test_propagator_table_for_few_voltages_equals_per_step_propagators():
    proto = protocols.pulse_train(0.45, width_ns=2.0, period_ns=5.0, count=6, duration_ns=40.0)
    v_k = proto.sample(0.1)
    levels, idx = np.unique(v_k, return_inverse=True)
    p0 = steady_state(FOUR_STATE.params, 0.0)
    direct = mean_field_scan(FOUR_STATE.params, jnp.asarray(v_k), 0.1, p0)
    table = mean_field_scan(FOUR_STATE.params, jnp.asarray(idx), 0.1, p0, levels=jnp.asarray(levels))
    assert levels.size == 2
    for a, b in zip(direct, table, strict=True):
        assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def test_float32_mode_runs_the_kinetic_core_to_float32_accuracy(tmp_path):
    """The precision policy's opt-out: with IONKINETICS_X64=0 JAX stays at float32, and a fresh
    interpreter still simulates (renormalised occupancy, a float32 tolerance) to ~1e-5 of float64."""
    import json
    import os
    import subprocess
    import sys

    code = (
        "import json, ionkinetics as ik\n"
        "proto = ik.protocols.step(0.5, t_on_ns=20.0, t_off_ns=120.0, duration_ns=400.0)\n"
        "tr = ik.simulate('crown6:NaCl@1.0+KCl@0.5', proto, dt_ns=0.05)\n"
        "runs = ik.simulate('crown6:NaCl@1.0+KCl@0.5', proto, dt_ns=0.05, save_every=400)\n"  # constant-voltage runs
        "print(json.dumps({'dtype': str(tr.w.dtype), 'w': tr.w[::400].tolist(), 'e': float(tr.e_aj[-1]),\n"
        "                  'runs_dtype': str(runs.w.dtype), 'runs_w': runs.w.tolist(), 'runs_e': float(runs.e_aj[-1])}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_", "IONKINETICS_"))}
    env["IONKINETICS_X64"] = "0"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=True)
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["dtype"] == "float32"
    ref = ik.simulate("crown6:NaCl@1.0+KCl@0.5", protocols.step(0.5, t_on_ns=20.0, t_off_ns=120.0, duration_ns=400.0), 0.05)
    assert_allclose(got["w"], ref.w[::400], rtol=0, atol=1e-5)
    assert_allclose(got["e"], ref.e_aj[-1], rtol=1e-4, atol=0)
    assert got["runs_dtype"] == "float32"
    assert_allclose(got["runs_w"], ref.w[::400], rtol=0, atol=1e-5)
    assert_allclose(got["runs_e"], ref.e_aj[-1], rtol=1e-4, atol=0)


def test_a_batch_of_different_amplitudes_uses_per_device_level_tables_and_matches_single_runs():
    """Issue 16: devices with their own voltages (50 step amplitudes) take the propagator-table path
    (one table per device, found from change points), and each device equals its own single run."""
    from ionkinetics.kinetics._simulate import _drive, _level_tables

    protos = [protocols.step(a, t_on_ns=2.0, t_off_ns=8.0, duration_ns=10.0) for a in np.linspace(0.1, 0.5, 50)]
    v_k = np.stack([p.sample(0.05) for p in protos])
    index, table = _level_tables(v_k)
    assert table is not None and table.shape == (50, 2) and index.shape == (200,)  # same switching steps: one row
    assert_allclose(np.take_along_axis(np.asarray(table), np.broadcast_to(index, v_k.shape), axis=1), v_k, rtol=0, atol=0)
    # both signs and another step time: the rows differ, so each device keeps its own index row
    mixed = protos[:25] + [protocols.step(-a, t_on_ns=3.0, t_off_ns=8.0, duration_ns=10.0) for a in np.linspace(0.1, 0.5, 25)]
    v_mixed = np.stack([p.sample(0.05) for p in mixed])
    index_m, table_m = _level_tables(v_mixed)
    assert index_m.shape == (50, 200)
    assert_allclose(np.take_along_axis(np.asarray(table_m), np.asarray(index_m), axis=1), v_mixed, rtol=0, atol=0)
    # a list that jumps on the same steps, amplitudes of both signs, is read per segment, never per step
    sweep = protos[:25] + [protocols.step(-a, t_on_ns=2.0, t_off_ns=8.0, duration_ns=10.0) for a in np.linspace(0.1, 0.5, 25)]
    drive = _drive(sweep, 0.05)
    assert drive.steps.shape == (200,) and drive.levels.shape == (50, 2) and drive.n_devices == 50
    assert_allclose(drive.volts_at(np.arange(200)), np.stack([p.sample(0.05) for p in sweep]), rtol=0, atol=0)
    assert_allclose(drive.v_rest, [p.v_rest_v for p in sweep], rtol=0, atol=0)
    # pulse trains that differ only in amplitude and base voltage (the first flat: amplitude = base)
    # share one on/off pattern built from their fields, no protocol sampled: the same voltages
    trains = [
        protocols.pulse_train(a, 1.0, 3.0, 3, duration_ns=10.0, v_base=b) for a, b in ((0.0, 0.0), (0.4, 0.1), (-0.2, 0.05))
    ]
    drive = _drive(trains, 0.05)
    assert drive.steps.shape == (200,) and drive.levels.shape == (3, 2)
    assert_allclose(drive.volts_at(np.arange(200)), np.stack([p.sample(0.05) for p in trains]), rtol=0, atol=0)
    assert_allclose(drive.v_rest, [0.0, 0.1, 0.05], rtol=0, atol=0)
    for batch_protos in (protos, mixed, sweep):
        batch = simulate(FOUR_STATE, batch_protos, 0.05)
        for i in (0, 17, 30, 49):
            one = simulate(FOUR_STATE, batch_protos[i], 0.05)
            assert_allclose(batch.p[i], one.p, rtol=0, atol=1e-14)
            assert_allclose(batch.e_aj[i], one.e_aj, rtol=1e-13, atol=1e-16)
    many = np.tile(np.linspace(-0.5, 0.5, 300), (2, 1))  # more levels than steps allow: per-step path
    assert _level_tables(many)[1] is None


def _python_calls(fn) -> int:
    """The number of Python function calls (generator resumptions included) ``fn()`` makes."""
    import sys

    count = 0

    def profile(_frame, event, _arg):
        nonlocal count
        count += event == "call"

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


def _step_sweep(n, shift=0.0):
    """``n`` steps of amplitudes of both signs, each on its own base voltage, switching on the same steps."""
    amps, bases = np.linspace(-0.4, 0.45, n) + shift, np.linspace(-0.05, 0.05, n)
    return [protocols.step(float(a), 2.0, 6.0, duration_ns=10.0, v_base=float(b)) for a, b in zip(amps, bases, strict=True)]


def test_a_step_voltage_batch_equals_its_protocols_run_one_by_one():
    """Issue 27 goal 3: a batch of step protocols, read from its fields into one shared index row and
    an (off, on) table per device, gives device by device the Trace of that protocol run alone:
    every field to 1e-12."""
    from ionkinetics.kinetics._simulate import _drive

    batch_protos = _step_sweep(8)
    drive = _drive(batch_protos, 0.05)
    assert drive.steps.shape == (200,) and drive.levels.shape == (8, 2)
    batch = ik.simulate(TWO_STATE, batch_protos, 0.05, save_every=5)
    for i, proto in enumerate(batch_protos):
        one = ik.simulate(TWO_STATE, proto, 0.05, save_every=5)
        assert_allclose(batch.t_ns, one.t_ns, rtol=0, atol=0)
        assert_allclose(batch.v[i], one.v, rtol=0, atol=0)
        for field in ("p", "w", "g_ps", "i_pa", "e_aj"):
            got, want = getattr(batch, field)[i], getattr(one, field)
            assert_allclose(got, want, rtol=1e-12, atol=1e-12 * float(np.max(np.abs(want))))
        assert bool(batch.ok[i]) and bool(one.ok)


@pytest.mark.slow  # two batch sizes compile two programs (~25 s at load 7); CI runs it
def test_a_step_voltage_batch_runs_no_python_per_protocol_and_compiles_once_per_size():
    """Issue 27 goal 3, structurally: simulate makes as many Python function calls for 64 step
    protocols as for 8 (the host reads their fields by C loops: no Python code per protocol), and a
    new batch of the same size compiles nothing."""
    runs = {n: (_step_sweep(n), _step_sweep(n, 0.01)) for n in (8, 64)}
    for first, _ in runs.values():
        ik.simulate(TWO_STATE, first, 0.05, save_every=5)  # compile each batch size once
    with xla_compiles() as compiled:
        calls = {n: _python_calls(lambda p=p: ik.simulate(TWO_STATE, p, 0.05, save_every=5)) for n, (_, p) in runs.items()}
    assert compiled == []  # new amplitudes, same batch size: the compiled program is reused
    assert calls[64] == calls[8], calls


@pytest.mark.slow  # one more stochastic compile (the default tier stays under 5 minutes); CI runs it
def test_a_stochastic_amplitude_sweep_on_the_shared_index_row_equals_its_single_runs():
    """Pulse trains of both signs jumping on the same steps share one index row; each device of the
    stochastic batch draws from its own split key, so it equals the single run with that key exactly."""
    from ionkinetics.kinetics._simulate import _drive

    protos = [protocols.pulse_train(a, 2.0, 7.0, 5, duration_ns=40.0) for a in (0.3, -0.4, 0.5)]
    assert _drive(protos, 0.05).steps.shape == (800,)
    key = jax.random.key(7)
    batch = simulate(TWO_STATE, protos, 0.05, n_pores=1000, key=key, save_every=10)
    for i, k in enumerate(jax.random.split(key, len(protos))):
        one = simulate(TWO_STATE, protos[i], 0.05, n_pores=1000, key=k, save_every=10)
        assert_allclose(batch.p[i], one.p, rtol=0, atol=0)
        assert_allclose(batch.e_aj[i], one.e_aj, rtol=0, atol=0)
        assert_allclose(batch.v[i], one.v, rtol=0, atol=0)


def test_propagator_and_energy_equals_the_van_loan_block():
    """The (K+1) Van Loan exponential with a scaled weights column gives P and A·weights of the 2K
    block (:func:`propagators`), with the squarings capped at ``max_squarings_for``, for weights of
    any scale (zero included) and steps up to 1 ns."""
    from ionkinetics.kinetics import propagator_and_energy

    params = FOUR_STATE.params
    rng = np.random.default_rng(3)
    for dt_ns in (0.01, 0.05, 1.0):
        cap = ik.kinetics.max_squarings_for(params, dt_ns)
        for v in (-0.8, 0.0, 0.35, 0.8):
            prop, integral = propagators(params, v, dt_ns)
            for scale in (0.0, 1e-6, 1.0, 1e6):
                weights = jnp.asarray(rng.normal(size=4) * scale)
                p, c = propagator_and_energy(params, v, dt_ns, weights, max_squarings=cap)
                assert_allclose(p, prop, rtol=0, atol=1e-14)  # two Padé schemes: round-off of the squarings
                assert_allclose(c, integral @ weights, rtol=1e-12, atol=1e-300)


def test_capped_squarings_give_the_same_propagator_at_any_voltage():
    """The circuit solver caps the expm's squaring loop at ``max_squarings_for``: the cap bounds
    ‖Q·dt‖₁ at every voltage (rates saturate at their ceilings), so the result is bit-identical."""
    for dt_ns in (0.01, 0.05, 1.0):
        cap = ik.kinetics.max_squarings_for(FOUR_STATE.params, dt_ns)
        assert cap < 40
        for v in (-3.0, -0.5, 0.0, 0.2, 0.5, 3.0):
            q = np.asarray(generator(FOUR_STATE.params, v)) * dt_ns
            assert np.abs(q).sum(axis=0).max() <= 0.95 * 2.0**cap  # the bound the cap is built on
            assert np.array_equal(
                np.asarray(transition_matrix(FOUR_STATE.params, v, dt_ns, max_squarings=cap)),
                np.asarray(transition_matrix(FOUR_STATE.params, v, dt_ns)),
            )
