"""Calibration files: one system's kinetic parameters, uncertainties and provenance.

Schema ``ionkinetics.calibration/1`` (JSON, units in every key)::

    {"schema": "ionkinetics.calibration/1",
     "system": "crown6:NaCl@1.0+KCl@0.5", "temperature_k": 298.15,
     "carrier": {"ion": "Na+", "open_conductance": {"c_ps": .., "alpha_per_v": .., "v_smooth_v": ..,
                                                    "v_max_v": ..}},     # optional: G held above it
     "dopants": [{"ion": "K+", "site": "center" | "entrance", "leak_fraction": 0.0,
                  "electrical_distance": 0.5,                             # optional, see below
                  "trap":   {"k_plus_per_ns_per_molar", "delta_plus", "k_minus_per_ns_per_molar",
                             "delta_minus", "k_max_per_ns_per_molar"},
                  "escape": {"k_plus_per_ns", "delta_plus", "k_minus_per_ns", "delta_minus", "k_max_per_ns"}}],
     "data_range_v": [0.0, 0.5] | null,                                   # |V| the data cover
     "uncertainty": {...} | null, "fit": {...} | null, "provenance": {...}}

``electrical_distance`` f (0..0.5) is the fraction of the transmembrane potential between the bulk
and the site; when present, the file must satisfy ``trap.delta + escape.delta = |z|·f`` along each
path the site uses (checked on load), so the gating charges are those of an ion crossing that
fraction of the field (Woodhull 1973). ``open_conductance.v_max_v`` is the edge of the voltages the
carrier was measured at: above it G_open is held, not extrapolated. Older files without these
optional fields load unchanged. A calibration derived at another dopant molarity
(:meth:`Calibration.with_molar`) says so in ``provenance.derived``.

A ``center`` dopant binds at one site in the pore (one blocked state, rates as written). An
``entrance`` dopant plugs either mouth of an impermeable pore: two blocked states, the cis one
with the rates as written and the trans one their mirror image (V → −V), so the membrane stays
symmetric while the field can both push a plug in and hold it there.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from types import MappingProxyType

import jax.numpy as jnp

from .. import species
from .._checks import bad_argument, check_real, looks_like_path
from .._io import shipped_dir, write_json_atomic
from ..constants import AVOGADRO_PER_NM3_PER_MOLAR
from ..kinetics import BellRate, KineticParams, OpenConductance, thermal_voltage_v

__all__ = [
    "SCHEMA",
    "Calibration",
    "Dopant",
    "calibration_dir",
    "encounter_rate_per_ns_per_molar",
    "escape_ceiling_per_ns",
    "list_calibrations",
    "list_md_calibrations",
    "load_calibration",
    "save_calibration",
]

SCHEMA = "ionkinetics.calibration/1"
SITES = ("center", "entrance")
CAPTURE_RADIUS_NM = 0.3  # of order the pore radius; sets the diffusion-limited ceilings

TRAP_KEYS = ("k_plus_per_ns_per_molar", "delta_plus", "k_minus_per_ns_per_molar", "delta_minus", "k_max_per_ns_per_molar")
OPEN_KEYS = ("c_ps", "alpha_per_v", "v_smooth_v", "v_max_v")
ESCAPE_KEYS = ("k_plus_per_ns", "delta_plus", "k_minus_per_ns", "delta_minus", "k_max_per_ns")
TOP_KEYS = ("schema", "system", "temperature_k", "carrier", "dopants", "data_range_v", "uncertainty", "fit", "provenance")
CARRIER_KEYS = ("ion", "open_conductance")
DOPANT_KEYS = ("ion", "site", "leak_fraction", "electrical_distance", "trap", "escape")
# Physically possible values (a file outside them is a typo or a unit slip, refused with the reason):
LIQUID_WATER_K = (253.15, 373.15)  # liquid at 1 atm, allowing the freezing-point depression of salt
MAX_GATING_CHARGES = 2.0  # |α| ≤ 2/V_T: no more than two elementary charges crossing the whole field
MAX_OVER_CEILING = 100.0  # a zero-bias rate at most 100× its diffusion-limited ceiling


def encounter_rate_per_ns_per_molar(ion: str, capture_radius_nm: float = CAPTURE_RADIUS_NM) -> float:
    """Smoluchowski ceiling 4π·D·a·N_A per molar: no trapping rate can beat diffusion to the pore."""
    d = species.get_ion(ion).diffusion_nm2_per_ns
    return 4.0 * math.pi * d * capture_radius_nm * AVOGADRO_PER_NM3_PER_MOLAR


def escape_ceiling_per_ns(ion: str, capture_radius_nm: float = CAPTURE_RADIUS_NM) -> float:
    """D/a²: an ion cannot leave a site of size a faster than it diffuses across it."""
    return species.get_ion(ion).diffusion_nm2_per_ns / capture_radius_nm**2


class CalibrationError(ValueError):
    """A calibration file or dict that breaks the schema; the message names the field."""


def _field(where: str, rule: str, value) -> CalibrationError:
    return bad_argument(f"calibration field '{where}'", rule, value, CalibrationError)


def _require(mapping, key, where):
    if not isinstance(mapping, dict):
        raise _field(where, "must be an object", mapping)
    if key not in mapping:
        raise CalibrationError(
            f"calibration is missing the field '{where}.{key}'" if where else f"calibration is missing the field '{key}'"
        )
    return mapping[key]


def _number(value, where, *, lo=None, hi=None, lo_open=False) -> float:
    """A calibration field's number (JSON: Python int/float only), the failure shown as a float."""
    return check_real(
        f"calibration field '{where}'",
        value,
        minimum=lo,
        exclusive_minimum=lo_open,
        maximum=hi,
        error=CalibrationError,
        numpy_scalars=False,
        not_number="must be a number",
        not_finite="must be finite",
        report_float=True,
    )


