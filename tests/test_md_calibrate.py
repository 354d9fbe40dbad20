"""Calibration from MD runs: synthetic runs drawn from a known model, through the real analysis
(crossings, occupancy, censored dwell times) and ``calibrate_from_runs``, back to that model."""

import json

import numpy as np
import pytest

import ionkinetics as ik
from helpers import make_calibration, write_synthetic_md_run
from ionkinetics.calibrate import encounter_rate_per_ns_per_molar, escape_ceiling_per_ns
from ionkinetics.calibrate._from_md import calibrate_from_runs, load_md_run, md_targets
from ionkinetics.kinetics._rates import transition_rates_per_ns

# Recovered parameters must lie within this many standard errors of the truth.
NSIGMA_PARAMS = 4.0
# Bin means of w(t) must lie within this many standard errors of the calibrated model; the error
# of a bin mean of m frames of n independent two-state pores is exact for a stationary chain:
# w(1-w)/n · Σ_ij ρ^|i-j| / m², ρ = exp(-(k_trap + k_escape)·dt) at the bin's bias.
NSIGMA_TRACE = 5.0
FRAME_NS = 0.05
GRID = 10  # 100 pores

TRUTH = dict(trap_k0=0.4, trap_delta=0.05, escape_k0=0.5, escape_delta=0.1, c_ps=100.0, alpha=-0.8)


def _truth(**changes):
    p = {**TRUTH, **changes}
    return make_calibration(
        dopants=(("K+", "center", p["trap_k0"], p["trap_delta"], p["escape_k0"], p["escape_delta"], 0.0),),
        c_ps=p["c_ps"],
        alpha_per_v=p["alpha"],
        k_max=(encounter_rate_per_ns_per_molar("K+"), escape_ceiling_per_ns("K+")),
    )


def _step_volts(v_on):
    """0 V for 20 ns, v_on for 40 ns, 0 V for 20 ns, per 0.05 ns frame."""
    n = round(20 / FRAME_NS)
    return np.concatenate([np.zeros(n), np.full(2 * n, v_on), np.zeros(n)])


@pytest.fixture(scope="module")
def synthetic_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("md-runs")
    truth = _truth()
    runs = []
    for seed, v_on in enumerate((0.5, 0.25)):
        volts = _step_volts(v_on)
        w = write_synthetic_md_run(root / f"run{seed}", truth, volts, frame_ns=FRAME_NS, grid=GRID, seed=seed)
        runs.append((root / f"run{seed}", volts, w))
    return runs


def _bin_mean_se(cal, v, w, m):
    kt, ke = (float(x[0]) for x in transition_rates_per_ns(cal.params, v))
    lag = np.abs(np.subtract.outer(np.arange(m), np.arange(m)))
    return np.sqrt(w * (1 - w) / GRID**2 * np.exp(-(kt + ke) * FRAME_NS * lag).sum() / m**2)


def _max_trace_z(cal, runs) -> float:
    worst = 0.0
    for _run_dir, volts, w in runs:
        model = ik.simulate(cal, volts, dt_ns=FRAME_NS).w[1:]  # state at the end of each frame interval
        for b in np.split(np.arange(volts.size), 40):  # 2 ns bins, one bias each
            wm = float(model[b].mean())
            worst = max(worst, abs(float(w[b].mean()) - wm) / _bin_mean_se(cal, volts[b[0]], wm, b.size))
    return worst


@pytest.fixture(scope="module")
def direct(synthetic_runs):
    return calibrate_from_runs([r for r, _, _ in synthetic_runs], n_bootstrap=50, command="test")


def test_direct_estimate_recovers_the_generating_rates(direct, synthetic_runs):
    sigma = direct.uncertainty["parameters"]
    checks = {
        "K+.trap.k0_per_ns_per_molar": TRUTH["trap_k0"],
        "K+.trap.delta": TRUTH["trap_delta"],
        "K+.escape.k0_per_ns": TRUTH["escape_k0"],
        "K+.escape.delta": TRUTH["escape_delta"],
        "open.c_ps": TRUTH["c_ps"],
        "open.alpha_per_v": TRUTH["alpha"],
    }
    for name, true in checks.items():
        got, se = sigma[name]["value"], sigma[name]["sigma"]
        assert se > 0 and abs(got - true) < NSIGMA_PARAMS * se, (name, got, true, se)
    # the escape law is identified from 3 biases and its delta is well away from the bounds
    assert direct.fit["md_direct"]["details"]["escape"]["delta_at_bound"] == []
    # the calibration states the |V| its runs cover (simulating beyond it warns)
    volts = np.abs(np.concatenate([v for _, v, _ in synthetic_runs]))
    assert direct.data_range_v == (float(volts.min()), float(volts.max()))


