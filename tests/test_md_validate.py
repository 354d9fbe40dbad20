"""Force-field validation (ionkinetics.md._validate): the plan, the convergence record and the
facts, on window records with exact samples of known PMFs, and one real window that is skipped
when re-run."""

import copy
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from conftest import NSIGMA_MAX
from ionkinetics.md import _validate as val
from test_pmf import KT, T_K, _sample_1d

REPO = Path(__file__).resolve().parents[1]
A_REF_NM2 = 2.25
K_Z = 2000.0


def _raw():
    return tomllib.loads((REPO / "md" / "validation" / "fixed-grid" / "validation.toml").read_text())


def _well(depth_kt, width_nm=0.12):
    return lambda z: -depth_kt * np.exp(-(z**2) / (2 * width_nm**2))


def _write_records(root: Path, plan, pmf_name: str, w_kt, *, rng, n=4000, centres=None, sampling_steps=100000):
    """Window files as run_window writes them, with exact samples of exp(−W − β½k(z−z0)²) and a
    laterally uniform r inside the flat bottom (so the lateral correction is a constant)."""
    pmf = next(p for p in plan.pmfs if p.name == pmf_name)
    out = plan.records_dir(pmf, root)
    out.mkdir(parents=True, exist_ok=True)
    grid = np.linspace(-2.2, 2.2, 40001)
    s = plan.settings
    for z0 in plan.centres_nm if centres is None else centres:
        z = _sample_1d(rng, grid, -w_kt(grid) - 0.5 * K_Z * (grid - z0) ** 2 / KT, n)
        r = s.flat_bottom_radius_nm * np.sqrt(rng.uniform(size=n)) * 0.9
        np.savez_compressed(
            out / f"window_{val.window_index_for_z(z0)}.npz",
            z_nm=z,
            r_xy_nm=r,
            z0_nm=float(z0),
            settings_k_z_kj_per_mol_nm2=K_Z,
            settings_flat_bottom_radius_nm=s.flat_bottom_radius_nm,
            settings_k_xy_kj_per_mol_nm2=s.k_xy_kj_per_mol_nm2,
            settings_timestep_fs=2.0,
            settings_equilibration_steps=25000,
            settings_sampling_steps=sampling_steps,
            settings_sample_every_steps=sampling_steps // n,
            settings_temperature_k=T_K,
            reference_area_nm2=A_REF_NM2,
            membrane_z_nm=0.0,
            box_nm=np.array([3.2, 2.8, 5.0]),
            platform="synthetic",
            wall_s=100.0,
        )


def _exact_kb_per_molar(w_kt):
    z = np.linspace(-val.SITE_HALF_WIDTH_NM, val.SITE_HALF_WIDTH_NM, 20001)
    return np.trapezoid(np.exp(-w_kt(z)) - 1.0, z) * A_REF_NM2 * val.AVOGADRO_PER_MOL / val._NM3_PER_LITRE


def test_plan_windows_are_stable_and_cover_both_sides():
    plan = val.parse_validation(_raw())
    z = plan.centres_nm
    assert z[0] == 0.0 and z.max() == pytest.approx(1.5) and z.min() == pytest.approx(-1.5) and len(set(z)) == 31
    assert val.window_index_for_z(0.0) == 1000 and val.window_index_for_z(-1.5) == 850
    assert plan.settings.equilibration_steps * plan.settings.timestep_fs / 1000 == 50.0
    assert plan.settings.sampling_steps * plan.settings.timestep_fs / 1000 == 200.0
    assert plan.forcefield_option == "sahu-crown" and {"crown6-Na", "crown6-K", "B3N-K", "B3N-Na", "B3N-Rb"} == {
        p.name for p in plan.pmfs
    }
    # records are kept per charge set: options that give a membrane the same charges share its windows
    by = {p.name: p for p in plan.pmfs}
    assert plan.records_dir(by["crown6-Na"], "R") == Path("R/sahu-2019/crown6-Na")
    assert plan.records_dir(by["B3N-K"], "R") == Path("R/won-aluru-2008/B3N-K")


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda r: r.update(schema="x"), r"field 'schema' must be"),
        (lambda r: r.update(forcefield_option="sahu"), r"field 'forcefield_option' must be one of .*got 'sahu'"),
        (lambda r: r["windows"].update(sides=["z"]), r"\[windows\].sides must be a list of .*got \['z'\]"),
        (lambda r: r["windows"].update(sampling_ps=200.001), r"\[windows\].sampling_ps must be a whole number of 2 fs steps"),
        (lambda r: r["analysis"].update(bulk_min_abs_z_nm=1.5), r"bulk_min_abs_z_nm must be below .*got 1.5"),
        (lambda r: r["pmf"][0].update(ion="Na+"), r"\[\[pmf\]\] 0.ion must be a cation of B3N:KCl@1.0 .*got .Na\+."),
        (lambda r: r["windows"].update(spacing_nm=0.123), r"z_max_nm must be a whole number of spacing_nm"),
    ],
)
def test_bad_validation_files_name_the_field_and_value(edit, pattern):
    raw = copy.deepcopy(_raw())
    edit(raw)
    with pytest.raises(val.ValidationError, match=pattern):
        val.parse_validation(raw)


