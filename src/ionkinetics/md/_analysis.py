"""Analysis of MD trajectories, on arrays: membrane crossings → current and conductance,
per-pore occupancy → w(t), open/blocked dwell times → trapping and escape rates.

Everything here is numpy on in-memory arrays, so a run's on-disk record, a slice of it (drop
the equilibration, keep one bias level of a step protocol) or a synthetic trajectory feeds it
the same way. What a record has to provide:

================  ============================  ==================================================
argument          shape / type                  meaning
================  ============================  ==================================================
positions_nm      (n_frames, n_ions, 3) float   every ion's position per frame, nm, wrapped or not
z_nm              (n_frames, n_ions) float      the z column of ``positions_nm``
species           n_ions str                    ion names of :mod:`ionkinetics.species` (``"K+"``)
dt_ns             float > 0                     time between consecutive frames (uniform)
box_nm            (3,) float > 0                orthorhombic box edges L_x, L_y, L_z (constant: NVT)
membrane_z_nm     float                         z of the membrane plane (any periodic image)
pore_centres_nm   (n_pores, 2) float            xy of the pore centres (any periodic image)
v                 float, volts                  bias ΔV = E_z·L_z during the frames analysed
================  ============================  ==================================================

Conventions
-----------
* **Sign.** Positive current is positive charge carried toward +z. The runner's field
  E_z = V/L_z pushes cations toward +z for V > 0, so an ohmic membrane has G = I/V > 0, and an
  anion moving −z adds positive current.
* **Unwrapping.** z is unwrapped by the minimum image between consecutive frames, so no ion may
  move L_z/2 or more between two frames (MD frames a few ps apart move an ion ~0.1 nm;
  :attr:`Crossings.max_step_nm` reports the largest step seen). A wrap from the top of the box to
  the bottom is a step of a few Å in unwrapped z, not a crossing.
* **Crossings, with hysteresis.** The membrane and its images sit at z_m + k·L_z. A crossing
  counts when an ion that was last seen clearly on one side (more than ``hysteresis_nm`` = d from
  every membrane image) is next seen clearly on the other: it has to go from below z_m − d to
  above z_m + d (an up crossing) or back (a down crossing). Jitter inside the band |z − z_m| ≤ d
  never counts. An ion that starts (or ends) inside the band has no side there, so a transit
  begun before the first frame or unfinished at the last is not counted. Default d = 0.5 nm:
  more than the reach of an ion bound in the pore or plugging an entrance (≲ 0.35 nm from the
  sheet), so a bound dopant never counts, and much less than half the water slab.
* **Current.** I = Σ_i q_i·e·n_net,i / T with T = (n_frames − 1)·dt_ns; one e per ns is
  160.2176634 pA. Its standard error comes from a non-overlapping block bootstrap of the per-frame
  net charge transfer (default blocks of 1 ns, long against ion-hop and recrossing correlations,
  which last ps to tens of ps; at least two blocks required), with an explicit seed.
* **Sites.** The default site is a cylinder of radius 0.4 nm and half-height 0.5 nm about each
  pore axis, covering the pore and both entrances (pores are 1.5–1.7 nm apart, so sites of
  neighbours never overlap); minimum image in x, y and z. Any object with ``contains``,
  ``reach_xy_nm``, ``reach_z_nm`` and ``to_dict`` (see :class:`Site`) can replace it.
* **Dwell times.** A pore is blocked while its site holds at least one ion of a blocker species.
  Per state, rate = n_events / exposure (maximum likelihood for exponential dwells), exposure
  counted in frame steps that start in the state, so every pore contributes (n_frames − 1)·dt_ns.
  The last interval is right-censored: exposure, no event. The first interval began before the
  first frame (left-censored), but for a memoryless (Markov) pore the time from the first frame to
  its end is itself exponential with the same rate (left truncation, delayed entry), so it adds its
  exposure *and* its event; this is the exact path likelihood. Standard errors from the Fisher
  information, k/√n, optionally a bootstrap over intervals. An optional short-dwell filter treats
  any run shorter than ``min_dwell_frames`` frames as a recrossing and gives it the state that
  was last held for at least that long (default 1: no filter). The filter loses real dwells
  shorter than min_dwell_frames·dt_ns, a relative bias of about k·min_dwell_frames·dt_ns on each
  rate; frame sampling adds a bias of order k·dt_ns. Keep both ≪ 1.

Bad input raises ``ValueError`` naming the argument, the rule and the value received.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .. import species as _species
from .._checks import bad_argument, check_real
from .._io import write_json_atomic
from ..constants import ELEMENTARY_CHARGE_C

__all__ = [
    "DEFAULT_BLOCK_NS",
    "DEFAULT_HYSTERESIS_NM",
    "DEFAULT_N_BOOTSTRAP",
    "PA_PER_E_PER_NS",
    "SCHEMA",
    "Crossings",
    "Current",
    "CylinderSite",
    "DwellAnalysis",
    "Intervals",
    "Occupancy",
    "RateEstimate",
    "Site",
    "analyze_trajectory",
    "block_bootstrap_se",
    "count_crossings",
    "dwell_intervals",
    "dwell_times",
    "filter_short_dwells",
    "ionic_current",
    "pore_occupancy",
    "unwrap_z",
]

SCHEMA = "ionkinetics.md-analysis/1"
PA_PER_E_PER_NS = ELEMENTARY_CHARGE_C / 1e-9 * 1e12  # one elementary charge per ns, in pA
DEFAULT_HYSTERESIS_NM = 0.5
DEFAULT_BLOCK_NS = 1.0
DEFAULT_N_BOOTSTRAP = 1000
DEFAULT_SITE_RADIUS_NM = 0.4
DEFAULT_SITE_HALF_HEIGHT_NM = 0.5
_CHUNK_ELEMENTS = 4_000_000  # working-set size of the chunked loops (elements)


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------


def _integer(name: str, value, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < minimum:
        raise bad_argument(name, f"must be an integer >= {minimum}", value)
    return int(value)


def _array(name: str, value, dims: tuple[str | int, ...]) -> np.ndarray:
    """A finite float64 array whose shape matches ``dims`` (ints are fixed sizes, str free names)."""
    want = "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array of shape {want}; got {type(value).__name__}") from None
    if a.ndim != len(dims) or any(isinstance(d, int) and a.shape[k] != d for k, d in enumerate(dims)):
        raise ValueError(f"{name} must have shape {want}; got shape {a.shape}")
    bad = ~np.isfinite(a)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} must be finite everywhere (no NaN or inf); got {a[where]} at index {where}")
    return a


def _labels(name: str, value, n: int) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ValueError(f"{name} must be a sequence of {n} ion names, one per ion; got the single str {value!r}")
    labels = tuple(value)
    if len(labels) != n:
        raise ValueError(f"{name} must name every ion: {n} labels; got {len(labels)}")
    for lab in labels:
        if not isinstance(lab, str):
            raise ValueError(f"{name} must contain ion names (str); got {lab!r}")
    return labels


def _unique(labels: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(labels))


def _charges(species_s: Sequence[str], charges: Mapping[str, int] | None) -> np.ndarray:
    q = []
    for name in species_s:
        if charges is not None and name in charges:
            q.append(check_real(f"charges[{name!r}]", charges[name], "must be a finite number", convert=True))
        elif name in _species.IONS:
            q.append(float(_species.IONS[name].charge))
        else:
            known = ", ".join(_species.IONS)
            raise ValueError(f"species must be known ion names ({known}) or be given in charges=; got {name!r}")
    return np.asarray(q)


def _blockers(value, species_s: Sequence[str]) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value)
    for name in names:
        if name not in species_s:
            present = ", ".join(species_s)
            raise ValueError(f"blockers must name species present in the trajectory ({present}); got {name!r}")
    return names


def _min_image(d: np.ndarray, length) -> np.ndarray:
    return d - length * np.round(d / length)


def _rng(seed) -> np.random.Generator:
    return np.random.default_rng(_integer("seed", seed, minimum=0))


# ---------------------------------------------------------------------------------------------
# bootstrap helpers
# ---------------------------------------------------------------------------------------------


def block_bootstrap_se(x_t, *, block_len: int, n_bootstrap: int = DEFAULT_N_BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """Standard error of the mean of a correlated series by a non-overlapping block bootstrap.

    ``x_t`` has shape (n, ...); the series is cut into ``n // block_len`` blocks of ``block_len``
    samples (a trailing partial block is left out of the resampling), blocks are drawn with
    replacement ``n_bootstrap`` times with ``numpy.random.default_rng(seed)``, and the spread of the
    resampled means, scaled by √(n_used/n) to the full length, is returned with shape ``x_t.shape[1:]``.
    Blocks must be long against the correlation time of x for the error to be honest.
    """
    x = _array("x_t", x_t, ("n", *(f"d{k}" for k in range(1, np.ndim(x_t)))))
    block_len = _integer("block_len", block_len, minimum=1)
    n_bootstrap = _integer("n_bootstrap", n_bootstrap, minimum=2)
    n = x.shape[0]
    n_blocks = n // block_len
    if n_blocks < 2:
        raise ValueError(f"block_len must leave at least 2 blocks in a series of {n} samples; got {block_len}")
    rng = _rng(seed)
    sums = x[: n_blocks * block_len].reshape((n_blocks, block_len, *x.shape[1:])).sum(axis=1)
    means = np.empty((n_bootstrap, *x.shape[1:]))
    chunk = max(1, _CHUNK_ELEMENTS // (n_blocks * max(1, math.prod(x.shape[1:]))))
    for lo in range(0, n_bootstrap, chunk):
        idx = rng.integers(0, n_blocks, size=(min(chunk, n_bootstrap - lo), n_blocks))
        means[lo : lo + idx.shape[0]] = sums[idx].sum(axis=1) / (n_blocks * block_len)
    return means.std(axis=0, ddof=1) * math.sqrt(n_blocks * block_len / n)


def _bootstrap_ratio_se(num_k: np.ndarray, den_k: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> float | None:
    """Bootstrap SE of Σnum/Σden over iid items k (resampled with replacement)."""
    m = num_k.shape[0]
    if m == 0:
        return None
    ratios = np.empty(n_bootstrap)
    chunk = max(1, _CHUNK_ELEMENTS // m)
    for lo in range(0, n_bootstrap, chunk):
        idx = rng.integers(0, m, size=(min(chunk, n_bootstrap - lo), m))
        den = den_k[idx].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios[lo : lo + idx.shape[0]] = np.where(den > 0, num_k[idx].sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)
    ratios = ratios[np.isfinite(ratios)]
    return float(ratios.std(ddof=1)) if ratios.size >= 2 else None


# ---------------------------------------------------------------------------------------------
# 1. membrane crossings, current and conductance
# ---------------------------------------------------------------------------------------------


def unwrap_z(z_nm, box_z_nm) -> np.ndarray:
    """Unwrap z (n_frames, n_ions) by the minimum image between consecutive frames, nm.

    Frame 0 is kept as given; each later frame adds the minimum-image step from the one before,
    so a wrap from the top of the box to the bottom becomes a small step. Requires every ion to
    move less than L_z/2 between frames.
    """
    z = _array("z_nm", z_nm, ("n_frames", "n_ions"))
    lz = check_real("box_z_nm", box_z_nm, "must be a finite number > 0", positive=True, convert=True)
    out = np.empty_like(z)
    out[:1] = z[:1]
    if z.shape[0] > 1:
        np.cumsum(_min_image(np.diff(z, axis=0), lz), axis=0, out=out[1:])
        out[1:] += z[:1]
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class Crossings:
    """Membrane crossings of every ion in one trajectory (see the module notes for the rules).

    ``up_i``/``down_i`` count crossings toward +z/−z per ion; ``dn_ts`` is the net number of +z
    crossings completed at each frame step (n_frames − 1, n_species), summed over the ions of
    each species ``species_s`` (charges ``charge_s``, in e).
    """

    species_i: tuple[str, ...]
    species_s: tuple[str, ...]
    charge_s: np.ndarray
    up_i: np.ndarray
    down_i: np.ndarray
    dn_ts: np.ndarray
    dt_ns: float
    hysteresis_nm: float
    max_step_nm: float

    @property
    def n_frames(self) -> int:
        """Number of trajectory frames the crossings were counted over."""
        return self.dn_ts.shape[0] + 1

    @property
    def duration_ns(self) -> float:
        """Time spanned by the frames, (n_frames − 1)·dt_ns, in ns."""
        return (self.n_frames - 1) * self.dt_ns

    @property
    def net_i(self) -> np.ndarray:
        """(n_ions,) net crossings of each ion toward +z (``up_i − down_i``)."""
        return self.up_i - self.down_i

    def by_species(self) -> dict[str, dict[str, int]]:
        """{species: {"up", "down", "net", "charge_e"}}, JSON-ready."""
        labels = np.asarray(self.species_i)
        out = {}
        for name, q in zip(self.species_s, self.charge_s, strict=True):
            mask = labels == name
            up, down = int(self.up_i[mask].sum()), int(self.down_i[mask].sum())
            out[name] = {"up": up, "down": down, "net": up - down, "charge_e": float(q)}
        return out


def count_crossings(
    z_nm,
    species: Sequence[str],
    *,
    box_z_nm: float,
    membrane_z_nm: float,
    dt_ns: float,
    hysteresis_nm: float = DEFAULT_HYSTERESIS_NM,
    charges: Mapping[str, int] | None = None,
) -> Crossings:
    """Count membrane crossings per ion from z positions (n_frames, n_ions), nm.

    ``species`` labels each ion (known ion names, or names given charges in ``charges`` (e)).
    A crossing needs the ion to pass from beyond −``hysteresis_nm`` to beyond +``hysteresis_nm``
    of a membrane image (or back); periodic wraps and flicker inside the band never count.
    ``hysteresis_nm`` must lie in [0, L_z/2); 0 switches the hysteresis off.
    """
    z = _array("z_nm", z_nm, ("n_frames", "n_ions"))
    if z.shape[0] < 2:
        raise ValueError(f"z_nm must hold at least 2 frames; got shape {z.shape}")
    lz = check_real("box_z_nm", box_z_nm, "must be a finite number > 0", positive=True, convert=True)
    zm = check_real("membrane_z_nm", membrane_z_nm, "must be a finite number", convert=True)
    dt = check_real("dt_ns", dt_ns, "must be a finite number > 0", positive=True, convert=True)
    d = check_real("hysteresis_nm", hysteresis_nm, "must be a finite number", convert=True)
    if not 0.0 <= d < lz / 2:
        raise bad_argument("hysteresis_nm", f"must lie in [0, box_z_nm/2) = [0, {lz / 2}) nm", hysteresis_nm)
    species_i = _labels("species", species, z.shape[1])
    species_s = _unique(species_i)
    charge_s = _charges(species_s, charges)

    n_f, n_i = z.shape
    species_k = np.asarray([species_s.index(name) for name in species_i])
    up_i = np.zeros(n_i, dtype=np.int64)
    down_i = np.zeros(n_i, dtype=np.int64)
    dn_ts = np.zeros((n_f - 1, len(species_s)), dtype=np.int64)
    max_step = 0.0
    h = d / lz
    frame_f = np.arange(n_f)[:, None]
    chunk = max(1, _CHUNK_ELEMENTS // n_f)  # ions at a time: every ion is independent
    for lo in range(0, n_i, chunk):
        zc = z[:, lo : lo + chunk]
        step = _min_image(np.diff(zc, axis=0), lz)
        max_step = max(max_step, float(np.abs(step).max()))
        s = np.empty_like(zc)  # unwrapped, in units of L_z from the membrane: images at integer s
        s[:1] = zc[:1]
        np.cumsum(step, axis=0, out=s[1:])
        s[1:] += zc[:1]
        s -= zm
        s /= lz
        cell = np.floor(s)  # the slab between membrane images c and c + 1
        frac = s - cell
        clear = (frac > h) & (frac < 1.0 - h)  # outside every hysteresis band
        last = np.where(clear, frame_f, -1)
        np.maximum.accumulate(last, axis=0, out=last)  # the last frame each ion was clearly on one side
        side = np.take_along_axis(cell, np.maximum(last, 0), axis=0)
        dn = np.where(last[:-1] >= 0, np.rint(side[1:] - side[:-1]), 0.0).astype(np.int64)
        up_i[lo : lo + chunk] = np.clip(dn, 0, None).sum(axis=0)
        down_i[lo : lo + chunk] = np.clip(-dn, 0, None).sum(axis=0)
        for k in np.unique(species_k[lo : lo + chunk]):
            dn_ts[:, k] += dn[:, species_k[lo : lo + chunk] == k].sum(axis=1)
    return Crossings(
        species_i=species_i,
        species_s=species_s,
        charge_s=charge_s,
        up_i=up_i,
        down_i=down_i,
        dn_ts=dn_ts,
        dt_ns=dt,
        hysteresis_nm=d,
        max_step_nm=max_step,
    )


@dataclasses.dataclass(frozen=True, eq=False)
class Current:
    """Ionic current through the membrane and its block-bootstrap standard error.

    ``conductance_ps`` is I/V, ``None`` when no bias was given or V = 0 (G undefined).
    ``block_ns`` is the block length actually used (a whole number of frames).
    """

    current_pa: float
    current_se_pa: float
    current_by_species_pa: dict[str, float]
    current_se_by_species_pa: dict[str, float]
    v: float | None
    conductance_ps: float | None
    conductance_se_ps: float | None
    block_ns: float
    n_blocks: int
    n_bootstrap: int
    seed: int


def ionic_current(
    crossings: Crossings,
    *,
    v: float | None = None,
    block_ns: float = DEFAULT_BLOCK_NS,
    n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
    seed: int = 0,
) -> Current:
    """Current (pA) from net charge transfer, conductance (pS) = I/V, block-bootstrap errors.

    I = Σ_i q_i·e·n_net,i / T over the whole trajectory. Errors: non-overlapping blocks of
    ``block_ns`` (rounded to whole frames), resampled ``n_bootstrap`` times with
    ``numpy.random.default_rng(seed)``; the run must hold at least 2 blocks.
    """
    if not isinstance(crossings, Crossings):
        raise TypeError(f"crossings must be the Crossings from count_crossings; got {type(crossings).__name__}")
    block = check_real("block_ns", block_ns, "must be a finite number > 0", positive=True, convert=True)
    n_bootstrap = _integer("n_bootstrap", n_bootstrap, minimum=2)
    seed = _integer("seed", seed, minimum=0)
    v = None if v is None else check_real("v", v, "must be a finite number", convert=True)
    dt = crossings.dt_ns
    n_steps = crossings.dn_ts.shape[0]
    block_len = max(1, round(block / dt))
    n_blocks = n_steps // block_len
    if n_blocks < 2:
        raise ValueError(
            f"block_ns must leave at least 2 blocks in the {crossings.duration_ns:g} ns run "
            f"(use a shorter block or a longer run); got {block_ns!r}"
        )
    flux_ts = crossings.dn_ts * crossings.charge_s * (PA_PER_E_PER_NS / dt)  # pA per frame step
    i_s = flux_ts.mean(axis=0)
    se_s = block_bootstrap_se(flux_ts, block_len=block_len, n_bootstrap=n_bootstrap, seed=seed)
    total = flux_ts.sum(axis=1)
    i_total = float(total.mean())
    se_total = float(block_bootstrap_se(total, block_len=block_len, n_bootstrap=n_bootstrap, seed=seed))
    g, g_se = (i_total / v, se_total / abs(v)) if v is not None and v != 0.0 else (None, None)
    return Current(
        current_pa=i_total,
        current_se_pa=se_total,
        current_by_species_pa={n: float(x) for n, x in zip(crossings.species_s, i_s, strict=True)},
        current_se_by_species_pa={n: float(x) for n, x in zip(crossings.species_s, se_s, strict=True)},
        v=v,
        conductance_ps=g,
        conductance_se_ps=g_se,
        block_ns=block_len * dt,
        n_blocks=n_blocks,
        n_bootstrap=n_bootstrap,
        seed=seed,
    )


# ---------------------------------------------------------------------------------------------
# 2. per-pore occupancy and w(t)
# ---------------------------------------------------------------------------------------------


@runtime_checkable
class Site(Protocol):
    """A binding site around a pore axis; displacements are minimum-imaged from the pore centre
    (dx, dy) and from the membrane plane (dz), in nm. ``reach_xy_nm``/``reach_z_nm`` bound the
    site (used to check that sites do not overlap their neighbours or their own images)."""

    @property
    def reach_xy_nm(self) -> float:
        """Largest lateral distance from the pore axis that can lie inside the site, in nm."""
        ...

    @property
    def reach_z_nm(self) -> float:
        """Largest distance from the membrane plane that can lie inside the site, in nm."""
        ...

    def contains(self, dx_nm: np.ndarray, dy_nm: np.ndarray, dz_nm: np.ndarray) -> np.ndarray:
        """Boolean mask, same shape as the displacements (nm), of the positions inside the site."""
        ...

    def to_dict(self) -> dict:
        """The site as a JSON-ready mapping with its ``kind`` and sizes (recorded with the analysis)."""
        ...


@dataclasses.dataclass(frozen=True)
class CylinderSite:
    """A cylinder of ``radius_nm`` about the pore axis, ``half_height_nm`` either side of the
    membrane plane: the pore and both entrances (defaults 0.4 nm and 0.5 nm)."""

    radius_nm: float = DEFAULT_SITE_RADIUS_NM
    half_height_nm: float = DEFAULT_SITE_HALF_HEIGHT_NM

    def __post_init__(self):
        object.__setattr__(
            self, "radius_nm", check_real("radius_nm", self.radius_nm, "must be a finite number > 0", positive=True, convert=True)
        )
        object.__setattr__(
            self,
            "half_height_nm",
            check_real("half_height_nm", self.half_height_nm, "must be a finite number > 0", positive=True, convert=True),
        )

    @property
    def reach_xy_nm(self) -> float:
        """The cylinder's radius, in nm."""
        return self.radius_nm

    @property
    def reach_z_nm(self) -> float:
        """The cylinder's half height, in nm."""
        return self.half_height_nm

    def contains(self, dx_nm, dy_nm, dz_nm) -> np.ndarray:
        """Boolean mask of displacements (nm) within ``radius_nm`` of the axis and ``half_height_nm`` of the plane."""
        return (dx_nm * dx_nm + dy_nm * dy_nm <= self.radius_nm**2) & (np.abs(dz_nm) <= self.half_height_nm)

    def to_dict(self) -> dict:
        """``{"kind": "cylinder", "radius_nm": ..., "half_height_nm": ...}``."""
        return {"kind": "cylinder", "radius_nm": self.radius_nm, "half_height_nm": self.half_height_nm}


