"""Voltage-dependent rates from MD dwell times: a censored maximum-likelihood Bell-law fit.

The MD stage (:func:`ionkinetics.md.dwell_times`) reduces each bias V_b to an event count n_b and
a time at risk T_b (exposure, ns): right-censored intervals (unfinished at the end of a run) add
exposure but no event. For exponential dwells the exact log-likelihood of all intervals at one
bias depends on the data only through (n_b, T_b)::

    log L(θ) = Σ_b n_b·log k(V_b; θ) − k(V_b; θ)·T_b

with the kinetic core's saturating two-polarity Bell law (``kinetics.bell_rate_per_ns``)::

    k_bell(V) = k⁺·exp(+δ⁺·V/V_T) + k⁻·exp(−δ⁻·V/V_T),     k = 1/(1/k_bell + 1/k_max)

Models (``model=``), matching ``calibrate.site_rates``:

- ``"two_polarity"``: θ = (ln k⁺, δ⁺, ln k⁻, δ⁻), four free parameters;
- ``"center"``: θ = (ln k0, δ), k⁺ = k⁻ = k0/2, δ⁺ = δ⁻ = δ (k = k0·cosh(δV/V_T));
- ``"with_field"``: θ = (ln k0, δ), k = k0·exp(+δV/V_T) (an entrance site's trapping);
- ``"against_field"``: θ = (ln k0, δ), k = k0·exp(−δV/V_T) (an entrance site's escape).

Rates are optimised in log space; each δ is bounded to [0, |z|] (the DESIGN.md rule: a gating
charge is the ion's charge times the fraction of the field it crosses). k_max is a fixed,
known ceiling (default: none), e.g. ``escape_ceiling_per_ns(ion)``; trapping data are fitted
per molar by passing ``molar=`` (k = molar·k_per_molar(V), k_max scales with it too).

Errors: Laplace (inverse Hessian of −log L at the optimum, in the optimisation coordinates; rate
errors by the delta method, se_k = k·se_lnk) and a bootstrap with an explicit seed:
``"parametric"`` redraws n_b ~ Poisson(k̂(V_b)·T_b) at fixed exposure; ``"nonparametric"``
resamples the intervals of each bias with replacement (needs per-interval data, see
:func:`dwell_data_from_intervals`). A δ that ends on a bound makes the Laplace error of that δ
one-sided and unreliable; ``at_bound`` flags it and the bootstrap is then the error to quote.

The zero-bias rate has a second, independent estimate from the PMF barrier ΔG‡ (in k_BT)::

    k0 ≈ ν·exp(−ΔG‡/k_BT)

with a stated prefactor ν: :func:`diffusive_attempt_frequency_per_ns` (D/a², the rate at
which the ion diffuses across a site of size a — the high-friction, Kramers–Smoluchowski
scale, which is the one that applies to an ion in water) or :func:`eyring_prefactor_per_ns`
(k_BT/h ≈ 6.2 per ps at 298 K, the transition-state-theory upper bound; it ignores solvent
friction and overestimates ion rates by one to three orders of magnitude).
:func:`compare_zero_bias` reports both estimates side by side.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, overload

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

from .. import species
from .._checks import bad_argument
from ..constants import BOLTZMANN_J_PER_K, PLANCK_J_S
from ..kinetics import BellRate, bell_rate_per_ns, thermal_voltage_v
from ._calibration import escape_ceiling_per_ns

__all__ = [
    "MODELS",
    "PLANCK_J_S",
    "BellFit",
    "DwellData",
    "bell_rate_model_per_ns",
    "compare_zero_bias",
    "diffusive_attempt_frequency_per_ns",
    "dwell_data_from_estimates",
    "dwell_data_from_intervals",
    "eyring_prefactor_per_ns",
    "fit_bell_rates",
    "kramers_rate_per_ns",
]

MODELS = ("two_polarity", "center", "with_field", "against_field")
_EXP_CLIP = 80.0


@dataclasses.dataclass(frozen=True, eq=False)
class DwellData:
    """Censored dwell data at several biases: events and exposure per bias.

    ``event_k``/``exposure_ns_k`` (optional): the per-interval data of each bias (lists of arrays),
    used only by the nonparametric bootstrap.
    """

    v_v: np.ndarray
    n_events: np.ndarray
    exposure_ns: np.ndarray
    event_k: tuple[np.ndarray, ...] | None = None
    exposure_ns_k: tuple[np.ndarray, ...] | None = None

    def __post_init__(self):
        v = np.asarray(self.v_v, dtype=float)
        n = np.asarray(self.n_events, dtype=float)
        t = np.asarray(self.exposure_ns, dtype=float)
        if v.ndim != 1 or v.shape != n.shape or v.shape != t.shape or v.size < 1:
            raise ValueError(f"v_v, n_events and exposure_ns must be 1-D of one length >= 1; got {v.shape}, {n.shape}, {t.shape}")
        if not (np.all(np.isfinite(v)) and np.all(np.isfinite(n)) and np.all(np.isfinite(t))):
            raise ValueError("v_v, n_events and exposure_ns must be finite")
        if np.any(n < 0) or np.any(n != np.round(n)):
            raise bad_argument("n_events", "must be non-negative integers", n.tolist())
        if np.any(t <= 0):
            raise bad_argument(
                "exposure_ns", "must be > 0 at every bias (a bias with no time at risk carries no information)", t.tolist()
            )
        object.__setattr__(self, "v_v", v)
        object.__setattr__(self, "n_events", n)
        object.__setattr__(self, "exposure_ns", t)

    @property
    def naive_rate_per_ns(self) -> np.ndarray:
        """Per-bias MLE n_b/T_b (the censored estimate, no model)."""
        return self.n_events / self.exposure_ns


def dwell_data_from_intervals(v_v: Sequence[float], event_k: Sequence, exposure_ns_k: Sequence) -> DwellData:
    """:class:`DwellData` from per-interval arrays at each bias (e.g. ``Intervals`` of the MD stage
    restricted to one state: ``event_k[sel]``, ``exposure_ns_k[sel]``); keeps them for the
    nonparametric bootstrap."""
    if not (len(v_v) == len(event_k) == len(exposure_ns_k)):
        raise ValueError(
            f"v_v, event_k and exposure_ns_k need one entry per bias; got {len(v_v)}, {len(event_k)}, {len(exposure_ns_k)}"
        )
    ev = tuple(np.asarray(e, dtype=float) for e in event_k)
    ex = tuple(np.asarray(x, dtype=float) for x in exposure_ns_k)
    for b, (e, x) in enumerate(zip(ev, ex, strict=True)):
        if e.shape != x.shape or e.ndim != 1:
            raise ValueError(f"event_k[{b}] and exposure_ns_k[{b}] must be 1-D of one length; got {e.shape}, {x.shape}")
    return DwellData(
        v_v=np.asarray(v_v, dtype=float),
        n_events=np.array([e.sum() for e in ev]),
        exposure_ns=np.array([x.sum() for x in ex]),
        event_k=ev,
        exposure_ns_k=ex,
    )


def dwell_data_from_estimates(estimates: Mapping[float, Any]) -> DwellData:
    """:class:`DwellData` from ``{bias_v: RateEstimate}`` (``md.dwell_times(...).trap`` or ``.escape``)."""
    v = sorted(estimates)
    return DwellData(
        v_v=np.array(v, dtype=float),
        n_events=np.array([estimates[x].n_events for x in v], dtype=float),
        exposure_ns=np.array([estimates[x].exposure_ns for x in v], dtype=float),
    )


# ---------------------------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------------------------

_PARAM_NAMES = {
    "two_polarity": ("ln_k_plus", "delta_plus", "ln_k_minus", "delta_minus"),
    "center": ("ln_k0", "delta"),
    "with_field": ("ln_k0", "delta"),
    "against_field": ("ln_k0", "delta"),
}
# k_max = inf ("no ceiling") as a finite number the saturating law can divide by: k_max/(k + k_max) is
# exactly 1 in float64 for every rate below 1e284 per ns.
_NO_CEILING_PER_NS = 1e300


def _finite_ceiling(k_max_per_ns: float) -> float:
    return _NO_CEILING_PER_NS if math.isinf(k_max_per_ns) else float(k_max_per_ns)


def _bell_rate(model: str, theta, k_max_per_ns) -> BellRate:
    """The kinetic core's :class:`~ionkinetics.kinetics.BellRate` (one state) at θ of ``model``."""
    k_max = jnp.reshape(k_max_per_ns, (1,))
    if model == "two_polarity":
        lp, dp, lm, dm = theta[0], theta[1], theta[2], theta[3]
        return BellRate(jnp.exp(lp)[None], dp[None], jnp.exp(lm)[None], dm[None], k_max)
    k0, d = jnp.exp(theta[0])[None], theta[1][None]
    zero = jnp.zeros(1)
    if model == "center":
        return BellRate(0.5 * k0, d, 0.5 * k0, d, k_max)
    if model == "with_field":
        return BellRate(k0, d, zero, zero, k_max)
    return BellRate(zero, zero, k0, d, k_max)


