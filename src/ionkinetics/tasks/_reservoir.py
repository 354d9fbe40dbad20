"""A physical reservoir of ionic membranes, driven by a time-multiplexed input voltage.

N membranes (each ``n_pores`` identical pores of one calibrated system: pore, carrier salt and a
dopant salt at some molarity), each across its own ideal voltage source, all held at 0 V on the
readout side (a virtual-ground charge amplifier per membrane). Input step k lasts ``M·hold_ns``:
it is cut into M hold intervals ("virtual nodes", Appeltant et al. 2011); in interval m membrane
i sees the voltage ``V = v_bias_v[i] + v_span_v[i]·mask[i, m]·u[k]`` (u scaled to [−1, 1]) held
for ``hold_ns``. The readout feature of membrane i in interval m is the charge it passes then,
counted in elementary charges (ions). The state that carries one step into the next is the pores'
occupancy, so the reservoir's memory is the dopants' trapping and escape, its nonlinearity the
rates' and the carrier conductance's dependence on V.

Exact for piecewise-constant V: the occupancy advances by ``P = expm(Q(V)·hold)`` and the charge
of an interval is ``(p·A)·j(V)`` with ``A = ∫₀^hold expm(Q s) ds`` and ``j`` the per-state current
(the carrier's ``G_open(V)·weight·V`` plus the dopant's displacement current): the kinetics layer's
``membrane_current_pa`` integrated exactly. Energy ``∫ I·V dt`` of an interval is ``V`` times its
charge. Mean-field (differentiable in molarities and pore counts) or stochastic (exact multinomial
moves of the pores, and Poisson shot noise on the ions counted).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import cast

import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..calibrate import load_calibration
from ..constants import AJ_PER_PA_V_NS, PA_PER_E_PER_NS
from ..kinetics import (
    KineticParams,
    gating_current_vector_pa,
    generator,
    max_squarings_for,
    multinomial_counts,
    open_conductance_ps,
    state_weights,
    steady_state,
    transition_matrix,
)
from ..species import salt_of

__all__ = ["AJ_PER_PA_V_NS", "MembraneSpec", "Reservoir", "ReservoirRun", "make_mask"]


@dataclasses.dataclass(frozen=True)
class MembraneSpec:
    """One membrane of the reservoir. ``system`` is a system id (any dopant molarity of a shipped
    pair, e.g. ``"crown6:NaCl@1.0+KCl@0.3"``); its dopant's molarity is the design variable."""

    system: str
    n_pores: float = 1e4
    v_bias_v: float = 0.3
    v_span_v: float = 0.2

    def calibration(self):
        """The :class:`~ionkinetics.calibrate.Calibration` of ``system`` (loaded on every call)."""
        return load_calibration(self.system)

    @property
    def dopant_salt(self) -> str | None:
        """The dopant salt whose molarity can be designed (None for a single-salt system)."""
        dopants = self.calibration().dopants
        return salt_of(dopants[0].ion).name if dopants else None

    @property
    def molar(self) -> float | None:
        """Molarity (M) of the system's dopant, the design variable; ``None`` for a single-salt system."""
        dopants = self.calibration().dopants
        return float(dopants[0].molar) if dopants else None


def make_mask(n_membranes: int, n_virtual: int, *, seed: int, kind: str = "binary") -> np.ndarray:
    """Input mask (N, M): random ±1 (``binary``) or uniform on [−1, 1] (``uniform``), from ``seed``."""
    rng = np.random.default_rng(seed)
    if kind == "binary":
        return rng.choice([-1.0, 1.0], size=(n_membranes, n_virtual))
    if kind == "uniform":
        return rng.uniform(-1.0, 1.0, size=(n_membranes, n_virtual))
    raise ValueError(f"mask kind must be 'binary' or 'uniform'; got {kind!r}")


