"""Water and a mixed chloride electrolyte on both sides of a membrane.

Water. TIP3P molecules (r(OH) = 0.09572 nm, HOH = 104.52°) with random orientations on a
rectangular lattice at the number density of liquid water at 298 K, 33.33 nm⁻³ (0.997 g/cm³,
18.015 g/mol), filling the box except a layer ``gap_nm`` thick on each side of the membrane
plane (default 0.32 nm, about the contact distance of water O on graphene). The water
volume is therefore

    V_water = L_x · L_y · (L_z − 2·gap_nm).

The box is periodic in z, so the slab above the membrane (z > 0) and the slab below (z < 0)
meet at z = ±L_z/2: one reservoir on each side of the sheet, as in the usual applied-field
set-up (a single membrane, E = V/L_z).

Ions. For each salt at molarity c (mol/L) the cation count is

    n = round(c · N_A · V_water),   round half up, V_water in litres (1 nm³ = 1e−24 L),

and Cl⁻ makes the whole system neutral: n_Cl = Σ z_i·n_i, the membrane being neutral (a
charged membrane is refused). A salt that would get no cation is an error, not a silent
omission. Ions replace water molecules chosen at random (explicit seed) among those at least
``ion_membrane_distance_nm`` from the membrane plane and ``ion_separation_nm`` from every other
ion (minimum image); each species is split evenly between the two sides and each side gets the
Cl⁻ that makes it neutral, so neither reservoir starts charged. A multi-atom ion (NH4⁺, Gdm⁺)
is centred on the replaced water's O with a random orientation, and waters it would clash with
(O within 0.26 nm of its heavy atoms or 0.18 nm of its H) are removed too.

:class:`Composition` reports what was built: counts per ion and per side, water count, V_water,
requested and effective molarities (c_eff = n / (N_A·V_water)).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from .. import species as _species
from .._checks import bad_argument, check_real
from ..constants import AVOGADRO_PER_MOL
from ._membranes import Membrane

__all__ = [
    "AVOGADRO_PER_MOL",
    "DEFAULT_ION_MEMBRANE_DISTANCE_NM",
    "DEFAULT_ION_SEPARATION_NM",
    "DEFAULT_WATER_GAP_NM",
    "ION_RESIDUES",
    "WATER_NUMBER_DENSITY_PER_NM3",
    "Composition",
    "Electrolyte",
    "build_electrolyte",
    "ion_count",
    "residue_template",
]

LITRE_PER_NM3 = 1e-24
WATER_NUMBER_DENSITY_PER_NM3 = 0.997 / 18.015 * AVOGADRO_PER_MOL * 1e-21  # 33.33 nm⁻³ at 298 K
DEFAULT_WATER_GAP_NM = 0.32
DEFAULT_ION_MEMBRANE_DISTANCE_NM = 0.6
DEFAULT_ION_SEPARATION_NM = 0.5
_MIN_WATER_THICKNESS_NM = 1.0
_CLASH_HEAVY_NM = 0.26
_CLASH_H_NM = 0.18

# Residue names of OpenMM's amber14/tip3p.xml (atomic ions) and of data/ionkinetics.xml (NH4, GDM).
ION_RESIDUES = MappingProxyType(
    {
        "Li+": "LI",
        "Na+": "NA",
        "K+": "K",
        "Rb+": "RB",
        "Cs+": "CS",
        "NH4+": "NH4",
        "Mg2+": "MG",
        "Ca2+": "CA",
        "Gdm+": "GDM",
        "Cl-": "CL",
    }
)


def _water_template():
    r, half = 0.09572, math.radians(104.52) / 2
    xyz = np.array(
        [[0.0, 0.0, 0.0], [r * math.sin(half), 0.0, r * math.cos(half)], [-r * math.sin(half), 0.0, r * math.cos(half)]]
    )
    return ("O", "H1", "H2"), ("O", "H", "H"), xyz, ((0, 1), (0, 2))


def _nh4_template():
    r = 0.101  # N–H, data/ionkinetics.xml
    t = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / math.sqrt(3.0)
    xyz = np.vstack([np.zeros(3), r * t])
    return ("N", "H1", "H2", "H3", "H4"), ("N", "H", "H", "H", "H"), xyz, ((0, 1), (0, 2), (0, 3), (0, 4))


def _gdm_template():
    r_cn, r_nh = 0.134, 0.101  # C–N, N–H, data/ionkinetics.xml
    xyz = [np.zeros(3)]
    names, hs = ["C", "N1", "N2", "N3"], []
    for k in range(3):
        phi = 2 * math.pi * k / 3
        u = np.array([math.cos(phi), math.sin(phi), 0.0])
        xyz.append(r_cn * u)
        for sign in (1, -1):
            a = phi + sign * math.pi / 3  # H–N–C = 120°
            hs.append(r_cn * u + r_nh * np.array([math.cos(a), math.sin(a), 0.0]))
    xyz = np.vstack(xyz + hs)
    names += ["H11", "H12", "H21", "H22", "H31", "H32"]
    bonds = ((0, 1), (0, 2), (0, 3), (1, 4), (1, 5), (2, 6), (2, 7), (3, 8), (3, 9))
    return tuple(names), ("C", "N", "N", "N") + ("H",) * 6, xyz, bonds


def _atom_template(resname: str, element: str):
    return (resname,), (element,), np.zeros((1, 3)), ()


_TEMPLATES = {
    "HOH": _water_template(),
    "NH4": _nh4_template(),
    "GDM": _gdm_template(),
    **{ION_RESIDUES[n]: _atom_template(ION_RESIDUES[n], _species.IONS[n].symbol) for n in ("Li+", "Na+", "K+", "Rb+", "Cs+")},
    "MG": _atom_template("MG", "Mg"),
    "CA": _atom_template("CA", "Ca"),
    "CL": _atom_template("CL", "Cl"),
}


def residue_template(resname: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[int, int], ...]]:
    """Atom names, elements and bonds (local index pairs) of a solvent residue (``HOH``, ``NA``, ``GDM``...)."""
    names, elements, _, bonds = _TEMPLATES[resname]
    return names, elements, bonds


def ion_count(molar: float, water_volume_nm3: float) -> int:
    """The count rule: ``round(c · N_A · V_water)``, rounding half up, V_water in nm³ (1 nm³ = 1e−24 L)."""
    return math.floor(molar * AVOGADRO_PER_MOL * water_volume_nm3 * LITRE_PER_NM3 + 0.5)


@dataclasses.dataclass(frozen=True)
class Composition:
    """What an electrolyte build produced.

    ``counts`` and ``counts_by_side`` (z > 0, z < 0) are per ion species, ``Cl-`` included;
    molarities are mol/L, ``effective_molar = n / (N_A·V_water)``; ``n_water`` is the number of
    water molecules left after the ions replaced some of the ``n_water_sites``.
    """

    salts: tuple[tuple[str, float], ...]
    water_volume_nm3: float
    n_water_sites: int
    n_water: int
    counts: Mapping[str, int]
    counts_by_side: Mapping[str, tuple[int, int]]
    requested_molar: Mapping[str, float]
    effective_molar: Mapping[str, float]
    net_charge_e: float
    rule: str

    def to_dict(self) -> dict:
        """The composition as a JSON-ready mapping; ``counts_by_side`` is written as ``counts_by_side_zpos_zneg``."""
        return {
            "salts": [[s, m] for s, m in self.salts],
            "water_volume_nm3": self.water_volume_nm3,
            "n_water_sites": self.n_water_sites,
            "n_water": self.n_water,
            "counts": dict(self.counts),
            "counts_by_side_zpos_zneg": {k: list(v) for k, v in self.counts_by_side.items()},
            "requested_molar": dict(self.requested_molar),
            "effective_molar": dict(self.effective_molar),
            "net_charge_e": self.net_charge_e,
            "rule": self.rule,
        }


@dataclasses.dataclass(frozen=True, eq=False)
class Electrolyte:
    """Water and ions for a membrane's box; atoms are ordered ions first (by species), then water.

    ``positions_nm`` (n_atoms, 3) with the membrane plane at z = 0 and z in (−L_z/2, L_z/2];
    ``residue_names`` has one entry per residue and ``residue_starts`` (n_residues + 1,) the
    atom ranges; ``ion_species`` and ``ion_atoms`` (n_ions,) give each ion's species and the
    index of its centre atom (N of NH4⁺, C of Gdm⁺) within these atoms.
    """

    composition: Composition
    positions_nm: np.ndarray
    elements: tuple[str, ...]
    atom_names: tuple[str, ...]
    residue_names: tuple[str, ...]
    residue_starts: np.ndarray
    ion_species: tuple[str, ...]
    ion_atoms: np.ndarray
    box_vectors_nm: np.ndarray
    gap_nm: float
    seed: int

    @property
    def n_atoms(self) -> int:
        """Number of electrolyte atoms (ions and water)."""
        return len(self.elements)


def _normalise_salts(salts, pore: str | None) -> tuple[tuple[str, float], ...]:
    """Salts from a system id, a ``"NaCl@1.0+KCl@0.5"`` string, a SystemId, a mapping or pairs."""
    try:
        if isinstance(salts, str) and ":" in salts:
            salts = _species.parse_system_id(salts)
        if isinstance(salts, _species.SystemId):
            if salts.pore != pore:
                raise bad_argument("salts", f"name the membrane's pore ({pore!r}) if they carry a pore", str(salts))
            return tuple((name, float(m)) for name, m in salts.salts)
        if isinstance(salts, str):
            checked = _species.parse_salts(salts)
        elif isinstance(salts, Mapping):
            checked = _species.check_salts((str(k), v) for k, v in salts.items())
        else:
            checked = _species.check_salts((str(k), v) for k, v in salts)
    except (ValueError, TypeError) as err:
        if str(err).startswith("salts"):
            raise
        raise type(err)(f"salts: {err}") from None
    return tuple((name, float(m)) for name, m in checked)


def _random_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=-1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=-1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=-1),
        ],
        axis=1,
    )


def _water_sites(box: np.ndarray, gap: float, thickness: float) -> tuple[np.ndarray, float]:
    """A water lattice at bulk density over the slab z ∈ [gap, L_z − gap], wrapped to (−L_z/2, L_z/2];
    returns the sites (n, 3) and the water volume (nm³)."""
    lx, ly, lz = box
    volume = float(lx * ly * thickness)
    side = WATER_NUMBER_DENSITY_PER_NM3 ** (-1.0 / 3.0)
    nx, ny = max(1, round(lx / side)), max(1, round(ly / side))
    nz = max(1, round(WATER_NUMBER_DENSITY_PER_NM3 * volume / (nx * ny)))
    gx, gy, gz = np.meshgrid(
        (np.arange(nx) + 0.5) * lx / nx,
        (np.arange(ny) + 0.5) * ly / ny,
        gap + (np.arange(nz) + 0.5) * thickness / nz,
        indexing="ij",
    )
    sites = np.column_stack([gx.ravel(), gy.ravel(), gz.ravel()])
    sites[sites[:, 2] > lz / 2, 2] -= lz
    return sites, volume


def _ion_counts(salt_list, volume: float) -> dict[str, int]:
    """The molarity rule per cation, then chloride for neutrality (membranes are neutral)."""
    counts: dict[str, int] = {}
    for name, molar in salt_list:
        cation = _species.SALTS[name].cation
        n = ion_count(molar, volume)
        if n < 1:
            raise bad_argument(
                "salts",
                f"give no {cation} ion for {name}@{molar} in this box: round(c·N_A·V_water) with V_water = {volume:.3f} nm³ "
                f"is {molar * AVOGADRO_PER_MOL * volume * LITRE_PER_NM3:.3f} → 0; raise the molarity or enlarge the box",
                f"{name}@{molar}",
            )
        counts[cation] = n
    counts[_species.ANION] = int(sum(_species.IONS[c].charge * n for c, n in counts.items()))
    return counts


def _split_by_side(counts: dict[str, int]) -> dict[str, list[int]]:
    """Each cation species split between the sides (+z first), alternating the odd one; Cl− neutralises each side."""
    by_side: dict[str, list[int]] = {}
    extra_top = True
    for c in (c for c in counts if c != _species.ANION):
        n = counts[c]
        top = n // 2 + (n % 2 if extra_top else 0)
        if n % 2:
            extra_top = not extra_top
        by_side[c] = [top, n - top]
    charge_side = [sum(_species.IONS[c].charge * by_side[c][s] for c in by_side) for s in (0, 1)]
    by_side[_species.ANION] = [int(charge_side[0]), int(charge_side[1])]
    return by_side


def _pick_ion_sites(rng, sites, counts, by_side, box, d_mem: float, d_sep: float, salt_list) -> list[tuple[str, int]]:
    """Water sites for the ions: random order, at least ``d_mem`` from the membrane and ``d_sep`` from each
    other (minimum image); (species, site) in species order."""
    order = rng.permutation(len(sites))
    eligible = order[np.abs(sites[order, 2]) >= d_mem]
    pools = [eligible[sites[eligible, 2] > 0], eligible[sites[eligible, 2] <= 0]]
    cursor = [0, 0]
    chosen_xyz = np.zeros((0, 3))
    chosen: list[tuple[str, int]] = []
    for c in counts:
        for s in (0, 1):
            for _ in range(by_side[c][s]):
                pool = pools[s]
                while True:
                    if cursor[s] >= len(pool):
                        lx, ly, lz = box
                        raise bad_argument(
                            "salts",
                            f"need {sum(counts.values())} ions at least {d_sep} nm apart and {d_mem} nm from the membrane, "
                            f"which the {lx:.2f} × {ly:.2f} × {lz:.2f} nm box cannot hold; lower the molarities, "
                            "enlarge the box or reduce ion_separation_nm",
                            "+".join(f"{n}@{m}" for n, m in salt_list),
                        )
                    site = pool[cursor[s]]
                    cursor[s] += 1
                    if len(chosen_xyz):
                        dv = chosen_xyz - sites[site]
                        dv -= box * np.round(dv / box)
                        if np.min(np.einsum("ij,ij->i", dv, dv)) < d_sep * d_sep:
                            continue
                    break
                chosen.append((c, int(site)))
                chosen_xyz = np.vstack([chosen_xyz, sites[site]])
    return chosen


@dataclasses.dataclass
class _Atoms:
    """The electrolyte's atoms as they are laid down (ions first, then water)."""

    positions: list = dataclasses.field(default_factory=list)
    elements: list = dataclasses.field(default_factory=list)
    names: list = dataclasses.field(default_factory=list)
    res_names: list = dataclasses.field(default_factory=list)
    starts: list = dataclasses.field(default_factory=lambda: [0])
    ion_species: list = dataclasses.field(default_factory=list)
    ion_atoms: list = dataclasses.field(default_factory=list)


