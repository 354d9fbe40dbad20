"""A delay reservoir of ionic membranes: one calibrated membrane per loop is the single nonlinear
node, a delayed-feedback loop gives it memory, and time multiplexing over virtual nodes gives it
width (Appeltant et al., Nat. Commun. 2, 468 (2011)).

The device, per loop (membrane i, ``n_pores`` pores of one calibrated system):

* An input step k lasts ``τ = M·θ``: it is cut into M virtual-node intervals of ``θ = hold_ns``.
* In global interval ``g = k·M + m`` the membrane is held at::

      V(g) = v_bias + v_span · clip(γ·mask[i, m]·u[k] + η·x(g − D), −1, 1)

  ``u`` is the input scaled to [−1, 1]; ``γ`` (``input_gain``) the input drive; ``η``
  (``feedback_gain``) the gain of the **delayed feedback**: the membrane current of the interval
  ``D`` intervals earlier (``D = delay_nodes``; ``D = M`` is the synchronous loop of Appeltant et
  al., ``D = M + 1`` the desynchronised one, where virtual node m is fed by node m − 1). That
  current is measured by a transimpedance amplifier with a fixed offset and gain, stored in a delay
  line (an analog or digital FIFO of D samples) and added to the drive:
  ``x = (q − q_rest)/q_span``, ``q`` the ions one pore passes in the interval, ``q_rest`` those of
  a pore at rest (steady state at ``v_bias``) held one interval at ``v_bias``, ``q_span`` half the
  difference a rest pore passes in one interval at ``v_bias ± v_span`` (the small-signal gain from
  rest; device constants of the amplifier, from the calibration). The driver
  saturates at ``v_bias ± v_span`` (the clip), which keeps V inside the calibration's data.
* The node's own inertia couples neighbouring virtual nodes: the pores' occupancy carries from one
  interval into the next (θ is shorter than the trapping/escape times), exactly as the node's
  low-pass response does in a delay reservoir.
* **A shared node couples the loops** (optional: ``shared_resistance_ohm`` R_c > 0 with
  ``shared_capacitance_f`` C_c): every membrane's far side sits on one common electrode, node c, tied
  to ground through R_c ∥ C_c (the trans chamber's access resistance and the electrode's
  capacitance). Membrane i then feels ``V_i − v_c``, and ``v_c`` follows the summed membrane
  current I_Σ with the node's time constant τ_c = R_c·C_c: over an interval,
  ``v_c ← v_c·e^{−θ/τ_c} + R_c·I_Σ·(1 − e^{−θ/τ_c})`` (exact for the RC node under the interval's mean
  current), with the membranes held at the interval's starting ``v_c``. So each membrane's voltage
  carries a leaky, nonlinear sum of every loop's recent current: physical coupling through the
  membranes' own I–V, and a memory of time constant τ_c beside the loops'. Holding ``v_c`` over an
  interval is the approximation (first order in θ/τ_c): ``τ_c ≥ θ`` is required. The run starts at
  the circuit's DC operating point of the first drive (``v_c`` solved with the pores at steady
  state). The circuits layer's transient solver, on the same membranes, R_c and C_c as elements, is
  the cross-check (tests/test_tasks.py).
  All loops must share one occupancy-state count (one vmapped group) when coupled.
* The readout features are the measured charges, ions per interval (M per loop per input step),
  read by a linear ridge readout. The energy is ``∫ I·V dt`` dissipated in the membranes; the
  amplifier and delay line are not counted (stated in every summary).

Exact for piecewise-constant V, as :mod:`._reservoir` is: occupancy advances by
``P = expm(Q(V)·θ)``, and an interval's charge is ``p·(A·j(V))`` with ``A = ∫₀^θ expm(Q s) ds`` (the
kinetics layer's :func:`~ionkinetics.kinetics.propagator_and_energy`). Mean-field (differentiable
in γ, η, molarities and pore counts) or stochastic (exact multinomial moves of the pores and
Poisson shot noise on the ions counted; the feedback then carries the noisy measurement, as a real
loop would).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..constants import PA_PER_E_PER_NS
from ..kinetics import (
    KineticParams,
    gating_current_vector_pa,
    multinomial_counts,
    open_conductance_ps,
    propagator_and_energy,
    state_weights,
    steady_state,
)
from ._reservoir import AJ_PER_PA_V_NS, Reservoir, ReservoirRun, _check, _stack, checked_drive

__all__ = ["DelayReservoir", "state_current_pa"]


def state_current_pa(params, v):
    """(K,) current of one pore in each occupancy state at held ``v``, pA: the carrier's
    ``G_open(V)·weight·V`` plus the dopant's displacement current (the kinetics layer's terms)."""
    return open_conductance_ps(params.open, v) * state_weights(params) * v + gating_current_vector_pa(params, v)


class DelayReservoir(Reservoir):
    """N delayed-feedback loops (one membrane each) with M virtual nodes of ``hold_ns``.

    ``input_gain`` γ and ``feedback_gain`` η are runtime inputs of :meth:`run` (so ``jax.grad``
    reaches them, like ``molar`` and ``n_pores``); their defaults are stored. ``delay_nodes`` D ≥ 1
    is the loop delay in intervals (default M)."""

    def __init__(
        self,
        membranes,
        mask,
        hold_ns: float,
        *,
        input_gain: float,
        feedback_gain: float,
        delay_nodes: int | None = None,
        shared_resistance_ohm: float = 0.0,
        shared_capacitance_f: float = 0.0,
        fano: float = 1.0,
        max_molar: float = 4.0,
    ):
        super().__init__(membranes, mask, hold_ns, fano=fano, max_molar=max_molar)
        self.shared_resistance_ohm, self.shared_capacitance_f = _check_shared_node(
            self, shared_resistance_ohm, shared_capacitance_f
        )
        d = self.n_virtual if delay_nodes is None else delay_nodes
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise ValueError(f"delay_nodes must be an integer >= 1 (the loop delay in hold intervals); got {delay_nodes!r}")
        self.delay_nodes = int(d)
        for name, value in (("input_gain", input_gain), ("feedback_gain", feedback_gain)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
        self.input_gain = float(input_gain)
        self.feedback_gain = float(feedback_gain)

    def drive(self, u_k) -> jax.Array:
        """(T·M, N) input part ``mask[i, m]·u[k]`` of the drive, one row per interval."""
        u = jnp.asarray(u_k)
        # numpy mask × jax array: numpy defers to jax (__array_priority__), so this is a jax Array
        return cast(jax.Array, (self.mask.T[None] * u[:, None, None]).reshape(-1, self.n_membranes))

    def voltages(self, u_k):
        """Refused: the held voltages depend on the feedback (read ``run(...).v``)."""
        raise TypeError("a DelayReservoir's voltages depend on its feedback: run it and read ReservoirRun.v")

    def run(self, u_k, molar=None, n_pores=None, *, input_gain=None, feedback_gain=None, key=None) -> ReservoirRun:
        """Drive the loops with ``u_k`` (T,), scaled to [−1, 1]. Mean-field without ``key``; with a
        ``jax.random`` key, stochastic pores (``n_pores`` rounded) and shot noise, the feedback
        carrying the noisy count."""
        u_k, molar, n_pores = checked_drive(self, u_k, molar, n_pores)
        gamma = self.input_gain if input_gain is None else input_gain
        eta = self.feedback_gain if feedback_gain is None else feedback_gain
        gains = jnp.asarray([gamma, eta], dtype=float)
        _check(gains, "input_gain, feedback_gain", "must be finite numbers >= 0", lambda x: np.isfinite(x) & (x >= 0))
        return _run_delay(self, u_k, molar, n_pores, gains, key)

    def rest_and_span(self, i: int, molar, v_node=0.0) -> tuple[jax.Array, jax.Array]:
        """The amplifier's constants for loop ``i``: ions a rest pore (steady state at ``v_bias``)
        passes in one interval at ``v_bias`` (offset), and half the difference between one interval
        at ``v_bias + v_span`` and at ``v_bias − v_span`` from rest (gain). Coupled loops are set up at
        the circuit's rest: every membrane's voltage less the shared node's rest voltage ``v_node``."""
        params = self.params(i, molar)
        vb, vs = self.v_bias_v[i] - v_node, self.v_span_v[i]
        p_rest = steady_state(params, vb)

        def q(v):
            _, aj = propagator_and_energy(params, v, self.hold_ns, state_current_pa(params, v))
            return p_rest @ aj / PA_PER_E_PER_NS

        span = 0.5 * (q(vb + vs) - q(vb - vs))
        return q(vb), jnp.where(jnp.abs(span) > 0, span, 1.0)

    @property
    def coupled(self) -> bool:
        """Whether the loops share node c (``shared_resistance_ohm`` > 0)."""
        return self.shared_resistance_ohm > 0

    @property
    def shared_tau_ns(self) -> float:
        """The shared node's time constant R_c·C_c, ns (0 when uncoupled)."""
        return self.shared_resistance_ohm * self.shared_capacitance_f * 1e9

    def _key(self):
        return (*super()._key(), self.delay_nodes, self.shared_resistance_ohm, self.shared_capacitance_f)

    def __eq__(self, other):
        return isinstance(other, DelayReservoir) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())


