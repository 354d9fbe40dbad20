"""The OpenMM system: membrane + electrolyte, PME, frozen membrane, and a uniform field along z.

* Force field: OpenMM's ``amber14/tip3p.xml`` (TIP3P, Joung–Cheatham and Li/Merz ions) and the
  shipped ``data/ionkinetics.xml`` (membranes, NH4⁺, Gdm⁺); pass ``forcefield_files`` to swap.
* Electrostatics: PME, real-space and Lennard-Jones cutoff ``cutoff_nm`` (default 1.0 nm, no
  switch, long-range dispersion correction; AMBER practice), Ewald error tolerance 5e−4.
* Constraints: bonds to H (``HBonds``, N–H of NH4⁺ and Gdm⁺) and rigid TIP3P water, so a 2 fs
  step is safe. No centre-of-mass motion remover: the frozen membrane is the reference frame.
* Membrane: every membrane atom has zero mass, so integrators and the minimiser never move it.
  Membrane–membrane pairs within the cutoff are excluded (the rigid sheet's internal energy is a
  constant and its 1.4 Å neighbours would otherwise add huge, useless forces); exceptions use
  periodic boundary conditions, since the sheet is bonded across the box edges.
* Field: a ``CustomExternalForce`` ``−q·E·z`` on every charged non-membrane particle (water
  included), with E the global parameter :data:`FIELD_PARAMETER` in kJ/mol/nm/e, in force group
  :data:`FIELD_FORCE_GROUP`. A runner changes E during a run (``context.setParameter``) for
  step and pulse protocols. The field makes a potential drop ΔV = E·L_z across the periodic box,
  i.e. across the membrane (:func:`field_for_voltage`); V > 0 pushes cations toward +z.

Charges can be overridden per membrane atom with ``membrane_charges_e`` (must sum to zero);
the whole system must be neutral or :func:`assemble_system` refuses it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np
import openmm
from openmm import app, unit
from scipy.spatial import KDTree

from .. import species as _species
from .._checks import bad_argument, check_real
from ..constants import FARADAY_KJ_PER_MOL_PER_V
from ._electrolyte import Electrolyte, build_electrolyte, residue_template
from ._forcefield import DEFAULT_FORCEFIELD_OPTION, forcefield_option_files
from ._forcefield import forcefield_option as forcefield_option_named
from ._membranes import DEFAULT_BOX_Z_NM, Membrane, build_membrane
from ._sheet import add_flexible_rim, sheet_model
from ._units import nanometer

__all__ = [
    "DEFAULT_CUTOFF_NM",
    "FARADAY_KJ_PER_MOL_PER_V",
    "FIELD_FORCE_GROUP",
    "FIELD_PARAMETER",
    "MDSystem",
    "add_field_force",
    "assemble_system",
    "build_system",
    "field_for_voltage",
    "select_platform",
    "set_voltage",
    "voltage_for_field",
]

FIELD_PARAMETER = "efield_kj_per_mol_nm_e"
FIELD_FORCE_GROUP = 1
DEFAULT_CUTOFF_NM = 1.0
DEFAULT_EWALD_ERROR_TOLERANCE = 5e-4
_PLATFORM_ORDER = ("CUDA", "OpenCL", "CPU")
_PRECISIONS = ("single", "mixed", "double")


def field_for_voltage(v: float, box_z_nm: float) -> float:
    """The field parameter, kJ/mol/nm/e, that drops ``v`` volts across a box ``box_z_nm`` tall:
    ``E = v/L_z`` in V/nm times 96.485 kJ/mol per e·V."""
    v = check_real("v", v, "must be a finite voltage in volts")
    lz = check_real("box_z_nm", box_z_nm, "must be a finite box height > 0 nm", positive=True)
    return v / lz * FARADAY_KJ_PER_MOL_PER_V


def voltage_for_field(efield_kj_per_mol_nm_e: float, box_z_nm: float) -> float:
    """ΔV = E·L_z in volts, for the field parameter in kJ/mol/nm/e."""
    e = check_real("efield_kj_per_mol_nm_e", efield_kj_per_mol_nm_e, "must be a finite field in kJ/mol/nm/e")
    lz = check_real("box_z_nm", box_z_nm, "must be a finite box height > 0 nm", positive=True)
    return e * lz / FARADAY_KJ_PER_MOL_PER_V


def set_voltage(context, v: float, box_z_nm: float) -> float:
    """Set the field of ``context`` so that ``v`` volts drop across the box; returns E in kJ/mol/nm/e."""
    e = field_for_voltage(v, box_z_nm)
    context.setParameter(FIELD_PARAMETER, e)
    return e


def add_field_force(system, charges_e, particles, *, efield_kj_per_mol_nm_e: float = 0.0) -> int:
    """Add ``U = −q·E·z`` on ``particles`` (indices) with charges ``charges_e`` (e), E the global
    parameter :data:`FIELD_PARAMETER` (kJ/mol/nm/e), in group :data:`FIELD_FORCE_GROUP`; returns
    the force's index. The force on each particle is q·E along z."""
    e = check_real("efield_kj_per_mol_nm_e", efield_kj_per_mol_nm_e, "must be a finite field in kJ/mol/nm/e")
    q = np.asarray(charges_e, dtype=float)
    idx = np.asarray(particles, dtype=int)
    if q.shape != idx.shape:
        raise bad_argument("charges_e", f"must have one charge per particle, shape {idx.shape}", q.shape)
    force = openmm.CustomExternalForce(f"-charge_e*{FIELD_PARAMETER}*z")
    force.addGlobalParameter(FIELD_PARAMETER, e)
    force.addPerParticleParameter("charge_e")
    for i, qi in zip(idx.tolist(), q.tolist(), strict=True):
        force.addParticle(i, [qi])
    force.setForceGroup(FIELD_FORCE_GROUP)
    force.setName("UniformFieldZ")
    return system.addForce(force)


