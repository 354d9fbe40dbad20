"""Potentials of mean force of one ion along the pore axis: umbrella sampling and MBAR.

Windows
    Window *i* restrains one ion with a harmonic potential in z about ``z0_nm`` (minimum image
    along z, so a window near the box edge sees the periodic copy correctly) and a flat-bottom
    lateral restraint: free inside a cylinder of radius ``R`` about the pore axis
    (``pore_xy_nm``), harmonic outside it::

        U = ½·k_z·Δz² + ½·k_xy·max(0, r − R)²,   Δz = minimum-image(z − z0),  r = |(x, y) − pore_xy|_min-image

    Both terms are one ``CustomExternalForce`` whose centre, force constants and radius are global
    parameters (:data:`UMBRELLA_PARAMETERS`), so one Context serves every window
    (``context.setParameter``). :func:`run_window` equilibrates, then records the ion's z and its
    lateral distance r every ``sample_every_steps`` and writes ``window_<i>.npz`` atomically; a
    finished window (same settings) is skipped on re-run, so windows are independent tasks a
    campaign can spread.

Analysis (:func:`analyze_windows`)
    * Each window's z series is subsampled at its statistical inefficiency g
      (``pymbar.timeseries.statistical_inefficiency`` / ``subsample_correlated_data``).
    * Reduced biasing potentials ``u_kn = β·½·k_z,k·Δz(z_n, z0_k)²`` for every sample in every
      window; the lateral restraint is the same in every window, so it is part of the target
      state and not of the bias. MBAR (pymbar 4, ``FES`` histogram on z bins) gives the PMF of the
      restrained system with its analytical uncertainty relative to a reference bin: the most
      populated bin in bulk (``from-specified``), so the error bars are errors relative to bulk.
    * Overlap: the MBAR overlap matrix O; a window whose overlap with a z-neighbour,
      O[k, k±1], is below ``overlap_threshold`` (default :data:`DEFAULT_OVERLAP_THRESHOLD` = 0.03,
      pymbar's rule of thumb) is flagged.
    * Lateral restraint entropy. The per-pore footing is a lateral reference area ``A_ref``
      (default: the membrane area per pore, box L_x·L_y / n_pores). With the restraint the ion
      samples, in a laterally flat region, an area ``A_R = πR² + 2πR·√(π/(2βk_xy)) + 2π/(βk_xy)``
      (flat bottom plus harmonic wall) instead of A_ref, which costs
      ``ΔG_xy = −kT·ln(A_R/A_ref)`` (:func:`restraint_area_nm2`, :func:`restraint_free_energy_kt`).
      Where the pore itself confines the ion well inside R the restraint costs nothing. Both
      limits, and everything between, follow from the samples: in each z bin, with MBAR weights,
      n_in = weight with r < R, n_wall = weight with r ≥ R, ρ_edge = the lateral density just
      inside R (annulus of width ``edge_width_nm``, default min(0.15 nm, R/2)), and the lateral
      free energy beyond R taken flat at its edge value up to A_ref::

          ΔG_xy(z) = −kT·ln[(n_in + n_wall) / (n_in + ρ_edge·(A_ref − πR²))]

      which is −kT·ln(A_R/A_ref) in bulk and 0 where ρ_edge = 0. The corrected PMF is
      ``W(z) = W_R(z) − ΔG_xy(z)``; in bulk the same A_ref is used, so barrier heights and well
      depths relative to bulk are on one footing whatever R was. Choose R larger than the pore's
      accessible radius (so ρ_edge → 0 in the membrane plane) but smaller than √(A_ref/π).
    * Bulk = samples with |z − z_membrane| ≥ ``bulk_min_abs_z_nm`` (default 1.0 nm); the
      reported PMFs are zero at the bulk mean of the corrected PMF, and the uncorrected one is
      ``W + ΔG_xy`` on the same constant. The barrier is the PMF maximum, the well depth the PMF
      minimum, both within |z| < ``bulk_min_abs_z_nm`` and relative to bulk.

pymbar prints a banner and enables JAX's 64-bit mode when imported (this module imports it
lazily, inside :func:`analyze_windows`). Its default solver passes options scipy does not know
(an ``OptimizeWarning``), so this module uses the ``adaptive`` solver and, around pymbar's calls
only, ignores that one benign message and the timeseries module's advisory printout.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np

from .._checks import bad_argument, check_real
from .._io import write_npz_atomic
from ..constants import BOLTZMANN_KJ_PER_MOL_K
from ._settings import LangevinSettings

__all__ = [
    "DEFAULT_BULK_MIN_ABS_Z_NM",
    "DEFAULT_OVERLAP_THRESHOLD",
    "UMBRELLA_PARAMETERS",
    "PMFResult",
    "WindowSettings",
    "add_umbrella_restraints",
    "analyze_windows",
    "load_window",
    "plot_pmf",
    "restraint_area_nm2",
    "restraint_free_energy_kt",
    "run_window",
    "window_centres_nm",
    "window_path",
]

DEFAULT_OVERLAP_THRESHOLD = 0.03
DEFAULT_BULK_MIN_ABS_Z_NM = 1.0
UMBRELLA_FORCE_NAME = "UmbrellaZFlatBottomXY"
UMBRELLA_PARAMETERS = {
    "z0_nm": "umb_z0_nm",
    "k_z_kj_per_mol_nm2": "umb_kz_kj_per_mol_nm2",
    "flat_bottom_radius_nm": "umb_r_flat_nm",
    "k_xy_kj_per_mol_nm2": "umb_kxy_kj_per_mol_nm2",
    "pore_x_nm": "umb_pore_x_nm",
    "pore_y_nm": "umb_pore_y_nm",
}
_P = UMBRELLA_PARAMETERS
_SOLVER_PROTOCOL = ({"method": "adaptive", "options": {"min_sc_iter": 0}},)


def _integer(arg: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise bad_argument(arg, f"must be an integer >= {low}", value)
    return int(value)


def _kt_kj_per_mol(temperature_k: float) -> float:
    return BOLTZMANN_KJ_PER_MOL_K * temperature_k


# --------------------------------------------------------------------------- restraints


def add_umbrella_restraints(
    system,
    ion_index: int,
    *,
    pore_xy_nm,
    z0_nm: float,
    k_z_kj_per_mol_nm2: float,
    flat_bottom_radius_nm: float,
    k_xy_kj_per_mol_nm2: float,
    box_nm=None,
) -> int:
    """Add the umbrella restraint on particle ``ion_index`` of ``system`` (an ``openmm.System``)
    and return the force's index. The window's parameters are global parameters
    (:data:`UMBRELLA_PARAMETERS`), changed per window with ``context.setParameter``.

    Distances are minimum-image (``periodicdistance``), with the system's default box unless
    ``box_nm`` (L_x, L_y, L_z) is given, in which case ``z0_nm`` must lie inside [−L_z/2, L_z/2].
    """
    import openmm

    n = system.getNumParticles()
    if isinstance(ion_index, bool) or not isinstance(ion_index, (int, np.integer)) or not 0 <= ion_index < n:
        raise bad_argument("ion_index", f"must be a particle index in [0, {n})", ion_index)
    if system.getParticleMass(int(ion_index)).value_in_unit(openmm.unit.dalton) == 0:
        raise bad_argument("ion_index", "must name a movable particle (mass > 0)", ion_index)
    xy = np.asarray(pore_xy_nm, dtype=float)
    if xy.shape != (2,) or not np.all(np.isfinite(xy)):
        raise bad_argument("pore_xy_nm", "must be two finite numbers (x, y) in nm", pore_xy_nm)
    z0 = check_real("z0_nm", z0_nm, "must be a finite window centre in nm")
    kz = check_real("k_z_kj_per_mol_nm2", k_z_kj_per_mol_nm2, "must be a finite force constant > 0 kJ/mol/nm²", positive=True)
    r_flat = check_real("flat_bottom_radius_nm", flat_bottom_radius_nm, "must be a finite radius >= 0 nm", nonnegative=True)
    kxy = check_real("k_xy_kj_per_mol_nm2", k_xy_kj_per_mol_nm2, "must be a finite force constant > 0 kJ/mol/nm²", positive=True)
    if box_nm is not None:
        box = _box(box_nm)
        _check_inside("z0_nm", z0, box[2], 0.0)
    expression = (
        f"0.5*{_P['k_z_kj_per_mol_nm2']}*dz^2 + 0.5*{_P['k_xy_kj_per_mol_nm2']}*max(0, r - {_P['flat_bottom_radius_nm']})^2;"
        f"dz = periodicdistance(0, 0, z, 0, 0, {_P['z0_nm']});"
        f"r = periodicdistance(x, y, 0, {_P['pore_x_nm']}, {_P['pore_y_nm']}, 0)"
    )
    force = openmm.CustomExternalForce(expression)
    for key, value in (
        ("z0_nm", z0),
        ("k_z_kj_per_mol_nm2", kz),
        ("flat_bottom_radius_nm", r_flat),
        ("k_xy_kj_per_mol_nm2", kxy),
        ("pore_x_nm", float(xy[0])),
        ("pore_y_nm", float(xy[1])),
    ):
        force.addGlobalParameter(_P[key], value)
    force.addParticle(int(ion_index), [])
    force.setName(UMBRELLA_FORCE_NAME)
    return system.addForce(force)


def _box(box_nm) -> np.ndarray:
    box = np.asarray(box_nm, dtype=float)
    if box.shape != (3,) or not np.all(np.isfinite(box)) or np.any(box <= 0):
        raise bad_argument("box_nm", "must be three finite box edges > 0 nm", box_nm)
    return box


def _check_inside(arg: str, z: float, lz: float, membrane_z_nm: float) -> None:
    if abs(z - membrane_z_nm) > lz / 2:
        raise bad_argument(arg, f"must lie inside the box, |z − {membrane_z_nm:g}| <= L_z/2 = {lz / 2:g} nm", z)


def window_centres_nm(z_min: float, z_max: float, spacing: float) -> np.ndarray:
    """Window centres from ``z_min`` to ``z_max`` (nm, both included when the span is a whole
    number of ``spacing``; otherwise the spacing is shrunk so that it is)."""
    lo = check_real("z_min", z_min, "must be a finite z in nm")
    hi = check_real("z_max", z_max, "must be a finite z in nm")
    step = check_real("spacing", spacing, "must be a finite spacing > 0 nm", positive=True)
    if hi <= lo:
        raise bad_argument("z_max", f"must be greater than z_min = {lo:g} nm", z_max)
    n = math.ceil((hi - lo) / step - 1e-9) + 1
    return np.linspace(lo, hi, n)


def restraint_area_nm2(flat_bottom_radius_nm: float, k_xy_kj_per_mol_nm2: float, temperature_k: float) -> float:
    """Lateral area (nm²) sampled under the flat-bottom restraint where the lateral free energy
    is flat: ∫exp(−β·½k(r−R)²·[r>R]) 2πr dr = πR² + 2πR·√(π/(2βk)) + 2π/(βk)."""
    r = check_real("flat_bottom_radius_nm", flat_bottom_radius_nm, "must be a finite radius >= 0 nm", nonnegative=True)
    k = check_real("k_xy_kj_per_mol_nm2", k_xy_kj_per_mol_nm2, "must be a finite force constant > 0 kJ/mol/nm²", positive=True)
    t = check_real("temperature_k", temperature_k, "must be a finite temperature > 0 K", positive=True)
    bk = k / _kt_kj_per_mol(t)
    return math.pi * r * r + 2 * math.pi * r * math.sqrt(math.pi / (2 * bk)) + 2 * math.pi / bk


def restraint_free_energy_kt(
    flat_bottom_radius_nm: float, k_xy_kj_per_mol_nm2: float, temperature_k: float, reference_area_nm2: float
) -> float:
    """ΔG_xy = −ln(A_R/A_ref) in kT: the free energy of confining a laterally free ion from the
    reference area to the restraint's (:func:`restraint_area_nm2`)."""
    a_ref = check_real("reference_area_nm2", reference_area_nm2, "must be a finite area > 0 nm²", positive=True)
    return -math.log(restraint_area_nm2(flat_bottom_radius_nm, k_xy_kj_per_mol_nm2, temperature_k) / a_ref)


