"""Periodic graphene and hBN sheets with Å-scale pores, in an orthorhombic box.

Geometry
--------
Both sheets are honeycomb lattices in the xy plane at z = 0: primitive vectors
``a1 = a(1, 0)``, ``a2 = a(1/2, √3/2)`` and two sublattices, site ``(i, j, s)`` at
``i·a1 + j·a2 + s·(a1 + a2)/3``. Graphene: C on both sublattices, a = √3 × 0.142 nm
(C–C 1.42 Å). hBN: B on s = 0, N on s = 1, a = 0.2504 nm (Pease, Acta Cryst. 5, 356 (1952);
B–N 1.4457 Å). The structures are ideal lattices with no relaxation.

Pores sit on a triangular superlattice ``T1 = n·a1 + m·a2``, ``T2 = −m·a1 + (n+m)·a2``, spacing
``a·√(n² + nm + m²)``; ``(n, m)`` is the one nearest the requested ``spacing_nm`` (ties: the
smaller m). The orthorhombic box is ``c1 × c2`` rectangular cells ``R1 = T1``,
``R2 = 2·T2 − T1`` (|R2| = √3·|T1|, two pores per cell), rotated so R1 lies along x. Box edges
are lattice vectors, so the sheet and the pore array are both exactly periodic: every pore has
its six neighbours at the spacing, across the boundary too.

Pores (sites relative to a pore's lattice anchor; "edge" atoms lost a bond):

* ``crown6`` (graphene-embedded 18-crown-6; Guo et al., Nat. Commun. 2014; Smolyanitsky et al.,
  ACS Nano 2018): the six C of one hexagon are removed and the six C that were
  bonded to them (the hexagon's "spokes", 2.84 Å from the centre) become ether O. Each O keeps two
  C neighbours and each of the 12 C bonded to an O keeps three bonds (O, C, C), so the in-plane
  C12O6 ring needs no termination.
* hBN N-terminated triangular vacancies of order k = 2, 3, 4: remove the B sites of a triangle,
  ``{(i, j, B): i, j ≥ 0, i + j ≤ k − 1}`` (k(k+1)/2 B), and every N whose three B neighbours are all
  removed ((k−1)k/2 N). Every edge atom is an N that keeps two of its three B. As removal shells:

  - ``B3N`` (k = 2): one N and its first shell of 3 B (1.446 Å); 6 edge N at 2.504 Å.
  - ``B6N3`` (k = 3): one hexagon (3 B + 3 N at 1.446 Å) and the 3 B of the second shell bonded
    to the hexagon's N (2.891 Å); 9 edge N, the nearest 3 at 2.891 Å.
  - ``B10N6`` (k = 4): one B, its shell of 3 N (1.446 Å), the 6 B at 2.504 Å, the 3 N at 2.891 Å
    and the 3 B at 4.337 Å bonded to those N; 12 edge N, the nearest 6 at 3.825 Å.

The pore diameter is the paper's: the largest circle in the pore plane that contains no atom
centre (:func:`largest_inscribed_circle_nm`, a constrained maximisation with scipy), computed
on the built sheet. With these ideal lattices: crown6 5.680 Å, B3N 5.008 Å (0.672 Å smaller),
B6N3 5.783 Å (0.103 Å larger), B10N6 7.650 Å; the paper states 0.7 Å and 0.1 Å.

Charges come from the force-field XML (residue templates GRA, CRC, CRO, HBB, HBN, HBE of
``data/ionkinetics.xml``), not from this module; see that file for the bond-charge-increment
rule that makes every membrane exactly neutral. Uncertain choices (hBN charges ±1.05 e,
crown O −0.40 e) are swapped by passing another XML as ``forcefield_files`` (to
:func:`build_membrane` and :func:`ionkinetics.md.assemble_system` alike) or by overriding the
membrane's charges in :func:`ionkinetics.md.assemble_system` (``membrane_charges_e``).
"""

from __future__ import annotations

import dataclasses
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
from scipy import optimize

from .. import species as _species
from .._checks import bad_argument, check_real

__all__ = [
    "A_CC_GRAPHENE_NM",
    "A_HBN_NM",
    "DEFAULT_BOX_Z_NM",
    "DEFAULT_MIN_BOX_SIDE_NM",
    "MEMBRANE_TEMPLATES",
    "Membrane",
    "build_membrane",
    "default_forcefield_files",
    "largest_inscribed_circle_nm",
    "shipped_forcefield_xml",
]

