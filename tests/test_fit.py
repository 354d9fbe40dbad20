"""The differentiable fit: exact answers in the linear case, recovery of known kinetics from
synthetic targets, clear errors for bad targets files, and the shipped calibrations
regenerated from their targets."""

import copy
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import ionkinetics as ik
from conftest import assert_allclose
from ionkinetics.calibrate import TargetsError, fit_targets, parse_targets, predict_target
from ionkinetics.calibrate._fit import _params

REPO = Path(__file__).resolve().parents[1]
SOURCE = {"section": "synthetic"}


def _targets(system, carrier, dopants, parameters, free, rows, **extra):
    return parse_targets(
        {
            "schema": "ionkinetics.targets/1",
            "system": system,
            "carrier": carrier,
            "dopant": [{"ion": i, "site": s} for i, s in dopants],
            "parameters": {**parameters, "free": list(free)},
            "target": rows,
            **extra,
        }
    )


def test_linear_case_matches_weighted_least_squares_and_its_covariance():
    """ln G = ln C + α·x(V) with x = sqrt(V² + vs²) − vs is linear in (ln C, α): the fit must be the
    weighted least-squares solution and the Laplace covariance exactly (JᵀWJ)⁻¹."""
    v = np.array([0.05, 0.1, 0.2, 0.3, 0.4])
    rel = np.array([0.1, 0.2, 0.1, 0.3, 0.15])
    g = 300.0 * np.exp(-1.5 * v) * np.exp(np.array([0.05, -0.1, 0.08, 0.0, -0.04]))  # noisy data
    rows = [
        {"kind": "conductance", "v": float(a), "g_ps": float(b), "rel_sigma": float(c), **SOURCE}
        for a, b, c in zip(v, g, rel, strict=True)
    ]
    targets = _targets(
        "crown6:NaCl@1.0",
        "Na+",
        [],
        {"open.c_ps": 100.0, "open.alpha_per_v": 0.0, "open.v_smooth_v": 0.005},
        ["open.c_ps", "open.alpha_per_v"],
        rows,
    )
    result = fit_targets(targets, n_starts=1)
    x = np.sqrt(v**2 + 0.005**2) - 0.005
    design = np.column_stack([np.ones_like(x), x]) / rel[:, None]
    coef, *_ = np.linalg.lstsq(design, np.log(g) / rel, rcond=None)
    assert_allclose([np.log(result.values["open.c_ps"]), result.values["open.alpha_per_v"]], coef, rtol=1e-9, atol=1e-9)
    cov = np.linalg.inv(design.T @ design)
    assert_allclose(result.covariance_transformed, cov, rtol=1e-7, atol=1e-12)
    assert_allclose(result.sigma["open.c_ps"]["sigma"], result.values["open.c_ps"] * np.sqrt(cov[0, 0]), rtol=1e-7, atol=0)
    chi2 = np.sum((design @ coef - np.log(g) / rel) ** 2)
    assert_allclose(2 * result.loss, chi2, rtol=1e-8, atol=1e-12)
    assert result.converged and result.identifiable


def _synthetic_rows(params, specs):
    rows = []
    for spec in specs:
        t = parse_targets(
            {  # a throwaway one-row file just to get a Target object for predict_target
                "schema": "ionkinetics.targets/1",
                "system": "crown6:NaCl@1.0",
                "carrier": "Na+",
                "parameters": {"open.c_ps": 1.0, "open.alpha_per_v": 0.0, "free": ["open.c_ps"]},
                "target": [{**spec, **SOURCE}],
            }
        ).targets[0]
        model = predict_target(params, t)
        key = {"conductance": "g_ps", "step_trace": "w", "steady_w": "w", "step_tau": "tau_ns"}[spec["kind"]]
        rows.append({**spec, key: np.asarray(model[key]).tolist(), **SOURCE})
    return rows


