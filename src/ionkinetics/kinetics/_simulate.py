"""Mean-field and stochastic simulation: one jitted ``lax.scan`` per run, vmapped over batches.

Mean-field: occupancy advances by the exact ``P = expm(Q(V)·dt)`` of each step (no Euler), and
the energy by the exact interval integral ``A = ∫ expm(Q·s) ds``, so for piecewise-constant V
both are exact to round-off whatever ``dt``. Where the voltages take few distinct values and only
every ``save_every``-th step is kept, the steps are cut into constant-voltage runs at every jump and
saved time and the scan takes one iteration per run, with ``P^n`` and the energy over n steps from
repeated squaring: the same numbers (to round-off), at a cost set by the jumps and saved times, not
by the steps (a 2 ns pulse every 7 ns at dt = 0.05 ns, saved every 50 steps: 30x fewer iterations).
A batch of ``_BATCH_RUNS`` or more devices takes the run loop even saved every step (one run per
step): its device-last layout is then the cheaper loop.

Compiled once per bucket: ``simulate`` runs the steps on to a power of two of saved intervals (the
last voltage held; the loop stops at the true end, so the padding costs no work) and cuts the trace
back, with dt a runtime input, so a new duration, dt or number of saved points within a bucket reuses
the compiled program (as the circuits' transient pads its steps).

Stochastic: N independent pores as counts per state; each step the pores in state s move
to the other states by an exact multinomial draw from row s of the same P (two binomials for
two states). Step k draws from ``fold_in(key, k)``: the same key gives the same run whatever
``save_every``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import cast

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..constants import AJ_PER_PA_V_NS
from . import protocols as _protocols
from ._params import KineticParams
from ._rates import (
    gating_current_vector_pa,
    max_squarings_for,
    membrane_current_pa,
    open_conductance_ps,
    propagator_and_energy,
    state_weights,
    steady_state,
    transition_rates_per_ns,
)

__all__ = [
    "Trace",
    "mean_field_scan",
    "multinomial_counts",
    "sample_voltages",
    "simulate",
    "stochastic_scan",
    "switching_energy",
]

# pS · V² · ns = pA · V · ns = 1e-21 J = 1e-3 aJ
# Probability loss is judged against a tolerance that follows the dtype (the occupancy is
# renormalised every step, so what remains is round-off of one step, not an accumulation).
_NORM_TOL = {8: 1e-6, 4: 1e-4}
# Use a propagator table when a run has at most this many distinct voltages, and at least
# _LEVEL_GAIN steps per level (otherwise computing per step costs no more).
_MAX_LEVELS = 256
_LEVEL_GAIN = 8


@dataclasses.dataclass(frozen=True)
class Trace:
    """Result of :func:`simulate`, sampled every ``save_every`` steps (S + 1 points, t = 0 first).

    ``v`` is the voltage held from each time on. ``p`` (..., S+1, K) is the occupancy, ``w`` the
    open fraction. ``g_ps`` is the carrier's conductance; ``i_pa`` the total current, the
    carrier's ``g_ps·v`` plus the dopant's displacement current (the charge it moves when it is
    trapped or expelled); ``e_aj`` the cumulative ``∫ i·v dt`` (energy delivered to the membrane).
    All are per pore for a mean-field run and for the whole membrane of ``n_pores`` pores for a
    stochastic one.
    ``ok`` is False where the run lost probability or went non-finite.
    """

    t_ns: np.ndarray
    v: np.ndarray
    p: np.ndarray
    w: np.ndarray
    g_ps: np.ndarray
    i_pa: np.ndarray
    e_aj: np.ndarray
    ok: np.ndarray
    n_pores: int | None = None


def _energy_weights(params, v, c):
    """(K,) such that ``∫ I·V dt`` over a step is ``(p·A) @ weights``, aJ per pore: the carrier's
    G(V)·V² in each state's conductance share plus the dopant's displacement current times V."""
    carrier = open_conductance_ps(params.open, v) * c * v
    return (carrier + gating_current_vector_pa(params, v)) * v * AJ_PER_PA_V_NS


def _step_factors(params, dt_ns, levels, max_squarings=None):
    """``x -> (P, energy vector A·weights)`` for a step (:func:`propagator_and_energy`): from the
    factors of the distinct voltages ``levels`` computed once (``x`` indexes them), or per step from
    the voltage ``x`` when ``levels`` is None. ``max_squarings`` as there (static; None: no cap)."""
    c = state_weights(params)

    def at(v):
        return propagator_and_energy(params, v, dt_ns, _energy_weights(params, v, c), max_squarings=max_squarings)

    if levels is None:
        return at
    table = jax.vmap(at)(levels)
    return lambda i: jax.tree_util.tree_map(lambda x: x[i], table)


def mean_field_scan(params: KineticParams, v_k, dt_ns, p0, *, save_every: int = 1, levels=None, max_squarings: int | None = None):
    """One device, mean-field. ``v_k`` (T,) volts per step, ``p0`` (K,).

    With ``levels`` (U,) given, ``v_k`` holds integer indices into it instead and the U
    propagators are computed once (a pulse train has two voltages: T/2 fewer matrix exponentials).
    ``max_squarings`` (static) caps the exponential's squarings for K > 2: pass
    ``max_squarings_for(params, dt_ns)`` for the cheapest exact program.
    Returns occupancy (T/save_every + 1, K) and cumulative energy per pore, aJ, at the saved
    times. Pure and differentiable; ``simulate`` wraps it with jit and vmap where it does not cut the
    steps into constant-voltage runs (one device saved every step, or a voltage that moves every few
    steps).
    """
    return _mean_field_saved(params, v_k, dt_ns, p0, save_every, levels, max_squarings, None)


def _mean_field_saved(params, v_k, dt_ns, p0, save_every, levels, max_squarings, n_valid):
    """:func:`mean_field_scan`, skipping the saved intervals from ``n_valid`` on (:func:`_saved_scan`)."""
    factors = _step_factors(params, dt_ns, levels, max_squarings)

    def one_step(carry, x):
        p, e = carry
        prop, energy = factors(x)
        p_next = p @ prop
        return (p_next / p_next.sum(), e + p @ energy), None

    def chunk(carry, vs):
        return lax.scan(one_step, carry, vs)[0]

    e0 = jnp.zeros((), dtype=p0.dtype)
    p_s, e_s = _saved_scan(chunk, (p0, e0), v_k.reshape(-1, save_every), n_valid)
    return jnp.concatenate([p0[None], p_s]), jnp.concatenate([e0[None], e_s])


def _saved_scan(interval, carry, xs, n_valid):
    """``lax.scan`` of ``interval(carry, x) -> carry`` over the saved intervals ``xs``, stacking each
    interval's end state. With ``n_valid`` (a traced integer; None: every interval) only the first
    ``n_valid`` intervals run, in a loop of that many iterations writing the same stacked rows (the
    rest stay zero): a run padded to a bucket of saved intervals (one compiled program for many
    durations) does no work on its padding. Not reverse-differentiable then (simulate's programs
    are not differentiated; the public scans pass None). The bound is shared by a vmapped batch."""
    if n_valid is None:

        def body(c, x):
            c = interval(c, x)
            return c, c

        return lax.scan(body, carry, xs)[1]

    n = jax.tree_util.tree_leaves(xs)[0].shape[0]
    rows = jax.tree_util.tree_map(lambda c: jnp.zeros((n, *jnp.shape(c)), jnp.result_type(c)), carry)

    def body_valid(i, state):
        c, out = state
        c = interval(c, jax.tree_util.tree_map(lambda x: x[i], xs))
        return c, jax.tree_util.tree_map(lambda o, v: o.at[i].set(v), out, c)

    return lax.fori_loop(0, n_valid, body_valid, (carry, rows))[1]


def _run_factors(params, dt_ns, levels, pair_level, pair_length, n_bits: int, max_squarings: int):
    """Exact factors of whole constant-voltage runs: for each (level, length n) pair, ``P^n`` (J, K, K)
    and the energy vector ``c_n = Σ_{k<n} P^k·A·weights`` (J, K), so a run moves the occupancy by
    ``p·P^n`` and adds ``p·c_n`` to the energy. Built by doubling from each level's one-step factors
    (``P^{2m} = P^m·P^m``, ``c_{2m} = c_m + P^m·c_m``) and composed over the bits of n (``n_bits``
    static, n < 2^n_bits): log₂ n matrix products per pair instead of n steps; a length-0 pair is
    the identity (padding). ``max_squarings`` (static) bounds the one-step exponential's squarings.
    For K <= 2 the factors come in closed form instead (:func:`_closed_run_factors`)."""
    if params.n_states <= 2:
        return _closed_run_factors(params, dt_ns, levels, pair_level, pair_length, state_weights(params))
    return _doubled_run_factors(params, dt_ns, levels, pair_level, pair_length, n_bits, max_squarings)


def _doubled_run_factors(params, dt_ns, levels, pair_level, pair_length, n_bits: int, max_squarings: int):
    """:func:`_run_factors` by doubling, for any K (what K > 2 takes)."""
    c = state_weights(params)

    def at(v):
        return propagator_and_energy(params, v, dt_ns, _energy_weights(params, v, c), max_squarings=max_squarings)

    prop, vec = (jnp.asarray(x) for x in jax.vmap(at)(levels))  # (U, K, K), (U, K)
    k = prop.shape[-1]
    acc_p = jnp.broadcast_to(jnp.eye(k, dtype=prop.dtype), (pair_level.shape[0], k, k))
    acc_c = jnp.zeros((pair_level.shape[0], k), dtype=vec.dtype)
    for bit in range(n_bits):
        take = ((pair_length >> bit) & 1).astype(bool)
        p_b, c_b = prop[pair_level], vec[pair_level]
        acc_p, acc_c = (
            jnp.where(take[:, None, None], _matmul_k(acc_p, p_b), acc_p),
            jnp.where(take[:, None], acc_c + _matvec_k(acc_p, c_b), acc_c),
        )
        if bit + 1 < n_bits:
            prop, vec = _matmul_k(prop, prop), vec + _matvec_k(prop, vec)
    return acc_p, acc_c


def _closed_run_factors(params, dt_ns, levels, pair_level, pair_length, c):
    """:func:`_run_factors` for K <= 2, where a run's factors are the one-step closed forms of
    :func:`propagators` at the run's duration t = n·dt: ``P^n = expm(Q·t) = Π + e^{-λt}·(I − Π)`` and
    ``c_n = (∫₀^t expm(Q·s) ds)·weights`` with ``∫ = Π·t + (I − Π)·(1 − e^{-λt})/λ`` (λ the two rates'
    sum, Π the stationary rows; K = 1: P = 1, ∫ = t). The rates and weights are evaluated once per
    level, then two exponentials per pair: no doubling, no matrix products (on a 10⁴-device batch the
    doubling cost more than the run recurrence itself). A length-0 pair is exactly the identity."""
    weights = jax.vmap(lambda v: _energy_weights(params, v, c))(levels)[pair_level]  # (J, K)
    t = pair_length * dt_ns
    k = params.n_states
    if k == 1:
        return jnp.ones((t.shape[0], 1, 1), dtype=weights.dtype), weights * t[:, None]
    trap, escape = (x[pair_level, 0] for x in jax.vmap(lambda v: transition_rates_per_ns(params, v))(levels))
    lam = trap + escape
    big_pi = jnp.broadcast_to((jnp.stack([escape, trap], axis=-1) / lam[:, None])[:, None, :], (t.shape[0], 2, 2))
    rest = jnp.eye(2, dtype=big_pi.dtype) - big_pi
    decay = jnp.exp(-lam * t)[:, None, None]
    run_p = jnp.where((pair_length == 0)[:, None, None], jnp.eye(2, dtype=big_pi.dtype), big_pi + decay * rest)
    integral = big_pi * t[:, None, None] + rest * (-jnp.expm1(-lam * t) / lam)[:, None, None]
    return run_p, _matvec_k(integral, weights)


def _terms_sum(terms) -> jax.Array:
    """Python's ``sum`` of array terms (0 + t₀ + t₁ + …, the same operations), typed as the array it is."""
    return cast(jax.Array, sum(terms))