def test_direct_calibration_reproduces_the_synthetic_w_trace(direct, synthetic_runs, tmp_path):
    path = ik.save_calibration(direct, tmp_path / "md.json")
    loaded = ik.load_calibration(path)
    assert loaded.to_dict() == json.loads(path.read_text())
    assert _max_trace_z(loaded, synthetic_runs) < NSIGMA_TRACE
    # the check has teeth: escape twice as fast is rejected by the same bound
    assert _max_trace_z(_truth(escape_k0=1.0), synthetic_runs) > NSIGMA_TRACE


@pytest.mark.slow  # a refit on w traces (34 s on idle cores): CI runs it (--runslow)
def test_refined_fit_on_w_traces_and_conductances_agrees(direct, synthetic_runs):
    refined = calibrate_from_runs([r for r, _, _ in synthetic_runs], refine=True, n_bootstrap=0, command="test")
    assert _max_trace_z(refined, synthetic_runs) < NSIGMA_TRACE
    sig = refined.uncertainty["parameters"]
    for name, true in (("K+.escape.k0_per_ns", TRUTH["escape_k0"]), ("K+.trap.k0_per_ns_per_molar", TRUTH["trap_k0"])):
        assert abs(sig[name]["value"] - true) < NSIGMA_PARAMS * sig[name]["sigma"], (name, sig[name], true)
    assert refined.fit["md_direct"]["values"]["K+.escape.k0_per_ns"] == pytest.approx(
        direct.uncertainty["parameters"]["K+.escape.k0_per_ns"]["value"], rel=1e-12
    )


def test_provenance_names_every_run(direct, synthetic_runs):
    prov = direct.provenance
    assert [r["run_dir"] for r in prov["md_runs"]] == [str(r) for r, _, _ in synthetic_runs]
    assert prov["total_simulated_ns"] == pytest.approx(160.0)
    assert prov["platforms"] == ["synthetic"]
    assert prov["forcefield_files"] == ["synthetic"]
    assert {"git_commit", "ionkinetics_version", "command", "created_utc"} <= set(prov)


def test_md_targets_are_w_traces_and_conductances(synthetic_runs):
    runs = [load_md_run(r) for r, _, _ in synthetic_runs]
    targets = md_targets(runs)
    kinds = [t.kind for t in targets.targets]
    assert kinds.count("w_trace") == 2 and kinds.count("conductance") == 2
    trace = targets.targets[0].values
    assert trace["v_start_ns"] == pytest.approx([0.0, 20.0, 60.0])
    assert trace["v"] == [0.0, 0.5, 0.0]
    assert set(targets.free) == {
        "K+.trap.k0_per_ns_per_molar",
        "K+.trap.delta",
        "K+.escape.k0_per_ns",
        "K+.escape.delta",
        "open.c_ps",
        "open.alpha_per_v",
    }


def test_unfinished_and_mismatched_runs_are_refused(synthetic_runs, tmp_path):
    run_dir = tmp_path / "short"
    write_synthetic_md_run(run_dir, _truth(), _step_volts(0.5)[:200], frame_ns=FRAME_NS, grid=4, seed=3)
    progress = json.loads((run_dir / "progress.json").read_text())
    (run_dir / "progress.json").write_text(json.dumps({**progress, "frames_done": 100}))
    with pytest.raises(ValueError, match="unfinished"):
        calibrate_from_runs([run_dir])
    with pytest.raises(FileNotFoundError, match=r"spec\.json"):
        calibrate_from_runs([tmp_path])
    # one bias only: a Bell law cannot be fitted
    dc = tmp_path / "dc"
    write_synthetic_md_run(dc, _truth(), np.full(400, 0.5), frame_ns=FRAME_NS, grid=4, seed=4)
    with pytest.raises(ValueError, match="two or more biases"):
        calibrate_from_runs([dc], n_bootstrap=0)
    with pytest.raises(ValueError, match="n_bootstrap"):
        calibrate_from_runs([synthetic_runs[0][0]], n_bootstrap=-1)