A_CC_GRAPHENE_NM = 0.142  # C–C bond length in graphene (graphite a = 2.46 Å = √3 × 1.42 Å)
A_HBN_NM = 0.2504  # hBN lattice constant, Pease, Acta Cryst. 5, 356 (1952)
DEFAULT_BOX_Z_NM = 6.0
DEFAULT_MIN_BOX_SIDE_NM = 3.0
_MIN_SPACING_NM = 1.0
_SPACING_RTOL = 0.05
_INSCRIBED_SEARCH_RADIUS_NM = 1.0

# Residue template (= residue name) → (atom name, element, force-field atom type).
MEMBRANE_TEMPLATES = {
    "GRA": ("C", "C", "ik-graphene-C"),
    "CRC": ("C", "C", "ik-crown-C"),
    "CRO": ("O", "O", "ik-crown-O"),
    "HBB": ("B", "B", "ik-hbn-B"),
    "HBN": ("N", "N", "ik-hbn-N"),
    "HBE": ("N", "N", "ik-hbn-N-edge"),
}

_MATERIALS = {
    # material: (lattice constant nm, template of sublattice 0, template of sublattice 1)
    "graphene": (math.sqrt(3.0) * A_CC_GRAPHENE_NM, "GRA", "GRA"),
    "hBN": (A_HBN_NM, "HBB", "HBN"),
}

# Removed sites (di, dj, sublattice) relative to the pore anchor, and the kind of edge.
_HEXAGON = ((1, 0, 0), (0, 1, 0), (1, 1, 0), (0, 0, 1), (1, 0, 1), (0, 1, 1))


def _triangle(k: int) -> tuple[tuple[int, int, int], ...]:
    b_sites = [(i, j, 0) for i in range(k) for j in range(k) if i + j <= k - 1]
    n_sites = [(i, j, 1) for i in range(k) for j in range(k) if i + j <= k - 2]  # all 3 B neighbours removed
    return tuple(b_sites + n_sites)


_POCKETS = {"crown6": _HEXAGON, "B3N": _triangle(2), "B6N3": _triangle(3), "B10N6": _triangle(4)}


def shipped_forcefield_xml() -> Path:
    """Path of the force field shipped with the package (``ionkinetics/md/data/ionkinetics.xml``)."""
    return Path(str(resources.files("ionkinetics.md").joinpath("data").joinpath("ionkinetics.xml")))


def default_forcefield_files() -> tuple[str, ...]:
    """OpenMM's TIP3P + Joung–Cheatham + Li/Merz file, then the shipped membrane/ion file."""
    return ("amber14/tip3p.xml", str(shipped_forcefield_xml()))


def _template_charges_e(forcefield_files: Sequence[str]) -> dict[str, float]:
    """Charges of the single-atom membrane templates, read from the given XML files (later files win)."""
    charges: dict[str, float] = {}
    for f in forcefield_files:
        path = Path(f)
        if not path.is_file():
            if resources.files("openmm.app").joinpath("data").joinpath(str(f)).is_file():
                continue  # an OpenMM data file such as amber14/tip3p.xml: holds no membrane templates
            raise bad_argument(
                "forcefield_files", "must name existing XML files or OpenMM data files (e.g. 'amber14/tip3p.xml')", str(f)
            )
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as err:
            raise ValueError(
                f"forcefield_files must be OpenMM ForceField XML files; {str(path)!r} does not parse: {err}"
            ) from None
        for res in root.iter("Residue"):
            name = res.get("name")
            atoms = res.findall("Atom")
            charge = atoms[0].get("charge") if len(atoms) == 1 else None
            if name in MEMBRANE_TEMPLATES and charge is not None:
                charges[name] = float(charge)
    return charges