def _unknown_keys(raw: dict, allowed, where: str) -> None:
    extra = set(raw) - set(allowed)
    if extra:
        rule = f"{sorted(extra)} (a misspelt key would otherwise be ignored); allowed: {list(allowed)}"
        if not where:
            raise CalibrationError(f"calibration has unknown top-level keys {rule}")
        raise CalibrationError(f"calibration field '{where}' has unknown keys {rule}")


def _rate(raw, keys, where, charge, ceiling=None) -> dict[str, float]:
    k_plus, d_plus, k_minus, d_minus, k_max = keys
    out = {}
    for key in keys:
        value = _require(raw, key, where)
        if key.startswith("delta"):
            out[key] = _number(value, f"{where}.{key}", lo=0.0, hi=float(abs(charge)))
        elif key == k_max:
            out[key] = _number(value, f"{where}.{key}", lo=0.0, lo_open=True)
        else:
            out[key] = _number(value, f"{where}.{key}", lo=0.0)
    if out[k_plus] + out[k_minus] <= 0:
        raise _field(f"{where}.{k_plus}", f"and {k_minus} cannot both be 0 (the rate would vanish)", (out[k_plus], out[k_minus]))
    if ceiling is not None and out[k_plus] + out[k_minus] > MAX_OVER_CEILING * ceiling:
        raise _field(
            f"{where}.{k_plus}",
            f"+ {k_minus} (the zero-bias rate) must be <= {MAX_OVER_CEILING:g}× the diffusion-limited ceiling "
            f"{ceiling:.3g} (no rate beats diffusion to or across the site)",
            out[k_plus] + out[k_minus],
        )
    _unknown_keys(raw, keys, where)
    del d_plus, d_minus
    return out


