"""The affordable one-sided umbrella plan (ionkinetics.md._adaptive, issue 23) on a PMF with a known
answer (md.testsystems.BrownianUmbrellaSampler): mean forces within NSIGMA_MAX of their exact window
expectations, the PMF recovered within its σ (plus the trapezoid rule's exactly computed bias), the
convergence rule's verdicts, adaptive lengths, two-ion runs, added windows, mirror windows that catch
an asymmetric PMF, resumption, and a real OpenMM run of the two-ion sampler."""

import numpy as np
import pytest

from ionkinetics.md._adaptive import AdaptivePlan, convergence_report, run_adaptive_plan
from ionkinetics.md._pmf import BOLTZMANN_KJ_PER_MOL_K, load_window
from ionkinetics.md.testsystems import BrownianUmbrellaSampler, exact_window_mean_nm

NSIGMA_MAX = 4.0  # a window's mean force, or W at a point, further than this many σ from exact fails


def _g(z, c, s):
    return np.exp(-((z - c) ** 2) / (2 * s * s))


def w_sym(z):
    """A B3N-K-like profile: a 3 kT peak at the centre between two −4 kT wells at |z| = 0.3 nm."""
    return 3.0 * _g(z, 0.0, 0.12) - 4.0 * (_g(z, 0.3, 0.15) + _g(z, -0.3, 0.15))


def dw_sym(z):
    return (-3.0 * z / 0.12**2 * _g(z, 0.0, 0.12)
            + 4.0 * ((z - 0.3) / 0.15**2 * _g(z, 0.3, 0.15) + (z + 0.3) / 0.15**2 * _g(z, -0.3, 0.15)))  # fmt: skip


PLAN = AdaptivePlan(z_max_nm=1.2, spacing_nm=0.1, bulk_min_abs_z_nm=1.0, chunk_ps=10.0, min_sampling_ps=20.0,
                    max_sampling_ps=200.0, sample_every_ps=0.2)  # fmt: skip


@pytest.fixture(scope="module")
def symmetric_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("adaptive")
    sampler = BrownianUmbrellaSampler(w_sym, dw_sym, PLAN, dt_ps=0.02, seed=3)
    report = run_adaptive_plan(PLAN, sampler, out)
    return out, sampler, report


def _windows(out):
    return [load_window(p) for p in sorted(out.glob("window_*.npz"))]


@pytest.mark.slow  # Brownian windows: ~25 s of sampling on 2 cores
def test_mean_forces_match_their_exact_window_expectations(symmetric_run):
    _, _, report = symmetric_run
    prof = report["profile"]
    k = PLAN.k_z_kj_per_mol_nm2 / PLAN.kt_kj_per_mol
    for z0, f, sf in zip(prof["z0_nm"], prof["mean_force_kt_per_nm"], prof["mean_force_err_kt_per_nm"], strict=True):
        f_exact = k * (z0 - exact_window_mean_nm(w_sym, z0, k))
        assert abs(f - f_exact) <= NSIGMA_MAX * sf, (z0, f, f_exact, sf)


@pytest.mark.slow  # Brownian windows: ~25 s of sampling on 2 cores
def test_the_pmf_is_recovered_within_sigma_and_the_rule_says_converged(symmetric_run):
    _, _, report = symmetric_run
    prof = report["profile"]
    k = PLAN.k_z_kj_per_mol_nm2 / PLAN.kt_kj_per_mol
    z0 = np.array(prof["z0_nm"])
    zx = np.array([exact_window_mean_nm(w_sym, z, k) for z in z0])  # exact ⟨z⟩
    fx = k * (z0 - zx)
    # the same trapezoid rule on the exact (⟨z⟩, F): the estimator's own discretisation bias, exactly
    trap = np.concatenate([[0.0], np.cumsum(0.5 * (fx[1:] + fx[:-1]) * np.diff(zx))])
    trap -= trap[np.abs(zx) >= PLAN.bulk_min_abs_z_nm].mean()
    bias = np.abs(trap - w_sym(zx))
    # first-order UI takes the window-averaged force for dW/dz at ⟨z⟩; with 0.05 nm windows to 0.4 nm, then
    # 0.1 nm, its bias on this profile is 0.31 kT at the peak (measured), under half the σ target
    assert bias.max() < 0.35
    w_est = np.interp(zx, prof["z_mean_nm"], prof["w_kt"])
    sw = np.asarray(prof["sigma_w_kt"])
    assert np.all(np.abs(w_est - w_sym(zx)) <= NSIGMA_MAX * sw + bias)
    assert report["sigma_w_kt_max"] <= PLAN.sigma_target_kt
    assert report["block_halves_within_2sigma"] and report["mirror_check_holds"]
    assert report["min_overlap"] >= PLAN.overlap_min
    assert report["converged"]