def test_w_trace_target_matches_step_trace_and_chains_steps():
    """A w_trace of one step equals the step_trace prediction; a two-step trace equals stepping
    twice with the kinetic core's exact propagators; w_start sets the open fraction at t = 0."""
    from ionkinetics.calibrate import Target, predict_target
    from ionkinetics.kinetics._rates import steady_state, step_occupancy

    params = _truth().params
    times = [0.5, 1.0, 3.0, 7.5]
    step = predict_target(params, Target("step_trace", {"v_from": 0.0, "v_to": 0.5, "t_ns": times, "w": [0.5] * 4, "sigma": 1.0}))
    trace = predict_target(
        params,
        Target(
            "w_trace",
            {"t_ns": [0.1, *[5.0 + t for t in times]], "w": [0.5] * 5, "sigma": 1.0, "v_start_ns": [0.0, 5.0], "v": [0.0, 0.5]},
        ),
    )
    np.testing.assert_allclose(np.asarray(trace["w"])[1:], np.asarray(step["w"]), rtol=1e-12)
    two = predict_target(
        params,
        Target(
            "w_trace",
            {"t_ns": [2.0, 4.0], "w": [0.5, 0.5], "sigma": 1.0, "v_start_ns": [0.0, 1.0], "v": [0.5, -0.25], "w_start": 1.0},
        ),
    )
    p1 = step_occupancy(params, np.array([1.0, 0.0]), 0.5, 1.0)
    want = [float(step_occupancy(params, p1, -0.25, t - 1.0)[0]) for t in (2.0, 4.0)]
    np.testing.assert_allclose(np.asarray(two["w"]), want, rtol=1e-12)
    assert float(steady_state(params, 0.5)[0]) != pytest.approx(want[0])


def test_calibrate_command_writes_the_same_calibration(direct, synthetic_runs, tmp_path):
    from typer.testing import CliRunner

    from ionkinetics.cli import app

    out = tmp_path / "openmm-synthetic.json"
    args = ["calibrate", *[str(r) for r, _, _ in synthetic_runs], "-o", str(out), "--bootstrap", "50"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    cal = ik.load_calibration(out)
    assert cal.to_dict()["dopants"] == direct.to_dict()["dopants"]
    assert cal.provenance["command"].startswith("ionkinetics")


def test_md_calibrations_load_by_name_and_never_shadow_published_ones(direct, monkeypatch, tmp_path):
    from ionkinetics.calibrate import _calibration

    for name in ("crown6-NaCl1.0-KCl0.5.json",):
        (tmp_path / name).write_text((_calibration.calibration_dir() / name).read_text())
    ik.save_calibration(direct, tmp_path / "openmm-test-crown6.json")
    monkeypatch.setattr(_calibration, "calibration_dir", lambda: tmp_path)
    assert _calibration.list_calibrations() == ["crown6:NaCl@1.0+KCl@0.5"]
    assert _calibration.list_md_calibrations() == ["openmm-test-crown6"]
    published = ik.load_calibration("crown6:NaCl@1.0+KCl@0.5")
    assert "md_runs" not in published.provenance  # the system id still means the published numbers
    assert ik.load_calibration("openmm-test-crown6").provenance["md_runs"]
    with pytest.raises(ValueError, match="no shipped MD calibration 'openmm-nothing'"):
        ik.load_calibration("openmm-nothing")


def test_pmf_barrier_gives_a_kramers_escape_rate_beside_the_fit(synthetic_runs):
    """A PMF well of depth ΔG (no outer barrier) → k(0) = (D/a²)·exp(−ΔG): choose ΔG so that the
    Kramers estimate equals the generating escape rate, and it must sit beside the fit within 4σ."""
    import math

    from ionkinetics.calibrate._rate_fit import diffusive_attempt_frequency_per_ns

    depth = math.log(diffusive_attempt_frequency_per_ns("K+") / TRUTH["escape_k0"])
    pmf = {"well_kt": -depth, "barrier_kt": -0.5, "well_z_nm": 0.0, "barrier_z_nm": 1.0}
    cal = calibrate_from_runs([r for r, _, _ in synthetic_runs], n_bootstrap=0, pmf=pmf)
    cmp = cal.fit["md_direct"]["details"]["zero_bias_vs_pmf"]
    assert cmp["barrier_kt"] == pytest.approx(depth)
    assert cmp["kramers_diffusive_k0_per_ns"] == pytest.approx(TRUTH["escape_k0"], rel=1e-12)
    assert abs(cmp["md_fit_k0_per_ns"] - TRUTH["escape_k0"]) < NSIGMA_PARAMS * cmp["md_fit_k0_se_per_ns"]
    assert cmp["eyring_k0_per_ns"] > 100 * cmp["kramers_diffusive_k0_per_ns"]  # TST ignores friction
    with pytest.raises(ValueError, match=r"pmf\['well_kt'\]"):
        calibrate_from_runs([r for r, _, _ in synthetic_runs], n_bootstrap=0, pmf={"barrier_kt": 1.0})
