"""Force-field validation against the paper's single-salt facts (§2.1, Figure 2; issue 12).

A validation file (TOML, schema :data:`VALIDATION_SCHEMA`, e.g. ``md/validation/validation.toml``)
names a force-field option, one cell, the umbrella-window settings and a list of PMFs
(pore, salt, pulled ion). :func:`run_validation` runs the windows that are not yet recorded;
:func:`summarize_validation` turns whatever windows exist into the facts' verdicts.

Records (what accumulates in the repository)
    One ``window_<i>.npz`` per finished window under ``<records>/<option>/<pmf name>/`` (default
    ``records = md/validation/pmf``), written atomically by :func:`ionkinetics.md.run_window`:
    the ion's z and lateral r every ``sample_every_ps`` after the discarded equilibration, the
    window centre, force constants, restraint radius, box, temperature, seed, the force-field
    option, the platform and ``prov_*`` provenance (commit, OpenMM version, CPU threads, host,
    validation-file hash). Window ``i`` sits at ``z0 = (i − 1000)/100`` nm, so indices are stable
    when windows are added. A window already recorded with the same settings is skipped, so a
    campaign resumes on a fresh clone; one recorded with other settings is refused.

Convergence record (per PMF), as issue 12 defines converged
    ``equilibration_ps_per_window`` and ``sampling_ps_per_window`` (the minimum over windows;
    rules ≥ 50 ps and ≥ 200 ps), ``both_sides`` (windows reach |z| ≥ bulk on both sides of the
    sheet, every planned window recorded), ``block_half_max_diff_kt`` (the PMF from the first and
    from the second half of every window's samples, each zeroed in bulk; the largest difference
    over bins inside |z| < bulk where both have data; rule < 0.5 kT) and ``overlap_ok`` (MBAR
    neighbour overlap ≥ the threshold). A PMF missing any of these is reported ``converged:
    false`` with its partial numbers; a fact whose PMFs are not converged never ``holds``.

Facts (the rules are this package's reading of the paper's words, stated in each fact)
    * crown6 Na⁺ carrier: its pore-binding constant K_b (M⁻¹) times 1 M is < 1 (the pore is
      free more than half the time in 1 M NaCl) and the PMF nowhere inside bulk exceeds
      :data:`CARRIER_MAX_BARRIER_KT` = 3 kT (a carrier is neither a plug nor blocked).
    * crown6 K⁺ trapped, deeper well than Na⁺: W_min(K⁺) < W_min(Na⁺) − 1 kT and K_b(K⁺)·0.5 M > 1.
    * B3N K⁺ shallow centre minimum, carrier: the PMF minimum lies at |z| ≤ 0.15 nm, −3 kT ≤ W_min
      < 0, K_b·1 M < 1, and no maximum above 3 kT.
    * B3N Na⁺ deep centre minimum behind a dehydration barrier: minimum at |z| ≤ 0.15 nm with
      W_min < −3 kT, and a maximum ≥ +1 kT between the centre and bulk on each side.
    * B3N Rb⁺ steric peak with minima on either side: W(centre) is the maximum of |z| ≤ 0.15 nm
      and on each side a minimum ≤ W(centre) − 1 kT lies at 0.15 < |z| < bulk.

    K_b = N_A·A_ref·∫_site [exp(−W(z)/kT) − 1] dz over the pore region |z| < ``site_half_width_nm``
    (0.3 nm), with A_ref the membrane area per pore (the PMF's lateral footing): the excess
    (Gibbs) binding integral, zero for a flat PMF, so K_b·c is the mean number of ions the pore
    holds beyond bulk at molarity c; errors propagate the MBAR bin errors (first order).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform as _platform
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_real
from .._io import git_commit, load_toml_as, write_atomic, write_json_atomic
from ..constants import AVOGADRO_PER_MOL
from ._adaptive import AdaptivePlan, _mean_force, _trapezoid_from_bulk, convergence_report
from ._forcefield import FORCEFIELD_OPTIONS
from ._pmf import BOLTZMANN_KJ_PER_MOL_K, WindowSettings, analyze_windows, load_window, run_window

__all__ = [
    "VALIDATION_SCHEMA",
    "ValidationError",
    "ValidationPlan",
    "estimate_wall_hours",
    "load_validation",
    "parse_validation",
    "run_validation",
    "run_validation_concurrently",
    "summarize_validation",
    "window_index_for_z",
]

VALIDATION_SCHEMA = "ionkinetics.md-validation/1"
_WINDOW_INDEX_OFFSET = 1000
_NM3_PER_LITRE = 1e24
SITE_HALF_WIDTH_NM = 0.3
CENTRE_HALF_WIDTH_NM = 0.15
# "a minimum at the pore center" (§2.1): the centre itself lies within this of the well, so an off-axis
# well at |z| ≈ 0.15 nm behind a central wall (what frozen-sheet B3N K+ shows) does not pass as one
CENTRE_WITHIN_KT = 1.0
# A carrier's PMF may not rise above this inside bulk: at the paper's 350 pS the crossing rate is within a few
# e-folds of the diffusion-limited access rate, which a barrier of more than a few kT would forbid.
CARRIER_MAX_BARRIER_KT = 3.0
RULES = {
    "equilibration_ps_per_window": 50.0,
    "sampling_ps_per_window": 200.0,
    "block_half_max_diff_kt": 0.5,
}


class ValidationError(ValueError):
    """A validation file that breaks the schema; the message names the field."""


def charge_set_for(option: str, pore: str):
    """The charge set of ``option`` that a ``pore``'s membrane uses (crown for crown6, hBN otherwise)."""
    o = FORCEFIELD_OPTIONS[option]
    return o.crown if pore == "crown6" else o.hbn


def membrane_model_for(option: str, pore: str) -> str:
    """The records folder name of ``option``'s model of a ``pore``'s membrane: its charge set, and for an
    hBN sheet that moves, ``+<sheet model>`` (a frozen sheet keeps the plain charge-set name)."""
    o = FORCEFIELD_OPTIONS[option]
    name = charge_set_for(option, pore).name
    if pore == "crown6":
        return name
    name = name if o.hbn_sheet == "frozen" else f"{name}+{o.hbn_sheet}"
    return name if o.hbn_edge_lj == "won-aluru-2007" else f"{name}+edge-{o.hbn_edge_lj}"