def select_platform(name: str | None = None, *, precision: str = "mixed", probe: bool = True):
    """An OpenMM platform and its properties: CUDA (``precision``, default mixed), then OpenCL,
    then CPU. ``name`` (or the environment variable ``IONKINETICS_PLATFORM``) picks one
    explicitly; ``"auto"`` or None means the order above. With ``probe`` each automatic candidate
    must open a one-particle context first, so a CUDA plugin without a usable GPU is skipped.
    ``IONKINETICS_DEVICE_INDEX`` picks the GPU (OpenMM ``DeviceIndex``; campaigns set it per worker)."""
    if precision not in _PRECISIONS:
        raise bad_argument("precision", f"must be one of {', '.join(_PRECISIONS)}", precision)
    available = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    if name is None:
        name = os.environ.get("IONKINETICS_PLATFORM") or "auto"
    if name != "auto" and name not in available:
        raise bad_argument("name", f"must be 'auto' or an OpenMM platform available here ({', '.join(available)})", name)

    device = os.environ.get("IONKINETICS_DEVICE_INDEX")

    def props(n: str) -> dict[str, str]:
        if n not in ("CUDA", "OpenCL", "HIP"):
            return {}
        return {"Precision": precision, **({"DeviceIndex": device} if device else {})}

    if name != "auto":
        return openmm.Platform.getPlatformByName(name), props(name)
    for candidate in _PLATFORM_ORDER:
        if candidate not in available:
            continue
        platform = openmm.Platform.getPlatformByName(candidate)
        if probe and candidate != "CPU":
            try:
                s = openmm.System()
                s.addParticle(1.0)
                ctx = openmm.Context(s, openmm.VerletIntegrator(0.001), platform, props(candidate))
                del ctx
            except Exception:  # a plugin that loads but has no usable device
                continue
        return platform, props(candidate)
    return openmm.Platform.getPlatformByName("Reference"), {}