@dataclasses.dataclass(frozen=True)
class Dopant:
    """A blocking ion: its site type, trapping law (per molar), escape law, leak."""

    ion: str
    molar: float
    site: str
    trap: MappingProxyType
    escape: MappingProxyType
    leak_fraction: float = 0.0
    electrical_distance: float | None = None  # fraction of the potential drop from bulk to the site

    @property
    def state_names(self) -> tuple[str, ...]:
        """This dopant's blocked states: the ion for a ``center`` site, ``ion@cis`` and ``ion@trans`` for an entrance."""
        return (self.ion,) if self.site == "center" else (f"{self.ion}@cis", f"{self.ion}@trans")

    def to_dict(self) -> dict:
        """The dopant as its calibration-file mapping (``electrical_distance`` only when set; ``molar`` is not stored, it
        comes from the system id)."""
        out = {
            "ion": self.ion,
            "site": self.site,
            "leak_fraction": self.leak_fraction,
            "trap": dict(self.trap),
            "escape": dict(self.escape),
        }
        if self.electrical_distance is not None:
            out["electrical_distance"] = self.electrical_distance
        return out


def _mirror(rate: dict, keys) -> dict:
    k_plus, d_plus, k_minus, d_minus, k_max = keys
    return {k_plus: rate[k_minus], d_plus: rate[d_minus], k_minus: rate[k_plus], d_minus: rate[d_plus], k_max: rate[k_max]}