def window_index_for_z(z0_nm: float) -> int:
    """Stable window index of a centre: ``round(100·z0) + 1000`` (z0 on a 0.01 nm grid)."""
    i = round(100.0 * float(z0_nm))
    if abs(i - 100.0 * float(z0_nm)) > 1e-6:
        raise ValueError(f"z0_nm must lie on the 0.01 nm grid; got {z0_nm!r}")
    return int(i) + _WINDOW_INDEX_OFFSET


@dataclasses.dataclass(frozen=True)
class PMFPlan:
    """One ``[[pmf]]`` table: a PMF's name, its system id, the pulled ion and the force-field option."""

    name: str
    system: str
    ion: str
    forcefield_option: str

    @property
    def pore(self) -> str:
        """The pore of the system id (the part before ``:``)."""
        return self.system.split(":")[0]


@dataclasses.dataclass(frozen=True)
class ValidationPlan:
    """A validated validation file: the force-field option, the cell and seed, the window settings and centres (nm),
    the bulk region and histogram bins of the analysis, the PMFs to run, and the optional adaptive plan."""

    forcefield_option: str
    cell: dict
    seed: int
    settings: WindowSettings
    z_max_nm: float
    window_spacing_nm: float
    bulk_min_abs_z_nm: float
    bin_width_nm: float
    min_bin_count: int
    pmfs: tuple[PMFPlan, ...]
    raw: dict
    path: str | None
    sides: tuple[str, ...] = ("+z", "-z")
    adaptive: AdaptivePlan | None = None  # [adaptive]: the one-sided adaptive plan (ionkinetics.md._adaptive)

    def adaptive_plan(self) -> AdaptivePlan:
        """The file's [adaptive] plan; refused where it has none (the steps that run adaptive plans)."""
        if self.adaptive is None:
            raise ValidationError(f"this step runs [adaptive] plans; the validation file (sha256 {self.digest}) has none")
        return self.adaptive

    @property
    def centres_nm(self) -> np.ndarray:
        """Window centres in run order: 0, +s, …, +z_max, then −s, …, −z_max (an [adaptive] plan: its
        +z grid, then its mirror windows; windows it adds where overlap is poor come on top)."""
        if self.adaptive is not None:
            return np.array(self.adaptive.centres_nm)
        n = round(self.z_max_nm / self.window_spacing_nm)
        pos = [round(k * self.window_spacing_nm, 6) for k in range(n + 1)]
        out = pos if "+z" in self.sides else [0.0]
        return np.array(out + ([-z for z in pos[1:]] if "-z" in self.sides else []))

    def records_dir(self, pmf: PMFPlan, root) -> Path:
        """``root/<charge set>/<pmf name>``: the option's crown set for crown6, its hBN set for hBN
        pores, so options that give a membrane the same charges share its windows."""
        return Path(root) / membrane_model_for(pmf.forcefield_option, pmf.pore) / pmf.name

    @property
    def digest(self) -> str:
        """First 12 hex digits of the SHA-256 of the raw file's contents (recorded with every window)."""
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True).encode()).hexdigest()[:12]


def _num(table: str, raw: dict, key: str, default=None, *, positive=True) -> float:
    rule = "must be a finite number > 0"
    return check_real(
        f"[{table}].{key}", raw.get(key, default), rule, positive=positive, error=ValidationError, numpy_scalars=False
    )


def _steps(table: str, key: str, ps: float, dt_fs: float) -> int:
    steps = ps * 1000.0 / dt_fs
    if abs(steps - round(steps)) > 1e-6:
        raise ValidationError(f"[{table}].{key} must be a whole number of {dt_fs:g} fs steps; got {ps!r} ps")
    return round(steps)


def _window_plan(w: dict, seed: int) -> tuple[WindowSettings, float, float, tuple[str, ...]]:
    """``[windows]``: (settings, z_max, spacing, sides), checked."""
    allowed = {"z_max_nm", "spacing_nm", "k_z_kj_per_mol_nm2", "flat_bottom_radius_nm", "k_xy_kj_per_mol_nm2", "sides",
               "timestep_fs", "equilibration_ps", "sampling_ps", "sample_every_ps", "platform", "temperature_k"}  # fmt: skip
    if set(w) - allowed:
        raise ValidationError(f"[windows] has unknown fields {sorted(set(w) - allowed)}; allowed {sorted(allowed)}")
    sides = w.get("sides", ["+z", "-z"])
    if not isinstance(sides, list) or not sides or set(sides) - {"+z", "-z"} or len(set(sides)) != len(sides):
        raise ValidationError(f'[windows].sides must be a list of "+z" and/or "-z"; got {sides!r}')
    dt = _num("windows", w, "timestep_fs", 2.0)
    z_max = _num("windows", w, "z_max_nm", 1.5)
    spacing = _num("windows", w, "spacing_nm", 0.1)
    if abs(z_max / spacing - round(z_max / spacing)) > 1e-6:
        raise ValidationError(f"[windows].z_max_nm must be a whole number of spacing_nm = {spacing:g}; got {z_max!r}")
    for z in (spacing, z_max):
        try:
            window_index_for_z(z)
        except ValueError as exc:
            raise ValidationError(f"[windows]: {exc}") from None
    try:
        settings = WindowSettings(
            k_z_kj_per_mol_nm2=_num("windows", w, "k_z_kj_per_mol_nm2", 2000.0),
            flat_bottom_radius_nm=_num("windows", w, "flat_bottom_radius_nm", 0.3),
            k_xy_kj_per_mol_nm2=_num("windows", w, "k_xy_kj_per_mol_nm2", 1000.0),
            equilibration_steps=_steps("windows", "equilibration_ps", _num("windows", w, "equilibration_ps", 50.0), dt),
            sampling_steps=_steps("windows", "sampling_ps", _num("windows", w, "sampling_ps", 200.0), dt),
            sample_every_steps=_steps("windows", "sample_every_ps", _num("windows", w, "sample_every_ps", 0.2), dt),
            timestep_fs=dt,
            temperature_k=_num("windows", w, "temperature_k", 298.15),
            seed=seed,
            platform=str(w.get("platform", "auto")),
        )
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ValidationError):
            raise
        raise ValidationError(f"[windows]: {exc}") from None
    return settings, z_max, spacing, tuple(sides)


