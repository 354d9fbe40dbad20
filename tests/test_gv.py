"""G–V and w–V fits recover known parameters; the role classifier follows the paper's thresholds."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from conftest import NSIGMA_MAX
from ionkinetics.calibrate._gv import (
    CARRIER_MIN_CURRENT_FRACTION,
    GVFit,
    WVFit,
    classify_ion_role,
    fit_exponential,
    fit_gv,
    fit_wv,
    role_map_figure,
    role_with_margin,
)
from ionkinetics.calibrate._roles import exponential_fit

V = np.linspace(0.05, 0.3, 10)


def test_gv_fit_recovers_c_and_alpha_with_per_point_errors():
    rng = np.random.default_rng(42)
    c_ps, alpha = 400.0, -1.7
    g_true = c_ps * np.exp(alpha * V)
    rel = np.linspace(0.03, 0.12, V.size)  # heteroscedastic relative errors
    g = g_true * np.exp(rel * rng.standard_normal(V.size))
    fit = fit_gv(V, g, rel * g)
    assert isinstance(fit, GVFit) and fit.weighted
    assert abs(fit.c_ps - c_ps) < NSIGMA_MAX * fit.se_c_ps
    assert abs(fit.alpha_per_v - alpha) < NSIGMA_MAX * fit.se_alpha_per_v
    np.testing.assert_allclose(fit.predict(V), fit.c_ps * np.exp(fit.alpha_per_v * V))


def test_wv_fit_recovers_w0_and_beta_unweighted():
    rng = np.random.default_rng(7)
    w0, beta = 0.05, 8.0
    w = w0 * np.exp(beta * V) * np.exp(0.05 * rng.standard_normal(V.size))
    fit = fit_wv(V, w)
    assert isinstance(fit, WVFit) and not fit.weighted
    assert abs(fit.w0 - w0) < NSIGMA_MAX * fit.se_w0
    assert abs(fit.beta_per_v - beta) < NSIGMA_MAX * fit.se_beta_per_v
    # unweighted estimate is the existing least-squares fit; equal weights give the same estimate
    a, b = exponential_fit(V, w)
    assert fit.w0 == pytest.approx(a) and fit.beta_per_v == pytest.approx(b)
    same = fit_wv(V, w, 0.05 * w)
    assert same.beta_per_v == pytest.approx(b)


def test_standard_errors_are_calibrated():
    """Over many synthetic data sets the z-scores of β have unit spread (the errors are honest)."""
    rng = np.random.default_rng(2026)
    w0, beta, sigma = 0.3, -3.0, 0.08
    z_w, z_u = [], []
    for _ in range(400):
        w = w0 * np.exp(beta * V + sigma * rng.standard_normal(V.size))
        fw = fit_wv(V, w, sigma * w)
        fu = fit_wv(V, w)
        z_w.append((fw.beta_per_v - beta) / fw.se_beta_per_v)
        z_u.append((fu.beta_per_v - beta) / fu.se_beta_per_v)
    for z in (np.array(z_w), np.array(z_u)):
        assert abs(z.mean()) < 0.2
        assert 0.85 < z.std() < 1.2
    assert np.mean(np.abs(z_w) < 1.0) == pytest.approx(0.683, abs=0.06)


def test_fit_input_errors():
    with pytest.raises(ValueError, match="> 0"):
        fit_gv([0.1, 0.2, 0.3], [1.0, 0.0, 2.0])
    with pytest.raises(ValueError, match="three points"):
        fit_gv([0.1, 0.2], [1.0, 2.0])
    with pytest.raises(ValueError, match="y_err"):
        fit_gv([0.1, 0.2], [1.0, 2.0], [0.1, -0.1])
    with pytest.raises(ValueError, match="distinct"):
        fit_exponential([0.1, 0.1, 0.1], [1.0, 2.0, 3.0])
    exact = fit_gv([0.1, 0.2], [1.0, 2.0], [0.1, 0.2])  # two points with errors: exact line
    assert exact.alpha_per_v == pytest.approx(np.log(2.0) / 0.1) and exact.dof == 0


@pytest.mark.parametrize(
    ("beta", "fraction", "role"),
    [
        (8.0, 0.0, "voltage activator"),
        (1.0000001, 0.9, "voltage activator"),
        (1.0, 0.0, "passive"),  # the thresholds are strict: β = 1 is not an activator
        (1.0, 0.5, "carrier"),
        (-1.0, 0.0, "passive"),
        (-1.0, 0.5, "carrier"),
        (-1.0000001, 0.5, "voltage inactivator"),
        (-7.1, 1.0, "voltage inactivator"),
        (0.0, CARRIER_MIN_CURRENT_FRACTION, "carrier"),  # the current threshold is inclusive
        (0.0, np.nextafter(CARRIER_MIN_CURRENT_FRACTION, 0.0), "passive"),
        (-0.5, 1.0, "carrier"),
    ],
)
def test_role_thresholds_including_boundaries(beta, fraction, role):
    assert classify_ion_role(beta, current_fraction=fraction) == role


def test_role_rule_options_and_errors():
    assert classify_ion_role(0.0, current_fraction=0.3, carrier_min_current_fraction=0.5) == "passive"
    with pytest.raises(ValueError, match="current_fraction"):
        classify_ion_role(0.0, current_fraction=1.5)
    with pytest.raises(ValueError, match="finite"):
        classify_ion_role(float("nan"), current_fraction=0.5)


def test_role_margin_in_standard_errors():
    rng = np.random.default_rng(1)
    w = 0.05 * np.exp(8.0 * V + 0.02 * rng.standard_normal(V.size))
    fit = fit_wv(V, w, 0.02 * w)
    role, margin = role_with_margin(fit, current_fraction=0.0)
    assert role == "voltage activator"
    assert margin == pytest.approx((fit.beta_per_v - 1.0) / fit.se_beta_per_v)
    assert margin > NSIGMA_MAX


def test_role_map_figure(tmp_path):
    table = {
        "crown6": {"Na+": "carrier", "K+": "voltage activator", "Mg2+": "voltage inactivator"},
        "B3N": {"K+": "carrier", "Cs+": "passive"},
    }
    fig = role_map_figure(table)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["crown6", "B3N"]
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("A") == 1 and texts.count("I") == 1 and texts.count("C") == 2 and texts.count("P") == 1
    assert texts.count("–") == 2 * 9 - 5
    out = tmp_path / "roles.png"
    fig.savefig(out)
    assert out.stat().st_size > 1000
    with pytest.raises(ValueError, match="role of K"):
        role_map_figure({"B3N": {"K+": "activator"}})
