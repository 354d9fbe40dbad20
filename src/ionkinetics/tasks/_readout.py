"""Linear readouts: ridge regression in closed form (numpy for reporting, JAX inside gradients),
NRMSE and accuracy, and the ridge strength chosen on a validation split."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

__all__ = ["accuracy", "fit_ridge", "fit_ridge_jax", "memory_capacity", "nrmse", "select_ridge"]


def nrmse(y_pred, y_true) -> float:
    """``sqrt(mean((ŷ − y)²) / var(y))``: 1 for predicting the mean, 0 for a perfect fit."""
    y_pred, y_true = np.asarray(y_pred, float), np.asarray(y_true, float)
    return float(np.sqrt(np.mean((y_pred - y_true) ** 2) / np.var(y_true)))


def accuracy(score, label) -> float:
    """Share of samples whose score is on the label's side of 0.5 (labels 0/1)."""
    return float(np.mean((np.asarray(score) > 0.5) == (np.asarray(label) > 0.5)))


def _ridge_solution(xp, x, y, ridge: float, noise_var):
    """The one ridge solve both readouts share, in the array module ``xp`` (numpy or jax.numpy):
    ``(w, mu, sd, ym)``, ``w`` the weights of the standardised features."""
    mu, sd = x.mean(axis=0), x.std(axis=0)
    sd = xp.where(sd > 0, sd, 1.0)
    xs = (x - mu) / sd
    t = x.shape[0]
    reg = ridge * t * xp.ones(x.shape[1])
    if noise_var is not None:
        reg = reg + t * noise_var / sd**2
    ym = y.mean(axis=0)
    w = xp.linalg.solve(xs.T @ xs + xp.diag(reg), xs.T @ (y - ym))
    return w, mu, sd, ym


def fit_ridge(x, y, ridge: float, *, noise_var=None):
    """Readout ``(w, b)`` minimising ``|y − x·w − b|² + ridge·T·|w|² + T·Σ_f var_f·w_f²`` on
    features standardised by their mean and standard deviation over ``x`` (T, F); ``noise_var`` (F,)
    is the variance of independent noise on each raw feature (its expected effect on the
    least-squares loss is that Tikhonov term). Returns a predictor ``f(x) -> ŷ``."""
    noise = None if noise_var is None else np.asarray(noise_var, float)
    w, mu, sd, ym = _ridge_solution(np, np.asarray(x, float), np.asarray(y, float), ridge, noise)
    return lambda z: ((np.asarray(z, float) - mu) / sd) @ w + ym


def fit_ridge_jax(x, y, ridge: float, noise_var=None):
    """:func:`fit_ridge` in JAX (differentiable in ``x``, ``y`` and ``noise_var``); the predictor's
    ``weights`` are those of the raw features."""
    w, mu, sd, ym = _ridge_solution(jnp, x, y, ridge, noise_var)
    return _Linear(w / sd, ym - (mu / sd) @ w)


class _Linear:
    """``ŷ = z @ weights + offset`` (weights on the raw features)."""

    def __init__(self, weights, offset):
        self.weights, self.offset = weights, offset

    def __call__(self, z):
        return z @ self.weights + self.offset


def select_ridge(
    x_train, y_train, x_val, y_val, ridges, *, score=nrmse, lower_is_better=True, noise_var=None
) -> tuple[float, float]:
    """The ridge strength from ``ridges`` with the best validation score, and that score."""
    best = None
    for r in ridges:
        s = score(fit_ridge(x_train, y_train, r, noise_var=noise_var)(x_val), y_val)
        if best is None or (s < best[1] if lower_is_better else s > best[1]):
            best = (float(r), s)
    if best is None:
        raise ValueError(f"ridges must hold at least one ridge strength; got {ridges!r}")
    return best


def memory_capacity(x, u, train, test, *, max_delay: int = 20, ridge: float = 1e-8) -> tuple[float, list]:
    """Linear memory capacity (Jaeger 2002) of features ``x`` (T, F) driven by an i.i.d. input ``u``
    (T,): for each delay d = 0..max_delay−1 a ridge readout of ``u[t−d]`` fitted on ``train`` and its
    squared correlation with the truth on ``test``; returns (their sum, the list)."""
    r2 = []
    for d in range(max_delay):
        target = np.roll(np.asarray(u, float), d)
        pred = fit_ridge(x[train], target[train], ridge)(x[test])
        r2.append(float(np.corrcoef(pred, target[test])[0, 1] ** 2))
    return float(sum(r2)), r2