@dataclasses.dataclass(frozen=True, eq=False)
class Calibration:
    """One system's calibrated kinetic model (immutable). ``params`` feeds the JAX model."""

    system: species.SystemId
    carrier: str
    open_conductance: MappingProxyType
    dopants: tuple[Dopant, ...]
    temperature_k: float = 298.15
    data_range_v: tuple[float, float] | None = None  # lowest and highest |V| the data cover
    uncertainty: dict | None = None
    fit: dict | None = None
    provenance: dict = dataclasses.field(default_factory=dict)

    @property
    def system_id(self) -> str:
        """The system id as text, e.g. ``crown6:NaCl@1.0+KCl@0.5``."""
        return str(self.system)

    @property
    def state_names(self) -> tuple[str, ...]:
        """Names of the model's states in order: ``open``, then each dopant's blocked states."""
        return ("open", *tuple(n for d in self.dopants for n in d.state_names))

    @property
    def symmetric(self) -> bool:
        """True if the response to +V and −V is identical (entrance sites are symmetric by construction)."""
        for d in self.dopants:
            if d.site == "center":
                for rate, keys in ((d.trap, TRAP_KEYS), (d.escape, ESCAPE_KEYS)):
                    if rate[keys[0]] != rate[keys[2]] or rate[keys[1]] != rate[keys[3]]:
                        return False
        return True

    @property
    def params(self) -> KineticParams:
        """The JAX model's :class:`KineticParams` built from these rates at the thermal voltage of ``temperature_k``."""
        return _to_params(self)

    def to_dict(self) -> dict:
        """The calibration as its JSON mapping (schema ``SCHEMA``), which :meth:`from_dict` reads back."""
        return {
            "schema": SCHEMA,
            "system": self.system_id,
            "temperature_k": self.temperature_k,
            "carrier": {"ion": self.carrier, "open_conductance": dict(self.open_conductance)},
            "dopants": [d.to_dict() for d in self.dopants],
            "data_range_v": None if self.data_range_v is None else list(self.data_range_v),
            "uncertainty": self.uncertainty,
            "fit": self.fit,
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, raw) -> Calibration:
        """A validated calibration from its JSON mapping; raises :class:`CalibrationError` naming the bad field."""
        return _from_dict(raw)

    def replace(self, **changes) -> Calibration:
        """A validated copy with fields changed (``open_conductance``/``dopants`` as dicts or objects)."""
        data = self.to_dict()
        if "open_conductance" in changes:
            data["carrier"]["open_conductance"] = dict(changes.pop("open_conductance"))
        if "dopants" in changes:
            data["dopants"] = [d.to_dict() if isinstance(d, Dopant) else dict(d) for d in changes.pop("dopants")]
        for key in ("uncertainty", "fit", "provenance", "temperature_k", "data_range_v"):
            if key in changes:
                data[key] = changes.pop(key)
        if changes:
            raise TypeError(f"Calibration.replace got unknown fields {sorted(changes)}")
        return _from_dict(data)

    def _dopant_molar(self, salts) -> dict[str, object]:
        """Validated ``{dopant ion: molar}`` from ``{salt or ion: molar}``; refuses the carrier."""
        if not isinstance(salts, dict) or not salts:
            raise TypeError(f"molarities must be a non-empty dict such as {{'KCl': 0.3}}; got {salts!r}")
        by_salt = {species.salt_of(d.ion).name: d.ion for d in self.dopants}
        carrier_salt = species.salt_of(self.carrier).name
        out = {}
        for name, molar in salts.items():
            if name in (carrier_salt, self.carrier):
                raise ValueError(
                    f"cannot change the carrier's molarity ({carrier_salt}) of {self.system_id}: the paper measured "
                    "each carrier at one concentration and states no law for how its barrier-limited conductance "
                    "scales with it (single-file pores saturate; no cited basis here). Give a calibration fitted "
                    "at the molarity you need instead"
                )
            ion = by_salt.get(name, name if name in by_salt.values() else None)
            if ion is None:
                raise ValueError(
                    f"molarity key {name!r} is not a dopant salt or ion of {self.system_id}; dopants: "
                    f"{', '.join(f'{s} ({i})' for s, i in by_salt.items())}"
                )
            if not isinstance(molar, (int, float)) or isinstance(molar, bool):
                out[ion] = molar  # a JAX tracer: validated by the caller's own numbers
            elif not (math.isfinite(molar) and molar > 0):
                raise ValueError(f"molarity of {name} must be a finite number > 0 (mol/L); got {molar!r}")
            else:
                out[ion] = float(molar)
        return out

    def params_with_molar(self, salts: dict) -> KineticParams:
        """:class:`KineticParams` at new dopant molarities, e.g. ``{"KCl": m}``; ``m`` may be a JAX
        tracer, so ``jax.grad`` of any observable with respect to a molarity works.

        The law: a dopant's trapping rate (and its diffusion-limited ceiling) is proportional to its
        molarity (first-order binding from the bulk, mass action; Smoluchowski's encounter rate
        4π·D·a·c is linear in c); escape, leak and the carrier's open conductance do not change.
        The carrier's molarity cannot be changed (see :meth:`with_molar`)."""
        molar = {d.ion: d.molar for d in self.dopants} | self._dopant_molar(salts)
        return params_from_rates(
            self.open_conductance,
            [(molar[d.ion], d.site, dict(d.trap), dict(d.escape), d.leak_fraction) for d in self.dopants],
            thermal_voltage_v(self.temperature_k),
        )

    def with_molar(self, salts: dict | None = None, **by_name) -> Calibration:
        """This calibration at new dopant molarities: ``cal.with_molar(KCl=0.3)`` or
        ``cal.with_molar({"KCl": 0.3})`` (salt or ion names). Trapping scales with the dopant's
        molarity (see :meth:`params_with_molar`); the result's provenance says it was derived, from
        what and by which law. Changing the carrier's molarity is refused: no law for it is known."""
        salts = {**(salts or {}), **by_name}
        new = self._dopant_molar(salts)
        numbers = {ion: m for ion, m in new.items() if isinstance(m, float)}
        if len(numbers) != len(new):
            raise TypeError("with_molar needs numbers; for traced molarities use params_with_molar")
        ion_of_salt = {s: species.SALTS[s].cation for s, _ in self.system.salts}
        salts_new = tuple((s, numbers.get(ion_of_salt[s], m)) for s, m in self.system.salts)
        system = species.SystemId(self.system.pore, salts_new)
        data = self.to_dict()
        data["system"] = str(system)
        prov = dict(self.provenance)
        root = prov.get("derived", {}).get("from", self.system_id)
        prov["derived"] = {
            "from": root,
            "law": "trapping rate and its ceiling proportional to the dopant's molarity (mass action); escape, "
            "leak and the carrier's open conductance unchanged",
            "molar": {ion: [dict(_root_salts(root)).get(species.salt_of(ion).name), m] for ion, m in new.items()},
            "note": "the fit block and uncertainties are those of the source calibration, at its molarities",
        }
        prov["molar"] = system.cation_molar
        data["provenance"] = prov
        return _from_dict(data)

    def __repr__(self) -> str:
        return f"Calibration({self.system_id!r}, states={list(self.state_names)})"