@dataclasses.dataclass(frozen=True, eq=False)
class Membrane:
    """A periodic 2D membrane in the xy plane at z = 0, with a pore array.

    Atom arrays have length ``n_atoms``; positions are wrapped into ``[0, L_x) × [0, L_y)``.
    ``box_vectors_nm`` is (3, 3), rows are the box vectors (orthorhombic). ``pore_centres_nm`` is
    (n_pores, 3) at z = 0; ``edge_atoms`` is (n_pores, n_edge), the atoms that lost a bond to the
    pore. ``bonds`` (n_bonds, 2) are the sheet's bonds, minimum image. ``pore_diameter_nm`` is the
    largest inscribed circle over atom centres (the paper's definition), ``None`` for a pristine
    sheet. ``spacing_nm`` is the pore spacing actually built, ``superlattice`` its ``(n, m)``,
    ``cells`` the number of rectangular array cells along x and y (two pores each).
    """

    pore: str | None
    material: str
    positions_nm: np.ndarray
    elements: tuple[str, ...]
    atom_names: tuple[str, ...]
    atom_types: tuple[str, ...]
    residue_names: tuple[str, ...]
    charges_e: np.ndarray
    bonds: np.ndarray
    pore_centres_nm: np.ndarray
    edge_atoms: np.ndarray
    box_vectors_nm: np.ndarray
    pore_diameter_nm: float | None
    spacing_nm: float
    superlattice: tuple[int, int]
    cells: tuple[int, int]
    forcefield_files: tuple[str, ...]

    @property
    def n_atoms(self) -> int:
        """Number of membrane atoms."""
        return len(self.elements)

    @property
    def n_pores(self) -> int:
        """Number of pores in the sheet."""
        return len(self.pore_centres_nm)

    @property
    def box_nm(self) -> np.ndarray:
        """Orthorhombic box edges (L_x, L_y, L_z), nm."""
        return np.diag(self.box_vectors_nm).copy()

    @property
    def net_charge_e(self) -> float:
        """Sum of the membrane's partial charges, in e."""
        return float(np.sum(self.charges_e))

    def element_counts(self) -> dict[str, int]:
        """Number of atoms of each element, keyed by element symbol in order of first appearance."""
        out: dict[str, int] = {}
        for e in self.elements:
            out[e] = out.get(e, 0) + 1
        return out


def largest_inscribed_circle_nm(points_xy_nm, start_xy_nm) -> tuple[np.ndarray, float]:
    """The largest circle centred near ``start_xy_nm`` that contains none of ``points_xy_nm``.

    Maximises r subject to |p − x_i| ≥ r for every point (SLSQP on (p_x, p_y, r), exact
    gradients), starting from ``start_xy_nm``; returns the centre (2,) and the diameter, both nm,
    the diameter evaluated as twice the smallest centre-to-point distance at the optimum.
    ``points_xy_nm`` is (n, 2) and must surround the start (a pore's edge atoms and their
    neighbours).
    """
    pts = np.asarray(points_xy_nm, dtype=float)
    p0 = np.asarray(start_xy_nm, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
        raise bad_argument("points_xy_nm", "must be an (n >= 3, 2) array of xy positions in nm", pts.shape)
    if p0.shape != (2,):
        raise bad_argument("start_xy_nm", "must be one xy position (2,) in nm", p0.shape)

    def gaps(v):
        return np.hypot(pts[:, 0] - v[0], pts[:, 1] - v[1]) - v[2]

    def gaps_jac(v):
        d = np.hypot(pts[:, 0] - v[0], pts[:, 1] - v[1])
        d = np.maximum(d, 1e-12)
        return np.column_stack([(v[0] - pts[:, 0]) / d, (v[1] - pts[:, 1]) / d, -np.ones(len(pts))])

    r0 = 0.5 * float(np.min(np.hypot(*(pts - p0).T)))
    res = optimize.minimize(
        lambda v: -v[2],
        np.array([p0[0], p0[1], r0]),
        jac=lambda v: np.array([0.0, 0.0, -1.0]),
        constraints=[{"type": "ineq", "fun": gaps, "jac": gaps_jac}],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 500},
    )
    if not res.success:
        raise RuntimeError(f"largest inscribed circle did not converge: {res.message}")
    centre = res.x[:2]
    diameter = 2.0 * float(np.min(np.hypot(*(pts - centre).T)))
    return centre, diameter


def _nearest_superlattice(spacing_nm: float, a_nm: float) -> tuple[int, int]:
    target = spacing_nm / a_nm
    best = None
    n_max = math.ceil(target) + 2
    for n in range(1, n_max + 1):
        for m in range(0, n + 1):
            err = abs(math.sqrt(n * n + n * m + m * m) - target)
            key = (round(err, 12), m, n)
            if best is None or key < best[0]:
                best = (key, (n, m))
    if best is None:  # n_max >= 3: the loops run
        raise ValueError(f"spacing_nm must be a pore spacing >= the lattice constant; got {target!r} lattice constants")
    return best[1]


