"""Differentiable fitting of kinetic parameters to targets (jax.grad + optax L-BFGS).

Free parameters are fitted in transformed coordinates: rates, conductances and ceilings in
log space, gating charges δ in a logistic box [0, |z|], leak fractions in [0, 1), α as is.
The loss is ½·χ² of the targets' residuals; the Laplace approximation (inverse Hessian of that
loss at the optimum, in the transformed coordinates) gives the parameters' covariance.
Several starts, jittered around the file's starting values with a fixed seed, guard against
local minima; one compiled L-BFGS serves them all.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import shlex
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import species
from ..kinetics import conductance_ps, mean_relaxation_time_ns, steady_state, step_occupancy, thermal_voltage_v
from ._calibration import SCHEMA, Calibration, params_from_rates, site_rates
from ._targets import Target, Targets

__all__ = ["MAX_CHI2_PER_DOF", "MAX_RESIDUAL_SIGMA", "FitResult", "fit_targets", "fit_verdict", "predict_target", "target_rows"]

_IDENTIFIABLE_RTOL = 1e-9
# Two starts' losses tie when they differ by less than this (chi² of exact fits is ~1e-25).
_TIE_ATOL = 1e-10
_TIE_RTOL = 1e-6
# Tied end points are distinct minima when a parameter differs by more than this, relatively.
_DISTINCT_RTOL = 1e-3
# A fit is poor (`ionkinetics fit` exits non-zero unless --accept-poor-fit) when any target misses by
# more than this many of its sigmas, or when chi^2 per degree of freedom exceeds MAX_CHI2_PER_DOF
# (a mean square residual beyond the same 3 sigma: the targets contradict each other or the model).
MAX_RESIDUAL_SIGMA = 3.0
MAX_CHI2_PER_DOF = MAX_RESIDUAL_SIGMA**2


@dataclasses.dataclass(frozen=True)
class FitResult:
    """What :func:`fit_targets` returns: the fitted calibration and how well it fits."""

    calibration: Calibration
    loss: float
    values: dict
    sigma: dict
    covariance_transformed: np.ndarray
    free: tuple[str, ...]
    predictions: list
    converged: bool
    identifiable: bool
    alternative_minima: tuple = ()
    verdict: dict = dataclasses.field(default_factory=dict)  # fit_verdict: is it a poor fit, and why
    target_rows: tuple = ()  # target_rows: each target value against the model, residual in sigmas


def _transform(name: str, targets: Targets):
    """(kind, lo, hi) for a parameter: 'log', 'box' or 'identity'."""
    if name.endswith(".delta"):
        ion = name.split(".")[0]
        return ("box", 0.0, float(abs(species.get_ion(ion).charge)))
    if name.endswith(".leak_fraction") or name.endswith(".barrier_position"):
        return ("box", 0.0, 1.0)
    if name.endswith(".electrical_distance"):
        return ("box", 0.0, 0.5)
    if name == "open.alpha_per_v":
        return ("identity", None, None)
    return ("log", None, None)


def _to_u(x: float, tr) -> float:
    kind, lo, hi = tr
    if kind == "log":
        return math.log(x)
    if kind == "box":
        frac = min(max((x - lo) / (hi - lo), 1e-4), 1 - 1e-4)
        return math.log(frac / (1 - frac))
    return x


def _from_u(u, tr):
    kind, lo, hi = tr
    if kind == "log":
        return jnp.exp(u)
    if kind == "box":
        return lo + (hi - lo) * jax.nn.sigmoid(u)
    return u


def _dx_du(x: float, tr) -> float:
    kind, lo, hi = tr
    if kind == "log":
        return x
    if kind == "box":
        frac = (x - lo) / (hi - lo)
        return (hi - lo) * frac * (1 - frac)
    return 1.0


def uses_electrical_distance(values, ion: str) -> bool:
    """True where the targets give the site's electrical distance (deltas derived from it)."""
    f = values[f"{ion}.electrical_distance"]
    return not (isinstance(f, float) and math.isnan(f))


def _deltas(values, ion: str):
    """(trap δ, escape δ): given directly, or |z|·f·b and |z|·f·(1 − b) from the electrical
    distance f and barrier position b."""
    if not uses_electrical_distance(values, ion):
        return values[f"{ion}.trap.delta"], values[f"{ion}.escape.delta"]
    zf = abs(species.get_ion(ion).charge) * values[f"{ion}.electrical_distance"]
    b = values[f"{ion}.barrier_position"]
    return zf * b, zf * (1.0 - b)