def _root_salts(system_id: str) -> tuple:
    """``((salt, molar), ...)`` of a system id (the source a derived calibration names)."""
    return species.parse_system_id(system_id).salts


def _open_conductance(carrier_raw: dict, temperature_k: float) -> dict:
    """``carrier.open_conductance``, checked (α within the two-charge bound at ``temperature_k``)."""
    oc_raw = _require(carrier_raw, "open_conductance", "carrier")
    oc = {
        "c_ps": _number(
            _require(oc_raw, "c_ps", "carrier.open_conductance"), "carrier.open_conductance.c_ps", lo=0.0, lo_open=True
        ),
        "alpha_per_v": _number(
            _require(oc_raw, "alpha_per_v", "carrier.open_conductance"), "carrier.open_conductance.alpha_per_v"
        ),
        "v_smooth_v": _number(
            _require(oc_raw, "v_smooth_v", "carrier.open_conductance"),
            "carrier.open_conductance.v_smooth_v",
            lo=0.0,
            lo_open=True,
        ),
    }
    alpha_max = MAX_GATING_CHARGES / thermal_voltage_v(temperature_k)
    if abs(oc["alpha_per_v"]) > alpha_max:
        raise _field(
            "carrier.open_conductance.alpha_per_v",
            f"must be within ±{alpha_max:.3g} /V ({MAX_GATING_CHARGES:g}/V_T: at most two elementary charges crossing "
            "the whole field; the paper's fits span about −8 to +8 /V)",
            oc["alpha_per_v"],
        )
    if "v_max_v" in oc_raw:
        oc["v_max_v"] = _number(oc_raw["v_max_v"], "carrier.open_conductance.v_max_v", lo=0.0, lo_open=True)
    extra = set(oc_raw) - set(OPEN_KEYS)
    if extra:
        raise _field("carrier.open_conductance", f"has unknown keys {sorted(extra)}; allowed: {list(OPEN_KEYS)}", sorted(extra))
    return oc


def _data_range(raw: dict) -> tuple[float, float] | None:
    """``data_range_v``: [lowest, highest] |V| of the data the calibration rests on, or None."""
    data_range = raw.get("data_range_v")
    if data_range is not None:
        if not (isinstance(data_range, list) and len(data_range) == 2):
            raise _field("data_range_v", "must be [lowest, highest] |V| of the data, volts", data_range)
        lo_v = _number(data_range[0], "data_range_v[0]", lo=0.0)
        hi_v = _number(data_range[1], "data_range_v[1]", lo=lo_v)
        data_range = [lo_v, hi_v]
    return None if data_range is None else (data_range[0], data_range[1])