def _check_positive_int_pair(arg: str, value) -> tuple[int, int]:
    try:
        pair = tuple(value)
    except TypeError:
        raise bad_argument(
            arg, "must be two whole numbers of rectangular array cells (along x, along y), each >= 1", value
        ) from None
    if len(pair) != 2 or not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c >= 1 for c in pair):
        raise bad_argument(arg, "must be two whole numbers of rectangular array cells (along x, along y), each >= 1", value)
    return int(pair[0]), int(pair[1])


def _material_and_pocket(pore: str | None, material: str | None) -> tuple[str, tuple[tuple[int, int, int], ...]]:
    """The sheet material and the removed sites of one pore (empty for a pristine sheet)."""
    if pore is None:
        if material not in _MATERIALS:
            raise bad_argument("material", f"must be one of {', '.join(_MATERIALS)} for a pristine sheet (pore=None)", material)
        return material, ()
    try:
        info = _species.get_pore(pore)
    except (ValueError, TypeError) as err:
        raise type(err)(f"pore: {err}") from None
    if material is not None and material != info.membrane:
        raise bad_argument("material", f"must be {info.membrane!r} (or None) for pore {pore!r}", material)
    return info.membrane, _POCKETS[pore]


def _box_cells(cells, box_xy_nm, len_r1: float, len_r2: float, what: str, actual: float, nm) -> tuple[int, int]:
    """Rectangular array cells along x and y, from ``cells``, the largest box ``box_xy_nm``, or the default."""
    if cells is not None and box_xy_nm is not None:
        raise ValueError(f"give cells or box_xy_nm, not both; got cells={cells!r}, box_xy_nm={box_xy_nm!r}")
    if cells is not None:
        return _check_positive_int_pair("cells", cells)
    if box_xy_nm is None:
        return (
            max(1, math.ceil(DEFAULT_MIN_BOX_SIDE_NM / len_r1 - 1e-9)),
            max(1, math.ceil(DEFAULT_MIN_BOX_SIDE_NM / len_r2 - 1e-9)),
        )
    try:
        lx_req, ly_req = (float(v) for v in box_xy_nm)
    except (TypeError, ValueError):
        raise bad_argument("box_xy_nm", "must be two box edges (L_x, L_y) in nm", box_xy_nm) from None
    if not (math.isfinite(lx_req) and math.isfinite(ly_req)):
        raise bad_argument("box_xy_nm", "must be two finite box edges (L_x, L_y) in nm", box_xy_nm)
    c1 = math.floor(lx_req / len_r1 + 1e-6)
    c2 = math.floor(ly_req / len_r2 + 1e-6)
    if c1 < 1 or c2 < 1:
        raise bad_argument(
            "box_xy_nm",
            f"is too small for the {what} pore array: the box holds whole rectangular cells of the array, "
            f"{len_r1:.4f} × {len_r2:.4f} nm each at spacing {actual:.4f} nm (superlattice {nm}), "
            "so it must be at least that large",
            box_xy_nm,
        )
    return c1, c2


class _Supercell:
    """The honeycomb sites of a periodic supercell with rows ``b1``, ``b2`` (lattice coordinates).

    ``sites[k] = (i, j, s)``; :meth:`key` maps any site to its image's canonical key modulo the
    supercell and ``index`` a key to its k; :meth:`neighbours` are a site's three bonded sites (k).
    """

    def __init__(self, b1: np.ndarray, b2: np.ndarray):
        self.b1, self.b2 = b1, b2
        self.det = int(b1[0] * b2[1] - b1[1] * b2[0])
        corners = np.array([[0, 0], b1, b2, b1 + b2])
        lo, hi = corners.min(axis=0) - 1, corners.max(axis=0) + 2
        sites: list[tuple[int, int, int]] = []
        for i in range(int(lo[0]), int(hi[0])):
            for j in range(int(lo[1]), int(hi[1])):
                f1 = i * int(b2[1]) - j * int(b2[0])
                f2 = -i * int(b1[1]) + j * int(b1[0])
                if 0 <= f1 < self.det and 0 <= f2 < self.det:
                    sites.append((i, j, 0))
                    sites.append((i, j, 1))
        assert len(sites) == 2 * self.det
        self.sites = sites
        self.index = {self.key(*s): k for k, s in enumerate(sites)}

    def key(self, i: int, j: int, s: int) -> tuple[int, int, int]:
        b1, b2, det = self.b1, self.b2, self.det
        return ((i * int(b2[1]) - j * int(b2[0])) % det, (-i * int(b1[1]) + j * int(b1[0])) % det, s)

    def neighbours(self, k: int) -> list[int]:
        i, j, s = self.sites[k]
        if s == 0:
            nb = ((i, j, 1), (i - 1, j, 1), (i, j - 1, 1))
        else:
            nb = ((i, j, 0), (i + 1, j, 0), (i, j + 1, 0))
        return [self.index[self.key(*t)] for t in nb]