def _pmf_plans(raw: dict, option: str) -> list[PMFPlan]:
    """``[[pmf]]``: one plan per table, each a cation of its system under a known force-field option."""
    from .. import species as _species

    pmfs = []
    for k, p in enumerate(raw.get("pmf", [])):
        if (
            not isinstance(p, dict)
            or set(p) - {"name", "system", "ion", "forcefield_option"}
            or not {"name", "system", "ion"} <= set(p)
        ):
            raise ValidationError(f"[[pmf]] {k} must have name, system, ion (and optionally forcefield_option); got {p!r}")
        try:
            sid = _species.parse_system_id(p["system"])
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"[[pmf]] {k}.system: {exc}") from None
        if p["ion"] not in sid.cation_molar:
            raise ValidationError(f"[[pmf]] {k}.ion must be a cation of {sid} ({', '.join(sid.cation_molar)}); got {p['ion']!r}")
        opt = p.get("forcefield_option", option)
        if opt not in FORCEFIELD_OPTIONS:
            raise ValidationError(
                f"[[pmf]] {k}.forcefield_option must be one of {', '.join(sorted(FORCEFIELD_OPTIONS))}; got {opt!r}"
            )
        name = p["name"]
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise ValidationError(f"[[pmf]] {k}.name must be a plain directory name; got {name!r}")
        pmfs.append(PMFPlan(name, str(sid), p["ion"], opt))
    return pmfs


def parse_validation(raw: dict, *, path: str | None = None) -> ValidationPlan:
    """Validate a validation mapping (as read from TOML) into a :class:`ValidationPlan`; raises :class:`ValidationError`."""
    if raw.get("schema") != VALIDATION_SCHEMA:
        raise ValidationError(f"field 'schema' must be {VALIDATION_SCHEMA!r}; got {raw.get('schema')!r}")
    option = raw.get("forcefield_option")
    if option not in FORCEFIELD_OPTIONS:
        raise ValidationError(f"field 'forcefield_option' must be one of {', '.join(sorted(FORCEFIELD_OPTIONS))}; got {option!r}")
    cell = dict(raw.get("cell", {}))
    unknown = set(cell) - {"spacing_nm", "cells", "box_z_nm", "seed", "cutoff_nm"}
    if unknown:
        raise ValidationError(
            f"[cell] has unknown fields {sorted(unknown)}; allowed spacing_nm, cells, box_z_nm, seed, cutoff_nm"
        )
    if "cutoff_nm" in cell:
        cell["cutoff_nm"] = _num("cell", cell, "cutoff_nm")
    seed = cell.pop("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValidationError(f"[cell].seed must be an integer >= 0; got {seed!r}")
    if "cells" in cell:
        cell["cells"] = tuple(cell["cells"])
    w = dict(raw.get("windows", {}))
    settings, z_max, spacing, sides = _window_plan(w, seed)
    a = dict(raw.get("analysis", {}))
    if set(a) - {"bulk_min_abs_z_nm", "bin_width_nm", "min_bin_count"}:
        raise ValidationError(
            f"[analysis] has unknown fields {sorted(set(a) - {'bulk_min_abs_z_nm', 'bin_width_nm', 'min_bin_count'})}"
        )
    bulk = _num("analysis", a, "bulk_min_abs_z_nm", 1.2)
    if bulk >= z_max:
        raise ValidationError(f"[analysis].bulk_min_abs_z_nm must be below [windows].z_max_nm = {z_max:g}; got {bulk!r}")
    min_count = a.get("min_bin_count", 10)
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise ValidationError(f"[analysis].min_bin_count must be an integer >= 1; got {min_count!r}")
    pmfs = _pmf_plans(raw, option)
    if not pmfs:
        raise ValidationError("needs at least one [[pmf]] table")
    adaptive = _adaptive_table(raw.get("adaptive"), bulk, settings)
    if len({(p.forcefield_option, p.name) for p in pmfs}) != len(pmfs):
        raise ValidationError("[[pmf]] names must be unique per force-field option")
    return ValidationPlan(option, cell, seed, settings, z_max, spacing, bulk, _num("analysis", a, "bin_width_nm", 0.05),
                          int(min_count), tuple(pmfs), raw, path, sides, adaptive)  # fmt: skip


_ADAPTIVE_FIELDS = (
    "z_max_nm", "spacing_nm", "inner_spacing_nm", "inner_z_max_nm", "mirror_z_nm", "sigma_target_kt", "overlap_min",
    "chunk_ps", "min_sampling_ps", "max_sampling_ps", "max_added_windows", "ions_per_cell",
)  # fmt: skip


def _adaptive_table(t, bulk: float, settings: WindowSettings) -> AdaptivePlan | None:
    """``[adaptive]``: the fields of :class:`~ionkinetics.md._adaptive.AdaptivePlan` (the rest comes from
    ``[windows]``: k_z, equilibration, sample interval, temperature; and ``[analysis]``: the bulk)."""
    if t is None:
        return None
    if not isinstance(t, dict) or set(t) - set(_ADAPTIVE_FIELDS):
        raise ValidationError(f"[adaptive] has unknown fields {sorted(set(t) - set(_ADAPTIVE_FIELDS))}; "
                              f"allowed {', '.join(_ADAPTIVE_FIELDS)}")  # fmt: skip
    dt_ps = settings.timestep_fs / 1000.0
    kw = dict(t)
    if "mirror_z_nm" in kw:
        kw["mirror_z_nm"] = tuple(kw["mirror_z_nm"])
    try:
        return AdaptivePlan(**kw, bulk_min_abs_z_nm=bulk, k_z_kj_per_mol_nm2=settings.k_z_kj_per_mol_nm2,
                            equilibration_ps=settings.equilibration_steps * dt_ps,
                            sample_every_ps=settings.sample_every_steps * dt_ps,
                            temperature_k=settings.temperature_k)  # fmt: skip
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"[adaptive]: {exc}") from None


def load_validation(path) -> ValidationPlan:
    """Read and validate a validation TOML file (:func:`parse_validation`)."""
    return load_toml_as(path, "validation file", ValidationError, parse_validation)


def _build(plan: ValidationPlan, pmf: PMFPlan):
    from ._system import build_system

    built = build_system(pmf.system, seed=plan.seed, forcefield_option=pmf.forcefield_option, **plan.cell)
    matches = [int(i) for i, sp in zip(built.ion_indices, built.ion_species, strict=True) if sp == pmf.ion]
    return built, matches[0]


def _provenance(plan: ValidationPlan) -> dict:
    import openmm

    return {
        "commit": git_commit() or "unknown",
        "openmm_version": openmm.__version__,
        "cpu_threads": os.environ.get("OPENMM_CPU_THREADS", "default"),
        "host": _platform.node(),
        "validation_file_sha256_12": plan.digest,
    }