def _rates(model: str, theta, v_v, v_thermal_v, k_max_per_ns, molar):
    """k(V_b) = molar·k_sat(V_b; θ, k_max/molar) by ``kinetics.bell_rate_per_ns``, shape (B,);
    ``k_max_per_ns`` finite (see :func:`_finite_ceiling`)."""
    law = _bell_rate(model, jnp.asarray(theta), k_max_per_ns / molar)
    return molar * jax.vmap(lambda v: bell_rate_per_ns(law, v, v_thermal_v)[0])(jnp.asarray(v_v))


def bell_rate_model_per_ns(
    model: str, theta, v_v, *, v_thermal_v: float, k_max_per_ns: float = math.inf, molar: float = 1.0
) -> np.ndarray:
    """k(V) of ``model`` at parameters θ (optimisation coordinates; see the module notes)."""
    theta, v_v = np.asarray(theta, float), np.asarray(v_v, float)
    return np.asarray(_rates(model, theta, v_v, v_thermal_v, _finite_ceiling(k_max_per_ns), molar))


def _nll(theta, data, consts, model):
    """−log L of censored exponential dwells, Σ_b k_b·T_b − n_b·ln k_b; ``data`` = (V_b, n_b, T_b) as rows,
    ``consts`` = (V_T, finite k_max, molar): two arrays, so a call from scipy costs what numpy's would."""
    v_v, n, t = data[0], data[1], data[2]
    k = _rates(model, theta, v_v, consts[0], consts[1], consts[2])
    return jnp.sum(k * t - n * jnp.log(jnp.maximum(k, 1e-300)))