def _pore_anchors(cell: _Supercell, t1: np.ndarray, t2: np.ndarray, n_pores: int, span: int) -> list[tuple[int, int]]:
    """Anchors of the triangular pore superlattice u·T1 + v·T2 modulo the supercell, in a fixed order."""
    anchors: dict[tuple[int, int, int], tuple[int, int]] = {}
    for u in range(-span, span + 1):
        for v in range(-span, span + 1):
            p = u * t1 + v * t2
            anchors.setdefault(cell.key(int(p[0]), int(p[1]), 0), (int(p[0]), int(p[1])))
    assert len(anchors) == n_pores, (len(anchors), n_pores)
    return sorted(anchors.values(), key=lambda p: (cell.key(p[0], p[1], 0)[1], cell.key(p[0], p[1], 0)[0]))


def _cut_pores(cell: _Supercell, anchors, pocket, material: str, pore, spacing_nm):
    """Remove each pore's sites and retype its edge atoms; returns (templates, removed sites, edge atoms per pore).

    The shells of different pores must not touch (``spacing_nm`` is named in the error)."""
    template = [_MATERIALS[material][1 + s] for (_, _, s) in cell.sites]
    removed_by: dict[int, int] = {}
    pore_removed: list[list[int]] = []
    for k, (pi, pj) in enumerate(anchors):
        rem = []
        for di, dj, s in pocket:
            idx = cell.index[cell.key(pi + di, pj + dj, s)]
            if idx in removed_by:
                raise bad_argument("spacing_nm", f"is too small for {pore}: neighbouring pores would overlap", spacing_nm)
            removed_by[idx] = k
            rem.append(idx)
        pore_removed.append(rem)
    edge: list[list[int]] = []
    claimed: dict[int, int] = {}
    for k, rem in enumerate(pore_removed):
        rem_set = set(rem)
        e_k = sorted({nb for idx in rem for nb in cell.neighbours(idx) if nb not in rem_set})
        shell = set(e_k) | {nb for idx in e_k for nb in cell.neighbours(idx) if nb not in rem_set}
        for idx in shell:
            if idx in removed_by or claimed.get(idx, k) != k:
                raise bad_argument(
                    "spacing_nm",
                    f"is too small for {pore}: the edges of neighbouring pores touch (use a spacing of at least ~1.2 nm)",
                    spacing_nm,
                )
            claimed[idx] = k
        edge.append(e_k)
        for idx in e_k:
            lost = sum(nb in rem_set for nb in cell.neighbours(idx))
            assert lost == 1, "every edge atom of these pores loses exactly one bond"
            if material == "graphene":
                template[idx] = "CRO"
            else:
                assert template[idx] == "HBN", "hBN triangular vacancies are N-terminated"
                template[idx] = "HBE"
        if material == "graphene":
            for idx in e_k:
                for nb in cell.neighbours(idx):
                    if nb not in rem_set:
                        template[nb] = "CRC"
    return template, set(removed_by), edge


def _cartesian_xy(cell: _Supercell, anchors, pocket, a1, a2, box_xy: np.ndarray, c1: int, c2: int):
    """Site and pore-centre positions (nm): R1 rotated onto x, the first pore at (L_x/4c1, L_y/4c2), wrapped."""
    d_sub = (a1 + a2) / 3.0
    b1_cart = cell.b1[0] * a1 + cell.b1[1] * a2
    theta = -math.atan2(b1_cart[1], b1_cart[0])
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    ij = np.array([(i, j) for (i, j, _) in cell.sites], dtype=float)
    sub = np.array([s for (_, _, s) in cell.sites], dtype=float)
    xy = (ij[:, :1] * a1 + ij[:, 1:] * a2 + sub[:, None] * d_sub) @ rot.T
    centres_lat = []
    for pi, pj in anchors:
        offs = np.array([pi * a1 + pj * a2 + di * a1 + dj * a2 + s * d_sub for (di, dj, s) in pocket])
        centres_lat.append(offs.mean(axis=0) @ rot.T)
    centres = np.array(centres_lat).reshape(-1, 2)
    shift = box_xy / np.array([4 * c1, 4 * c2]) - (centres[0] if len(centres) else np.zeros(2))
    xy = np.mod(xy + shift, box_xy)
    xy[np.isclose(xy, box_xy, rtol=0, atol=1e-9)] = 0.0
    return xy, np.mod(centres + shift, box_xy)