def _run_adaptive_pmf(plan: ValidationPlan, pmf: PMFPlan, records_root, log=None) -> dict:
    """One PMF's adaptive plan in OpenMM (the farthest pore pair holds the two restrained ions)."""
    from ._adaptive import OpenMMUmbrellaSampler, partner_pores, run_adaptive_plan

    a = plan.adaptive_plan()
    built, _ = _build(plan, pmf)
    ions = [int(i) for i, sp in zip(built.ion_indices, built.ion_species, strict=True) if sp == pmf.ion][: a.ions_per_cell]
    pores = partner_pores(built) if a.ions_per_cell == 2 else (0,)
    s = plan.settings
    sampler = OpenMMUmbrellaSampler(built, ions, np.asarray(built.pore_centres_nm)[list(pores), :2], a,
                                    timestep_fs=s.timestep_fs, flat_bottom_radius_nm=s.flat_bottom_radius_nm,
                                    k_xy_kj_per_mol_nm2=s.k_xy_kj_per_mol_nm2, friction_per_ps=s.friction_per_ps,
                                    seed=plan.seed + 1, platform=s.platform)  # fmt: skip
    return run_adaptive_plan(a, sampler, plan.records_dir(pmf, records_root), meta=_provenance(plan), log=log)


def _adaptive_worker(path: str, name: str, records_root: str) -> str:
    """A worker process's job: one PMF of the validation file at ``path`` (one OpenMM thread on a CPU;
    several such processes share one GPU)."""
    import sys
    import time as _time

    plan = load_validation(path)
    (pmf,) = [p for p in plan.pmfs if p.name == name]

    def log(msg):
        print(f"{_time.strftime('%H:%M:%S')} {name}: {msg}", file=sys.stderr, flush=True)

    rep = _run_adaptive_pmf(plan, pmf, records_root, log=log)
    return f"{name}: converged={rep['converged']} sigma_w_kt_max={rep['sigma_w_kt_max']:.2f}"


def estimate_wall_hours(plan: ValidationPlan, names, ns_per_day_per_process: float, workers: int) -> float:
    """An upper bound on the wall time of ``names``'s adaptive plans at the cap: every window run to
    ``max_sampling_ps`` plus its equilibration, two windows per run, ``workers`` processes at once."""
    a = plan.adaptive_plan()
    runs = math.ceil(len(a.plus_centres_nm) / a.ions_per_cell) + math.ceil(len(a.mirror_z_nm) / a.ions_per_cell)
    ns_per_pmf = runs * (a.max_sampling_ps + a.equilibration_ps) / 1000.0
    rounds = math.ceil(len(names) / max(1, workers))
    return rounds * ns_per_pmf / ns_per_day_per_process * 24.0


def run_validation_concurrently(plan: ValidationPlan, records_root, *, workers: int, only=None, log=print) -> list[str]:
    """Run the adaptive plans of every PMF (or ``only`` those) at once, ``workers`` processes (a CPU: one
    OpenMM thread each, one per free core; a GPU: several simulations sharing the device). Each worker
    records windows as it goes, so an interrupted run resumes. Returns one line per PMF."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if plan.adaptive is None:
        raise ValueError("plan must have an [adaptive] table to run concurrently (the fixed-grid queue runs in order)")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1; got {workers!r}")
    if plan.path is None:
        raise ValueError("plan must come from a file (load_validation) so worker processes can read it")
    names = [p.name for p in plan.pmfs if not only or p.name in only]
    os.environ.setdefault("OPENMM_CPU_THREADS", "1")
    # spawn, not fork: a forked child of a process whose JAX or OpenMM thread pools are running can
    # inherit a held lock and wait on it forever (it hung CI's run of this path)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_adaptive_worker, str(plan.path), n, str(records_root)) for n in names]
        out = []
        for f in futures:
            out.append(f.result())
            log(out[-1])
    return out


def run_validation(plan: ValidationPlan, records_root, *, only=None, max_windows: int | None = None, progress=None) -> int:
    """Run the plan's missing windows in order (PMFs as listed, windows as :attr:`ValidationPlan.centres_nm`);
    ``only`` restricts to PMF names, ``max_windows`` stops after that many new windows. Returns the number run.
    An [adaptive] plan runs each PMF's plan in turn (``max_windows`` does not apply; see
    :func:`run_validation_concurrently` for all at once)."""
    names = {p.name for p in plan.pmfs}
    for n in only or ():
        if n not in names:
            raise ValueError(f"only must name PMFs of the validation file ({', '.join(sorted(names))}); got {n!r}")
    if plan.adaptive is not None:
        done = 0
        for pmf in plan.pmfs:
            if only and pmf.name not in only:
                continue
            before = len(list(plan.records_dir(pmf, records_root).glob("window_*.npz")))
            _run_adaptive_pmf(plan, pmf, records_root, log=lambda m, p=pmf: print(f"{p.name}: {m}", flush=True))
            done += len(list(plan.records_dir(pmf, records_root).glob("window_*.npz"))) - before
        return done
    prov = _provenance(plan)
    ran = 0
    for pmf in plan.pmfs:
        if only and pmf.name not in only:
            continue
        out = plan.records_dir(pmf, records_root)
        todo = [z for z in plan.centres_nm if not (out / f"window_{window_index_for_z(z)}.npz").exists()]
        if not todo:
            continue
        built, ion_index = _build(plan, pmf)
        for z in plan.centres_nm:
            if max_windows is not None and ran >= max_windows:
                return ran
            path, did = run_window(built, ion_index, window_index_for_z(z), float(z), plan.settings, out, provenance=prov)
            if did:
                ran += 1
                if progress is not None:
                    progress(pmf, float(z), path)
    return ran


# --------------------------------------------------------------------------- analysis


def _kt(t_k: float) -> float:
    return BOLTZMANN_KJ_PER_MOL_K * t_k


def _half(windows: list[dict], which: int) -> list[dict]:
    out = []
    for d in windows:
        n = len(d["z_nm"]) // 2
        sl = slice(0, n) if which == 0 else slice(n, 2 * n)
        e = dict(d)
        e["z_nm"] = np.asarray(d["z_nm"])[sl]
        e["r_xy_nm"] = np.asarray(d["r_xy_nm"])[sl]
        out.append(e)
    return out


def binding_constant_per_molar(z_nm, pmf_kt, dpmf_kt, reference_area_nm2: float, *, half_width_nm: float = SITE_HALF_WIDTH_NM):
    """K_b (M⁻¹) = N_A·A_ref·∫_{|z|<h} (exp(−W) − 1) dz, and its first-order error from the bin errors;
    bins are the PMF's (uniform width); missing bins inside the site count as unsampled (W = +∞)."""
    z = np.asarray(z_nm, dtype=float)
    w = np.asarray(pmf_kt, dtype=float)
    dw = np.asarray(dpmf_kt, dtype=float)
    if z.size < 2:
        return float("nan"), float("nan")
    width = float(np.min(np.diff(z)))
    site = np.abs(z) < half_width_nm
    terms = np.exp(-w[site]) * width * reference_area_nm2
    k_nm3 = float(terms.sum()) - site.sum() * width * reference_area_nm2
    dk_nm3 = float(np.sqrt(np.sum((terms * dw[site]) ** 2)))
    scale = AVOGADRO_PER_MOL / _NM3_PER_LITRE
    return k_nm3 * scale, dk_nm3 * scale