# one program per model and number of biases
_nll_value_and_grad = jax.jit(jax.value_and_grad(_nll), static_argnames="model")
_nll_hessian = jax.jit(jax.hessian(_nll), static_argnames="model")


def _nll_args(v_v, n, t, v_thermal_v, k_max_per_ns, molar, model) -> tuple:
    data = jnp.asarray(np.stack([np.asarray(v_v, float), np.asarray(n, float), np.asarray(t, float)]))
    return data, jnp.asarray([v_thermal_v, _finite_ceiling(k_max_per_ns), molar]), model


def _objective(theta, data, consts, model):
    """(−log L, its gradient) as numpy, for scipy's L-BFGS-B."""
    value, grad = _nll_value_and_grad(theta, data, consts, model=model)
    return float(value), np.asarray(grad, dtype=float)


def _laplace_covariance(hess: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(covariance, standard errors) from the Hessian of −log L in θ. A direction the likelihood does not
    determine (a Hessian eigenvalue ≤ 1e-12 of the largest, e.g. a rate pinned at its ceiling) gives the
    parameters along it an infinite error, not the pseudo-inverse's zero."""
    eigval, eigvec = np.linalg.eigh(0.5 * (hess + hess.T))
    flat = eigval <= 1e-12 * max(float(np.max(np.abs(eigval))), 1e-300)
    inv = np.where(flat, 0.0, 1.0 / np.where(flat, 1.0, eigval))
    cov = (eigvec * inv) @ eigvec.T
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    undetermined = np.any(np.abs(eigvec[:, flat]) > 1e-6, axis=1) if flat.any() else np.zeros(len(se), bool)
    return cov, np.where(undetermined, np.inf, se)


# ---------------------------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class BellFit:
    """A censored-ML Bell-law fit.

    ``params``: the physical parameters (``k_plus_per_ns``, ``delta_plus``, ``k_minus_per_ns``,
    ``delta_minus`` for two_polarity; ``k0_per_ns``, ``delta`` otherwise; ``_per_ns_per_molar``
    instead of ``_per_ns`` when ``molar`` ≠ 1 was given... see ``rate_unit``). ``se_laplace`` and
    ``se_bootstrap`` have the same keys. ``theta``/``cov_theta``: optimisation coordinates and the
    inverse Hessian there. ``at_bound``: names of δ's that ended on 0 or |z|.
    """

    model: str
    charge: int
    params: dict
    se_laplace: dict
    se_bootstrap: dict | None
    theta: np.ndarray
    theta_names: tuple[str, ...]
    cov_theta: np.ndarray
    at_bound: tuple[str, ...]
    log_likelihood: float
    k_max_per_ns: float
    molar: float
    v_thermal_v: float
    n_bootstrap: int
    bootstrap: str | None
    seed: int | None
    data: DwellData
    theta_bootstrap: np.ndarray | None = None

    @property
    def rate_unit(self) -> str:
        """Unit of the rate values in ``params``: ``per_ns_per_molar`` when ``molar`` ≠ 1 was given, else ``per_ns``."""
        return "per_ns_per_molar" if self.molar != 1.0 else "per_ns"

    def rate_per_ns(self, v_v) -> np.ndarray:
        """Fitted k(V) at biases ``v_v`` (per ns, molarity included)."""
        return bell_rate_model_per_ns(
            self.model, self.theta, v_v, v_thermal_v=self.v_thermal_v, k_max_per_ns=self.k_max_per_ns, molar=self.molar
        )

    def zero_bias_rate_per_ns(self) -> tuple[float, float]:
        """(k(0), Laplace standard error), per ns; for trapping fits per molar if ``molar`` ≠ 1 was divided out."""

        def k_at_zero(theta):
            k_max = _finite_ceiling(self.k_max_per_ns)
            return _rates(self.model, theta, jnp.zeros(1), self.v_thermal_v, k_max, self.molar)[0] / self.molar

        k0, g = jax.value_and_grad(k_at_zero)(jnp.asarray(self.theta))
        g = np.asarray(g, dtype=float)
        return float(k0), float(math.sqrt(max(g @ self.cov_theta @ g, 0.0)))

    def to_rate_dict(self) -> dict:
        """The fitted law as a calibration rate dict (escape keys, or trap keys when ``molar`` ≠ 1)."""
        trap = self.molar != 1.0
        suffix = "_per_ns_per_molar" if trap else "_per_ns"
        p = _two_polarity_view(self.model, self.theta)
        return {
            f"k_plus{suffix}": p[0],
            "delta_plus": p[1],
            f"k_minus{suffix}": p[2],
            "delta_minus": p[3],
            f"k_max{suffix}": self.k_max_per_ns / self.molar if math.isfinite(self.k_max_per_ns) else 1e12,
        }


def _two_polarity_view(model, theta):
    if model == "two_polarity":
        return (math.exp(theta[0]), float(theta[1]), math.exp(theta[2]), float(theta[3]))
    k0, d = math.exp(theta[0]), float(theta[1])
    if model == "center":
        return (k0 / 2, d, k0 / 2, d)
    if model == "with_field":
        return (k0, d, 0.0, 0.0)
    return (0.0, 0.0, k0, d)


def _physical(model, theta, suffix):
    if model == "two_polarity":
        return {
            f"k_plus{suffix}": math.exp(theta[0]),
            "delta_plus": float(theta[1]),
            f"k_minus{suffix}": math.exp(theta[2]),
            "delta_minus": float(theta[3]),
        }
    return {f"k0{suffix}": math.exp(theta[0]), "delta": float(theta[1])}


def _physical_se(model, theta, se_theta, suffix):
    phys = _physical(model, theta, suffix)
    out = {}
    for (key, val), s in zip(phys.items(), se_theta, strict=True):
        out[key] = float(val * s) if key.startswith("k") else float(s)
    return out


def _starts(model, n, t, charge):
    total = max(n.sum(), 0.5) / t.sum()
    ln0 = math.log(total)
    deltas = (0.05 * charge, 0.5 * charge, 0.95 * charge)
    if model == "two_polarity":
        return [np.array([ln0 - math.log(2), a, ln0 - math.log(2), b]) for a in deltas for b in deltas]
    return [np.array([ln0, d]) for d in deltas]


def _fit_once(model, v_v, v_thermal_v, n, t, k_max, molar, charge, starts=None):
    bounds = [(None, None), (0.0, float(charge))] * (2 if model == "two_polarity" else 1)
    bounds = [(-60.0, 60.0) if b[0] is None else b for b in bounds]
    args = _nll_args(v_v, n, t, v_thermal_v, k_max, molar, model)
    best = None
    for start in starts if starts is not None else _starts(model, n, t, charge):
        res = optimize.minimize(
            _objective,
            start,
            args=args,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-10},
        )
        if best is None or res.fun < best.fun:
            best = res
    if best is None:
        raise ValueError("the rate fit needs at least one starting point; got none")
    return best, bounds, args