def _rates_of(values, targets: Targets):
    open_ = {k: values[f"open.{k}"] for k in ("c_ps", "alpha_per_v", "v_smooth_v", "v_max_v")}
    molar = targets.system.cation_molar
    dopants = []
    for ion, site in targets.dopants:
        trap_delta, escape_delta = _deltas(values, ion)
        trap = site_rates(
            site,
            values[f"{ion}.trap.k0_per_ns_per_molar"],
            trap_delta,
            values[f"{ion}.trap.k_max_per_ns_per_molar"],
            trap=True,
        )
        escape = site_rates(
            site,
            values[f"{ion}.escape.k0_per_ns"],
            escape_delta,
            values[f"{ion}.escape.k_max_per_ns"],
            trap=False,
        )
        dopants.append((molar[ion], site, trap, escape, values[f"{ion}.leak_fraction"]))
    return open_, dopants


def _params(values, targets: Targets):
    open_, dopants = _rates_of(values, targets)
    return params_from_rates(open_, dopants, thermal_voltage_v(targets.temperature_k))


def predict_target(params, target: Target) -> dict:
    """Model values for one target, in the target's own units (JAX-traceable)."""
    t = target.values
    if target.kind == "conductance":
        return {"g_ps": conductance_ps(params, t["v"])}
    if target.kind == "gv_fit":
        v = jnp.asarray(t["v"])
        ln_g = jnp.log(jax.vmap(lambda x: conductance_ps(params, x))(v))
        vc = v - v.mean()
        alpha = (vc * (ln_g - ln_g.mean())).sum() / (vc * vc).sum()
        return {"alpha_per_v": alpha, "c_ps": jnp.exp(ln_g.mean() - alpha * v.mean())}
    if target.kind == "steady_w":
        return {"w": steady_state(params, t["v"])[0]}
    if target.kind == "w_trace":
        return {"w": _predict_w_trace(params, t)}
    p_from = steady_state(params, t["v_from"])
    if target.kind == "step_w":
        return {"w": step_occupancy(params, p_from, t["v_to"], t["t_ns"])[0]}
    if target.kind == "step_trace":
        times = jnp.asarray(t["t_ns"])
        return {"w": jax.vmap(lambda x: step_occupancy(params, p_from, t["v_to"], x)[0])(times)}
    if target.kind == "step_tau":
        return {"tau_ns": mean_relaxation_time_ns(params, t["v_to"], p_from)}
    raise ValueError(f"unknown target kind {target.kind!r}")


def _trace_start(params, t: dict):
    pi = steady_state(params, t["v"][0])
    if "w_start" not in t:
        return pi
    blocked = pi[1:] / jnp.maximum(pi[1:].sum(), 1e-300)
    return jnp.concatenate([jnp.asarray([t["w_start"]]), (1.0 - t["w_start"]) * blocked])


def _predict_w_trace(params, t: dict):
    """Open fraction at ``t_ns`` under the piecewise-constant bias of a ``w_trace`` target: exact
    propagation from one bias change to the next (the change points are static)."""
    starts = np.asarray(t["v_start_ns"], dtype=float)
    times = np.asarray(t["t_ns"], dtype=float)
    p = _trace_start(params, t)
    out = []
    for i, (t0, v) in enumerate(zip(starts, t["v"], strict=True)):
        t1 = starts[i + 1] if i + 1 < starts.size else np.inf
        inside = times[(times > t0) & (times <= t1)]
        if inside.size:
            out.append(jax.vmap(lambda x, p=p, v=v, t0=t0: step_occupancy(params, p, v, x - t0)[0])(jnp.asarray(inside)))
        if np.isfinite(t1):
            p = step_occupancy(params, p, v, t1 - t0)
    return jnp.concatenate(out)