# --------------------------------------------------------------------------- windows


@dataclasses.dataclass(frozen=True)
class WindowSettings(LangevinSettings):
    """How every window is restrained and sampled (recorded in each window file), plus the shared
    thermostat fields (keyword-only)."""

    k_z_kj_per_mol_nm2: float = 2000.0
    flat_bottom_radius_nm: float = 0.3
    k_xy_kj_per_mol_nm2: float = 1000.0
    equilibration_steps: int = 5000
    sampling_steps: int = 50000
    sample_every_steps: int = 50

    def __post_init__(self):
        for name in ("k_z_kj_per_mol_nm2", "k_xy_kj_per_mol_nm2", "timestep_fs", "temperature_k", "friction_per_ps"):
            check_real(name, getattr(self, name), "must be a finite number > 0", positive=True)
        check_real("flat_bottom_radius_nm", self.flat_bottom_radius_nm, "must be a finite radius >= 0 nm", nonnegative=True)
        _integer("equilibration_steps", self.equilibration_steps, 0)
        _integer("sampling_steps", self.sampling_steps, 1)
        _integer("sample_every_steps", self.sample_every_steps, 1)
        _integer("seed", self.seed, 0)
        if self.sampling_steps % self.sample_every_steps:
            raise bad_argument(
                "sampling_steps", f"must be a multiple of sample_every_steps = {self.sample_every_steps}", self.sampling_steps
            )

    @property
    def n_samples(self) -> int:
        """Number of samples a window records: ``sampling_steps // sample_every_steps``."""
        return self.sampling_steps // self.sample_every_steps