@dataclasses.dataclass(frozen=True)
class ReservoirRun:
    """Per input step k, virtual node m and membrane i: ``ions`` (T, M, N) counted per interval,
    ``energy_aj`` (T, M, N) dissipated in the interval, ``var_ions`` (T, M, N) the variance of the
    count that pore switching and shot noise would add (mean-field runs; zeros for stochastic ones)
    and ``v`` (T, M, N) the held voltages."""

    ions: jax.Array
    energy_aj: jax.Array
    var_ions: jax.Array
    v: jax.Array

    def features(self) -> jax.Array:
        """(T, M·N) readout features, membrane-major within a step."""
        t = self.ions.shape[0]
        return jnp.transpose(self.ions, (0, 2, 1)).reshape(t, -1)

    def feature_variance(self) -> jax.Array:
        """(T, M·N) variance of each readout feature, laid out as :meth:`features`."""
        t = self.var_ions.shape[0]
        return jnp.transpose(self.var_ions, (0, 2, 1)).reshape(t, -1)


class Reservoir:
    """N membranes, an input mask and a hold time; compiled once per (systems, sizes).

    ``molar`` (N,) and ``n_pores`` (N,) are runtime inputs of :meth:`run`, so ``jax.grad`` with
    respect to them works; a membrane without a dopant ignores its molarity."""

    def __init__(self, membranes, mask, hold_ns: float, *, fano: float = 1.0, max_molar: float = 4.0):
        self.membranes = tuple(membranes)
        if not self.membranes:
            raise ValueError("a reservoir needs at least one membrane; got none")
        self.mask = np.asarray(mask, dtype=float)
        if self.mask.ndim != 2 or self.mask.shape[0] != len(self.membranes):
            raise ValueError(f"mask must have shape (n_membranes={len(self.membranes)}, n_virtual); got {self.mask.shape}")
        if not (np.isfinite(hold_ns) and hold_ns > 0):
            raise ValueError(f"hold_ns must be a finite number > 0; got {hold_ns!r}")
        self.hold_ns = float(hold_ns)
        self.fano = float(fano)
        self._cals = [m.calibration() for m in self.membranes]
        self._salts = [m.dopant_salt for m in self.membranes]
        # membranes with the same number of occupancy states share one vmapped scan
        groups: dict[int, list[int]] = {}
        for i, cal in enumerate(self._cals):
            groups.setdefault(cal.params.n_states, []).append(i)
        self.groups = tuple((k, tuple(ix)) for k, ix in sorted(groups.items()))
        # squarings the Padé expm can need at any voltage, at the highest molarity allowed
        self._max_sq = {k: max(max_squarings_for(self.params(i, max_molar), self.hold_ns) for i in ix) for k, ix in self.groups}
        self.v_bias_v = np.array([m.v_bias_v for m in self.membranes])
        self.v_span_v = np.array([m.v_span_v for m in self.membranes])

    @property
    def n_membranes(self) -> int:
        """Number of membranes, N."""
        return len(self.membranes)

    @property
    def n_virtual(self) -> int:
        """Number of virtual nodes (hold intervals per input step), M."""
        return self.mask.shape[1]

    @property
    def n_features(self) -> int:
        """Number of readout features per input step, N·M."""
        return self.n_membranes * self.n_virtual

    @property
    def step_ns(self) -> float:
        """Time one input step takes, ``hold_ns`` × M, in ns."""
        return self.hold_ns * self.n_virtual

    @property
    def input_rate_ghz(self) -> float:
        """Input steps per ns (GHz)."""
        return 1.0 / self.step_ns

    def default_molar(self) -> np.ndarray:
        """(N,) each membrane's dopant molarity from its system id, in M (1.0 for a membrane without a dopant)."""
        return np.array([m.molar if m.molar is not None else 1.0 for m in self.membranes])

    def default_pores(self) -> np.ndarray:
        """(N,) each membrane's pore count as its spec gives it."""
        return np.array([float(m.n_pores) for m in self.membranes])

    def params(self, i: int, molar) -> KineticParams:
        """Kinetic parameters of membrane ``i`` at dopant molarity ``molar`` (a number or a JAX
        tracer; ignored for a membrane without a dopant)."""
        salt = self._salts[i]
        return self._cals[i].params if salt is None else self._cals[i].params_with_molar({salt: molar})

    @property
    def state_counts(self) -> tuple[int, ...]:
        """Occupancy states of each membrane (2: one center site; 3: entrance plugs on both sides)."""
        return tuple(cal.params.n_states for cal in self._cals)

    def voltages(self, u_k) -> jax.Array:
        """(T, M, N) held voltages for input ``u_k`` (T,) in [−1, 1]."""
        u = jnp.asarray(u_k)
        # numpy mask × jax array: numpy defers to jax (__array_priority__), so this is a jax Array
        return cast(jax.Array, self.v_bias_v + self.v_span_v * self.mask.T[None] * u[:, None, None])

    def run(self, u_k, molar=None, n_pores=None, *, key=None) -> ReservoirRun:
        """Drive the reservoir with ``u_k`` (T,), scaled to [−1, 1]. Mean-field without ``key``;
        with a ``jax.random`` key, stochastic pores (``n_pores`` rounded) and shot noise."""
        u_k, molar, n_pores = checked_drive(self, u_k, molar, n_pores)
        return _run(self, u_k, molar, n_pores, key)

    # a Reservoir is a static argument of the jitted run: equal reservoirs share one compiled program
    def _key(self):
        return (
            tuple(m.system for m in self.membranes),
            self.mask.tobytes(),
            self.mask.shape,
            self.v_bias_v.tobytes(),
            self.v_span_v.tobytes(),
            self.hold_ns,
            self.fano,
            tuple(sorted(self._max_sq.items())),
        )

    def __hash__(self):
        return hash(self._key())

    def __eq__(self, other):
        return isinstance(other, Reservoir) and self._key() == other._key()


