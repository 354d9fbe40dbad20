"""Fits that refuse to lie (issue 26, item 2): `ionkinetics fit` prints a line per start and a
target-vs-model table, exits non-zero on a poor fit (a target beyond MAX_RESIDUAL_SIGMA, or χ²/dof
beyond MAX_CHI2_PER_DOF) and writes nothing, unless --accept-poor-fit, which records the verdict."""

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ionkinetics as ik
from ionkinetics.calibrate._fit import MAX_CHI2_PER_DOF, MAX_RESIDUAL_SIGMA, fit_verdict
from ionkinetics.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]

# crown6 Na+/K+: the carrier's open pore conducts ~400 pS, so w = 0.99 at rest and 1.5 pS at 0.1 V
# cannot both hold (the contradictory targets: the file was written, exit 0, one row 19.8σ off)
CONTRADICTORY = f"""schema = "ionkinetics.targets/1"
system = "crown6:NaCl@1.0+KCl@0.5"
carrier = "Na+"
source = "test: contradictory on purpose"
open_conductance_from = "{REPO / "calibration" / "crown6-NaCl1.0.json"}"
assumptions = ["w at rest 0.99: contradicts the 1.5 pS on purpose"]

[[dopant]]
ion = "K+"
site = "center"

[parameters]
"K+.trap.k0_per_ns_per_molar" = 0.08
"K+.barrier_position" = 0.1
"K+.escape.k0_per_ns" = 3e-5
free = ["K+.trap.k0_per_ns_per_molar", "K+.barrier_position", "K+.escape.k0_per_ns"]

[[target]]
kind = "conductance"
v = 0.1
g_ps = 1.5
rel_sigma = 0.15
section = "test"
quote = "test"

[[target]]
kind = "steady_w"
v = 0.0
w = 0.99
sigma = 0.05
assumed = true
note = "ASSUMED: contradicts the conductance"

[[target]]
kind = "step_tau"
v_from = 0.5
v_to = 0.0
tau_ns = 25.0
rel_sigma = 0.5
section = "test"
quote = "test"
"""


def test_the_verdict_thresholds_are_named_and_applied():
    assert (MAX_RESIDUAL_SIGMA, MAX_CHI2_PER_DOF) == (3.0, 9.0)
    good = fit_verdict([{"residuals": [2.9, -1.0]}, {"residuals": [0.5]}], n_free=1)
    assert not good["poor"] and good["dof"] == 2 and good["chi2_per_dof"] == pytest.approx((2.9**2 + 1 + 0.25) / 2)
    one_miss = fit_verdict([{"residuals": [3.2]}], n_free=1)  # no dof left: only the residual rule applies
    assert one_miss["poor"] and one_miss["chi2_per_dof"] is None and "more than 3 sigma" in one_miss["reasons"][0]
    spread = fit_verdict([{"residuals": [2.9, 2.9, 2.9, -2.9]}], n_free=3)  # each within 3σ, χ²/dof = 33.6
    assert spread["poor"] and spread["reasons"] == ["chi^2/dof = 33.6/1 = 33.6 > 9"]


def test_contradictory_targets_exit_nonzero_with_the_table_and_write_nothing(tmp_path):
    targets = tmp_path / "contradictory.toml"
    targets.write_text(CONTRADICTORY)
    out = tmp_path / "cal.json"
    result = runner.invoke(app, ["fit", str(targets), "-o", str(out), "--starts", "2"])
    assert result.exit_code == 1, result.output
    assert not out.exists()
    text = result.output  # the fit's lines are never wrapped (soft_wrap): one line each in a log
    assert len(re.findall(r"^  start \d/2: χ² = [\d.e+]+ in [\d.]+ s; best so far", text, re.M)) == 2, text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("target "))
    assert lines[header].split() == ["target", "value", "σ", "model", "(model−value)/σ"]
    rows = {line.split("  ")[0]: line for line in lines[header + 2 : header + 5]}
    assert set(rows) == {"G at 0.1 V (pS)", "w at rest, 0 V (assumed)", "tau of w after 0.5 -> 0 V (ns)"}
    worst = max(abs(float(line.split()[-2 if line.endswith("!") else -1])) for line in rows.values())
    assert worst > MAX_RESIDUAL_SIGMA
    assert sum(line.endswith("!") for line in rows.values()) >= 1  # the rows beyond 3σ are marked
    assert "poor fit:" in text and "wrote nothing" in text and "--accept-poor-fit" in text


@pytest.mark.slow  # a second fit (its own L-BFGS compile): 40-60 s on the loaded 2-core machine
def test_a_poor_fit_accepted_is_written_with_its_verdict(tmp_path):
    targets = tmp_path / "contradictory.toml"
    targets.write_text(CONTRADICTORY)
    out = tmp_path / "cal.json"
    result = runner.invoke(app, ["fit", str(targets), "-o", str(out), "--starts", "1", "--accept-poor-fit"])
    assert result.exit_code == 0, result.output
    assert "poor fit accepted (--accept-poor-fit)" in result.output
    verdict = json.loads(out.read_text())["fit"]["verdict"]
    assert verdict["poor"] and verdict["accepted"] and verdict["max_abs_residual_sigma"] > MAX_RESIDUAL_SIGMA
    assert verdict["thresholds"] == {"max_residual_sigma": 3.0, "max_chi2_per_dof": 9.0}
    assert ik.load_calibration(out).fit["verdict"]["poor"]


def test_a_good_fit_prints_the_table_records_its_verdict_and_names_a_new_folder(tmp_path):
    out = tmp_path / "new" / "dir" / "cal.json"
    result = runner.invoke(app, ["fit", "calibration/targets/crown6-NaCl1.0.toml", "-o", str(out), "--starts", "1"])
    assert result.exit_code == 0, result.output
    assert f"created folder {out.parent} (it did not exist); wrote {out}\n" in result.output  # one line, never silent
    assert "G at 0.1 V (pS)" in result.output and "(model−value)/σ" in result.output
    verdict = ik.load_calibration(out).fit["verdict"]
    assert not verdict["poor"] and not verdict["accepted"] and verdict["reasons"] == []