def _analyse_into(rec: dict, windows: list[dict], plan: ValidationPlan, z0: np.ndarray) -> None:
    """The PMF of the recorded windows (once one reaches bulk) and its two block halves, into ``rec``."""
    bulk = plan.bulk_min_abs_z_nm
    reach = z0.size and (z0.max() >= bulk or z0.min() <= -bulk)
    if len(windows) >= 2 and reach:
        kw: dict[str, Any] = dict(bin_width_nm=plan.bin_width_nm, bulk_min_abs_z_nm=bulk, min_bin_count=plan.min_bin_count)
        try:
            res = analyze_windows(windows, **kw)
        except ValueError as exc:
            rec["problems"].append(f"analysis: {exc}")
            res = None
        if res is not None:
            k_b, dk_b = binding_constant_per_molar(res.z_nm, res.pmf_kt, res.dpmf_kt, res.reference_area_nm2)
            rec["result"] = {**res.summary(), "z_nm": res.z_nm.tolist(), "pmf_kt": res.pmf_kt.tolist(),
                             "dpmf_kt": res.dpmf_kt.tolist(), "binding_constant_per_molar": k_b,
                             "binding_constant_err_per_molar": dk_b}  # fmt: skip
            rec["overlap_ok"] = bool(res.overlap_ok)
            rec["_result"] = res
            try:
                h0, h1 = (analyze_windows(_half(windows, i), **kw) for i in (0, 1))
                common = np.intersect1d(np.round(h0.z_nm, 6), np.round(h1.z_nm, 6))
                common = common[np.abs(common) < bulk]
                if common.size:
                    a = h0.pmf_kt[np.isin(np.round(h0.z_nm, 6), common)]
                    b = h1.pmf_kt[np.isin(np.round(h1.z_nm, 6), common)]
                    rec["block_half_max_diff_kt"] = float(np.max(np.abs(a - b)))
            except ValueError as exc:
                rec["problems"].append(f"block halves: {exc}")
    else:
        rec["problems"].append("no window reaches bulk yet (or fewer than two windows): no PMF")


def _adaptive_record(plan: ValidationPlan, pmf: PMFPlan, records_root) -> dict:
    """The issue-23 rule on an [adaptive] PMF's windows, and its profile in the form the facts read: the
    one-sided W(⟨z⟩) mirrored to −z (the sheet's symmetry, which the mirror check tests) on a 0.01 nm grid."""
    out = plan.records_dir(pmf, records_root)
    windows = [load_window(p) for p in sorted(out.glob("window_*.npz"))]
    a = plan.adaptive_plan()
    rec: dict = {"name": pmf.name, "pore": pmf.pore, "system": pmf.system, "ion": pmf.ion,
                 "forcefield_option": pmf.forcefield_option,
                 "charge_set": charge_set_for(pmf.forcefield_option, pmf.pore).as_dict(), "records_dir": str(out),
                 "plan": "adaptive", "windows_planned": len(a.centres_nm), "windows_recorded": len(windows),
                 "z0_recorded_nm": sorted(float(d["z0_nm"]) for d in windows), "result": None, "converged": False,
                 "problems": []}  # fmt: skip
    rec["cpu_hours"] = sum(float(d.get("wall_s", 0.0)) for d in windows) / 3600.0
    rec["simulated_ns"] = sum(float(d.get("simulated_ps", 0.0)) for d in windows) / 1000.0
    if rec["cpu_hours"] > 0:
        rec["ns_per_day"] = rec["simulated_ns"] / rec["cpu_hours"] * 24.0
    if sum(float(d["z0_nm"]) >= 0 for d in windows) < 2:
        rec["problems"].append("fewer than two +z windows: no PMF")
        return rec
    rep = convergence_report(windows, a)
    for key in ("sigma_w_kt_max", "block_halves_within_2sigma", "min_overlap", "mirror_check_holds", "converged",
                "block_halves", "mirror", "mbar"):  # fmt: skip
        rec[key] = rep[key]
    prof = rep["profile"]
    zm, w, sw = (np.asarray(prof[k]) for k in ("z_mean_nm", "w_kt", "sigma_w_kt"))
    grid = np.round(np.arange(0.0, float(zm.max()) + 1e-9, 0.01), 6)
    wg, sg = np.interp(grid, zm, w), np.interp(grid, zm, sw)
    z_full = np.concatenate([-grid[:0:-1], grid])
    w_full, s_full = np.concatenate([wg[:0:-1], wg]), np.concatenate([sg[:0:-1], sg])
    bulk = plan.bulk_min_abs_z_nm
    inner = np.abs(z_full) < bulk
    area = float(windows[0].get("reference_area_nm2", float("nan")))
    k_b, dk_b = binding_constant_per_molar(z_full, w_full, s_full, area) if math.isfinite(area) else (float("nan"),) * 2
    rec["result"] = {"z_nm": z_full.tolist(), "pmf_kt": w_full.tolist(), "dpmf_kt": s_full.tolist(),
                     "barrier_kt": float(w_full[inner].max()), "barrier_z_nm": float(z_full[inner][np.argmax(w_full[inner])]),
                     "well_kt": float(w_full[inner].min()), "well_z_nm": float(z_full[inner][np.argmin(w_full[inner])]),
                     "binding_constant_per_molar": k_b, "binding_constant_err_per_molar": dk_b,
                     "profile_one_sided": prof,
                     "estimator": "umbrella integration (mean force), trapezoid from bulk"}  # fmt: skip
    return rec


