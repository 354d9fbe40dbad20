"""Mistakes caught before they cost a run (issue 26, item 1): voltages typed in mV, time steps typed
in seconds, a misspelt calibration path in a circuit file, a protocol default the user never set,
an output folder that does not exist; in Python, the CLI and circuits alike."""

import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

import ionkinetics as ik
from ionkinetics._checks import MAX_ABS_V, check_run_size
from ionkinetics.cli import app
from ionkinetics.kinetics import protocols

runner = CliRunner()


def _forget_warned(cal):
    """The range warning is once per calibration and range in a process: forget it for this test."""
    ik._WARNED_RANGES.discard((cal.system_id, tuple(float(x) for x in cal.data_range_v)))


def test_conductance_warns_beyond_the_data_and_refuses_millivolts():
    cal = ik.load_calibration("B3N:KCl@1.0")
    assert cal.data_range_v == (0.1, 0.4)
    _forget_warned(cal)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ik.conductance(cal, [0.1, 0.4, -0.4])  # inside: silent
    with pytest.warns(ik.OutsideDataRange, match=r"\|V\| = 0\.6 V, beyond .* \(0\.1-0\.4 V\)"):
        ik.conductance(cal, [0.2, -0.6])
    # 100 "V" returned 220 pS silently: 100 mV was meant
    with pytest.raises(ValueError, match=r"v must stay within ±2 V .* got \|V\| = 100 V; did you mean mV\? .* pass 0\.1"):
        ik.conductance(cal, 100)
    # beyond ±2 V but not a millivolt value inside the data either: refused, no mV hint
    with pytest.raises(ValueError, match=r"got \|V\| = 2500 V$"):
        ik.conductance(cal, -2500.0)


def test_simulate_refuses_volts_typed_as_millivolts_and_seconds_typed_as_ns():
    cal = ik.load_calibration("crown6:NaCl@1.0+KCl@0.5")
    with pytest.raises(ValueError, match=r"the protocol must stay within ±2 V .* got \|V\| = 500 V; did you mean mV\?"):
        ik.simulate(cal, protocols.step(500, 20.0, 120.0, duration_ns=400.0), 0.05)
    # 5e-11 "ns" was 5e-11 s: 8e12 steps, refused with the numbers before anything is allocated
    with pytest.raises(ValueError, match=r"400 ns / dt_ns = 5e-11 ns = 8e\+12 steps.*did you mean seconds\? .* dt_ns = 0\.05"):
        ik.simulate(cal, protocols.step(0.5, 20.0, 120.0, duration_ns=400.0), 5e-11)


def test_run_size_check_names_the_limit_and_passes_small_runs():
    assert check_run_size(400.0, 0.05, bytes_per_step=72) == 8000
    with pytest.raises(ValueError, match=r"at most 1e\+06 steps; use a larger dt_ns"):
        check_run_size(1e3, 1e-4, bytes_per_step=8, max_steps=1e6)
    with pytest.raises(ValueError, match=r"about 7\.45 GiB held in memory; at most 1 GiB"):
        check_run_size(1e9, 1.0, bytes_per_step=8, max_bytes=2**30)
    assert MAX_ABS_V == 2.0


