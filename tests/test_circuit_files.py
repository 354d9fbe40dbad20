"""Circuit files: the shipped experiments load; bad files are refused naming the element and the rule."""

import copy
import json

import pytest

from ionkinetics import circuits as C
from ionkinetics import experiments as E

GOOD = {
    "schema": "ionkinetics.circuit/1",
    "name": "t",
    "duration_ns": 10.0,
    "dt_ns": 0.1,
    "element": [
        {
            "name": "V1",
            "kind": "voltage_source",
            "nodes": ["in", "0"],
            # its own duration: the step's default (t_off + (t_off - t_on) = 9 ns) is not the circuit's 10 ns
            "protocol": {"kind": "step", "v": 0.5, "t_on_ns": 1.0, "t_off_ns": 5.0, "duration_ns": 10.0},
        },
        {"name": "Racc", "kind": "resistor", "nodes": ["in", "m"], "r_ohm": 1e8},
        {"name": "M1", "kind": "membrane", "nodes": ["m", "0"], "calibration": "B3N:KCl@1.0+RbCl@0.5", "n_pores": 10},
    ],
}


def test_shipped_circuit_files_load_and_validate():
    names = {C.load_circuit(p).name for p in C.list_circuits()}
    assert {"pulse-generation", "potentiation", "memristor", "retention", "bandpass", "parallel"} <= names
    cf = C.parse_circuit(GOOD)
    assert sorted(k for *_, k in cf.graph.edges(keys=True)) == ["M1", "Racc", "V1"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.update(schema="ionkinetics.circuit/9"), r"'schema' must be 'ionkinetics.circuit/1'"),
        (
            lambda r: r["element"][1].update(r_ohm=-1.0),
            r"element 'Racc': r_ohm \(resistance, ohm\) must be a finite number > 0; got -1.0",
        ),
        (lambda r: r["element"][1].pop("r_ohm"), r"element 'Racc': a resistor needs \['r_ohm'\]"),
        (lambda r: r["element"][1].update(kind="diode"), r"element\[1\]\.kind must be one of"),
        (lambda r: r["element"][1].update(ohms=3), r"element 'Racc': unknown fields \['ohms'\]"),
        (lambda r: r["element"][2].update(calibration="B3N:KCl@1.0+XeCl@0.5"), r"element 'M1': unknown or invalid calibration"),
        (lambda r: r["element"][2].update(n_pores=0), r"element 'M1': n_pores must be an integer >= 1"),
        (lambda r: r["element"][0]["protocol"].update(kind="square"), r"element 'V1'\.protocol\.kind must be one of"),
        (lambda r: r["element"][0]["protocol"].update(t_on_ns=1.03, duration_ns=10.0), r"element 'V1'.*jump at t=1\.03"),
        (lambda r: r["element"][2].update(nodes=["m", "x"]), r"node '(x|0)' is floating: only one element"),
        (lambda r: r["element"].append(dict(r["element"][1])), r"element name 'Racc' appears twice"),
        (lambda r: r.update(dt_ns=0.0), r"'dt_ns' must be a finite number > 0"),
    ],
)
def test_bad_circuit_files_are_refused(edit, message):
    raw = copy.deepcopy(GOOD)
    edit(raw)
    with pytest.raises(ValueError, match=message):
        cf = C.parse_circuit(raw)
        C.compile_circuit(cf.graph, cf.duration_ns, cf.dt_ns)


def test_experiment_kind_must_be_known(tmp_path):
    cf = C.parse_circuit({**GOOD, "experiment": {"kind": "levitate"}})
    kinds = r"\['memristor', 'network', 'neuron', 'neuron-design', 'plasticity', 'potentiation'"
    with pytest.raises(ValueError, match=r"experiment\.kind must be one of " + kinds):
        E.run_experiment(cf, tmp_path)


