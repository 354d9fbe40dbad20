"""Rate laws, the generator Q(V) and its exact propagators, for one device.

All functions take a single (unbatched) :class:`KineticParams` and a scalar voltage; batch
with ``jax.vmap``. Row-vector convention: ``dp/dt = p·Q``, rows of Q sum to zero.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ..constants import PA_PER_E_PER_NS
from ._params import BellRate, KineticParams, OpenConductance

__all__ = [
    "PA_PER_E_PER_NS",
    "bell_rate_per_ns",
    "bell_terms_per_ns",
    "conductance_ps",
    "gating_current_vector_pa",
    "generator",
    "max_squarings_for",
    "mean_relaxation_time_ns",
    "membrane_current_pa",
    "open_conductance_ps",
    "propagator_and_energy",
    "propagators",
    "state_weights",
    "steady_state",
    "step_occupancy",
    "transition_rates_per_ns",
]

# exp() arguments are clipped here: exp(80) ≈ 5.5e34 still fits in float32 (max 3.4e38).
_EXP_CLIP = 80.0


def bell_terms_per_ns(rate: BellRate, v, v_thermal_v) -> tuple[jax.Array, jax.Array]:
    """The saturated rate split by polarity, ``(k_with, k_against)``, each shape (S,), summing to
    :func:`bell_rate_per_ns`: the share of events that move the ion along +z (the ``k_plus`` term)
    and along −z (the ``k_minus`` term). The gating current needs the two apart."""
    x = v / v_thermal_v
    up = rate.k_plus_per_ns * jnp.exp(jnp.clip(rate.delta_plus * x, -_EXP_CLIP, _EXP_CLIP))
    down = rate.k_minus_per_ns * jnp.exp(jnp.clip(-rate.delta_minus * x, -_EXP_CLIP, _EXP_CLIP))
    saturation = rate.k_max_per_ns / (up + down + rate.k_max_per_ns)
    return up * saturation, down * saturation


def bell_rate_per_ns(rate: BellRate, v, v_thermal_v) -> jax.Array:
    """Saturating two-polarity Bell law, shape (S,)."""
    up, down = bell_terms_per_ns(rate, v, v_thermal_v)
    return up + down


def transition_rates_per_ns(params: KineticParams, v) -> tuple[jax.Array, jax.Array]:
    """(trapping rates open→blocked_s, escape rates blocked_s→open), each shape (S,).

    Trapping and its diffusion-limited ceiling both scale with the dopant's molarity.
    """
    trap = bell_rate_per_ns(params.trap, v, params.v_thermal_v) * params.molar
    escape = bell_rate_per_ns(params.escape, v, params.v_thermal_v)
    return trap, escape


def generator(params: KineticParams, v) -> jax.Array:
    """Q(V), shape (K, K), K = S + 1; state 0 is open, the others blocked."""
    trap, escape = transition_rates_per_ns(params, v)
    k = params.n_states
    q = jnp.zeros((k, k), dtype=jnp.result_type(trap, escape))
    q = q.at[0, 1:].set(trap).at[1:, 0].set(escape)
    return q - jnp.diag(q.sum(axis=1))


def steady_state(params: KineticParams, v) -> jax.Array:
    """Stationary occupancy π(V), shape (K,). Exact for the star-shaped chain:
    π_s/π_open = trap_s/escape_s."""
    trap, escape = transition_rates_per_ns(params, v)
    ratio = trap / escape
    p_open = 1.0 / (1.0 + ratio.sum())
    return jnp.concatenate([p_open[None], ratio * p_open])


HOLD_CORNER_V = 1e-3  # width of the corner where G_open stops following C·exp(α|V|)


def open_conductance_ps(open_: OpenConductance, v) -> jax.Array:
    """Carrier conductance of one open pore, pS, even and smooth in V.

    ``C·exp(α·u)`` with ``u = |V|_s`` (smooth |V|) below the measured range's edge ``v_max_v`` and
    held at its edge value above it (a softplus corner ``HOLD_CORNER_V`` wide, so G stays smooth for
    Newton and gradients and is 0.07 %·α/V low at the edge itself): the exponential is the paper's
    fit over the voltages it measured, not a law to extrapolate."""
    u = jnp.sqrt(v * v + open_.v_smooth_v**2) - open_.v_smooth_v
    u = u - HOLD_CORNER_V * jax.nn.softplus((u - open_.v_max_v) / HOLD_CORNER_V)
    return open_.c_ps * jnp.exp(jnp.clip(open_.alpha_per_v * u, -_EXP_CLIP, _EXP_CLIP))


def gating_current_vector_pa(params: KineticParams, v) -> jax.Array:
    """Displacement current of the dopant's own moves, pA per unit occupancy, shape (K,):
    the current of a pore is ``p @ j``.

    Every trapping or escape event moves the dopant's charge across part of the potential drop,
    and the external circuit sees that fraction of its charge (Ramo-Shockley; the gating current of
    channel biophysics). Along the cis path (``k_plus`` trapping, ``k_minus`` escape) the charge
    displaced is ``d_cis = trap.delta_plus + escape.delta_minus`` (in e; = |z| × the electrical
    distance of the site, the Woodhull 1973 reading of the Bell exponents), along the trans path
    ``d_trans = trap.delta_minus + escape.delta_plus``; motion along +z is positive current.
    """
    t_up, t_down = bell_terms_per_ns(params.trap, v, params.v_thermal_v)
    e_up, e_down = bell_terms_per_ns(params.escape, v, params.v_thermal_v)
    d_cis = params.trap.delta_plus + params.escape.delta_minus
    d_trans = params.trap.delta_minus + params.escape.delta_plus
    from_open = (params.molar * (t_up * d_cis - t_down * d_trans)).sum(keepdims=True)
    from_blocked = e_up * d_trans - e_down * d_cis
    return PA_PER_E_PER_NS * jnp.concatenate([from_open, from_blocked])


def membrane_current_pa(params: KineticParams, v, p) -> jax.Array:
    """Current per pore at occupancy ``p`` (K,): the carrier's ``G_open(V)·(p·weights)·V`` plus the
    dopant's displacement current ``p @ j(V)`` (:func:`gating_current_vector_pa`)."""
    return open_conductance_ps(params.open, v) * (p @ state_weights(params)) * v + p @ gating_current_vector_pa(params, v)