@dataclasses.dataclass(frozen=True, eq=False)
class MDSystem:
    """A membrane in an electrolyte, ready for ``openmm.app.Simulation``.

    Particles are ordered membrane, ions (by species), water. ``positions_nm`` (N, 3),
    ``charges_e`` (N,), ``box_vectors_nm`` (3, 3); ``ion_indices`` (n_ions,) and ``ion_species``
    name each ion's centre particle (N of NH4⁺, C of Gdm⁺); ``membrane_atoms`` (n_membrane,).
    The membrane plane is z = 0 (``membrane_z_nm``). The field parameter is ``field_parameter``
    (kJ/mol/nm/e); :meth:`field_for_voltage` converts a bias in volts for this box.
    """

    system_id: str | None
    membrane: Membrane
    electrolyte: Electrolyte
    topology: app.Topology
    system: openmm.System
    positions_nm: np.ndarray
    box_vectors_nm: np.ndarray
    charges_e: np.ndarray
    membrane_atoms: np.ndarray
    ion_indices: np.ndarray
    ion_species: tuple[str, ...]
    field_parameter: str
    field_force_group: int
    field_force_index: int
    cutoff_nm: float
    forcefield_files: tuple[str, ...]
    n_membrane_exclusions: int
    membrane_z_nm: float = 0.0
    forcefield_option: str | None = None
    sheet: str = "frozen"
    moving_membrane_atoms: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=int))

    @property
    def n_atoms(self) -> int:
        """Number of particles in the system."""
        return len(self.positions_nm)

    @property
    def box_nm(self) -> np.ndarray:
        """Orthorhombic box edges (L_x, L_y, L_z), nm."""
        return np.diag(self.box_vectors_nm).copy()

    @property
    def pore_centres_nm(self) -> np.ndarray:
        """(n_pores, 3) the membrane's pore centres, in nm."""
        return self.membrane.pore_centres_nm

    def field_for_voltage(self, v: float) -> float:
        """Field parameter (kJ/mol/nm/e) for a bias of ``v`` volts across this box."""
        return field_for_voltage(v, float(self.box_vectors_nm[2, 2]))

    def positions(self):
        """Positions as an ``openmm.unit`` Quantity (the MD boundary)."""
        return unit.Quantity([openmm.Vec3(*p) for p in self.positions_nm.tolist()], nanometer)

    def summary(self) -> dict:
        """What was built, JSON-ready (units in keys)."""
        m = self.membrane
        return {
            "system_id": self.system_id,
            "n_atoms": self.n_atoms,
            "box_nm": self.box_nm.tolist(),
            "membrane": {
                "pore": m.pore,
                "material": m.material,
                "n_atoms": m.n_atoms,
                "elements": m.element_counts(),
                "n_pores": m.n_pores,
                "pore_diameter_nm": m.pore_diameter_nm,
                "spacing_nm": m.spacing_nm,
                "superlattice": list(m.superlattice),
                "cells": list(m.cells),
            },
            "electrolyte": self.electrolyte.composition.to_dict(),
            "cutoff_nm": self.cutoff_nm,
            "forcefield_files": list(self.forcefield_files),
            "forcefield_option": self.forcefield_option,
            "sheet": self.sheet,
            "n_moving_membrane_atoms": len(self.moving_membrane_atoms),
            "field_parameter": self.field_parameter,
        }


def _topology(membrane: Membrane, electrolyte: Electrolyte) -> tuple[app.Topology, dict]:
    top = app.Topology()
    templates = {}
    chain = top.addChain("M")
    for resname, name, el in zip(membrane.residue_names, membrane.atom_names, membrane.elements, strict=True):
        res = top.addResidue(resname, chain)
        top.addAtom(name, app.element.get_by_symbol(el), res)
        templates[res] = resname
    chain = top.addChain("S")
    starts = electrolyte.residue_starts
    for k, resname in enumerate(electrolyte.residue_names):
        names, elements, bonds = residue_template(resname)
        if starts[k + 1] - starts[k] != len(names):
            raise AssertionError(f"residue {k} ({resname}) has {starts[k + 1] - starts[k]} atoms, template {len(names)}")
        res = top.addResidue(resname, chain)
        atoms = [top.addAtom(n, app.element.get_by_symbol(e), res) for n, e in zip(names, elements, strict=True)]
        for i, j in bonds:
            top.addBond(atoms[i], atoms[j])
    box = membrane.box_vectors_nm
    top.setPeriodicBoxVectors(unit.Quantity([openmm.Vec3(*row) for row in box.tolist()], nanometer))
    return top, templates


def _checked_box_edges(box: np.ndarray, electrolyte: Electrolyte, cutoff: float) -> np.ndarray:
    """The box edges, after checking the electrolyte shares the box and PME's minimum image holds."""
    if not np.allclose(box, electrolyte.box_vectors_nm):
        raise bad_argument("electrolyte", "must be built for this membrane's box", np.diag(electrolyte.box_vectors_nm).tolist())
    edges = np.diag(box)
    if np.any(edges < 2 * cutoff):
        raise bad_argument(
            "membrane.box_vectors_nm",
            f"must have every box edge at least 2 × cutoff_nm = {2 * cutoff} nm (PME minimum image); "
            "use more array cells, a larger box_z_nm or a shorter cutoff",
            edges.tolist(),
        )
    return edges