@pytest.mark.slow  # Brownian windows: ~25 s of sampling on 2 cores
def test_lengths_adapt_and_two_ions_share_each_run(symmetric_run):
    out, sampler, _ = symmetric_run
    windows = _windows(out)
    k = PLAN.k_z_kj_per_mol_nm2 / PLAN.kt_kj_per_mol
    sampled = np.array([float(d["sampled_ps"]) for d in windows])
    assert sampled.min() >= PLAN.min_sampling_ps and sampled.max() <= PLAN.max_sampling_ps
    assert np.ptp(sampled) > 0  # not one length for all
    from ionkinetics.md._adaptive import _mean_force

    for d in windows:
        if float(d["sampled_ps"]) < PLAN.max_sampling_ps:
            z0 = float(d["z0_nm"])
            assert _mean_force(d["z_nm"], z0, k)[2] <= PLAN.sigma_f_target_kt_per_nm(z0)
    assert any(len(c) == 2 for c in sampler.calls)
    assert {float(d["z0_nm"]) for d in windows} >= set(PLAN.centres_nm)


@pytest.mark.slow  # Brownian windows: ~25 s of sampling on 2 cores
def test_a_finished_plan_resumes_without_sampling(symmetric_run):
    out, _, report = symmetric_run
    again = BrownianUmbrellaSampler(w_sym, dw_sym, PLAN, seed=4)
    rep2 = run_adaptive_plan(PLAN, again, out)
    assert again.calls == []
    assert rep2["profile"]["w_kt"] == report["profile"]["w_kt"]


@pytest.mark.slow  # Brownian windows: ~25 s of sampling on 2 cores
def test_mirror_windows_catch_an_asymmetric_pmf(tmp_path):
    tilt = 8.0  # kT/nm: a profile that is not symmetric about the sheet

    def w(z):
        return w_sym(z) + tilt * z * _g(z, 0.0, 0.5)

    def dw(z):
        return dw_sym(z) + tilt * _g(z, 0.0, 0.5) * (1 - z * z / 0.25)

    plan = AdaptivePlan(z_max_nm=1.2, spacing_nm=0.1, bulk_min_abs_z_nm=1.0, min_sampling_ps=20.0, max_sampling_ps=40.0)
    report = run_adaptive_plan(plan, BrownianUmbrellaSampler(w, dw, plan, dt_ps=0.02, seed=5), tmp_path)
    assert not report["mirror_check_holds"] and not report["converged"]


@pytest.mark.slow  # 50 s on 2 loaded cores (MBAR on poorly overlapping windows)
def test_windows_are_added_where_neighbours_do_not_overlap(tmp_path):
    plan = AdaptivePlan(z_max_nm=1.2, spacing_nm=0.3, inner_spacing_nm=0.3, inner_z_max_nm=0.3, bulk_min_abs_z_nm=0.9,
                        k_z_kj_per_mol_nm2=8000.0, mirror_z_nm=(-0.3,), chunk_ps=10.0, min_sampling_ps=10.0,
                        max_sampling_ps=10.0, ions_per_cell=1, max_added_windows=1)  # fmt: skip
    report = run_adaptive_plan(plan, BrownianUmbrellaSampler(w_sym, dw_sym, plan, dt_ps=0.02, seed=6), tmp_path)
    z0 = sorted(float(d["z0_nm"]) for d in _windows(tmp_path))
    added = set(z0) - set(plan.centres_nm)
    assert added and all(abs(100 * z - round(100 * z)) < 1e-9 for z in added)
    assert report["min_overlap"] > 0.0


def test_bad_plans_name_the_field_rule_and_value():
    with pytest.raises(ValueError, match=r"bulk_min_abs_z_nm must be below z_max_nm = 1.*got 1.5"):
        AdaptivePlan(z_max_nm=1.2, bulk_min_abs_z_nm=1.5)
    with pytest.raises(ValueError, match=r"mirror_z_nm must be centres below the sheet.*0.2"):
        AdaptivePlan(mirror_z_nm=(0.2,))
    with pytest.raises(ValueError, match=r"spacing_nm must lie on the 0.01 nm grid; got 0.125"):
        AdaptivePlan(spacing_nm=0.125)


def test_convergence_report_refuses_too_few_windows():
    with pytest.raises(ValueError, match="at least two windows with z0 >= 0"):
        convergence_report([{"z_nm": np.zeros(5), "z0_nm": 0.0, "k_z_kj_per_mol_nm2": 1000.0}], PLAN)


