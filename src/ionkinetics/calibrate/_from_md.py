"""Calibrations from the project's own MD runs (``ionkinetics calibrate RUN_DIRS... -o FILE``).

Input: finished run directories of ``ionkinetics md run`` (their ``analysis.json`` is written by
:func:`ionkinetics.md.analyze_run` when missing or older than the run). Runs of one pore may be

- **mixture runs** — the carrier salt and one dopant salt (the dopant is the run's blocking
  species, ``[analysis].blockers``): they give the dopant's trapping and escape rates, w(t), and
  the carrier's conductance;
- **control runs** — the carrier salt alone: they give the open-pore conductance directly.

Direct estimate (always): every constant-bias segment contributes its censored dwell-time
counts (events, time at risk, summed over pores); runs and segments at one bias are pooled and
the two rates are fitted with the kinetic core's ``center``-site Bell law
(k = k0·cosh(δV/V_T), saturated at the calibration's ceilings) by censored maximum likelihood
(:func:`fit_bell_rates`, Laplace and parametric-bootstrap errors). The open conductance per
pore, G_open(V) = I_carrier/(V·n_pores), is fitted to C·exp(α|V|) by weighted least squares in
ln G (:func:`fit_gv`): from control runs when given; otherwise from the mixture runs as
G_carrier/w (the blocked pore taken as non-conducting, ``leak_fraction`` 0 — recorded as an
assumption). With a single |V| ≠ 0 α is not identified: it is set to 0 and the file says so.

Refinement (``refine=True``): the kinetic core's differentiable fit (:func:`fit_targets`) is run
on the MD observables themselves — each run's w(t) as a ``w_trace`` target (binned, from the
observed open fraction at the first frame) and each segment's carrier conductance as a
``conductance`` target — starting from the direct estimate. This is the route for properties
the dwell counts do not see (an ``entrance`` site's two mouths) and a consistency check of the
direct estimate; both are kept in the file (``fit.md_direct``).

Provenance: the runs (directory, system, length, frames, seed, platform, spec hash, force-field
files, temperature), the total simulated time, the command, the ionkinetics version and the git
commit of the source tree when there is one.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import math
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .. import species
from .._checks import bad_argument
from .._io import git_commit
from ._calibration import (
    SCHEMA,
    Calibration,
    encounter_rate_per_ns_per_molar,
    escape_ceiling_per_ns,
    site_rates,
)
from ._gv import fit_gv
from ._rate_fit import DwellData, fit_bell_rates
from ._targets import V_SMOOTH_DEFAULT_V, Target, Targets, parameter_names

if TYPE_CHECKING:  # the MD stage imports OpenMM: read at run time only where a run is loaded
    from ..md import RunAnalysis, RunRecord, RunSettings, SegmentAnalysis

__all__ = ["MDRun", "calibrate_from_runs", "load_md_run", "md_targets"]

# w(t) enters a refinement as at most this many bin means per run (neighbouring frames are
# strongly correlated; binning keeps a trace from outweighing the conductances by sheer count).
TRACE_BINS = 40
# Relative error floor of an MD conductance target (systematic: cutoffs, finite box).
CONDUCTANCE_REL_SIGMA_FLOOR = 0.05
# Fewer observed events than this per rate are flagged in the file (the campaign target is 30).
MIN_EVENTS_PER_RATE = 30


@dataclasses.dataclass(frozen=True, eq=False)
class MDRun:
    """What a calibration needs from one finished run directory: the MD stage's own typed records,
    read once (:class:`~ionkinetics.md.RunRecord` and :class:`~ionkinetics.md.RunAnalysis`), with the
    parsed system id and the blockers the analysis counted."""

    record: RunRecord
    analysis: RunAnalysis
    system: species.SystemId

    @property
    def run_dir(self) -> str:
        """The run folder, as text."""
        return str(self.record.run_dir)

    @property
    def blockers(self) -> tuple[str, ...]:
        """The blocking species the analysis counted a pore as occupied by."""
        return self.analysis.blockers

    @property
    def n_pores(self) -> int:
        """Number of pores in the run's membrane."""
        return self.record.system.n_pores

    @property
    def settings(self) -> RunSettings:
        """The :class:`~ionkinetics.md.RunSettings` the run was written with."""
        return self.record.settings

    @property
    def platform(self) -> str | None:
        """The OpenMM platform the run last went on (``None`` when the progress file does not say)."""
        return self.record.progress.platform

    @property
    def spec_hash(self) -> str:
        """Hash of the run's MD spec, as its record stores it."""
        return self.record.spec_hash

    @property
    def forcefield_files(self) -> tuple[str, ...]:
        """The force-field files the run's system was built with."""
        return self.record.system.forcefield_files

    @property
    def segments(self) -> tuple[SegmentAnalysis, ...]:
        """The analysis of each segment of constant bias."""
        return self.analysis.segments

    @property
    def t_ns(self) -> np.ndarray:
        """(n_frames,) times of the analysed frames, in ns."""
        return self.analysis.t_ns

    @property
    def w(self) -> np.ndarray:
        """(n_frames,) w(t): fraction of pores free of every blocker at each frame of ``t_ns``."""
        return self.analysis.w

    @property
    def v(self) -> np.ndarray:
        """(n_frames,) applied bias at each frame of ``t_ns``, in V."""
        return self.analysis.v

    @property
    def length_ns(self) -> float:
        """Simulated length of the run in ns, from its settings."""
        return float(self.settings.length_ns)

    @property
    def cations(self) -> tuple[str, ...]:
        """The system's cations, in the order of its system id."""
        return tuple(self.system.cation_molar)

    def record_dict(self) -> dict:
        """The run's provenance entry in a calibration."""
        return {
            "run_dir": self.run_dir,
            "system": str(self.system),
            "length_ns": self.length_ns,
            "frames": int(self.t_ns.size),
            "frame_ps": self.settings.frame_ps,
            "timestep_fs": self.settings.timestep_fs,
            "temperature_k": self.settings.temperature_k,
            "seed": self.settings.seed,
            "platform": self.platform,
            "spec_hash": self.spec_hash,
            "n_pores": self.n_pores,
            "blockers": list(self.blockers),
            "forcefield_files": list(self.forcefield_files),
        }