def _membrane_charges(nonbonded, charges: np.ndarray, membrane: Membrane, membrane_charges_e, files) -> None:
    """Override the membrane's charges with ``membrane_charges_e`` (checked: one per atom, neutral), or check
    that the force field gave it the charges it was built with; ``charges`` is updated in place."""
    n_mem = membrane.n_atoms
    if membrane_charges_e is not None:
        q_mem = np.asarray(membrane_charges_e, dtype=float)
        if q_mem.shape != (n_mem,) or not np.all(np.isfinite(q_mem)):
            raise bad_argument("membrane_charges_e", f"must be {n_mem} finite charges (e), one per membrane atom", q_mem.shape)
        if abs(q_mem.sum()) > 1e-6:
            raise bad_argument("membrane_charges_e", "must sum to zero (a neutral membrane)", float(q_mem.sum()))
        for i, qi in enumerate(q_mem.tolist()):
            _, sigma, eps = nonbonded.getParticleParameters(i)
            nonbonded.setParticleParameters(i, qi, sigma, eps)
        charges[:n_mem] = q_mem
    elif not np.allclose(charges[:n_mem], membrane.charges_e, rtol=0, atol=1e-9):
        raise bad_argument(
            "forcefield_files",
            "must give the membrane the charges it was built with (build the membrane with the same files)",
            files,
        )


def _freeze_membrane(system, nonbonded, membrane: Membrane, edges: np.ndarray, cutoff: float) -> np.ndarray:
    """Freeze the membrane (mass 0) and drop its internal nonbonded pairs within the cutoff; returns the pairs."""
    for i in range(membrane.n_atoms):
        system.setParticleMass(i, 0.0)
    pairs = KDTree(np.mod(membrane.positions_nm[:, :2], edges[:2]), boxsize=edges[:2]).query_pairs(cutoff, output_type="ndarray")
    for i, j in pairs.tolist():
        nonbonded.addException(i, j, 0.0, 0.1, 0.0)
    return pairs


def _create_system(top, templates: dict, files: tuple[str, ...], cutoff: float, tol: float):
    """``(system, nonbonded force, charges (e) per particle)`` of ``top`` by OpenMM's ForceField of
    ``files``: PME with ``cutoff`` (nm) and Ewald tolerance ``tol``, H-bonds and water rigid, the centre
    of mass free, nonbonded exceptions periodic."""
    forcefield = app.ForceField(*files)
    system = forcefield.createSystem(
        top,
        # createSystem has no annotations, so a checker types the argument by its default (NoCutoff)
        nonbondedMethod=app.PME,  # pyright: ignore[reportArgumentType]
        nonbondedCutoff=cutoff * nanometer,
        constraints=app.HBonds,
        rigidWater=True,
        ewaldErrorTolerance=tol,
        removeCMMotion=False,
        residueTemplates=templates,
    )
    (nonbonded,) = [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)]
    nonbonded.setExceptionsUsePeriodicBoundaryConditions(True)
    charges = np.array(
        [nonbonded.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge) for i in range(system.getNumParticles())]
    )
    return system, nonbonded, charges


