"""The ngspice export: netlists run in ``ngspice -b`` and agree with the transient solver.

Agreement is measured at the solver's time points (ngspice's output, on its own adaptive time
points, is linearly interpolated there) as max |difference| / max |current|. The exported
sources jump by ramps of 1e-3·dt that start at the jump time, so at every grid time the PWL
value equals the solver's left limit; no time points need to be excluded.
"""

import dataclasses
import re
import shutil
import subprocess

import numpy as np
import pytest

from helpers import make_calibration
from ionkinetics import circuits as C
from ionkinetics.calibrate import save_calibration
from ionkinetics.circuits import compile_circuit, transient
from ionkinetics.circuits._spice import read_spice_data, spice_names, to_spice
from ionkinetics.kinetics import protocols, steady_state

NGSPICE = shutil.which("ngspice")
needs_ngspice = pytest.mark.skipif(
    NGSPICE is None, reason="ngspice is not on PATH (e.g. apt install ngspice): the exported netlists cannot be run"
)
REL_TOL = 1e-3  # of the peak |current|, over the whole run
DATA = "ionkinetics_spice.data"


def run_ngspice(netlist: str, tmp_path, graph, duration_ns):
    (tmp_path / "circuit.cir").write_text(netlist)
    result = subprocess.run(
        [NGSPICE, "-b", "circuit.cir"], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "error" not in result.stderr.lower(), result.stderr[-3000:]
    return read_spice_data(tmp_path / DATA, graph, duration_ns=duration_ns)


def rel_diff(trace_t, ours, spice_t, theirs, peak=None):
    """Max |ours − ngspice| over the run relative to the peak |ours| (or ``peak``)."""
    theirs = np.interp(trace_t, spice_t, theirs)
    peak = np.max(np.abs(ours)) if peak is None else peak
    assert peak > 0
    return float(np.max(np.abs(ours - theirs)) / peak)


def export_and_compare(graph, duration_ns, dt_ns, tmp_path):
    netlist = to_spice(graph, duration_ns, dt_ns, title="test circuit")
    spice = run_ngspice(netlist, tmp_path, graph, duration_ns)
    trace = transient(compile_circuit(graph, duration_ns, dt_ns))
    return netlist, spice, trace


@needs_ngspice
def test_rc_step_matches_the_solver(tmp_path):
    # tau = RC = 10 ns; a 1 V step on at 5 ns, off at 25 ns
    src = C.VoltageSource("vs", protocols.step(1.0, 5.0, 25.0, duration_ns=50.0))
    graph = C.circuit(C.series(C.Resistor("R1", 1e6), C.Capacitor("C1", 1e-14)), src)
    _, spice, trace = export_and_compare(graph, 50.0, 0.05, tmp_path)
    i = trace.i("vs")
    assert np.max(np.abs(i)) > 0.99e6  # pA: 1 V / 1 MΩ right after the step
    assert rel_diff(trace.t_ns, i, spice["t_ns"], spice["i"]["vs"]) < REL_TOL
    assert rel_diff(trace.t_ns, trace.i("C1"), spice["t_ns"], spice["i"]["C1"]) < REL_TOL
    assert rel_diff(trace.t_ns, trace.v("n1"), spice["t_ns"], spice["v"]["n1"]) < REL_TOL


@needs_ngspice
def test_current_source_into_parallel_rc_matches_the_solver(tmp_path):
    # 50 pA into R || C (tau = 5 ns), on at 2 ns, off at 12 ns: checks the current-source sign and scale
    src = C.CurrentSource("ib", protocols.step(50.0, 2.0, 12.0, duration_ns=25.0))
    graph = C.circuit(C.parallel(C.Resistor("Rp", 1e9), C.Capacitor("Cp", 5e-18)), src)
    _, spice, trace = export_and_compare(graph, 25.0, 0.05, tmp_path)
    v = trace.v("in")
    assert v.min() < -0.03  # the source pushes 50 pA from "in" to ground through itself
    assert rel_diff(trace.t_ns, v, spice["t_ns"], spice["v"]["in"]) < REL_TOL
    assert rel_diff(trace.t_ns, trace.i("ib"), spice["t_ns"], spice["i"]["ib"]) < REL_TOL
    assert rel_diff(trace.t_ns, trace.i("Rp"), spice["t_ns"], spice["i"]["Rp"]) < REL_TOL


@needs_ngspice
def test_membrane_behind_an_access_resistor_matches_the_solver(tmp_path):
    # B3N with Rb+ plugging either mouth (3 states), 100 pores, 100 MΩ access, 0.5 V on 5..15 ns
    membrane = C.Membrane("M1", "B3N:KCl@1.0+RbCl@0.5", n_pores=100)
    src = C.VoltageSource("vs", protocols.step(0.5, 5.0, 15.0, duration_ns=20.0))
    graph = C.circuit(C.series(C.Resistor("Ra", 1e8), membrane), src)
    netlist, spice, trace = export_and_compare(graph, 20.0, 0.01, tmp_path)
    assert ".subckt ikmem_m1 a b" in netlist and ".ic v(xm1.p1)=" in netlist and "MEAN-FIELD" not in netlist
    i = trace.i("vs")
    peak = np.max(np.abs(i))
    assert peak > 1000.0  # pA: the membrane conducts
    assert rel_diff(trace.t_ns, i, spice["t_ns"], spice["i"]["vs"]) < REL_TOL
    assert rel_diff(trace.t_ns, trace.i("M1"), spice["t_ns"], spice["i"]["M1"], peak) < REL_TOL
    assert rel_diff(trace.t_ns, trace.vb("M1"), spice["t_ns"], spice["v"]["n1"]) < REL_TOL
    w_spice = np.interp(trace.t_ns, spice["t_ns"], spice["p"]["M1"][:, 0])
    assert np.max(np.abs(trace.w("M1") - w_spice)) < REL_TOL
    assert trace.w("M1").min() < 0.6  # the occupancy moved: the kinetics were exercised
    # ngspice started from the steady state at the operating point (here 0 V)
    np.testing.assert_allclose(spice["p"]["M1"][0], np.asarray(steady_state(membrane.load().params, 0.0)), atol=1e-9)


FOUR_STATE = make_calibration(
    "crown6:NaCl@1.0+KCl@0.5+MgCl2@0.25",
    dopants=(("K+", "center", 0.08, 0.1, 3e-5, 0.55, 0.0), ("Mg2+", "entrance", 0.05, 0.6, 0.08, 0.3, 0.02)),
)


@needs_ngspice
def test_a_four_state_stochastic_membrane_exports_mean_field_and_runs(tmp_path):
    path = save_calibration(FOUR_STATE, tmp_path / "four_state.json")
    assert FOUR_STATE.params.n_states == 4
    pulses = protocols.pulse_train(0.4, 2.0, 5.0, 3, duration_ns=20.0, v_base=-0.1)  # rest at −0.1 V

    def build(stochastic):
        mem = C.Membrane("Mx", str(path), n_pores=50, stochastic=stochastic)
        load = C.series(C.Resistor("Ra", 2e8), C.parallel(mem, C.Capacitor("Cm", 2e-18)))
        return C.circuit(load, C.VoltageSource("vp", pulses))

    netlist = to_spice(build(True), 20.0, 0.02)
    assert "MEAN-FIELD" in netlist and len(re.findall(r"^Cp\d+ p\d+ 0 1$", netlist, flags=re.M)) == 3  # three state nodes
    spice = run_ngspice(netlist, tmp_path, build(True), 20.0)
    p = spice["p"]["Mx"]
    assert p.shape[1] == 4 and np.all(p > -1e-9) and np.all(p < 1 + 1e-9)
    # the mean-field solver on the same circuit: what the stochastic export stands for
    trace = transient(compile_circuit(build(False), 20.0, 0.02))
    assert rel_diff(trace.t_ns, trace.i("vp"), spice["t_ns"], spice["i"]["vp"]) < REL_TOL
    v0 = float(trace.vb("Mx")[0])
    assert v0 < -0.05
    np.testing.assert_allclose(p[0], np.asarray(steady_state(FOUR_STATE.params, v0)), atol=1e-9)


@dataclasses.dataclass(frozen=True)
class Diode(C.Element):
    prefix = "D"


def test_an_unsupported_element_is_refused_by_name():
    graph = C.circuit(C.series(C.Resistor("R1", 1e6), Diode("D7")), C.VoltageSource("vs", protocols.dc(0.1, 1.0)))
    with pytest.raises(ValueError, match=r"'D7'.*Diode"):
        to_spice(graph, 1.0, 0.1)


def test_names_are_made_spice_safe_and_distinct():
    graph = C.circuit(
        C.series(C.Resistor("Ra", 1e6), C.Resistor("RA", 1e6), C.Resistor("r(x)", 1e6)),
        C.VoltageSource("V+", protocols.dc(0.1, 1.0)),
        node="gnd",
    )
    nodes, elements = spice_names(graph)
    assert nodes["0"] == "0" and nodes["gnd"] != "gnd"  # ngspice would short a node named gnd to ground
    assert len(set(elements.values())) == 4
    assert all(s.isascii() and s.replace("_", "").isalnum() and s == s.lower() for s in [*nodes.values(), *elements.values()])
    assert elements["V+"].startswith("v") and elements["r(x)"].startswith("r")


def test_pwl_reproduces_the_held_protocol_values():
    # a sine is held at each step's midpoint; the PWL holds those values with short ramps between
    src = C.VoltageSource("vs", protocols.sine(0.2, 0.1, 10.0))
    graph = C.circuit(C.Resistor("R1", 1e6), src)
    netlist = to_spice(graph, 10.0, 0.5)
    words = netlist.split("PWL(")[1].split(")")[0].replace("+", " ").split()
    t = np.array([float(x) for x in words[0::2]])
    v = np.array([float(x) for x in words[1::2]])
    assert np.all(np.diff(t) > 0)
    held = src.protocol.sample(0.5)
    mid = (np.arange(held.size) + 0.5) * 0.5e-9
    np.testing.assert_allclose(np.interp(mid, t, v), held, rtol=0, atol=1e-15)
    assert t[-1] == pytest.approx(10e-9) and v[0] == src.protocol.v_rest_v