def _lay_ions(rng, sites, chosen, box) -> tuple[_Atoms, np.ndarray]:
    """Ion atoms, in species order, multi-atom ions rotated at random about the replaced O; returns them
    and the water sites removed (replaced, or clashing with a multi-atom ion)."""
    atoms = _Atoms()
    removed = np.zeros(len(sites), dtype=bool)
    heavy_xyz, h_xyz = [], []
    for (c, site), rot in zip(chosen, _random_rotations(rng, len(chosen)), strict=True):
        resname = ION_RESIDUES[c]
        t_names, t_elements, t_xyz, _ = _TEMPLATES[resname]
        xyz = sites[site] + t_xyz @ rot.T
        removed[site] = True
        atoms.ion_atoms.append(sum(len(p) for p in atoms.positions))
        atoms.ion_species.append(c)
        atoms.positions.append(xyz)
        atoms.elements.extend(t_elements)
        atoms.names.extend(t_names)
        atoms.res_names.append(resname)
        atoms.starts.append(atoms.starts[-1] + len(t_names))
        if len(t_names) > 1:
            for e, p in zip(t_elements, xyz, strict=True):
                (h_xyz if e == "H" else heavy_xyz).append(p)
    for pts, cutoff in ((heavy_xyz, _CLASH_HEAVY_NM), (h_xyz, _CLASH_H_NM)):
        for p in pts:
            dv = sites - p
            dv -= box * np.round(dv / box)
            removed |= np.einsum("ij,ij->i", dv, dv) < cutoff * cutoff
    return atoms, removed