def window_path(out_dir, window_index: int) -> Path:
    """Path of window ``window_index``'s record, ``out_dir/window_<index>.npz``."""
    return Path(out_dir) / f"window_{int(window_index)}.npz"


def load_window(path) -> dict:
    """One window file as a dict of arrays and scalars (``z_nm``, ``r_xy_nm``, ``t_ps``, ``z0_nm``, ...)."""
    with np.load(Path(path)) as data:
        return {k: (data[k].item() if data[k].ndim == 0 else data[k].copy()) for k in data.files}


def _window_meta(settings: WindowSettings, ion_index: int, z0: float, pore_xy, box, membrane_z_nm, reference_area_nm2) -> dict:
    meta = {f"settings_{k}": v for k, v in dataclasses.asdict(settings).items() if k != "platform"}
    meta.update(
        ion_index=int(ion_index),
        z0_nm=float(z0),
        pore_x_nm=float(pore_xy[0]),
        pore_y_nm=float(pore_xy[1]),
        box_nm=np.asarray(box, dtype=float),
        membrane_z_nm=float(membrane_z_nm),
        reference_area_nm2=float(reference_area_nm2),
    )
    return meta


def _same(a, b) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b))


def _window_pore_xy(built, positions: np.ndarray, ion_index: int, box: np.ndarray, pore_xy_nm) -> np.ndarray:
    """The restraint's pore axis: ``pore_xy_nm``, else the pore nearest the ion laterally (minimum image)."""
    if pore_xy_nm is not None:
        pore_xy = np.asarray(pore_xy_nm, dtype=float)
        if pore_xy.shape != (2,) or not np.all(np.isfinite(pore_xy)):
            raise bad_argument("pore_xy_nm", "must be two finite numbers (x, y) in nm", pore_xy_nm)
        return pore_xy
    centres = getattr(built, "pore_centres_nm", None)
    if centres is None or len(centres) == 0:
        raise bad_argument("pore_xy_nm", "must be given when the system has no pore_centres_nm", pore_xy_nm)
    c = np.asarray(centres, dtype=float)[:, :2]
    d = c - positions[ion_index, :2]
    d -= box[:2] * np.round(d / box[:2])
    return c[int(np.argmin(np.hypot(d[:, 0], d[:, 1])))]