def _dopant(d, i: int, system, cations, carrier: str) -> Dopant:
    """``dopants[i]``, checked: a non-carrier cation of the system, its site, rates within their ceilings,
    leak, and an electrical distance that matches the gating charges it states."""
    where = f"dopants[{i}]"
    ion = _require(d, "ion", where)
    _unknown_keys(d, DOPANT_KEYS, where)
    if ion not in species.IONS:
        raise _field(f"{where}.ion", f"must be a known ion ({', '.join(species.CATIONS)})", ion)
    if ion not in cations or ion == carrier:
        raise _field(f"{where}.ion", f"must be a non-carrier cation of the system {system}", ion)
    site = _require(d, "site", where)
    if site not in SITES:
        raise _field(f"{where}.site", f"must be one of {SITES}", site)
    charge = species.IONS[ion].charge
    trap = _rate(_require(d, "trap", where), TRAP_KEYS, f"{where}.trap", charge, encounter_rate_per_ns_per_molar(ion))
    escape = _rate(_require(d, "escape", where), ESCAPE_KEYS, f"{where}.escape", charge, escape_ceiling_per_ns(ion))
    leak = _number(d.get("leak_fraction", 0.0), f"{where}.leak_fraction", lo=0.0, hi=1.0)
    distance = d.get("electrical_distance")
    if distance is not None:
        distance = _number(distance, f"{where}.electrical_distance", lo=0.0, hi=0.5)
        z = abs(charge)
        for path, total in (
            ("cis", trap["delta_plus"] + escape["delta_minus"]),
            ("trans", trap["delta_minus"] + escape["delta_plus"]),
        ):
            used = trap["k_plus_per_ns_per_molar" if path == "cis" else "k_minus_per_ns_per_molar"] > 0
            if used and abs(total - z * distance) > 1e-9 * max(1.0, z):
                raise _field(
                    f"{where}.electrical_distance",
                    f"must equal the gating charge crossed along the {path} path over |z| "
                    f"(trap + escape delta = {total:.6g} for |z| = {z:g})",
                    distance,
                )
    if leak >= 1.0:
        raise _field(f"{where}.leak_fraction", "must be < 1 (a blocked pore conducts less than an open one)", leak)
    return Dopant(ion, cations[ion], site, MappingProxyType(trap), MappingProxyType(escape), leak, distance)


def _from_dict(raw) -> Calibration:
    if not isinstance(raw, dict):
        raise CalibrationError(f"a calibration must be a JSON object; got {type(raw).__name__}")
    schema = _require(raw, "schema", "")
    if schema != SCHEMA:
        raise _field("schema", f"must be {SCHEMA!r} (this ionkinetics reads schema version 1)", schema)
    _unknown_keys(raw, TOP_KEYS, "")
    try:
        system = species.parse_system_id(_require(raw, "system", ""))
    except (ValueError, TypeError) as exc:
        raise CalibrationError(f"calibration field 'system' is invalid: {exc}") from None
    temperature_k = _number(raw.get("temperature_k", 298.15), "temperature_k", lo=0.0, lo_open=True)
    if not LIQUID_WATER_K[0] <= temperature_k <= LIQUID_WATER_K[1]:
        raise _field(
            "temperature_k",
            f"must be within {LIQUID_WATER_K[0]:g}–{LIQUID_WATER_K[1]:g} K (liquid water: an electrolyte)",
            temperature_k,
        )
    carrier_raw = _require(raw, "carrier", "")
    carrier = _require(carrier_raw, "ion", "carrier")
    _unknown_keys(carrier_raw, CARRIER_KEYS, "carrier")
    cations = system.cation_molar
    if carrier not in species.IONS:
        raise _field("carrier.ion", f"must be a known ion ({', '.join(species.CATIONS)})", carrier)
    if carrier not in cations:
        raise _field("carrier.ion", f"must be a cation of the system {system} ({', '.join(cations)})", carrier)
    oc = _open_conductance(carrier_raw, temperature_k)
    data_range = _data_range(raw)
    dopants_raw = _require(raw, "dopants", "")
    if not isinstance(dopants_raw, list):
        raise _field("dopants", "must be a list", dopants_raw)
    dopants = [_dopant(d, i, system, cations, carrier) for i, d in enumerate(dopants_raw)]
    named = {carrier} | {d.ion for d in dopants}
    if len({d.ion for d in dopants}) != len(dopants):
        raise _field("dopants", "must list each ion once", [d.ion for d in dopants])
    missing = [c for c in cations if c not in named]
    if missing:
        raise _field(
            "dopants", f"must describe every non-carrier cation of {system}; missing {missing}", [d.ion for d in dopants]
        )
    provenance = raw.get("provenance", {})
    if not isinstance(provenance, dict):
        raise _field("provenance", "must be an object", provenance)
    return Calibration(
        system=system,
        carrier=carrier,
        open_conductance=MappingProxyType(oc),
        dopants=tuple(dopants),
        temperature_k=temperature_k,
        data_range_v=data_range,
        uncertainty=raw.get("uncertainty"),
        fit=raw.get("fit"),
        provenance=provenance,
    )