def _lay_water(rng, atoms: _Atoms, sites: np.ndarray, removed: np.ndarray) -> int:
    """TIP3P waters, randomly oriented, on every site not removed; returns their number."""
    w_names, w_elements, w_xyz, _ = _TEMPLATES["HOH"]
    waters = np.flatnonzero(~removed)
    w_rot = _random_rotations(rng, len(waters))
    w_pos = sites[waters][:, None, :] + np.einsum("nij,aj->nai", w_rot, w_xyz)
    atoms.positions.append(w_pos.reshape(-1, 3))
    atoms.elements.extend(w_elements * len(waters))
    atoms.names.extend(w_names * len(waters))
    atoms.res_names.extend(["HOH"] * len(waters))
    atoms.starts.extend(atoms.starts[-1] + 3 * np.arange(1, len(waters) + 1))
    return len(waters)


def _composition(salt_list, volume: float, n_sites: int, n_water: int, counts, by_side, q_membrane: float) -> Composition:
    n_per_litre = AVOGADRO_PER_MOL * volume * LITRE_PER_NM3
    requested = {_species.SALTS[n].cation: m for n, m in salt_list}
    requested[_species.ANION] = float(sum(_species.SALTS[n].n_anions * m for n, m in salt_list))
    net = q_membrane + sum(_species.IONS[c].charge * n for c, n in counts.items())
    if abs(net) > 1e-6:
        raise AssertionError(f"electrolyte build left a net charge of {net} e")
    return Composition(
        salts=salt_list,
        water_volume_nm3=volume,
        n_water_sites=n_sites,
        n_water=n_water,
        counts=MappingProxyType(dict(counts)),
        counts_by_side=MappingProxyType({c: (v[0], v[1]) for c, v in by_side.items()}),
        requested_molar=MappingProxyType(requested),
        effective_molar=MappingProxyType({c: n / n_per_litre for c, n in counts.items()}),
        net_charge_e=float(net),
        rule=(
            "V_water = L_x·L_y·(L_z − 2·gap_nm); cation count n = round(c·N_A·V_water) (half up); "
            "Cl− = Σ z·n (neutral membrane); c_eff = n/(N_A·V_water)"
        ),
    )