def test_a_file_without_an_experiment_runs_as_a_plain_transient(tmp_path):
    """No [experiment]: `circuit run` writes every node voltage and element current (units in the
    CSV headers), a figure, and the energies with their signs: the source delivers what the
    resistor dissipates plus what the capacitor stores (½CV², exactly, by the trapezoidal rule)."""
    import csv

    import numpy as np
    from typer.testing import CliRunner

    from ionkinetics.cli import app

    path = tmp_path / "rc.toml"
    path.write_text(
        'schema = "ionkinetics.circuit/1"\nname = "rc"\nduration_ns = 10.0\ndt_ns = 0.05\nsave_every = 2\n'
        '[[element]]\nname = "V1"\nkind = "voltage_source"\nnodes = ["in", "0"]\n'
        'protocol = { kind = "step", v = 0.2, t_on_ns = 1.0, t_off_ns = 6.0, duration_ns = 10.0 }\n'
        '[[element]]\nname = "R1"\nkind = "resistor"\nnodes = ["in", "m"]\nr_ohm = 1e9\n'
        '[[element]]\nname = "C1"\nkind = "capacitor"\nnodes = ["m", "0"]\nc_f = 1e-18\n'
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["circuit", "run", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    with open(out / "transient.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == [
        "t_ns",
        "V(in)_V",
        "V(m)_V",
        "I(R1)_pA",
        "I(C1)_pA",
        "I(V1)_pA",
        "E(R1)_aJ",
        "E(C1)_aJ",
        "E(V1)_aJ",
    ]
    assert len(rows) == 10.0 / 0.05 / 2 + 1
    t = np.array([float(r["t_ns"]) for r in rows])
    vm = np.array([float(r["V(m)_V"]) for r in rows])
    exact = np.where(t < 1, 0, np.where(t < 6, 0.2 * (1 - np.exp(-(t - 1))), 0.2 * (1 - np.exp(-5)) * np.exp(-(t - 6))))
    assert np.abs(vm - exact).max() < 2e-3  # τ = RC = 1 ns
    assert (out / "transient.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["experiment"] == "transient"
    e = summary["energies_aj"]
    roles = {name: el["role"] for name, el in e["elements"].items()}
    assert roles == {"V1": "delivered", "R1": "dissipated", "C1": "stored"}
    c_1e21 = 1e-18 * 1e21  # pA·ns/V; ½CV² in pA·ns·V = 1e-21 J = 1e-3 aJ
    stored = 0.5 * c_1e21 * (vm[-1] ** 2 - vm[0] ** 2) * 1e-3
    assert abs(e["stored_in_capacitors_aj"] - stored) < 1e-9 * max(abs(stored), 1e-12) + 1e-15
    assert e["delivered_by_sources_aj"] > 0 and e["dissipated_aj"] > 0
    assert abs(e["balance_aj"]) < 1e-9 * e["delivered_by_sources_aj"]
    assert "delivered" in e["sign_convention"] and "dissipated" in e["sign_convention"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [  # issue 15: a name that leaves the output folder, an infinite duration, an aliased sine
        (lambda r: r.update(name="x/../../../../outside"), r"field 'name' must be a plain file name .*got 'x/\.\./"),
        (lambda r: r.update(name=".."), r"field 'name' must be a plain file name"),
        (lambda r: r.update(duration_ns=float("inf")), r"'duration_ns' must be a finite number > 0; got inf"),
        (lambda r: r.update(duration_ns=1e12), r"duration_ns/dt_ns must be at most"),
        (
            lambda r: r["element"][0].update(
                protocol={"kind": "sine", "amplitude_v": 0.2, "frequency_ghz": 19.0, "duration_ns": 10.0}
            ),
            r"element 'V1'.*dt_ns=0\.1 under-samples the sine of frequency_ghz=19 .*<= 1/\(4·frequency_ghz\)",
        ),
        (
            lambda r: r["element"][0]["protocol"].update(duration_ns=20.0),
            r"element 'V1': its protocol lasts 20 ns, longer than the circuit's duration_ns=10",
        ),
    ],
)
def test_unsafe_or_silently_wrong_circuit_files_are_refused(edit, message):
    raw = copy.deepcopy(GOOD)
    edit(raw)
    with pytest.raises(ValueError, match=message):
        cf = C.parse_circuit(raw)
        C.compile_circuit(cf.graph, cf.duration_ns, cf.dt_ns)


def test_circuit_run_without_out_stays_in_the_working_folder(tmp_path):
    """`circuit run` with no -o writes circuit-<name>/ in the working folder; a name with a path in
    it is refused before anything is written (it used to write four folders up)."""
    import subprocess
    import sys

    work = tmp_path / "a" / "b" / "c" / "d" / "work"
    work.mkdir(parents=True)
    toml = (
        'schema = "ionkinetics.circuit/1"\nname = "x/../../../../outside"\nduration_ns = 1.0\ndt_ns = 0.1\n'
        '[[element]]\nname = "V1"\nkind = "voltage_source"\nnodes = ["in", "0"]\n'
        'protocol = { kind = "dc", v = 0.1, duration_ns = 1.0 }\n'
        '[[element]]\nname = "R1"\nkind = "resistor"\nnodes = ["in", "0"]\nr_ohm = 1e9\n'
    )
    (work / "evil.toml").write_text(toml)
    result = subprocess.run(
        [sys.executable, "-m", "ionkinetics.cli", "circuit", "run", "evil.toml"], cwd=work, capture_output=True, text=True
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "field 'name' must be a plain file name" in result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "c", "d", "evil.toml", "work"]
