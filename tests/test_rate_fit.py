"""Censored maximum-likelihood Bell-law fits recover known rates from synthetic dwell times."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from conftest import NSIGMA_MAX
from ionkinetics.calibrate._rate_fit import (
    DwellData,
    compare_zero_bias,
    diffusive_attempt_frequency_per_ns,
    dwell_data_from_estimates,
    dwell_data_from_intervals,
    eyring_prefactor_per_ns,
    fit_bell_rates,
    kramers_rate_per_ns,
)
from ionkinetics.kinetics._params import BellRate, thermal_voltage_v
from ionkinetics.kinetics._rates import bell_rate_per_ns
from ionkinetics.md._analysis import RateEstimate

V_T = thermal_voltage_v(298.15)
BIASES_V = np.array([-0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3])


def true_rate(v, k_plus, d_plus, k_minus, d_minus, k_max=math.inf):
    kb = k_plus * np.exp(d_plus * v / V_T) + k_minus * np.exp(-d_minus * v / V_T)
    return kb if math.isinf(k_max) else 1.0 / (1.0 / kb + 1.0 / k_max)


def simulate_intervals(rng, rate, *, n_runs, run_ns, other_rate):
    """Per-interval (event, exposure, completed) for the state of interest in runs of ``run_ns``.

    Each run starts in the state; dwells ~ Exp(rate); after an event the pore spends Exp(other_rate)
    in the other state and comes back. An interval cut by the end of a run is right-censored:
    exposure but no event."""
    events, exposures = [], []
    for _ in range(n_runs):
        t = 0.0
        while t < run_ns:
            tau = rng.exponential(1.0 / rate)
            if t + tau >= run_ns:
                events.append(0.0)
                exposures.append(run_ns - t)
                break
            events.append(1.0)
            exposures.append(tau)
            t += tau + rng.exponential(1.0 / other_rate)
    return np.array(events), np.array(exposures)


def synthetic(rng, rates, *, n_runs=20, run_ns=200.0, other_rate=0.5):
    ev, ex = zip(*(simulate_intervals(rng, k, n_runs=n_runs, run_ns=run_ns, other_rate=other_rate) for k in rates), strict=True)
    return ev, ex


def assert_within(fit, truth, se):
    for key, value in truth.items():
        z = abs(fit.params[key] - value) / se[key]
        assert z < NSIGMA_MAX, f"{key}: fitted {fit.params[key]:.4g} vs true {value:.4g}, {z:.1f} sigma"


def test_two_polarity_recovers_known_parameters():
    rng = np.random.default_rng(20260501)
    truth = {"k_plus_per_ns": 0.02, "delta_plus": 0.4, "k_minus_per_ns": 0.05, "delta_minus": 0.3}
    rates = true_rate(BIASES_V, *truth.values())
    ev, ex = synthetic(rng, rates)
    data = dwell_data_from_intervals(BIASES_V, ev, ex)
    fit = fit_bell_rates(data, ion="K+", model="two_polarity", n_bootstrap=100, seed=7)
    assert fit.at_bound == ()
    assert_within(fit, truth, fit.se_laplace)
    assert_within(fit, truth, fit.se_bootstrap)
    for key in truth:  # the two error estimates agree to within a factor of two
        assert 0.5 < fit.se_bootstrap[key] / fit.se_laplace[key] < 2.0, key
    # the fitted law, written as a calibration rate dict, is the kinetic core's law
    d = fit.to_rate_dict()
    rate = BellRate(
        *(jnp.asarray([d[k]]) for k in ("k_plus_per_ns", "delta_plus", "k_minus_per_ns", "delta_minus", "k_max_per_ns"))
    )
    for v in BIASES_V:
        np.testing.assert_allclose(float(bell_rate_per_ns(rate, v, V_T)[0]), fit.rate_per_ns([v])[0], rtol=1e-9)


def test_censoring_is_handled_and_the_naive_estimate_is_biased():
    """Runs short against 1/k: dropping censored exposure overestimates k; the censored MLE does not."""
    rng = np.random.default_rng(11)
    k0, delta = 0.05, 0.5
    rates = k0 * np.cosh(delta * BIASES_V / V_T)
    ev, ex = synthetic(rng, rates, n_runs=200, run_ns=10.0, other_rate=5.0)
    data = dwell_data_from_intervals(BIASES_V, ev, ex)
    fit = fit_bell_rates(data, ion="Na+", model="center", bootstrap=None)
    assert_within(fit, {"k0_per_ns": k0, "delta": delta}, fit.se_laplace)

    # naive: events over the time of completed dwells only (censored intervals dropped)
    naive = DwellData(
        v_v=BIASES_V,
        n_events=np.array([e.sum() for e in ev]),
        exposure_ns=np.array([x[e > 0].sum() for e, x in zip(ev, ex, strict=True)]),
    )
    naive_fit = fit_bell_rates(naive, ion="Na+", model="center", bootstrap=None)
    z = (naive_fit.params["k0_per_ns"] - k0) / naive_fit.se_laplace["k0_per_ns"]
    assert z > NSIGMA_MAX, f"naive k0 {naive_fit.params['k0_per_ns']:.4g} should be biased high vs {k0} (z = {z:.1f})"
    assert np.all(naive.naive_rate_per_ns > data.naive_rate_per_ns)


def test_entrance_trapping_per_molar_with_ceiling():
    """An entrance site traps with the field; trapping is per molar and saturates at a known k_max."""
    rng = np.random.default_rng(3)
    molar, k0, delta, k_max = 0.5, 0.04, 0.8, 1.5  # per ns per molar
    rates = molar * true_rate(BIASES_V, k0, delta, 0.0, 0.0, k_max)
    ev, ex = synthetic(rng, rates, n_runs=30, run_ns=100.0)
    data = dwell_data_from_intervals(BIASES_V, ev, ex)
    fit = fit_bell_rates(
        data,
        ion="Rb+",
        model="with_field",
        molar=molar,
        k_max_per_ns=molar * k_max,
        bootstrap="nonparametric",
        n_bootstrap=60,
        seed=1,
    )
    assert set(fit.params) == {"k0_per_ns_per_molar", "delta"}
    assert_within(fit, {"k0_per_ns_per_molar": k0, "delta": delta}, fit.se_laplace)
    assert_within(fit, {"k0_per_ns_per_molar": k0, "delta": delta}, fit.se_bootstrap)
    d = fit.to_rate_dict()
    assert d["k_minus_per_ns_per_molar"] == 0.0 and d["k_max_per_ns_per_molar"] == pytest.approx(k_max)


def test_escape_against_field_and_delta_bound():
    """Escape against the field; the gating charge is bounded by |z| = 2 for Mg2+ and flagged there."""
    v = np.array([0.0, 0.1, 0.2, 0.3])
    rates = 2.0 * np.exp(-5.0 * v / V_T)  # wants δ = 5 > 2
    data = DwellData(v_v=v, n_events=np.round(rates * 1e4), exposure_ns=np.full(4, 1e4))
    fit = fit_bell_rates(data, ion="Mg2+", model="against_field", bootstrap=None)
    assert fit.params["delta"] == pytest.approx(2.0)
    assert fit.at_bound == ("delta",)


def test_bootstrap_is_reproducible_with_its_seed():
    v = BIASES_V
    rates = 0.1 * np.cosh(0.5 * v / V_T)
    data = DwellData(v_v=v, n_events=np.round(rates * 500), exposure_ns=np.full(v.size, 500.0))
    a = fit_bell_rates(data, ion="K+", model="center", n_bootstrap=20, seed=5)
    b = fit_bell_rates(data, ion="K+", model="center", n_bootstrap=20, seed=5)
    assert a.se_bootstrap == b.se_bootstrap and a.seed == 5


def test_dwell_data_from_rate_estimates():
    est = {0.2: RateEstimate(0.1, 0.01, None, 10, 100.0), -0.1: RateEstimate(0.05, 0.01, None, 5, 100.0)}
    data = dwell_data_from_estimates(est)
    np.testing.assert_array_equal(data.v_v, [-0.1, 0.2])
    np.testing.assert_array_equal(data.n_events, [5, 10])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": "cubic"}, "model"),
        ({"ion": "Xe+"}, "unknown ion"),
        ({"bootstrap": "nonparametric"}, "per-interval"),
        ({"n_bootstrap": 1}, "n_bootstrap"),
        ({"model": "two_polarity", "v": [0.0, 0.1, 0.2]}, "at least 4"),
    ],
)
def test_bad_input_is_named(kwargs, match):
    v = kwargs.pop("v", [0.0, 0.1, 0.2, 0.3])
    data = DwellData(v_v=v, n_events=[1] * len(v), exposure_ns=[10.0] * len(v))
    args = {"ion": "K+", "model": "center"} | kwargs
    with pytest.raises(ValueError, match=match):
        fit_bell_rates(data, **args)


def test_bad_dwell_data():
    with pytest.raises(ValueError, match="n_events"):
        DwellData(v_v=[0.0], n_events=[-1], exposure_ns=[1.0])
    with pytest.raises(ValueError, match="exposure_ns"):
        DwellData(v_v=[0.0], n_events=[1], exposure_ns=[0.0])


def test_barrier_estimates_with_stated_prefactors():
    assert eyring_prefactor_per_ns(298.15) == pytest.approx(6.2124e3, rel=1e-4)
    assert diffusive_attempt_frequency_per_ns("K+", 0.3) == pytest.approx(1.957 / 0.09)
    k, se = kramers_rate_per_ns(5.0, prefactor_per_ns=20.0, barrier_se_kt=0.2)
    assert k == pytest.approx(20.0 * math.exp(-5.0)) and se == pytest.approx(0.2 * k)
    np.testing.assert_allclose(kramers_rate_per_ns([0.0, 1.0], prefactor_per_ns=2.0), [2.0, 2.0 / math.e])
    with pytest.raises(ValueError, match="prefactor_per_ns"):
        kramers_rate_per_ns(1.0, prefactor_per_ns=0.0)

    v = BIASES_V
    rates = 0.1 * np.cosh(0.5 * v / V_T)
    data = DwellData(v_v=v, n_events=np.round(rates * 1000), exposure_ns=np.full(v.size, 1000.0))
    fit = fit_bell_rates(data, ion="K+", model="center", bootstrap=None)
    row = compare_zero_bias(fit, barrier_kt=5.0, barrier_se_kt=0.3, ion="K+")
    assert row["md_fit_k0_per_ns"] == pytest.approx(fit.params["k0_per_ns"])
    assert row["md_fit_k0_se_per_ns"] == pytest.approx(fit.se_laplace["k0_per_ns"], rel=1e-6)
    assert row["kramers_diffusive_k0_per_ns"] == pytest.approx(1.957 / 0.09 * math.exp(-5.0))
    assert row["log10_ratio_eyring_to_md"] > row["log10_ratio_kramers_to_md"]