@dataclasses.dataclass(frozen=True, eq=False)
class Occupancy:
    """Ions of each species in each pore's site per frame: ``count_tps`` (n_frames, n_pores, n_species)."""

    count_tps: np.ndarray
    species_s: tuple[str, ...]
    pore_centres_nm: np.ndarray
    site: Site

    def blocked_tp(self, blockers: str | Sequence[str]) -> np.ndarray:
        """(n_frames, n_pores) bool: the site holds at least one ion of a ``blockers`` species."""
        names = _blockers(blockers, self.species_s)
        cols = [self.species_s.index(n) for n in names]
        return self.count_tps[:, :, cols].sum(axis=2) > 0

    def w_t(self, blockers: str | Sequence[str]) -> np.ndarray:
        """(n_frames,) fraction of pores free of every ``blockers`` species."""
        return 1.0 - self.blocked_tp(blockers).mean(axis=1)

    def frames(self, start: int, stop: int) -> Occupancy:
        """The same counts for frames ``[start, stop)`` (a view: nothing is counted again)."""
        return dataclasses.replace(self, count_tps=self.count_tps[start:stop])


def pore_occupancy(
    positions_nm,
    species: Sequence[str],
    pore_centres_nm,
    *,
    box_nm,
    membrane_z_nm: float,
    site: Site | None = None,
) -> Occupancy:
    """Count the ions of each species inside each pore's site, per frame.

    ``positions_nm`` (n_frames, n_ions, 3), ``pore_centres_nm`` (n_pores, 2), orthorhombic
    ``box_nm`` (3,). Displacements are minimum-imaged in x, y (from each pore centre) and z (from
    the membrane plane), so pores near the periodic boundary see ions across it. Sites may not
    overlap (an ion belongs to at most one pore): 2·reach_xy below the nearest pore spacing and
    below L_x and L_y, reach_z below L_z/2. ``site`` defaults to :class:`CylinderSite`().
    """
    x = _array("positions_nm", positions_nm, ("n_frames", "n_ions", 3))
    box = _array("box_nm", box_nm, (3,))
    if np.any(box <= 0):
        raise bad_argument("box_nm", "must hold three box edges > 0 (L_x, L_y, L_z in nm)", box.tolist())
    c = _array("pore_centres_nm", pore_centres_nm, ("n_pores", 2))
    if c.shape[0] < 1:
        raise ValueError(f"pore_centres_nm must hold at least one pore; got shape {c.shape}")
    zm = check_real("membrane_z_nm", membrane_z_nm, "must be a finite number", convert=True)
    site = CylinderSite() if site is None else site
    if not isinstance(site, Site):
        raise TypeError(f"site must provide contains(), reach_xy_nm, reach_z_nm and to_dict(); got {type(site).__name__}")
    species_i = _labels("species", species, x.shape[1])
    species_s = _unique(species_i)

    rxy, rz = float(site.reach_xy_nm), float(site.reach_z_nm)
    if 2 * rxy >= min(box[0], box[1]):
        raise bad_argument("site", f"must fit its own periodic images: 2·reach_xy_nm < min(L_x, L_y) = {min(box[:2])} nm", site)
    if rz >= box[2] / 2:
        raise bad_argument("site", f"must fit its own periodic images: reach_z_nm < L_z/2 = {box[2] / 2} nm", site)
    if c.shape[0] > 1:
        dc = _min_image(c[:, None, :] - c[None, :, :], box[:2])
        dist = np.sqrt((dc**2).sum(-1))[np.triu_indices(c.shape[0], 1)]
        if 2 * rxy >= dist.min():
            raise bad_argument(
                "site", f"must not overlap its neighbours: 2·reach_xy_nm < the nearest pore spacing {dist.min():.4g} nm", site
            )

    n_f, n_i, n_p = x.shape[0], x.shape[1], c.shape[0]
    labels = np.asarray(species_i)
    masks = [labels == name for name in species_s]
    count = np.zeros((n_f, n_p, len(species_s)), dtype=np.int64)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n_i * n_p))
    for lo in range(0, n_f, chunk):
        xc = x[lo : lo + chunk]
        dx = _min_image(xc[:, :, None, 0] - c[None, None, :, 0], box[0])
        dy = _min_image(xc[:, :, None, 1] - c[None, None, :, 1], box[1])
        dz = np.broadcast_to(_min_image(xc[:, :, 2] - zm, box[2])[:, :, None], dx.shape)
        inside = np.asarray(site.contains(dx, dy, dz), dtype=bool)  # (frames, ions, pores)
        for k, mask in enumerate(masks):
            count[lo : lo + chunk, :, k] = inside[:, mask, :].sum(axis=1)
    return Occupancy(count_tps=count, species_s=species_s, pore_centres_nm=c, site=site)