def test_converged_synthetic_pmfs_give_facts_that_hold(tmp_path):
    rng = np.random.default_rng(11)
    raw = _raw()
    raw["pmf"] = [p for p in raw["pmf"] if p["system"].startswith("crown6")]
    plan = val.parse_validation(raw)
    na, k = _well(0.8), _well(9.0)
    _write_records(tmp_path / "pmf", plan, "crown6-Na", na, rng=rng)
    _write_records(tmp_path / "pmf", plan, "crown6-K", k, rng=rng)
    summary = val.summarize_validation(plan, tmp_path / "pmf", tmp_path)
    assert (tmp_path / "summary.json").is_file() and (tmp_path / "pmfs.png").is_file()
    by = {p["name"]: p for p in summary["pmfs"]}
    for name, w in (("crown6-Na", na), ("crown6-K", k)):
        rec = by[name]
        assert rec["both_sides"] and rec["overlap_ok"] and rec["converged"], rec["problems"]
        assert rec["sampling_ps_per_window"] == 200.0 and rec["equilibration_ps_per_window"] == 50.0
        assert rec["block_half_max_diff_kt"] < val.RULES["block_half_max_diff_kt"]
        kb, dkb = rec["result"]["binding_constant_per_molar"], rec["result"]["binding_constant_err_per_molar"]
        exact = _exact_kb_per_molar(w)
        # bins of 0.05 nm against the exact integral: within the MBAR error plus 5 % quadrature
        assert abs(kb - exact) < NSIGMA_MAX * dkb + 0.05 * exact, (name, kb, exact, dkb)
    assert by["crown6-K"]["result"]["well_kt"] == pytest.approx(-9.0, abs=0.5)
    # the binning-free mean-force profile agrees with the exact PMF (trapezoid on 0.1 nm windows)
    for side in ("+z", "-z"):
        mf = by["crown6-K"]["mean_force"][side]
        zm, w = np.array(mf["z_mean_nm"]), np.array(mf["w_kt"])
        inner = np.abs(zm) < 1.2
        assert np.max(np.abs(w[inner] - k(zm[inner]))) < 1.0
    facts = {f["ion"]: f for f in summary["facts"]}
    assert facts["Na+"]["holds"] and facts["K+"]["holds"] and summary["all_facts_hold"]
    assert facts["K+"]["measured"]["well_kt"] < facts["K+"]["measured"]["well_na_kt"] - 1.0
    for f in summary["facts"]:
        keys = {"sampling_ps_per_window", "equilibration_ps_per_window", "block_half_max_diff_kt", "both_sides"}
        assert keys <= set(f["pmfs"][0])
    assert summary["forcefield_option"] == "sahu-crown" and summary["commit"]


def test_partial_pmfs_are_never_reported_as_converged(tmp_path):
    rng = np.random.default_rng(12)
    raw = _raw()
    raw["pmf"] = [p for p in raw["pmf"] if p["name"] == "crown6-Na"]
    plan = val.parse_validation(raw)
    plus_side = [z for z in plan.centres_nm if z >= 0]
    _write_records(tmp_path / "pmf", plan, "crown6-Na", _well(0.8), rng=rng, centres=plus_side, sampling_steps=10000)
    summary = val.summarize_validation(plan, tmp_path / "pmf", tmp_path)
    rec = summary["pmfs"][0]
    assert rec["windows_recorded"] == 16 and rec["windows_planned"] == 31
    assert not rec["both_sides"] and rec["sides_reaching_bulk"] == ["+z"]
    assert rec["sampling_ps_per_window"] == 20.0 and not rec["converged"]
    (fact,) = summary["facts"]
    assert fact["rule_met_by_partial_data"] and not fact["holds"] and fact["status"].startswith("NOT converged")
    per = (25000 + 100000) * 2.0e-6
    assert summary["remaining_simulated_ns"] == pytest.approx(15 * per)
    assert summary["remaining_cpu_hours_at_measured_rate"] == pytest.approx(15 * per / summary["measured_ns_per_day"] * 24.0)
    # nothing recorded: no PMF, no verdict
    empty = val.summarize_validation(plan, tmp_path / "none", tmp_path / "s2")
    assert empty["facts"][0]["status"] == "no PMF yet" and not empty["facts"][0]["holds"]


