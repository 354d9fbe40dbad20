"""Circuit files: the shipped experiments load; bad files are refused naming the element and the rule."""

import copy

import pytest

from ionkinetics import circuits as C

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
            "protocol": {"kind": "step", "v": 0.5, "t_on_ns": 1.0, "t_off_ns": 5.0},
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
        (lambda r: r.update(dt_ns=0.0), r"'dt_ns' must be a number > 0"),
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
    with pytest.raises(ValueError, match=r"experiment\.kind must be one of \['memristor', 'potentiation'"):
        C.run_experiment(cf, tmp_path)