# ---------------------------------------------------------------------------------------------
# 3. dwell times and rates
# ---------------------------------------------------------------------------------------------


def _indicator(name: str, value) -> np.ndarray:
    """A (n_frames, n_pores) bool array from a 0/1 or bool series, (n_frames,) or (n_frames, n_pores)."""
    a = np.asarray(value)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] < 2 or a.shape[1] < 1:
        raise ValueError(
            f"{name} must have shape (n_frames,) or (n_frames, n_pores) with n_frames >= 2; got shape {np.shape(value)}"
        )
    if a.dtype != np.bool_:
        if not np.issubdtype(a.dtype, np.number):
            raise ValueError(f"{name} must be bool or 0/1; got dtype {a.dtype}")
        ok = (a == 0) | (a == 1)
        if not ok.all():
            where = tuple(int(i) for i in np.argwhere(~ok)[0])
            raise ValueError(f"{name} must be bool or 0/1 (1 = blocked); got {a[where]!r} at index {where}")
        a = a != 0
    return a


def _runs(x_t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run-length encoding of a 1-D bool series: (starts, lengths, states)."""
    change = np.flatnonzero(x_t[1:] != x_t[:-1]) + 1
    starts = np.concatenate(([0], change))
    lengths = np.diff(np.concatenate((starts, [x_t.shape[0]])))
    return starts, lengths, x_t[starts]


def filter_short_dwells(blocked_tp, min_dwell_frames: int) -> np.ndarray:
    """Relabel runs shorter than ``min_dwell_frames`` frames as recrossings.

    Works on (n_frames,) or (n_frames, n_pores) series (returned as the same shape, bool). A run
    of fewer than ``min_dwell_frames`` frames takes the state last held for at least
    ``min_dwell_frames`` frames (runs before the first such run take that run's state; with no
    such run the whole series takes its first state). 1 returns the series unchanged.
    """
    m = _integer("min_dwell_frames", min_dwell_frames, minimum=1)
    x = _indicator("blocked_tp", blocked_tp)
    out = x.copy()
    if m > 1:
        for p in range(x.shape[1]):
            _, lengths, states = _runs(x[:, p])
            long_runs = np.flatnonzero(lengths >= m)
            held = bool(states[long_runs[0]]) if long_runs.size else bool(states[0])
            new = np.empty_like(states)
            for k in range(states.shape[0]):
                if lengths[k] >= m:
                    held = bool(states[k])
                new[k] = held
            out[:, p] = np.repeat(new, lengths)
    return out[:, 0] if np.ndim(blocked_tp) == 1 else out


@dataclasses.dataclass(frozen=True, eq=False)
class Intervals:
    """Open and blocked intervals of every pore, one entry k per interval.

    ``exposure_ns_k`` is the time at risk: frame steps that start in the interval's state times
    dt_ns (n_frames_k steps, one fewer for the last interval of a pore). ``event_k`` is true when
    the interval ends in an observed transition; ``left_censored_k`` marks a pore's first interval
    (begun before the first frame), ``right_censored_k`` its last (unfinished at the last frame).
    """

    pore_k: np.ndarray
    blocked_k: np.ndarray
    start_frame_k: np.ndarray
    n_frames_k: np.ndarray
    exposure_ns_k: np.ndarray
    event_k: np.ndarray
    left_censored_k: np.ndarray
    right_censored_k: np.ndarray


def dwell_intervals(blocked_tp, *, dt_ns: float) -> Intervals:
    """Split (n_frames,) or (n_frames, n_pores) open/blocked series (true = blocked) into intervals."""
    x = _indicator("blocked_tp", blocked_tp)
    dt = check_real("dt_ns", dt_ns, "must be a finite number > 0", positive=True, convert=True)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("pore", "blocked", "start", "n", "steps", "event", "left", "right")}
    for p in range(x.shape[1]):
        starts, lengths, states = _runs(x[:, p])
        r = starts.shape[0]
        last = np.arange(r) == r - 1
        cols["pore"].append(np.full(r, p))
        cols["blocked"].append(states)
        cols["start"].append(starts)
        cols["n"].append(lengths)
        cols["steps"].append(lengths - last)
        cols["event"].append(~last)
        cols["left"].append(np.arange(r) == 0)
        cols["right"].append(last)
    c = {k: np.concatenate(v) for k, v in cols.items()}
    return Intervals(
        pore_k=c["pore"],
        blocked_k=c["blocked"].astype(bool),
        start_frame_k=c["start"],
        n_frames_k=c["n"],
        exposure_ns_k=c["steps"] * dt,
        event_k=c["event"].astype(bool),
        left_censored_k=c["left"].astype(bool),
        right_censored_k=c["right"].astype(bool),
    )


@dataclasses.dataclass(frozen=True, eq=False)
class RateEstimate:
    """An exponential rate from censored dwell times: k = n_events / exposure_ns.

    ``rate_per_ns`` is ``None`` when the state was never visited (no exposure); ``se_per_ns``
    (Fisher, k/√n) is ``None`` when there was no event; ``se_boot_per_ns`` when not bootstrapped.
    """

    rate_per_ns: float | None
    se_per_ns: float | None
    se_boot_per_ns: float | None
    n_events: int
    exposure_ns: float


@dataclasses.dataclass(frozen=True, eq=False)
class DwellAnalysis:
    """Trapping (open → blocked) and escape (blocked → open) rates with their intervals."""

    trap: RateEstimate
    escape: RateEstimate
    intervals: Intervals
    dt_ns: float
    min_dwell_frames: int


def _rate(intervals: Intervals, blocked: bool, n_bootstrap: int, rng: np.random.Generator | None) -> RateEstimate:
    sel = intervals.blocked_k == blocked
    events = intervals.event_k[sel].astype(np.float64)
    exposure_k = intervals.exposure_ns_k[sel]
    n, exposure = int(events.sum()), float(exposure_k.sum())
    if exposure <= 0.0:
        return RateEstimate(None, None, None, n, exposure)
    k = n / exposure
    se_boot = _bootstrap_ratio_se(events, exposure_k, n_bootstrap, rng) if rng is not None and n > 0 else None
    return RateEstimate(k, k / math.sqrt(n) if n > 0 else None, se_boot, n, exposure)


def dwell_times(
    blocked_tp,
    *,
    dt_ns: float,
    min_dwell_frames: int = 1,
    n_bootstrap: int = 0,
    seed: int = 0,
) -> DwellAnalysis:
    """Trapping and escape rates (per ns) from open/blocked series, censoring included.

    ``blocked_tp``: (n_frames,) or (n_frames, n_pores), true (or 1) where the pore is blocked.
    Runs shorter than ``min_dwell_frames`` are first relabelled by :func:`filter_short_dwells`.
    Rates are n_events / exposure per state (module notes: right-censored intervals add exposure
    only; left-censored ones, by memorylessness, exposure and event). Fisher errors always;
    with ``n_bootstrap`` ≥ 2 also a bootstrap over intervals with ``numpy.random.default_rng(seed)``.
    """
    dt = check_real("dt_ns", dt_ns, "must be a finite number > 0", positive=True, convert=True)
    m = _integer("min_dwell_frames", min_dwell_frames, minimum=1)
    n_bootstrap = _integer("n_bootstrap", n_bootstrap, minimum=0)
    if n_bootstrap == 1:
        raise bad_argument("n_bootstrap", "must be 0 (no bootstrap) or >= 2", n_bootstrap)
    x = filter_short_dwells(_indicator("blocked_tp", blocked_tp), m)
    intervals = dwell_intervals(x, dt_ns=dt)
    seed = _integer("seed", seed, minimum=0)
    rng = _rng(seed) if n_bootstrap else None
    return DwellAnalysis(
        trap=_rate(intervals, False, n_bootstrap, rng),
        escape=_rate(intervals, True, n_bootstrap, rng),
        intervals=intervals,
        dt_ns=dt,
        min_dwell_frames=m,
    )


# ---------------------------------------------------------------------------------------------
# 4. one run, bundled
# ---------------------------------------------------------------------------------------------


def _opt(x) -> float | None:
    return None if x is None else float(x)


def _rate_record(r: RateEstimate, iv, blocked: bool) -> dict:
    """One dwell rate and its interval counts (``blocked``: the escape side), JSON-ready."""
    sel = iv.blocked_k == blocked
    return {
        "rate_per_ns": _opt(r.rate_per_ns),
        "se_per_ns": _opt(r.se_per_ns),
        "se_boot_per_ns": _opt(r.se_boot_per_ns),
        "n_events": r.n_events,
        "exposure_ns": r.exposure_ns,
        "n_intervals": int(sel.sum()),
        "n_right_censored": int((sel & iv.right_censored_k).sum()),
        "n_left_censored": int((sel & iv.left_censored_k).sum()),
    }


def _analysis_record(crossings, occ, current, dwell, blocked_tp, names, site, box, membrane_z_nm, metadata) -> dict:
    """The analysis of one run as :func:`analyze_trajectory` returns and writes it (schema ``SCHEMA``)."""
    w_t = 1.0 - blocked_tp.mean(axis=1)
    result = {
        "schema": SCHEMA,
        "run": dict(metadata) if metadata is not None else None,
        "n_frames": crossings.n_frames,
        "dt_ns": crossings.dt_ns,
        "duration_ns": crossings.duration_ns,
        "box_nm": [float(b) for b in box],
        "membrane_z_nm": float(membrane_z_nm),
        "n_pores": int(occ.pore_centres_nm.shape[0]),
        "v": current.v,
        "current_pa": current.current_pa,
        "current_se_pa": current.current_se_pa,
        "conductance_ps": current.conductance_ps,
        "conductance_se_ps": current.conductance_se_ps,
        "w_mean": float(w_t.mean()),
        "trap_rate_per_ns": _opt(dwell.trap.rate_per_ns),
        "trap_rate_se_per_ns": _opt(dwell.trap.se_per_ns),
        "escape_rate_per_ns": _opt(dwell.escape.rate_per_ns),
        "escape_rate_se_per_ns": _opt(dwell.escape.se_per_ns),
        "n_trap_events": dwell.trap.n_events,
        "n_escape_events": dwell.escape.n_events,
        "crossings": {
            "by_species": crossings.by_species(),
            "current_by_species_pa": current.current_by_species_pa,
            "current_se_by_species_pa": current.current_se_by_species_pa,
            "max_step_nm": crossings.max_step_nm,
        },
        "occupancy": {
            "blockers": list(names),
            "mean_count_per_pore_by_species": {n: float(occ.count_tps[:, :, k].mean()) for k, n in enumerate(occ.species_s)},
            "open_fraction_by_pore": [float(1.0 - b) for b in blocked_tp.mean(axis=0)],
        },
        "dwell": {
            "trap": _rate_record(dwell.trap, dwell.intervals, False),
            "escape": _rate_record(dwell.escape, dwell.intervals, True),
        },
        "settings": {
            "hysteresis_nm": crossings.hysteresis_nm,
            "site": site.to_dict(),
            "block_ns": current.block_ns,
            "n_blocks": current.n_blocks,
            "n_bootstrap": current.n_bootstrap,
            "seed": current.seed,
            "min_dwell_frames": dwell.min_dwell_frames,
            "left_censored": "exposure and event (memoryless: left truncation)",
            "right_censored": "exposure, no event",
            "sign": "positive current = positive charge toward +z; V > 0 pushes cations toward +z",
        },
    }
    return result


def _checked_occupancy(occ, n_frames: int, species, pore_centres_nm, site) -> Occupancy:
    """A caller's precomputed occupancy, if it is of these frames, species, pores and site."""
    if not isinstance(occ, Occupancy):
        raise TypeError(f"occupancy must be an Occupancy (pore_occupancy's result) or None; got {type(occ).__name__}")
    c = _array("pore_centres_nm", pore_centres_nm, ("n_pores", 2))
    same = (
        occ.count_tps.shape[0] == n_frames
        and occ.species_s == _unique(_labels("species", species, len(species)))
        and occ.pore_centres_nm.shape == c.shape
        and np.array_equal(occ.pore_centres_nm, c)
        and occ.site == site
    )
    if not same:
        raise bad_argument("occupancy", "must be pore_occupancy of these frames, species, pores and site", occ)
    return occ


def analyze_trajectory(
    positions_nm,
    species: Sequence[str],
    *,
    dt_ns: float,
    box_nm,
    membrane_z_nm: float,
    pore_centres_nm,
    blockers: str | Sequence[str],
    v: float | None = None,
    site: Site | None = None,
    hysteresis_nm: float = DEFAULT_HYSTERESIS_NM,
    block_ns: float = DEFAULT_BLOCK_NS,
    n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
    seed: int = 0,
    min_dwell_frames: int = 1,
    charges: Mapping[str, int] | None = None,
    metadata: Mapping | None = None,
    path=None,
    occupancy: Occupancy | None = None,
) -> dict:
    """Crossings, current, conductance, occupancy, w(t) and dwell-time rates of one run, as a
    JSON-ready dict with units in the keys; written atomically to ``path`` when given.

    Inputs as in the module table; ``blockers`` are the species that block a pore (e.g. the
    dopant), and must occur in ``species`` (an empty sequence: no blockers, w ≡ 1). ``metadata``
    (JSON-ready, e.g. the run id and spec) is copied under ``"run"``. Headline keys:
    ``current_pa``, ``current_se_pa``, ``conductance_ps``, ``conductance_se_ps`` (null without a
    nonzero ``v``), ``w_mean``, ``trap_rate_per_ns``, ``trap_rate_se_per_ns``,
    ``escape_rate_per_ns``, ``escape_rate_se_per_ns``, ``n_trap_events``, ``n_escape_events``;
    details under ``"crossings"``, ``"occupancy"``, ``"dwell"`` and ``"settings"``.
    ``occupancy``: these frames' :func:`pore_occupancy` when the caller has counted it already (a
    run's segments are slices of one count, :meth:`Occupancy.frames`); it must be of these frames,
    ``species``, pores and ``site``.
    """
    x = _array("positions_nm", positions_nm, ("n_frames", "n_ions", 3))
    box = _array("box_nm", box_nm, (3,))
    if np.any(box <= 0):
        raise bad_argument("box_nm", "must hold three box edges > 0 (L_x, L_y, L_z in nm)", box.tolist())
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a mapping (JSON-ready) or None; got {type(metadata).__name__}")
    site = CylinderSite() if site is None else site
    names = _blockers(blockers, _unique(_labels("species", species, x.shape[1])))  # before any work

    crossings = count_crossings(
        x[:, :, 2],
        species,
        box_z_nm=box[2],
        membrane_z_nm=membrane_z_nm,
        dt_ns=dt_ns,
        hysteresis_nm=hysteresis_nm,
        charges=charges,
    )
    if occupancy is None:
        occ = pore_occupancy(x, species, pore_centres_nm, box_nm=box, membrane_z_nm=membrane_z_nm, site=site)
    else:
        occ = _checked_occupancy(occupancy, x.shape[0], species, pore_centres_nm, site)
    current = ionic_current(crossings, v=v, block_ns=block_ns, n_bootstrap=n_bootstrap, seed=seed)
    blocked_tp = occ.blocked_tp(names)
    dwell = dwell_times(blocked_tp, dt_ns=crossings.dt_ns, min_dwell_frames=min_dwell_frames, n_bootstrap=n_bootstrap, seed=seed)
    result = _analysis_record(crossings, occ, current, dwell, blocked_tp, names, site, box, membrane_z_nm, metadata)
    if path is not None:
        write_json_atomic(Path(path), result)
    return result