def _check_fit_arguments(data, model, ion, molar, k_max_per_ns, bootstrap, n_bootstrap) -> int:
    """Validate :func:`fit_bell_rates`' arguments; returns |z| of ``ion`` (the δ bound)."""
    if model not in MODELS:
        raise bad_argument("model", f"must be one of {MODELS}", model)
    if not isinstance(data, DwellData):
        raise TypeError(f"data must be a DwellData; got {type(data).__name__}")
    charge = abs(species.get_ion(ion).charge)
    if not (molar > 0 and math.isfinite(molar)):
        raise bad_argument("molar", "must be a finite number > 0", molar)
    if not (k_max_per_ns > 0):
        raise bad_argument("k_max_per_ns", "must be > 0 (inf for no ceiling)", k_max_per_ns)
    if bootstrap not in (None, "parametric", "nonparametric"):
        raise bad_argument("bootstrap", "must be None, 'parametric' or 'nonparametric'", bootstrap)
    if bootstrap == "nonparametric" and data.event_k is None:
        raise bad_argument("bootstrap", "'nonparametric' needs per-interval data (dwell_data_from_intervals)", bootstrap)
    if bootstrap is not None and (isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 2):
        raise bad_argument("n_bootstrap", "must be an integer >= 2 when bootstrapping", n_bootstrap)
    n_params = 4 if model == "two_polarity" else 2
    n_distinct = np.unique(np.abs(data.v_v) if model == "center" else data.v_v).size
    if n_distinct < n_params:
        what = "distinct |V|" if model == "center" else "distinct biases"
        raise ValueError(f"model {model!r} has {n_params} parameters and needs at least {n_params} {what}; got {n_distinct}")
    return charge