def _window_records(built, settings, ion_index: int, z0: float, pore_xy, box, membrane_z: float, a_ref: float, provenance):
    """(meta, prov): the compared settings of a window file (with the membrane's template charges, so a
    window is reused only under the same charges) and its ``prov_*`` entries, recorded, not compared."""
    prov = {}
    for key, value in (provenance or {}).items():
        if not isinstance(key, str) or not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise bad_argument("provenance", "must map str keys to str or number values", {key: value})
        prov[f"prov_{key}"] = value
    meta = _window_meta(settings, ion_index, z0, pore_xy, box, membrane_z, a_ref)
    membrane = getattr(built, "membrane", None)
    if membrane is not None and hasattr(membrane, "residue_names"):
        charge_of = dict(zip(membrane.residue_names, np.asarray(membrane.charges_e, dtype=float).tolist(), strict=True))
        names = sorted(charge_of)
        meta["membrane_templates"] = np.array(names)
        meta["membrane_template_charges_e"] = np.array([charge_of[n] for n in names])
    cutoff = getattr(built, "cutoff_nm", None)
    if cutoff is not None:  # compared: a window is reused only under the same nonbonded cutoff
        meta["system_cutoff_nm"] = float(cutoff)
    meta["membrane_sheet"] = str(getattr(built, "sheet", "frozen"))  # and the same membrane mechanics
    option = getattr(built, "forcefield_option", None)
    if option is not None:  # options with the same charges for this membrane share windows
        prov.setdefault("forcefield_option", str(option))
    return meta, prov


def _sample_window(built, positions, ion_index: int, widx: int, z0: float, pore_xy, box, settings: WindowSettings):
    """Restrain a copy of ``built.system``, place the ion, minimise, equilibrate and sample its position
    every ``sample_every_steps``; returns (xyz (n_samples, 3) nm, sampling wall time s, platform name)."""
    import openmm

    from . import _units as u
    from ._system import select_platform

    system = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(built.system))
    system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) for row in np.diag(box).tolist()])
    add_umbrella_restraints(
        system,
        ion_index,
        pore_xy_nm=pore_xy,
        z0_nm=z0,
        k_z_kj_per_mol_nm2=settings.k_z_kj_per_mol_nm2,
        flat_bottom_radius_nm=settings.flat_bottom_radius_nm,
        k_xy_kj_per_mol_nm2=settings.k_xy_kj_per_mol_nm2,
    )
    platform, props = select_platform(settings.platform)
    integrator = settings.langevin_integrator(seed_offset=1 + widx)
    context = openmm.Context(system, integrator, platform, props)
    context.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in np.diag(box).tolist()])
    positions = positions.copy()
    positions[ion_index] = [pore_xy[0], pore_xy[1], z0]
    context.setPositions(positions * u.nanometer)
    if settings.minimize:
        openmm.LocalEnergyMinimizer.minimize(context)
    context.setVelocitiesToTemperature(settings.temperature_k * u.kelvin, settings.seed + 1 + widx)
    start = time.perf_counter()
    if settings.equilibration_steps:
        integrator.step(settings.equilibration_steps)
    xyz = np.empty((settings.n_samples, 3))
    for j in range(settings.n_samples):
        integrator.step(settings.sample_every_steps)
        p = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(u.nanometer)
        xyz[j] = p[ion_index]
    return xyz, time.perf_counter() - start, platform.getName()


def run_window(
    built,
    ion_index: int,
    window_index: int,
    z0_nm: float,
    settings: WindowSettings,
    out_dir,
    *,
    pore_xy_nm=None,
    reference_area_nm2: float | None = None,
    provenance: dict | None = None,
) -> tuple[Path, bool]:
    """Run umbrella window ``window_index`` (centre ``z0_nm``) for particle ``ion_index`` of
    ``built`` (an :class:`~ionkinetics.md.MDSystem` or anything with ``system``,
    ``positions_nm``, ``box_nm``; optional ``membrane_z_nm``, ``pore_centres_nm``) and write
    ``out_dir/window_<i>.npz``. Returns (path, ran): a finished window written with the same
    settings is not re-run (``ran`` False); one written with other settings is refused.

    The ion is placed at (pore x, pore y, z0) — the pore nearest the ion laterally unless
    ``pore_xy_nm`` is given — minimised (``settings.minimize``), equilibrated, then sampled:
    ``z_nm`` (minimum image relative to the membrane plane) and ``r_xy_nm`` (minimum-image
    lateral distance from the pore axis) every ``sample_every_steps``. ``built.system`` is not
    modified (a copy gets the restraint). ``reference_area_nm2`` defaults to L_x·L_y / n_pores.
    ``provenance`` (str → str or number) is stored as ``prov_<key>`` beside the samples and is
    not compared when a finished window is found (commit, host and threads may differ).
    """
    if not isinstance(settings, WindowSettings):
        raise TypeError(f"settings must be a WindowSettings; got {type(settings).__name__}")
    widx = _integer("window_index", window_index, 0)
    box = _box(getattr(built, "box_nm", None))
    membrane_z = float(getattr(built, "membrane_z_nm", 0.0))
    z0 = check_real("z0_nm", z0_nm, "must be a finite window centre in nm")
    _check_inside("z0_nm", z0, box[2], membrane_z)
    positions = np.array(built.positions_nm, dtype=float)
    n = positions.shape[0]
    if isinstance(ion_index, bool) or not isinstance(ion_index, (int, np.integer)) or not 0 <= ion_index < n:
        raise bad_argument("ion_index", f"must be a particle index in [0, {n})", ion_index)
    known_ions = getattr(built, "ion_indices", None)
    if known_ions is not None and int(ion_index) not in set(np.asarray(known_ions).tolist()):
        raise bad_argument("ion_index", "must be one of the system's ion_indices", ion_index)
    pore_xy = _window_pore_xy(built, positions, int(ion_index), box, pore_xy_nm)
    if reference_area_nm2 is None:
        centres = getattr(built, "pore_centres_nm", None)
        n_pores = 1 if centres is None or len(centres) == 0 else len(centres)
        reference_area_nm2 = float(box[0] * box[1] / n_pores)
    a_ref = check_real("reference_area_nm2", reference_area_nm2, "must be a finite area > 0 nm²", positive=True)
    meta, prov = _window_records(built, settings, int(ion_index), z0, pore_xy, box, membrane_z, a_ref, provenance)
    path = window_path(out_dir, widx)
    if path.exists():
        from ._system import DEFAULT_CUTOFF_NM

        old = load_window(path)
        old.setdefault("system_cutoff_nm", DEFAULT_CUTOFF_NM)  # records from before these two were recorded
        old.setdefault("membrane_sheet", "frozen")
        diff = [k for k, v in meta.items() if k not in old or not _same(old[k], v)]
        if diff:
            raise ValueError(
                f"out_dir {str(out_dir)!r}: {path.name} holds a window of other settings ({', '.join(diff)}); "
                "use a new directory or the same settings"
            )
        return path, False

    xyz, wall_s, platform_name = _sample_window(built, positions, int(ion_index), widx, z0, pore_xy, box, settings)
    z = xyz[:, 2] - membrane_z
    z -= box[2] * np.round(z / box[2])
    d = xyz[:, :2] - pore_xy
    d -= box[:2] * np.round(d / box[:2])
    m = settings.n_samples
    t_ps = (settings.equilibration_steps + settings.sample_every_steps * np.arange(1, m + 1)) * settings.timestep_fs / 1000.0
    write_npz_atomic(
        path,
        z_nm=z + membrane_z,
        r_xy_nm=np.hypot(d[:, 0], d[:, 1]),
        t_ps=t_ps,
        platform=platform_name,
        wall_s=wall_s,
        **prov,
        **meta,
    )
    return path, True


