"""Export a circuit to an ngspice netlist, and read back what ngspice wrote.

:func:`to_spice` writes a netlist that ngspice (``ngspice -b circuit.cir``) runs without any
ionkinetics code, so a circuit designed here can be checked by, or handed to, a SPICE user.
The mapping, element by element (SI units throughout the netlist: s, V, A, ohm, F, S):

* ``Resistor`` → ``R``; ``Capacitor`` → ``C`` (``r_ohm`` and ``c_f`` are already SI).
* ``VoltageSource`` / ``CurrentSource`` → ``V`` / ``I`` with a ``PWL`` waveform that reproduces
  the piecewise-constant values the solver holds on each step (``Protocol.sample(dt)``; current
  values pA → A). The value before t = 0 is the protocol's rest value; every change of the held
  value at a grid time ``t_k`` (t = 0 included) becomes a linear ramp from ``(t_k, old)`` to
  ``(t_k + ramp_fraction·dt, new)``, default ``ramp_fraction = 1e-3``. The waveform therefore
  equals the solver's left limit at every grid time and its held value from ``t_k + ramp`` on;
  PWL corners are ngspice breakpoints, so ngspice lands on both ends of every ramp. The ramp
  is the only modelling difference from the solver's ideal jump: a capacitor charged through a
  resistor ``R`` during it sees the average of old and new values, an error of order
  ``ramp/(2RC)`` in its charge.
* ``Membrane`` → an instance ``X<name>`` of its own behavioural sub-circuit
  ``ikmem_<name> a b``. The occupancy p of the K-state chain (state 0 open, states 1..K−1
  blocked, star-shaped: trapping open → s, escape s → open) lives on K−1 internal *state
  nodes* ``p1 .. p<K−1>``: each is a 1 F capacitor to ground charged by a B-source current
  equal to ``dp_s/dt`` in 1/s, ``trap_s(V)·p0 − escape_s(V)·p_s`` with
  ``p0 = 1 − Σ p_s`` (probability is conserved by construction), so ``V(p_s)`` *is* ``p_s``.
  The rates are the kinetic core's saturating two-polarity Bell law
  ``k = k_bell·k_max/(k_bell + k_max)``, ``k_bell = k⁺·exp(δ⁺V/V_T) + k⁻·exp(−δ⁻V/V_T)``
  (exp arguments clipped to ±80 as in ``_rates.py``), trapping rates times the dopant's
  molarity, written with the membrane's calibrated numbers as ``.param`` lines (rates
  converted from 1/ns to 1/s). The membrane current is the B-source
  ``n_pores·(G_open(V)·(p0 + Σ leak_s·p_s)·V + I_gate)`` with
  ``G_open = C·exp(α·(sqrt(V² + v_s²) − v_s))`` (pS → S; held above the carrier's measured range
  ``v_max_v`` through the same 1 mV softplus corner as ``kinetics._rates``) and the dopant's
  displacement current ``I_gate = e·Σ (event rate × charge it moves)`` split by the Bell law's
  two polarities as in ``kinetics.gating_current_vector_pa``, in series with a 0 V ammeter
  ``vi`` so ngspice reports it. ``V`` is the membrane's branch voltage ``V(a, b)``.
  A stochastic membrane is exported **mean-field** (SPICE has no multinomial pores; the
  netlist says so in a comment).

Initial state. The solver starts from its DC operating point with each membrane at the
steady-state occupancy of its operating-point voltage. :func:`to_spice` finds that point with
the solver's own DC Newton solve (``circuits.operating_point``, a small compiled program with the
transient's residual and convergence test; the whole transient is not run), computes the
occupancy with ``steady_state`` at each membrane's
operating-point branch voltage and writes it as ``.ic v(x<name>.p<s>)=…``; the circuit node
voltages go in as ``.nodeset`` hints. No ``uic``: ngspice computes its own operating point
with the state nodes held at the ``.ic`` values (which solve ``dp/dt = 0`` there anyway) and
releases them for the transient, so capacitors, source currents and the t = 0 output are all
consistent — the equivalent of ``uic`` with every initial condition given, without its
inconsistent first point (zero branch currents).

Analysis: ``.tran dt duration 0 dt`` (output step and *maximum* internal step = dt; ngspice
still shortens steps after every PWL corner) with ``.options`` (``DEFAULT_OPTIONS``)
``method=trap reltol=1e-8 abstol=1e-18 vntol=1e-12 chgtol=1e-24``. The defaults (reltol 1e-3,
abstol 1 pA, chgtol 10 fC) are meant for µA-scale electronics and would let pA currents and
aF charges pass unchecked; reltol also bounds the truncation error of the state nodes (1 F,
charge = p), and 1e-8 instead of 1e-6 cut the error after a pulse onset ~10x at no measurable
cost. The trapezoidal rule agreed with the solver better than Gear-2 on pulse trains.
A ``.control`` block runs the analysis, has ``wrdata`` write (one time column, a header line)
every node voltage, every element's current and every state node to ``data_file`` (relative to
ngspice's working directory), and ends with ``quit 0`` (otherwise ``ngspice -b`` exits 1, as
the netlist itself has no ``.print``). :func:`read_spice_data` reads the file back into the
solver's units (ns, V, pA) by element and node name. ngspice's B-source ``limit()`` is not a
clip, so exp arguments are clipped with ``min(max(x, −80), 80)``.

Names: SPICE is case-insensitive and stricter about characters, so element and node names
are lower-cased, characters outside ``[a-z0-9_]`` become ``_``, and a numeric suffix keeps
them distinct; a comment at the top of the netlist lists the mapping.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import networkx as nx
import numpy as np

from ..constants import ELEMENTARY_CHARGE_C
from ..kinetics import HOLD_CORNER_V, steady_state
from . import _graph as G

__all__ = ["read_spice_data", "spice_names", "to_spice"]

_SUPPORTED = (G.Resistor, G.Capacitor, G.VoltageSource, G.CurrentSource, G.Membrane)
_PER_NS_TO_PER_S = 1e9
_S_PER_NS = 1e-9
_A_PER_PA = 1e-12
_EXP_CLIP = 80.0  # as kinetics._rates._EXP_CLIP
DEFAULT_OPTIONS = {
    "method": "trap",
    "reltol": 1e-8,
    "abstol": 1e-18,
    "vntol": 1e-12,
    "chgtol": 1e-24,
}


_E_C = ELEMENTARY_CHARGE_C  # one gating event per second per pore is e amperes


def _num(x) -> str:
    """A float as SPICE reads it back to the last bit."""
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"cannot write the non-finite number {x!r} to a netlist")
    return repr(x) if x != int(x) or abs(x) >= 1e15 else f"{x:.1f}"


def _seconds(t_ns) -> str:
    """A time given in ns, written in seconds: ``12.5e-9`` (readable) when that is exact."""
    text = f"{float(t_ns):.15g}"
    return f"{text}e-9" if "e" not in text and float(text) == float(t_ns) else _num(float(t_ns) * _S_PER_NS)


def _clip(expr: str) -> str:
    """``expr`` clipped to ±_EXP_CLIP (ngspice's B-source ``limit`` is not a clip; min/max are)."""
    return f"min(max({expr}, {-_EXP_CLIP:g}), {_EXP_CLIP:g})"


def _supported_elements(graph) -> list:
    if not isinstance(graph, nx.MultiDiGraph):
        raise TypeError(f"a circuit is a networkx.MultiDiGraph; got {type(graph).__name__}")
    out = []
    for a, b, key, data in graph.edges(keys=True, data=True):
        el = data.get("element")
        if isinstance(el, G.Element) and not isinstance(el, _SUPPORTED):
            raise ValueError(
                f"element {el.name!r} ({type(el).__name__}) has no SPICE export; supported: "
                + ", ".join(c.__name__ for c in _SUPPORTED)
            )
        out.append((a, b, key, el))
    return out


def _clean(name: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", str(name).lower())


def spice_names(graph: nx.MultiDiGraph) -> tuple[dict, dict]:
    """``(nodes, elements)``: the SPICE name of every circuit node and of every element.

    Element names are the SPICE type letter plus the cleaned name (``R``, ``C``, ``V``, ``I``;
    ``X`` for a membrane's sub-circuit instance); ground stays ``0``."""
    taken = {"0", "gnd"}
    nodes = {G.GROUND: "0"}
    for node in sorted((n for n in graph if n != G.GROUND), key=str):
        base = _clean(node)
        if not base or not base[0].isalpha():
            base = "n_" + base
        name, k = base, 2
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name)
        nodes[node] = name
    used, elements = set(), {}
    for _, _, el in G.elements(graph):
        base = ("x" if isinstance(el, G.Membrane) else el.prefix.lower()) + _clean(el.name)
        name, k = base, 2
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        elements[el.name] = name
    return nodes, elements


def _vectors(graph) -> list[tuple[str, str, str]]:
    """What the netlist writes, in order: ``(kind, name, ngspice vector)`` with kind ``v`` (node
    voltage), ``i`` (element current a → b) or ``p<s>`` (state node s of a membrane)."""
    nodes, names = spice_names(graph)
    out = [("v", n, f"v({s})") for n, s in nodes.items() if n != G.GROUND]
    for _, _, el in G.elements(graph):
        s = names[el.name]
        if isinstance(el, G.VoltageSource):
            out.append(("i", el.name, f"i({s})"))
        elif isinstance(el, G.CurrentSource):
            out.append(("i", el.name, f"@{s}[current]"))
        elif isinstance(el, (G.Resistor, G.Capacitor)):
            out.append(("i", el.name, f"@{s}[i]"))
        else:
            out.append(("i", el.name, f"i(v.{s}.vi)"))
            out += [(f"p{j}", el.name, f"v({s}.p{j})") for j in range(1, el.load().params.n_states)]
    return out


def _pwl(samples, rest, dt_ns, duration_ns, ramp_ns, scale) -> str:
    """PWL pairs (s, SI value) reproducing the held ``samples`` with ramps of ``ramp_ns``."""
    pts = []
    prev = float(rest)
    for k, val in enumerate(np.asarray(samples, dtype=float)):
        if k == 0 or val != prev:
            t = k * dt_ns
            if val != prev:
                pts.append((t, prev))
                pts.append((t + ramp_ns, val))
            else:
                pts.append((t, val))
            prev = float(val)
    pts.append((duration_ns, prev))
    words = [f"{_seconds(t)} {_num(v * scale)}" for t, v in pts]
    lines, line = [], []
    for w in words:
        line.append(w)
        if len(line) == 4:
            lines.append("+ " + " ".join(line))
            line = []
    if line:
        lines.append("+ " + " ".join(line))
    return "PWL(\n" + "\n".join(lines) + "\n+ )"


def _mean_field(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """A copy of ``graph`` with every stochastic membrane made mean-field (what is exported)."""
    out = graph.copy()
    for *_, data in out.edges(keys=True, data=True):
        el = data.get("element")
        if isinstance(el, G.Membrane) and el.stochastic:
            data["element"] = dataclasses.replace(el, stochastic=False)
    return out


def _operating_point(compiled):
    """The solver's t = 0 state: node voltages and each membrane's branch voltage, from its DC
    Newton solve alone (``operating_point``: a small program, not the whole transient)."""
    from ._solver import operating_point

    op = operating_point(compiled)
    return op["node_v"], op["membrane_v"]


def _bell_params(prefix, rate, s, scale) -> list[str]:
    """``.param`` lines of one Bell law (rate field arrays, state index ``s``)."""
    return [
        f".param {prefix}_kp = {_num(float(rate.k_plus_per_ns[s]) * scale)}",
        f".param {prefix}_dp = {_num(float(rate.delta_plus[s]))}",
        f".param {prefix}_km = {_num(float(rate.k_minus_per_ns[s]) * scale)}",
        f".param {prefix}_dm = {_num(float(rate.delta_minus[s]))}",
        f".param {prefix}_kmax = {_num(float(rate.k_max_per_ns[s]) * scale)}",
    ]


def _membrane_subckt(el: G.Membrane, sub: str, cal, stochastic: bool) -> list[str]:
    params = cal.params
    k = params.n_states
    oc = params.open
    out = [
        f"* membrane {el.name!r}: {el.n_pores} pores, calibration {cal.system_id}, states {list(cal.state_names)}",
    ]
    if stochastic:
        out.append("* NOTE: stochastic in ionkinetics (multinomial pores); exported MEAN-FIELD (SPICE is deterministic)")
    out += [
        f".subckt {sub} a b",
        f".param npores = {el.n_pores}",
        f".param vt = {_num(float(params.v_thermal_v))}  $ thermal voltage k_B*T/e, V ({cal.temperature_k:g} K)",
        f".param gc = {_num(float(oc.c_ps) * 1e-12)}  $ open-pore conductance prefactor C, S",
        f".param alpha = {_num(float(oc.alpha_per_v))}  $ open-conductance exponent, 1/V",
        f".param vsm = {_num(float(oc.v_smooth_v))}  $ smoothing voltage of |V|, V",
    ]
    for s in range(k - 1):
        name = cal.state_names[s + 1]
        out.append(f"* state p{s + 1} = {name}: trapping open->p{s + 1} (x molar), escape p{s + 1}->open")
        out.append(f".param molar{s + 1} = {_num(float(params.molar[s]))}  $ dopant concentration, mol/L")
        out.append(f".param leak{s + 1} = {_num(float(params.leak_fraction[s]))}  $ conductance relative to open")
        out.append(f"* trap{s + 1}: k+ and k- in 1/(s*molar), exponents dimensionless, kmax in 1/(s*molar)")
        out += _bell_params(f"trap{s + 1}", params.trap, s, _PER_NS_TO_PER_S)
        out.append(f"* esc{s + 1}: k+ and k- in 1/s, exponents dimensionless, kmax in 1/s")
        out += _bell_params(f"esc{s + 1}", params.escape, s, _PER_NS_TO_PER_S)
    out.append("* rates (1/s) and open-pore conductance (S) as functions of the branch voltage vm (V)")
    for s in range(1, k):
        out.append(
            f".func ktrap{s}(vm) {{molar{s}*ik_bell(vm/vt, trap{s}_kp, trap{s}_dp, trap{s}_km, trap{s}_dm, trap{s}_kmax)}}"
        )
        out.append(f".func kesc{s}(vm) {{ik_bell(vm/vt, esc{s}_kp, esc{s}_dp, esc{s}_km, esc{s}_dm, esc{s}_kmax)}}")
    if math.isfinite(float(oc.v_max_v)):
        out.append(f".param vmax = {_num(float(oc.v_max_v))}  $ edge of the carrier's measured range: G_open held above, V")
        out.append(".func uabs(vm) {sqrt(vm*vm + vsm*vsm) - vsm}")
        out.append(f".func uheld(vm) {{uabs(vm) - {HOLD_CORNER_V:g}*ik_softplus((uabs(vm) - vmax)/{HOLD_CORNER_V:g})}}")
        out.append(f".func gopen(vm) {{gc*exp({_clip('alpha*uheld(vm)')})}}")
    else:
        out.append(f".func gopen(vm) {{gc*exp({_clip('alpha*(sqrt(vm*vm + vsm*vsm) - vsm)')})}}")
    # dopant displacement current per pore, A: charge e times each event rate (1/s) times the
    # gating charge it moves, d_cis = trap.dp + esc.dm, d_trans = trap.dm + esc.dp (kinetics._rates)
    gating = []
    for s in range(1, k):
        args_t = f"vm/vt, trap{s}_kp, trap{s}_dp, trap{s}_km, trap{s}_dm, trap{s}_kmax"
        args_e = f"vm/vt, esc{s}_kp, esc{s}_dp, esc{s}_km, esc{s}_dm, esc{s}_kmax"
        dcis, dtrans = f"(trap{s}_dp + esc{s}_dm)", f"(trap{s}_dm + esc{s}_dp)"
        out.append(f".func jopen{s}(vm) {{molar{s}*(ik_bellp({args_t})*{dcis} - ik_bellm({args_t})*{dtrans})}}")
        out.append(f".func jblk{s}(vm) {{ik_bellp({args_e})*{dtrans} - ik_bellm({args_e})*{dcis}}}")
        gating.append(s)
    p0 = "(1" + "".join(f" - V(p{s})" for s in range(1, k)) + ")"
    for s in range(1, k):
        out.append(f"* dp{s}/dt (1/s) charges the 1 F capacitor of state node p{s}: V(p{s}) = p{s}")
        out.append(f"Bp{s} 0 p{s} I={{ktrap{s}(V(a,b))*{p0} - kesc{s}(V(a,b))*V(p{s})}}")
        out.append(f"Cp{s} p{s} 0 1")
    weights = p0 + "".join(f" + leak{s}*V(p{s})" for s in range(1, k))
    out.append("* membrane current a -> b, A, through the 0 V ammeter vi")
    out.append("vi a ai 0")
    gate = "".join(f" + {_E_C:.10e}*({p0}*jopen{s}(V(a,b)) + V(p{s})*jblk{s}(V(a,b)))" for s in gating)
    out.append(f"Bi ai b I={{npores*(gopen(V(a,b))*({weights})*V(a,b){gate})}}")
    out.append(f".ends {sub}")
    return out


def _netlist_header(title, duration_ns, dt_ns, ramp_fraction, ramp_ns, nodes, names) -> list[str]:
    """Title, units, the name map and the rate-law functions (.func) every membrane subcircuit uses."""
    lines = [" ".join(str(title).split()) or "ionkinetics circuit"]
    lines += [
        "* exported by ionkinetics.circuits.to_spice; units: s, V, A, ohm, F, S",
        f"* duration {duration_ns:g} ns, output and maximum step {dt_ns:g} ns; "
        f"source jumps are linear ramps of {ramp_fraction:g}*dt = {ramp_ns:g} ns starting at the jump time",
        "* names (ionkinetics -> SPICE):",
        *(f"*   node {n!r} -> {s}" for n, s in nodes.items() if n != G.GROUND),
        *(f"*   element {n!r} -> {s}" for n, s in names.items()),
        "",
        "* saturating two-polarity Bell law, x = V/V_T; exp arguments clipped to +-80 as in ionkinetics",
        f".func ik_bell(x, kp, dp, km, dm, kmax) {{(kp*exp({_clip('dp*x')}) + km*exp({_clip('-dm*x')}))*kmax/"
        f"(kp*exp({_clip('dp*x')}) + km*exp({_clip('-dm*x')}) + kmax)}}",
        "* its k+ (along +z) and k- (along -z) shares, for the dopant's displacement current",
        f".func ik_bellp(x, kp, dp, km, dm, kmax) {{kp*exp({_clip('dp*x')})*kmax/"
        f"(kp*exp({_clip('dp*x')}) + km*exp({_clip('-dm*x')}) + kmax)}}",
        f".func ik_bellm(x, kp, dp, km, dm, kmax) {{km*exp({_clip('-dm*x')})*kmax/"
        f"(kp*exp({_clip('dp*x')}) + km*exp({_clip('-dm*x')}) + kmax)}}",
        "* softplus, overflow-free",
        ".func ik_softplus(x) {max(x, 0) + ln(1 + exp(-abs(x)))}",
        "",
    ]
    return lines


def _element_lines(graph, compiled, topo, nodes, names, vmem, stochastic, dt_ns, duration_ns, ramp_ns):
    """One netlist line per element (a subcircuit per membrane) and the membranes' initial occupancies."""
    lines: list[str] = []
    source_rows = {
        "V": (compiled.values["vs"], compiled.values["vs_rest"], 1.0),
        "I": (compiled.values["is_"], compiled.values["is_rest"], _A_PER_PA),
    }
    ics = []
    for a, b, el in G.elements(graph):
        sname, na, nb = names[el.name], nodes[a], nodes[b]
        if isinstance(el, G.Resistor):
            lines.append(f"{sname} {na} {nb} {_num(el.r_ohm)}")
        elif isinstance(el, G.Capacitor):
            lines.append(f"{sname} {na} {nb} {_num(el.c_f)}")
        elif isinstance(el, (G.VoltageSource, G.CurrentSource)):
            kind = "V" if isinstance(el, G.VoltageSource) else "I"
            rows, rest, scale = source_rows[kind]
            j = topo.names_of(kind).index(el.name)
            unit = "V" if kind == "V" else "A (ionkinetics pA x 1e-12)"
            lines.append(f"* {type(el).__name__} {el.name!r}: {type(el.protocol).__name__} protocol, held values in {unit}")
            lines.append(f"{sname} {na} {nb} " + _pwl(rows[j], rest[j], dt_ns, duration_ns, ramp_ns, scale))
        else:  # Membrane
            cal = el.load()
            sub = "ikmem_" + sname[1:]
            lines.append("")
            lines += _membrane_subckt(el, sub, cal, el.name in stochastic)
            lines.append(f"{sname} {na} {nb} {sub}")
            p = np.asarray(steady_state(cal.params, vmem[el.name]), dtype=float)
            p = p / p.sum()
            for s in range(1, p.size):
                ics.append(f"v({sname}.p{s})={_num(p[s])}")
            lines.append("")
    return lines, ics


def _control_block(graph, opts: dict, dt_ns: float, duration_ns: float, data_file: str) -> list[str]:
    """.options, .tran and the .control block that writes the saved vectors to ``data_file``."""
    lines: list[str] = []
    saved = _vectors(graph)
    opt_words = " ".join(f"{k}={v if isinstance(v, str) else _num(v) if isinstance(v, float) else v}" for k, v in opts.items())
    lines.append(f".options {opt_words}")
    lines.append(f".tran {_seconds(dt_ns)} {_seconds(duration_ns)} 0 {_seconds(dt_ns)}")
    lines += [
        ".control",
        "set wr_singlescale",
        "set wr_vecnames",
        "option numdgt=16",
        # device quantities (@...) are only kept over time when saved by name
        "save all " + " ".join(vec for _, _, vec in saved if vec.startswith("@")),
        "run",
        f"wrdata {data_file} " + " ".join(vec for _, _, vec in saved),
        "quit 0",  # without it ngspice -b exits 1 ("no simulations run": the run is in .control)
        ".endc",
        ".end",
        "",
    ]
    return lines


def to_spice(
    graph: nx.MultiDiGraph,
    duration_ns: float,
    dt_ns: float,
    *,
    title: str = "ionkinetics circuit",
    data_file: str = "ionkinetics_spice.data",
    ramp_fraction: float = 1e-3,
    options: dict | None = None,
) -> str:
    """An ngspice netlist of ``graph`` run for ``duration_ns`` with output and maximum step
    ``dt_ns`` (see the module docstring for the mapping).

    ``data_file``: where the netlist's ``.control`` block makes ngspice write its results (read
    them with :func:`read_spice_data`). ``ramp_fraction``: source jumps become linear ramps of
    ``ramp_fraction·dt_ns``. ``options`` override the ``.options`` values (``DEFAULT_OPTIONS``).
    Raises ``ValueError`` naming the element for an element type SPICE export does not know, and
    for every problem :func:`compile_circuit` reports."""
    from ._solver import compile_circuit

    _supported_elements(graph)
    if not (isinstance(ramp_fraction, (int, float)) and 0 < ramp_fraction < 0.5):
        raise ValueError(f"ramp_fraction must be a number in (0, 0.5); got {ramp_fraction!r}")
    if not isinstance(data_file, str) or not data_file or any(c.isspace() for c in data_file):
        raise ValueError(f"data_file must be a file name without spaces; got {data_file!r}")
    stochastic = {el.name for *_, el in _supported_elements(graph) if isinstance(el, G.Membrane) and el.stochastic}
    graph = _mean_field(graph)
    compiled = compile_circuit(graph, duration_ns, dt_ns)  # validates the circuit, the grid and the protocols
    topo = compiled.topology
    node_v, vmem = _operating_point(compiled)
    nodes, names = spice_names(graph)
    opts = {**DEFAULT_OPTIONS, **(options or {})}
    ramp_ns = ramp_fraction * dt_ns

    lines = _netlist_header(title, duration_ns, dt_ns, ramp_fraction, ramp_ns, nodes, names)
    element_lines, ics = _element_lines(graph, compiled, topo, nodes, names, vmem, stochastic, dt_ns, duration_ns, ramp_ns)
    lines += element_lines
    lines.append("")
    lines.append("* initial state: ionkinetics' operating point; occupancies at its steady state")
    if ics:
        lines.append(".ic " + " ".join(ics))
    if topo.nodes:
        lines.append(".nodeset " + " ".join(f"v({nodes[n]})={_num(v)}" for n, v in node_v.items()))
    lines += _control_block(graph, opts, dt_ns, duration_ns, data_file)
    return "\n".join(lines)


def read_spice_data(path, graph: nx.MultiDiGraph, *, duration_ns: float | None = None) -> dict:
    """Read the ``wrdata`` file of a netlist from :func:`to_spice` in ionkinetics units.

    Returns ``{"t_ns": (T,), "v": {node: V}, "i": {element: pA, a → b through it},
    "p": {membrane: (T, K) occupancy}}`` at ngspice's own time points. With ``duration_ns``,
    raises ``ValueError`` if the data stop before it (ngspice gave up part way)."""
    path = Path(path)
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().split()
    data = np.loadtxt(path, skiprows=1, ndmin=2)
    if data.shape[1] != len(header):
        raise ValueError(f"{path}: {data.shape[1]} columns but {len(header)} names in the header")
    col = {h.lower(): data[:, j] for j, h in enumerate(header)}

    def get(vec):
        vec = vec.lower()
        alt = vec[2:-1] + "#branch" if vec.startswith("i(") else vec
        for key in (vec, alt):
            if key in col:
                return col[key]
        raise ValueError(f"{path}: no column {vec!r}; columns: {header}")

    t_ns = get("time") / _S_PER_NS
    if duration_ns is not None and not t_ns[-1] >= duration_ns * (1 - 1e-9):
        raise ValueError(f"{path}: ngspice's output stops at {t_ns[-1]:g} ns, before {duration_ns:g} ns")
    out = {"t_ns": t_ns, "v": {G.GROUND: np.zeros_like(t_ns)}, "i": {}, "p": {}}
    blocked: dict[str, list] = {}
    for kind, name, vec in _vectors(graph):
        if kind == "v":
            out["v"][name] = get(vec)
        elif kind == "i":
            out["i"][name] = get(vec) / _A_PER_PA
        else:
            blocked.setdefault(name, []).append(get(vec))
    for _, _, el in G.elements(graph):
        if isinstance(el, G.Membrane):
            ps = blocked.get(el.name, [])
            p0 = 1.0 - np.sum(ps, axis=0) if ps else np.ones_like(t_ns)
            out["p"][el.name] = np.stack([p0, *ps], axis=-1)
    return out