def test_cli_simulate_surfaces_the_range_warning_and_refuses_millivolts(tmp_path):
    out = tmp_path / "trace.csv"
    _forget_warned(ik.load_calibration("B3N:KCl@1.0"))  # a fresh `ionkinetics` process has warned nothing yet
    # 0.6 V on B3N K+ (data 0.1-0.4 V): runs, and says so (Python warned; the CLI was silent)
    result = runner.invoke(
        app, ["simulate", "B3N:KCl@1.0", "--protocol", "dc:v=0.6,duration_ns=2", "--dt-ns", "0.1", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "warning: B3N:KCl@1.0: the protocol reaches |V| = 0.6 V, beyond the voltages" in " ".join(result.output.split())
    assert out.is_file()
    # 500 "V": refused before running, nothing written
    bad = tmp_path / "bad.csv"
    result = runner.invoke(
        app, ["simulate", "B3N:KCl@1.0", "--protocol", "step:v=500,t_on_ns=20,t_off_ns=120,duration_ns=400", "-o", str(bad)]
    )
    assert isinstance(result.exception, ValueError)
    assert "did you mean mV?" in str(result.exception) and not bad.exists()
    result = runner.invoke(app, ["simulate", "B3N:KCl@1.0", "--dt-ns", "5e-11", "-o", str(bad)])
    assert isinstance(result.exception, ValueError), result.exception  # was MemoryError: 58.2 TiB
    assert "8e+12 steps" in str(result.exception) and "did you mean seconds?" in str(result.exception)
    assert not bad.exists()


def _circuit(tmp_path, *, calibration="B3N:KCl@1.0", protocol=None, duration_ns=4.0, name="c.toml"):
    protocol = protocol or '{ kind = "step", v = 0.3, t_on_ns = 1.0, t_off_ns = 3.0, duration_ns = 4.0 }'
    path = tmp_path / name
    path.write_text(
        f"""schema = "ionkinetics.circuit/1"
name = "checks"
duration_ns = {duration_ns}
dt_ns = 0.1

[[element]]
name = "V1"
kind = "voltage_source"
nodes = ["in", "0"]
protocol = {protocol}

[[element]]
name = "Racc"
kind = "resistor"
nodes = ["in", "m"]
r_ohm = 1e8

[[element]]
name = "M1"
kind = "membrane"
nodes = ["m", "0"]
calibration = "{calibration}"
n_pores = 10
"""
    )
    return path


def test_a_misspelt_calibration_path_in_a_circuit_file_is_a_missing_file(tmp_path):
    from ionkinetics.circuits import load_circuit

    (tmp_path / "cal").mkdir()
    for typo in ("cal/crown6-NaCl1.0.jsn", "cal/crown6-NaCl1.0", "crown6-NaCl1.0.jsn", "cal/missing.json"):
        path = _circuit(tmp_path, calibration=typo)
        with pytest.raises(ValueError, match="calibration file not found") as info:
            load_circuit(path)
        message = str(info.value)
        assert str(tmp_path / typo) in message and "system id must look like" not in message, message
    with pytest.raises(FileNotFoundError, match=r"calibration file not found: 'no/such\.jsn' does not exist"):
        ik.load_calibration("no/such.jsn")
    with pytest.raises(ValueError, match="system id must look like"):  # an id that is not a path keeps its rule
        ik.load_calibration("crown6 NaCl")
    with pytest.raises(ValueError, match=r"unknown salt '\[/red\]'"):  # "pore:..." is an id, even with a "/" in it
        ik.load_calibration("crown6:NaCl@1.0+[/red]@0.5")


def test_a_protocol_default_duration_is_named_as_a_default(tmp_path):
    from ionkinetics.circuits import load_circuit

    step = '{ kind = "step", v = 0.5, t_on_ns = 10.0, t_off_ns = 40.0 }'
    with pytest.raises(ValueError) as info:
        load_circuit(_circuit(tmp_path, protocol=step, duration_ns=50.0))
    message = " ".join(str(info.value).split())
    assert "element 'V1': its step protocol sets no duration_ns, so it lasts the default" in message
    assert "= 70 ns, longer than the circuit's duration_ns = 50; add duration_ns = 50 to its protocol table" in message
    train = '{ kind = "pulse_train", amplitude_v = 0.3, width_ns = 1.0, period_ns = 2.0, count = 2 }'
    with pytest.raises(ValueError, match=r"t_start_ns \+ count \* period_ns = 4 ns, shorter than the circuit's duration_ns = 6"):
        load_circuit(_circuit(tmp_path, protocol=train, duration_ns=6.0))
    # a default that equals the circuit's duration is no mistake
    assert load_circuit(_circuit(tmp_path, protocol=train, duration_ns=4.0)).duration_ns == 4.0


def test_a_circuit_refuses_millivolt_sources_before_solving_and_warns_beyond_the_data(tmp_path):
    from ionkinetics.circuits import compile_circuit, load_circuit, transient

    mv = '{ kind = "step", v = 500.0, t_on_ns = 1.0, t_off_ns = 3.0, duration_ns = 4.0 }'
    cf = load_circuit(_circuit(tmp_path, protocol=mv))
    with pytest.raises(ValueError, match=r"element 'V1' \(voltage source\) must stay within ±2 V .* did you mean mV\?"):
        transient(compile_circuit(cf.graph, cf.duration_ns, cf.dt_ns))  # Newton failed after 54 s
    cal = ik.load_calibration("B3N:KCl@1.0")
    _forget_warned(cal)
    high = '{ kind = "step", v = 0.6, t_on_ns = 1.0, t_off_ns = 3.0, duration_ns = 4.0 }'
    cf = load_circuit(_circuit(tmp_path, protocol=high))
    with pytest.warns(ik.OutsideDataRange, match=r"membrane 'M1' reaches \|V\| = 0\.\d+ V, beyond .* \(0\.1-0\.4 V\)"):
        tr = transient(compile_circuit(cf.graph, cf.duration_ns, cf.dt_ns))
    assert np.max(np.abs(tr.vb("M1"))) > 0.4  # the warning reports what the membrane saw
    _forget_warned(cal)
    low = load_circuit(_circuit(tmp_path))  # 0.3 V: inside the data, silent
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        transient(compile_circuit(low.graph, low.duration_ns, low.dt_ns))


def test_a_circuit_time_step_typed_in_seconds_says_so(tmp_path):
    from ionkinetics.circuits import load_circuit

    path = _circuit(tmp_path)
    path.write_text(path.read_text().replace("dt_ns = 0.1", "dt_ns = 1e-10"))
    with pytest.raises(ValueError, match=r"4e\+10; did you mean seconds\? 1e-10 s is dt_ns = 0\.1 \(ns\)"):
        load_circuit(path)