# --------------------------------------------------------------------------- analysis


@dataclasses.dataclass(frozen=True)
class PMFResult:
    """A PMF along z (nm), zero at the bulk mean of the corrected profile.

    ``pmf_kt`` / ``pmf_kj_per_mol`` are corrected for the lateral restraint (per-pore footing,
    area ``reference_area_nm2``); ``pmf_uncorrected_kt`` is the restrained system's profile on
    the same constant (``pmf_kt + restraint_correction_kt``); ``restraint_correction_kt`` is
    ΔG_xy(z) = −ln(A_R(z)/A_ref); ``dpmf_kt`` the MBAR analytical uncertainty of each bin
    relative to the reference bin (the most populated bulk bin; 0 there). ``overlap_matrix``
    (K, K) in window order ``z0_nm``; ``neighbour_overlap`` (K−1,) between consecutive windows;
    ``poor_overlap_windows`` the indices (into ``z0_nm``) whose overlap with a neighbour is below
    ``overlap_threshold``.
    """

    z_nm: np.ndarray
    pmf_kt: np.ndarray
    pmf_kj_per_mol: np.ndarray
    dpmf_kt: np.ndarray
    pmf_uncorrected_kt: np.ndarray
    restraint_correction_kt: np.ndarray
    counts: np.ndarray
    temperature_k: float
    reference_area_nm2: float
    restraint_area_nm2: float
    bulk_min_abs_z_nm: float
    membrane_z_nm: float
    barrier_kt: float
    barrier_z_nm: float
    well_kt: float
    well_z_nm: float
    z0_nm: np.ndarray
    n_samples: np.ndarray
    n_uncorrelated: np.ndarray
    statistical_inefficiency: np.ndarray
    overlap_matrix: np.ndarray
    neighbour_overlap: np.ndarray
    overlap_threshold: float
    poor_overlap_windows: tuple[int, ...]

    @property
    def kt_kj_per_mol(self) -> float:
        """Thermal energy kT at ``temperature_k``, in kJ/mol."""
        return _kt_kj_per_mol(self.temperature_k)

    @property
    def barrier_kj_per_mol(self) -> float:
        """``barrier_kt`` in kJ/mol."""
        return self.barrier_kt * self.kt_kj_per_mol

    @property
    def well_kj_per_mol(self) -> float:
        """``well_kt`` in kJ/mol."""
        return self.well_kt * self.kt_kj_per_mol

    @property
    def overlap_ok(self) -> bool:
        """True when every window overlaps its neighbours at least ``overlap_threshold`` (no ``poor_overlap_windows``)."""
        return not self.poor_overlap_windows

    def summary(self) -> dict:
        """JSON-ready numbers (units in keys)."""
        return {
            "temperature_k": self.temperature_k,
            "reference_area_nm2": self.reference_area_nm2,
            "restraint_area_nm2": self.restraint_area_nm2,
            "restraint_correction_bulk_kt": float(np.nanmean(self.restraint_correction_kt[self._bulk])),
            "bulk_min_abs_z_nm": self.bulk_min_abs_z_nm,
            "barrier_kt": self.barrier_kt,
            "barrier_kj_per_mol": self.barrier_kj_per_mol,
            "barrier_z_nm": self.barrier_z_nm,
            "well_kt": self.well_kt,
            "well_kj_per_mol": self.well_kj_per_mol,
            "well_z_nm": self.well_z_nm,
            "n_windows": len(self.z0_nm),
            "n_samples": int(np.sum(self.n_samples)),
            "n_uncorrelated": int(np.sum(self.n_uncorrelated)),
            "overlap_threshold": self.overlap_threshold,
            "min_neighbour_overlap": float(np.min(self.neighbour_overlap)) if len(self.neighbour_overlap) else None,
            "poor_overlap_windows": list(self.poor_overlap_windows),
        }

    @property
    def _bulk(self) -> np.ndarray:
        return np.abs(self.z_nm - self.membrane_z_nm) >= self.bulk_min_abs_z_nm