def load_md_run(run_dir, *, blockers: Sequence[str] | None = None) -> MDRun:
    """Read a finished run (``ionkinetics md run``) through the MD stage's typed records; analyse it first
    if its ``analysis.json`` is missing, older than the run, or for other ``blockers`` (default: the spec's)."""
    from ..md import analyze_run, read_run_analysis, read_run_record

    run_dir = Path(run_dir)
    try:
        rec = read_run_record(run_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise type(exc)(f"run_dirs: {str(exc).removeprefix('run_dir ')}") from None
    if rec.progress.frames_done != rec.settings.n_frames:
        raise ValueError(
            f"run_dirs: {str(run_dir)!r} is unfinished ({rec.progress.frames_done} of {rec.settings.n_frames} frames); "
            "finish it with `ionkinetics md run` (it resumes) before calibrating"
        )
    if not rec.system_id:
        raise ValueError(f"run_dirs: {str(run_dir)!r} records no system id (spec.json 'spec.system')")
    system = species.parse_system_id(rec.system_id)
    if rec.system.n_pores < 1:
        raise ValueError(f"run_dirs: {str(run_dir)!r} has no pores; a calibration needs a porous membrane")
    wanted = list(blockers) if blockers is not None else list(rec.blockers)
    analysis = read_run_analysis(run_dir, blockers=wanted) or analyze_run(run_dir, blockers=wanted, skip_ns=rec.skip_ns)
    return MDRun(record=rec, analysis=analysis, system=system)


# ---------------------------------------------------------------------------------------------
# sorting runs into roles
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Plan:
    system: species.SystemId  # the calibrated system (the mixture, or the control's single salt)
    carrier: str
    dopant: str | None
    mixture: tuple[MDRun, ...]
    controls: tuple[MDRun, ...]
    temperature_k: float


def _plan(runs: Sequence[MDRun], carrier: str | None, dopant: str | None) -> _Plan:
    if not runs:
        raise bad_argument("run_dirs", "must name at least one finished run directory", [])
    pores = {r.system.pore for r in runs}
    if len(pores) != 1:
        raise bad_argument("run_dirs", "must all be runs of one pore", sorted(pores))
    temps = {r.settings.temperature_k for r in runs}
    if len(temps) != 1:
        raise bad_argument("run_dirs", "must all be runs at one temperature", sorted(temps))
    mixture = [r for r in runs if len(r.cations) > 1]
    singles = [r for r in runs if len(r.cations) == 1]
    systems = {str(r.system) for r in mixture}
    if len(systems) > 1:
        raise bad_argument("run_dirs", "may hold runs of one mixture (plus its carrier-only controls)", sorted(systems))
    if mixture:
        system = mixture[0].system
        if len(system.cation_molar) != 2:
            raise bad_argument("run_dirs", "mixtures must have exactly two cations (a carrier and one dopant)", str(system))
        blockers = {r.blockers for r in mixture}
        if dopant is None:
            if len(blockers) != 1 or len(next(iter(blockers))) != 1:
                raise bad_argument(
                    "dopant", "must be given when the mixture runs do not name one blocking species", sorted(blockers)
                )
            dopant = next(iter(blockers))[0]
        if dopant not in system.cation_molar:
            raise bad_argument("dopant", f"must be a cation of {system} ({', '.join(system.cation_molar)})", dopant)
        others = [c for c in system.cation_molar if c != dopant]
        if carrier is None:
            carrier = others[0]
        if carrier not in others:
            raise bad_argument("carrier", f"must be the cation of {system} that is not the dopant {dopant}", carrier)
        bad_blockers = [r.run_dir for r in mixture if r.blockers != (dopant,)]
        if bad_blockers:
            raise bad_argument("run_dirs", f"mixture runs must be analysed with the dopant {dopant} as the blocker", bad_blockers)
    else:
        kinds = {r.cations[0] for r in singles}
        if len(kinds) != 1:
            raise bad_argument("run_dirs", "without a mixture run must all be of one single salt", sorted(kinds))
        carrier = carrier or next(iter(kinds))
        system = singles[0].system
        if dopant is not None:
            raise bad_argument("dopant", "needs mixture runs (two cations); the runs hold one salt", dopant)
    controls = [r for r in singles if r.cations == (carrier,)]
    strays = [r.run_dir for r in singles if r.cations != (carrier,)]
    if strays:
        raise bad_argument("run_dirs", f"single-salt runs must be controls of the carrier {carrier}", strays)
    return _Plan(system, carrier, dopant, tuple(mixture), tuple(controls), float(next(iter(temps))))


# ---------------------------------------------------------------------------------------------
# the direct estimate
# ---------------------------------------------------------------------------------------------


def _dwell_data(runs: Sequence[MDRun], which: str) -> DwellData:
    pooled: dict[float, list[float]] = {}
    for r in runs:
        for seg in r.segments:
            d = getattr(seg, which)
            if d.exposure_ns <= 0:
                continue
            acc = pooled.setdefault(seg.v, [0.0, 0.0])
            acc[0] += d.n_events
            acc[1] += d.exposure_ns
    if not pooled:
        raise ValueError(f"run_dirs: no time at risk for {which} in any segment; the runs are too short")
    v = sorted(pooled)
    return DwellData(
        v_v=np.array(v), n_events=np.array([pooled[x][0] for x in v]), exposure_ns=np.array([pooled[x][1] for x in v])
    )


def _carrier_points(runs: Sequence[MDRun], carrier: str, *, divide_by_w: bool) -> list[dict]:
    """Per-pore carrier conductance (pS) of every biased segment, with its error."""
    points = []
    for r in runs:
        for seg in r.segments:
            v = seg.v
            if v == 0.0:
                continue
            i = seg.current_by_species_pa.get(carrier, 0.0)
            se = seg.current_se_by_species_pa.get(carrier, 0.0)
            w = seg.w_mean if divide_by_w else 1.0
            g = i / v / r.n_pores / w if w > 0 else 0.0
            if not g > 0:
                raise ValueError(
                    f"run_dirs: {r.run_dir!r} segment at {v:g} V ({seg.t_start_ns:g}–{seg.t_stop_ns:g} ns) has no "
                    f"net {carrier} current in the field's direction; it is too short for a conductance"
                )
            points.append(
                {
                    "run_dir": r.run_dir,
                    "v": v,
                    "g_ps": g,
                    "se_ps": abs(se / v / r.n_pores / w),
                    "t_ns": seg.duration_ns,
                }
            )
    return points


def _open_conductance(points: list[dict]) -> tuple[dict, dict, list[str], dict]:
    v = np.array([abs(p["v"]) for p in points])
    g = np.array([p["g_ps"] for p in points])
    se = np.array([max(p["se_ps"], 1e-12 * p["g_ps"]) for p in points])
    notes = []
    if np.unique(v).size >= 2:
        fit = fit_gv(v, g, se)
        values = {"c_ps": fit.c_ps, "alpha_per_v": fit.alpha_per_v, "v_smooth_v": V_SMOOTH_DEFAULT_V}
        sig = {"open.c_ps": fit.se_c_ps, "open.alpha_per_v": fit.se_alpha_per_v}
        detail = {"method": "weighted least squares of ln G on |V|", "chi2": fit.chi2, "dof": fit.dof}
    else:
        wts = 1.0 / se**2
        c = float((wts * g).sum() / wts.sum())
        values = {"c_ps": c, "alpha_per_v": 0.0, "v_smooth_v": V_SMOOTH_DEFAULT_V}
        sig = {"open.c_ps": float(1.0 / math.sqrt(wts.sum())), "open.alpha_per_v": None}
        notes.append(f"alpha_per_v is not identified (one |V| = {v[0]:g} V measured); set to 0")
        detail = {"method": "inverse-variance mean of G at the one |V| measured", "chi2": None, "dof": None}
    detail["points"] = points
    return values, sig, notes, detail


class _RateLaw(NamedTuple):
    """A fitted center-site Bell law as calibration parameters (names as in ``parameter_names``)."""

    values: dict
    sigma: dict
    detail: dict
    fit: object  # the BellFit


def _bell(data: DwellData, *, ion: str, trap: bool, molar: float, temperature_k: float, n_bootstrap: int, seed: int) -> _RateLaw:
    k_max = encounter_rate_per_ns_per_molar(ion) * molar if trap else escape_ceiling_per_ns(ion)
    what = "trapping" if trap else "escape"
    if data.n_events.sum() == 0:
        raise ValueError(
            f"run_dirs: no {what} event of {ion} in {data.exposure_ns.sum():.4g} pore·ns at risk; run longer or at more biases"
        )
    if np.unique(np.abs(data.v_v)).size < 2:
        raise ValueError(
            f"run_dirs: the {what} rate of {ion} is seen at one |V| only "
            f"({sorted(set(np.abs(data.v_v).tolist()))}); a Bell law needs runs at two or more biases"
        )
    fit = fit_bell_rates(
        data,
        ion=ion,
        model="center",
        temperature_k=temperature_k,
        k_max_per_ns=k_max,
        molar=molar if trap else 1.0,
        bootstrap="parametric" if n_bootstrap >= 2 else None,
        n_bootstrap=max(n_bootstrap, 2),
        seed=seed,
    )
    k0 = math.exp(float(fit.theta[0]))
    delta = float(fit.theta[1])
    se_k0 = k0 * math.sqrt(max(float(fit.cov_theta[0, 0]), 0.0))
    se_delta = math.sqrt(max(float(fit.cov_theta[1, 1]), 0.0))
    which = "trap" if trap else "escape"
    k0_name = f"{ion}.{which}.k0_per_ns_per_molar" if trap else f"{ion}.{which}.k0_per_ns"
    k_max_name = f"{ion}.{which}.k_max_per_ns_per_molar" if trap else f"{ion}.{which}.k_max_per_ns"
    delta_name = f"{ion}.{which}.delta"
    detail = {
        "model": "center: k = k0*cosh(delta*V/V_T), saturated at k_max",
        "v": data.v_v.tolist(),
        "n_events": data.n_events.tolist(),
        "exposure_ns": data.exposure_ns.tolist(),
        "observed_rate_per_ns": data.naive_rate_per_ns.tolist(),
        "fitted_rate_per_ns": fit.rate_per_ns(data.v_v).tolist(),
        "log_likelihood": fit.log_likelihood,
        "delta_at_bound": list(fit.at_bound),
        "k_max_per_ns": k_max,
    }
    if fit.theta_bootstrap is not None:
        detail["bootstrap_se"] = {
            k0_name: float(np.std(np.exp(fit.theta_bootstrap[:, 0]), ddof=1)),
            delta_name: float(np.std(fit.theta_bootstrap[:, 1], ddof=1)),
        }
    return _RateLaw(
        values={k0_name: k0, delta_name: delta, k_max_name: k_max / (molar if trap else 1.0)},
        sigma={k0_name: se_k0, delta_name: se_delta},
        detail=detail,
        fit=fit,
    )


def _provenance(plan: _Plan, runs: Sequence[MDRun], command: str | None, assumptions: list[str]) -> dict:
    from .._version import __version__

    return {
        "source": "ionkinetics MD (OpenMM) runs",
        "md_runs": [r.record_dict() for r in runs],
        "mixture_runs": [r.run_dir for r in plan.mixture],
        "control_runs": [r.run_dir for r in plan.controls],
        "total_simulated_ns": float(sum(r.length_ns for r in runs)),
        "platforms": sorted({str(r.platform) for r in runs}),
        "forcefield_files": sorted({f for r in runs for f in r.forcefield_files}),
        "assumptions": assumptions,
        "contains_assumed_values": bool(assumptions),
        "command": command or " ".join(shlex.quote(a) for a in ["ionkinetics", *sys.argv[1:]]),
        "ionkinetics_version": __version__,
        "git_commit": git_commit(mark_dirty=True),
        "created_utc": datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
        "molar": dict(plan.system.cation_molar),
    }


def _compare_with_pmf(fit, pmf: dict, ion: str, temperature_k: float) -> dict:
    """The escape fit's k(0) beside Kramers/Eyring estimates from a PMF of the dopant: the escape
    barrier is the highest point between the well and bulk minus the well, max(barrier, 0) − well."""
    from ._rate_fit import compare_zero_bias

    for key in ("well_kt", "barrier_kt"):
        if not isinstance(pmf.get(key), (int, float)):
            raise bad_argument(f"pmf['{key}']", "must be a number (a pmf.json from `ionkinetics md pmf`)", pmf.get(key))
    barrier = max(float(pmf["barrier_kt"]), 0.0) - float(pmf["well_kt"])
    out = compare_zero_bias(fit, barrier_kt=barrier, ion=ion, temperature_k=temperature_k)
    out["escape_barrier_from_pmf"] = "max(barrier_kt, 0) - well_kt of the dopant's PMF"
    out["pmf"] = {k: pmf.get(k) for k in ("well_kt", "well_z_nm", "barrier_kt", "barrier_z_nm", "n_windows", "n_samples")}
    out["trapping"] = "not compared: trapping is bimolecular (per molar), a Kramers rate from one barrier is not"
    return out


def _direct(plan: _Plan, n_bootstrap: int, seed: int, pmf: dict | None = None):
    """Parameter values, sigmas, details and assumptions of the direct estimate."""
    assumptions: list[str] = []
    if plan.controls:
        points = _carrier_points(plan.controls, plan.carrier, divide_by_w=False)
        source = "control runs (carrier salt alone)"
    else:
        points = _carrier_points(plan.mixture, plan.carrier, divide_by_w=plan.dopant is not None)
        source = "mixture runs, G_carrier / w"
        if plan.dopant is not None:
            assumptions.append("open conductance from the mixture as G_carrier/w: a blocked pore is taken as non-conducting")
    open_values, sigma, notes, open_detail = _open_conductance(points)
    open_detail["source"] = source
    assumptions += notes
    values = {f"open.{k}": v for k, v in open_values.items()}
    details = {"open_conductance": open_detail}
    if plan.dopant is not None:
        ion = plan.dopant
        molar = plan.system.cation_molar[ion]
        for which, trap in (("trap", True), ("escape", False)):
            law = _bell(
                _dwell_data(plan.mixture, which),
                ion=ion,
                trap=trap,
                molar=molar,
                temperature_k=plan.temperature_k,
                n_bootstrap=n_bootstrap,
                seed=seed,
            )
            values.update(law.values)
            sigma.update(law.sigma)
            n_events = int(sum(law.detail["n_events"]))
            if n_events < MIN_EVENTS_PER_RATE:
                assumptions.append(
                    f"only {n_events} {which} events of {ion} (< {MIN_EVENTS_PER_RATE}): the {which} law is poorly determined"
                )
            details[which] = law.detail
            if not trap and pmf is not None:
                details["zero_bias_vs_pmf"] = _compare_with_pmf(law.fit, pmf, ion, plan.temperature_k)
        values[f"{ion}.leak_fraction"] = 0.0
    return values, sigma, details, assumptions


def _raw(plan: _Plan, values: dict) -> dict:
    dopants = []
    if plan.dopant is not None:
        ion = plan.dopant
        dopants.append(
            {
                "ion": ion,
                "site": "center",
                "leak_fraction": values[f"{ion}.leak_fraction"],
                "trap": site_rates(
                    "center",
                    values[f"{ion}.trap.k0_per_ns_per_molar"],
                    values[f"{ion}.trap.delta"],
                    values[f"{ion}.trap.k_max_per_ns_per_molar"],
                    trap=True,
                ),
                "escape": site_rates(
                    "center",
                    values[f"{ion}.escape.k0_per_ns"],
                    values[f"{ion}.escape.delta"],
                    values[f"{ion}.escape.k_max_per_ns"],
                    trap=False,
                ),
            }
        )
    return {
        "schema": SCHEMA,
        "system": str(plan.system),
        "temperature_k": plan.temperature_k,
        "carrier": {
            "ion": plan.carrier,
            "open_conductance": {k: values[f"open.{k}"] for k in ("c_ps", "alpha_per_v", "v_smooth_v")},
        },
        "dopants": dopants,
    }


# ---------------------------------------------------------------------------------------------
# MD observables as fit targets
# ---------------------------------------------------------------------------------------------


def _bias_steps(t_ns: np.ndarray, v: np.ndarray, frame_ns: float) -> tuple[list[float], list[float]]:
    """Change points of the bias held over each frame interval (frame i covers (t_i − dt, t_i])."""
    starts, volts = [0.0], [float(v[0])]
    for i in np.flatnonzero(np.diff(v) != 0) + 1:
        starts.append(float(t_ns[i] - frame_ns))
        volts.append(float(v[i]))
    return starts, volts


def _trace_target(r: MDRun, bins: int) -> Target:
    frame_ns = float(r.settings.frame_ps) / 1000.0
    starts, volts = _bias_steps(r.t_ns, r.v, frame_ns)
    n = r.t_ns.size
    edges = np.linspace(0, n, min(bins, n) + 1).round().astype(int)
    t = [float(r.t_ns[a:b].mean()) for a, b in itertools.pairwise(edges) if b > a]
    w = [float(r.w[a:b].mean()) for a, b in itertools.pairwise(edges) if b > a]
    # one pore's binomial spread, pooled over the trace: an upper bound on a bin mean's error
    # (averaging correlated frames narrows it, but never below the independent-pore limit)
    wbar = float(np.clip(np.mean(r.w), 0.0, 1.0))
    sigma = max(math.sqrt(wbar * (1.0 - wbar) / r.n_pores), 0.5 / r.n_pores)
    return Target(
        "w_trace",
        {"t_ns": t, "w": w, "sigma": sigma, "v_start_ns": starts, "v": volts, "w_start": float(r.w[0])},
        section=f"MD run {r.run_dir}",
        note=f"w(t) of {r.n_pores} pores, {len(t)} bin means of {n} frames; sigma = sqrt(w(1-w)/n_pores)",
    )


def md_targets(
    runs: Sequence[MDRun],
    *,
    carrier: str | None = None,
    dopant: str | None = None,
    start: dict | None = None,
    bins: int = TRACE_BINS,
) -> Targets:
    """Fit targets from MD observables — each mixture run's w(t) (``w_trace``) and each biased
    segment's carrier conductance per pore (``conductance``) — with starting values ``start``
    (parameter name → value; default: the direct estimate). Free: the dopant's k0 and δ for
    trapping and escape, and C and α of the open pore unless control runs fix them."""
    plan = _plan(runs, carrier, dopant)
    if plan.dopant is None:
        raise bad_argument("run_dirs", "need mixture runs (a dopant) for w(t) targets", [r.run_dir for r in runs])
    if start is None:
        start, _, _, _ = _direct(plan, 0, 0)
    ion = plan.dopant
    # the MD dwell fits give trapping and escape gating charges apart (not yet as one electrical
    # distance): the refinement keeps them apart, and the carrier's G is not held at a range edge
    params = {"open.v_max_v": math.inf, f"{ion}.electrical_distance": math.nan, f"{ion}.barrier_position": math.nan}
    params |= dict(start)
    free = [f"{ion}.trap.k0_per_ns_per_molar", f"{ion}.trap.delta", f"{ion}.escape.k0_per_ns", f"{ion}.escape.delta"]
    rows = [_trace_target(r, bins) for r in plan.mixture]
    points = _carrier_points(plan.mixture, plan.carrier, divide_by_w=False)
    for p in points:
        rows.append(
            Target(
                "conductance",
                {"v": p["v"], "g_ps": p["g_ps"], "rel_sigma": max(p["se_ps"] / p["g_ps"], CONDUCTANCE_REL_SIGMA_FLOOR)},
                section=f"MD run {p['run_dir']}",
                note=f"carrier {plan.carrier} current per pore over {p['t_ns']:.3g} ns",
            )
        )
    if not plan.controls:
        free += ["open.c_ps"]
        if len({abs(p["v"]) for p in points}) >= 2:
            free += ["open.alpha_per_v"]
    missing = [n for n in parameter_names(plan.carrier, [(ion, "center")]) if n not in params]
    if missing:
        raise bad_argument("start", "must give every parameter", missing)
    return Targets(
        system=plan.system,
        carrier=plan.carrier,
        dopants=((ion, "center"),),
        parameters=params,
        free=tuple(free),
        targets=tuple(rows),
        source="ionkinetics MD runs: " + ", ".join(r.run_dir for r in plan.mixture),
        assumptions=(),
        temperature_k=plan.temperature_k,
    )


# ---------------------------------------------------------------------------------------------
# the entry point
# ---------------------------------------------------------------------------------------------


def calibrate_from_runs(
    run_dirs: Sequence,
    *,
    carrier: str | None = None,
    dopant: str | None = None,
    refine: bool = False,
    n_bootstrap: int = 200,
    seed: int = 0,
    command: str | None = None,
    pmf: dict | None = None,
) -> Calibration:
    """A calibration (schema ``ionkinetics.calibration/1``) from finished MD run directories;
    module notes for what is estimated how. ``refine`` adds the fit to w(t) and G(V) targets.
    ``pmf`` (the ``pmf.json`` summary of the dopant's PMF through this pore) adds the zero-bias
    escape rate from its barrier (Kramers D/a² and Eyring k_BT/h prefactors) beside the MD fit,
    under ``fit.md_direct.details.zero_bias_vs_pmf``."""
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 0:
        raise bad_argument("n_bootstrap", "must be an integer >= 0 (0: Laplace errors only)", n_bootstrap)
    runs = [r if isinstance(r, MDRun) else load_md_run(r) for r in run_dirs]
    plan = _plan(runs, carrier, dopant)
    if pmf is not None and plan.dopant is None:
        raise bad_argument("pmf", "needs mixture runs (a dopant whose escape it describes)", "given")
    values, sigma, details, assumptions = _direct(plan, n_bootstrap, seed, pmf)
    direct = {
        "method": "censored maximum likelihood of pooled dwell counts (Bell law, center site) and G-V least squares",
        "values": values,
        "sigma": sigma,
        "details": details,
    }
    provenance = _provenance(plan, runs, command, assumptions)
    if refine and plan.dopant is not None:
        from ._fit import fit_targets

        targets = md_targets(runs, carrier=plan.carrier, dopant=plan.dopant, start=values)
        result = fit_targets(targets, n_starts=4, seed=seed, command=provenance["command"])
        cal = result.calibration
        return cal.replace(
            fit={
                **(cal.fit or {}),
                "md_direct": direct,
                "method": "optax L-BFGS on MD w(t) and G(V) targets, started from the direct estimate",
            },
            provenance={**provenance, "targets": cal.provenance["targets"]},
            data_range_v=_bias_range_v(runs),
        )
    raw = _raw(plan, values)
    raw["uncertainty"] = {
        "method": "md-direct",
        "note": (
            "1-sigma: Laplace (inverse Hessian of the censored log-likelihood) for the rates, delta method for k0; "
            "weighted least squares for C and alpha; parametric-bootstrap errors of the rates under fit.md_direct"
        ),
        "parameters": {k: {"value": values[k], "sigma": s} for k, s in sigma.items()},
        "fixed": {k: v for k, v in values.items() if k not in sigma},
    }
    raw["fit"] = {"method": direct["method"], "md_direct": direct}
    raw["provenance"] = provenance
    raw["data_range_v"] = _bias_range_v(runs)
    return Calibration.from_dict(raw)


def _bias_range_v(runs) -> list[float]:
    """Lowest and highest |V| of the runs' constant-bias segments: the range the MD data cover."""
    volts = [abs(seg.v) for r in runs for seg in r.segments]
    return [min(volts), max(volts)]