def _bootstrap_thetas(data, theta, model, v_t, k_max_per_ns, molar, charge, bootstrap, n_bootstrap, seed) -> np.ndarray:
    """θ refitted on ``n_bootstrap`` resamples (``numpy.random.default_rng(seed)``): parametric redraws
    n_b ~ Poisson(k̂_b·T_b) at fixed exposure; nonparametric resamples each bias's intervals."""
    rng = np.random.default_rng(seed)
    n, t = data.n_events, data.exposure_ns
    k_hat = bell_rate_model_per_ns(model, theta, data.v_v, v_thermal_v=v_t, k_max_per_ns=k_max_per_ns, molar=molar)
    thetas = []
    for _ in range(n_bootstrap):
        if bootstrap == "parametric":
            nb, tb = rng.poisson(k_hat * t).astype(float), t
        else:
            nb, tb = np.empty_like(n), np.empty_like(t)
            for b, (e, ex) in enumerate(zip(data.event_k, data.exposure_ns_k, strict=True)):
                idx = rng.integers(0, e.size, e.size)
                nb[b], tb[b] = e[idx].sum(), max(ex[idx].sum(), 1e-300)
        starts = [theta, *_starts(model, nb, tb, charge)[:1]]
        res, _, _ = _fit_once(model, data.v_v, v_t, nb, tb, k_max_per_ns, molar, charge, starts=starts)
        thetas.append(res.x)
    return np.asarray(thetas)