def _residuals(model: dict, target: Target):
    t = target.values
    if target.kind == "conductance":
        return jnp.atleast_1d(jnp.log(model["g_ps"] / t["g_ps"]) / t["rel_sigma"])
    if target.kind == "gv_fit":
        parts = []
        if "alpha_per_v" in t:
            parts.append((model["alpha_per_v"] - t["alpha_per_v"]) / t["sigma_alpha_per_v"])
        if "c_ps" in t:
            parts.append(jnp.log(model["c_ps"] / t["c_ps"]) / t["rel_sigma_c"])
        return jnp.stack(parts)
    if target.kind in ("steady_w", "step_w", "step_trace", "w_trace"):
        return jnp.atleast_1d((model["w"] - jnp.asarray(t["w"])) / t["sigma"])
    if target.kind == "step_tau":
        return jnp.atleast_1d(jnp.log(model["tau_ns"] / t["tau_ns"]) / t["rel_sigma"])
    raise ValueError(f"unknown target kind {target.kind!r}")


def _quantities(target: Target) -> list[tuple[str, str, float, float, bool]]:
    """(label, model key, stated value, sigma, relative?) per residual of ``target``, in the order
    :func:`_residuals` returns them (a relative sigma is of the log: rel_sigma 0.15 = 15 %)."""
    t = target.values
    if target.kind == "conductance":
        return [(f"G at {t['v']:g} V (pS)", "g_ps", t["g_ps"], t["rel_sigma"], True)]
    if target.kind == "gv_fit":
        out = []
        if "alpha_per_v" in t:
            out.append(("alpha of G=C e^(alpha V) (1/V)", "alpha_per_v", t["alpha_per_v"], t["sigma_alpha_per_v"], False))
        if "c_ps" in t:
            out.append(("C of G=C e^(alpha V) (pS)", "c_ps", t["c_ps"], t["rel_sigma_c"], True))
        return out
    if target.kind == "steady_w":
        return [(f"w at rest, {t['v']:g} V", "w", t["w"], t["sigma"], False)]
    if target.kind == "step_w":
        return [(f"w {t['t_ns']:g} ns after {t['v_from']:g} -> {t['v_to']:g} V", "w", t["w"], t["sigma"], False)]
    if target.kind in ("step_trace", "w_trace"):
        where = f"{t['v_from']:g} -> {t['v_to']:g} V" if target.kind == "step_trace" else "the bias trace"
        return [(f"w at {x:g} ns of {where}", "w", w, t["sigma"], False) for x, w in zip(t["t_ns"], t["w"], strict=True)]
    if target.kind == "step_tau":
        return [(f"tau of w after {t['v_from']:g} -> {t['v_to']:g} V (ns)", "tau_ns", t["tau_ns"], t["rel_sigma"], True)]
    raise ValueError(f"unknown target kind {target.kind!r}")


def target_rows(targets: Targets, predictions: list) -> list[dict]:
    """One row per residual of a fit: the target's ``label``, its stated ``value`` and ``sigma``
    (``relative``: sigma of the log, a fraction), the ``model`` value and ``residual_sigma`` (model −
    target in sigmas), ``assumed`` for a target the file marks assumed."""
    rows = []
    for target, pred in zip(targets.targets, predictions, strict=True):
        for j, (label, key, value, sigma, relative) in enumerate(_quantities(target)):
            model = np.ravel(pred["model"][key])
            rows.append(
                {
                    "label": label,
                    "value": float(value),
                    "sigma": float(sigma),
                    "relative": relative,
                    "model": float(model[j] if model.size > 1 else model[0]),
                    "residual_sigma": float(pred["residuals"][j]),
                    "assumed": target.assumed,
                }
            )
    return rows


def fit_verdict(predictions: list, n_free: int) -> dict:
    """Whether a fit is poor: any residual beyond :data:`MAX_RESIDUAL_SIGMA`, or chi² per degree of
    freedom beyond :data:`MAX_CHI2_PER_DOF` (only defined with more residuals than free parameters).
    Returns the numbers, the thresholds and the reasons in words."""
    res = np.array([r for p in predictions for r in p["residuals"]], dtype=float)
    chi2 = float(np.sum(res * res))
    dof = int(res.size - n_free)
    per_dof = chi2 / dof if dof > 0 else None
    worst = float(np.max(np.abs(res))) if res.size else 0.0
    reasons = []
    if worst > MAX_RESIDUAL_SIGMA:
        n_bad = int(np.sum(np.abs(res) > MAX_RESIDUAL_SIGMA))
        reasons.append(f"{n_bad} target value(s) missed by more than {MAX_RESIDUAL_SIGMA:g} sigma (worst {worst:.3g} sigma)")
    if per_dof is not None and per_dof > MAX_CHI2_PER_DOF:
        reasons.append(f"chi^2/dof = {chi2:.3g}/{dof} = {per_dof:.3g} > {MAX_CHI2_PER_DOF:g}")
    return {
        "poor": bool(reasons),
        "reasons": reasons,
        "chi2": chi2,
        "dof": dof,
        "chi2_per_dof": per_dof,
        "max_abs_residual_sigma": worst,
        "thresholds": {"max_residual_sigma": MAX_RESIDUAL_SIGMA, "max_chi2_per_dof": MAX_CHI2_PER_DOF},
    }