def test_a_blocked_ion_is_not_a_carrier(tmp_path):
    """A +6 kT barrier in the pore: no plug (K_b < 1/M), but not a carrier either."""
    raw = _raw()
    raw["pmf"] = [p for p in raw["pmf"] if p["name"] == "crown6-Na"]
    plan = val.parse_validation(raw)
    _write_records(tmp_path / "pmf", plan, "crown6-Na", _well(-6.0), rng=np.random.default_rng(14), n=1000)
    (fact,) = val.summarize_validation(plan, tmp_path / "pmf", tmp_path)["facts"]
    assert fact["measured"]["binding_constant_per_molar"] < 0  # depleted relative to bulk
    assert fact["measured"]["barrier_kt"] == pytest.approx(6.0, abs=0.5)
    assert not fact["rule_met_by_partial_data"] and not fact["holds"]


def test_binding_constant_is_the_excess_over_bulk():
    z = np.arange(-1.0, 1.0001, 0.05)
    kb, dkb = val.binding_constant_per_molar(z + 0.025, np.zeros_like(z), np.full_like(z, 0.1), 2.0)
    n_site = np.sum(np.abs(z + 0.025) < val.SITE_HALF_WIDTH_NM)
    assert kb == pytest.approx(0.0, abs=1e-12)  # a flat PMF binds nothing beyond bulk
    kb2, _ = val.binding_constant_per_molar(z + 0.025, np.full_like(z, -math.log(2.0)), np.zeros_like(z), 2.0)
    assert kb2 == pytest.approx(n_site * 0.05 * 2.0 * 0.602214076)  # twice bulk density: one site volume in excess
    assert dkb == pytest.approx(0.1 * math.sqrt(n_site) * 0.05 * 2.0 * 0.602214076)


def test_recorded_windows_are_not_rerun_on_a_fresh_checkout(tmp_path, monkeypatch):
    """A campaign whose windows are all recorded (as on a fresh clone of the repository) builds
    nothing and runs nothing."""
    raw = _raw()
    raw["pmf"] = [p for p in raw["pmf"] if p["name"] == "crown6-Na"]
    plan = val.parse_validation(raw)
    _write_records(tmp_path, plan, "crown6-Na", _well(0.8), rng=np.random.default_rng(13), n=100)

    def no_build(*args, **kwargs):
        raise AssertionError("a recorded campaign must not build a system")

    monkeypatch.setattr(val, "_build", no_build)
    assert val.run_validation(plan, tmp_path) == 0


@pytest.mark.slow
def test_a_real_window_is_recorded_once_and_skipped_on_rerun(tmp_path, monkeypatch):
    """One real OpenMM window (crown6 Na+, a few fs) through run_validation; a re-run skips it."""
    monkeypatch.setenv("OPENMM_CPU_THREADS", "1")
    raw = _raw()
    raw["pmf"] = [p for p in raw["pmf"] if p["name"] == "crown6-Na"]
    raw["windows"].update(equilibration_ps=0.02, sampling_ps=0.04, sample_every_ps=0.02, z_max_nm=0.1, sides=["+z"])
    raw["analysis"]["bulk_min_abs_z_nm"] = 0.05
    plan = val.parse_validation(raw)
    assert val.run_validation(plan, tmp_path, max_windows=1) == 1
    (path,) = tmp_path.glob("sahu-2019/crown6-Na/window_*.npz")
    assert path.name == "window_1000.npz"
    with np.load(path) as w:
        assert w["z_nm"].shape == (2,) and str(w["forcefield_option"]) == "sahu-crown"
        assert str(w["prov_cpu_threads"]) == "1" and len(str(w["prov_commit"])) >= 7
        assert list(w["membrane_templates"]) == ["CRC", "CRO", "GRA"]
        assert list(w["membrane_template_charges_e"]) == [0.12, -0.24, 0.0]
    mtime = path.stat().st_mtime_ns
    assert val.run_validation(plan, tmp_path, max_windows=1) == 1  # the next window (z0 = 0.1)
    assert val.run_validation(plan, tmp_path) == 0 and path.stat().st_mtime_ns == mtime
