"""Circuit files (TOML, schema ``ionkinetics.circuit/1``).

::

    schema = "ionkinetics.circuit/1"
    name = "pulse-generation"
    description = "a voltage-inactivating membrane stepped through an access resistor"
    duration_ns = 120.0
    dt_ns = 0.05
    save_every = 2                      # optional, keep every n-th step

    [[element]]
    name = "V1"
    kind = "voltage_source"             # resistor | capacitor | voltage_source | current_source | membrane
    nodes = ["in", "0"]                 # first node, second node; ground is "0"
    protocol = { kind = "step", v = 0.5, t_on_ns = 10.0, t_off_ns = 80.0 }

    [[element]]
    name = "Racc"
    kind = "resistor"
    nodes = ["in", "m"]
    r_ohm = 5e8

    [[element]]
    name = "M1"
    kind = "membrane"
    nodes = ["m", "0"]
    calibration = "B3N:KCl@1.0+RbCl@0.5"   # a shipped system id, or a JSON path relative to this file
    n_pores = 100
    stochastic = false

    [experiment]                        # optional: what `ionkinetics circuit run` measures; without
    kind = "pulse"                      # it (or with kind = "transient") a plain transient: every node
    ...                                 # voltage, element current, membrane w and element energy
                                        # (transient.csv); pulse | potentiation | memristor |
                                        # retention | sweep | transient

Element fields: resistor ``r_ohm``; capacitor ``c_f``; sources ``protocol`` (``kind`` one of
``dc, step, pulse_train, sine, sampled`` with the arguments of :mod:`ionkinetics.protocols`;
current-source values are pA); membrane ``calibration``, ``n_pores``, ``stochastic``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import networkx as nx

from .._checks import looks_like_path, seconds_hint
from .._io import load_toml_as, shipped_dir
from ..kinetics import protocols as _protocols
from . import _graph as G

__all__ = ["CIRCUIT_SCHEMA", "CircuitFile", "circuits_dir", "list_circuits", "load_circuit", "parse_protocol"]

CIRCUIT_SCHEMA = "ionkinetics.circuit/1"
MAX_STEPS = 1e8  # a transient keeps every step in memory: 1e8 steps is already tens of GB
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_KINDS = {
    "resistor": (G.Resistor, {"r_ohm"}),
    "capacitor": (G.Capacitor, {"c_f"}),
    "voltage_source": (G.VoltageSource, {"protocol"}),
    "current_source": (G.CurrentSource, {"protocol"}),
    "membrane": (G.Membrane, {"calibration", "n_pores", "stochastic"}),
}
_REQUIRED = {
    "resistor": {"r_ohm"},
    "capacitor": {"c_f"},
    "voltage_source": {"protocol"},
    "current_source": {"protocol"},
    "membrane": {"calibration"},
}


class CircuitFileError(ValueError):
    """A circuit file that breaks the schema; the message names the field."""


@dataclasses.dataclass(frozen=True)
class CircuitFile:
    """A validated circuit file: the element graph (edges keyed by element name), the transient's ``duration_ns`` and
    ``dt_ns`` (saving every ``save_every``-th step), the ``[experiment]`` table and the file it came from."""

    name: str
    description: str
    graph: nx.MultiDiGraph
    duration_ns: float
    dt_ns: float
    save_every: int
    experiment: dict
    path: str | None


def parse_protocol(spec, where: str) -> _protocols.Protocol:
    """A protocol from ``{kind = ..., <arguments>}`` (``kinetics.protocols.from_dict``), errors as
    :class:`CircuitFileError`."""
    try:
        return _protocols.from_dict(spec, where)
    except ValueError as exc:
        raise CircuitFileError(str(exc)) from None


def _element(i: int, raw: dict, base: Path | None) -> tuple[str, str, G.Element]:
    where = f"element[{i}]"
    if not isinstance(raw, dict):
        raise CircuitFileError(f"{where} must be a table; got {raw!r}")
    kind = raw.get("kind")
    if kind not in _KINDS:
        raise CircuitFileError(f"{where}.kind must be one of {sorted(_KINDS)}; got {kind!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise CircuitFileError(f"{where}.name must be a non-empty string; got {name!r}")
    where = f"element {name!r}"
    nodes = raw.get("nodes")
    if not (isinstance(nodes, list) and len(nodes) == 2 and all(isinstance(n, (str, int)) for n in nodes)):
        raise CircuitFileError(f"{where}: nodes must be a list of two node names; got {nodes!r}")
    cls, allowed = _KINDS[kind]
    unknown = set(raw) - allowed - {"kind", "name", "nodes"}
    if unknown:
        raise CircuitFileError(f"{where}: unknown fields {sorted(unknown)} for a {kind}; allowed {sorted(allowed)}")
    missing = _REQUIRED[kind] - set(raw)
    if missing:
        raise CircuitFileError(f"{where}: a {kind} needs {sorted(missing)}")
    args = {k: raw[k] for k in allowed if k in raw}
    if "protocol" in args:
        args["protocol"] = parse_protocol(args["protocol"], f"{where}.protocol")
    if kind == "membrane" and base is not None and looks_like_path(args["calibration"]):  # relative to this file
        args["calibration"] = str((base / args["calibration"]).resolve())
    element = cls(name=name, **args)
    element.check()
    return str(nodes[0]), str(nodes[1]), element


# how a protocol kind fills in a duration_ns the file leaves out (kinetics.protocols' defaults)
_DEFAULT_DURATION = {
    "step": "t_off_ns + (t_off_ns - t_on_ns), as long off as on",
    "pulse_train": "t_start_ns + count * period_ns",
}


def _check_protocol_defaults(rows: list, duration_ns: float) -> None:
    """A source protocol without ``duration_ns`` takes its kind's default length; where that differs
    from the circuit's ``duration_ns``, say it is a default the file never set, and how to set it."""
    for row in rows:
        spec = row.get("protocol")
        if not isinstance(spec, dict) or "duration_ns" in spec or spec.get("kind") not in _DEFAULT_DURATION:
            continue
        length = parse_protocol(spec, f"element {row['name']!r}.protocol").duration_ns
        if not math.isclose(length, duration_ns, rel_tol=1e-9):
            raise CircuitFileError(
                f"element {row['name']!r}: its {spec['kind']} protocol sets no duration_ns, so it lasts the default "
                f"{_DEFAULT_DURATION[spec['kind']]} = {length:g} ns, {'longer' if length > duration_ns else 'shorter'} "
                f"than the circuit's duration_ns = {duration_ns:g}; add duration_ns = {duration_ns:g} to its protocol "
                "table"
            )


