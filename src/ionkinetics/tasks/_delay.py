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

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..constants import PA_PER_E_PER_NS
from ..kinetics import (
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
        fano: float = 1.0,
        max_molar: float = 4.0,
    ):
        super().__init__(membranes, mask, hold_ns, fano=fano, max_molar=max_molar)
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
        return (self.mask.T[None] * u[:, None, None]).reshape(-1, self.n_membranes)

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

    def rest_and_span(self, i: int, molar) -> tuple[jax.Array, jax.Array]:
        """The amplifier's constants for loop ``i``: ions a rest pore (steady state at ``v_bias``)
        passes in one interval at ``v_bias`` (offset), and half the difference between one interval
        at ``v_bias + v_span`` and at ``v_bias − v_span`` from rest (gain)."""
        params = self.params(i, molar)
        vb, vs = self.v_bias_v[i], self.v_span_v[i]
        p_rest = steady_state(params, vb)

        def q(v):
            _, aj = propagator_and_energy(params, v, self.hold_ns, state_current_pa(params, v))
            return p_rest @ aj / PA_PER_E_PER_NS

        span = 0.5 * (q(vb + vs) - q(vb - vs))
        return q(vb), jnp.where(jnp.abs(span) > 0, span, 1.0)

    def _key(self):
        return (*super()._key(), self.delay_nodes)

    def __eq__(self, other):
        return isinstance(other, DelayReservoir) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())


@functools.partial(jax.jit, static_argnums=0)
def _run_delay(res: DelayReservoir, u_k, molar, n_pores, gains, key):
    drive = res.drive(u_k)  # (G, N), G = T·M intervals
    n_int, n = drive.shape
    t, m = u_k.shape[0], res.n_virtual
    d = res.delay_nodes
    gamma, eta = gains[0], gains[1]
    ions = jnp.zeros((n_int, n))
    var = jnp.zeros((n_int, n))
    volts = jnp.zeros((n_int, n))
    for gi, (k_states, ix) in enumerate(res.groups):
        idx = np.array(ix)
        params = _stack([res.params(i, molar[i]) for i in ix])
        rest, span = (jnp.stack(z) for z in zip(*(res.rest_and_span(i, molar[i]) for i in ix), strict=True))
        vb, vs = jnp.asarray(res.v_bias_v[idx]), jnp.asarray(res.v_span_v[idx])
        pores = n_pores[idx]
        buf0 = jnp.zeros((d, len(ix)))  # the delay line starts empty: x = 0, the rest current
        p0 = jax.vmap(steady_state)(params, vb + vs * jnp.clip(gamma * drive[0, idx], -1.0, 1.0))  # as Reservoir: at the first V

        def interval(params, v, max_sq=res._max_sq[k_states]):
            return propagator_and_energy(params, v, res.hold_ns, state_current_pa(params, v), max_squarings=max_sq)

        factors = jax.vmap(interval)

        def held(buf, g, drive_g, vb=vb, vs=vs):
            a = gamma * drive_g + eta * buf[g % d]
            return vb + vs * jnp.clip(a, -1.0, 1.0)

        if key is None:

            def step(carry, inp, params=params, factors=factors, pores=pores, rest=rest, span=span, held=held):
                p, buf = carry
                g, drive_g = inp
                v = held(buf, g, drive_g)
                prop, aj = factors(params, v)
                q_pore = jnp.einsum("bk,bk->b", p, aj) / PA_PER_E_PER_NS  # ions per pore in the interval
                # variance a finite membrane adds: binomial pore states (carrier current of each state
                # at the interval's start) and shot noise on the ions counted
                c = open_conductance_ps(params.open, v)[:, None] * jax.vmap(state_weights)(params) * v[:, None]
                c_ions = c * res.hold_ns / PA_PER_E_PER_NS
                mean_c = jnp.einsum("bk,bk->b", p, c_ions)
                var_switch = pores * (jnp.einsum("bk,bk->b", p, c_ions**2) - mean_c**2)
                q_ions = pores * q_pore
                buf = buf.at[g % d].set((q_pore - rest) / span)
                return (jnp.einsum("bk,bkl->bl", p, prop), buf), (q_ions, var_switch + res.fano * jnp.abs(q_ions), v)

            _, (q_g, var_g, v_g) = lax.scan(step, (p0, buf0), (jnp.arange(n_int), drive[:, idx]))
        else:
            counts0 = jnp.round(pores[:, None] * p0)
            counts0 = counts0.at[:, 0].add(jnp.round(pores) - counts0.sum(axis=1))
            n_round = jnp.round(pores)

            def step(
                carry, inp, params=params, factors=factors, rest=rest, span=span, held=held, n_b=len(ix), gi=gi, n_round=n_round
            ):
                counts, buf = carry
                g, drive_g = inp
                v = held(buf, g, drive_g)
                prop, aj = factors(params, v)
                q_ions = jnp.einsum("bk,bk->b", counts, aj) / PA_PER_E_PER_NS
                k_move, k_shot = jax.random.split(jax.random.fold_in(jax.random.fold_in(key, gi), g))
                q_ions = q_ions + jnp.sqrt(res.fano * jnp.abs(q_ions)) * jax.random.normal(k_shot, q_ions.shape)
                buf = buf.at[g % d].set((q_ions / n_round - rest) / span)
                new = jax.vmap(multinomial_counts)(jax.random.split(k_move, n_b), counts, prop)
                return (new, buf), (q_ions, jnp.zeros_like(q_ions), v)

            _, (q_g, var_g, v_g) = lax.scan(step, (counts0, buf0), (jnp.arange(n_int), drive[:, idx]))
        ions = ions.at[:, idx].set(q_g)
        var = var.at[:, idx].set(var_g)
        volts = volts.at[:, idx].set(v_g)
    ions = ions.reshape(t, m, n)
    v_tmn = volts.reshape(t, m, n)
    energy = v_tmn * ions * PA_PER_E_PER_NS * AJ_PER_PA_V_NS
    return ReservoirRun(ions=ions, energy_aj=energy, var_ions=var.reshape(t, m, n), v=v_tmn)