def _pore_diameters(positions: np.ndarray, centres: np.ndarray, box_xy: np.ndarray) -> tuple[np.ndarray, float | None]:
    """Pore centres (n_pores, 3) and the diameter: the largest inscribed circle over the atom centres."""
    diameters = []
    pore_centres = np.zeros((len(centres), 3))
    for k, c in enumerate(centres):
        dxy = positions[:, :2] - c
        dxy -= box_xy * np.round(dxy / box_xy)
        near = dxy[np.hypot(dxy[:, 0], dxy[:, 1]) < _INSCRIBED_SEARCH_RADIUS_NM]
        centre, diam = largest_inscribed_circle_nm(near, np.zeros(2))
        assert np.hypot(*centre) < 0.25 * diam, "the inscribed circle stays in its pore"
        pore_centres[k, :2] = np.mod(c + centre, box_xy)
        diameters.append(diam)
    if diameters:
        assert max(diameters) - min(diameters) < 1e-6, "all pores of an array are identical"
    return pore_centres, (float(np.mean(diameters)) if diameters else None)


def _template_charges_checked(forcefield_files, used: list[str]) -> tuple[tuple[str, ...], dict[str, float]]:
    files = tuple(str(f) for f in (forcefield_files if forcefield_files is not None else default_forcefield_files()))
    charges_by_template = _template_charges_e(files)
    missing = [t for t in used if t not in charges_by_template]
    if missing:
        raise bad_argument(
            "forcefield_files",
            f"must define the single-atom residue templates {', '.join(missing)} with charges (see data/ionkinetics.xml)",
            files,
        )
    return files, charges_by_template


def _bonds_and_edges(cell: _Supercell, keep: np.ndarray, edge, n_pores: int) -> tuple[list, np.ndarray]:
    """The kept sites' bonds (index pairs, sorted) and each pore's edge atoms, in the kept atoms' numbering."""
    new_index = -np.ones(len(cell.sites), dtype=int)
    new_index[keep] = np.arange(len(keep))
    bonds = sorted(
        {tuple(sorted((int(new_index[i]), int(new_index[nb])))) for i in keep for nb in cell.neighbours(i) if new_index[nb] >= 0}
    )
    edge_atoms = np.array([[new_index[i] for i in e_k] for e_k in edge], dtype=int).reshape(n_pores, len(edge[0]) if edge else 0)
    return bonds, edge_atoms


def _superlattice(spacing_nm, material: str) -> tuple[int, int, float]:
    """(n, m) of the commensurate triangular pore superlattice nearest ``spacing_nm`` and its spacing (nm)."""
    a_nm = _MATERIALS[material][0]
    spacing = check_real(
        "spacing_nm", spacing_nm, f"must be a finite pore spacing >= {_MIN_SPACING_NM} nm", minimum=_MIN_SPACING_NM
    )
    n, m = _nearest_superlattice(spacing, a_nm)
    actual = a_nm * math.sqrt(n * n + n * m + m * m)
    if abs(actual - spacing) > _SPACING_RTOL * spacing:
        raise bad_argument(
            "spacing_nm", f"has no commensurate {material} pore lattice within 5 % (nearest {actual:.4f} nm)", spacing_nm
        )
    return n, m, actual


def _check_neutral(charges: np.ndarray, what: str, files) -> None:
    net = float(np.sum(charges))
    if abs(net) > 1e-6:
        raise bad_argument(
            "forcefield_files",
            f"give a {what} membrane net charge {net:+.6f} e; membrane charges must sum to zero "
            "(hBN: edge N = 2/3 of bulk N; crown: O = -2 × ring C)",
            files,
        )


