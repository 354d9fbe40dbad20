"""The benchmark series: NARMA-10, Mackey–Glass (integrated from its delay equation) and
sine/square waveforms. Every generator takes an explicit seed; none reads a file.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["mackey_glass", "narma10", "waveforms"]


def narma10(n: int, *, seed: int, u_max: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Input ``u`` (n,) drawn i.i.d. uniform on [0, u_max] and the NARMA-10 target ``y`` (n,)::

        y[t+1] = 0.3·y[t] + 0.05·y[t]·Σ_{i=0..9} y[t−i] + 1.5·u[t−9]·u[t] + 0.1

    (Atiya & Parlos 2000; y = 0 before t = 10). The task: predict ``y[t+1]`` from ``u`` up to ``t``,
    so ``y`` is returned shifted, ``y[t]`` aligned with ``u[t]``. A draw whose y leaves [−10, 10]
    (NARMA-10 diverges for rare inputs) is refused rather than returned."""
    n = _positive_int(n, "n")
    rng = np.random.default_rng(seed)
    u = rng.uniform(0.0, u_max, n)
    y = np.zeros(n + 1)
    for t in range(9, n):
        y[t + 1] = 0.3 * y[t] + 0.05 * y[t] * y[t - 9 : t + 1].sum() + 1.5 * u[t - 9] * u[t] + 0.1
    if not np.all(np.abs(y) < 10.0):
        raise ValueError(f"NARMA-10 diverged for seed {seed} (|y| > 10); choose another seed")
    return u, y[1:]


def _mg_rhs(x, x_tau, beta, gamma, power):
    return beta * x_tau / (1.0 + x_tau**power) - gamma * x


def mackey_glass(
    n: int,
    *,
    tau: float = 17.0,
    sample_interval: float = 1.0,
    dt: float = 0.1,
    beta: float = 0.2,
    gamma: float = 0.1,
    power: float = 10.0,
    x0: float = 1.2,
    discard: float = 500.0,
) -> np.ndarray:
    """``n`` samples of the Mackey–Glass delay equation ``dx/dt = β·x(t−τ)/(1 + x(t−τ)^p) − γ·x``,
    one every ``sample_interval`` time units after a transient of ``discard``.

    Integrated by classical Runge–Kutta 4 with step ``dt`` (τ/dt and sample_interval/dt must be
    whole numbers), history ``x = x0`` for t ≤ 0. The delayed value at a half step, between stored
    points, is the cubic Hermite interpolant built from the stored values and slopes: O(dt⁴) like
    the RK4 step itself, so the scheme is fourth order (checked in the tests)."""
    n = _positive_int(n, "n")
    lag = tau / dt
    every = sample_interval / dt
    for name, value in (("tau/dt", lag), ("sample_interval/dt", every)):
        if not (value >= 1 and abs(value - round(value)) < 1e-9):
            raise ValueError(f"{name} must be a whole number >= 1; got {value!r} (tau={tau}, dt={dt})")
    lag, every = round(lag), round(every)
    skip = round(discard / dt)
    total = skip + (n - 1) * every + 1
    x = np.empty(lag + total)  # x[lag + j] = x(j·dt); entries up to index lag are the history
    f = np.zeros_like(x)  # slopes dx/dt at the stored points (the history's are 0)
    x[: lag + 1] = x0
    for i in range(lag, lag + total - 1):
        xa, xb = x[i - lag], x[i - lag + 1]  # x(t−τ), x(t−τ+dt): breakpoints of the history lie on the grid
        f[i] = _mg_rhs(x[i], xa, beta, gamma, power)
        fa = f[i - lag]
        fb = 0.0 if i - lag + 1 == lag else f[i - lag + 1]  # the interval [−dt, 0] is still history
        x_half = 0.5 * (xa + xb) + dt * (fa - fb) / 8.0  # cubic Hermite interpolant at the midpoint
        k1 = f[i]
        k2 = _mg_rhs(x[i] + 0.5 * dt * k1, x_half, beta, gamma, power)
        k3 = _mg_rhs(x[i] + 0.5 * dt * k2, x_half, beta, gamma, power)
        k4 = _mg_rhs(x[i] + dt * k3, xb, beta, gamma, power)
        x[i + 1] = x[i] + dt * (k1 + 2 * k2 + 2 * k3 + k4) / 6.0
    return x[lag + skip :: every][:n].copy()


def waveforms(n_periods: int, *, seed: int, period: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Sine/square classification: ``n_periods`` periods, each a sine or a square wave (coin
    flip) of ``period`` samples, concatenated. Returns input ``u`` (n_periods·period,) in [−1, 1]
    and label ``c`` (1 for square, 0 for sine) per sample."""
    n_periods = _positive_int(n_periods, "n_periods")
    period = _positive_int(period, "period")
    if period < 4 or period % 2:
        raise ValueError(f"period must be an even number of samples >= 4; got {period!r}")
    rng = np.random.default_rng(seed)
    phase = 2 * math.pi * np.arange(period) / period
    sine = np.sin(phase)
    square = np.where(np.arange(period) < period // 2, 1.0, -1.0)
    kind = rng.integers(0, 2, n_periods)
    u = np.concatenate([square if k else sine for k in kind])
    return u, np.repeat(kind.astype(float), period)


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    return int(value)