def state_weights(params: KineticParams) -> jax.Array:
    """Conductance of each state relative to an open pore: [1, leak_1, ..., leak_S]."""
    one = jnp.ones((1,), dtype=jnp.result_type(params.leak_fraction))
    return jnp.concatenate([one, params.leak_fraction])


def conductance_ps(params: KineticParams, v) -> jax.Array:
    """Steady-state conductance per pore, pS."""
    return open_conductance_ps(params.open, v) * (steady_state(params, v) @ state_weights(params))


def propagators(params: KineticParams, v, dt_ns) -> tuple[jax.Array, jax.Array]:
    """Exact one-step propagators for constant V over ``dt_ns``.

    Returns ``P = expm(Q·dt)`` and ``A = ∫₀^dt expm(Q·s) ds`` (units ns), both (K, K):
    ``p(t+dt) = p(t)·P`` and ``∫ p ds = p(t)·A`` over the step. Closed forms for K ≤ 2;
    otherwise one expm of the block matrix ``[[Q, I], [0, 0]]·dt`` (Van Loan).
    """
    k = params.n_states
    if k == 1:
        one = jnp.ones((1, 1), dtype=jnp.result_type(params.v_thermal_v, dt_ns))
        return one, one * dt_ns
    if k == 2:
        trap, escape = transition_rates_per_ns(params, v)
        lam = trap[0] + escape[0]
        pi = jnp.stack([escape[0], trap[0]]) / lam
        big_pi = jnp.broadcast_to(pi, (2, 2))
        rest = jnp.eye(2, dtype=pi.dtype) - big_pi
        decay = jnp.exp(-lam * dt_ns)
        p = big_pi + decay * rest
        a = big_pi * dt_ns + rest * (-jnp.expm1(-lam * dt_ns) / lam)
        return p, a
    q = generator(params, v)
    eye = jnp.eye(k, dtype=q.dtype)
    block = jnp.block([[q, eye], [jnp.zeros_like(q), jnp.zeros_like(q)]]) * dt_ns
    e = jax.scipy.linalg.expm(block)
    return _rows_sum_to(e[:k, :k], 1.0), _rows_sum_to(e[:k, k:], dt_ns)


def propagator_and_energy(params: KineticParams, v, dt_ns, weights, *, max_squarings: int | None = None):
    """``P = expm(Q·dt)`` and the vector ``A·weights`` (``A = ∫₀^dt expm(Q·s) ds``), shape (K, K) and
    (K,): what a run needs when its integrand is one vector of per-state weights (power, current).
    Closed forms for K ≤ 2; otherwise one (K+1)×(K+1) exponential of ``[[Q, α·weights], [0, 0]]·dt``
    (Van Loan with a vector: 3x cheaper than the 2K×2K block of :func:`propagators`), the column
    scaled by α so its 1-norm is Q's and ``max_squarings`` (static, from :func:`max_squarings_for`)
    still bounds the squarings."""
    k = params.n_states
    if k <= 2:
        p, a = propagators(params, v, dt_ns)
        return p, a @ weights
    q = generator(params, v)
    w_norm = jnp.sum(jnp.abs(weights))
    q_norm = jnp.max(jnp.sum(jnp.abs(q), axis=0))
    alpha = jnp.where(w_norm > 0, q_norm / jnp.where(w_norm > 0, w_norm, 1.0), 1.0)
    alpha = jnp.where(alpha > 0, alpha, 1.0)
    block = jnp.zeros((k + 1, k + 1), dtype=q.dtype).at[:k, :k].set(q).at[:k, k].set(alpha * weights) * dt_ns
    e = _expm_small(block, _MAX_SQUARINGS if max_squarings is None else int(max_squarings))
    return _rows_sum_to(e[:k, :k], 1.0), e[:k, k] / alpha