def build_membrane(
    pore: str | None,
    *,
    spacing_nm: float = 1.6,
    box_xy_nm: tuple[float, float] | None = None,
    cells: tuple[int, int] | None = None,
    box_z_nm: float = DEFAULT_BOX_Z_NM,
    material: str | None = None,
    forcefield_files: Sequence[str] | None = None,
) -> Membrane:
    """Build a periodic membrane with an array of ``pore`` at ``spacing_nm``.

    ``pore``: ``"crown6"`` (graphene), ``"B3N"``, ``"B6N3"``, ``"B10N6"`` (hBN), or ``None`` for a
    pristine sheet of ``material`` (``"graphene"`` or ``"hBN"``). The pore array is the
    commensurate triangular superlattice nearest ``spacing_nm`` (within 5 %; the paper uses
    1.5–1.7 nm). The box is a whole number of rectangular array cells (|T1| × √3|T1|, two pores
    each): ``cells=(c1, c2)`` gives it directly; else ``box_xy_nm`` is the largest box accepted
    and the box is the most whole cells that fit in it; else the fewest cells making both
    sides at least 3.0 nm. A pristine sheet gets the same boxes (the cells of the pore array it
    would have). ``box_z_nm`` only sets the box's z edge. Charges come from ``forcefield_files``
    (default :func:`default_forcefield_files`). Arrays of the result are read-only.
    """
    material, pocket = _material_and_pocket(pore, material)
    lz = check_real("box_z_nm", box_z_nm, "must be a finite box edge > 0 nm", minimum=0.0)
    if lz <= 0:
        raise bad_argument("box_z_nm", "must be a finite box edge > 0 nm", box_z_nm)
    n, m, actual = _superlattice(spacing_nm, material)
    a_nm = _MATERIALS[material][0]
    a1 = np.array([a_nm, 0.0])
    a2 = np.array([0.5 * a_nm, 0.5 * math.sqrt(3.0) * a_nm])
    r1 = np.array([n, m])
    r2 = np.array([-n - 2 * m, 2 * n + m])
    len_r1 = float(np.linalg.norm(r1[0] * a1 + r1[1] * a2))
    len_r2 = float(np.linalg.norm(r2[0] * a1 + r2[1] * a2))
    c1, c2 = _box_cells(cells, box_xy_nm, len_r1, len_r2, pore or material, actual, (n, m))

    cell = _Supercell(c1 * r1, c2 * r2)
    assert cell.det == 2 * c1 * c2 * (n * n + n * m + m * m)
    n_pores = 2 * c1 * c2 if pocket else 0
    anchors = _pore_anchors(cell, np.array([n, m]), np.array([-m, n + m]), n_pores, 2 * (c1 + c2) + 2) if pocket else []
    template, removed, edge = _cut_pores(cell, anchors, pocket, material, pore, spacing_nm)
    keep = np.array(sorted(set(range(len(cell.sites))) - removed), dtype=int)

    lx, ly = c1 * len_r1, c2 * len_r2
    box_xy = np.array([lx, ly])
    xy, centres = _cartesian_xy(cell, anchors, pocket, a1, a2, box_xy, c1, c2)
    tmpl = [template[i] for i in keep]
    files, charges_by_template = _template_charges_checked(forcefield_files, sorted(set(tmpl)))
    positions = np.zeros((len(keep), 3))
    positions[:, :2] = xy[keep]
    charges = np.array([charges_by_template[t] for t in tmpl])
    bonds, edge_atoms = _bonds_and_edges(cell, keep, edge, n_pores)
    pore_centres, pore_diameter = _pore_diameters(positions, centres, box_xy)

    box = np.diag([lx, ly, lz])
    _check_neutral(charges, pore or material, files)
    bonds_arr = np.array(bonds, dtype=int).reshape(-1, 2)
    for arr in (positions, charges, pore_centres, edge_atoms, box, bonds_arr):
        arr.setflags(write=False)
    return Membrane(
        pore=pore,
        material=material,
        positions_nm=positions,
        elements=tuple(MEMBRANE_TEMPLATES[t][1] for t in tmpl),
        atom_names=tuple(MEMBRANE_TEMPLATES[t][0] for t in tmpl),
        atom_types=tuple(MEMBRANE_TEMPLATES[t][2] for t in tmpl),
        residue_names=tuple(tmpl),
        charges_e=charges,
        bonds=bonds_arr,
        pore_centres_nm=pore_centres,
        edge_atoms=edge_atoms,
        box_vectors_nm=box,
        pore_diameter_nm=pore_diameter,
        spacing_nm=actual,
        superlattice=(n, m),
        cells=(c1, c2),
        forcefield_files=files,
    )
