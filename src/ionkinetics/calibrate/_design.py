"""The design space of ion mixtures and the paper's targeted design from a role table.

Counting (paper, section 2.4): from N ions, 2^N − 1 non-empty mixtures per pore; for four pores
and nine cations 4·(2⁹ − 1) = 2044. Bicationic systems: N_pores·C(N, 2) = 4·36 = 144.

Targeted design: in one pore, a *carrier* paired with a *voltage activator* is predicted to be a
voltage-activated system, and a carrier with a *voltage inactivator* a voltage-inactivated one
(the paper's example: Li+ is a carrier in crown6 and K+ an activator there, so crown6 with LiCl
+ KCl is voltage-activated Li+ transport). ``passive`` ions are never used.

A role table maps pore → ion → role (one of :data:`ionkinetics.calibrate._gv.ROLES`). Ions the
table does not list are unknown, not passive. :data:`PAPER_TEXT_ROLES` holds only the roles the
paper's *text* states (each with the sentence it comes from in :data:`PAPER_TEXT_ROLE_SOURCES`);
the full colour map of its Figure 5 is not transcribed, and no entry is invented. The paper's
full table gives :data:`PAPER_PREDICTED_COUNTS` (15 activated, 36 inactivated); the partial text
table gives fewer (see :func:`design_report`).

Role-table file (TOML or JSON)::

    schema = "ionkinetics.role-table/1"
    [roles.crown6]
    "Na+" = "carrier"
    "K+" = "voltage activator"
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

from .. import species
from .._io import read_toml, write_json_atomic
from ._gv import ROLES

__all__ = [
    "PAPER_PREDICTED_COUNTS",
    "PAPER_TEXT_ROLES",
    "PAPER_TEXT_ROLE_SOURCES",
    "ROLE_TABLE_SCHEMA",
    "DesignPrediction",
    "DesignedSystem",
    "RoleTableError",
    "bicationic_pairs",
    "count_bicationic",
    "count_mixtures",
    "design_report",
    "enumerate_mixtures",
    "load_role_table",
    "parse_role_table",
    "predict_systems",
    "save_role_table",
]

ROLE_TABLE_SCHEMA = "ionkinetics.role-table/1"
PAPER_PREDICTED_COUNTS = MappingProxyType({"voltage_activated": 15, "voltage_inactivated": 36})


class RoleTableError(ValueError):
    """A role table that breaks the format; the message names the entry."""


# ---------------------------------------------------------------------------------------------
# counting and enumeration
# ---------------------------------------------------------------------------------------------


def count_mixtures(n_ions: int, n_pores: int = 1) -> int:
    """n_pores·(2^n_ions − 1): every non-empty subset of the ions, per pore."""
    return n_pores * (2**n_ions - 1)


def count_bicationic(n_ions: int, n_pores: int = 1) -> int:
    """n_pores·C(n_ions, 2): unordered pairs of distinct ions, per pore."""
    return n_pores * math.comb(n_ions, 2)


def enumerate_mixtures(
    pores: Sequence[str] = tuple(species.PORES), ions: Sequence[str] = species.CATIONS
) -> list[tuple[str, tuple[str, ...]]]:
    """Every (pore, non-empty ion subset), subsets in ion order, smallest first."""
    _check_names(pores, ions)
    return [(p, combo) for p in pores for r in range(1, len(ions) + 1) for combo in itertools.combinations(ions, r)]


def bicationic_pairs(
    pores: Sequence[str] = tuple(species.PORES), ions: Sequence[str] = species.CATIONS
) -> list[tuple[str, tuple[str, str]]]:
    """Every (pore, (ion_a, ion_b)) with two distinct ions, unordered."""
    _check_names(pores, ions)
    return [(p, pair) for p in pores for pair in itertools.combinations(ions, 2)]


def _check_names(pores, ions):
    for p in pores:
        species.get_pore(p)
    for i in ions:
        if species.get_ion(i).charge <= 0:
            raise ValueError(f"ions must be cations ({', '.join(species.CATIONS)}); got {i!r}")
    if len(set(pores)) != len(pores) or len(set(ions)) != len(ions):
        raise ValueError(f"pores and ions must not repeat; got {list(pores)}, {list(ions)}")


# ---------------------------------------------------------------------------------------------
# the paper's text table
# ---------------------------------------------------------------------------------------------

_A, _I, _C = "voltage activator", "voltage inactivator", "carrier"

_PAPER_TEXT = {
    ("crown6", "Na+"): (
        _C,
        "§2.4: 'with Na+ as the primary charge carrier' (18-crown-6); §2.1: crown6 selective for Li+ and Na+",
    ),
    ("crown6", "Li+"): (
        _C,
        "§2.4: 'a pore structure in which Li+ acts as the primary charge carrier—such as the 18-crown-6 pore'",
    ),
    ("crown6", "K+"): (_A, "§2.4: 'the addition of K+, Rb+, Cs+, or NH4+ induces voltage activated Na+ transport'"),
    ("crown6", "Rb+"): (_A, "§2.4: 'the addition of K+, Rb+, Cs+, or NH4+ induces voltage activated Na+ transport'"),
    ("crown6", "Cs+"): (_A, "§2.4: 'the addition of K+, Rb+, Cs+, or NH4+ induces voltage activated Na+ transport'"),
    ("crown6", "NH4+"): (_A, "§2.4: 'the addition of K+, Rb+, Cs+, or NH4+ induces voltage activated Na+ transport'"),
    ("crown6", "Ca2+"): (_I, "§2.4: 'the addition of Ca2+ or Mg2+ results in voltage-inactivated Na+ transport'"),
    ("crown6", "Mg2+"): (_I, "§2.4: 'the addition of Ca2+ or Mg2+ results in voltage-inactivated Na+ transport'"),
    ("B3N", "K+"): (_C, "§2.1: 'the B3N vacancies in hBN exhibit highly selective K+ transport'; Figure 3i"),
    ("B3N", "Rb+"): (_I, "§2.2, Figure 3j: voltage-assisted plugging of Rb+ at the B3N entrance suppresses K+ transport"),
    ("B3N", "Na+"): (_A, "Figure 4d: 'voltage activation in B3N in a 1.0 M KCl and 0.5 M NaCl solution'"),
    ("B10N6", "Li+"): (_C, "§2.4: Li+ the primary charge carrier in '... or the B10N6 vacancy'"),
    ("B10N6", "Gdm+"): (_A, "§2.4: 'a voltage-activation controller ... Gdm+ in B10N6 vacancy'"),
    ("B6N3", "Rb+"): (_C, "§2.4: 'the B6N3 pore ... voltage-inactivated Rb+ transport in the presence of Mg2+ or Gdm+'"),
    ("B6N3", "Mg2+"): (_I, "§2.4: 'voltage-inactivated Rb+ transport in the presence of Mg2+ or Gdm+' (B6N3)"),
    ("B6N3", "Gdm+"): (_I, "§2.4: 'voltage-inactivated Rb+ transport in the presence of Mg2+ or Gdm+' (B6N3)"),
}


def _freeze(table: Mapping[str, Mapping[str, str]]) -> MappingProxyType:
    return MappingProxyType({p: MappingProxyType(dict(r)) for p, r in table.items()})


PAPER_TEXT_ROLES = _freeze(
    {
        pore: {ion: role for (p, ion), (role, _) in _PAPER_TEXT.items() if p == pore}
        for pore in dict.fromkeys(p for p, _ in _PAPER_TEXT)
    }
)
"""Roles stated in the paper's text only (16 of 36 pore–ion pairs); absent pairs are unknown."""