def _check_shared_node(res, r_ohm, c_f) -> tuple[float, float]:
    """``(R_c, C_c)`` checked: finite, ≥ 0; when R_c > 0, τ_c = R_c·C_c ≥ the hold (``v_c`` is held over
    an interval) and one occupancy-state group (one scan steps every loop together)."""
    for name, value in (("shared_resistance_ohm", r_ohm), ("shared_capacitance_f", c_f)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    r_ohm, c_f = float(r_ohm), float(c_f)
    if r_ohm > 0:
        tau_ns = r_ohm * c_f * 1e9
        if tau_ns < res.hold_ns:
            raise ValueError(
                "shared_resistance_ohm * shared_capacitance_f (the shared node's time constant) must be >= hold_ns "
                f"({res.hold_ns:g} ns): v_c is held over each interval; got {tau_ns:.4g} ns "
                f"(R = {r_ohm:g} ohm, C = {c_f:g} F)"
            )
        if len(res.groups) > 1:
            raise ValueError(
                "a shared node (shared_resistance_ohm > 0) needs membranes with one occupancy-state count; got "
                f"counts {[k for k, _ in res.groups]}"
            )
    return r_ohm, c_f


def _operating_point(params, v_drive, pores, r_ohm: float, iterations: int = 64):
    """The shared node's DC voltage at the first drive: v_c = R_c·Σ_i n_i·I_i^ss(V_i − v_c), with I^ss a
    pore's steady-state current. The right side falls as v_c rises (every I^ss grows with its voltage),
    so the root is unique and lies between min(V_i, 0) and max(V_i, 0): bisection, ``iterations`` halvings."""

    def excess(vc):
        v = v_drive - vc
        i_pa = jax.vmap(lambda pr, vv: steady_state(pr, vv) @ state_current_pa(pr, vv))(params, v)
        return vc - r_ohm * jnp.sum(pores * i_pa) * 1e-12

    def halve(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        up = excess(mid) < 0
        return jnp.where(up, mid, lo), jnp.where(up, hi, mid)

    lo, hi = lax.fori_loop(0, iterations, halve, (jnp.minimum(v_drive.min(), 0.0), jnp.maximum(v_drive.max(), 0.0)))
    return 0.5 * (lo + hi)


class _Group(NamedTuple):
    """One vmapped group of loops (one occupancy-state count): what a scan step needs."""

    params: KineticParams  # stacked over the group's membranes
    pores: jax.Array
    rest: jax.Array
    span: jax.Array
    p0: jax.Array
    vc0: jax.Array
    held: Callable  # (buf, g, drive_g, vc) -> the membranes' held voltages
    node: Callable  # (vc, q_ions) -> v_c after the interval
    factors: Callable  # (params, v) -> (propagators, ∫expm · state currents)


def _group(res: DelayReservoir, k_states: int, ix, molar, n_pores, drive, gamma, eta) -> _Group:
    idx = np.array(ix)
    d, r_c = res.delay_nodes, res.shared_resistance_ohm
    decay = float(np.exp(-res.hold_ns / res.shared_tau_ns)) if res.coupled else 0.0
    params = _stack([res.params(i, molar[i]) for i in ix])
    vb, vs = jnp.asarray(res.v_bias_v[idx]), jnp.asarray(res.v_span_v[idx])
    pores = n_pores[idx]
    # the amplifier's offset and gain are set at the circuit's rest (all drives at v_bias, node c at its DC point)
    vc_rest = _operating_point(params, vb, pores, r_c) if res.coupled else 0.0
    rest, span = (jnp.stack(z) for z in zip(*(res.rest_and_span(i, molar[i], vc_rest) for i in ix), strict=True))
    v_first = vb + vs * jnp.clip(gamma * drive[0, idx], -1.0, 1.0)
    vc0 = _operating_point(params, v_first, pores, r_c) if res.coupled else jnp.zeros((), dtype=v_first.dtype)
    p0 = jax.vmap(steady_state)(params, v_first - vc0)  # as Reservoir: at steady state at the first V (its DC point)

    def interval(params, v, max_sq=res._max_sq[k_states]):
        return propagator_and_energy(params, v, res.hold_ns, state_current_pa(params, v), max_squarings=max_sq)

    def held(buf, g, drive_g, vc):
        a = gamma * drive_g + eta * buf[g % d]
        return vb + vs * jnp.clip(a, -1.0, 1.0) - vc  # the membranes' far side sits on node c

    def node(vc, q_ions):
        """v_c after one interval of the summed current (exact RC under the mean current)."""
        return vc * decay + r_c * jnp.sum(q_ions) * (PA_PER_E_PER_NS / res.hold_ns) * 1e-12 * (1.0 - decay)

    return _Group(params, pores, rest, span, p0, vc0, held, node, jax.vmap(interval))


def _scan_mean_field(res: DelayReservoir, gr: _Group, drive_g):
    """(ions, variance a finite membrane adds, held V), each (G, B), of one group, mean-field."""
    d = res.delay_nodes

    def step(carry, inp):
        p, buf, vc = carry
        g, drive_i = inp
        v = gr.held(buf, g, drive_i, vc)
        prop, aj = gr.factors(gr.params, v)
        q_pore = jnp.einsum("bk,bk->b", p, aj) / PA_PER_E_PER_NS  # ions per pore in the interval
        # variance a finite membrane adds: binomial pore states (carrier current of each state
        # at the interval's start) and shot noise on the ions counted
        c = open_conductance_ps(gr.params.open, v)[:, None] * jax.vmap(state_weights)(gr.params) * v[:, None]
        c_ions = c * res.hold_ns / PA_PER_E_PER_NS
        mean_c = jnp.einsum("bk,bk->b", p, c_ions)
        var_switch = gr.pores * (jnp.einsum("bk,bk->b", p, c_ions**2) - mean_c**2)
        q_ions = gr.pores * q_pore
        buf = buf.at[g % d].set((q_pore - gr.rest) / gr.span)
        carry = (jnp.einsum("bk,bkl->bl", p, prop), buf, gr.node(vc, q_ions))
        return carry, (q_ions, var_switch + res.fano * jnp.abs(q_ions), v)

    buf0 = jnp.zeros((d, gr.pores.shape[0]))  # the delay line starts empty: x = 0, the rest current
    _, out = lax.scan(step, (gr.p0, buf0, gr.vc0), (jnp.arange(drive_g.shape[0]), drive_g))
    return out


def _scan_stochastic(res: DelayReservoir, gr: _Group, drive_g, key, gi: int):
    """(ions, zeros, held V), each (G, B), of one group: exact multinomial pore moves and shot noise,
    the feedback carrying the noisy count."""
    d, n_b = res.delay_nodes, gr.pores.shape[0]
    counts0 = jnp.round(gr.pores[:, None] * gr.p0)
    counts0 = counts0.at[:, 0].add(jnp.round(gr.pores) - counts0.sum(axis=1))
    n_round = jnp.round(gr.pores)

    def step(carry, inp):
        counts, buf, vc = carry
        g, drive_i = inp
        v = gr.held(buf, g, drive_i, vc)
        prop, aj = gr.factors(gr.params, v)
        q_ions = jnp.einsum("bk,bk->b", counts, aj) / PA_PER_E_PER_NS
        k_move, k_shot = jax.random.split(jax.random.fold_in(jax.random.fold_in(key, gi), g))
        q_ions = q_ions + jnp.sqrt(res.fano * jnp.abs(q_ions)) * jax.random.normal(k_shot, q_ions.shape)
        buf = buf.at[g % d].set((q_ions / n_round - gr.rest) / gr.span)
        new = jax.vmap(multinomial_counts)(jax.random.split(k_move, n_b), counts, prop)
        return (new, buf, gr.node(vc, q_ions)), (q_ions, jnp.zeros_like(q_ions), v)

    buf0 = jnp.zeros((d, n_b))
    _, out = lax.scan(step, (counts0, buf0, gr.vc0), (jnp.arange(drive_g.shape[0]), drive_g))
    return out


@functools.partial(jax.jit, static_argnums=0)
def _run_delay(res: DelayReservoir, u_k, molar, n_pores, gains, key):
    drive = res.drive(u_k)  # (G, N), G = T·M intervals
    n_int, n = drive.shape
    t, m = u_k.shape[0], res.n_virtual
    gamma, eta = gains[0], gains[1]
    ions = jnp.zeros((n_int, n))
    var = jnp.zeros((n_int, n))
    volts = jnp.zeros((n_int, n))
    for gi, (k_states, ix) in enumerate(res.groups):
        idx = np.array(ix)
        gr = _group(res, k_states, ix, molar, n_pores, drive, gamma, eta)
        if key is None:
            q_g, var_g, v_g = _scan_mean_field(res, gr, drive[:, idx])
        else:
            q_g, var_g, v_g = _scan_stochastic(res, gr, drive[:, idx], key, gi)
        ions = ions.at[:, idx].set(q_g)
        var = var.at[:, idx].set(var_g)
        volts = volts.at[:, idx].set(v_g)
    ions = ions.reshape(t, m, n)
    v_tmn = volts.reshape(t, m, n)
    energy = v_tmn * ions * PA_PER_E_PER_NS * AJ_PER_PA_V_NS
    return ReservoirRun(ions=ions, energy_aj=energy, var_ions=var.reshape(t, m, n), v=v_tmn)