def assemble_system(
    membrane: Membrane,
    electrolyte: Electrolyte,
    *,
    system_id: str | None = None,
    forcefield_files: Sequence[str] | None = None,
    cutoff_nm: float = DEFAULT_CUTOFF_NM,
    ewald_error_tolerance: float = DEFAULT_EWALD_ERROR_TOLERANCE,
    membrane_charges_e=None,
    efield_kj_per_mol_nm_e: float = 0.0,
    forcefield_option: str | None = None,
    sheet: str = "frozen",
) -> MDSystem:
    """Assemble the OpenMM Topology and System of ``membrane`` + ``electrolyte`` (see the module
    docstring for the settings). ``forcefield_files`` defaults to the membrane's;
    ``forcefield_option`` is only recorded (build the membrane with its files, or use
    :func:`build_system`). ``sheet`` names the membrane mechanics (:data:`ionkinetics.md.SHEET_MODELS`:
    ``"frozen"``, or ``"sgouros-2025-rim"`` whose hBN pore rims move under DFT-fitted bonded terms)."""
    model = sheet_model(sheet)
    cutoff = check_real("cutoff_nm", cutoff_nm, "must be a finite cutoff > 0 nm", positive=True)
    tol = check_real("ewald_error_tolerance", ewald_error_tolerance, "must be a finite tolerance > 0", positive=True)
    box = np.asarray(membrane.box_vectors_nm, dtype=float)
    edges = _checked_box_edges(box, electrolyte, cutoff)
    files = tuple(str(f) for f in (forcefield_files if forcefield_files is not None else membrane.forcefield_files))
    top, templates = _topology(membrane, electrolyte)
    system, nonbonded, charges = _create_system(top, templates, files, cutoff, tol)
    n_mem = membrane.n_atoms
    _membrane_charges(nonbonded, charges, membrane, membrane_charges_e, files)
    total = float(charges.sum())
    if abs(total) > 1e-6:
        raise bad_argument(
            "membrane_charges_e", f"leave the system with a net charge of {total:+.6f} e; the whole system must be neutral", total
        )

    pairs = _freeze_membrane(system, nonbonded, membrane, edges, cutoff)
    moving = add_flexible_rim(system, membrane, model) if model.flexible else np.zeros(0, dtype=int)

    movable = np.arange(n_mem, system.getNumParticles())
    charged = movable[charges[movable] != 0.0]
    field_index = add_field_force(system, charges[charged], charged, efield_kj_per_mol_nm_e=efield_kj_per_mol_nm_e)

    arrays = {
        "positions_nm": np.vstack([membrane.positions_nm, electrolyte.positions_nm]),
        "box_vectors_nm": box.copy(),
        "charges_e": charges,
        "membrane_atoms": np.arange(n_mem),
        "moving_membrane_atoms": moving,
        "ion_indices": n_mem + electrolyte.ion_atoms,
    }
    for arr in arrays.values():
        arr.setflags(write=False)
    return MDSystem(
        system_id=system_id,
        membrane=membrane,
        electrolyte=electrolyte,
        topology=top,
        system=system,
        ion_species=electrolyte.ion_species,
        **arrays,
        field_parameter=FIELD_PARAMETER,
        field_force_group=FIELD_FORCE_GROUP,
        field_force_index=field_index,
        cutoff_nm=cutoff,
        forcefield_files=files,
        n_membrane_exclusions=len(pairs),
        forcefield_option=forcefield_option,
        sheet=model.name,
    )


def build_system(
    system_id,
    *,
    spacing_nm: float = 1.6,
    box_xy_nm: tuple[float, float] | None = None,
    cells: tuple[int, int] | None = None,
    box_z_nm: float = DEFAULT_BOX_Z_NM,
    seed: int = 0,
    cutoff_nm: float = DEFAULT_CUTOFF_NM,
    forcefield_files: Sequence[str] | None = None,
    forcefield_option: str | None = None,
    electrolyte_options: dict | None = None,
    **assemble_options,
) -> MDSystem:
    """Membrane, electrolyte and OpenMM system for a system id such as ``"crown6:NaCl@1.0+KCl@0.5"``.

    ``forcefield_option`` names a cited membrane-charge option
    (:data:`ionkinetics.md.FORCEFIELD_OPTIONS`; default
    :data:`~ionkinetics.md.DEFAULT_FORCEFIELD_OPTION` when no ``forcefield_files`` are given);
    the name is recorded in :meth:`MDSystem.summary`. Give one of ``forcefield_option`` and
    ``forcefield_files``, not both.

    Geometry arguments go to :func:`build_membrane`, ``seed`` and ``electrolyte_options``
    (``gap_nm``, ``ion_membrane_distance_nm``, ``ion_separation_nm``) to
    :func:`build_electrolyte`, the rest to :func:`assemble_system`.
    """
    try:
        sid = _species.parse_system_id(system_id)
    except (ValueError, TypeError) as err:
        raise type(err)(f"system_id: {err}") from None
    if forcefield_option is not None and forcefield_files is not None:
        raise bad_argument(
            "forcefield_option",
            "must not be given together with forcefield_files (an option chooses the files)",
            forcefield_option,
        )
    if forcefield_files is None:
        forcefield_option = DEFAULT_FORCEFIELD_OPTION if forcefield_option is None else forcefield_option
        forcefield_files = forcefield_option_files(forcefield_option)
        if "sheet" not in assemble_options and _species.PORES[sid.pore].membrane == "hBN":
            assemble_options["sheet"] = forcefield_option_named(forcefield_option).hbn_sheet
    membrane = build_membrane(
        sid.pore, spacing_nm=spacing_nm, box_xy_nm=box_xy_nm, cells=cells, box_z_nm=box_z_nm, forcefield_files=forcefield_files
    )
    electrolyte = build_electrolyte(membrane, sid, seed=seed, **(electrolyte_options or {}))
    return assemble_system(
        membrane, electrolyte, system_id=str(sid), cutoff_nm=cutoff_nm, forcefield_option=forcefield_option, **assemble_options
    )