def _pmf_record(plan: ValidationPlan, pmf: PMFPlan, records_root) -> dict:
    if plan.adaptive is not None:
        return _adaptive_record(plan, pmf, records_root)
    out = plan.records_dir(pmf, records_root)
    paths = sorted(out.glob("window_*.npz"), key=lambda p: int(p.stem.split("_")[1]))
    windows = [load_window(p) for p in paths]
    planned = {window_index_for_z(z) for z in plan.centres_nm}
    have = {int(p.stem.split("_")[1]) for p in paths}
    rec: dict = {
        "name": pmf.name,
        "pore": pmf.pore,
        "system": pmf.system,
        "ion": pmf.ion,
        "forcefield_option": pmf.forcefield_option,
        "charge_set": charge_set_for(pmf.forcefield_option, pmf.pore).as_dict(),
        "records_dir": str(out),
        "windows_planned": len(planned),
        "windows_recorded": len(have & planned),
        "z0_recorded_nm": sorted(float(d["z0_nm"]) for d in windows),
    }
    if windows:
        dt_ps = np.array([float(d["settings_timestep_fs"]) / 1000.0 for d in windows])
        eq = np.array([d["settings_equilibration_steps"] for d in windows]) * dt_ps
        samp = np.array([d["settings_sampling_steps"] for d in windows]) * dt_ps
        rec["equilibration_ps_per_window"] = float(eq.min())
        rec["sampling_ps_per_window"] = float(samp.min())
        rec["sampled_ps_total"] = float(samp.sum())
        rec["wall_s_total"] = float(sum(float(d.get("wall_s", 0.0)) for d in windows))
        steps = sum(int(d["settings_equilibration_steps"]) + int(d["settings_sampling_steps"]) for d in windows)
        if rec["wall_s_total"] > 0:
            rec["ns_per_day"] = steps * float(dt_ps[0]) / 1000.0 / rec["wall_s_total"] * 86400.0
        rec["platforms"] = sorted({str(d.get("platform")) for d in windows})
        rec["cpu_threads"] = sorted({str(d.get("prov_cpu_threads", "unknown")) for d in windows})
        rec["commits"] = sorted({str(d.get("prov_commit", "unknown")) for d in windows})
    else:
        rec["equilibration_ps_per_window"] = rec["sampling_ps_per_window"] = 0.0
    z0 = np.array(rec["z0_recorded_nm"])
    bulk = plan.bulk_min_abs_z_nm
    rec["both_sides"] = bool(len(planned - have) == 0 and z0.size and z0.min() <= -bulk and z0.max() >= bulk)
    rec["sides_reaching_bulk"] = [
        s for s, ok in (("-z", z0.size and z0.min() <= -bulk), ("+z", z0.size and z0.max() >= bulk)) if ok
    ]
    rec["result"] = None
    rec["block_half_max_diff_kt"] = None
    rec["overlap_ok"] = False
    rec["problems"] = []
    _analyse_into(rec, windows, plan, z0)
    if len(windows) >= 2:
        rec["mean_force"] = _mean_force_profile(windows, bulk)
    rec["converged"] = bool(
        rec["both_sides"]
        and rec["equilibration_ps_per_window"] >= RULES["equilibration_ps_per_window"]
        and rec["sampling_ps_per_window"] >= RULES["sampling_ps_per_window"]
        and rec["block_half_max_diff_kt"] is not None
        and rec["block_half_max_diff_kt"] < RULES["block_half_max_diff_kt"]
        and rec["overlap_ok"]
    )
    return rec


def _mean_force_profile(windows: list[dict], bulk: float) -> dict:
    """Umbrella integration's first moment, a binning-free cross-check of the MBAR profile: each
    window's mean force dW/dz ≈ k·(z0 − ⟨z⟩) at ⟨z⟩ (kT/nm, exact for a locally linear PMF) with its
    standard error (:func:`~ionkinetics.md._adaptive._mean_force`), and, per side of the sheet (windows
    with z0 ≥ 0 and z0 ≤ 0; the z0 = 0 window belongs to both), W(⟨z⟩) by the trapezoid rule from
    the outermost window inwards (:func:`~ionkinetics.md._adaptive._trapezoid_from_bulk`: kT, zero at
    the mean of that side's windows with |⟨z⟩| ≥ ``bulk`` where any, else at its outermost window)."""
    rows = []
    for d in windows:
        k = float(d["settings_k_z_kj_per_mol_nm2"]) / _kt(float(d.get("settings_temperature_k", 298.15)))
        z0 = float(d["z0_nm"])
        rows.append((z0, *_mean_force(np.asarray(d["z_nm"], dtype=float), z0, k)))
    out = {}
    for side, keep in (("+z", lambda z0: z0 >= 0), ("-z", lambda z0: z0 <= 0)):
        sel = sorted((r for r in rows if keep(r[0])), key=lambda r: -abs(r[0]))  # outermost first
        if len(sel) < 2:
            continue
        z0s, zm, f, sf = (np.array(c) for c in zip(*sel, strict=True))
        w, _ = _trapezoid_from_bulk(zm, f, sf, bulk)
        out[side] = {"z0_nm": z0s[::-1].tolist(), "z_mean_nm": zm[::-1].tolist(), "mean_force_kt_per_nm": f[::-1].tolist(),
                     "mean_force_err_kt_per_nm": sf[::-1].tolist(), "w_kt": w[::-1].tolist()}  # fmt: skip
    return out


def _convergence(rec: dict) -> dict:
    keys = ("sampling_ps_per_window", "equilibration_ps_per_window", "block_half_max_diff_kt", "both_sides", "overlap_ok",
            "sigma_w_kt_max", "block_halves_within_2sigma", "min_overlap", "mirror_check_holds", "simulated_ns",
            "cpu_hours", "windows_recorded", "windows_planned", "converged")  # fmt: skip
    return {"pmf": rec["name"], **{k: rec[k] for k in keys if k in rec}}


def _profile(rec: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, W, σ_W) of a PMF record's result; the facts measure only records that have one."""
    r = rec.get("result")
    if not r:
        raise ValueError(f"PMF {rec.get('name')!r} has no result to measure")
    return np.asarray(r["z_nm"]), np.asarray(r["pmf_kt"]), np.asarray(r["dpmf_kt"])


def _fact(name, pore, ion, rule, recs, measure):
    """measure(profiles) -> (quantity dict, holds or None)."""
    fact = {"name": name, "pore": pore, "ion": ion, "rule": rule, "pmfs": [_convergence(r) for r in recs]}
    if any(r.get("result") is None for r in recs):
        fact.update(measured=None, holds=False, status="no PMF yet")
        return fact
    measured, ok = measure(recs)
    converged = all(r["converged"] for r in recs)
    fact.update(measured=measured, holds=bool(ok and converged), rule_met_by_partial_data=bool(ok))
    fact["status"] = "converged" if converged else "NOT converged (partial PMF; holds is false until it is)"
    return fact