@pytest.mark.slow  # a real OpenMM system: build, minimise, 3.2 ps
def test_openmm_two_ion_sampler_restrains_each_ion_to_its_own_window(tmp_path):
    """A real OpenMM run: two K+ in the cell's farthest pores (1.56 nm apart), each held at its own centre."""
    from ionkinetics import md
    from ionkinetics.md._adaptive import OpenMMUmbrellaSampler, partner_pores

    built = md.build_system("B3N:KCl@1.0", cells=(2, 1), box_z_nm=4.0, cutoff_nm=0.9, forcefield_option="hbn-rim")
    i, j = partner_pores(built)
    with pytest.raises(ValueError, match=r"must have two pores at least 2.0 nm apart \(use more cells\); got 1.56"):
        partner_pores(built, 2.0)
    ions = [int(a) for a, s in zip(built.ion_indices, built.ion_species, strict=True) if s == "K+"][:2]
    plan = AdaptivePlan(z_max_nm=1.2, spacing_nm=0.1, bulk_min_abs_z_nm=1.0, sample_every_ps=0.2)
    sampler = OpenMMUmbrellaSampler(built, ions, built.pore_centres_nm[[i, j], :2], plan, timestep_fs=4.0)
    z, r, end = sampler.sample((0.5, 1.0), equilibration_ps=0.4, sampling_ps=2.0, start=None)
    kz = plan.k_z_kj_per_mol_nm2 / (BOLTZMANN_KJ_PER_MOL_K * plan.temperature_k)
    for zz, z0 in zip(z, (0.5, 1.0), strict=True):
        assert zz.shape == (10,)
        assert abs(zz.mean() - z0) < 6.0 / np.sqrt(kz)  # within 6 thermal widths of its own centre
    assert all(np.all(rr < 0.45) for rr in r)  # inside the flat bottom (0.3 nm) plus thermal slack
    z2, _, _ = sampler.sample((0.4, 0.9), equilibration_ps=0.4, sampling_ps=0.4, start=end)  # a neighbour start
    assert abs(z2[0][-1] - 0.4) < 0.1 and abs(z2[1][-1] - 0.9) < 0.1


ADAPTIVE_TOML = """
schema = "ionkinetics.md-validation/1"
forcefield_option = "hbn-rim"
[cell]
spacing_nm = 1.6
cells = [2, 1]
box_z_nm = 4.0
seed = 1
cutoff_nm = 0.9
[windows]
timestep_fs = 4.0
k_z_kj_per_mol_nm2 = 2000.0
equilibration_ps = 0.2
sampling_ps = 0.4
sample_every_ps = 0.04
platform = "CPU"
[analysis]
bulk_min_abs_z_nm = 0.15
[adaptive]
z_max_nm = 0.2
spacing_nm = 0.1
inner_spacing_nm = 0.1
inner_z_max_nm = 0.1
mirror_z_nm = [-0.1]
chunk_ps = 0.4
min_sampling_ps = 0.4
max_sampling_ps = 0.4
max_added_windows = 0
[[pmf]]
name = "B3N-K"
system = "B3N:KCl@1.0"
ion = "K+"
[[pmf]]
name = "B3N-Na"
system = "B3N:NaCl@1.0"
ion = "Na+"
"""


def test_validation_files_take_an_adaptive_table(tmp_path):
    from ionkinetics.md._validate import ValidationError, estimate_wall_hours, load_validation

    f = tmp_path / "v.toml"
    f.write_text(ADAPTIVE_TOML)
    plan = load_validation(f)
    a = plan.adaptive
    assert a.plus_centres_nm == (0.0, 0.1, 0.2) and a.mirror_z_nm == (-0.1,)
    assert a.k_z_kj_per_mol_nm2 == 2000.0 and a.equilibration_ps == pytest.approx(0.2) and a.bulk_min_abs_z_nm == 0.15
    assert list(plan.centres_nm) == [0.0, 0.1, 0.2, -0.1]
    # two runs on +z (0 with 0.2, then 0.1) and one mirror run, each ≤ 0.6 ps, two PMFs on one worker
    assert estimate_wall_hours(plan, ["B3N-K", "B3N-Na"], 24.0, 1) == pytest.approx(2 * 3 * 0.6e-3)
    f.write_text(ADAPTIVE_TOML.replace("chunk_ps = 0.4", "chunk_ps = 0.4\nwindow_ps = 3"))
    with pytest.raises(ValidationError, match=r"\[adaptive\] has unknown fields \['window_ps'\]"):
        load_validation(f)


