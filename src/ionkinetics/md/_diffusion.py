"""Position-dependent diffusion coefficients D(z) from restrained (umbrella) windows (issue 24).

For an ion held by a harmonic restraint, the position autocorrelation gives the local diffusion
coefficient (Woolf and Roux, J. Am. Chem. Soc. 116, 5916 (1994); Hummer, New J. Phys. 7, 34 (2005),
its Eq. 13):

    D(⟨z⟩) = var(z)² / ∫₀^∞ C(t) dt,      C(t) = ⟨δz(0) δz(t)⟩.

With samples every Δt the integral is var(z)·Δt·g/2, g = 1 + 2Σ_k ρ(kΔt) the statistical inefficiency
(pymbar's ``timeseries``, the same estimate the PMF's errors use), so D = 2·var(z)/(g·Δt). This needs
Δt well below the window's relaxation time var(z)/D; :func:`window_diffusion` reports that ratio.
Errors: a moving-block bootstrap over blocks of several correlation times (``n_boot`` resamples,
explicit seed).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .._checks import bad_argument

__all__ = ["WindowDiffusion", "diffusion_profile", "window_diffusion"]


@dataclasses.dataclass(frozen=True)
class WindowDiffusion:
    """One window's D (nm²/ps) at ⟨z⟩ (nm), its bootstrap standard error, and the sampling check:
    ``relaxation_over_interval`` = (var(z)/D)/Δt should be ≳ 3 for the estimator to hold."""

    z0_nm: float
    z_mean_nm: float
    d_nm2_per_ps: float
    d_err_nm2_per_ps: float
    statistical_inefficiency: float
    relaxation_over_interval: float


def _g(z: np.ndarray) -> float:
    from pymbar import timeseries

    from ._pmf import _quiet_pymbar

    if z.size < 3 or np.ptp(z) == 0:
        return 1.0
    with _quiet_pymbar():
        return max(1.0, float(timeseries.statistical_inefficiency(z)))


def window_diffusion(z_nm, sample_every_ps: float, *, z0_nm: float = float("nan"), n_boot: int = 200, seed: int = 0):
    """D from one window's samples ``z_nm`` taken every ``sample_every_ps`` (see the module docstring)."""
    z = np.asarray(z_nm, dtype=float).ravel()
    if z.size < 20 or not np.all(np.isfinite(z)):
        raise bad_argument("z_nm", "must be at least 20 finite samples", z.size)
    dt = float(sample_every_ps)
    if not math.isfinite(dt) or dt <= 0:
        raise bad_argument("sample_every_ps", "must be a finite interval > 0 ps", sample_every_ps)
    g = _g(z)
    var = float(np.var(z, ddof=1))
    d = 2.0 * var / (g * dt)
    block = max(2, math.ceil(5 * g))
    n_blocks = max(1, z.size // block)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        starts = rng.integers(0, z.size - block + 1, size=n_blocks)
        zb = np.concatenate([z[s : s + block] for s in starts])
        boots.append(2.0 * float(np.var(zb, ddof=1)) / (_g(zb) * dt))
    return WindowDiffusion(float(z0_nm), float(z.mean()), d, float(np.std(boots, ddof=1)), g, (var / d) / dt)


def diffusion_profile(windows, *, n_boot: int = 200, seed: int = 0) -> list[WindowDiffusion]:
    """D at every window of a PMF (dicts or window files with ``z_nm``, ``z0_nm`` and ``sample_every_ps``
    or ``settings_sample_every_steps`` × ``settings_timestep_fs``), sorted by ⟨z⟩."""
    out = []
    for k, d in enumerate(windows):
        if "sample_every_ps" in d:
            dt = float(d["sample_every_ps"])
        elif "settings_sample_every_steps" in d:
            dt = float(d["settings_sample_every_steps"]) * float(d["settings_timestep_fs"]) / 1000.0
        else:
            raise bad_argument(f"windows[{k}]", "must say its sampling interval (sample_every_ps)", sorted(d))
        out.append(window_diffusion(d["z_nm"], dt, z0_nm=float(d["z0_nm"]), n_boot=n_boot, seed=seed + k))
    return sorted(out, key=lambda w: w.z_mean_nm)
