"""Affordable converged PMFs (issue 23): one side of the sheet, mirror windows, neighbour starts,
adaptive window lengths, windows added where neighbours do not overlap, two restrained ions per cell,
and an honest convergence rule.

The sheet is symmetric, so a PMF needs only one side (z ≥ 0) plus a few **mirror windows** on the other
side (default z0 = −0.2 and −0.4 nm) that test the symmetry: the mirror check holds when every mirror
window's mean force F(−z) equals −F(z) of the +z side (interpolated at the same |z|) within
:data:`MIRROR_NSIGMA` combined standard errors.

Estimator: umbrella integration's mean force per window, F_i = k·(z0_i − ⟨z⟩_i)/kT at ⟨z⟩_i (exact
for a PMF that is locally linear over the window's spread), integrated by the trapezoid rule from the
outermost (bulk) windows inwards, so W = 0 at |z| ≥ ``bulk_min_abs_z_nm``. Its statistical error is
σ_W² = Σ c_i² σ_F,i² with the trapezoid weights c_i (the issue's σ_W² = Δz² Σ a_i/T_i), σ_F,i from the
window's standard error of ⟨z⟩ at its statistical inefficiency (pymbar ``timeseries``). MBAR
(:func:`~ionkinetics.md.analyze_windows`) runs beside it for the neighbour overlaps and as a
cross-check.

Cost: each window runs in chunks of ``chunk_ps`` until σ_F,i reaches its share of the PMF's target,
σ_F,target = σ_W,target / (c_i·√n) (n windows, c_i the window's trapezoid weight), or ``max_sampling_ps``; well and bulk windows
stop early, the slow pore mouth runs longer. Every run starts from the end state of its neighbour
(the ion pulled to the new centre by the restraint during ``equilibration_ps``), and a cell holds
**two restrained ions** in different pores (the farthest pair, :func:`partner_pores`),
so one simulation feeds two windows of the one-sided PMF.

Convergence rule (:func:`convergence_report`): σ_W at the PMF's extrema ≤ ``sigma_target_kt``; the PMFs
of the first and second halves of every window agree at the extrema within 2σ of their difference;
every neighbour overlap (MBAR) ≥ ``overlap_min``; the mirror check holds.

A sampler is anything with ``sample(z0s, *, equilibration_ps, sampling_ps, start) -> (z, r, end)``:
``z`` and ``r`` (n_ions, n_samples) in nm, ``end`` an opaque state a later call may start from.
:class:`OpenMMUmbrellaSampler` runs OpenMM; :class:`ionkinetics.md.testsystems.BrownianUmbrellaSampler`
samples a known 1D PMF, for tests.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np

from .._checks import bad_argument
from .._io import write_npz_atomic
from ._pmf import BOLTZMANN_KJ_PER_MOL_K, _quiet_pymbar, analyze_windows, load_window

__all__ = [
    "MIRROR_NSIGMA",
    "AdaptivePlan",
    "OpenMMUmbrellaSampler",
    "convergence_report",
    "mean_force_pmf",
    "run_adaptive_plan",
]

MIRROR_NSIGMA = 2.0  # mirror windows agree with the +z side within this many combined standard errors
HALVES_NSIGMA = 2.0  # block halves agree within this many standard errors of their difference
BLOCKING_MIN_BLOCKS = 8  # blocking levels with fewer points are too noisy to judge (χ² of 7 dof: ±50 %)
_GRID_NM = 0.01  # window centres lie on this grid (stable file names window_<round(100·z0) + 1000>)


def _index(z0: float) -> int:
    return round(z0 / _GRID_NM) + 1000


@dataclasses.dataclass(frozen=True)
class AdaptivePlan:
    """The one-sided adaptive umbrella plan (lengths in nm, times in ps, force constants in kJ/mol/nm²)."""

    z_max_nm: float = 1.2
    spacing_nm: float = 0.1
    inner_spacing_nm: float = 0.05  # closer windows up to inner_z_max_nm: the centre's peak or wall, the mouth
    inner_z_max_nm: float = 0.4
    mirror_z_nm: tuple[float, ...] = (-0.2, -0.4)
    bulk_min_abs_z_nm: float = 1.0
    k_z_kj_per_mol_nm2: float = 2000.0
    sigma_target_kt: float = 0.7
    overlap_min: float = 0.03
    equilibration_ps: float = 10.0
    chunk_ps: float = 10.0
    min_sampling_ps: float = 20.0
    max_sampling_ps: float = 400.0
    sample_every_ps: float = 0.2
    max_added_windows: int = 8
    ions_per_cell: int = 2
    temperature_k: float = 298.15

    def __post_init__(self):
        for name in ("z_max_nm", "spacing_nm", "bulk_min_abs_z_nm", "k_z_kj_per_mol_nm2", "sigma_target_kt", "overlap_min",
                     "chunk_ps", "min_sampling_ps", "max_sampling_ps", "sample_every_ps", "temperature_k"):  # fmt: skip
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise bad_argument(name, "must be a finite number > 0", v)
        if self.equilibration_ps < 0:
            raise bad_argument("equilibration_ps", "must be >= 0", self.equilibration_ps)
        if self.bulk_min_abs_z_nm >= self.z_max_nm:
            raise bad_argument("bulk_min_abs_z_nm", f"must be below z_max_nm = {self.z_max_nm:g} (bulk windows zero the PMF)",
                       self.bulk_min_abs_z_nm)  # fmt: skip
        if not 0 < self.inner_spacing_nm <= self.spacing_nm or not 0 <= self.inner_z_max_nm <= self.z_max_nm:
            raise bad_argument("inner_spacing_nm", f"must be in (0, spacing_nm = {self.spacing_nm:g}] with inner_z_max_nm in "
                       f"[0, z_max_nm = {self.z_max_nm:g}]", (self.inner_spacing_nm, self.inner_z_max_nm))  # fmt: skip
        names = ("z_max_nm", "spacing_nm", "inner_spacing_nm", "inner_z_max_nm",
                 *(f"mirror_z_nm[{k}]" for k in range(len(self.mirror_z_nm))))  # fmt: skip
        for name in names:
            v = getattr(self, name) if "[" not in name else self.mirror_z_nm[int(name[12:-1])]
            if abs(v / _GRID_NM - round(v / _GRID_NM)) > 1e-6:
                raise bad_argument(name, f"must lie on the {_GRID_NM} nm grid", v)
        if any(z >= 0 for z in self.mirror_z_nm):
            raise bad_argument("mirror_z_nm", "must be centres below the sheet (z0 < 0)", self.mirror_z_nm)
        if self.max_sampling_ps < self.min_sampling_ps:
            raise bad_argument("max_sampling_ps", f"must be >= min_sampling_ps = {self.min_sampling_ps:g}", self.max_sampling_ps)
        if self.ions_per_cell not in (1, 2):
            raise bad_argument("ions_per_cell", "must be 1 or 2", self.ions_per_cell)
        if isinstance(self.max_added_windows, bool) or not isinstance(self.max_added_windows, int) or self.max_added_windows < 0:
            raise bad_argument("max_added_windows", "must be an integer >= 0", self.max_added_windows)

    @property
    def kt_kj_per_mol(self) -> float:
        """Thermal energy kT at ``temperature_k``, in kJ/mol."""
        return BOLTZMANN_KJ_PER_MOL_K * self.temperature_k

    @property
    def plus_centres_nm(self) -> tuple[float, ...]:
        """The +z grid from the sheet outwards: ``inner_spacing_nm`` up to ``inner_z_max_nm``, then
        ``spacing_nm`` up to ``z_max_nm``."""
        inner = [round(k * self.inner_spacing_nm, 6) for k in range(round(self.inner_z_max_nm / self.inner_spacing_nm) + 1)]
        outer = [round(k * self.spacing_nm, 6) for k in range(round(self.z_max_nm / self.spacing_nm) + 1)]
        return tuple(sorted(set(inner) | {z for z in outer if z > self.inner_z_max_nm + 1e-9}))

    @property
    def centres_nm(self) -> tuple[float, ...]:
        """The +z grid, then the mirror windows."""
        return self.plus_centres_nm + tuple(self.mirror_z_nm)

    def sigma_f_target_kt_per_nm(self, z0_nm: float) -> float:
        """The window at ``z0_nm``'s share of the target: σ_W,target / (c·√n), n the +z windows and c the
        trapezoid weight of its place on the grid (half the sum of its two gaps)."""
        grid = np.array(self.plus_centres_nm)
        k = int(np.argmin(np.abs(grid - abs(z0_nm))))
        gaps = np.diff(grid)
        c = 0.5 * ((gaps[k - 1] if k > 0 else 0.0) + (gaps[k] if k < gaps.size else 0.0))
        return self.sigma_target_kt / (max(c, 0.5 * float(gaps.min())) * math.sqrt(grid.size))


# --------------------------------------------------------------------------- estimator


def blocking_standard_error(x: np.ndarray) -> float:
    """Standard error of the mean of a correlated series by automated blocking (Flyvbjerg and Petersen,
    J. Chem. Phys. 91, 461 (1989), with the level chosen by Jonsson's test, Phys. Rev. E 98, 043304
    (2018)): the series is halved by averaging neighbour pairs; at level j, with n_j points, variance
    s_j² and lag-1 autocovariance γ_j, M_j = Σ_{i≥j} n_i (γ_i/s_i²)², and the first level with
    M_j below the χ²₁ 99 % quantile gives σ² = s_j²/n_j. An odd level drops its last point. Levels with
    fewer than :data:`BLOCKING_MIN_BLOCKS` points are not used: when no level passes, the coarsest
    usable one is returned (an underestimate flagged by the caller's comparison, not hidden); a series
    too short for any level gives NaN (no estimate)."""
    from scipy.stats import chi2

    x = np.asarray(x, dtype=float)
    if x.size < BLOCKING_MIN_BLOCKS:
        return float("nan")
    n_k, s_k, g_k = [], [], []
    while x.size >= BLOCKING_MIN_BLOCKS:
        d = x - x.mean()
        n_k.append(x.size)
        s_k.append(float(np.mean(d * d)))
        g_k.append(float(np.mean(d[:-1] * d[1:])) * (x.size - 1) / x.size)
        m = x.size // 2
        x = 0.5 * (x[: 2 * m : 2] + x[1 : 2 * m : 2])
    n, s, g = np.array(n_k, float), np.array(s_k), np.array(g_k)
    if not np.all(s > 0):
        return 0.0
    m_stat = np.cumsum((n * (g / s) ** 2)[::-1])[::-1]
    passed = np.flatnonzero(m_stat < chi2.ppf(0.99, 1))
    j = int(passed[0]) if passed.size else n.size - 1
    return float(math.sqrt(s[j] / n[j]))


def _k_z_kj_per_mol_nm2(window: dict) -> float:
    """A window record's restraint constant along z (``settings_k_z_kj_per_mol_nm2``, else
    ``k_z_kj_per_mol_nm2``), kJ/mol/nm²."""
    k = window.get("settings_k_z_kj_per_mol_nm2", window.get("k_z_kj_per_mol_nm2"))
    if k is None:
        raise ValueError(f"window at z0 = {window.get('z0_nm')!r} nm records no k_z_kj_per_mol_nm2")
    return float(k)


def _mean_force(z: np.ndarray, z0: float, k_kt_per_nm2: float) -> tuple[float, float, float]:
    """(⟨z⟩, F = k·(z0 − ⟨z⟩), σ_F) of one window's samples. σ is the larger of two standard errors of
    ⟨z⟩: at pymbar's statistical inefficiency, and by automated blocking
    (:func:`blocking_standard_error`). The pore mouth has modes slower than the integrated
    autocorrelation time catches (issue 23: four independent 100 ps mouth runs scatter more than their
    inefficiency errors), so the stopping rule and the checks take the more cautious of the two."""
    from pymbar import timeseries

    z = np.asarray(z, dtype=float)
    g = 1.0
    if z.size > 2 and np.ptp(z) > 0:
        with _quiet_pymbar():
            g = max(1.0, float(timeseries.statistical_inefficiency(z)))
    se = float(np.std(z, ddof=1) * math.sqrt(g / z.size)) if z.size > 1 else float("inf")
    if z.size > 2 and np.ptp(z) > 0:
        blocked = blocking_standard_error(z)
        if math.isfinite(blocked):  # a series too short to block keeps the inefficiency error
            se = max(se, blocked)
    zm = float(z.mean())
    return zm, k_kt_per_nm2 * (z0 - zm), k_kt_per_nm2 * se


def _trapezoid_from_bulk(zm: np.ndarray, f: np.ndarray, sf: np.ndarray, bulk: float) -> tuple[np.ndarray, np.ndarray]:
    """W and σ_W at the points ``zm`` (sorted by |z| descending in the caller's side) by the trapezoid
    rule from the outermost point inwards, zeroed at the mean over points with |z| ≥ ``bulk``;
    σ_W exact for independent σ_F (the coefficients of each F_i are summed into one weight)."""
    n = zm.size
    coef = np.zeros((n, n))  # W_m = Σ_i coef[m, i]·F_i
    for m in range(1, n):
        coef[m] = coef[m - 1]
        h = zm[m] - zm[m - 1]
        coef[m, m - 1] += 0.5 * h
        coef[m, m] += 0.5 * h
    ref = np.abs(zm) >= bulk
    if ref.any():
        coef -= coef[ref].mean(axis=0)
    w = coef @ f
    sw = np.sqrt((coef**2) @ (sf**2))
    return w, sw


def mean_force_pmf(windows: list[dict], *, bulk_min_abs_z_nm: float, temperature_k: float | None = None) -> dict:
    """Umbrella integration over the +z windows (z0 ≥ 0): W(⟨z⟩) and σ_W (kT), zero in bulk, with each
    window's ⟨z⟩, F and σ_F (kT/nm). Windows need ``z_nm``, ``z0_nm`` and ``k_z_kj_per_mol_nm2`` (or
    ``settings_k_z_kj_per_mol_nm2``)."""
    rows = []
    for d in windows:
        t_k = float(temperature_k or d.get("settings_temperature_k", d.get("temperature_k", 298.15)))
        k = _k_z_kj_per_mol_nm2(d) / (BOLTZMANN_KJ_PER_MOL_K * t_k)
        z0 = float(d["z0_nm"])
        if z0 >= 0:
            rows.append((z0, *_mean_force(d["z_nm"], z0, k)))
    if len(rows) < 2:
        raise bad_argument("windows", "must hold at least two windows with z0 >= 0", len(rows))
    rows.sort(key=lambda r: -r[1])  # outermost ⟨z⟩ first
    z0s, zm, f, sf = (np.array(c) for c in zip(*rows, strict=True))
    w, sw = _trapezoid_from_bulk(zm, f, sf, bulk_min_abs_z_nm)
    order = np.argsort(zm)
    return {"z0_nm": z0s[order], "z_mean_nm": zm[order], "mean_force_kt_per_nm": f[order], "mean_force_err_kt_per_nm": sf[order],
            "w_kt": w[order], "sigma_w_kt": sw[order]}  # fmt: skip


def _halves(windows: list[dict]) -> tuple[list[dict], list[dict]]:
    out = ([], [])
    for d in windows:
        n = len(d["z_nm"]) // 2
        for k, sl in enumerate((slice(0, n), slice(n, 2 * n))):
            e = dict(d)
            e["z_nm"] = np.asarray(d["z_nm"])[sl]
            if "r_xy_nm" in d:
                e["r_xy_nm"] = np.asarray(d["r_xy_nm"])[sl]
            out[k].append(e)
    return out


def _extrema_index(z: np.ndarray, w: np.ndarray, bulk: float) -> list[int]:
    inside = np.flatnonzero(np.abs(z) < bulk)
    if inside.size == 0:
        return []
    return sorted({int(inside[np.argmax(w[inside])]), int(inside[np.argmin(w[inside])])})


def convergence_report(windows: list[dict], plan: AdaptivePlan) -> dict:
    """The issue-23 rule on recorded windows: ``sigma_w_kt_max`` (σ_W at W's extrema off bulk),
    ``block_halves_within_2sigma``, ``min_overlap`` (MBAR neighbour overlap), ``mirror_check_holds``,
    ``converged`` (all four), the profile and every number the verdicts rest on."""
    bulk = plan.bulk_min_abs_z_nm
    prof = mean_force_pmf(windows, bulk_min_abs_z_nm=bulk, temperature_k=plan.temperature_k)
    zm, w, sw = prof["z_mean_nm"], prof["w_kt"], prof["sigma_w_kt"]
    ext = _extrema_index(zm, w, bulk)
    sigma_max = float(np.max(sw[ext])) if ext else float("nan")
    h0, h1 = (mean_force_pmf(h, bulk_min_abs_z_nm=bulk, temperature_k=plan.temperature_k) for h in _halves(windows))
    halves = []
    for i in ext:  # the halves' W at the full profile's extrema (interpolated on ⟨z⟩)
        a = float(np.interp(zm[i], h0["z_mean_nm"], h0["w_kt"]))
        b = float(np.interp(zm[i], h1["z_mean_nm"], h1["w_kt"]))
        sa = float(np.interp(zm[i], h0["z_mean_nm"], h0["sigma_w_kt"]))
        sb = float(np.interp(zm[i], h1["z_mean_nm"], h1["sigma_w_kt"]))
        halves.append({"z_nm": float(zm[i]), "first_kt": a, "second_kt": b, "sigma_diff_kt": math.hypot(sa, sb),
                       "within": bool(abs(a - b) <= HALVES_NSIGMA * math.hypot(sa, sb))})  # fmt: skip
    mirror = []
    t_k = plan.temperature_k
    for d in windows:
        z0 = float(d["z0_nm"])
        if z0 >= 0:
            continue
        k = _k_z_kj_per_mol_nm2(d) / (BOLTZMANN_KJ_PER_MOL_K * t_k)
        zmi, fm, sfm = _mean_force(d["z_nm"], z0, k)
        fp = float(np.interp(-zmi, zm, prof["mean_force_kt_per_nm"]))
        sfp = float(np.interp(-zmi, zm, prof["mean_force_err_kt_per_nm"]))
        mirror.append({"z0_nm": z0, "z_mean_nm": zmi, "mean_force_kt_per_nm": fm, "mirror_of_plus_side_kt_per_nm": -fp,
                       "sigma_kt_per_nm": math.hypot(sfm, sfp),
                       "holds": bool(abs(fm + fp) <= MIRROR_NSIGMA * math.hypot(sfm, sfp))})  # fmt: skip
    plus = [d for d in windows if float(d["z0_nm"]) >= 0]
    try:
        mbar = analyze_windows(plus, bulk_min_abs_z_nm=bulk, min_bin_count=3, temperature_k=plan.temperature_k)
        overlaps = mbar.neighbour_overlap
        min_overlap = float(np.min(overlaps)) if overlaps.size else float("nan")
        mbar_summary = {"z_nm": mbar.z_nm.tolist(), "pmf_kt": mbar.pmf_kt.tolist(), "dpmf_kt": mbar.dpmf_kt.tolist(),
                        "z0_nm": mbar.z0_nm.tolist(), "neighbour_overlap": overlaps.tolist()}  # fmt: skip
    except ValueError as exc:
        min_overlap, mbar_summary = float("nan"), {"error": str(exc)}
    rep = {
        "sigma_w_kt_max": sigma_max,
        "sigma_target_kt": plan.sigma_target_kt,
        "block_halves_within_2sigma": bool(halves) and all(h["within"] for h in halves),
        "block_halves": halves,
        "min_overlap": min_overlap,
        "overlap_min": plan.overlap_min,
        "mirror_check_holds": bool(mirror) and all(m["holds"] for m in mirror),
        "mirror": mirror,
        "profile": {k: np.asarray(v).tolist() for k, v in prof.items()},
        "mbar": mbar_summary,
        "sampled_ps": float(sum(float(d.get("sampled_ps", 0.0)) for d in windows)),
        "simulated_ns": float(sum(float(d.get("simulated_ps", 0.0)) for d in windows)) / 1000.0,
        "wall_hours": float(sum(float(d.get("wall_s", 0.0)) for d in windows)) / 3600.0,
        "n_windows": len(windows),
    }
    rep["converged"] = bool(
        sigma_max <= plan.sigma_target_kt
        and rep["block_halves_within_2sigma"]
        and min_overlap >= plan.overlap_min
        and rep["mirror_check_holds"]
    )
    return rep


# --------------------------------------------------------------------------- the plan


def _pairs(centres: list[float], ions: int) -> list[tuple[float, ...]]:
    """Runs in neighbour order: with two ions, the first half of the +z list paired with the second half,
    so each run's two windows move outwards together and the next run starts from its neighbours."""
    if ions == 1:
        return [(z,) for z in centres]
    half = (len(centres) + 1) // 2
    a, b = centres[:half], centres[half:]
    return [(a[k], b[k]) if k < len(b) else (a[k],) for k in range(half)]


def _record(path: Path, z: np.ndarray, r, z0: float, plan: AdaptivePlan, cost: tuple[float, float, float], meta: dict) -> None:
    """One window file; ``cost`` = (sampled ps, simulated ps including equilibrations, wall s), the last two
    this window's share of its runs (a run with two restrained ions feeds two windows)."""
    extra = {} if r is None else {"r_xy_nm": r}
    write_npz_atomic(path, z_nm=z, z0_nm=float(z0), settings_k_z_kj_per_mol_nm2=plan.k_z_kj_per_mol_nm2,
                      settings_temperature_k=plan.temperature_k, sampled_ps=float(cost[0]), simulated_ps=float(cost[1]),
                      wall_s=float(cost[2]), sample_every_ps=plan.sample_every_ps, **extra, **meta)  # fmt: skip


def _done(path: Path, plan: AdaptivePlan) -> bool:
    if not path.exists():
        return False
    d = load_window(path)
    if float(d.get("sampled_ps", 0.0)) >= plan.max_sampling_ps:
        return True
    k = plan.k_z_kj_per_mol_nm2 / plan.kt_kj_per_mol
    z0 = float(d["z0_nm"])
    return float(d.get("sampled_ps", 0.0)) >= plan.min_sampling_ps and _mean_force(d["z_nm"], z0, k)[
        2
    ] <= plan.sigma_f_target_kt_per_nm(z0)


def _run_group(sampler, z0s: tuple[float, ...], plan: AdaptivePlan, out: Path, start, meta: dict, log):
    """One simulation holding ``len(z0s)`` restrained ions: equilibrate from ``start``, then extend in
    chunks until every window meets its share of the σ target or the cap; records after every chunk."""
    paths = [out / f"window_{_index(z)}.npz" for z in z0s]
    if all(_done(p, plan) for p in paths):
        return start
    k = plan.k_z_kj_per_mol_nm2 / plan.kt_kj_per_mol
    targets = [plan.sigma_f_target_kt_per_nm(z) for z in z0s]
    # a window cut short keeps its samples: the run re-equilibrates (from ``start``) and extends it
    old = [load_window(p) if p.exists() else None for p in paths]
    zs = [np.zeros(0) if o is None else np.asarray(o["z_nm"], dtype=float) for o in old]
    rs = [None if o is None or "r_xy_nm" not in o else np.asarray(o["r_xy_nm"], dtype=float) for o in old]
    done_ps = [0.0 if o is None else float(o.get("sampled_ps", 0.0)) for o in old]
    sim = [0.0 if o is None else float(o.get("simulated_ps", 0.0)) for o in old]
    wall = [0.0 if o is None else float(o.get("wall_s", 0.0)) for o in old]
    sampled, eq, state = min(done_ps), plan.equilibration_ps, start
    while True:
        t0 = time.perf_counter()
        z, r, state = sampler.sample(z0s, equilibration_ps=eq, sampling_ps=plan.chunk_ps, start=state)
        share = 1.0 / len(z0s)
        sim = [x + share * (eq + plan.chunk_ps) for x in sim]
        wall = [x + share * (time.perf_counter() - t0) for x in wall]
        eq = 0.0
        sampled += plan.chunk_ps
        zs = [np.concatenate([a, b]) for a, b in zip(zs, z, strict=True)]
        rs = [None] * len(z0s) if r is None else [np.asarray(b) if a is None or a.size == 0 else np.concatenate([a, b])
                                                   for a, b in zip(rs, r, strict=True)]  # fmt: skip
        sig = [_mean_force(zz, z0, k)[2] for zz, z0 in zip(zs, z0s, strict=True)]
        for p, zz, rr, z0, x, w in zip(paths, zs, rs, z0s, sim, wall, strict=True):
            _record(p, zz, rr, z0, plan, (sampled, x, w), meta)
        if log is not None:
            log(f"z0 = {', '.join(f'{z:+.2f}' for z in z0s)} nm: {sampled:g} ps, σ_F = "
                f"{', '.join(f'{s:.1f}/{t:.1f}' for s, t in zip(sig, targets, strict=True))} kT/nm (value/target), "
                f"chunk {time.perf_counter() - t0:.0f} s")  # fmt: skip
        met = all(s <= t for s, t in zip(sig, targets, strict=True))
        if sampled >= plan.min_sampling_ps and (met or sampled >= plan.max_sampling_ps):
            return state


def _added_centres(windows: list[dict], plan: AdaptivePlan, taken: set[int]) -> list[float]:
    """Midpoints (on the grid) between +z neighbours whose MBAR overlap is below ``overlap_min``."""
    plus = [d for d in windows if float(d["z0_nm"]) >= 0]
    try:
        res = analyze_windows(plus, bulk_min_abs_z_nm=plan.bulk_min_abs_z_nm, min_bin_count=3, temperature_k=plan.temperature_k)
    except ValueError:
        return []
    out = []
    for k, o in enumerate(res.neighbour_overlap):
        if o < plan.overlap_min:
            mid = round(0.5 * (res.z0_nm[k] + res.z0_nm[k + 1]) / _GRID_NM) * _GRID_NM
            if _index(mid) not in taken and mid not in (res.z0_nm[k], res.z0_nm[k + 1]):
                out.append(round(mid, 6))
    return out


def run_adaptive_plan(plan: AdaptivePlan, sampler, out_dir, *, meta: dict | None = None, log=None) -> dict:
    """Run (or resume) ``plan`` with ``sampler`` into ``out_dir/window_<i>.npz`` and return
    :func:`convergence_report` of what is recorded. Finished windows are skipped; a window cut short is
    re-run from its neighbour's state. ``meta`` (str → str/number) is stored in every window file."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {**{f"prov_{k}": v for k, v in (meta or {}).items()}, **getattr(sampler, "record_meta", {})}
    plus = list(plan.plus_centres_nm)
    state = None
    for group in _pairs(plus, plan.ions_per_cell):  # neighbour starts, from the sheet outwards
        state = _run_group(sampler, group, plan, out, state, meta, log)
    for group in _pairs(list(plan.mirror_z_nm), plan.ions_per_cell):  # fresh: never drag an ion through the pore
        _run_group(sampler, group, plan, out, None, meta, log)
    taken = {_index(z) for z in plan.centres_nm}
    for _ in range(plan.max_added_windows):
        windows = [load_window(p) for p in sorted(out.glob("window_*.npz"))]
        extra = _added_centres(windows, plan, taken)
        if not extra:
            break
        for z in extra:
            taken.add(_index(z))
            _run_group(sampler, (z,), plan, out, None, meta, log)
    windows = [load_window(p) for p in sorted(out.glob("window_*.npz"))]
    return convergence_report(windows, plan)


# --------------------------------------------------------------------------- OpenMM sampler


class OpenMMUmbrellaSampler:
    """Umbrella sampling of one or two ions of ``built`` (an :class:`~ionkinetics.md.MDSystem`) in OpenMM:
    each ion restrained along z to its window centre and laterally (flat bottom ``flat_bottom_radius_nm``)
    to its own pore, per-ion parameters, so two ions in different pores feed two windows of one PMF.
    ``start=None`` minimises the built positions with the ions placed at their centres; otherwise the run
    continues from the given end state (positions, velocities), the restraints pulling the ions to their
    new centres during the equilibration."""

    def __init__(self, built, ion_indices, pore_xy_nm, plan: AdaptivePlan, *, timestep_fs: float = 4.0,
                 flat_bottom_radius_nm: float = 0.3, k_xy_kj_per_mol_nm2: float = 1000.0, friction_per_ps: float = 1.0,
                 seed: int = 1, platform: str = "CPU"):  # fmt: skip
        import openmm

        from ._system import select_platform

        self.built, self.plan = built, plan
        self.ions = [int(i) for i in ion_indices]
        self.pore_xy = np.asarray(pore_xy_nm, dtype=float).reshape(len(self.ions), 2)
        self.box = np.diag(np.asarray(built.box_vectors_nm, dtype=float))
        self.dt_fs = float(timestep_fs)
        steps = plan.sample_every_ps * 1000.0 / self.dt_fs
        if abs(steps - round(steps)) > 1e-6:
            raise bad_argument("timestep_fs", f"must divide sample_every_ps = {plan.sample_every_ps:g} ps", timestep_fs)
        self.every = round(steps)
        system = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(built.system))
        force = openmm.CustomExternalForce(
            "0.5*umb_kz*dz^2 + 0.5*umb_kxy*max(0, r - umb_rflat)^2;"
            "dz = periodicdistance(0, 0, z, 0, 0, z0); r = periodicdistance(x, y, 0, px, py, 0)"
        )
        force.addGlobalParameter("umb_kz", plan.k_z_kj_per_mol_nm2)
        force.addGlobalParameter("umb_kxy", float(k_xy_kj_per_mol_nm2))
        force.addGlobalParameter("umb_rflat", float(flat_bottom_radius_nm))
        for name in ("z0", "px", "py"):
            force.addPerParticleParameter(name)
        for ion, xy in zip(self.ions, self.pore_xy, strict=True):
            force.addParticle(ion, [0.0, float(xy[0]), float(xy[1])])
        force.setName("UmbrellaPerIon")
        self.force = force
        system.addForce(force)
        platform_obj, props = select_platform(platform)
        from . import _units as unit

        integrator = openmm.LangevinMiddleIntegrator(
            plan.temperature_k * unit.kelvin, friction_per_ps / unit.picosecond, self.dt_fs * unit.femtoseconds
        )
        integrator.setRandomNumberSeed(int(seed))
        self.integrator = integrator
        self.context = openmm.Context(system, integrator, platform_obj, props)
        self.context.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in np.asarray(built.box_vectors_nm).tolist()])
        self.seed = int(seed)
        self.platform = platform_obj.getName()
        n_pores = max(1, len(getattr(built, "pore_centres_nm", [])))
        self.record_meta = {  # what MBAR's lateral (standard-state) correction reads from each window file
            "settings_flat_bottom_radius_nm": float(flat_bottom_radius_nm),
            "settings_k_xy_kj_per_mol_nm2": float(k_xy_kj_per_mol_nm2),
            "reference_area_nm2": float(self.box[0] * self.box[1] / n_pores),
            "settings_timestep_fs": self.dt_fs,
            "system_cutoff_nm": float(getattr(built, "cutoff_nm", float("nan"))),
            "membrane_sheet": str(getattr(built, "sheet", "frozen")),
            "platform": self.platform,
        }

    def sample(self, z0s, *, equilibration_ps: float, sampling_ps: float, start):
        """Run one window per centre in ``z0s`` (nm; at most one per restrained ion): equilibrate ``equilibration_ps``,
        then record every ``sample_every_ps`` for ``sampling_ps``. Returns ``(z, r, end)``: per window the ion's z from
        the membrane plane and lateral distance from its pore axis (nm, minimum-imaged), and the end positions/velocities."""
        import openmm

        from . import _units as u

        if len(z0s) > len(self.ions):
            raise bad_argument("z0s", f"must give at most {len(self.ions)} window centres (one per restrained ion)", z0s)
        z0_all = list(z0s) + [float(z0s[-1])] * (len(self.ions) - len(z0s))  # a spare ion shadows the last window
        for k, (ion, xy) in enumerate(zip(self.ions, self.pore_xy, strict=True)):
            self.force.setParticleParameters(k, ion, [float(z0_all[k]), float(xy[0]), float(xy[1])])
        self.force.updateParametersInContext(self.context)
        if start is None:
            pos = np.array(self.built.positions_nm, dtype=float)
            for ion, xy, z0 in zip(self.ions, self.pore_xy, z0_all, strict=True):
                pos[ion] = [xy[0], xy[1], z0]
            self.context.setPositions(pos * u.nanometer)
            openmm.LocalEnergyMinimizer.minimize(self.context)
            self.context.setVelocitiesToTemperature(self.plan.temperature_k * u.kelvin, self.seed)
        else:
            pos, vel = start
            self.context.setPositions(pos * u.nanometer)
            self.context.setVelocities(vel * (u.nanometer / u.picosecond))
        if equilibration_ps > 0:
            self.integrator.step(round(equilibration_ps * 1000.0 / self.dt_fs))
        n = round(sampling_ps / self.plan.sample_every_ps)
        xyz = np.empty((n, len(self.ions), 3))
        for j in range(n):
            self.integrator.step(self.every)
            p = self.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(u.nanometer)
            xyz[j] = p[self.ions]
        st = self.context.getState(getPositions=True, getVelocities=True)
        end = (st.getPositions(asNumpy=True).value_in_unit(u.nanometer),
               st.getVelocities(asNumpy=True).value_in_unit(u.nanometer / u.picosecond))  # fmt: skip
        mz = float(getattr(self.built, "membrane_z_nm", 0.0))
        z = xyz[:, :, 2] - mz
        z -= self.box[2] * np.round(z / self.box[2])
        d = xyz[:, :, :2] - self.pore_xy[None]
        d -= self.box[:2] * np.round(d / self.box[:2])
        r = np.hypot(d[..., 0], d[..., 1])
        return list(z.T[: len(z0s)]), list(r.T[: len(z0s)]), end


def partner_pores(built, min_distance_nm: float = 1.5) -> tuple[int, int]:
    """The two pores of ``built`` farthest apart laterally (minimum image), refused below ``min_distance_nm``
    (1.5 nm: the paper's pore spacing is 1.5–1.7 nm; the 2 × 1 cell at 1.6 nm spacing puts its farthest pair
    1.56 nm apart; whether the partner changes the mean force is measured, not assumed)."""
    c = np.asarray(built.pore_centres_nm, dtype=float)[:, :2]
    edges = np.diag(np.asarray(built.box_vectors_nm, dtype=float))[:2]
    best, pair = -1.0, (0, 0)
    for i in range(len(c)):
        for j in range(i + 1, len(c)):
            d = c[j] - c[i]
            d -= edges * np.round(d / edges)
            if np.hypot(*d) > best:
                best, pair = float(np.hypot(*d)), (i, j)
    if best < min_distance_nm:
        raise bad_argument("built", f"must have two pores at least {min_distance_nm} nm apart (use more cells)", best)
    return pair