def checked_drive(res, u_k, molar, n_pores):
    """``(u_k, molar, n_pores)`` as float arrays, the molarities and pore counts defaulting to the
    reservoir's own (``res.default_molar()``, ``res.default_pores()``), each checked by name."""
    molar = jnp.asarray(res.default_molar() if molar is None else molar, dtype=float)
    n_pores = jnp.asarray(res.default_pores() if n_pores is None else n_pores, dtype=float)
    u_k = jnp.asarray(u_k, dtype=float)
    _check(
        u_k,
        "u_k",
        "must be finite and within [-1, 1] (the scaled input; beyond it the drive leaves the "
        "voltages the membranes were set up for)",
        lambda x: np.isfinite(x) & (np.abs(x) <= 1.0),
        ndim=1,
    )
    for name, value in (("molar", molar), ("n_pores", n_pores)):
        _check(
            value,
            name,
            f"must be {res.n_membranes} finite numbers > 0, one per membrane",
            lambda x: np.isfinite(x) & (x > 0),
            shape=(res.n_membranes,),
        )
    return u_k, molar, n_pores


def _check(value, name, rule, ok, *, ndim=None, shape=None):
    """Refuse a bad concrete input by name, rule and value (traced values are the caller's to check)."""
    if isinstance(value, jax.core.Tracer):
        return
    x = np.asarray(value)
    if (ndim is not None and x.ndim != ndim) or (shape is not None and x.shape != shape) or not np.all(ok(x)):
        bad = x if x.size <= 6 else x.ravel()[~np.asarray(ok(x)).ravel()][:3] if x.ndim else x
        raise ValueError(f"{name} {rule}; got shape {x.shape}, values {np.asarray(bad).tolist()}")


def _stack(params_list):
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *params_list)


