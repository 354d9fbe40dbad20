"""Inverse design by gradient: the task loss of a reservoir (its readout solved in closed form
inside the graph) differentiated with respect to every membrane's dopant molarity and pore count.

Design variables are unconstrained: ``z_molar`` maps to a molarity in ``[lo, hi]`` by a sigmoid
in log space (solubility and the calibrations' trust region bound it), and ``z_pores`` to pore
counts by a softmax times a fixed total (a chip with a given number of pores, shared among its
membranes). The loss is the validation NRMSE of a ridge readout fitted on the training split with
the expected effect of the readout noise (pore switching + shot noise, per feature) as its
Tikhonov term: the noise a finite pore count brings is what makes pore counts matter.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._readout import fit_ridge_jax

__all__ = ["DesignResult", "design_loss", "from_design", "optimise_design", "to_design"]


def from_design(z_molar, z_pores, *, molar_range, total_pores):
    """(molar (N,), n_pores (N,)) from the unconstrained design variables."""
    lo, hi = np.log(molar_range[0]), np.log(molar_range[1])
    molar = jnp.exp(lo + (hi - lo) * jax.nn.sigmoid(z_molar))
    pores = total_pores * jax.nn.softmax(z_pores)
    return molar, pores


def to_design(molar, n_pores, *, molar_range):
    """The design variables of a (molar, n_pores) point (the inverse of :func:`from_design`)."""
    lo, hi = np.log(molar_range[0]), np.log(molar_range[1])
    s = (np.log(np.asarray(molar, float)) - lo) / (hi - lo)
    s = np.clip(s, 1e-6, 1 - 1e-6)
    return jnp.asarray(np.log(s / (1 - s))), jnp.asarray(np.log(np.asarray(n_pores, float)))


def design_loss(reservoir, u, y, molar, n_pores, *, train, val, ridge, noise=True):
    """Validation NRMSE of the closed-form ridge readout (fitted on ``train``) at (molar, n_pores),
    mean-field reservoir; ``noise`` adds the expected readout noise as the ridge's Tikhonov term
    and to the validation error (the noise a validation sample itself carries)."""
    run = reservoir.run(u, molar, n_pores)
    x = run.features()
    var = run.feature_variance() if noise else None
    f = fit_ridge_jax(x[train], y[train], ridge, None if var is None else var[train].mean(axis=0))
    err = jnp.mean((f(x[val]) - y[val]) ** 2)
    if var is not None:  # E|w·(x+ε) − y|² = |w·x − y|² + Σ w_f² var_f, with w in the raw-feature scale
        err = err + jnp.sum(f.weights**2 * var[val].mean(axis=0))
    return jnp.sqrt(err / jnp.var(y[val]))


@dataclasses.dataclass(frozen=True)
class DesignResult:
    """What :func:`optimise_design` found: each membrane's dopant molarity (M) and pore count at the start and at the
    best point, the validation NRMSE of every step, its gradient at the start with respect to molarity and pore count,
    and the wall time per step in s."""

    molar_before: np.ndarray
    molar_after: np.ndarray
    pores_before: np.ndarray
    pores_after: np.ndarray
    loss_history: list
    grad_molar_before: np.ndarray
    grad_pores_before: np.ndarray
    seconds_per_step: float


def optimise_design(reservoir, u, y, *, train, val, ridge, molar0, pores0, molar_range, steps, learning_rate, progress=None):
    """Adam on the design variables; returns the best point seen (lowest loss), with the loss of
    every step and the gradient at the start with respect to molarity and pore count."""
    total = float(np.sum(pores0))

    def loss_z(z):
        molar, pores = from_design(z[0], z[1], molar_range=molar_range, total_pores=total)
        return design_loss(reservoir, u, y, molar, pores, train=train, val=val, ridge=ridge)

    value_and_grad = jax.jit(jax.value_and_grad(loss_z))
    grad_physical = jax.jit(
        jax.grad(lambda m, n: design_loss(reservoir, u, y, m, n, train=train, val=val, ridge=ridge), argnums=(0, 1))
    )
    g_m, g_n = grad_physical(jnp.asarray(molar0, float), jnp.asarray(pores0, float))
    z = to_design(molar0, pores0, molar_range=molar_range)
    opt = optax.adam(learning_rate)
    state = opt.init(z)
    history: list[float] = []
    best: tuple[float, Any] | None = None  # (loss, design point) of the lowest loss so far
    start = time.perf_counter()
    for i in range(steps + 1):
        loss, g = value_and_grad(z)
        loss = float(loss)
        history.append(loss)
        if best is None or loss < best[0]:
            best = (loss, z)
        if progress is not None:
            progress(i, loss)
        if i == steps:
            break
        upd, state = opt.update(g, state)
        z = optax.apply_updates(z, upd)
    elapsed = (time.perf_counter() - start) / (steps + 1)
    if best is None:  # the loop runs steps + 1 >= 1 times
        raise ValueError(f"steps must be >= 0; got {steps!r}")
    molar, pores = from_design(best[1][0], best[1][1], molar_range=molar_range, total_pores=total)
    return DesignResult(
        molar_before=np.asarray(molar0, float),
        molar_after=np.asarray(molar),
        pores_before=np.asarray(pores0, float),
        pores_after=np.asarray(pores),
        loss_history=history,
        grad_molar_before=np.asarray(g_m),
        grad_pores_before=np.asarray(g_n),
        seconds_per_step=elapsed,
    )