def _rows_sum_to(m, total):
    """Put the Padé round-off of each row onto its diagonal so rows sum to ``total`` exactly
    (P·1 = 1 and A·1 = dt hold for any generator): probability stays conserved over long runs."""
    off = m - jnp.diag(jnp.diag(m))
    return off + jnp.diag(total - off.sum(axis=1))


def transition_matrix(params: KineticParams, v, dt_ns, *, max_squarings: int | None = None) -> jax.Array:
    """``P = expm(Q·dt)`` alone (rows sum to 1): what the stochastic model and the circuit
    solver need, at a third of the cost of :func:`propagators` for K > 2 (no Van Loan block).
    ``max_squarings`` (static) caps the scaling-and-squaring loop; :func:`max_squarings_for` gives a
    cap that every voltage respects, so the result is the same as with the default cap of 40."""
    if params.n_states <= 2:
        return propagators(params, v, dt_ns)[0]
    cap = _MAX_SQUARINGS if max_squarings is None else int(max_squarings)
    return _rows_sum_to(_expm_small(generator(params, v) * dt_ns, cap), 1.0)


def max_squarings_for(params: KineticParams, dt_ns: float) -> int:
    """Squarings :func:`transition_matrix` can need at any voltage (host-side, from concrete
    parameters, any batch shape): every rate saturates below its ceiling, so ‖Q·dt‖₁ ≤
    (Σ trapping ceilings × molarity + Σ escape ceilings)·dt, and the Padé [7/7] step needs
    ``ceil(log2(that / θ₇))`` halvings at most."""
    caps = np.sum(np.asarray(params.trap.k_max_per_ns) * np.asarray(params.molar), axis=-1)
    caps = caps + np.sum(np.asarray(params.escape.k_max_per_ns), axis=-1)
    norm = float(np.max(caps)) * float(dt_ns)
    return int(min(_MAX_SQUARINGS, max(0, math.ceil(math.log2(max(norm, 1e-300) / _THETA7)))))


# Padé [7/7] coefficients and the 1-norm up to which it is exact to double precision (Higham 2005)
_PADE7 = (17297280.0, 8648640.0, 1995840.0, 277200.0, 25200.0, 1512.0, 56.0, 1.0)
_THETA7 = 0.95
_MAX_SQUARINGS = 40  # norms up to 0.95·2⁴⁰: far beyond any rate × step here


def _expm_small(a, max_squarings: int = _MAX_SQUARINGS):
    """expm of a small matrix by scaling and squaring with one Padé [7/7] approximant.

    One fixed-size branch-free program (a static-length ``fori_loop`` squares only while
    ``i < s``), so it compiles several times faster than ``jax.scipy.linalg.expm``'s
    multi-degree switch and stays reverse-differentiable; exact to round-off (tested
    against scipy)."""
    norm = jnp.max(jnp.sum(jnp.abs(a), axis=0))
    s = jnp.maximum(0, jnp.ceil(jnp.log2(jnp.maximum(norm, 1e-300) / _THETA7))).astype(jnp.int32)
    a = a / jnp.exp2(s.astype(a.dtype))
    eye = jnp.eye(a.shape[0], dtype=a.dtype)
    a2 = a @ a
    a4 = a2 @ a2
    a6 = a4 @ a2
    b = _PADE7
    u = a @ (b[7] * a6 + b[5] * a4 + b[3] * a2 + b[1] * eye)
    w = b[6] * a6 + b[4] * a4 + b[2] * a2 + b[0] * eye
    r = jnp.linalg.solve(w - u, w + u)
    return jax.lax.fori_loop(0, max_squarings, lambda i, m: jnp.where(i < s, m @ m, m), r)


def step_occupancy(params: KineticParams, p0, v, t_ns) -> jax.Array:
    """Occupancy ``p0·expm(Q(v)·t)`` after holding ``v`` for ``t_ns`` from ``p0``."""
    p, _ = propagators(params, v, t_ns)
    return p0 @ p


def mean_relaxation_time_ns(params: KineticParams, v, p0) -> jax.Array:
    """Integral relaxation time of w after a step to ``v`` from occupancy ``p0``.

    ``τ = ∫₀^∞ (w(t) − w∞) dt / (w(0) − w∞)``; for two states this is exactly 1/(k_trap + k_escape).
    Solves ``x·Q = −(p0 − π)``, ``x·1 = 0`` (the integral of p − π) without time stepping.
    """
    q = generator(params, v)
    pi = steady_state(params, v)
    d0 = p0 - pi
    m = q.at[:, -1].set(1.0)  # Q's columns sum to zero: swap one for the normalisation row
    rhs = (-d0).at[-1].set(0.0)
    x = jnp.linalg.solve(m.T, rhs)
    return x[0] / d0[0]