def _factors(params, v, hold_ns, max_sq):
    """``(P, A, j)`` for one membrane at held voltage ``v``: ``P = expm(Q·hold)``,
    ``A = ∫₀^hold expm(Q·s) ds = Π·hold + Q#(P − I)`` with the group inverse ``Q# = Π − (Π − Q)⁻¹``
    (exact; Π = 1·π the stationary projector), and ``j`` (K,) the current of each state, pA."""
    q = generator(params, v)
    k = q.shape[0]
    p = transition_matrix(params, v, hold_ns, max_squarings=max_sq)
    pi = steady_state(params, v)
    big_pi = jnp.broadcast_to(pi, (k, k))
    eye = jnp.eye(k, dtype=q.dtype)
    q_sharp = big_pi - jnp.linalg.inv(big_pi - q)
    a = big_pi * hold_ns + q_sharp @ (p - eye)
    j = open_conductance_ps(params.open, v) * state_weights(params) * v + gating_current_vector_pa(params, v)
    carrier = open_conductance_ps(params.open, v) * state_weights(params) * v
    return p, a, j, carrier


@functools.partial(jax.jit, static_argnums=0)
def _run(res: Reservoir, u_k, molar, n_pores, key):
    v_tmn = res.voltages(u_k)
    t, m, n = v_tmn.shape
    v_flat = v_tmn.reshape(t * m, n)
    ions = jnp.zeros((t * m, n))
    var = jnp.zeros((t * m, n))
    for gi, (k_states, ix) in enumerate(res.groups):
        idx = np.array(ix)
        params = _stack([res.params(i, molar[i]) for i in ix])
        v_g = v_flat[:, idx]
        pores = n_pores[idx]
        factors = jax.vmap(functools.partial(_factors, hold_ns=res.hold_ns, max_sq=res._max_sq[k_states]))
        p0 = jax.vmap(steady_state)(params, v_g[0])
        if key is None:

            def mean_field_step(p, v, params=params, factors=factors, pores=pores):
                prop, a, j, carrier = factors(params, v)
                q_pa_ns = jnp.einsum("bk,bkl,bl->b", p, a, j)
                # variance added by pore switching (binomial, at the interval's start) and by shot noise
                c_ions = carrier * res.hold_ns / PA_PER_E_PER_NS
                mean_c = jnp.einsum("bk,bk->b", p, c_ions)
                var_switch = pores * (jnp.einsum("bk,bk->b", p, c_ions**2) - mean_c**2)
                q_ions = pores * q_pa_ns / PA_PER_E_PER_NS
                return jnp.einsum("bk,bkl->bl", p, prop), (q_ions, var_switch + res.fano * jnp.abs(q_ions))

            _, (q_g, var_g) = lax.scan(mean_field_step, p0, v_g)
        else:
            counts0 = jnp.round(pores[:, None] * p0)
            counts0 = counts0.at[:, 0].add(jnp.round(pores) - counts0.sum(axis=1))

            def stochastic_step(carry, inp, params=params, factors=factors, n_b=len(ix), gi=gi):
                counts = carry
                v, kk = inp
                prop, a, j, _ = factors(params, v)
                q_ions = jnp.einsum("bk,bkl,bl->b", counts, a, j) / PA_PER_E_PER_NS
                k_move, k_shot = jax.random.split(jax.random.fold_in(jax.random.fold_in(key, gi), kk))
                shot = jnp.sqrt(res.fano * jnp.abs(q_ions)) * jax.random.normal(k_shot, q_ions.shape)
                keys = jax.random.split(k_move, n_b)
                new = jax.vmap(multinomial_counts)(keys, counts, prop)
                return new, (q_ions + shot, jnp.zeros_like(q_ions))

            _, (q_g, var_g) = lax.scan(stochastic_step, counts0, (v_g, jnp.arange(t * m)))
        ions = ions.at[:, idx].set(q_g)
        var = var.at[:, idx].set(var_g)
    ions = ions.reshape(t, m, n)
    energy = v_tmn * ions * PA_PER_E_PER_NS * AJ_PER_PA_V_NS
    return ReservoirRun(ions=ions, energy_aj=energy, var_ions=var.reshape(t, m, n), v=v_tmn)


jax.tree_util.register_dataclass(ReservoirRun, data_fields=["ions", "energy_aj", "var_ions", "v"], meta_fields=[])