CASES = {
    "center": dict(
        system="crown6:NaCl@1.0+KCl@0.5",
        carrier="Na+",
        dopants=[("K+", "center")],
        fixed={"open.c_ps": 400.0, "open.alpha_per_v": -1.7},
        truth={"K+.trap.k0_per_ns_per_molar": 0.08, "K+.trap.delta": 0.12, "K+.escape.k0_per_ns": 3e-5, "K+.escape.delta": 0.55},
        specs=[
            {"kind": "conductance", "v": 0.1, "g_ps": 1.0, "rel_sigma": 0.01},
            {"kind": "step_trace", "v_from": 0.0, "v_to": 0.5, "t_ns": [0.5, 1.0, 2.0, 4.0], "w": [0.5] * 4, "sigma": 0.01},
            {"kind": "step_trace", "v_from": 0.5, "v_to": 0.0, "t_ns": [5.0, 20.0, 60.0], "w": [0.5] * 3, "sigma": 0.01},
            {"kind": "step_trace", "v_from": 0.0, "v_to": 0.3, "t_ns": [2.0, 10.0, 50.0], "w": [0.5] * 3, "sigma": 0.01},
        ],
    ),
    "entrance": dict(
        system="B3N:KCl@1.0+RbCl@0.5",
        carrier="K+",
        dopants=[("Rb+", "entrance")],
        fixed={"open.c_ps": 24.0, "open.alpha_per_v": 5.4},
        truth={
            "Rb+.trap.k0_per_ns_per_molar": 0.008,
            "Rb+.trap.delta": 0.25,
            "Rb+.escape.k0_per_ns": 0.07,
            "Rb+.escape.delta": 0.6,
            "Rb+.leak_fraction": 0.01,
        },
        specs=[
            {"kind": "conductance", "v": 0.1, "g_ps": 1.0, "rel_sigma": 0.01},
            {"kind": "conductance", "v": 0.4, "g_ps": 1.0, "rel_sigma": 0.01},
            {"kind": "conductance", "v": 0.6, "g_ps": 1.0, "rel_sigma": 0.01},
            {"kind": "step_trace", "v_from": 0.0, "v_to": 0.5, "t_ns": [0.5, 1.0, 2.0, 5.0], "w": [0.5] * 4, "sigma": 0.01},
            {"kind": "step_trace", "v_from": 0.5, "v_to": 0.0, "t_ns": [2.0, 8.0, 30.0], "w": [0.5] * 3, "sigma": 0.01},
            {"kind": "step_tau", "v_from": 0.0, "v_to": 0.25, "tau_ns": 1.0, "rel_sigma": 0.01},
        ],
    ),
}


@pytest.mark.parametrize(
    "case",
    # the entrance case (a 3-state B3N fit, ~50 s on idle cores) runs in the slow tier (CI runs both)
    [pytest.param(c, marks=pytest.mark.slow) if c == "entrance" else c for c in CASES],
)
def test_fit_recovers_known_kinetics_from_exact_targets(case):
    c = CASES[case]
    start = {k: v * (1.6 if "delta" not in k else 0.7) for k, v in c["truth"].items()}
    probe = _targets(
        c["system"], c["carrier"], c["dopants"], {**c["fixed"], **c["truth"]}, list(c["truth"]), [{**c["specs"][0], **SOURCE}]
    )
    rows = _synthetic_rows(_params(probe.parameters, probe), c["specs"])
    targets = _targets(c["system"], c["carrier"], c["dopants"], {**c["fixed"], **start}, list(c["truth"]), rows)
    result = fit_targets(targets, n_starts=3, seed=1)
    assert result.loss < 1e-12
    assert result.identifiable
    for name, value in c["truth"].items():
        assert abs(result.values[name] / value - 1) < 0.01, (name, result.values[name], value)
        assert result.sigma[name]["sigma"] > 0
    # the calibration it returns predicts the targets it was fitted to
    for row in rows[:1]:
        g = ik.conductance(result.calibration, row["v"])
        assert_allclose(g, row["g_ps"], rtol=1e-5, atol=0)