def _make_loss(targets: Targets):
    free = targets.free
    transforms = [_transform(n, targets) for n in free]
    fixed = {k: v for k, v in targets.parameters.items() if k not in free}

    def values_of(u):
        values = dict(fixed)
        for i, (name, tr) in enumerate(zip(free, transforms, strict=True)):
            values[name] = _from_u(u[i], tr)
        return values

    def residual_vector(u):
        params = _params(values_of(u), targets)
        return jnp.concatenate([_residuals(predict_target(params, t), t) for t in targets.targets])

    def loss(u):
        r = residual_vector(u)
        return 0.5 * jnp.sum(r * r)

    return loss, values_of, transforms


def _lbfgs(loss, max_iter: int, gtol: float):
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)

    def body(carry):
        u, state, _ = carry
        value, grad = value_and_grad(u, state=state)
        updates, state = opt.update(grad, state, u, value=value, grad=grad, value_fn=loss)
        return optax.apply_updates(u, updates), state, optax.tree.norm(grad)

    def cond(carry):
        _, state, gnorm = carry
        count = optax.tree.get(state, "count")
        return (count == 0) | ((count < max_iter) & (gnorm > gtol))

    @jax.jit
    def run(u0):
        carry = (u0, opt.init(u0), jnp.asarray(jnp.inf, dtype=u0.dtype))
        u, state, _ = jax.lax.while_loop(cond, body, carry)
        return u, loss(u), optax.tree.norm(jax.grad(loss)(u)), optax.tree.get(state, "count")

    return run


def fit_targets(
    targets: Targets,
    *,
    n_starts: int = 8,
    seed: int = 0,
    max_iter: int = 2000,
    gtol: float = 1e-9,
    start_spread: float = 1.0,
    command: str | None = None,
    progress=None,
) -> FitResult:
    """Fit the free parameters of ``targets``; returns a :class:`FitResult` (inputs untouched).

    Runs in float64 whatever the global JAX setting. ``start_spread`` is the standard
    deviation of the jitter of the extra starts in transformed coordinates (1.0 = a factor
    e in a rate). ``progress(i, n_starts, loss, seconds)`` is called after each start (i from 1;
    loss ½·χ², non-finite when the start failed; seconds of that start, compilation included).
    """
    if not isinstance(n_starts, int) or n_starts < 1:
        raise ValueError(f"n_starts must be an integer >= 1; got {n_starts!r}")
    with jax.enable_x64(True):
        loss, values_of, transforms = _make_loss(targets)
        u0 = np.array([_to_u(targets.parameters[n], tr) for n, tr in zip(targets.free, transforms, strict=True)])
        rng = np.random.default_rng(seed)
        starts = [u0] + [u0 + start_spread * rng.standard_normal(u0.shape) for _ in range(n_starts - 1)]
        run = _lbfgs(loss, max_iter, gtol)
        ends = []
        for i, start in enumerate(starts, 1):
            began = time.perf_counter()
            u, value, gnorm, count = run(jnp.asarray(start))
            if math.isfinite(float(value)):
                ends.append((np.asarray(u), float(value), float(gnorm), int(count)))
            if progress is not None:
                progress(i, n_starts, float(value), time.perf_counter() - began)
        if not ends:
            raise FloatingPointError("every fit start gave a non-finite loss; check the starting values in [parameters]")
        u_best, loss_best, gnorm, iters, alternatives = _choose_minimum(ends, values_of, targets.free)
        hess = np.asarray(jax.hessian(loss)(jnp.asarray(u_best)))
        values = {k: float(v) for k, v in values_of(jnp.asarray(u_best)).items()}
        params = _params(values, targets)
        predictions = []
        for t in targets.targets:
            model = {k: np.asarray(v).tolist() for k, v in predict_target(params, t).items()}
            res = np.asarray(_residuals(predict_target(params, t), t)).tolist()
            predictions.append({"target": t.describe(), "model": model, "residuals": res})
    cov, identifiable, unidentified = _laplace(hess, targets.free)
    sigma = {}
    for i, (name, tr) in enumerate(zip(targets.free, transforms, strict=True)):
        s_u = math.sqrt(cov[i, i]) if identifiable or name not in unidentified else float("nan")
        sigma[name] = {
            "value": values[name],
            "sigma": abs(_dx_du(values[name], tr)) * s_u if math.isfinite(s_u) else None,
            "transform": tr[0],
            "sigma_transformed": s_u if math.isfinite(s_u) else None,
        }
    outcome = _FitOutcome(
        values, sigma, cov, loss_best, gnorm, iters, predictions, identifiable, unidentified, n_starts, seed, tuple(alternatives)
    )
    cal = _calibration(targets, outcome, command)
    if cal.fit is None:  # _calibration always writes the fit record
        raise RuntimeError("the fitted calibration has no fit record")
    return FitResult(
        calibration=cal,
        loss=loss_best,
        values=values,
        sigma=sigma,
        covariance_transformed=cov,
        free=targets.free,
        predictions=predictions,
        converged=gnorm <= max(gtol, 1e-6 * max(1.0, loss_best)),
        identifiable=identifiable,
        alternative_minima=tuple(alternatives),
        verdict=cal.fit["verdict"],
        target_rows=tuple(target_rows(targets, predictions)),
    )


