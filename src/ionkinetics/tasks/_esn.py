"""The software baselines run beside every physical reservoir: a leaky tanh echo-state network
with as many nodes as the reservoir has readout features, its hyperparameters chosen on the
validation split (never the test split), and a linear delay line of the raw input."""

from __future__ import annotations

import itertools

import numpy as np

from ._readout import fit_ridge, nrmse

__all__ = ["ESN_GRID", "delay_line", "esn_states", "tune_esn"]

# spectral radius × input scaling × leak rate; ridge strengths are chosen per combination
ESN_GRID = {
    "spectral_radius": (0.3, 0.6, 0.9, 1.0, 1.2),
    "input_scaling": (0.1, 0.3, 1.0),
    "leak": (0.3, 0.6, 1.0),
}


def esn_states(u, n_nodes: int, *, spectral_radius: float, input_scaling: float, leak: float, seed: int) -> np.ndarray:
    """States (T, n_nodes) of ``x ← (1−a)·x + a·tanh(W·x + s·w_in·u + b)``: W dense Gaussian scaled
    to the spectral radius, w_in and b uniform on [−1, 1] (b scaled by 0.1), all from ``seed``."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n_nodes, n_nodes))
    w *= spectral_radius / np.max(np.abs(np.linalg.eigvals(w)))
    w_in = rng.uniform(-1, 1, n_nodes) * input_scaling
    b = rng.uniform(-1, 1, n_nodes) * 0.1
    x = np.zeros(n_nodes)
    out = np.empty((len(u), n_nodes))
    for t, ut in enumerate(np.asarray(u, float)):
        x = (1 - leak) * x + leak * np.tanh(w @ x + w_in * ut + b)
        out[t] = x
    return out


def delay_line(u, depth: int) -> np.ndarray:
    """(T, depth) of the last ``depth`` inputs (zeros before the start): the linear-memory baseline."""
    u = np.asarray(u, float)
    out = np.zeros((len(u), depth))
    for d in range(depth):
        out[d:, d] = u[: len(u) - d]
    return out


def tune_esn(
    u, y, splits, n_nodes: int, ridges, *, seed: int, score=nrmse, lower_is_better=True, grid=None
) -> tuple[dict, float, np.ndarray]:
    """Best ESN by validation score over ``grid`` × ``ridges``; returns ``(hyper, val_score, states)``.
    ``splits`` is ``(train, val)`` index slices."""
    grid = ESN_GRID if grid is None else grid
    train, val = splits
    best = None
    for rho, s_in, leak in itertools.product(grid["spectral_radius"], grid["input_scaling"], grid["leak"]):
        x = esn_states(u, n_nodes, spectral_radius=rho, input_scaling=s_in, leak=leak, seed=seed)
        for r in ridges:
            s = score(fit_ridge(x[train], y[train], r)(x[val]), y[val])
            if best is None or (s < best[1] if lower_is_better else s > best[1]):
                best = ({"spectral_radius": rho, "input_scaling": s_in, "leak": leak, "ridge": float(r)}, s, x)
    if best is None:
        raise ValueError(f"the ESN grid and ridges must each hold at least one value; got grid {grid!r}, ridges {ridges!r}")
    return best
