"""Laplace posterior of a fitted calibration, propagated to what the model predicts.

The fit (:mod:`._fit`) stores the covariance of its free parameters in its transformed coordinates
(log rates, logistic gating charges and leaks); sampling there and mapping each sample back through
the fit's own parameterisation gives bands on any prediction. A mixture's open-pore parameters,
fixed in its own fit, carry the carrier calibration's posterior (independent fits: block-diagonal).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..kinetics import conductance_ps

__all__ = ["BAND_QUANTILES", "BAND_SAMPLES", "conductance_band"]

BAND_SAMPLES = 400
BAND_QUANTILES = (0.16, 0.84)  # ±1σ of a normal posterior


def _laplace_parts(cal):
    """(names, mean u, covariance, transforms, values, targets) of ``cal``'s Laplace posterior in
    the fit's transformed coordinates; the open-pore parameters of a mixture, fixed in its fit,
    carry the carrier calibration's own posterior (independent fits: block-diagonal)."""
    import dataclasses

    from .. import species
    from . import _fit
    from ._calibration import calibration_dir, list_calibrations, load_calibration
    from ._targets import load_targets

    unc = cal.uncertainty or {}
    cov = unc.get("covariance_transformed") or {}
    names, blocks = list(cov.get("names", [])), [np.asarray(cov.get("matrix", np.zeros((0, 0))), dtype=float)]
    values = {**unc.get("fixed", {}), **{n: e["value"] for n, e in unc.get("parameters", {}).items()}}
    carrier_only = species.format_system_id(cal.system.pore, [cal.system.salts[0]])
    if cal.dopants and carrier_only in list_calibrations():
        c_unc = load_calibration(carrier_only).uncertainty or {}
        c_cov = c_unc.get("covariance_transformed") or {}
        keep = [i for i, n in enumerate(c_cov.get("names", [])) if n.startswith("open.") and n not in names]
        if keep:
            names += [c_cov["names"][i] for i in keep]
            blocks.append(np.asarray(c_cov["matrix"], dtype=float)[np.ix_(keep, keep)])
    if not names or not cal.provenance.get("targets_file"):
        return None  # nothing to sample, or no targets file to rebuild the fit's parameterisation from
    n = len(names)
    matrix = np.zeros((n, n))
    i = 0
    for b in blocks:
        matrix[i : i + len(b), i : i + len(b)] = b
        i += len(b)
    targets_file = Path(cal.provenance["targets_file"])
    if not targets_file.is_absolute():
        targets_file = calibration_dir().parent / targets_file
    targets = load_targets(targets_file)
    values = {**targets.parameters, **values}
    targets = dataclasses.replace(targets, parameters=values)
    transforms = [_fit._transform(name, targets) for name in names]
    u_hat = np.array([_fit._to_u(float(values[name]), tr) for name, tr in zip(names, transforms, strict=True)])
    return names, u_hat, matrix, transforms, values, targets


def conductance_band(cal, v, *, cals=(), n_samples: int = BAND_SAMPLES, seed: int = 0, quantiles=BAND_QUANTILES):
    """Quantiles ``quantiles`` of the steady-state G(v) (pS per pore) over the Laplace
    posterior of ``cal``'s fitted parameters, by sampling in the fit's transformed coordinates
    (log rates, logistic gating charges): shape (2, len(v)). None when ``cal`` has no covariance."""
    from . import _fit

    parts = _laplace_parts(cal)
    if parts is None:
        return None
    names, u_hat, matrix, transforms, values, targets = parts
    evals, evecs = np.linalg.eigh(0.5 * (matrix + matrix.T))
    root = evecs * np.sqrt(np.clip(evals, 0.0, None))
    rng = np.random.default_rng(seed)
    u = u_hat + rng.standard_normal((n_samples, len(names))) @ root.T
    v = jnp.asarray(np.asarray(v, dtype=float))

    def g_of(u_row):
        sample = dict(values)
        for j, (name, tr) in enumerate(zip(names, transforms, strict=True)):
            sample[name] = _fit._from_u(u_row[j], tr)
        params = _fit._params(sample, targets)
        return jax.vmap(lambda x: conductance_ps(params, x))(v)

    g = np.asarray(jax.jit(jax.vmap(g_of))(jnp.asarray(u)))
    return np.quantile(g, quantiles, axis=0)
