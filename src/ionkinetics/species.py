"""Ions, salts, pores and system ids.

The nine cations and the anion of Noh & Smolyanitsky (2026), the four Å-pores, salts
written as chemists write them (``NaCl``, ``MgCl2``, ``GdmCl``, ``NH4Cl``), and system ids
``"<pore>:<salt>@<molar>+<salt>@<molar>"`` such as ``"crown6:NaCl@1.0+KCl@0.5"``.

Every unknown name raises ``ValueError`` listing the known ones.
"""

from __future__ import annotations

import dataclasses
import math
import re
from types import MappingProxyType

__all__ = [
    "ANION",
    "CATIONS",
    "IONS",
    "PORES",
    "SALTS",
    "Ion",
    "Pore",
    "Salt",
    "SystemId",
    "format_system_id",
    "get_ion",
    "get_pore",
    "get_salt",
    "parse_system_id",
]


@dataclasses.dataclass(frozen=True)
class Ion:
    """An ion species.

    ``diffusion_nm2_per_ns`` is the tracer diffusion coefficient at infinite dilution and
    25 °C (1 nm²/ns = 1e-9 m²/s); it sets the diffusion-limited encounter rate that caps
    every trapping rate in the kinetic model.
    """

    name: str
    charge: int
    symbol: str
    formula: str
    diffusion_nm2_per_ns: float
    diffusion_source: str


@dataclasses.dataclass(frozen=True)
class Salt:
    """A chloride salt ``<cation>Cl<n>``: one cation and ``n = |z|`` chlorides."""

    name: str
    cation: str
    n_anions: int


@dataclasses.dataclass(frozen=True)
class Pore:
    """An Å-scale pore in a 2D membrane."""

    name: str
    membrane: str
    description: str
    atoms_removed: int
    edge_atoms: str


_CRC = "CRC Handbook of Chemistry and Physics, 'Ionic conductivity and diffusion at infinite dilution', 25 °C"

_ION_LIST = (
    Ion("Li+", 1, "Li", "Li", 1.029, _CRC),
    Ion("Na+", 1, "Na", "Na", 1.334, _CRC),
    Ion("K+", 1, "K", "K", 1.957, _CRC),
    Ion("Rb+", 1, "Rb", "Rb", 2.072, _CRC),
    Ion("Cs+", 1, "Cs", "Cs", 2.056, _CRC),
    Ion("NH4+", 1, "NH4", "NH4", 1.957, _CRC),
    Ion("Mg2+", 2, "Mg", "Mg", 0.706, _CRC),
    Ion("Ca2+", 2, "Ca", "Ca", 0.792, _CRC),
    Ion(
        "Gdm+",
        1,
        "Gdm",
        "C(NH2)3+",
        1.2,
        "approximate: not in the CRC table; NMR and MD reports for guanidinium lie in 1.0-1.4e-9 m^2/s",
    ),
    Ion("Cl-", -1, "Cl", "Cl", 2.032, _CRC),
)

IONS: MappingProxyType[str, Ion] = MappingProxyType({ion.name: ion for ion in _ION_LIST})
CATIONS: tuple[str, ...] = tuple(ion.name for ion in _ION_LIST if ion.charge > 0)
ANION = "Cl-"

_SALT_LIST = tuple(
    Salt(
        name=f"{IONS[c].symbol}Cl{IONS[c].charge if IONS[c].charge > 1 else ''}",
        cation=c,
        n_anions=IONS[c].charge,
    )
    for c in CATIONS
)
SALTS: MappingProxyType[str, Salt] = MappingProxyType({s.name: s for s in _SALT_LIST})

_PORE_LIST = (
    Pore(
        "crown6",
        "graphene",
        "18-crown-6 pore embedded in graphene: one hexagon's six C removed, the six C bonded to it made ether O",
        6,
        "6 O (ether)",
    ),
    Pore("B3N", "hBN", "hBN vacancy with one N and its three B removed; six N at the edge", 4, "6 N"),
    Pore("B6N3", "hBN", "hBN vacancy with six B and three N removed; nine N at the edge", 9, "9 N"),
    Pore("B10N6", "hBN", "hBN vacancy with ten B and six N removed, the largest of the four; twelve N at the edge", 16, "12 N"),
)
PORES: MappingProxyType[str, Pore] = MappingProxyType({p.name: p for p in _PORE_LIST})


def _lookup(table, name, what: str):
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, got {type(name).__name__} {name!r}")
    try:
        return table[name]
    except KeyError:
        known = ", ".join(table)
        raise ValueError(f"unknown {what} {name!r}; known {what}s are: {known}") from None


def get_ion(name: str) -> Ion:
    """The ion called ``name`` (``"Na+"``, ``"Mg2+"``, ``"Gdm+"``, ``"Cl-"``...)."""
    return _lookup(IONS, name, "ion")