@pytest.mark.slow  # two worker processes, each a real OpenMM plan of three short runs
def test_a_plan_runs_concurrently_on_the_cpu_platform(tmp_path):
    import json

    from ionkinetics.md._validate import load_validation, run_validation_concurrently, summarize_validation

    f = tmp_path / "v.toml"
    f.write_text(ADAPTIVE_TOML)
    plan = load_validation(f)
    lines = run_validation_concurrently(plan, tmp_path / "pmf", workers=2, log=lambda m: None)
    assert [line.split(":")[0] for line in lines] == ["B3N-K", "B3N-Na"]
    for name in ("B3N-K", "B3N-Na"):
        files = sorted((tmp_path / "pmf" / "won-aluru-2008+sgouros-2025-rim" / name).glob("window_*.npz"))
        assert sorted(load_window(p)["z0_nm"] for p in files) == [-0.1, 0.0, 0.1, 0.2]
        for p in files:
            d = load_window(p)
            assert d["z_nm"].shape == (10,) and d["membrane_sheet"] == "sgouros-2025-rim" and d["wall_s"] > 0
    summary = summarize_validation(plan, tmp_path / "pmf", tmp_path)
    assert summary["cpu_hours_spent"] > 0 and set(summary["simulated_ns_per_pmf"]) == {"B3N-K", "B3N-Na"}
    rec = summary["pmfs"][0]
    assert {"sigma_w_kt_max", "block_halves_within_2sigma", "min_overlap", "mirror_check_holds"} <= set(rec)
    assert (tmp_path / "pmfs.png").is_file() and json.loads((tmp_path / "summary.json").read_text())["facts"]


def test_the_shipped_validation_file_is_the_adaptive_plan_of_the_five_facts():
    from pathlib import Path

    from ionkinetics.md._validate import load_validation

    plan = load_validation(Path(__file__).resolve().parents[1] / "md" / "validation" / "validation.toml")
    assert plan.adaptive is not None and plan.adaptive.sigma_target_kt == 0.7 and plan.adaptive.overlap_min == 0.03
    assert plan.adaptive.mirror_z_nm == (-0.2, -0.4) and plan.adaptive.ions_per_cell == 2
    assert {f"{p.pore}-{p.ion.rstrip('+')}" for p in plan.pmfs} == {"crown6-Na", "crown6-K", "B3N-K", "B3N-Na", "B3N-Rb"}
    assert plan.settings.timestep_fs == 4.0 and plan.cell["cutoff_nm"] == 0.9


# mean blocking error within 15 % of the exact AR(1) standard error of the mean: blocking (like every
# correlation-time estimate) runs low at finite length, measured −10 % at φ = 0.95 (2τ_int = 39 points)
# with 2^13 points and −6 % with 2^15; 0 % to −3 % at φ ≤ 0.8
BLOCKING_REL_TOL = 0.15
COVERAGE_2SIGMA_MIN = 0.90  # |mean − 0| ≤ 2σ_blocking in at least this share of replicas (Gaussian: 95.4 %)


@pytest.mark.parametrize("phi", [0.0, 0.8, 0.95])
def test_blocking_error_matches_the_exact_ar1_standard_error(phi):
    """AR(1), x_t = φ x_{t−1} + e_t, unit e: var(mean) → (1 + φ) / ((1 − φ)(1 − φ²) n) exactly at large n.
    Over 200 replicas of 2^13 points, the blocking standard error averages within BLOCKING_REL_TOL of it
    and its 2σ intervals cover the true mean (0) at least COVERAGE_2SIGMA_MIN of the time."""
    from scipy.signal import lfilter

    from ionkinetics.md._adaptive import blocking_standard_error

    rng = np.random.default_rng(23)
    n, reps = 2**13, 200
    e = rng.normal(size=(reps, n))
    e[:, 0] /= np.sqrt(1.0 - phi**2)  # stationary start
    x = lfilter([1.0], [1.0, -phi], e, axis=1)
    se = np.array([blocking_standard_error(row) for row in x])
    exact = np.sqrt((1 + phi) / ((1 - phi) * (1 - phi**2) * n))
    assert abs(se.mean() / exact - 1.0) < BLOCKING_REL_TOL
    assert np.mean(np.abs(x.mean(axis=1)) <= 2.0 * se) >= COVERAGE_2SIGMA_MIN


def test_a_series_too_short_to_block_keeps_the_inefficiency_error():
    """Fewer points than BLOCKING_MIN_BLOCKS: no blocking estimate (NaN), and the window's σ_F is the
    finite inefficiency error (a 10-sample window's halves have 5 points each)."""
    from ionkinetics.md._adaptive import BLOCKING_MIN_BLOCKS, _mean_force, blocking_standard_error

    z = np.random.default_rng(5).normal(0.1, 0.02, BLOCKING_MIN_BLOCKS - 3)
    assert np.isnan(blocking_standard_error(z))
    _, _, sigma = _mean_force(z, 0.1, 100.0)
    assert np.isfinite(sigma) and sigma > 0