@contextlib.contextmanager
def _quiet_pymbar():
    """pymbar's benign noise: scipy's OptimizeWarning for solver options it forwards but scipy
    does not use, and the timeseries module's logged advisory (a standing caveat, not a finding)."""
    from scipy.optimize import OptimizeWarning

    log = logging.getLogger("pymbar.timeseries")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.filterwarnings("ignore", message="Unknown solver options", category=OptimizeWarning)
            yield
    finally:
        log.setLevel(level)


def _gather(windows) -> list[dict]:
    out = []
    if isinstance(windows, (str, os.PathLike)):
        directory = Path(windows)
        paths = sorted(directory.glob("window_*.npz"), key=lambda p: int(p.stem.split("_")[1]))
        if not paths:
            raise bad_argument("windows", "must be a directory holding window_<i>.npz files", str(directory))
        windows = paths
    for k, w in enumerate(windows):
        d = load_window(w) if isinstance(w, (str, os.PathLike)) else dict(w)
        for key in ("z_nm", "z0_nm"):
            if key not in d:
                raise bad_argument(f"windows[{k}]", f"must have {key!r}", sorted(d))
        out.append(d)
    if len(out) < 2:
        raise bad_argument("windows", "must hold at least two windows", len(out))
    return out


def _get(d: dict, key: str, default):
    return d.get(f"settings_{key}", d.get(key, default))


def _lateral_restraint(data, reference_area_nm2, t_k: float):
    """(lateral, R_flat, k_xy, A_ref, A_r): the windows' shared flat-bottom lateral restraint and the
    areas of the standard-state correction (NaN when the windows carry no ``r_xy_nm``)."""
    if not all("r_xy_nm" in d for d in data):
        a_ref = float(reference_area_nm2) if reference_area_nm2 is not None else float("nan")
        return False, float("nan"), float("nan"), a_ref, float("nan")
    radii = {float(_get(d, "flat_bottom_radius_nm", np.nan)) for d in data}
    kxys = {float(_get(d, "k_xy_kj_per_mol_nm2", np.nan)) for d in data}
    if len(radii) != 1 or len(kxys) != 1:
        raise bad_argument(
            "windows", "must share one flat_bottom_radius_nm and k_xy_kj_per_mol_nm2", (sorted(radii), sorted(kxys))
        )
    r_flat, kxy = radii.pop(), kxys.pop()
    check_real("flat_bottom_radius_nm", r_flat, "must be a finite radius >= 0 nm", nonnegative=True)
    check_real("k_xy_kj_per_mol_nm2", kxy, "must be a finite force constant > 0", positive=True)
    if reference_area_nm2 is None:
        reference_area_nm2 = data[0].get("reference_area_nm2")
    a_ref = check_real("reference_area_nm2", reference_area_nm2, "must be a finite area > 0 nm²", positive=True)
    if a_ref < math.pi * r_flat**2:
        raise bad_argument(
            "reference_area_nm2", f"must be at least the flat bottom's area πR² = {math.pi * r_flat**2:g} nm²", a_ref
        )
    return True, r_flat, kxy, a_ref, restraint_area_nm2(r_flat, kxy, t_k)


def _uncorrelated_samples(data, lateral: bool, subsample: bool):
    """Each window's samples, subsampled at its statistical inefficiency g (pymbar's timeseries) when
    ``subsample``: (z, r_xy, n_k, g_k, n_raw), z and r_xy concatenated over windows."""
    from pymbar import timeseries

    z_all, r_all, n_k, g_k, n_raw = [], [], [], [], []
    for k, d in enumerate(data):
        z = np.asarray(d["z_nm"], dtype=float).ravel()
        if z.size < 2 or not np.all(np.isfinite(z)):
            raise bad_argument(f"windows[{k}].z_nm", "must be at least two finite samples", z.size)
        idx = np.arange(z.size)
        g = 1.0
        if subsample and np.ptp(z) > 0:
            with _quiet_pymbar():
                g = float(timeseries.statistical_inefficiency(z))
                idx = np.asarray(timeseries.subsample_correlated_data(z, g=g), dtype=int)
        z_all.append(z[idx])
        r_all.append(np.asarray(d["r_xy_nm"], dtype=float).ravel()[idx] if lateral else np.zeros(idx.size))
        n_k.append(idx.size)
        g_k.append(g)
        n_raw.append(z.size)
    return np.concatenate(z_all), np.concatenate(r_all), np.asarray(n_k), g_k, n_raw


@dataclasses.dataclass(frozen=True)
class _Histogram:
    """MBAR's free energy on the z bins with enough samples (``keep``), referenced to the fullest bulk bin."""

    edges: np.ndarray
    counts: np.ndarray
    keep: np.ndarray
    f_kt: np.ndarray
    df_kt: np.ndarray
    overlap: np.ndarray
    f_k: np.ndarray