def parse_circuit(raw: dict, *, path: str | None = None) -> CircuitFile:
    """Validate a circuit mapping (as read from TOML) into a :class:`CircuitFile`; ``path`` resolves calibration paths
    relative to the file. Raises :class:`CircuitFileError` naming the field."""
    if raw.get("schema") != CIRCUIT_SCHEMA:
        raise CircuitFileError(f"field 'schema' must be {CIRCUIT_SCHEMA!r}; got {raw.get('schema')!r}")
    for key in ("duration_ns", "dt_ns"):
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise CircuitFileError(f"field {key!r} must be a finite number > 0; got {value!r}")
    if raw["duration_ns"] / raw["dt_ns"] > MAX_STEPS:
        raise CircuitFileError(
            f"duration_ns/dt_ns must be at most {MAX_STEPS:g} steps; got {raw['duration_ns']:g}/{raw['dt_ns']:g} "
            f"= {raw['duration_ns'] / raw['dt_ns']:.3g}{seconds_hint(raw['dt_ns'])}"
        )
    name = raw.get("name")
    if name is not None and not (isinstance(name, str) and _SAFE_NAME.fullmatch(name) and name not in (".", "..")):
        # the name makes the default output folder (circuit-<name>) and the demo's circuits/<name>/
        raise CircuitFileError(
            f"field 'name' must be a plain file name (letters, digits, '.', '_', '-'; no '/' or '..'); got {name!r}"
        )
    save_every = raw.get("save_every", 1)
    if isinstance(save_every, bool) or not isinstance(save_every, int) or save_every < 1:
        raise CircuitFileError(f"field 'save_every' must be an integer >= 1; got {save_every!r}")
    rows = raw.get("element")
    if not isinstance(rows, list) or not rows:
        raise CircuitFileError("field 'element' must be a non-empty array of tables ([[element]])")
    base = Path(path).parent if path else None
    graph = nx.MultiDiGraph()
    for i, row in enumerate(rows):
        a, b, el = _element(i, row, base)
        if any(k == el.name for *_, k in graph.edges(keys=True)):
            raise CircuitFileError(f"element name {el.name!r} appears twice; names must be unique")
        graph.add_edge(a, b, key=el.name, element=el)
    _check_protocol_defaults(rows, float(raw["duration_ns"]))
    G.validate(graph)
    experiment = raw.get("experiment", {})
    if not isinstance(experiment, dict):
        raise CircuitFileError(f"field 'experiment' must be a table; got {experiment!r}")
    return CircuitFile(
        name=str(raw.get("name", Path(path).stem if path else "circuit")),
        description=str(raw.get("description", "")),
        graph=graph,
        duration_ns=float(raw["duration_ns"]),
        dt_ns=float(raw["dt_ns"]),
        save_every=save_every,
        experiment=experiment,
        path=path,
    )


def load_circuit(path) -> CircuitFile:
    """Read and validate a circuit TOML file."""
    return load_toml_as(path, "circuit", CircuitFileError, parse_circuit)


def circuits_dir() -> Path:
    """Folder of the shipped circuit experiments: packaged data in a wheel, ``circuits/`` in a checkout."""
    return shipped_dir("circuits")


def list_circuits() -> list[Path]:
    """The shipped circuit files, by name."""
    return sorted(circuits_dir().glob("*.toml"))