def fit_bell_rates(
    data: DwellData,
    *,
    ion: str,
    model: str = "two_polarity",
    temperature_k: float = 298.15,
    k_max_per_ns: float = math.inf,
    molar: float = 1.0,
    bootstrap: str | None = "parametric",
    n_bootstrap: int = 200,
    seed: int = 0,
) -> BellFit:
    """Maximum-likelihood Bell-law fit of censored dwell data at several biases.

    ``ion`` sets the δ bound |z|. ``k_max_per_ns`` is a known ceiling (per ns, at this ``molar``),
    not fitted. ``bootstrap`` is ``"parametric"``, ``"nonparametric"`` (needs per-interval data)
    or ``None``; it uses ``numpy.random.default_rng(seed)``. The law is the kinetic core's
    (``kinetics.bell_rate_per_ns``); the gradient and the Laplace Hessian are JAX's, exact.
    """
    charge = _check_fit_arguments(data, model, ion, molar, k_max_per_ns, bootstrap, n_bootstrap)
    v_t = thermal_voltage_v(temperature_k)
    best, bounds, args = _fit_once(model, data.v_v, v_t, data.n_events, data.exposure_ns, k_max_per_ns, molar, charge)
    theta = np.asarray(best.x, dtype=float)
    names = _PARAM_NAMES[model]
    at_bound = tuple(
        nm
        for nm, th, (lo, hi) in zip(names, theta, bounds, strict=True)
        if nm.startswith("delta") and min(th - lo, hi - th) < 1e-6
    )
    cov, se_theta = _laplace_covariance(np.asarray(_nll_hessian(jnp.asarray(theta), *args[:2], model=model)))
    suffix = "_per_ns_per_molar" if molar != 1.0 else "_per_ns"
    se_boot = thetas_b = None
    if bootstrap is not None:
        thetas_b = _bootstrap_thetas(data, theta, model, v_t, k_max_per_ns, molar, charge, bootstrap, n_bootstrap, seed)
        phys_b = np.array([list(_physical(model, th, suffix).values()) for th in thetas_b])
        se_boot = dict(zip(_physical(model, theta, suffix), np.std(phys_b, axis=0, ddof=1).tolist(), strict=True))
    return BellFit(
        model=model,
        charge=charge,
        params=_physical(model, theta, suffix),
        se_laplace=_physical_se(model, theta, se_theta, suffix),
        se_bootstrap=se_boot,
        theta=theta,
        theta_names=names,
        cov_theta=cov,
        at_bound=at_bound,
        log_likelihood=-float(best.fun),
        k_max_per_ns=float(k_max_per_ns),
        molar=float(molar),
        v_thermal_v=v_t,
        n_bootstrap=n_bootstrap if bootstrap else 0,
        bootstrap=bootstrap,
        seed=seed if bootstrap else None,
        data=data,
        theta_bootstrap=thetas_b,
    )


# ---------------------------------------------------------------------------------------------
# zero-bias rate from a PMF barrier
# ---------------------------------------------------------------------------------------------