PAPER_TEXT_ROLE_SOURCES = MappingProxyType({key: src for key, (_, src) in _PAPER_TEXT.items()})


# ---------------------------------------------------------------------------------------------
# prediction
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, order=True)
class DesignedSystem:
    """A predicted bicationic system: ``carrier`` gated by ``controller`` in ``pore``."""

    pore: str
    carrier: str
    controller: str
    kind: str  # "voltage_activated" | "voltage_inactivated"

    def system_id(self, carrier_molar: float = 1.0, controller_molar: float = 0.5) -> str:
        """System id with the carrier's salt first (the paper's 1.0 M / 0.5 M mixtures by default)."""
        salts = [(species.salt_of(self.carrier).name, carrier_molar), (species.salt_of(self.controller).name, controller_molar)]
        return species.format_system_id(self.pore, salts)


@dataclasses.dataclass(frozen=True)
class DesignPrediction:
    """The bicationic systems :func:`predict_systems` derives from a role table, voltage-activated and
    voltage-inactivated."""

    activated: tuple[DesignedSystem, ...]
    inactivated: tuple[DesignedSystem, ...]

    @property
    def counts(self) -> dict[str, int]:
        """Number of predicted systems of each kind, keyed ``voltage_activated`` and ``voltage_inactivated``."""
        return {"voltage_activated": len(self.activated), "voltage_inactivated": len(self.inactivated)}