def _matmul_k(a, b):
    """``a @ b`` for stacks of K x K matrices, as K broadcast multiply-adds: under vmap over devices a
    batched dot runs one tiny GEMM per matrix on CPU."""
    return _terms_sum(a[..., :, j, None] * b[..., None, j, :] for j in range(a.shape[-1]))


def _matvec_k(a, x):
    """``a @ x`` for stacks of K x K matrices and K-vectors, term by term (see :func:`_matmul_k`)."""
    return _terms_sum(a[..., :, j] * x[..., None, j] for j in range(a.shape[-1]))


# The run recurrence takes the devices in chunks whose share of the run tables (J pairs x (K² + K)
# values per device) fits this many bytes: it then stays in cache over the chunk's runs. At 10⁴ devices
# x 16 pairs x 2 states (7.7 MB of tables) the unchunked loop ran 2-4x slower per device than at 5·10³
# (2-core EPYC, issue 27): the tables had left the cache.
_CHUNK_TABLE_BYTES = 1 << 21
_MIN_CHUNK = 256


def _lane_chunk(n_lanes: int, n_pairs: int, k: int) -> int:
    """Devices per chunk of the run recurrence (static): all of them if their tables fit
    :data:`_CHUNK_TABLE_BYTES`, else a power of two that does (at least :data:`_MIN_CHUNK`)."""
    fit = _CHUNK_TABLE_BYTES // (8 * n_pairs * (k * k + k))
    return n_lanes if n_lanes <= fit else min(n_lanes, max(_MIN_CHUNK, 1 << (max(fit, 1).bit_length() - 1)))