def eyring_prefactor_per_ns(temperature_k: float = 298.15) -> float:
    """k_BT/h per ns (≈ 6.2e3 /ns at 298 K): transition-state theory's upper bound, no friction."""
    return BOLTZMANN_J_PER_K * temperature_k / PLANCK_J_S * 1e-9


def diffusive_attempt_frequency_per_ns(ion: str, length_nm: float = 0.3) -> float:
    """D/a² per ns: the high-friction (Kramers–Smoluchowski) attempt frequency of ``ion`` across a
    site of size ``length_nm`` (default 0.3 nm, the calibration's capture radius)."""
    if not (length_nm > 0):
        raise bad_argument("length_nm", "must be > 0", length_nm)
    return escape_ceiling_per_ns(ion, capture_radius_nm=length_nm)


@overload
def kramers_rate_per_ns(barrier_kt, *, prefactor_per_ns: float, barrier_se_kt: None = None) -> Any: ...
@overload
def kramers_rate_per_ns(barrier_kt, *, prefactor_per_ns: float, barrier_se_kt: float) -> tuple[Any, Any]: ...
def kramers_rate_per_ns(barrier_kt, *, prefactor_per_ns: float, barrier_se_kt: float | None = None):
    """Arrhenius/Kramers rate ν·exp(−ΔG‡/k_BT), per ns; with ``barrier_se_kt`` also its error
    k·σ_ΔG (returns ``(k, se)``), else ``k`` alone. The prefactor must be stated by the caller."""
    if not (prefactor_per_ns > 0 and math.isfinite(prefactor_per_ns)):
        raise bad_argument("prefactor_per_ns", "must be a finite number > 0", prefactor_per_ns)
    b = np.asarray(barrier_kt, dtype=float)
    if not np.all(np.isfinite(b)):
        raise bad_argument("barrier_kt", "must be finite", barrier_kt)
    k = prefactor_per_ns * np.exp(-b)
    k = float(k) if k.ndim == 0 else k
    if barrier_se_kt is None:
        return k
    return k, k * float(barrier_se_kt)


def compare_zero_bias(
    fit: BellFit,
    *,
    barrier_kt: float,
    ion: str,
    barrier_se_kt: float | None = None,
    length_nm: float = 0.3,
    temperature_k: float = 298.15,
) -> dict:
    """The fitted k(0) beside PMF-barrier estimates with the D/a² and k_BT/h prefactors.

    Returns a dict with units in every key; ``log10_ratio_*`` compares each barrier estimate to
    the MD fit (0 = agreement)."""
    k_fit, se_fit = fit.zero_bias_rate_per_ns()
    se_b = 0.0 if barrier_se_kt is None else barrier_se_kt
    nu_d = diffusive_attempt_frequency_per_ns(ion, length_nm)
    nu_e = eyring_prefactor_per_ns(temperature_k)
    k_d, sd = kramers_rate_per_ns(barrier_kt, prefactor_per_ns=nu_d, barrier_se_kt=se_b)
    k_e, se_e = kramers_rate_per_ns(barrier_kt, prefactor_per_ns=nu_e, barrier_se_kt=se_b)
    return {
        "md_fit_k0_per_ns": k_fit,
        "md_fit_k0_se_per_ns": se_fit,
        "barrier_kt": float(barrier_kt),
        "barrier_se_kt": barrier_se_kt,
        "kramers_diffusive_k0_per_ns": k_d,
        "kramers_diffusive_k0_se_per_ns": sd,
        "kramers_diffusive_prefactor_per_ns": nu_d,
        "kramers_diffusive_prefactor": f"D/a^2 with D of {ion} (species table) and a = {length_nm} nm",
        "eyring_k0_per_ns": k_e,
        "eyring_k0_se_per_ns": se_e,
        "eyring_prefactor_per_ns": nu_e,
        "eyring_prefactor": f"k_B*T/h at {temperature_k} K (TST upper bound, no solvent friction)",
        "log10_ratio_kramers_to_md": math.log10(k_d / k_fit) if k_fit > 0 else None,
        "log10_ratio_eyring_to_md": math.log10(k_e / k_fit) if k_fit > 0 else None,
    }