def get_salt(name: str) -> Salt:
    """The salt called ``name`` (``"NaCl"``, ``"MgCl2"``, ``"GdmCl"``, ``"NH4Cl"``...)."""
    return _lookup(SALTS, name, "salt")


def get_pore(name: str) -> Pore:
    """The pore called ``name`` (``"crown6"``, ``"B3N"``, ``"B6N3"``, ``"B10N6"``)."""
    return _lookup(PORES, name, "pore")


def salt_of(cation: str) -> Salt:
    """The chloride salt of ``cation``."""
    ion = get_ion(cation)
    if ion.charge <= 0:
        raise ValueError(f"cation must be one of {', '.join(CATIONS)}; got the anion {cation!r}")
    return next(s for s in _SALT_LIST if s.cation == cation)


@dataclasses.dataclass(frozen=True)
class SystemId:
    """A pore in a mixed chloride electrolyte: ``crown6:NaCl@1.0+KCl@0.5``.

    ``salts`` keeps the order written; the first salt is, by convention, the carrier's.
    """

    pore: str
    salts: tuple[tuple[str, float], ...]

    def __post_init__(self):
        get_pore(self.pore)
        check_salts(self.salts)

    @property
    def cation_molar(self) -> dict[str, float]:
        """Molarity of each cation, mol/L."""
        return {SALTS[s].cation: float(m) for s, m in self.salts}

    @property
    def chloride_molar(self) -> float:
        """Molarity of Cl−, mol/L (electroneutral: Σ z·c over the cations)."""
        return float(sum(SALTS[s].n_anions * m for s, m in self.salts))

    def __str__(self) -> str:
        return format_system_id(self.pore, self.salts)


def check_salts(salts) -> tuple[tuple[str, float], ...]:
    """Validate ``((salt, molar), ...)``: known salts, each once, molarities finite and > 0 (mol/L)."""
    salts = tuple((name, molar) for name, molar in salts)
    if not salts:
        raise ValueError("a system needs at least one salt, e.g. 'crown6:NaCl@1.0'")
    seen = set()
    for name, molar in salts:
        get_salt(name)
        if name in seen:
            raise ValueError(f"salt {name!r} appears twice in the system; give each salt once")
        seen.add(name)
        if isinstance(molar, bool) or not (isinstance(molar, (int, float)) and math.isfinite(molar) and molar > 0):
            raise ValueError(f"molarity of {name} must be a finite number > 0 (mol/L); got {molar!r}")
    return salts


def parse_salts(text: str, *, context: str | None = None) -> tuple[tuple[str, float], ...]:
    """``"NaCl@1.0+KCl@0.5"`` (the salt part of a system id) into validated ``((salt, molar), ...)``."""
    where = context if context is not None else text
    salts = []
    for part in text.split("+"):
        name, sep, molar = part.strip().partition("@")
        if not sep:
            raise ValueError(f"each salt in a system id needs '@<molar>', e.g. 'NaCl@1.0'; got {part!r} in {where!r}")
        get_salt(name.strip())
        try:
            value = float(molar)
        except ValueError:
            raise ValueError(f"molarity in {part!r} must be a number of mol/L; got {molar!r} in {where!r}") from None
        salts.append((name.strip(), value))
    return check_salts(salts)


def _format_molar(m: float) -> str:
    text = f"{float(m):.10g}"
    return text if ("." in text or "e" in text) else text + ".0"


def format_system_id(pore: str, salts) -> str:
    """``format_system_id("crown6", [("NaCl", 1.0), ("KCl", 0.5)]) == "crown6:NaCl@1.0+KCl@0.5"``."""
    return f"{pore}:" + "+".join(f"{name}@{_format_molar(m)}" for name, m in salts)


_ID_RE = re.compile(r"^\s*([^:\s]+)\s*:\s*(.+?)\s*$")


def parse_system_id(text: object) -> SystemId:
    """Parse ``"<pore>:<salt>@<molar>+<salt>@<molar>..."`` into a :class:`SystemId` (a SystemId is
    returned as it is; anything but a str is refused with ``TypeError``, so file readers pass what
    they read)."""
    if isinstance(text, SystemId):
        return text
    if not isinstance(text, str):
        raise TypeError(f"system id must be a str like 'crown6:NaCl@1.0+KCl@0.5', got {type(text).__name__}")
    m = _ID_RE.match(text)
    if not m:
        raise ValueError(f"system id must look like 'crown6:NaCl@1.0+KCl@0.5' (<pore>:<salt>@<molar>+...); got {text!r}")
    pore, rest = m.groups()
    get_pore(pore)
    return SystemId(pore, parse_salts(rest, context=text))