def _runs_scan(run_p, run_c, grid, p0, n_valid=None):
    """The run recurrence for B devices laid out device-last: factors ``run_p`` (J, K, K, B) and
    ``run_c`` (J, K, B), ``p0`` (K, B), ``grid`` (S, M) shared or (S, M, B) per device: the runs of
    each saved interval, pair 0 (the identity) where an interval holds fewer than M. Returns occupancy
    (a tuple of K arrays (S + 1, B), one per state) and energy (S + 1, B).

    One loop iteration per run, in time order; each writes its state to its interval's saved row (the
    interval's last run writes last). With ``n_valid`` (a traced count of saved intervals; the rest
    are padding) the loop takes the filled slots of the grid alone, compacted on the device, so an
    interval of one run costs one run, not M (a pulse train saved every 50 steps: 315 runs, not 800
    slots), and padding costs nothing; without it (None) it takes every slot in order, the identity
    pairs included, a fixed-length loop that reverse-mode differentiation can follow. Rows of
    intervals from ``n_valid`` on stay zero. The devices go through in chunks (:func:`_lane_chunk`),
    each chunk's runs on its own slice of the tables, so the slice stays in cache; the last chunk
    ends at the last device (it may overlap the one before and writes the same numbers again).

    Each run is K² multiply-adds along the contiguous device axis, written out term by term on one
    (B,) array per state and one (J, B) table per matrix entry (K is small and static). On CPU (10⁴
    devices) that is 2x faster than the same arithmetic on stacked (K, B) / (J, K, K, B) arrays and
    10x faster than products written as a reduction over a K axis (which XLA does not vectorise
    along the devices). The saved rows are written in place (``dynamic_update_slice`` on the loop's
    own buffers, row 0 holding ``p0``): no stacked per-interval outputs to concatenate afterwards."""
    k, n_lanes = p0.shape
    per_device = grid.ndim == 3
    n_saved, width = grid.shape[:2]
    slots = grid.reshape(n_saved * width, *grid.shape[2:])  # (S·M,) or (S·M, B), in time order
    slot_row = np.repeat(np.arange(1, n_saved + 1, dtype=np.int32), width)  # the saved row each slot ends in
    if n_valid is None:
        order, n_runs = None, slots.shape[0]
    else:
        filled = ((slots[:, 0] if per_device else slots) > 0) & (slot_row <= n_valid)  # a run is shared by the batch
        order = jnp.nonzero(filled, size=filled.shape[0], fill_value=0)[0].astype(jnp.int32)
        n_runs = filled.sum(dtype=jnp.int32)
    chunk = _lane_chunk(n_lanes, run_p.shape[0], k)

    def one_chunk(i_chunk, outs):
        start = jnp.minimum(i_chunk * chunk, n_lanes - chunk).astype(jnp.int32)

        def lanes(x):
            return lax.dynamic_slice_in_dim(x, start, chunk, axis=-1)

        chunk_p = lanes(run_p)
        m_tab = [[chunk_p[:, a, b] for b in range(k)] for a in range(k)]
        c_tab = [lanes(run_c)[:, a] for a in range(k)]
        if per_device:  # each device its own run: gather along the devices
            chunk_slots, at = lanes(slots), jnp.arange(chunk)
            pick = lambda table, j: table[j, at]  # noqa: E731
        else:
            chunk_slots = slots
            pick = lambda table, j: table[j]  # noqa: E731

        def one_run(i, carry):
            p, e, p_out, e_out = carry
            slot = i if order is None else order[i]
            j = chunk_slots[slot]
            p_next = [_terms_sum(p[a] * pick(m_tab[a][b], j) for a in range(k)) for b in range(k)]
            e = e + _terms_sum(p[a] * pick(c_tab[a], j) for a in range(k))
            total = _terms_sum(p_next)
            p = tuple(x / total for x in p_next)
            row = jnp.asarray(slot_row)[slot]
            p_out = tuple(lax.dynamic_update_slice(o, x[None], (row, start)) for o, x in zip(p_out, p, strict=True))
            e_out = lax.dynamic_update_slice(e_out, jnp.expand_dims(e, 0), (row, start))
            return p, e, p_out, e_out

        e0 = jnp.zeros((chunk,), dtype=p0.dtype)
        return lax.fori_loop(0, n_runs, one_run, (tuple(lanes(p0)), e0, *outs))[2:]

    p_out = tuple(jnp.zeros((n_saved + 1, n_lanes), dtype=p0.dtype).at[0].set(x) for x in p0)
    e_out = jnp.zeros((n_saved + 1, n_lanes), dtype=p0.dtype)
    return lax.fori_loop(0, -(-n_lanes // chunk), one_chunk, (p_out, e_out))


def _binomial(key, n, prob):
    prob = jnp.clip(prob, 0.0, 1.0)
    return jax.random.binomial(key, n, prob, dtype=n.dtype)


def multinomial_counts(key, n, prob):
    """Exact multinomial moves for counts ``n`` (K,) with transition matrix ``prob`` (K, K).

    Each row's multinomial is a chain of conditional binomials over its destinations; the K rows
    are independent, so destination j is drawn for every row at once by one vectorised binomial,
    inside a ``fori_loop`` over j: one sampler is compiled whatever K (not K(K−1) unrolled ones)."""
    k = n.shape[0]
    if k == 1:
        return n
    if k == 2:  # both leaving counts in one binomial call (half the sampler's fixed cost)
        leave0, leave1 = _binomial(key, n, jnp.stack([prob[0, 1], prob[1, 0]]))
        return n + jnp.stack([leave1 - leave0, leave0 - leave1])

    def destination(j, carry):
        remaining, used, out = carry  # per source row: pores not yet placed, probability used
        left = 1.0 - used
        q = jnp.where(left > 0, prob[:, j] / jnp.where(left > 0, left, 1.0), 1.0)
        x = _binomial(jax.random.fold_in(key, j), remaining, q)
        return remaining - x, used + prob[:, j], out.at[j].set(x.sum())

    remaining, _, out = lax.fori_loop(0, k - 1, destination, (n, jnp.zeros(k, prob.dtype), jnp.zeros_like(n)))
    return out.at[k - 1].set(remaining.sum())


def stochastic_scan(
    params: KineticParams, v_k, dt_ns, n0, key, *, save_every: int = 1, levels=None, max_squarings: int | None = None
):
    """One device of N = sum(n0) pores. Returns counts (T/save_every + 1, K) and the
    cumulative membrane energy, aJ (the conditional expectation over each step). ``levels``
    and ``max_squarings`` as in :func:`mean_field_scan`."""
    return _stochastic_saved(params, v_k, dt_ns, n0, key, save_every, levels, max_squarings, None)


def _stochastic_saved(params, v_k, dt_ns, n0, key, save_every, levels, max_squarings, n_valid):
    """:func:`stochastic_scan`, skipping the saved intervals from ``n_valid`` on (:func:`_saved_scan`)."""
    steps = jnp.arange(v_k.shape[0]).reshape(-1, save_every)
    factors = _step_factors(params, dt_ns, levels, max_squarings)

    def one_step(carry, inp):
        n, e = carry
        x, k = inp
        prop, energy = factors(x)
        e = e + n @ energy
        return (multinomial_counts(jax.random.fold_in(key, k), n, prop), e), None

    def chunk(carry, inp):
        return lax.scan(one_step, carry, inp)[0]

    e0 = jnp.zeros((), dtype=n0.dtype)
    n_s, e_s = _saved_scan(chunk, (n0, e0), (v_k.reshape(-1, save_every), steps), n_valid)
    return jnp.concatenate([n0[None], n_s]), jnp.concatenate([e0[None], e_s])


def _initial_occupancy(params, v_rest, p0):
    return steady_state(params, v_rest) if p0 is None else p0


def _mean_field_device(params, v_k, dt_ns, v_rest, p0, levels, n_valid, save_every, max_squarings):
    p_init = _initial_occupancy(params, v_rest, p0)
    p_init = p_init.astype(jnp.result_type(p_init, dt_ns))
    return _mean_field_saved(params, v_k, dt_ns, p_init, save_every, levels, max_squarings, n_valid)


def _stochastic_device(params, v_k, dt_ns, v_rest, p0, key, n_pores, levels, n_valid, save_every, max_squarings):
    p_init = _initial_occupancy(params, v_rest, p0)
    k_init, k_run = jax.random.split(key)
    dtype = jnp.result_type(p_init, dt_ns)
    n0 = multinomial_counts(
        k_init, jnp.zeros_like(p_init, dtype=dtype).at[0].set(n_pores), jnp.broadcast_to(p_init, (p_init.shape[0],) * 2)
    )
    return _stochastic_saved(params, v_k, dt_ns, n0, k_run, save_every, levels, max_squarings, n_valid)


def _axes(flag):
    return 0 if flag else None


@functools.partial(jax.jit, static_argnames=("save_every", "max_squarings", "batch"))
def _run_mean_field(params, v_k, dt_ns, v_rest, p0, levels, n_valid=None, *, save_every, max_squarings, batch):
    """``batch``: (params, voltages, p0, step inputs) batched? The step inputs may be one shared row
    while the voltages (levels, rest) are per device. ``n_valid``: saved intervals to run (the
    rest is padding, skipped; None: all)."""
    fn = functools.partial(_mean_field_device, save_every=save_every, max_squarings=max_squarings)
    if any(batch):
        axes = (_axes(batch[0]), _axes(batch[3]), None, _axes(batch[1]), _axes(batch[2]), _axes(batch[1]), None)
        fn = jax.vmap(fn, in_axes=axes)
    return fn(params, v_k, dt_ns, v_rest, p0, levels, n_valid)


def _level_observables(params, levels):
    """(U, K) each: a pore's carrier conductance and total current in each state at each level, so
    that G and I at a saved time are ``p @ row`` of the level held then."""
    c = state_weights(params)

    def at(v):
        g_open = open_conductance_ps(params.open, v) * c
        return g_open, g_open * v + gating_current_vector_pa(params, v)

    return jax.vmap(at)(levels)


def _dot_k(a, b):
    """Σ_k a[k] b[:, k] for K (S, B) arrays ``a`` and an (S, K, B) array ``b``, term by term (vectorised
    along the devices)."""
    return _terms_sum(a[k] * b[:, k] for k in range(len(a)))


@functools.partial(jax.jit, static_argnames=("n_bits", "max_squarings", "batch"))
def _run_mean_field_runs(
    params, grid, dt_ns, v_rest, p0, levels, pair_level, pair_length, saved_level, n_valid=None, *, n_bits, max_squarings, batch
):
    """As :func:`_run_mean_field` over constant-voltage runs (:class:`_Runs`): the factors per device
    (vmapped), then one recurrence for the whole batch laid out device-last, which also forms G and I
    at the saved times (``saved_level`` (S+1,) or (S+1, B): the level held from each) and each
    device's final probability-sum error. The pairs are shared by the batch; the grid of runs is
    per device where the steps are (``batch[3]``); saved intervals from ``n_valid`` on are padding,
    skipped (None: none are). Returns device-last arrays: occupancy (K arrays (S+1, B)), energy, G, I
    (S+1, B) and the error (B,), the error taken at the last saved time."""

    def device(pr, v0, q0, lv):
        p_init = _initial_occupancy(pr, v0, q0)
        run_p, run_c = _run_factors(pr, dt_ns, lv, pair_level, pair_length, n_bits, max_squarings)
        return (p_init.astype(jnp.result_type(p_init, dt_ns)), run_p, run_c, *_level_observables(pr, lv))

    if any(batch[:3]):
        axes = (_axes(batch[0]), _axes(batch[1]), _axes(batch[2]), _axes(batch[1]))
        parts = jax.vmap(device, in_axes=axes, out_axes=-1)(params, v_rest, p0, levels)
    else:
        parts = [jnp.expand_dims(x, -1) for x in device(params, v_rest, p0, levels)]
    # materialise the device-last tables before the loop, and the loop's outputs before the saved
    # observables: XLA would otherwise fuse the layout changes into every run's strided reads
    p_init, run_p, run_c, g_lv, i_lv = lax.optimization_barrier(parts)
    p_s, e_s = lax.optimization_barrier(
        _runs_scan(run_p, run_c, jnp.moveaxis(grid, 0, -1) if batch[3] else grid, p_init, n_valid)
    )
    if batch[3]:  # per-device levels at the saved times
        lanes = jnp.arange(e_s.shape[-1])
        g_sv, i_sv = (jnp.swapaxes(x[saved_level, :, lanes], 1, 2) for x in (g_lv, i_lv))
    else:
        g_sv, i_sv = g_lv[saved_level], i_lv[saved_level]
    # renormalised every run, the sum is 1 to round-off unless a value went non-finite, and a NaN
    # stays NaN through every later run: the final state's sum is the check
    last = [x[-1] if n_valid is None else x[n_valid] for x in p_s]  # the rows past n_valid are padding (zero)
    err = jnp.abs(_terms_sum(last) - 1.0)
    return p_s, e_s, _dot_k(p_s, g_sv), _dot_k(p_s, i_sv), err


@functools.partial(jax.jit, static_argnames=("save_every", "max_squarings", "batch", "batch_size"))
def _run_stochastic(
    params, v_k, dt_ns, v_rest, p0, key, n_pores, levels, n_valid=None, *, save_every, max_squarings, batch, batch_size
):
    fn = functools.partial(_stochastic_device, save_every=save_every, max_squarings=max_squarings)
    if any(batch):
        fn = jax.vmap(
            fn,
            in_axes=(_axes(batch[0]), _axes(batch[3]), None, _axes(batch[1]), _axes(batch[2]), 0, None, _axes(batch[1]), None),
        )
        key = jax.random.split(key, batch_size)
    return fn(params, v_k, dt_ns, v_rest, p0, key, n_pores, levels, n_valid)


@dataclasses.dataclass(frozen=True)
class _Drive:
    """The voltages of a run as the scan reads them: ``steps`` (T,) or (B, T) are indices into
    ``levels`` (U,) or (B, U) volts, or the volts themselves when ``levels`` is None; ``v_rest``
    () or (B,); ``n_devices`` B for a batch of protocols (None for one)."""

    steps: np.ndarray
    levels: np.ndarray | None
    v_rest: np.ndarray
    n_devices: int | None

    @property
    def n_steps(self) -> int:
        return self.steps.shape[-1]

    def volts_at(self, k: np.ndarray) -> np.ndarray:
        """The voltage held on steps ``k``, (len(k),) or (B, len(k))."""
        s = np.take(self.steps, k, axis=-1)
        if self.levels is None:
            return s
        if self.levels.ndim == 1:
            return self.levels[s]
        return self.levels[:, s] if s.ndim == 1 else np.take_along_axis(self.levels, s, axis=1)


def _drive(protocol, dt_ns: float) -> _Drive:
    """The run's voltages: a list of piecewise-constant protocols that jump on the same steps (an
    amplitude sweep) is read per segment, never sampled per step; anything else is sampled and
    tabulated (:func:`_level_tables`)."""
    shared = _shared_switching(protocol, dt_ns)
    if shared is not None:
        return shared
    v_k, v_rest = _voltages(protocol, dt_ns)
    steps, levels = _level_tables(v_k)
    return _Drive(steps, levels, np.asarray(v_rest), v_k.shape[0] if v_k.ndim == 2 else None)


def _shared_switching(protocol, dt_ns: float) -> _Drive | None:
    """For a list of piecewise-constant protocols with the same jumps and the same pattern of
    repeated values (pulse trains of different amplitudes): one (T,) index row into a (B, U) table
    of each device's levels, from one voltage per segment: O(B·segments) instead of O(B·T). An
    amplitude sweep (:func:`protocols.switch_values`) is read from its fields' (B, 2) table with no
    Python code per protocol; other lists with the same jumps are evaluated protocol by protocol.
    None when the list is not such a batch (the general path then decides)."""
    if not (_protocols.is_batch(protocol) and len(protocol) > 1):
        return None
    first = protocol[0]
    if not all(kind.piecewise_constant for kind in set(map(type, protocol))):
        return None
    values = _protocols.switch_values(protocol)  # (B, 2) (off, on), or None
    jumps = np.asarray(first.breakpoints_ns(), dtype=float)
    if values is None and any(
        p.duration_ns != first.duration_ns or not np.array_equal(p.breakpoints_ns(), jumps) for p in protocol[1:]
    ):
        return None
    n_steps, k = first.grid_steps(dt_ns)  # the same jumps: one grid check for the batch
    edges = np.unique(np.concatenate([[0], k[(k > 0) & (k < n_steps)], [n_steps]]))
    mid_ns = (edges[:-1] + 0.5) * dt_ns
    if values is not None:  # one on/off mask over the segments, two values per device: no (B, S) array
        on_name, off_name = first.switch_fields
        pattern = dataclasses.replace(first, **{on_name: 1.0, off_name: 0.0}).voltage_v(mid_ns) == 1.0
        table, v_rest = values, values[:, 0]  # each rests at its off value
    else:
        seg_v = np.stack([np.asarray(p.voltage_v(mid_ns), dtype=np.float64) for p in protocol])  # (B, S)
        _, first_of, pattern = np.unique(seg_v[0], return_index=True, return_inverse=True)
        table = seg_v[:, first_of]  # (B, U): each device's value on the segments where device 0 takes each level
        if not np.array_equal(table[:, pattern], seg_v):
            return None
        v_rest = np.array([p.v_rest_v for p in protocol], dtype=np.float64)
    n_levels = table.shape[1]
    if n_levels > _MAX_LEVELS or n_levels * _LEVEL_GAIN > n_steps:
        return None
    steps = np.repeat(pattern.astype(np.int32), np.diff(edges))
    return _Drive(steps, table, v_rest, len(protocol))


@dataclasses.dataclass(frozen=True)
class _Runs:
    """A tabulated drive cut into constant-voltage runs at every jump and saved time (shared by a
    batch: a jump of any device cuts every device's run). ``pair_level``/``pair_length`` (J,) the
    distinct (level, steps) runs, pair 0 the empty run (the identity); ``grid`` (S, M) or (B, S, M)
    the pairs of the runs of each saved interval in order, padded with empty runs to M, the most runs
    an interval can hold given the jumps' spacing rounded up to a power of two. Neither shape depends
    on where the jumps fall (a sweep that moves them compiles once); J is padded to a few sizes per
    octave from 16; ``n_bits`` (a multiple of 4) bounds the run lengths, n < 2^n_bits."""

    pair_level: np.ndarray
    pair_length: np.ndarray
    grid: np.ndarray
    n_bits: int


def _bucket(n: int, floor: int = 1) -> int:
    """``max(n, floor)`` rounded up to a multiple of a quarter of its leading power of two (≤ 25 % padding)."""
    n = max(n, floor)
    q = 1 << max(0, n.bit_length() - 3)
    return -(-n // q) * q


def _pow2(n: int) -> int:
    """The least power of two >= ``n`` (>= 1)."""
    return 1 << max(0, int(n) - 1).bit_length()


def _saved_bucket(n_saved: int) -> int:
    """Saved intervals a run of ``n_saved`` is compiled for: the next power of two, as the circuits'
    transient pads its steps (a 300 ns and a 310 ns run share one program; the padding is skipped)."""
    return _pow2(n_saved)


def _padded_drive(drive: _Drive, n_steps: int) -> _Drive:
    """``drive`` run on to ``n_steps`` steps holding its last voltage, and its level table padded to a
    power of two of levels with copies of each device's last (never indexed): the compiled program
    depends on the buckets, not on the duration, dt or the number of levels. Numpy, on the host (a
    jnp op here would compile once per shape)."""
    pad = n_steps - drive.n_steps
    steps = drive.steps
    if pad:
        steps = np.concatenate([steps, np.repeat(steps[..., -1:], pad, axis=-1)], axis=-1)
    levels = drive.levels
    if levels is not None and _pow2(levels.shape[-1]) > levels.shape[-1]:
        extra = _pow2(levels.shape[-1]) - levels.shape[-1]
        levels = np.concatenate([levels, np.repeat(levels[..., -1:], extra, axis=-1)], axis=-1)
    return _Drive(steps, levels, drive.v_rest, drive.n_devices)


# Runs replace steps when they are at most this fraction of the steps, and their factor table
# (devices × pairs × K(K+1) numbers) stays below this many bytes. From _BATCH_RUNS devices on they
# replace steps even one for one (save_every = 1: one run per saved step): the device-last run
# recurrence is then the cheaper loop (issue 27, 2-core CPU: 1.5x at 10 devices, 4-8x at 100-1000;
# 0.5-1x at 1-4 devices, where the per-step scan's one small matrix product per step wins).
_RUN_FRACTION = 0.5
_BATCH_RUNS = 8
_RUN_TABLE_BYTES = 1 << 30


def _squaring_cap(params: KineticParams, dt_ns: float) -> int:
    """:func:`max_squarings_for` rounded up to a multiple of 4 (0 or 4 for the shipped calibrations at
    dt <= 0.1 ns): a static bound that few sweeps over calibrations or dt cross, so they compile once.
    0 for K <= 2 (closed forms, no exponential)."""
    return 0 if params.n_states <= 2 else 4 * -(-max_squarings_for(params, dt_ns) // 4)


def _runs(steps: np.ndarray, save_every: int, cells_per_pair: int, n_devices: int = 1) -> _Runs | None:
    """The runs of a tabulated drive (``steps`` (T,) or (B, T) level indices), or None where they
    would not save work (a voltage that moves every few steps, or save_every = 1 for fewer than
    ``_BATCH_RUNS`` devices) or their table would not fit."""
    n_steps = steps.shape[-1]
    n_saved = n_steps // save_every
    change = steps[..., 1:] != steps[..., :-1]
    if change.ndim == 2:
        change = change.any(axis=0)
    jumps = np.flatnonzero(change) + 1
    # runs per saved interval, bounded by the most jumps any save_every - 1 consecutive steps hold
    # (inside an interval): the bound moves with the jumps' spacing, not with where they fall
    in_window = np.searchsorted(jumps, jumps + save_every - 2, side="right") - np.arange(jumps.size)
    width = _pow2(1 + int(in_window.max(initial=0)))  # a power of two: few programs over jump spacings
    if n_saved * width > (1.0 if n_devices >= _BATCH_RUNS else _RUN_FRACTION) * n_steps:
        return None
    starts = np.union1d(jumps, np.arange(0, n_steps, save_every))
    lengths = np.diff(np.append(starts, n_steps))  # each <= save_every: saved times cut every run
    level = steps[..., starts].astype(np.int64)
    keys, inverse = np.unique(level * (save_every + 1) + lengths, return_inverse=True)
    n_pairs = _bucket(keys.size + 1, floor=16)
    if n_pairs * cells_per_pair * 8 > _RUN_TABLE_BYTES:
        return None
    pair_level = np.zeros(n_pairs, np.int32)
    pair_length = np.zeros(n_pairs, np.int32)
    pair_level[1 : keys.size + 1] = keys // (save_every + 1)
    pair_length[1 : keys.size + 1] = keys % (save_every + 1)
    interval = starts // save_every
    position = np.arange(starts.size) - np.searchsorted(interval, interval)  # its place among its interval's runs
    grid = np.zeros((*level.shape[:-1], n_saved, width), np.int32)
    grid[..., interval, position] = inverse.reshape(level.shape) + 1
    return _Runs(pair_level, pair_length, grid, 4 * -(-int(save_every).bit_length() // 4))  # bits: a multiple of 4


def _level_tables(v_k: np.ndarray):
    """(step inputs, level table) for the scan: with few distinct voltages per device (steps, pulse
    trains) the propagators are computed once per level and steps index them; otherwise the
    voltages themselves (None table). A batch (B, T) gets one table per device, (B, U), padded with
    each device's highest level, found from the change points (O(B·T), no sort of the whole batch):
    devices with different amplitudes no longer fall off the table path. Where every device's
    index row is the same (levels ordered by value: an amplitude sweep of one sign), the index is
    one (T,) row shared by the batch, as for a parameter batch."""
    n_steps = v_k.shape[-1]
    if v_k.ndim == 1:
        levels, inverse = np.unique(v_k, return_inverse=True)
        if levels.size <= _MAX_LEVELS and levels.size * _LEVEL_GAIN <= n_steps:
            return np.asarray(inverse.astype(np.int32)), np.asarray(levels)
        return np.asarray(v_k), None
    rows, cols = np.nonzero(v_k[:, 1:] != v_k[:, :-1])
    row_ids = np.concatenate([np.arange(v_k.shape[0]), rows])
    values = np.concatenate([v_k[:, 0], v_k[rows, cols + 1]])
    order = np.lexsort((values, row_ids))
    row_ids, values = row_ids[order], values[order]
    first = np.ones(values.size, bool)
    first[1:] = (row_ids[1:] != row_ids[:-1]) | (values[1:] != values[:-1])
    row_ids, values = row_ids[first], values[first]
    counts = np.bincount(row_ids, minlength=v_k.shape[0])
    n_levels = int(counts.max())
    if n_levels > _MAX_LEVELS or n_levels * _LEVEL_GAIN > n_steps:
        return np.asarray(v_k), None
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    table = np.repeat(values[starts + counts - 1][:, None], n_levels, axis=1)  # pad: the row's highest
    table[row_ids, np.arange(values.size) - starts[row_ids]] = values
    index = np.zeros(v_k.shape, np.int32)
    for u in range(n_levels - 1, -1, -1):  # descending: a padded duplicate never wins over its first copy
        index[v_k == table[:, u : u + 1]] = u
    if (index == index[0]).all():  # every device switches on the same steps (an amplitude sweep): one (T,) index
        index = index[0]
    return np.asarray(index), np.asarray(table)


def _as_params(cal) -> KineticParams:
    if isinstance(cal, KineticParams):
        return cal
    params = getattr(cal, "params", None)
    if isinstance(params, KineticParams):
        return params
    raise TypeError(
        "cal must be a Calibration or KineticParams (ionkinetics.simulate also takes a system id or a "
        f"calibration path); got {type(cal).__name__}"
    )


def sample_voltages(protocol, dt_ns: float):
    """``(v_k, v_rest)``: the voltage held on each step, (T,) or (B, T), and the rest voltage, () or
    (B,), of a protocol, a list of equal-length protocols, or a voltage array (as :func:`simulate`
    reads them); raises naming the rule for anything else."""
    return _voltages(protocol, float(dt_ns))


def _voltages(protocol, dt_ns):
    """(v_k (T,) or (B, T), v_rest () or (B,)) from a protocol, a list of them, or an array."""
    if isinstance(protocol, _protocols.Protocol):
        return protocol.sample(dt_ns), np.float64(protocol.v_rest_v)
    if _protocols.is_batch(protocol):  # protocols of any kind: each sampled (amplitude sweeps never come here)
        vs = [p.sample(dt_ns) for p in protocol]
        if len({v.size for v in vs}) != 1:
            raise ValueError("protocols in a batch must have the same duration_ns; got differing numbers of steps")
        return np.stack(vs), np.array([p.v_rest_v for p in protocol])
    v = np.asarray(protocol, dtype=float)
    if v.ndim not in (1, 2) or v.shape[-1] == 0:
        raise ValueError(f"protocol must be a Protocol, a list of them, or voltages of shape (T,) or (B, T); got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("protocol voltages must be finite")
    return v, v[..., 0]


def _batching(params, drive: _Drive, p0):
    """(p0 as an array or None, (params, voltages, p0) batched?, batch sizes by argument); the sizes must agree."""
    params_batched = len(params.batch_shape) == 1
    if len(params.batch_shape) > 1:
        raise ValueError(f"cal may have at most one batch axis; got batch shape {params.batch_shape}")
    v_batched = drive.n_devices is not None
    p0_batched = False
    if p0 is not None:
        p0 = jnp.asarray(p0, dtype=float)
        if p0.shape[-1] != params.n_states or p0.ndim > 2:
            raise ValueError(f"p0 must have shape ({params.n_states},) or (B, {params.n_states}); got {p0.shape}")
        if not bool(jnp.all(p0 >= 0)) or not bool(jnp.all(jnp.abs(p0.sum(-1) - 1) < _NORM_TOL[8])):
            raise ValueError("p0 must be non-negative and sum to 1 over the states")
        p0_batched = p0.ndim == 2
    batch_sizes = {}
    if params_batched:
        batch_sizes["cal"] = params.batch_shape[0]
    if v_batched:
        batch_sizes["protocol"] = drive.n_devices
    if p0_batched and p0 is not None:
        batch_sizes["p0"] = p0.shape[0]
    if len(set(batch_sizes.values())) > 1:
        raise ValueError(f"batch sizes of cal, protocol and p0 must agree; got {batch_sizes}")
    return p0, (params_batched, v_batched, p0_batched), batch_sizes


def _held_steps(n_steps: int, save_every: int, n_rows: int | None = None) -> np.ndarray:
    """(S + 1,) the step whose voltage is held from each saved time on (the last step's at the end),
    or (``n_rows``,) for a run padded past its end (the padding holds the last step's too)."""
    n_rows = n_steps // save_every + 1 if n_rows is None else n_rows
    return np.minimum(np.arange(n_rows) * save_every, n_steps - 1)


def _trace(params, drive: _Drive, dt_ns: float, saved: _Saved, n_pores, save_every: int, throw: bool) -> Trace:
    """A runner's saved steps as a :class:`Trace` (G and I from the occupancy, ×N for N pores, unless
    ``saved.observed`` = (G, I, each device's probability-sum error) came with the run); a run that
    lost probability or went non-finite raises (``throw``) or is flagged in ``Trace.ok``. The saved
    arrays may hold saved times past the drive's end (a run padded to a bucket): G and I are formed
    at that padded shape (one compiled program per bucket), then all are cut."""
    p_s, e_s, scale, observed = saved.p_s, saved.e_s, saved.scale, saved.observed
    n_steps = drive.n_steps
    keep = n_steps // save_every + 1
    params_batched = len(params.batch_shape) == 1
    tol = _NORM_TOL.get(p_s.dtype.itemsize, 1e-3)
    # the voltage held from each saved time on; where G and I are formed here, the padding's included
    # (it holds the last step's)
    v_saved = drive.volts_at(_held_steps(n_steps, save_every, keep if observed is not None else p_s.shape[-2]))
    if observed is None:
        v_pad = np.broadcast_to(v_saved, p_s.shape[:-1])
        g_ps, i_pa = _conductance_at(params, v_pad, p_s, params_batched=params_batched, p_batched=p_s.ndim == 3)
    else:
        g_ps, i_pa = observed[:2]
    p_s, e_s = p_s[..., :keep, :], e_s[..., :keep]
    g_ps, i_pa = np.asarray(g_ps)[..., :keep], np.asarray(i_pa)[..., :keep]
    if scale != 1.0:  # x·1.0 is x: a mean-field run keeps the views (no copy of 2 (B, S+1) arrays)
        g_ps, i_pa = g_ps * scale, i_pa * scale
    if observed is None:
        ok = np.all(np.isfinite(p_s), axis=(-1, -2)) & np.all(np.abs(p_s.sum(-1) - 1.0) < tol, axis=-1)
    else:
        ok = np.asarray(observed[2] < tol)  # a NaN error compares False
    if throw and not np.all(ok):
        raise FloatingPointError(
            f"simulation lost probability (beyond {tol:g} in {p_s.dtype}) or produced non-finite occupancy "
            f"({np.size(ok) - np.count_nonzero(ok)} of {np.size(ok)} devices); look for rates that overflow "
            "(a Bell law far outside the calibrated voltage range) or pass throw=False to inspect Trace.ok"
        )
    return Trace(
        t_ns=np.arange(0, n_steps + 1, save_every) * dt_ns,
        v=_saved_volts(v_saved[..., :keep], p_s.shape[:-1]),
        p=p_s,
        w=p_s[..., 0],
        g_ps=g_ps,
        i_pa=i_pa,
        e_aj=e_s,
        ok=ok,
        n_pores=None if n_pores is None else int(n_pores),
    )


def _saved_volts(v_saved: np.ndarray, shape: tuple) -> np.ndarray:
    """The trace's ``v`` of ``shape``: ``v_saved`` broadcast over a parameter batch, or as it is where
    it already has a row per device (a voltage batch: a fresh array, not copied again)."""
    if v_saved.shape == shape:
        return np.ascontiguousarray(v_saved)
    return np.broadcast_to(v_saved, shape).copy()


@dataclasses.dataclass(frozen=True)
class _Setup:
    """A checked run, as every runner takes it: ``drive`` the voltages as given, ``padded`` the same
    run on to its bucket of saved intervals (one compiled program per bucket), ``n_valid`` the saved
    intervals that are not padding, ``batch`` (params, voltages, p0, step inputs) batched?,
    ``n_devices`` the batch size (1 for none), ``squarings`` the static cap on the exponential's
    squarings."""

    params: KineticParams
    drive: _Drive
    padded: _Drive
    dt_ns: float
    save_every: int
    p0: jax.Array | None
    batch: tuple[bool, bool, bool, bool]
    n_devices: int
    n_valid: np.int32
    squarings: int

    @property
    def n_saved(self) -> int:
        return self.drive.n_steps // self.save_every


@dataclasses.dataclass(frozen=True)
class _Saved:
    """What every runner returns: occupancy ``p_s`` (..., S+1, K) per pore and energy ``e_s`` (..., S+1)
    at the saved times (host arrays, devices first; rows past the drive's end are padding), ``scale``
    the factor G and I take (N for N stochastic pores, else 1), and ``observed`` (G, I, each device's
    probability-sum error) where the runner formed them itself (None: :func:`_trace` forms them)."""

    p_s: np.ndarray
    e_s: np.ndarray
    scale: float = 1.0
    observed: tuple | None = None


def _setup(params: KineticParams, protocol, dt_ns, save_every, p0) -> _Setup:
    """Check ``dt_ns``, the protocol, ``save_every`` and ``p0`` (raising naming the rule), and pad the
    run to its bucket of saved intervals (the voltage held; the padding is skipped and cut)."""
    if isinstance(dt_ns, bool) or not isinstance(dt_ns, (int, float, np.floating)) or not dt_ns > 0:
        raise ValueError(f"dt_ns must be a number > 0 (ns); got {dt_ns!r}")
    drive = _drive(protocol, float(dt_ns))
    n_steps = drive.n_steps
    if isinstance(save_every, bool) or not isinstance(save_every, (int, np.integer)) or save_every < 1 or n_steps % save_every:
        raise ValueError(f"save_every must be a positive integer dividing the {n_steps} steps; got {save_every!r}")
    save_every = int(save_every)
    p0, batch, batch_sizes = _batching(params, drive, p0)
    n_saved = n_steps // save_every
    return _Setup(
        params=params,
        drive=drive,
        padded=_padded_drive(drive, _saved_bucket(n_saved) * save_every),
        dt_ns=float(dt_ns),
        save_every=save_every,
        p0=p0,
        batch=(*batch, drive.steps.ndim == 2),
        n_devices=max(batch_sizes.values(), default=1),
        n_valid=np.int32(n_saved),
        squarings=_squaring_cap(params, float(dt_ns)),
    )


def _step_inputs(run: _Setup):
    """The padded drive's per-step inputs and level table as the per-step scans take them."""
    levels = run.padded.levels
    return jnp.asarray(run.padded.steps), None if levels is None else jnp.asarray(levels)


def _mean_field_runner(run: _Setup) -> _Saved:
    """The mean-field run: over constant-voltage runs (:func:`_runs_runner`) where they save work,
    else step by step (:func:`_per_step_runner`)."""
    runs = None
    if run.drive.levels is not None:
        n_states = run.params.n_states
        runs = _runs(run.drive.steps, run.save_every, run.n_devices * n_states * (n_states + 1), run.n_devices)
    return _per_step_runner(run) if runs is None else _runs_runner(run, runs)


def _per_step_runner(run: _Setup) -> _Saved:
    """Mean-field, one scan iteration per step, vmapped over a batch; G and I formed afterwards."""
    v_in, levels_in = _step_inputs(run)
    p_s, e_s = _run_mean_field(
        run.params,
        v_in,
        jnp.asarray(run.dt_ns, dtype=float),
        jnp.asarray(run.drive.v_rest),
        run.p0,
        levels_in,
        run.n_valid,
        save_every=run.save_every,
        max_squarings=run.squarings,
        batch=run.batch,
    )
    return _Saved(np.asarray(p_s), np.asarray(e_s))


def _runs_runner(run: _Setup, runs: _Runs) -> _Saved:
    """Mean-field over constant-voltage runs, the batch device-last; G, I and the probability-sum
    error come out of the same program."""
    drive, save_every = run.drive, run.save_every
    n_pad = run.padded.n_steps // save_every
    grid = np.zeros((*runs.grid.shape[:-2], n_pad, runs.grid.shape[-1]), runs.grid.dtype)
    grid[..., : run.n_saved, :] = runs.grid  # padded with empty runs (skipped)
    saved_level = np.take(drive.steps, _held_steps(drive.n_steps, save_every, n_pad + 1), axis=-1)
    out = _run_mean_field_runs(
        run.params,
        grid,
        jnp.asarray(run.dt_ns, dtype=float),
        drive.v_rest,
        run.p0,
        run.padded.levels,
        runs.pair_level,
        runs.pair_length,
        saved_level.T,
        run.n_valid,
        n_bits=runs.n_bits,
        max_squarings=run.squarings,
        batch=run.batch,
    )
    p_parts, *rest = out
    # one occupancy array per state from the program (XLA maps a fresh buffer over 32 MB page by page on
    # every call, 40 ms at 10⁴ devices x 257 saved times; numpy's allocation takes huge pages), stacked
    # here; device-last: views put the devices first
    p_s = np.stack([np.asarray(x) for x in p_parts], axis=1)
    e_s, g_s, i_s, err = (np.asarray(x) for x in rest)
    if any(run.batch):
        p_s, e_s, g_s, i_s = np.moveaxis(p_s, -1, 0), e_s.T, g_s.T, i_s.T
    else:
        p_s, e_s, g_s, i_s, err = p_s[..., 0], e_s[..., 0], g_s[..., 0], i_s[..., 0], err[0]
    return _Saved(p_s, e_s, observed=(g_s, i_s, err))


def _stochastic_runner(run: _Setup, n_pores: int, key) -> _Saved:
    """``n_pores`` stochastic pores per device, step by step (counts per state), vmapped over a batch."""
    v_in, levels_in = _step_inputs(run)
    counts, e_s = _run_stochastic(
        run.params,
        v_in,
        jnp.asarray(run.dt_ns, dtype=float),
        jnp.asarray(run.drive.v_rest),
        run.p0,
        key,
        float(n_pores),
        levels_in,
        run.n_valid,
        save_every=run.save_every,
        max_squarings=run.squarings,
        batch=run.batch,
        batch_size=run.n_devices,
    )
    return _Saved(np.asarray(counts / n_pores), np.asarray(e_s), scale=float(n_pores))


def simulate(
    cal,
    protocol,
    dt_ns: float = 0.05,
    *,
    n_pores: int | None = None,
    key=None,
    p0=None,
    save_every: int = 1,
    throw: bool = True,
) -> Trace:
    """Run the occupancy model under a voltage protocol.

    Args:
        cal: a Calibration or KineticParams; a batch (leading axis B) runs B devices at once.
        protocol: a Protocol, a list of equal-length Protocols, or voltages per step (T,) or (B, T).
        dt_ns: time step, ns. Must put every jump of the protocol on the grid.
        n_pores: None for the mean-field (per-pore) model; an int N for N stochastic pores.
        key: a ``jax.random`` key, required with ``n_pores``.
        p0: initial occupancy (K,) or (B, K); default the steady state at the protocol's rest voltage.
        save_every: keep every n-th step (must divide the number of steps). Mean-field runs of
            steps and pulse trains then advance from jump to jump and saved time to saved time,
            not step by step: the cost follows the jumps and saved times (the same numbers). A batch
            of 8 or more devices takes that device-last run loop with save_every = 1 too (one run
            per saved step, the cheaper loop for a batch).
        throw: raise if a run loses probability or goes non-finite (else see ``Trace.ok``).
    """
    params = _as_params(cal)
    run = _setup(params, protocol, dt_ns, save_every, p0)
    if n_pores is None:
        if key is not None:
            raise ValueError("key is only used with n_pores (stochastic runs); drop it or pass n_pores")
        saved = _mean_field_runner(run)
    else:
        if isinstance(n_pores, bool) or not isinstance(n_pores, (int, np.integer)) or n_pores < 1:
            raise ValueError(f"n_pores must be an integer >= 1 (or None for mean-field); got {n_pores!r}")
        if key is None:
            raise ValueError("a stochastic run (n_pores given) needs an explicit key=jax.random.key(seed)")
        saved = _stochastic_runner(run, n_pores, key)
    return _trace(params, run.drive, run.dt_ns, saved, n_pores, save_every, throw)


@functools.partial(jax.jit, static_argnames=("params_batched", "p_batched"))
def _conductance_at(params, v, p, *, params_batched, p_batched):
    """Carrier conductance and total current per pore at saved times: v (..., S+1), p (..., S+1, K)."""

    def one(pr, vv, pp):
        return open_conductance_ps(pr.open, vv) * (pp @ state_weights(pr)), membrane_current_pa(pr, vv, pp)

    fn = jax.vmap(one, in_axes=(None, 0, 0))  # over saved times
    if p_batched:
        fn = jax.vmap(fn, in_axes=(_axes(params_batched), 0, 0))
    return fn(params, v, p)


def switching_energy(trace: Trace, t0_ns: float, t1_ns: float) -> np.ndarray:
    """Energy ``∫ I·V dt`` from ``t0_ns`` to ``t1_ns``, aJ per pore (exact at saved times,
    linear in between)."""
    t = trace.t_ns
    for name, value in (("t0_ns", t0_ns), ("t1_ns", t1_ns)):
        if not (t[0] <= value <= t[-1]):
            raise ValueError(f"{name} must lie within the trace, [{t[0]:g}, {t[-1]:g}] ns; got {value!r}")
    if t1_ns < t0_ns:
        raise ValueError(f"t1_ns must be >= t0_ns; got t0_ns={t0_ns}, t1_ns={t1_ns}")
    e = np.asarray(trace.e_aj)
    interp = np.vectorize(lambda row, x: np.interp(x, t, row), signature="(n),()->()")
    total = interp(e, t1_ns) - interp(e, t0_ns)
    return total / (trace.n_pores or 1)