def _laplace(hess: np.ndarray, free) -> tuple[np.ndarray, bool, list[str]]:
    """Covariance = H⁻¹ where H is positive definite; otherwise the pseudo-inverse, with the
    parameters that load on (near-)null directions named as not identified."""
    hess = 0.5 * (hess + hess.T)
    evals, evecs = np.linalg.eigh(hess)
    scale = max(float(np.max(np.abs(evals))), 1e-300)
    good = evals > _IDENTIFIABLE_RTOL * scale
    if np.all(good):
        return np.linalg.inv(hess), True, []
    inv = (evecs[:, good] / evals[good]) @ evecs[:, good].T
    weak = np.abs(evecs[:, ~good]).max(axis=1) > 0.1
    return inv, False, [n for n, w in zip(free, weak, strict=True) if w]


def _choose_minimum(ends, values_of, free):
    """Pick the fit among the starts' end points, deterministically.

    Starts whose loss ties with the lowest (within round-off, ``_TIE_ATOL`` + ``_TIE_RTOL``·loss)
    are equally good fits; among them the earliest start wins (start 0 begins at the values the
    targets file gives), so round-off never decides. Tied end points that differ in a parameter
    by more than ``_DISTINCT_RTOL`` are distinct minima: the targets do not pin the parameters
    down globally even where the Hessian is regular, and they are returned to be recorded.
    """
    lowest = min(e[1] for e in ends)
    tied = [e for e in ends if e[1] <= lowest + _TIE_ATOL + _TIE_RTOL * lowest]
    chosen = tied[0]
    chosen_values = values_of(jnp.asarray(chosen[0]))
    alternatives = []
    for u, value, _g, _n in tied[1:]:
        other = {n: float(values_of(jnp.asarray(u))[n]) for n in free}
        known = [chosen_values] + [a["values"] for a in alternatives]
        if all(any(abs(other[n] - float(k[n])) > _DISTINCT_RTOL * max(abs(float(k[n])), 1e-12) for n in free) for k in known):
            alternatives.append({"loss": value, "values": other})
    return chosen[0], chosen[1], chosen[2], chosen[3], alternatives


def _exact_split(row: dict, zf: float) -> None:
    """Make trap δ + escape δ = |z|·f hold to the last bit on each path used (escape δ = zf − trap δ)."""
    trap, escape = row["trap"], row["escape"]
    if trap["k_plus_per_ns_per_molar"] > 0:
        escape["delta_minus"] = max(0.0, zf - trap["delta_plus"])
    if trap["k_minus_per_ns_per_molar"] > 0:
        escape["delta_plus"] = max(0.0, zf - trap["delta_minus"])