def site_rates(site: str, k0, delta, k_max, *, trap: bool) -> dict:
    """Rate dict of the first state of a site from its zero-bias rate ``k0`` and gating charge.

    ``center``: ``k0/2`` on each polarity, so ``k = k0·cosh(δV/V_T)``. ``entrance`` (cis mouth):
    trapping goes with the field, ``k0·exp(+δV/V_T)``; escape against it, ``k0·exp(−δV/V_T)``.
    Works on floats and on JAX tracers alike.
    """
    keys = TRAP_KEYS if trap else ESCAPE_KEYS
    zero = 0.0 * k0
    if site == "center":
        values = (k0 / 2, delta, k0 / 2, delta, k_max)
    elif trap:
        values = (k0, delta, zero, zero, k_max)
    else:
        values = (zero, zero, k0, delta, k_max)
    return dict(zip(keys, values, strict=True))


def params_from_rates(open_conductance, dopants, v_thermal_v) -> KineticParams:
    """Build :class:`KineticParams` from per-dopant rate dicts.

    ``dopants`` is a sequence of ``(molar, site, trap, escape, leak_fraction)``; an entrance
    site contributes its cis state and the mirrored trans state. Values may be JAX tracers, so
    the fitter and the file loader share this one path.
    """
    columns: dict[str, list] = {"trap": [], "escape": [], "molar": [], "leak": []}
    for molar, site, trap, escape, leak in dopants:
        pairs = [(trap, escape)]
        if site == "entrance":
            pairs.append((_mirror(trap, TRAP_KEYS), _mirror(escape, ESCAPE_KEYS)))
        for tr, es in pairs:
            columns["trap"].append([tr[k] for k in TRAP_KEYS])
            columns["escape"].append([es[k] for k in ESCAPE_KEYS])
            columns["molar"].append(molar)
            columns["leak"].append(leak)

    def stack(rows, i):
        return jnp.stack([jnp.asarray(r[i], dtype=float) for r in rows]) if rows else jnp.zeros((0,))

    def as_array(values):
        return jnp.stack([jnp.asarray(x, dtype=float) for x in values]) if values else jnp.zeros((0,))

    oc = open_conductance
    return KineticParams(
        open=OpenConductance(
            c_ps=jnp.asarray(oc["c_ps"], dtype=float),
            alpha_per_v=jnp.asarray(oc["alpha_per_v"], dtype=float),
            v_smooth_v=jnp.asarray(oc["v_smooth_v"], dtype=float),
            v_max_v=jnp.asarray(oc.get("v_max_v", math.inf), dtype=float),
        ),
        trap=BellRate(*(stack(columns["trap"], i) for i in range(5))),
        escape=BellRate(*(stack(columns["escape"], i) for i in range(5))),
        molar=as_array(columns["molar"]),
        leak_fraction=as_array(columns["leak"]),
        v_thermal_v=jnp.asarray(v_thermal_v, dtype=float),
    )


def _to_params(cal: Calibration) -> KineticParams:
    return params_from_rates(
        cal.open_conductance,
        [(d.molar, d.site, dict(d.trap), dict(d.escape), d.leak_fraction) for d in cal.dopants],
        thermal_voltage_v(cal.temperature_k),
    )