BASE = {
    "schema": "ionkinetics.targets/1",
    "system": "crown6:NaCl@1.0+KCl@0.5",
    "carrier": "Na+",
    "dopant": [{"ion": "K+", "site": "center"}],
    "parameters": {
        "open.c_ps": 400.0,
        "open.alpha_per_v": -1.7,
        "K+.trap.k0_per_ns_per_molar": 0.1,
        "K+.trap.delta": 0.1,
        "K+.escape.k0_per_ns": 1e-4,
        "K+.escape.delta": 0.5,
        "free": ["K+.trap.delta"],
    },
    "target": [{"kind": "conductance", "v": 0.1, "g_ps": 1.0, "rel_sigma": 0.3, "section": "2.2"}],
}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.update(schema="ionkinetics.targets/2"), r"'schema'.*ionkinetics\.targets/1"),
        (lambda r: r["target"][0].pop("section"), r"target\[0\] is not marked assumed, so it must cite the 'section'"),
        (lambda r: r["target"][0].update(assumed=True, section=None), r"assumed=true need the file's 'assumptions'"),
        (lambda r: r["target"][0].update(kind="noise"), r"target\[0\]\.kind.*must be one of"),
        (lambda r: r["target"][0].pop("rel_sigma"), r"missing the field 'rel_sigma'"),
        (lambda r: r["target"][0].update(g_ps=-1.0), r"target\[0\]\.g_ps.*must be > 0"),
        (lambda r: r["parameters"].update(free=["K+.trap.speed"]), r"unknown parameter 'K\+\.trap\.speed'"),
        (lambda r: r.update(dopant=[]), r"must list every non-carrier cation.*K\+"),
        (lambda r: r.update(carrier="Cs+"), r"'carrier'.*must be a cation of"),
        # issue 15: c_ps = 0 reached the fit's log transform ("math domain error")
        (lambda r: r["parameters"].update({"open.c_ps": 0.0}), r"'parameters\.open\.c_ps' must be > 0 .*got 0\.0"),
        (lambda r: r["parameters"].update({"K+.escape.k0_per_ns": -1.0}), r"'parameters\.K\+\.escape\.k0_per_ns' must be > 0"),
        (lambda r: r["parameters"].update({"K+.trap.delta": 3.0}), r"'parameters\.K\+\.trap\.delta' must be within \[0, 1\]"),
    ],
)
def test_bad_targets_are_rejected_naming_the_field(edit, message):
    raw = copy.deepcopy(BASE)
    edit(raw)
    if raw["target"][0].get("section", "") is None:
        del raw["target"][0]["section"]
    with pytest.raises(TargetsError, match=message):
        parse_targets(raw)


@pytest.mark.slow  # refits all seven shipped systems (~30 s idle); issue 14 puts the refits in the slow tier
def test_shipped_calibrations_regenerate_from_their_targets():
    """`ionkinetics fit` made every shipped file; refitting (one start) lands on the same values."""
    for path in sorted((REPO / "calibration" / "targets").glob("*.toml")):
        targets = ik.load_targets(path)
        shipped = ik.load_calibration(REPO / "calibration" / (path.stem + ".json"))
        assert shipped.provenance["targets_file"].endswith(path.name)
        result = fit_targets(targets, n_starts=1)
        for name, entry in shipped.uncertainty["parameters"].items():
            assert_allclose(result.values[name], entry["value"], rtol=1e-4, atol=1e-10, err_msg=f"{path.name}: {name}")
        assert_allclose(result.calibration.params.open.c_ps, jnp.asarray(shipped.params.open.c_ps), rtol=1e-4, atol=0)


def test_distinct_exact_minima_are_recorded_not_hidden():
    """The Mg2+ targets (one slope, one assumed w, one assumed τ) are met exactly by two
    gating charges (electrical distances of the plugged mouth); the shipped file keeps the start-0
    one and records the other."""
    cal = ik.load_calibration("crown6:NaCl@1.0+MgCl2@0.25")
    alternatives = cal.fit["alternative_minima"]
    assert alternatives, "expected a second exact minimum for the Mg2+ gating charge"
    ours = cal.uncertainty["parameters"]["Mg2+.electrical_distance"]["value"]
    assert all(abs(a["values"]["Mg2+.electrical_distance"] - ours) > 0.05 for a in alternatives)
    assert all(2 * a["loss"] < 1e-9 for a in alternatives)