def _side_extrema(z, w, bulk):
    out = {}
    for side, sel in (("+z", (z > CENTRE_HALF_WIDTH_NM) & (z < bulk)), ("-z", (z < -CENTRE_HALF_WIDTH_NM) & (z > -bulk))):
        if sel.any():
            out[side] = {"min_kt": float(w[sel].min()), "min_z_nm": float(z[sel][np.argmin(w[sel])]),
                         "max_kt": float(w[sel].max()), "max_z_nm": float(z[sel][np.argmax(w[sel])])}  # fmt: skip
    return out


def _well(rec, bulk: float) -> tuple[float, float, float]:
    """(W_min, its error, its z) inside the bulk boundary."""
    z, w, dw = _profile(rec)
    inner = np.abs(z) < bulk
    j = int(np.argmin(np.where(inner, w, np.inf)))
    return float(w[j]), float(dw[j]), float(z[j])


def _kb(rec) -> tuple[float, float]:
    r = rec["result"]
    return r["binding_constant_per_molar"], r["binding_constant_err_per_molar"]


def _fact_crown_na(by_name: dict, bulk: float) -> dict:
    def m(recs):
        k, dk = _kb(recs[0])
        w, dw, zw = _well(recs[0], bulk)
        b = recs[0]["result"]["barrier_kt"]
        out = {"binding_constant_per_molar": k, "err_per_molar": dk, "occupancy_at_1_molar": max(k, 0.0) / (1 + max(k, 0.0)),
               "well_kt": w, "well_err_kt": dw, "well_z_nm": zw, "barrier_kt": b}  # fmt: skip
        return out, k * 1.0 < 1.0 and b <= CARRIER_MAX_BARRIER_KT

    return _fact("crown6: Na+ is a carrier (shallow or no well)", "crown6", "Na+",
                 f"K_b(Na+) × 1 M < 1 (not a plug); maximum inside bulk ≤ {CARRIER_MAX_BARRIER_KT:g} kT (not blocked)",
                 [by_name["crown6-Na"]], m)  # fmt: skip


def _fact_crown_k(by_name: dict, bulk: float) -> dict:
    recs = [by_name["crown6-K"]] + ([by_name["crown6-Na"]] if "crown6-Na" in by_name else [])

    def m(recs):
        k, dk = _kb(recs[0])
        wk, dwk, zk = _well(recs[0], bulk)
        out = {"binding_constant_per_molar": k, "err_per_molar": dk, "well_kt": wk, "well_err_kt": dwk, "well_z_nm": zk}
        ok = k * 0.5 > 1.0
        if len(recs) > 1:
            wn, _, _ = _well(recs[1], bulk)
            out["well_na_kt"] = wn
            ok = ok and wk < wn - 1.0
        else:
            ok = False
        return out, ok

    return _fact("crown6: K+ is trapped, with a deeper well than Na+", "crown6", "K+",
                 "W_min(K+) < W_min(Na+) − 1 kT and K_b(K+) × 0.5 M > 1", recs, m)  # fmt: skip


def _centre_kt(rec) -> float:
    """W at the pore centre (the bin nearest z = 0)."""
    z, w, _ = _profile(rec)
    return float(w[int(np.argmin(np.abs(z)))])


def _fact_b3n_k(by_name: dict, bulk: float) -> dict:
    def m(recs):
        k, dk = _kb(recs[0])
        w, dw, zw = _well(recs[0], bulk)
        b = recs[0]["result"]["barrier_kt"]
        wc = _centre_kt(recs[0])
        out = {"binding_constant_per_molar": k, "err_per_molar": dk, "well_kt": w, "well_err_kt": dw, "well_z_nm": zw,
               "barrier_kt": b, "centre_kt": wc}  # fmt: skip
        in_centre = abs(zw) <= CENTRE_HALF_WIDTH_NM and wc - w <= CENTRE_WITHIN_KT
        return out, in_centre and -3.0 <= w < 0.0 and k < 1.0 and b <= CARRIER_MAX_BARRIER_KT

    return _fact("B3N: K+ has a shallow centre minimum (carrier)", "B3N", "K+",
                 f"minimum at |z| ≤ 0.15 nm with W(0) within {CENTRE_WITHIN_KT:g} kT of it (no central wall), "
                 f"−3 kT ≤ W_min < 0, K_b × 1 M < 1, maximum ≤ {CARRIER_MAX_BARRIER_KT:g} kT",
                 [by_name["B3N-K"]], m)  # fmt: skip


def _fact_b3n_na(by_name: dict, bulk: float) -> dict:
    def m(recs):
        z, w, _ = _profile(recs[0])
        wm, dwm, zw = _well(recs[0], bulk)
        wc = _centre_kt(recs[0])
        sides = _side_extrema(z, w, bulk)
        ok = abs(zw) <= CENTRE_HALF_WIDTH_NM and wc - wm <= CENTRE_WITHIN_KT and wm < -3.0
        ok = ok and len(sides) == 2 and all(s["max_kt"] >= 1.0 for s in sides.values())
        return {"well_kt": wm, "well_err_kt": dwm, "well_z_nm": zw, "centre_kt": wc, "sides": sides}, ok

    return _fact("B3N: Na+ has a deep centre minimum behind a dehydration barrier", "B3N", "Na+",
                 f"minimum at |z| ≤ 0.15 nm with W(0) within {CENTRE_WITHIN_KT:g} kT of it, W_min < −3 kT; a maximum "
                 "≥ +1 kT between centre and bulk on each side",
                 [by_name["B3N-Na"]], m)  # fmt: skip


def _fact_b3n_rb(by_name: dict, bulk: float) -> dict:
    def m(recs):
        z, w, _ = _profile(recs[0])
        centre = np.abs(z) <= CENTRE_HALF_WIDTH_NM
        if not centre.any():
            return {"centre_kt": None}, False
        wc = float(w[centre].max())
        sides = _side_extrema(z, w, bulk)
        ok = len(sides) == 2 and all(s["min_kt"] <= wc - 1.0 for s in sides.values())
        return {"centre_peak_kt": wc, "sides": sides}, ok

    return _fact("B3N: Rb+ has a steric peak at the centre with minima on either side", "B3N", "Rb+",
                 "W(centre) is the maximum of |z| ≤ 0.15 nm; on each side a minimum ≤ W(centre) − 1 kT "
                 "at 0.15 < |z| < bulk",
                 [by_name["B3N-Rb"]], m)  # fmt: skip