def build_electrolyte(
    membrane: Membrane,
    salts,
    *,
    gap_nm: float = DEFAULT_WATER_GAP_NM,
    ion_membrane_distance_nm: float = DEFAULT_ION_MEMBRANE_DISTANCE_NM,
    ion_separation_nm: float = DEFAULT_ION_SEPARATION_NM,
    seed: int = 0,
) -> Electrolyte:
    """Solvate ``membrane``'s box and add ``salts`` (e.g. ``"crown6:NaCl@1.0+KCl@0.5"``,
    ``"NaCl@1.0+KCl@0.5"`` or ``{"NaCl": 1.0, "KCl": 0.5}``, mol/L). See the module docstring
    for the rules; the same ``seed`` gives the same electrolyte."""
    salt_list = _normalise_salts(salts, membrane.pore)
    gap = check_real("gap_nm", gap_nm, "must be a finite distance >= 0 nm from the membrane plane", nonnegative=True)
    d_mem = check_real(
        "ion_membrane_distance_nm", ion_membrane_distance_nm, "must be a finite distance >= 0 nm", nonnegative=True
    )
    d_sep = check_real("ion_separation_nm", ion_separation_nm, "must be a finite distance >= 0 nm", nonnegative=True)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise bad_argument("seed", "must be a whole number >= 0", seed)
    box = np.diag(membrane.box_vectors_nm).astype(float)
    lz = box[2]
    thickness = lz - 2 * gap
    if thickness < _MIN_WATER_THICKNESS_NM:
        raise bad_argument(
            "membrane.box_vectors_nm",
            f"must leave at least {_MIN_WATER_THICKNESS_NM} nm of water: L_z − 2·gap_nm = {thickness:.3f} nm with gap_nm = {gap}",
            float(lz),
        )
    if d_mem >= lz / 2:
        raise bad_argument("ion_membrane_distance_nm", f"must be < L_z/2 = {lz / 2} nm", ion_membrane_distance_nm)
    rng = np.random.default_rng(int(seed))  # drawn in this order: ion sites, ion rotations, water rotations

    sites, volume = _water_sites(box, gap, thickness)
    counts = _ion_counts(salt_list, volume)
    q_membrane = membrane.net_charge_e
    if abs(q_membrane) > 1e-6:
        raise bad_argument("membrane", "must be neutral (its charges_e must sum to zero)", q_membrane)
    by_side = _split_by_side(counts)
    chosen = _pick_ion_sites(rng, sites, counts, by_side, box, d_mem, d_sep, salt_list)
    atoms, removed = _lay_ions(rng, sites, chosen, box)
    n_water = _lay_water(rng, atoms, sites, removed)
    composition = _composition(salt_list, volume, len(sites), n_water, counts, by_side, q_membrane)

    all_positions = np.vstack(atoms.positions)
    box_vectors = membrane.box_vectors_nm.copy()
    starts_arr, ion_atoms_arr = np.asarray(atoms.starts, dtype=int), np.asarray(atoms.ion_atoms, dtype=int)
    for arr in (all_positions, box_vectors, starts_arr, ion_atoms_arr):
        arr.setflags(write=False)
    return Electrolyte(
        composition=composition,
        positions_nm=all_positions,
        elements=tuple(atoms.elements),
        atom_names=tuple(atoms.names),
        residue_names=tuple(atoms.res_names),
        residue_starts=starts_arr,
        ion_species=tuple(atoms.ion_species),
        ion_atoms=ion_atoms_arr,
        box_vectors_nm=box_vectors,
        gap_nm=gap,
        seed=int(seed),
    )