def _mbar_histogram(u_kn, n_k, x, width: float, min_count: int, mz: float, bulk_z: float, z0) -> _Histogram:
    from pymbar import FES

    lo = math.floor(x.min() / width) * width
    edges = lo + width * np.arange(math.ceil((x.max() - lo) / width + 1e-9) + 1)
    if edges[-1] <= x.max():
        edges = np.append(edges, edges[-1] + width)
    counts = np.histogram(x, bins=edges)[0]
    with _quiet_pymbar():
        fes = FES(u_kn, n_k, verbose=False, mbar_options={"solver_protocol": _SOLVER_PROTOCOL})
        fes.generate_fes(np.zeros_like(x), x, fes_type="histogram", histogram_parameters={"bin_edges": edges})
        centres_all = 0.5 * (edges[1:] + edges[:-1])
        keep = counts >= min_count
        if not keep.any():
            raise bad_argument("min_bin_count", "leaves no z bin with enough samples; lower it or sample more", min_count)
        in_bulk = keep & (np.abs(centres_all - mz) >= bulk_z)
        if not in_bulk.any():
            raise bad_argument(
                "windows",
                f"leave no bulk bin (|z − membrane| ≥ bulk_min_abs_z_nm = {bulk_z:g} nm) with min_bin_count = {min_count} "
                "uncorrelated samples, so the PMF has no bulk reference; add or lengthen windows there, widen "
                "bin_width_nm, lower min_bin_count or bulk_min_abs_z_nm",
                f"{len(z0)} windows at z0 {z0.min():g}…{z0.max():g} nm",
            )
        ref_bin = int(np.argmax(np.where(in_bulk, counts, -1)))
        res = fes.get_fes(
            centres_all[keep],
            reference_point="from-specified",
            fes_reference=centres_all[ref_bin],
            uncertainty_method="analytical",
        )
        overlap = np.asarray(fes.mbar.compute_overlap()["matrix"], dtype=float)
        f_k = np.asarray(fes.mbar.f_k, dtype=float)
    return _Histogram(
        edges, counts, keep, np.asarray(res["f_i"], dtype=float), np.asarray(res["df_i"], dtype=float), overlap, f_k
    )


def _lateral_correction_kt(x, r, u_kn, n_k, hist: _Histogram, r_flat: float, a_ref: float, edge_width_nm) -> np.ndarray:
    """−ln of each kept bin's lateral partition ratio (module docstring), from the samples' MBAR weights
    in the unbiased, laterally restrained state."""
    log_den = np.logaddexp.reduce(np.log(n_k)[:, None] + hist.f_k[:, None] - u_kn, axis=0)
    weight = np.exp(-(log_den - log_den.max()))
    de = float(edge_width_nm) if edge_width_nm is not None else min(0.15, max(r_flat, 1e-3) / 2)
    de = check_real("edge_width_nm", de, "must be a finite width > 0 nm", positive=True)
    inner = max(r_flat - de, 0.0)
    annulus = math.pi * (r_flat**2 - inner**2)
    bin_of = np.digitize(x, hist.edges) - 1
    kept_bins = np.flatnonzero(hist.keep)
    correction = np.zeros(kept_bins.size)
    for j, b in enumerate(kept_bins):
        sel = bin_of == b
        w, rr = weight[sel], r[sel]
        n_in = w[rr < r_flat].sum()
        n_wall = w[rr >= r_flat].sum()
        rho_edge = w[(rr >= inner) & (rr < r_flat)].sum() / annulus if annulus > 0 else 0.0
        correction[j] = -math.log((n_in + n_wall) / (n_in + rho_edge * (a_ref - math.pi * r_flat**2)))
    return correction


def _analysis_settings(first, temperature_k, bin_width_nm, bulk_min_abs_z_nm, overlap_threshold, min_bin_count, mz, lz):
    """:func:`analyze_windows`' settings, checked; T, the membrane plane and L_z default to the first window's."""
    t_k = check_real(
        "temperature_k",
        temperature_k if temperature_k is not None else _get(first, "temperature_k", 298.15),
        "must be a finite temperature > 0 K",
        positive=True,
    )
    width = check_real("bin_width_nm", bin_width_nm, "must be a finite width > 0 nm", positive=True)
    bulk_z = check_real("bulk_min_abs_z_nm", bulk_min_abs_z_nm, "must be a finite distance >= 0 nm", nonnegative=True)
    threshold = check_real("overlap_threshold", overlap_threshold, "must be a finite overlap in [0, 1)", nonnegative=True)
    if threshold >= 1:
        raise bad_argument("overlap_threshold", "must be a finite overlap in [0, 1)", overlap_threshold)
    min_count = _integer("min_bin_count", min_bin_count, 1)
    mz = float(mz if mz is not None else first.get("membrane_z_nm", 0.0))
    lz = lz if lz is not None else (np.asarray(first["box_nm"])[2] if "box_nm" in first else None)
    if lz is not None:
        lz = check_real("box_z_nm", lz, "must be a finite box height > 0 nm", positive=True)
    return t_k, width, bulk_z, threshold, min_count, mz, lz


def _extrema(z: np.ndarray, pmf: np.ndarray) -> tuple[float, float, float, float]:
    """(barrier, its z, well, its z) of the PMF off bulk; NaN when no bin is off bulk."""
    if not z.size:
        nan = float("nan")
        return nan, nan, nan, nan
    return float(np.max(pmf)), float(z[np.argmax(pmf)]), float(np.min(pmf)), float(z[np.argmin(pmf)])