def calibration_dir() -> Path:
    """Folder of the shipped calibrations: packaged data in a wheel, ``calibration/`` in a checkout."""
    return shipped_dir("calibration")


# Calibrations from the project's own MD carry this file-name prefix; they are loaded by name
# (``openmm-...``), never by system id, so they cannot shadow the published-number calibrations.
MD_PREFIX = "openmm-"


def _shipped() -> dict[str, Path]:
    found = {}
    folder = calibration_dir()
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith(MD_PREFIX):
            continue
        with open(path, encoding="utf-8") as fh:
            found[str(species.parse_system_id(json.load(fh)["system"]))] = path
    return found


def list_calibrations() -> list[str]:
    """System ids of the shipped published-number calibrations (loadable by system id)."""
    return list(_shipped())


def list_md_calibrations() -> list[str]:
    """Names of the shipped calibrations from the project's own MD (``openmm-*``, loadable by name)."""
    return [p.stem for p in sorted(calibration_dir().glob(f"{MD_PREFIX}*.json"))]


def load_calibration(system_or_path) -> Calibration:
    """Load a shipped calibration by system id (published numbers) or by name (``openmm-...``,
    from the project's MD), or any calibration JSON by path; validates."""
    if isinstance(system_or_path, Calibration):
        return system_or_path
    text = str(system_or_path)
    path = Path(text)
    if text.startswith(MD_PREFIX) and not text.endswith(".json") and not path.is_file():
        path = calibration_dir() / f"{text}.json"
        if not path.is_file():
            raise ValueError(f"no shipped MD calibration {text!r}; shipped: {', '.join(list_md_calibrations()) or 'none'}")
    elif not (text.endswith(".json") or path.is_file()):
        if looks_like_path(text):  # a misspelt path is a missing file, not a malformed system id
            raise FileNotFoundError(
                f"calibration file not found: {text!r} does not exist (a path; a shipped system id looks like "
                "'crown6:NaCl@1.0+KCl@0.5')"
            )
        system = species.parse_system_id(text)
        shipped = _shipped()
        if str(system) not in shipped:
            return _derived(system, shipped)
        path = shipped[str(system)]
    if not path.is_file():
        raise FileNotFoundError(f"calibration file not found: {str(path)!r} does not exist")
    try:
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
    except json.JSONDecodeError as exc:
        raise CalibrationError(f"calibration file {str(path)!r} is not valid JSON: {exc}") from None
    try:
        return _from_dict(raw)
    except CalibrationError as exc:
        raise CalibrationError(f"{path}: {exc}") from None


def _derived(system: species.SystemId, shipped: dict) -> Calibration:
    """A shipped calibration of the same pore and salts, moved to ``system``'s dopant molarities."""
    names = [s for s, _ in system.salts]
    for key, path in shipped.items():
        other = species.parse_system_id(key)
        if other.pore == system.pore and [s for s, _ in other.salts] == names:
            base = load_calibration(path)
            carrier_salt = species.salt_of(base.carrier).name
            if dict(system.salts)[carrier_salt] != dict(other.salts)[carrier_salt]:
                raise ValueError(
                    f"no calibration for {str(system)!r}: the shipped {key!r} has the carrier {carrier_salt} at "
                    f"{dict(other.salts)[carrier_salt]:g} M, and its dependence on the carrier's molarity is not "
                    "known (the paper measured one concentration); only dopant molarities can be changed"
                )
            return base.with_molar({s: m for s, m in system.salts if s != carrier_salt})
    raise ValueError(
        f"no shipped calibration for {str(system)!r} or for its salts at other molarities; shipped: "
        f"{', '.join(shipped) or 'none'}. Pass a path to a JSON file instead."
    )


def save_calibration(cal: Calibration, path) -> Path:
    """Validate and write ``cal`` to ``path`` atomically (temporary file, then rename)."""
    data = cal.to_dict()
    _from_dict(json.loads(json.dumps(data)))  # round-trip through JSON must validate
    return write_json_atomic(path, data)
