"""The command line: the demo's files and summary, fit, simulate, and clear errors (exit 2)."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import ionkinetics as ik
from ionkinetics.cli import app

runner = CliRunner()


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ionkinetics.cli", *args], capture_output=True, text=True, cwd=cwd, check=False)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = runner.invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_demo_writes_figures_and_summary(demo_dir):
    for name in ("gv_curves.png", "step_responses.png", "potentiation.png", "summary.csv", "summary.json"):
        path = demo_dir / name
        assert path.is_file(), name
        assert name.endswith(".csv") or path.stat().st_size > 1000, name
    assert (demo_dir / "gv_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((demo_dir / "summary.json").read_text())
    rows = {r["system"]: r for r in summary["systems"]}
    assert set(rows) == set(ik.list_calibrations())
    with open(demo_dir / "summary.csv") as fh:
        assert {r["system"] for r in csv.DictReader(fh)} == set(rows)
    # the demo's table agrees with the library
    for sid in ("crown6:NaCl@1.0+KCl@0.5", "B3N:KCl@1.0+RbCl@0.5"):
        assert np.isclose(rows[sid]["g_0.1v_ps"], ik.conductance(ik.load_calibration(sid), 0.1), rtol=1e-6)
    # held-out prediction: switching energy per pore within an order of magnitude of the paper's
    for sid, published in (("crown6:NaCl@1.0+KCl@0.5", 0.3), ("B3N:KCl@1.0+RbCl@0.5", 0.1)):
        row = rows[sid]
        assert row["published_e_switch_aj"] == published
        assert published / 30 < row["e_switch_4tau_aj"] < published * 30
    assert rows["crown6:NaCl@1.0+KCl@0.5"]["role"] == "K+: voltage activator"
    assert rows["B3N:KCl@1.0+RbCl@0.5"]["role"] == "Rb+: voltage inactivator"


def test_fit_command_writes_a_loadable_calibration(tmp_path):
    out = tmp_path / "cal.json"
    result = runner.invoke(app, ["fit", "calibration/targets/crown6-NaCl1.0.toml", "-o", str(out), "--starts", "1"])
    assert result.exit_code == 0, result.output
    cal = ik.load_calibration(out)
    assert cal.provenance["command"].startswith("ionkinetics")
    shipped = ik.load_calibration("crown6:NaCl@1.0")
    assert np.isclose(ik.conductance(cal, 0.1), ik.conductance(shipped, 0.1), rtol=1e-6)


def test_simulate_command_writes_a_trace(tmp_path):
    out = tmp_path / "trace.csv"
    result = runner.invoke(
        app, ["simulate", "B3N:KCl@1.0+RbCl@0.5", "--protocol", "step:v=0.5,t_on_ns=5,t_off_ns=25,duration_ns=50", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    data = np.loadtxt(out, delimiter=",", skiprows=1)
    assert data.shape == (1001, 6)
    assert np.all((data[:, 2] >= 0) & (data[:, 2] <= 1))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simulate", "crown6:NaCl@1.0+XeCl@0.5"], "unknown salt 'XeCl'"),
        (["fit", "no/such/targets.toml", "-o", "x.json"], "does not exist"),
        (["calibrate", "nowhere", "-o", "x.json"], "run_dirs: 'nowhere' has no spec.json"),
        (["campaign", "plan", "nowhere.toml"], "does not exist"),
        (["simulate", "B3N:KCl@1.0", "--protocol", "step:v=0.5,t_on_ns=1.03,t_off_ns=5,duration_ns=10"], "jump at t=1.03"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_writes_nothing(tmp_path, args, message):
    result = _cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in " ".join((result.stdout + result.stderr).split())
    assert not list(tmp_path.iterdir())


def test_demo_circuit_experiments_show_the_neuromorphic_behaviour(demo_dir):
    """The circuit experiments the demo runs (circuits/*.toml): the physics each one is there to show."""
    c = json.loads((demo_dir / "summary.json").read_text())["circuits"]
    assert (demo_dir / "circuits" / "memristor" / "memristor_iv.png").is_file()
    pulse = c["pulse-generation"]  # inactivation: the current peaks at the step, then the pores plug
    assert pulse["peak_current_pa"] > 0 and 0 < pulse["fwhm_ns"] < 20 and pulse["t_peak_ns"] < 11
    pot = c["potentiation"]  # each write pulse raises the weight; it then relaxes
    w = np.array(pot["w_after_each_pulse"])
    assert np.all(np.diff(w) > 0) and w[-1] > 1.5 * w[0] and w[0] > 10 * pot["w_rest"]
    cal = ik.load_calibration("crown6:NaCl@1.0+KCl@0.5")
    tau_read = ik.kinetics.mean_relaxation_time_ns(cal.params, 0.05, ik.kinetics.steady_state(cal.params, 0.5))
    assert abs(pot["retention_tau_ns"] / float(tau_read) - 1) < 0.15  # circuit retention ≈ the membrane's own τ at the read bias
    ppf = np.array(pot["ppf_ratio"])
    assert np.all(ppf > 1) and np.all(np.diff(ppf) < 0) and abs(ppf[-1] - 1) < 0.05  # facilitation fades with the interval
    mem = c["memristor"]  # pinched hysteresis whose lobes shrink as the frequency rises
    assert mem["area_shrinks_with_frequency"] and max(mem["pinch_current_fraction_near_0v"]) < 1e-3
    band = c["bandpass"]  # activator in series with inactivator: conduction in a voltage band
    g = np.array(band["conductance_ps"])
    k = int(np.argmax(g))
    assert 0 < k < len(g) - 1 and g[k] > 3 * g[0]
    par = c["parallel"]  # parallel membranes sum their currents
    assert par["kcl_max_mismatch_pa"] < 1e-6 * max(par["source_current_pa"])
    ret = c["retention"]
    assert np.all(np.diff(ret["w_read"]) < 0) and ret["w_read"][0] > ret["w_before_write"]


def test_design_command_counts_and_predicts_from_the_text_role_table(tmp_path):
    result = runner.invoke(app, ["design", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "design.json").read_text())
    assert report["n_mixtures"] == 2044 and report["n_bicationic"] == 144
    activated = {r["system"] for r in report["voltage_activated"]}
    assert "crown6:LiCl@1.0+KCl@0.5" in activated  # the paper's worked example (section 2.4)
    assert "B3N:KCl@1.0+RbCl@0.5" in {r["system"] for r in report["voltage_inactivated"]}
    assert (tmp_path / "role_map.png").read_bytes()[:4] == b"\x89PNG"