def analyze_windows(
    windows,
    *,
    bin_width_nm: float = 0.05,
    temperature_k: float | None = None,
    reference_area_nm2: float | None = None,
    bulk_min_abs_z_nm: float = DEFAULT_BULK_MIN_ABS_Z_NM,
    membrane_z_nm: float | None = None,
    overlap_threshold: float = DEFAULT_OVERLAP_THRESHOLD,
    min_bin_count: int = 10,
    subsample: bool = True,
    edge_width_nm: float | None = None,
    box_z_nm: float | None = None,
) -> PMFResult:
    """PMF by MBAR from umbrella windows: a directory of ``window_<i>.npz``, or a sequence of
    paths or dicts with ``z_nm`` (samples), ``z0_nm``, ``k_z_kj_per_mol_nm2`` and, for the
    lateral correction, ``r_xy_nm``, ``flat_bottom_radius_nm``, ``k_xy_kj_per_mol_nm2`` (window
    files carry all of these; a dict without ``r_xy_nm`` gets no correction). See the module
    docstring for the method and conventions; only bins with at least ``min_bin_count``
    (uncorrelated) samples are reported.
    """
    data = _gather(windows)
    t_k, width, bulk_z, threshold, min_count, mz, lz = _analysis_settings(
        data[0], temperature_k, bin_width_nm, bulk_min_abs_z_nm, overlap_threshold, min_bin_count, membrane_z_nm, box_z_nm
    )
    kz = np.array(
        [check_real(f"windows[{k}].k_z_kj_per_mol_nm2", _get(d, "k_z_kj_per_mol_nm2", None), "must be > 0", positive=True)
         for k, d in enumerate(data)]
    )  # fmt: skip
    z0 = np.array([check_real(f"windows[{k}].z0_nm", d["z0_nm"], "must be a finite centre in nm") for k, d in enumerate(data)])
    order = np.argsort(z0, kind="stable")
    data = [data[i] for i in order]
    kz, z0 = kz[order], z0[order]
    lateral, r_flat, _, a_ref, a_r = _lateral_restraint(data, reference_area_nm2, t_k)

    x, r, n_k, g_k, n_raw = _uncorrelated_samples(data, lateral, subsample)
    dz = x[None, :] - z0[:, None]
    if lz is not None:
        dz -= lz * np.round(dz / lz)
    u_kn = (1.0 / _kt_kj_per_mol(t_k)) * 0.5 * kz[:, None] * dz**2
    hist = _mbar_histogram(u_kn, n_k, x, width, min_count, mz, bulk_z, z0)
    centres = 0.5 * (hist.edges[1:] + hist.edges[:-1])[hist.keep]
    correction = (
        _lateral_correction_kt(x, r, u_kn, n_k, hist, r_flat, a_ref, edge_width_nm) if lateral else np.zeros(centres.size)
    )

    pmf = hist.f_kt - correction
    bulk = np.abs(centres - mz) >= bulk_z
    pmf -= float(np.mean(pmf[bulk]))
    barrier, barrier_z, well, well_z = _extrema(centres[~bulk], pmf[~bulk])
    neighbour = np.array([hist.overlap[k, k + 1] for k in range(len(z0) - 1)])
    poor = tuple(sorted({j for k in range(len(z0) - 1) if neighbour[k] < threshold for j in (k, k + 1)}))
    return PMFResult(
        z_nm=centres,
        pmf_kt=pmf,
        pmf_kj_per_mol=pmf * _kt_kj_per_mol(t_k),
        dpmf_kt=hist.df_kt,
        pmf_uncorrected_kt=pmf + correction,
        restraint_correction_kt=correction,
        counts=hist.counts[hist.keep],
        temperature_k=t_k,
        reference_area_nm2=a_ref,
        restraint_area_nm2=a_r,
        bulk_min_abs_z_nm=bulk_z,
        membrane_z_nm=mz,
        barrier_kt=barrier,
        barrier_z_nm=barrier_z,
        well_kt=well,
        well_z_nm=well_z,
        z0_nm=z0,
        n_samples=np.asarray(n_raw),
        n_uncorrelated=n_k,
        statistical_inefficiency=np.asarray(g_k),
        overlap_matrix=hist.overlap,
        neighbour_overlap=neighbour,
        overlap_threshold=threshold,
        poor_overlap_windows=poor,
    )


# --------------------------------------------------------------------------- figure


def plot_pmf(result: PMFResult, *, label: str | None = None, units: str = "kj_per_mol", ax=None, color: str = "C0"):
    """A PMF plot in the style of the paper's Figure 2 insets: ΔG against z (nm) with the
    membrane plane dashed, an uncertainty band, bulk as zero. Returns a
    ``matplotlib.figure.Figure`` (no pyplot state); pass ``ax`` to draw into an existing axes
    (e.g. K⁺ and Na⁺ on one inset)."""
    from matplotlib.figure import Figure

    if units not in ("kj_per_mol", "kt"):
        raise bad_argument("units", "must be 'kj_per_mol' or 'kt'", units)
    scale = result.kt_kj_per_mol if units == "kj_per_mol" else 1.0
    if ax is None:
        fig = Figure(figsize=(3.2, 2.4), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    y = result.pmf_kt * scale
    dy = result.dpmf_kt * scale
    ax.fill_between(result.z_nm, y - dy, y + dy, color=color, alpha=0.25, linewidth=0)
    ax.plot(result.z_nm, y, color=color, linewidth=1.5, label=label)
    ax.axvline(result.membrane_z_nm, color="0.5", linestyle="--", linewidth=0.8)
    ax.axhline(0.0, color="0.7", linewidth=0.6)
    ax.set_xlabel("z (nm)")
    ax.set_ylabel("ΔG (kJ/mol)" if units == "kj_per_mol" else "ΔG (kT)")
    if label:
        ax.legend(frameon=False, fontsize="small")
    ax.tick_params(direction="in", top=True, right=True)
    return fig
