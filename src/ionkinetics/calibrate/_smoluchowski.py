"""Escape and trapping rates from a free-energy profile and a diffusion profile, under bias (issue 24).

An ion in the pore diffuses along z in the tilted profile U(z) = W(z) − q·f(z)·V/V_T (kT), with W the
PMF, f(z) the share of the applied potential drop the ion has crossed at z (from 0 far on one side to 1
far on the other; measured, not assumed linear: pass it in) and V_T = k_BT/e. The mean first-passage
time τ(x) from x to leaving the site region (absorbing boundaries at ``z_a`` and ``z_b``) solves the
backward Smoluchowski equation

    d/dx [ D(x) e^{−U(x)} dτ/dx ] = −e^{−U(x)},      τ(z_a) = τ(z_b) = 0,

solved here by second-order finite volumes on a uniform grid (a tridiagonal system). The escape rate is
1/τ averaged over the site's Boltzmann distribution (the pore's occupied state), split into the two
exits by the splitting probability (same operator, no source). Trapping follows from detailed balance
with the binding constant of the same tilted profile, k_trap = k_escape·K_b (per molar), which holds at
any bias for the two-state model the kinetics use.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .._checks import bad_argument
from ..constants import AVOGADRO_PER_MOL, BOLTZMANN_J_PER_K, ELEMENTARY_CHARGE_C

__all__ = ["SiteRates", "mean_first_passage_time_ps", "site_rates_from_profile"]

_NM3_PER_LITRE = 1e24


def _grid(z_nm, *arrays):
    z = np.asarray(z_nm, dtype=float)
    if z.ndim != 1 or z.size < 5 or not np.all(np.isfinite(z)):
        raise bad_argument("z_nm", "must be at least 5 finite grid points", z.shape)
    h = np.diff(z)
    if np.any(h <= 0) or np.ptp(h) > 1e-6 * h.mean():
        raise bad_argument("z_nm", "must be a uniform, increasing grid", (float(h.min()), float(h.max())))
    out = []
    for name, a in arrays:
        a = np.broadcast_to(np.asarray(a, dtype=float), z.shape)
        if not np.all(np.isfinite(a)):
            raise bad_argument(name, "must be finite on the grid", name)
        out.append(a)
    return z, float(h.mean()), out


def mean_first_passage_time_ps(z_nm, u_kt, d_nm2_per_ps, *, source=None) -> np.ndarray:
    """τ(z) (ps) on a uniform grid, absorbing at both ends: solves d/dz[D e^{−U} dτ/dz] = −s(z)·e^{−U}
    (``source`` s = 1 by default; s = 0 with τ(z_a) = 0, τ(z_b) = 1 gives the splitting probability,
    see :func:`site_rates_from_profile`). Second order in the grid spacing."""
    z, h, (u, d) = _grid(z_nm, ("u_kt", u_kt), ("d_nm2_per_ps", d_nm2_per_ps))
    if np.any(d <= 0):
        raise bad_argument("d_nm2_per_ps", "must be > 0 everywhere", float(d.min()))
    s = np.ones_like(z) if source is None else np.broadcast_to(np.asarray(source, dtype=float), z.shape)
    u = u - u.min()
    # flux coefficients at the half points: the arithmetic mean of D·e^{−U} (second order)
    a = 0.5 * (d[1:] * np.exp(-u[1:]) + d[:-1] * np.exp(-u[:-1])) / h**2
    n = z.size - 2  # interior unknowns
    diag = a[:-1] + a[1:]
    rhs = s[1:-1] * np.exp(-u[1:-1])
    from scipy.linalg import solve_banded

    ab = np.zeros((3, n))
    ab[0, 1:] = -a[1:-1]
    ab[1] = diag
    ab[2, :-1] = -a[1:-1]
    tau = np.zeros_like(z)
    tau[1:-1] = solve_banded((1, 1), ab, rhs)
    return tau


def _splitting(z, u, d, h) -> np.ndarray:
    """Probability of leaving through z_b before z_a, from each point (the same operator, no source)."""
    u = u - u.min()
    a = 0.5 * (d[1:] * np.exp(-u[1:]) + d[:-1] * np.exp(-u[:-1]))
    inv = 1.0 / a
    c = np.concatenate([[0.0], np.cumsum(inv)])
    return c / c[-1]


@dataclasses.dataclass(frozen=True)
class SiteRates:
    """Rates of the pore site |z| < ``site_half_width_nm`` at bias ``v``: escape (per ns) and its split to
    the +z and −z exits, trapping per molar per ns by detailed balance, and the binding constant (M⁻¹)."""

    v: float
    escape_per_ns: float
    escape_plus_fraction: float
    binding_constant_per_molar: float
    trap_per_molar_per_ns: float


def site_rates_from_profile(z_nm, w_kt, d_nm2_per_ps, *, v: float, charge_e: float, field_share, reference_area_nm2: float,
                            site_half_width_nm: float = 0.3, temperature_k: float = 298.15) -> SiteRates:  # fmt: skip
    """Escape and trapping of an ion of charge ``charge_e`` at bias ``v`` (V) from its PMF ``w_kt`` and
    diffusion profile on the uniform grid ``z_nm`` (ends = the absorbing boundaries, in bulk), with
    ``field_share`` f(z) in [0, 1]; ``reference_area_nm2`` is the membrane area per pore (the K_b footing)."""
    z, h, (w, d, f) = _grid(z_nm, ("w_kt", w_kt), ("d_nm2_per_ps", d_nm2_per_ps), ("field_share", field_share))
    if np.any((f < 0) | (f > 1)):
        raise bad_argument(
            "field_share", "must lie in [0, 1] (the fraction of the drop crossed)", (float(f.min()), float(f.max()))
        )
    vt = BOLTZMANN_J_PER_K * temperature_k / ELEMENTARY_CHARGE_C  # V_T = k_BT/e, volts
    u = w - charge_e * f * v / vt
    site = np.abs(z) < site_half_width_nm
    if site.sum() < 2:
        raise bad_argument("site_half_width_nm", "must span at least two grid points", site_half_width_nm)
    tau = mean_first_passage_time_ps(z, u, d)
    p = np.exp(-(u[site] - u[site].min()))
    tau_site = float(np.sum(tau[site] * p) / np.sum(p))
    plus = float(np.sum(_splitting(z, u, d, h)[site] * p) / np.sum(p))
    # K_b of the tilted profile, zeroed at the mean of the two bulk ends (the bias tilts bulk too: a
    # site's occupancy is relative to the solution it exchanges with, taken as the average of both sides)
    u0 = u - 0.5 * (u[0] + u[-1])
    k_b = (float(np.sum(np.exp(-u0[site]) - 1.0)) * h * reference_area_nm2) * AVOGADRO_PER_MOL / _NM3_PER_LITRE
    escape_per_ns = 1000.0 / tau_site
    return SiteRates(float(v), escape_per_ns, plus, k_b, escape_per_ns * max(k_b, 0.0))


def _kramers_high_barrier_per_ps(z, u, d, i_min: int, i_max: int) -> float:
    """Kramers' high-friction rate over one barrier: D·√(U''_min·|U''_max|)/(2π)·e^{−ΔU} (for tests)."""
    h = z[1] - z[0]
    c_min = (u[i_min + 1] - 2 * u[i_min] + u[i_min - 1]) / h**2
    c_max = (u[i_max + 1] - 2 * u[i_max] + u[i_max - 1]) / h**2
    return float(d[i_max] * math.sqrt(c_min * abs(c_max)) / (2 * math.pi) * math.exp(-(u[i_max] - u[i_min])))