# the paper's single-salt facts, each checked when its PMF is in the validation file
_FACTS = (("crown6-Na", _fact_crown_na), ("crown6-K", _fact_crown_k), ("B3N-K", _fact_b3n_k),
          ("B3N-Na", _fact_b3n_na), ("B3N-Rb", _fact_b3n_rb))  # fmt: skip


def _facts(by_name: dict, bulk: float) -> list[dict]:
    return [fact(by_name, bulk) for name, fact in _FACTS if name in by_name]


def summarize_validation(plan: ValidationPlan, records_root, out_dir) -> dict:
    """Write ``out_dir/summary.json`` and ``out_dir/pmfs.png`` from the recorded windows; returns the summary."""
    recs = [_pmf_record(plan, p, records_root) for p in plan.pmfs]
    # facts look PMFs up by pore and ion ("crown6-Na"), whatever the [[pmf]] is called
    by_name = {f"{r['pore']}-{r['ion'].rstrip('+')}": r for r in recs if r["forcefield_option"] == plan.forcefield_option}
    facts = _facts(by_name, plan.bulk_min_abs_z_nm)
    remaining_ns = 0.0
    for r in recs:
        if plan.adaptive is not None:  # an upper bound: every missing window to the cap, two per run
            per = (plan.adaptive.max_sampling_ps + plan.adaptive.equilibration_ps) / 1000.0 / plan.adaptive.ions_per_cell
        else:
            per = (plan.settings.equilibration_steps + plan.settings.sampling_steps) * plan.settings.timestep_fs * 1e-6
        remaining_ns += max(0, r["windows_planned"] - r["windows_recorded"]) * per
    rates = [r["ns_per_day"] for r in recs if r.get("ns_per_day")]
    summary = {
        "schema": "ionkinetics.md-validation-summary/1",
        "forcefield_option": plan.forcefield_option,
        "forcefield": FORCEFIELD_OPTIONS[plan.forcefield_option].as_dict(),
        "commit": git_commit() or "unknown",
        "validation_file": plan.path,
        "rules": {**RULES, "both_sides": True, "overlap_ok": True},
        "all_facts_hold": bool(facts) and all(f["holds"] for f in facts),
        "facts": facts,
        "pmfs": [{k: v for k, v in r.items() if not k.startswith("_")} for r in recs],
        "remaining_simulated_ns": remaining_ns,
        "measured_ns_per_day": float(np.mean(rates)) if rates else None,
        "remaining_cpu_hours_at_measured_rate": remaining_ns / float(np.mean(rates)) * 24.0 if rates else None,
        "cpu_hours_spent": float(sum(r.get("cpu_hours", r.get("wall_s_total", 0.0) / 3600.0) for r in recs)),
        "simulated_ns_per_pmf": {r["name"]: r.get("simulated_ns", r.get("sampled_ps_total", 0.0) / 1000.0) for r in recs},
    }
    if plan.adaptive is not None:
        summary["rules"] = {"sigma_w_kt_max": plan.adaptive.sigma_target_kt, "block_halves_within_nsigma": 2.0,
                            "min_overlap": plan.adaptive.overlap_min, "mirror_check_nsigma": 2.0}  # fmt: skip
    out_dir = Path(out_dir)
    write_json_atomic(out_dir / "summary.json", summary)
    fig = _figure_adaptive(recs) if plan.adaptive is not None else _figure(recs)
    if fig is not None:
        write_atomic(out_dir / "pmfs.png", lambda tmp: fig.savefig(tmp, dpi=130, format="png"), suffix=".png")
    return summary


def _figure(recs):
    from matplotlib.figure import Figure

    from ._pmf import plot_pmf

    pores = sorted({r["pore"] for r in recs if r.get("_result") is not None})
    if not pores:
        return None
    fig = Figure(figsize=(3.4 * len(pores), 2.6), layout="constrained")
    axes = fig.subplots(1, len(pores), squeeze=False)[0]
    colours = {"Li+": "C4", "Na+": "C0", "K+": "C1", "Rb+": "C2", "Cs+": "C3"}
    for ax, pore in zip(axes, pores, strict=True):
        for r in recs:
            if r["pore"] == pore and r.get("_result") is not None:
                state = "" if r["converged"] else f" (not converged, {r['windows_recorded']}/{r['windows_planned']} windows)"
                colour = colours.get(r["ion"], "C5") if r["forcefield_option"] == recs[0]["forcefield_option"] else "0.4"
                label = f"{r['ion']}, {r['charge_set']['name']}{state}"
                plot_pmf(r["_result"], label=label, ax=ax, color=colour, units="kt")
        ax.set_title(f"{pore} (option {recs[0]['forcefield_option']})", fontsize="small")
        ax.legend(frameon=False, fontsize="x-small", loc="lower right")
    return fig


def _figure_adaptive(recs):
    """The PMFs as the insets of the paper's Figure 2: W(z) in kT with its ±σ band, the pore centre dashed."""
    from matplotlib.figure import Figure

    shown = [r for r in recs if r.get("result")]
    if not shown:
        return None
    fig = Figure(figsize=(2.3 * len(shown), 2.3), layout="constrained")
    axes = fig.subplots(1, len(shown), squeeze=False, sharey=True)[0]
    for k, (ax, r) in enumerate(zip(axes, shown, strict=True)):
        z, w, sw = (np.asarray(r["result"][key]) for key in ("z_nm", "pmf_kt", "dpmf_kt"))
        ax.fill_between(z, w - sw, w + sw, color="#0072B2", alpha=0.25, lw=0)
        ax.plot(z, w, color="#0072B2", lw=1.2)
        ax.axvline(0.0, color="0.4", ls="--", lw=0.8)
        ax.axhline(0.0, color="0.7", lw=0.5)
        verdict = "converged" if r.get("converged") else "not converged"
        ax.set_title(f"{r['pore']} {r['ion']}\n{verdict}, σ$_{{max}}$ = {r.get('sigma_w_kt_max', float('nan')):.1f} kT",
                     fontsize="small")  # fmt: skip
        ax.set_xlabel("z (nm)")
        ax.text(0.03, 0.95, "abcdefgh"[k], transform=ax.transAxes, fontweight="bold", va="top")
    axes[0].set_ylabel("W (kT)")
    return fig
