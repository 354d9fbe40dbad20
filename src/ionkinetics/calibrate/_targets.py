"""Fit targets: what a calibration must reproduce, each row with its uncertainty and citation.

Schema ``ionkinetics.targets/1`` (TOML)::

    schema = "ionkinetics.targets/1"
    system = "crown6:NaCl@1.0+KCl@0.5"
    carrier = "Na+"
    source = "Noh & Smolyanitsky, Small 22(16), e11663 (2026)"
    open_conductance_from = "../crown6-NaCl1.0.json"   # optional, relative to this file
    assumptions = ["..."]                               # stated wherever a value is not published

    [[dopant]]
    ion = "K+"
    site = "center"                                     # or "entrance"

    [parameters]                                        # starting values; fixed unless in `free`
    "K+.trap.k0_per_ns_per_molar" = 0.05
    free = ["K+.trap.k0_per_ns_per_molar", ...]

    [[target]]
    kind = "conductance"   # v, g_ps, rel_sigma
    ...                    # + section, quote, assumed (bool), note

Target kinds and their residuals r (the loss is ½·Σ r²):

=================  ==========================================  =====================================
kind               fields                                      residual
=================  ==========================================  =====================================
conductance        v, g_ps, rel_sigma                          ln(G_model/g_ps) / rel_sigma
gv_fit             v (list), alpha_per_v + sigma_alpha_per_v,  least-squares fit of ln G over v;
                   and/or c_ps + rel_sigma_c                   (α−α*)/σ, ln(C/C*)/rel_sigma_c
steady_w           v, w, sigma                                 (w_model − w)/sigma
step_w             v_from, v_to, t_ns, w, sigma                (w(t) − w)/sigma after a step from the
                                                               steady state at v_from
step_trace         v_from, v_to, t_ns (list), w (list), sigma  same, for every time
step_tau           v_from, v_to, tau_ns, rel_sigma             ln(τ_model/τ)/rel_sigma, τ the integral
                                                               relaxation time of w
w_trace            t_ns (list), w (list), sigma, v_start_ns    (w(t) − w)/sigma under a piecewise-
                   (list), v (list); optional w_start          constant bias: v[i] from v_start_ns[i]
                                                               (the first 0) on; from the steady state
                                                               at v[0], or from open fraction w_start
                                                               (blocked states as in that steady state)
=================  ==========================================  =====================================

``w_trace`` is how an MD w(t) enters a fit (``calibrate.md_targets`` writes them from runs).

Parameter names: ``open.c_ps``, ``open.alpha_per_v``, ``open.v_smooth_v``, and for a dopant X
``X.trap.k0_per_ns_per_molar``, ``X.trap.delta``, ``X.trap.k_max_per_ns_per_molar``,
``X.escape.k0_per_ns``, ``X.escape.delta``, ``X.escape.k_max_per_ns``, ``X.leak_fraction``.
``open.v_max_v`` (default: none) is the edge of the voltages the carrier was measured at: above it
the open conductance is held, not extrapolated.

Gating charges are physical when given as ``X.electrical_distance`` f (the fraction of the
transmembrane potential between the bulk and the site: ½ for the centre of a symmetric membrane,
the default for a ``center`` site; less for a mouth) and ``X.barrier_position`` b (where the
rate-limiting barrier sits along that path, 0..1): then ``trap.delta = |z|·f·b`` and
``escape.delta = |z|·f·(1 − b)``, so the charge an ion moves between bulk and site is exactly
``|z|·f`` (Woodhull, J. Gen. Physiol. 61, 687 (1973)). ``trap.delta``/``escape.delta`` are then
derived and may not be given.
``k0`` is the rate at V = 0. A ``center`` site splits it evenly over both polarities
(``k = k0·cosh(δ·V/V_T)``); an ``entrance`` site's trapping goes with the field into the cis
mouth (``k0·exp(+δ·V/V_T)``) and its escape against it (``k0·exp(−δ·V/V_T)``), mirrored for trans.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

from .. import species
from .._checks import bad_argument, check_real
from .._io import read_toml
from ._calibration import SITES, encounter_rate_per_ns_per_molar, escape_ceiling_per_ns, load_calibration

__all__ = ["TARGETS_SCHEMA", "Target", "Targets", "load_targets", "parameter_names"]

TARGETS_SCHEMA = "ionkinetics.targets/1"
V_SMOOTH_DEFAULT_V = 0.005

_KIND_FIELDS = {
    "conductance": {"v": "number", "g_ps": "positive", "rel_sigma": "positive"},
    "gv_fit": {"v": "list"},
    "steady_w": {"v": "number", "w": "unit", "sigma": "positive"},
    "step_w": {"v_from": "number", "v_to": "number", "t_ns": "positive", "w": "unit", "sigma": "positive"},
    "step_trace": {"v_from": "number", "v_to": "number", "t_ns": "list", "w": "list", "sigma": "positive"},
    "step_tau": {"v_from": "number", "v_to": "number", "tau_ns": "positive", "rel_sigma": "positive"},
    "w_trace": {"t_ns": "list", "w": "list", "sigma": "positive", "v_start_ns": "list", "v": "list"},
}
_OPTIONAL = {
    "gv_fit": {"alpha_per_v": "number", "sigma_alpha_per_v": "positive", "c_ps": "positive", "rel_sigma_c": "positive"},
    "w_trace": {"w_start": "unit"},
}
_META = {"kind", "section", "quote", "assumed", "note"}


class TargetsError(ValueError):
    """A targets file that breaks the schema; the message names the row and field."""


@dataclasses.dataclass(frozen=True)
class Target:
    """One ``[[target]]`` row: its ``kind``, the kind's fields in ``values`` (units in their names), and the
    citation (``section``, ``quote``), whether the value was ``assumed``, and a ``note``."""

    kind: str
    values: dict
    section: str = ""
    quote: str = ""
    assumed: bool = False
    note: str = ""

    def describe(self) -> str:
        """Short one-line label, ``kind(field=value, ...)``."""
        fields = ", ".join(f"{k}={v}" for k, v in self.values.items())
        return f"{self.kind}({fields})"

    def to_dict(self) -> dict:
        """The row as its TOML mapping: kind and values, the non-empty citation fields, and ``assumed``."""
        out = {"kind": self.kind, **self.values}
        for key in ("section", "quote", "note"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        out["assumed"] = self.assumed
        return out


@dataclasses.dataclass(frozen=True)
class Targets:
    """A validated targets file: the system, carrier and dopant sites, every parameter's starting value (``free``
    names the fitted ones) and the target rows, with the source, assumptions and temperature (K)."""

    system: species.SystemId
    carrier: str
    dopants: tuple[tuple[str, str], ...]  # (ion, site)
    parameters: dict
    free: tuple[str, ...]
    targets: tuple[Target, ...]
    source: str = ""
    assumptions: tuple[str, ...] = ()
    temperature_k: float = 298.15
    path: str | None = None
    open_conductance_from: str | None = None
    open_range_v: tuple[float, float] | None = None  # data range of the carrier calibration used

    def data_range_v(self) -> tuple[float, float]:
        """Lowest and highest |V| of every target (and of the carrier calibration used)."""
        volts = []
        for t in self.targets:
            for key in ("v", "v_from", "v_to"):
                value = t.values.get(key)
                if value is not None:
                    volts += [abs(x) for x in (value if isinstance(value, list) else [value])]
        if self.open_range_v is not None:
            volts += list(self.open_range_v)
        return (min(volts), max(volts))


def parameter_names(carrier: str, dopants) -> list[str]:
    """Every parameter name a targets file may set, in a fixed order."""
    names = ["open.c_ps", "open.alpha_per_v", "open.v_smooth_v", "open.v_max_v"]
    for ion, _site in dopants:
        names += [
            f"{ion}.electrical_distance",
            f"{ion}.barrier_position",
            f"{ion}.trap.k0_per_ns_per_molar",
            f"{ion}.trap.delta",
            f"{ion}.trap.k_max_per_ns_per_molar",
            f"{ion}.escape.k0_per_ns",
            f"{ion}.escape.delta",
            f"{ion}.escape.k_max_per_ns",
            f"{ion}.leak_fraction",
        ]
    return names


def _check_parameter_range(name: str, value: float) -> None:
    """A parameter's physical range (rates, conductances and widths are positive and fitted in
    log space; gating charges, fractions and positions are bounded)."""
    where = f"parameters.{name}"
    if name.endswith((".delta",)):
        z = abs(species.get_ion(name.split(".")[0]).charge)
        if not 0.0 <= value <= z:
            raise _err(where, f"must be within [0, {z:g}] (|z| of the ion: the gating charge it can cross)", value)
    elif name.endswith((".leak_fraction", ".barrier_position")):
        if not 0.0 <= value <= 1.0:
            raise _err(where, "must be within [0, 1]", value)
    elif name.endswith(".electrical_distance"):
        if not 0.0 <= value <= 0.5:
            raise _err(where, "must be within [0, 0.5] (bulk to the pore's centre)", value)
    elif name != "open.alpha_per_v" and value <= 0:
        raise _err(where, "must be > 0 (a rate, conductance or voltage scale, fitted in log space)", value)


def _err(where, rule, value) -> TargetsError:
    return bad_argument(f"targets field '{where}'", rule, value, TargetsError)


def _num(value, where, rule):
    value = check_real(
        f"targets field '{where}'", value, positive=rule == "positive", error=TargetsError, numpy_scalars=False, report_float=True
    )
    if rule == "unit" and not 0.0 <= value <= 1.0:
        raise _err(where, "must be within [0, 1]", value)
    return value


def _check_row(i, row) -> Target:
    where = f"target[{i}]"
    if not isinstance(row, dict) or "kind" not in row:
        raise TargetsError(f"{where} needs a 'kind', one of {sorted(_KIND_FIELDS)}")
    kind = row["kind"]
    if kind not in _KIND_FIELDS:
        raise _err(f"{where}.kind", f"must be one of {sorted(_KIND_FIELDS)}", kind)
    required, optional = _KIND_FIELDS[kind], _OPTIONAL.get(kind, {})
    unknown = set(row) - set(required) - set(optional) - _META
    if unknown:
        raise _err(
            where,
            f"has unknown fields {sorted(unknown)} for kind {kind!r}; allowed {sorted(set(required) | set(optional))}",
            sorted(unknown),
        )
    values = {}
    for key, rule in {**required, **optional}.items():
        if key not in row:
            if key in required:
                raise TargetsError(f"{where} (kind {kind!r}) is missing the field '{key}'")
            continue
        if rule == "list":
            seq = row[key]
            if not isinstance(seq, list) or not seq:
                raise _err(f"{where}.{key}", "must be a non-empty list of numbers", seq)
            values[key] = [_num(x, f"{where}.{key}", "number") for x in seq]
        else:
            values[key] = _num(row[key], f"{where}.{key}", rule)
    if kind == "gv_fit":
        if len(values["v"]) < 2:
            raise _err(f"{where}.v", "needs at least two voltages to fit a slope", values["v"])
        has_alpha, has_c = "alpha_per_v" in values, "c_ps" in values
        if not (has_alpha or has_c):
            raise TargetsError(f"{where} (gv_fit) needs alpha_per_v and/or c_ps")
        if has_alpha and "sigma_alpha_per_v" not in values:
            raise TargetsError(f"{where} (gv_fit) gives alpha_per_v, so it needs sigma_alpha_per_v")
        if has_c and "rel_sigma_c" not in values:
            raise TargetsError(f"{where} (gv_fit) gives c_ps, so it needs rel_sigma_c")
    if kind in ("step_trace", "w_trace"):
        if len(values["t_ns"]) != len(values["w"]):
            raise _err(f"{where}.w", f"must have as many entries as t_ns ({len(values['t_ns'])})", values["w"])
        if any(t <= 0 for t in values["t_ns"]) or any(not 0 <= w <= 1 for w in values["w"]):
            raise _err(where, "needs t_ns > 0 and w within [0, 1]", (values["t_ns"], values["w"]))
    if kind == "w_trace":
        starts, t = values["v_start_ns"], values["t_ns"]
        if len(values["v"]) != len(starts):
            raise _err(f"{where}.v", f"must have one bias per entry of v_start_ns ({len(starts)})", values["v"])
        if starts[0] != 0.0 or any(b <= a for a, b in itertools.pairwise(starts)):
            raise _err(f"{where}.v_start_ns", "must start at 0 and increase strictly", starts)
        if any(b <= a for a, b in itertools.pairwise(t)):
            raise _err(f"{where}.t_ns", "must increase strictly", t)
    assumed = row.get("assumed", False)
    if not isinstance(assumed, bool):
        raise _err(f"{where}.assumed", "must be true or false", assumed)
    if not assumed and not row.get("section"):
        raise TargetsError(f"{where} is not marked assumed, so it must cite the 'section' of the source it transcribes")
    return Target(kind, values, str(row.get("section", "")), str(row.get("quote", "")), assumed, str(row.get("note", "")))


def _parameter_defaults(dopants, params_raw: dict, free: list) -> dict:
    """Values of the parameters a targets file may leave out: the smoothing and edge of the open conductance,
    each dopant's ceilings (diffusion limits) and leak, and its deltas or its electrical distance and barrier
    position (whichever the file does not use; a centre site sits at electrical distance 0.5)."""
    defaults = {"open.v_smooth_v": V_SMOOTH_DEFAULT_V, "open.v_max_v": math.inf}
    for ion, site in dopants:
        if f"{ion}.electrical_distance" in params_raw or f"{ion}.barrier_position" in params_raw:
            # one gating charge per path: trap.delta = |z|·f·b, escape.delta = |z|·f·(1 − b)
            for name in (f"{ion}.trap.delta", f"{ion}.escape.delta"):
                if name in params_raw or name in free:
                    raise _err(
                        f"parameters.{name}",
                        f"cannot be given with {ion}.electrical_distance/barrier_position, which fix both deltas",
                        name,
                    )
            if site == "center":
                defaults[f"{ion}.electrical_distance"] = 0.5
            defaults[f"{ion}.trap.delta"] = math.nan  # derived
            defaults[f"{ion}.escape.delta"] = math.nan
        else:
            defaults[f"{ion}.electrical_distance"] = math.nan  # unused: deltas given directly
            defaults[f"{ion}.barrier_position"] = math.nan
        defaults[f"{ion}.trap.k_max_per_ns_per_molar"] = encounter_rate_per_ns_per_molar(ion)
        defaults[f"{ion}.escape.k_max_per_ns"] = escape_ceiling_per_ns(ion)
        defaults[f"{ion}.leak_fraction"] = 0.0
    return defaults


def parse_targets(raw: dict, *, path: str | None = None) -> Targets:
    """Validate a targets mapping (as read from TOML)."""
    if raw.get("schema") != TARGETS_SCHEMA:
        raise _err("schema", f"must be {TARGETS_SCHEMA!r}", raw.get("schema"))
    for key in ("system", "carrier", "target"):
        if key not in raw:
            raise TargetsError(f"targets file is missing the field '{key}'")
    try:
        system = species.parse_system_id(raw["system"])
    except (TypeError, ValueError) as exc:
        raise TargetsError(f"targets field 'system' is invalid: {exc}") from None
    cations = system.cation_molar
    carrier = raw["carrier"]
    if carrier not in cations:
        raise _err("carrier", f"must be a cation of {system} ({', '.join(cations)})", carrier)
    dopants = []
    for i, d in enumerate(raw.get("dopant", [])):
        ion, site = d.get("ion"), d.get("site")
        if ion not in cations or ion == carrier:
            raise _err(f"dopant[{i}].ion", f"must be a non-carrier cation of {system}", ion)
        if site not in SITES:
            raise _err(f"dopant[{i}].site", f"must be one of {SITES}", site)
        dopants.append((ion, site))
    missing = [c for c in cations if c != carrier and c not in {d[0] for d in dopants}]
    if missing:
        raise _err("dopant", f"must list every non-carrier cation of {system}; missing {missing}", [d[0] for d in dopants])
    params_raw = dict(raw.get("parameters", {}))
    free = params_raw.pop("free", [])
    allowed = parameter_names(carrier, dopants)
    for name, value in params_raw.items():
        if name not in allowed:
            raise _err(f"parameters.{name}", f"is not a parameter of this system; known: {allowed}", name)
        _num(value, f"parameters.{name}", "number")
        _check_parameter_range(name, float(value))
    if not isinstance(free, list) or not free:
        raise _err("parameters.free", "must be a non-empty list of parameter names to fit", free)
    for name in free:
        if name not in allowed:
            raise _err("parameters.free", f"names unknown parameter {name!r}; known: {allowed}", name)
    if len(set(free)) != len(free):
        raise _err("parameters.free", "must not repeat a name", free)
    defaults = _parameter_defaults(dopants, params_raw, free)
    parameters = {**defaults, **{k: float(v) for k, v in params_raw.items()}}
    open_from = raw.get("open_conductance_from")
    if open_from is None:
        needed = [n for n in allowed if n not in parameters]
    else:
        needed = [n for n in allowed if n not in parameters and not n.startswith("open.")]
        if any(n.startswith("open.") for n in free):
            raise _err("parameters.free", "cannot fit open.* when open_conductance_from is given", free)
    if needed:
        raise _err("parameters", f"must give a starting value for {needed}", sorted(parameters))
    rows = raw["target"]
    if not isinstance(rows, list) or not rows:
        raise _err("target", "must be a non-empty array of tables ([[target]])", rows)
    targets = tuple(_check_row(i, row) for i, row in enumerate(rows))
    assumptions = raw.get("assumptions", [])
    if any(t.assumed for t in targets) and not assumptions:
        raise TargetsError("targets marked assumed=true need the file's 'assumptions' list to say what was assumed and why")
    return Targets(
        system=system,
        carrier=carrier,
        dopants=tuple(dopants),
        parameters=parameters,
        free=tuple(free),
        targets=targets,
        source=str(raw.get("source", "")),
        assumptions=tuple(str(a) for a in assumptions),
        temperature_k=float(raw.get("temperature_k", 298.15)),
        path=path,
        open_conductance_from=open_from,
    )


def load_targets(path) -> Targets:
    """Read and validate a targets TOML file; pulls the open-pore conductance from
    ``open_conductance_from`` (a calibration path relative to the file, or a system id)."""
    path, raw = read_toml(path, "targets", TargetsError)
    try:
        targets = parse_targets(raw, path=str(path))
    except TargetsError as exc:
        raise TargetsError(f"{path}: {exc}") from None
    if targets.open_conductance_from:
        ref = targets.open_conductance_from
        candidate = (path.parent / ref) if ref.endswith(".json") else None
        base = load_calibration(candidate if candidate is not None else ref)
        if base.carrier != targets.carrier:
            raise TargetsError(f"{path}: open_conductance_from {ref!r} has carrier {base.carrier}, not {targets.carrier}")
        oc = dict(base.open_conductance)
        params = dict(targets.parameters)
        for key in ("c_ps", "alpha_per_v", "v_smooth_v"):
            params[f"open.{key}"] = oc[key]
        params["open.v_max_v"] = oc.get("v_max_v", math.inf)
        targets = dataclasses.replace(targets, open_range_v=base.data_range_v)
        targets = dataclasses.replace(targets, parameters=params)
    return targets