@dataclasses.dataclass(frozen=True)
class _FitOutcome:
    """What a fit found, as the calibration file records it."""

    values: dict
    sigma: dict
    cov: np.ndarray
    loss: float
    gnorm: float
    iters: int
    predictions: list
    identifiable: bool
    unidentified: list
    n_starts: int
    seed: int
    alternatives: tuple = ()


def _dopant_rows(targets, values) -> list[dict]:
    _open, dopants = _rates_of(values, targets)
    rows = []
    for (ion, site), (_m, _s, trap, escape, leak) in zip(targets.dopants, dopants, strict=True):
        row = {
            "ion": ion,
            "site": site,
            "leak_fraction": float(leak),
            "trap": {k: float(v) for k, v in trap.items()},
            "escape": {k: float(v) for k, v in escape.items()},
        }
        if uses_electrical_distance(values, ion):
            row["electrical_distance"] = float(values[f"{ion}.electrical_distance"])
            # the derived deltas are summed again on load: keep the identity exact in the file
            _exact_split(row, abs(species.get_ion(ion).charge) * row["electrical_distance"])
        rows.append(row)
    return rows


def _fit_record(targets, fit: _FitOutcome) -> dict:
    return {
        "loss": fit.loss,
        "chi2": 2 * fit.loss,
        "n_residuals": sum(len(p["residuals"]) for p in fit.predictions),
        "n_free": len(targets.free),
        "gradient_norm": fit.gnorm,
        "iterations": fit.iters,
        "starts": fit.n_starts,
        "seed": fit.seed,
        "optimizer": "optax.lbfgs (zoom line search) on jax.grad of the jitted loss, float64",
        "selection": "lowest loss; ties within round-off go to the earliest start (start 0 = the file's values)",
        "alternative_minima": list(fit.alternatives),
        "predictions": fit.predictions,
        # is it a poor fit (a target missed by > 3 sigma, or chi^2/dof > 9)? `ionkinetics fit` refuses to
        # write a poor one unless --accept-poor-fit, which records that here ("accepted")
        "verdict": {**fit_verdict(fit.predictions, len(targets.free)), "accepted": False},
    }


def _provenance_record(targets, command) -> dict:
    from .._version import __version__

    return {
        "source": targets.source,
        "targets_file": targets.path,
        "open_conductance_from": targets.open_conductance_from,
        "targets": [t.to_dict() for t in targets.targets],
        "assumptions": list(targets.assumptions),
        "contains_assumed_values": any(t.assumed for t in targets.targets),
        "command": command or " ".join(shlex.quote(a) for a in ["ionkinetics", *sys.argv[1:]]),
        "ionkinetics_version": __version__,
        "created_utc": datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
        "molar": targets.system.cation_molar,
    }


def _calibration(targets, fit: _FitOutcome, command) -> Calibration:
    open_, _dopants = _rates_of(fit.values, targets)
    raw = {
        "schema": SCHEMA,
        "system": str(targets.system),
        "temperature_k": targets.temperature_k,
        "carrier": {
            "ion": targets.carrier,
            "open_conductance": {k: float(v) for k, v in open_.items() if not (k == "v_max_v" and math.isinf(v))},
        },
        "dopants": _dopant_rows(targets, fit.values),
        "data_range_v": list(targets.data_range_v()),
        "uncertainty": {
            "method": "laplace",
            "note": (
                "1-sigma from the inverse Hessian of 0.5*chi^2 in the fitted coordinates (log for rates and "
                "conductances, logistic for delta and leak, linear for alpha), given the target sigmas stated "
                "in the targets file; sigma in natural units by the delta method"
            ),
            "identifiable": fit.identifiable,
            "not_identified": fit.unidentified,
            "parameters": fit.sigma,
            "fixed": {k: v for k, v in targets.parameters.items() if k not in targets.free and math.isfinite(v)},
            "covariance_transformed": {"names": list(targets.free), "matrix": np.asarray(fit.cov).tolist()},
        },
        "fit": _fit_record(targets, fit),
        "provenance": _provenance_record(targets, command),
    }
    from ._summary import CEILING_NEAR, STEP_V, rates_near_ceiling

    raw["fit"]["rates_near_ceiling"] = {
        "v": STEP_V,
        "near": CEILING_NEAR,
        "note": "rates within 'near' (fraction) of their diffusion-limited ceiling at +-v: the ceiling sets them",
        "rates": rates_near_ceiling(Calibration.from_dict(raw)),
    }
    return Calibration.from_dict(raw)