def predict_systems(table: Mapping[str, Mapping[str, str]]) -> DesignPrediction:
    """Carrier × activator → voltage-activated, carrier × inactivator → voltage-inactivated, per pore.

    Pairs are within one pore and of two different ions; order: pore as in the table, then carrier
    and controller in the table's order."""
    table = parse_role_table({"schema": ROLE_TABLE_SCHEMA, "roles": table}) if not _is_checked(table) else table
    act, inact = [], []
    for pore, roles in table.items():
        carriers = [i for i, r in roles.items() if r == "carrier"]
        for c in carriers:
            for ion, role in roles.items():
                if ion == c:
                    continue
                if role == "voltage activator":
                    act.append(DesignedSystem(pore, c, ion, "voltage_activated"))
                elif role == "voltage inactivator":
                    inact.append(DesignedSystem(pore, c, ion, "voltage_inactivated"))
    return DesignPrediction(tuple(act), tuple(inact))


def _is_checked(table) -> bool:
    return isinstance(table, MappingProxyType) and all(isinstance(r, MappingProxyType) for r in table.values())


def design_report(
    table: Mapping[str, Mapping[str, str]] = PAPER_TEXT_ROLES,
    *,
    pores: Sequence[str] = tuple(species.PORES),
    ions: Sequence[str] = species.CATIONS,
) -> dict:
    """Counts of the design space and the predicted systems, beside the paper's full-table counts."""
    pred = predict_systems(table)
    n_known = sum(len(r) for r in table.values())
    return {
        "n_pores": len(pores),
        "n_ions": len(ions),
        "n_mixtures": count_mixtures(len(ions), len(pores)),
        "n_bicationic": count_bicationic(len(ions), len(pores)),
        "role_table_entries": n_known,
        "role_table_entries_possible": len(pores) * len(ions),
        "predicted_counts": pred.counts,
        "paper_full_table_counts": dict(PAPER_PREDICTED_COUNTS),
        "voltage_activated": [dataclasses.asdict(s) | {"system": s.system_id()} for s in pred.activated],
        "voltage_inactivated": [dataclasses.asdict(s) | {"system": s.system_id()} for s in pred.inactivated],
    }


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------


def parse_role_table(raw, *, path: str | None = None) -> MappingProxyType:
    """Validate ``{"schema": ..., "roles": {pore: {ion: role}}}`` into a read-only table."""
    where = f"{path}: " if path else ""
    if not isinstance(raw, Mapping):
        raise RoleTableError(f"{where}a role table must be an object; got {type(raw).__name__}")
    if raw.get("schema") != ROLE_TABLE_SCHEMA:
        raise RoleTableError(f"{where}role table field 'schema' must be {ROLE_TABLE_SCHEMA!r}; got {raw.get('schema')!r}")
    roles = raw.get("roles")
    if not isinstance(roles, Mapping):
        raise RoleTableError(f"{where}role table field 'roles' must be an object pore -> {{ion: role}}; got {roles!r}")
    extra = set(raw) - {"schema", "roles", "sources", "note"}
    if extra:
        raise RoleTableError(f"{where}role table has unknown fields {sorted(extra)}; allowed: schema, roles, sources, note")
    out = {}
    for pore, row in roles.items():
        if pore not in species.PORES:
            raise RoleTableError(f"{where}role table pore {pore!r} is unknown; known pores: {', '.join(species.PORES)}")
        if not isinstance(row, Mapping):
            raise RoleTableError(f"{where}roles.{pore} must be an object ion -> role; got {row!r}")
        for ion, role in row.items():
            if ion not in species.CATIONS:
                raise RoleTableError(f"{where}roles.{pore}: ion {ion!r} is not a cation ({', '.join(species.CATIONS)})")
            if role not in ROLES:
                raise RoleTableError(f"{where}roles.{pore}.{ion!r} must be one of {ROLES}; got {role!r}")
        out[pore] = dict(row)
    return _freeze(out)


def load_role_table(path) -> MappingProxyType:
    """A role table from a ``.toml`` or ``.json`` file (format in the module notes)."""
    path = Path(path)
    if path.suffix == ".toml":
        _, raw = read_toml(path, "role table", RoleTableError)
    elif path.suffix == ".json":
        if not path.is_file():
            raise FileNotFoundError(f"role table file {str(path)!r} does not exist")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RoleTableError(f"{path}: not valid JSON: {exc}") from None
    else:
        raise RoleTableError(f"role table file must end in .toml or .json; got {str(path)!r}")
    return parse_role_table(raw, path=str(path))


def save_role_table(path, table: Mapping[str, Mapping[str, str]], *, note: str | None = None) -> Path:
    """Write a role table as JSON (validated first)."""
    data = {"schema": ROLE_TABLE_SCHEMA, "roles": {p: dict(r) for p, r in table.items()}}
    parse_role_table(data)
    if note:
        data["note"] = note
    return write_json_atomic(path, data)
