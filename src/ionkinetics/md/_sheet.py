"""Membrane mechanics: a frozen sheet, or an hBN sheet whose pore rims move (issue 23).

In a frozen sheet the six edge N atoms of a B3N vacancy sit 0.250 nm from the pore centre, and
their bare Lennard-Jones wall at the centre is about +100 kT for K⁺ whatever the charges, so K⁺
cannot reach the centre (the paper's K⁺ has a shallow centre minimum and carries the B3N current).
A real sheet gives way: the edge atoms move. :data:`SHEET_MODELS` names the choices:

``frozen``
    Every membrane atom has zero mass and membrane–membrane nonbonded pairs within the cutoff are
    excluded (the default, and the only model for graphene).
``sgouros-2025-rim``
    hBN atoms within ``rim_radius_nm`` of a pore centre move; the rest of the sheet stays frozen and
    holds the rim (the far field of a large membrane). Moving atoms feel the DFT-fitted bonded terms
    of Sgouros, Arapchatzis, Lathiotakis, Papagelis, Kalosakas, "First-principles derived force field
    for h-BN monolayer nanostructures", Phys. Rev. B (2025) (repository ArisSgouros/DFT2MM-hBN,
    ``marap2024``): Morse B–N bonds (D = 5.35 eV, α = 1.897 Å⁻¹), quartic-form angles about 120°
    (K₂ = 2.685 eV/rad², K₃ = −1.78 eV/rad³, E = K₂Δθ² + K₃Δθ³) and cis/trans torsions
    K(1 − cos 2φ) (K = 0.109 and 0.066 eV). That model was fitted with no intra-sheet nonbonded
    terms, which is what the frozen sheet's exclusions already give within the cutoff.

Choices of this package, stated: the Morse minimum is the sheet's built bond length (0.1446 nm, not
the paper's 0.14518 nm), so the built sheet is at rest and the frozen far field puts no pre-strain on
the rim; the torsion types are read as (cis, trans) in the order of the fit script's ``[kcis,
ktrans]``; moving atoms get mass :data:`RIM_MASS_AMU` (static averages, and so PMFs, do not depend on
masses; heavier atoms let a 4 fs step resolve the B–N stretch, whose period at the real masses is
25 fs). Intra-sheet PME reciprocal-space terms between moving atoms more than a cutoff apart remain:
the lattice is neutral, so their forces on a rim atom largely cancel.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .._checks import bad_argument
from ..constants import FARADAY_KJ_PER_MOL_PER_V as _KJ_PER_MOL_PER_EV

__all__ = ["DEFAULT_RIM_RADIUS_NM", "RIM_MASS_AMU", "SHEET_MODELS", "SheetModel", "add_flexible_rim", "sheet_model"]

RIM_MASS_AMU = 50.0
DEFAULT_RIM_RADIUS_NM = 0.55


@dataclasses.dataclass(frozen=True)
class SheetModel:
    """How the membrane moves: ``flexible`` False is the frozen sheet; True moves the atoms within
    ``rim_radius_nm`` of each pore centre under the bonded terms (energies in kJ/mol, lengths in nm)."""

    name: str
    flexible: bool
    source: str
    rim_radius_nm: float = DEFAULT_RIM_RADIUS_NM
    morse_depth_kj_per_mol: float = 0.0
    morse_alpha_per_nm: float = 0.0
    angle_k2_kj_per_mol_rad2: float = 0.0
    angle_k3_kj_per_mol_rad3: float = 0.0
    torsion_cis_kj_per_mol: float = 0.0
    torsion_trans_kj_per_mol: float = 0.0

    def as_dict(self) -> dict:
        """The sheet model as a JSON-ready mapping."""
        return dataclasses.asdict(self)


SHEET_MODELS: dict[str, SheetModel] = {
    m.name: m
    for m in (
        SheetModel("frozen", False, "Rigid sheet: zero mass, intra-sheet nonbonded pairs within the cutoff excluded."),
        SheetModel(
            "sgouros-2025-rim",
            True,
            "hBN pore rims move under the DFT-fitted bonded terms of Sgouros et al., Phys. Rev. B (2025) "
            "(github.com/ArisSgouros/DFT2MM-hBN, potential 'marap2024'); the sheet beyond the rim is frozen.",
            morse_depth_kj_per_mol=5.35 * _KJ_PER_MOL_PER_EV,
            morse_alpha_per_nm=18.97,
            angle_k2_kj_per_mol_rad2=2.685 * _KJ_PER_MOL_PER_EV,
            angle_k3_kj_per_mol_rad3=-1.78 * _KJ_PER_MOL_PER_EV,
            torsion_cis_kj_per_mol=0.109 * _KJ_PER_MOL_PER_EV,
            torsion_trans_kj_per_mol=0.066 * _KJ_PER_MOL_PER_EV,
        ),
    )
}


def sheet_model(name) -> SheetModel:
    """The sheet model called ``name`` (one of :data:`SHEET_MODELS`)."""
    if not isinstance(name, str) or name not in SHEET_MODELS:
        raise bad_argument("sheet", f"must be one of {', '.join(sorted(SHEET_MODELS))}", name)
    return SHEET_MODELS[name]


def _min_image(d: np.ndarray, edges_xy: np.ndarray) -> np.ndarray:
    d = d.copy()
    d[..., :2] -= edges_xy * np.round(d[..., :2] / edges_xy)
    return d


def rim_atoms(membrane, radius_nm: float) -> np.ndarray:
    """Indices of the membrane atoms within ``radius_nm`` (laterally, minimum image) of a pore centre."""
    edges = np.diag(membrane.box_vectors_nm)[:2]
    pos = np.asarray(membrane.positions_nm, dtype=float)
    near = np.zeros(len(pos), dtype=bool)
    for c in np.asarray(membrane.pore_centres_nm, dtype=float):
        d = _min_image(pos - c, edges)
        near |= np.hypot(d[:, 0], d[:, 1]) <= radius_nm
    return np.flatnonzero(near)


def _neighbours(n_atoms: int, bonds: np.ndarray) -> list[list[int]]:
    out: list[list[int]] = [[] for _ in range(n_atoms)]
    for i, j in np.asarray(bonds, dtype=int).tolist():
        out[i].append(j)
        out[j].append(i)
    return out


def _dihedral_rad(p: np.ndarray) -> float:
    b0, b1, b2 = p[0] - p[1], p[2] - p[1], p[3] - p[2]
    b1n = b1 / np.linalg.norm(b1)
    v = b0 - np.dot(b0, b1n) * b1n
    w = b2 - np.dot(b2, b1n) * b1n
    return math.atan2(float(np.dot(np.cross(b1n, v), w)), float(np.dot(v, w)))


def add_flexible_rim(system, membrane, model: SheetModel, *, mass_amu: float = RIM_MASS_AMU) -> np.ndarray:
    """Give the rim atoms of ``membrane`` (indices 0…n_membrane−1 of ``system``) mass ``mass_amu`` and
    add ``model``'s bonds, angles and torsions for every term that moves at least one rim atom (terms
    among frozen atoms only are constants and left out). Returns the rim atoms' indices."""
    import openmm

    if not model.flexible:
        raise bad_argument("model", "must be a flexible sheet model", model.name)
    if membrane.material != "hBN":
        raise bad_argument("sheet", "moves only hBN membranes (the bonded terms are hBN's)", membrane.material)
    if not (isinstance(mass_amu, (int, float)) and math.isfinite(mass_amu) and mass_amu > 0):
        raise bad_argument("mass_amu", "must be a finite mass > 0 amu", mass_amu)
    rim = rim_atoms(membrane, model.rim_radius_nm)
    if len(rim) == 0:
        raise bad_argument("rim_radius_nm", "must reach at least one atom of each pore's rim", model.rim_radius_nm)
    moving = np.zeros(membrane.n_atoms, dtype=bool)
    moving[rim] = True
    for i in rim.tolist():
        system.setParticleMass(int(i), float(mass_amu))
    pos = np.asarray(membrane.positions_nm, dtype=float)
    edges = np.diag(membrane.box_vectors_nm)[:2]
    bonds = np.asarray(membrane.bonds, dtype=int)
    nbr = _neighbours(membrane.n_atoms, bonds)

    morse = openmm.CustomBondForce("D*(1 - exp(-a*(r - r0)))^2")
    morse.addGlobalParameter("D", model.morse_depth_kj_per_mol)
    morse.addGlobalParameter("a", model.morse_alpha_per_nm)
    morse.addPerBondParameter("r0")
    for i, j in bonds.tolist():
        if moving[i] or moving[j]:
            r0 = float(np.linalg.norm(_min_image(pos[j] - pos[i], edges)))
            morse.addBond(i, j, [r0])
    angle = openmm.CustomAngleForce("K2*d^2 + K3*d^3; d = theta - theta0")
    angle.addGlobalParameter("K2", model.angle_k2_kj_per_mol_rad2)
    angle.addGlobalParameter("K3", model.angle_k3_kj_per_mol_rad3)
    angle.addPerAngleParameter("theta0")
    torsion = openmm.CustomTorsionForce("K*(1 - cos(2*theta))")
    torsion.addPerTorsionParameter("K")
    for j in range(membrane.n_atoms):
        ns = nbr[j]
        for a in range(len(ns)):
            for b in range(a + 1, len(ns)):
                i, k = ns[a], ns[b]
                if moving[i] or moving[j] or moving[k]:
                    u = _min_image(pos[i] - pos[j], edges)
                    v = _min_image(pos[k] - pos[j], edges)
                    theta0 = math.acos(float(np.clip(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v), -1.0, 1.0)))
                    angle.addAngle(i, j, k, [theta0])
    for j, k in bonds.tolist():
        for i in nbr[j]:
            if i == k:
                continue
            for l in nbr[k]:
                if l == j or not (moving[i] or moving[j] or moving[k] or moving[l]):
                    continue
                p = np.stack([pos[j] + _min_image(pos[i] - pos[j], edges), pos[j], pos[j] + _min_image(pos[k] - pos[j], edges)])
                p = np.vstack([p, p[2] + _min_image(pos[l] - pos[k], edges)])
                cis = abs(_dihedral_rad(p)) < math.pi / 2
                torsion.addTorsion(i, j, k, l, [model.torsion_cis_kj_per_mol if cis else model.torsion_trans_kj_per_mol])
    for force in (morse, angle, torsion):
        force.setUsesPeriodicBoundaryConditions(True)
        system.addForce(force)
    return rim
