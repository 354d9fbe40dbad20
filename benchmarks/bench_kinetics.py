"""Benchmarks of the JAX Markov occupancy model against peers run side by side in this process.

    python benchmarks/bench_kinetics.py [--quick] [--voltage-batches | --parity [--cpu-time]] [--cal SYSTEM] [--set NAME=INT ...]

1. Mean-field: a batch of devices (a shipped calibration with its rate prefactors, Bell
   exponents and open conductance jittered per device) under one pulse train, as one
   ``ionkinetics.simulate`` call (jitted; the scan runs over constant-voltage runs). Peers on a
   subset of the devices, time extrapolated to the whole batch: (A) ``scipy.integrate.solve_ivp``
   of dp/dt = p·Q(V), integrated piecewise between the protocol's jumps; (B) a plain numpy loop
   over steps with ``scipy.linalg.expm`` propagators cached per distinct voltage. Peers on every
   device at once, in numpy on cached ``expm`` propagators (w only): (C) one einsum per step,
   (D) the K² multiply-adds per step written out, (E) the same runs-and-squaring algorithm as
   ionkinetics. (F) the run recurrence alone in numpy against the JAX one, on identical tables.
   Every peer must match the JAX ``w`` to 1e-6; the per-step JAX scan is timed beside them. Then a
   voltage batch of as many devices: one calibration, each device its own pulse amplitude.
1d. Voltage batches of step protocols against parameter batches of the same size (issue 27 goal 3:
   <= 2x), at B = 256 and 10^4, saved every step (simulate's default) and every 50: B step
   amplitudes of one calibration against B jittered parameter sets under one step, timed
   interleaved in this process (best of each), with each size's host share (reading the protocols
   and checking the run). ``--voltage-batches`` runs only this part.
1e. ``--parity`` (issue 27 goal 4, alone): ``simulate`` against the same runs algorithm in numpy computing the
   same outputs (occupancy, energy, G and I at the saved times; :func:`peer_numpy_runs_full`) on every
   device, the two timed alternately, with peer E (w only) beside them; ``--cpu-time`` times by process
   CPU time (pin the process to one core with ``taskset -c 1``: the work, not the waiting, on a loaded
   machine).
2. Stochastic: one membrane of 10^6 pores, and a batch of membranes of 100 pores each. Peer: a
   numpy loop of ``numpy.random.Generator.binomial`` (``multinomial`` for more than two
   states) on the same counts. Checks: each single membrane's w and the batch mean of w agree
   with the mean-field w within 6 binomial standard errors.

Benchmarks, not tests: nothing asserts a speed. The script exits 1 if an agreement check fails.
Ratios are peer time / JAX time (> 1: JAX is faster).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import sys
import time

# cold compiles: the compile figures below are XLA compiling, not a persistent-cache load
# (ionkinetics turns a cache on at import unless this is set; export a directory to time warm starts)
os.environ.setdefault("IONKINETICS_JAX_CACHE", "")

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.integrate  # noqa: E402
import scipy.linalg  # noqa: E402

import ionkinetics as ik  # noqa: E402
from _machine import compile_seconds  # noqa: E402
from _machine import machine_lines as _machine_lines  # noqa: E402
from ionkinetics.kinetics import KineticParams, stack_params  # noqa: E402
from ionkinetics.kinetics import _simulate as _sim  # noqa: E402  (the run recurrence alone, below)

DT_NS = 0.05
SAVE_EVERY = 50  # 2.5 ns between saved points: not commensurate with the 7 ns period
PULSE_V, WIDTH_NS, PERIOD_NS = 0.5, 2.0, 7.0
MF_TOL = 1e-6  # max |w_peer - w_jax|
Z_MAX = 6.0  # standard errors

FULL = dict(
    mf_devices=10_000,
    mf_steps=10_000,
    peer_devices=20,
    stack_devices=1_000,
    st_pores=1_000_000,
    st_steps=10_000,
    batch_membranes=10_000,
    batch_pores=100,
    batch_steps=10_000,
    batch_peer_steps=1_000,
    repeats=3,
)
QUICK = dict(
    mf_devices=1_000,
    mf_steps=10_000,
    peer_devices=5,
    stack_devices=200,
    st_pores=1_000_000,
    st_steps=10_000,
    batch_membranes=2_000,
    batch_pores=100,
    batch_steps=1_000,
    batch_peer_steps=500,
    repeats=3,
)


# --------------------------------------------------------------------------------------------
# machine and timing


def wall(fn):
    """(seconds, result) of one call, waiting for any JAX arrays in the result."""
    t0 = time.perf_counter()
    out = fn()
    jax.block_until_ready(out.p if isinstance(out, ik.Trace) else out)
    return time.perf_counter() - t0, out


def best_of(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t, out = wall(fn)
        times.append(t)
    return min(times), out


def per_device_best(fn, devices, repeats):
    """Sum over devices of each device's best-of-``repeats`` time (robust to bursts of load
    from other processes), and the stacked results."""
    total, outs = 0.0, []
    for pr in devices:
        t, out = best_of(lambda pr=pr: fn(pr), repeats)
        total += t
        outs.append(out)
    return total, np.stack(outs)


def copy_bandwidth(n_bytes: int = 256 * 2**20) -> tuple[float, float]:
    """(seconds, best of 3; bytes per second read + written) of a numpy copy of ``n_bytes``: the
    machine's streaming memory bandwidth as numpy sees it."""
    src = np.ones(n_bytes // 8)
    dst = np.empty_like(src)
    t_copy, _ = best_of(lambda: np.copyto(dst, src), 3)
    return t_copy, 2 * n_bytes / t_copy


class Table:
    def __init__(self):
        self.rows = []

    def add(self, case, size, impl, seconds, device_steps, ratio=None, note=""):
        per = seconds / device_steps * 1e9 if device_steps else float("nan")
        self.rows.append((case, size, impl, seconds, per, ratio, note))

    def print(self):
        head = f"{'case':<12} {'size':<30} {'implementation':<40} {'time s':>9} {'ns/dev-step':>12} {'peer/jax':>9}  note"
        print(head)
        print("-" * len(head))
        for case, size, impl, sec, per, ratio, note in self.rows:
            r = f"{ratio:9.1f}" if ratio is not None and ratio >= 10 else (f"{ratio:9.2f}" if ratio is not None else " " * 9)
            per_s = f"{per:12.1f}" if np.isfinite(per) else " " * 12
            print(f"{case:<12} {size:<30} {impl:<40} {sec:9.3f} {per_s} {r}  {note}")


# --------------------------------------------------------------------------------------------
# inputs


def pulse_protocol(n_steps: int):
    """Pulses of PULSE_V, WIDTH_NS every PERIOD_NS from t = 0, as many as fit in n_steps·DT_NS."""
    duration = n_steps * DT_NS
    count = int((duration - WIDTH_NS) // PERIOD_NS) + 1
    return ik.protocols.pulse_train(PULSE_V, WIDTH_NS, PERIOD_NS, count, duration_ns=duration)


def perturbed_batch(params: KineticParams, n: int, seed: int = 0, sigma: float = 0.2) -> KineticParams:
    """n devices: the rate prefactors and open conductance jittered log-normally (sigma), the
    Bell exponents by ±sigma/4 relative, built on the host (numpy leaves, batch axis first)."""
    rng = np.random.default_rng(seed)
    host = jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n, *np.shape(x))).copy(), params)

    def jitter(x, s):
        return x * rng.lognormal(0.0, s, x.shape)

    def bell(rate):
        return dataclasses.replace(
            rate,
            k_plus_per_ns=jitter(rate.k_plus_per_ns, sigma),
            k_minus_per_ns=jitter(rate.k_minus_per_ns, sigma),
            delta_plus=jitter(rate.delta_plus, sigma / 4),
            delta_minus=jitter(rate.delta_minus, sigma / 4),
        )

    return dataclasses.replace(
        host,
        open=dataclasses.replace(host.open, c_ps=jitter(host.open.c_ps, sigma / 2)),
        trap=bell(host.trap),
        escape=bell(host.escape),
    )


def device(host: KineticParams, i: int) -> KineticParams:
    return jax.tree.map(lambda x: x[i], host)


def tiled(params: KineticParams, n: int) -> KineticParams:
    """n identical copies (the API has no 'replicate membranes' switch; see README)."""
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *jnp.shape(x))), params)


# --------------------------------------------------------------------------------------------
# numpy / scipy peers (the rate law re-implemented from its documented form, not the JAX code)


def np_bell(rate, v, v_t):
    x = v / v_t
    k = rate.k_plus_per_ns * np.exp(rate.delta_plus * x) + rate.k_minus_per_ns * np.exp(-rate.delta_minus * x)
    return k * rate.k_max_per_ns / (k + rate.k_max_per_ns)


def np_generator(pr: KineticParams, v: float) -> np.ndarray:
    trap = np_bell(pr.trap, v, pr.v_thermal_v) * pr.molar
    escape = np_bell(pr.escape, v, pr.v_thermal_v)
    k = trap.size + 1
    q = np.zeros((k, k))
    q[0, 1:] = trap
    q[1:, 0] = escape
    q -= np.diag(q.sum(axis=1))
    return q


def np_steady_state(q: np.ndarray) -> np.ndarray:
    """pi·Q = 0, sum(pi) = 1, by least squares on the stacked system."""
    k = q.shape[0]
    a = np.vstack([q.T, np.ones((1, k))])
    b = np.zeros(k + 1)
    b[-1] = 1.0
    return np.linalg.lstsq(a, b, rcond=None)[0]


def peer_solve_ivp(pr, proto, n_steps, save_every, method="LSODA"):
    """w at the saved times by solve_ivp between consecutive jumps (t_eval for saved times)."""
    t_save = np.arange(0, n_steps + 1, save_every) * DT_NS
    edges = np.unique(np.concatenate([[0.0], proto.breakpoints_ns(), [n_steps * DT_NS]]))
    q_cache = {}
    p = np_steady_state(np_generator(pr, proto.v_rest_v))
    out = np.full((t_save.size, p.size), np.nan)
    for a, b in itertools.pairwise(edges):
        v = float(proto.voltage_v(0.5 * (a + b)))
        q = q_cache.get(v)
        if q is None:
            q = q_cache[v] = np_generator(pr, v)
        idx = np.nonzero((t_save >= a - 1e-9) & (t_save <= b + 1e-9))[0]
        t_eval = np.unique(np.append(np.clip(t_save[idx], a, b), b))  # always end at the jump
        sol = scipy.integrate.solve_ivp(
            lambda _t, y, q=q: y @ q,
            (a, b),
            p,
            method=method,
            t_eval=t_eval,
            rtol=1e-10,
            atol=1e-12,
            jac=lambda _t, _y, q=q: q.T,  # LSODA wants a callable (an array jac raises in scipy 1.17)
        )
        if not sol.success:
            raise RuntimeError(f"solve_ivp failed on [{a}, {b}] ns: {sol.message}")
        out[idx] = sol.y.T[np.searchsorted(t_eval, np.clip(t_save[idx], a, b))]
        p = sol.y[:, -1]
    return out[:, 0]


def peer_expm_loop(pr, v_k, v_rest, save_every):
    """w at the saved times by p <- p·expm(Q(v)·dt), one propagator per distinct voltage."""
    levels, which = np.unique(v_k, return_inverse=True)
    props = [scipy.linalg.expm(np_generator(pr, float(v)) * DT_NS) for v in levels]
    p = np_steady_state(np_generator(pr, v_rest))
    out = [p[0]]
    for k, j in enumerate(which, start=1):
        p = p @ props[j]
        if k % save_every == 0:
            out.append(p[0])
    return np.array(out)


def np_propagator_table(prs, levels) -> np.ndarray:
    """(U, K, K, B): each device's ``scipy.linalg.expm(Q(v)·dt)`` at each distinct voltage, device-last."""
    q = np.stack([[np_generator(pr, float(v)) * DT_NS for v in levels] for pr in prs])  # (B, U, K, K)
    return np.ascontiguousarray(np.moveaxis(scipy.linalg.expm(q), 0, -1))


def np_rest_occupancy(prs, v_rest) -> np.ndarray:
    return np.stack([np_steady_state(np_generator(pr, v_rest)) for pr in prs]).T.copy()  # (K, B)


def peer_numpy_vectorised(props, which, p0, save_every):
    """All devices at once in plain numpy on cached exact propagators ``props`` (U, K, K, B),
    device-last: each step one generic (K, B) x (K, K, B) contraction. w only (no energy)."""
    p = p0.copy()
    out = [p[0].copy()]
    for k, j in enumerate(which, start=1):
        p = np.einsum("ab,acb->cb", p, props[j])
        if k % save_every == 0:
            out.append(p[0].copy())
    return np.stack(out, axis=1)


def peer_numpy_unrolled(props, which, p0, save_every):
    """The hand-written numpy a user would write: per step the K² multiply-adds spelled out along the
    contiguous device axis (for K = 2, four), no temporaries beyond them. w only."""
    k_states = p0.shape[0]
    p = [row.copy() for row in p0]
    out = [p[0].copy()]
    for k, j in enumerate(which, start=1):
        m = props[j]
        p = [sum(p[a] * m[a, b] for a in range(k_states)) for b in range(k_states)]
        if k % save_every == 0:
            out.append(p[0].copy())
    return np.stack(out, axis=1)


def peer_numpy_runs(props, which, p0, save_every):
    """The best numpy we could write, with the algorithm ionkinetics uses: cut the steps into
    constant-voltage runs at every jump and saved time, raise each level's propagator to each run
    length by repeated squaring (timed here), then K² multiply-adds per run instead of per step. w only."""
    n_steps, k_states = which.size, p0.shape[0]
    starts = np.union1d(np.flatnonzero(which[1:] != which[:-1]) + 1, np.arange(0, n_steps, save_every))
    runs = list(zip(which[starts].tolist(), np.diff(np.append(starts, n_steps)).tolist(), strict=True))
    power = {}
    for u, n in set(runs):
        acc, sq, left = None, props[u], n
        while left:
            if left & 1:
                acc = sq if acc is None else np.einsum("abx,bcx->acx", acc, sq)
            left >>= 1
            if left:
                sq = np.einsum("abx,bcx->acx", sq, sq)
        power[u, n] = acc
    p = [row.copy() for row in p0]
    out = [p[0].copy()]
    for start, run in zip(starts.tolist(), runs, strict=True):
        m = power[run]
        p = [sum(p[a] * m[a, b] for a in range(k_states)) for b in range(k_states)]
        if (start + run[1]) % save_every == 0:
            out.append(p[0].copy())
    return np.stack(out, axis=1)


def peer_numpy_run_recurrence(run_p, run_c, grid, p0):
    """The run recurrence alone, in numpy, on the inputs the JAX kernel gets (run factors (J, K, K, B),
    energy vectors (J, K, B), device-last; ``grid`` (S, M) the runs of each saved interval, 0 = empty):
    K² multiply-adds and the energy per run, the state kept at the end of each interval. Occupancy
    (S + 1, K, B) and energy (S + 1, B), as the JAX kernel."""
    k_states, n_dev = p0.shape
    p = [row.copy() for row in p0]
    e = np.zeros(n_dev)
    p_out, e_out = [p0.copy()], [e.copy()]
    for row in grid.tolist():
        for j in row:
            if j == 0:  # padding: the empty run
                continue
            m, c = run_p[j], run_c[j]
            e = e + sum(p[a] * c[a] for a in range(k_states))
            p_next = [sum(p[a] * m[a, b] for a in range(k_states)) for b in range(k_states)]
            total = sum(p_next)
            p = [x / total for x in p_next]
        p_out.append(np.stack(p))
        e_out.append(e)
    return np.stack(p_out), np.stack(e_out)


# ---- goal 4 (issue 27): the same runs algorithm in numpy, computing every output simulate returns


def np_bell_terms(rate, v, v_t):
    """The saturated Bell law split by polarity (with, against), (B, S), as documented in DESIGN.md."""
    x = v / v_t[:, None]
    up = rate.k_plus_per_ns * np.exp(np.clip(rate.delta_plus * x, -80.0, 80.0))
    down = rate.k_minus_per_ns * np.exp(np.clip(-rate.delta_minus * x, -80.0, 80.0))
    saturation = rate.k_max_per_ns / (up + down + rate.k_max_per_ns)
    return up * saturation, down * saturation


def np_state_tables(host: KineticParams, v: float):
    """(Q·dt (B, K, K); G per state, pS; I per state, pA; energy weights per state, aJ per ns; each (B, K))
    of a batch of devices (numpy leaves, batch axis first) at ``v``: the generator, the carrier's
    G_open(V)·(state weight) and the dopant's displacement current (DESIGN.md's observables)."""
    o, n_dev, k = host.open, host.molar.shape[0], host.molar.shape[1] + 1
    t_up, t_down = np_bell_terms(host.trap, v, host.v_thermal_v)
    e_up, e_down = np_bell_terms(host.escape, v, host.v_thermal_v)
    q = np.zeros((n_dev, k, k))
    q[:, 0, 1:], q[:, 1:, 0] = (t_up + t_down) * host.molar, e_up + e_down
    q -= q.sum(axis=2)[:, :, None] * np.eye(k)
    u = np.sqrt(v * v + o.v_smooth_v**2) - o.v_smooth_v
    u = u - ik.kinetics.HOLD_CORNER_V * np.logaddexp(0.0, (u - o.v_max_v) / ik.kinetics.HOLD_CORNER_V)
    g_open = o.c_ps * np.exp(np.clip(o.alpha_per_v * u, -80.0, 80.0))
    g = g_open[:, None] * np.concatenate([np.ones((n_dev, 1)), host.leak_fraction], axis=1)
    d_cis = host.trap.delta_plus + host.escape.delta_minus
    d_trans = host.trap.delta_minus + host.escape.delta_plus
    from_open = np.sum(host.molar * (t_up * d_cis - t_down * d_trans), axis=1, keepdims=True)
    gating = ik.kinetics.PA_PER_E_PER_NS * np.concatenate([from_open, e_up * d_trans - e_down * d_cis], axis=1)
    i = g * v + gating
    return q * DT_NS, g, i, i * v * 1e-3  # pA·V·ns = 1e-3 aJ


def np_expm(a: np.ndarray) -> np.ndarray:
    """expm of a stack of small matrices (..., n, n), vectorised over the stack (scipy's expm loops over
    it in Python: a minute for 2x10^4 blocks here): scaling so each 1-norm is <= 1/2, a degree-18 Taylor
    sum (truncation below 1e-20), and as many squarings back."""
    norm = np.abs(a).sum(axis=-2).max(axis=-1)
    s = np.maximum(0, np.ceil(np.log2(np.maximum(norm, 1e-300) / 0.5))).astype(int)
    x = a / np.exp2(s)[..., None, None]
    term = out = np.broadcast_to(np.eye(a.shape[-1]), a.shape).copy()
    for k in range(1, 19):
        term = term @ x / k
        out = out + term
    for i in range(int(s.max(initial=0))):
        out = np.where((i < s)[..., None, None], out @ out, out)
    return out


def np_full_tables(host: KineticParams, levels):
    """Device-last one-step tables for every device and level, from scipy: P = expm(Q·dt) (U, K, K, B),
    the energy vector (∫₀^dt expm(Q·s) ds)·weights (U, K, B) from the Van Loan block (:func:`np_expm`), and G
    and I per state (U, K, B). Setup, not timed (as peer E's propagator table)."""
    parts = [np_state_tables(host, float(v)) for v in levels]
    n_dev, k = parts[0][1].shape
    blocks = np.zeros((len(levels), n_dev, 2 * k, 2 * k))
    for u, (q, *_) in enumerate(parts):
        blocks[u, :, :k, :k], blocks[u, :, :k, k:] = q, np.eye(k) * DT_NS
    e = np_expm(blocks)
    vecs = np.einsum("ubij,ubj->ubi", e[..., :k, k:], np.stack([x[3] for x in parts]))

    def last(x):
        return np.ascontiguousarray(np.moveaxis(np.asarray(x), 1, -1))

    return last(e[..., :k, :k]), last(vecs), last([x[1] for x in parts]), last([x[2] for x in parts])


def peer_numpy_runs_full(props, vecs, g_lv, i_lv, which, p0, save_every):
    """ionkinetics' algorithm in numpy with every output ``simulate`` returns: cut the steps into
    constant-voltage runs at every jump and saved time; for each distinct (level, length) pair raise the
    one-step factors by repeated squaring (``P^2m = P^m·P^m``, ``c_2m = c_m + P^m·c_m``); then per run
    K² multiply-adds for the occupancy (renormalised) and K for the energy, keeping the state at
    every saved time; then G and I at the saved times from the level held from each. Device-last
    (K, B) rows, preallocated outputs. Returns occupancy (S+1, K, B), energy, G and I (S+1, B)."""
    n_steps, k = which.size, p0.shape[0]
    starts = np.union1d(np.flatnonzero(which[1:] != which[:-1]) + 1, np.arange(0, n_steps, save_every))
    runs = list(zip(which[starts].tolist(), np.diff(np.append(starts, n_steps)).tolist(), strict=True))
    factors = {}
    for u, n in set(runs):
        acc = None
        sq_p, sq_c, left = props[u], vecs[u], n
        while left:
            if left & 1:
                acc = (
                    (sq_p, sq_c)
                    if acc is None
                    else (np.einsum("abx,bcx->acx", acc[0], sq_p), acc[1] + np.einsum("abx,bx->ax", acc[0], sq_c))
                )
            left >>= 1
            if left:
                sq_p, sq_c = np.einsum("abx,bcx->acx", sq_p, sq_p), sq_c + np.einsum("abx,bx->ax", sq_p, sq_c)
        factors[u, n] = acc
    n_saved = n_steps // save_every
    p_out = np.empty((n_saved + 1, k, p0.shape[1]))
    e_out = np.empty((n_saved + 1, p0.shape[1]))
    p_out[0], e_out[0] = p0, 0.0
    p, e, row = list(p0), np.zeros(p0.shape[1]), 0
    for start, run in zip(starts.tolist(), runs, strict=True):
        m, c = factors[run]
        e = e + sum(p[a] * c[a] for a in range(k))
        p_next = [sum(p[a] * m[a, b] for a in range(k)) for b in range(k)]
        total = sum(p_next)
        p = [x / total for x in p_next]
        if (start + run[1]) % save_every == 0:
            row += 1
            p_out[row], e_out[row] = p, e
    held = which[np.minimum(np.arange(n_saved + 1) * save_every, n_steps - 1)]
    g_s = sum(p_out[:, a] * g_lv[held, a] for a in range(k))
    i_s = sum(p_out[:, a] * i_lv[held, a] for a in range(k))
    return p_out, e_out, g_s, i_s


def parity(params: KineticParams, cfg: dict, table: Table, checks: list, cpu_time: bool = False) -> None:
    """Issue 27 goal 4: ``simulate`` (occupancy, w, G, I, energy) against :func:`peer_numpy_runs_full`
    (the same algorithm and outputs in numpy) on ``mf_devices`` jittered devices under the pulse train,
    saved every SAVE_EVERY, the two timed alternately (best of each, and the median of the pairs'
    ratios), with peer E (w only) beside them and the memory-traffic bound. ``cpu_time``: time by the
    process's CPU time instead of wall time (run pinned to one core, ``taskset -c 1``: on a loaded machine
    this counts the work, not the waiting; XLA's worker threads then share the one core)."""
    n_dev, n_steps, reps = cfg["mf_devices"], cfg["mf_steps"], max(cfg["repeats"], 7)
    proto = pulse_protocol(n_steps)
    host = perturbed_batch(params, n_dev)
    batch = jax.tree.map(jnp.asarray, host)
    levels_np, which = np.unique(proto.sample(DT_NS), return_inverse=True)
    t_setup, (props, vecs, g_lv, i_lv) = wall(lambda: np_full_tables(host, levels_np))
    p0 = np_rest_occupancy([params_np(device(host, i)) for i in range(n_dev)], proto.v_rest_v)

    def run_jax():
        return ik.simulate(batch, proto, DT_NS, save_every=SAVE_EVERY)

    def run_np():
        return peer_numpy_runs_full(props, vecs, g_lv, i_lv, which, p0, SAVE_EVERY)

    def run_e():
        return peer_numpy_runs(props, which, p0, SAVE_EVERY)

    with compile_seconds() as comp:
        t_first, tr = wall(run_jax)
    _, out_np = wall(run_np)
    clock = time.process_time if cpu_time else time.perf_counter

    def timed(fn):
        t0 = clock()
        jax.block_until_ready(fn().p if fn is run_jax else fn())
        return clock() - t0

    t_j, t_n, t_e = [], [], []
    for _ in range(reps):  # alternated: a burst of load hits each
        t_j.append(timed(run_jax))
        t_n.append(timed(run_np))
        t_e.append(timed(run_e))
    ratio_med = float(np.median(np.array(t_n) / np.array(t_j)))
    size = f"{n_dev} dev x {n_steps} steps"
    what = "CPU time" if cpu_time else "wall"
    table.add("parity", size, f"jax simulate: p, w, G, I, energy; {what}, best of {reps}", min(t_j), n_dev * n_steps,
              note=f"first call {t_first:.2f} s (compile {comp.total:.2f} s)")  # fmt: skip
    table.add("", "", "  peer: numpy runs, same outputs", min(t_n), n_dev * n_steps, min(t_n) / min(t_j),
              f"best of {reps}; median of pair ratios {ratio_med:.2f} (goal >= 1)")  # fmt: skip
    table.add("", "", "  peer E: numpy runs, w only", min(t_e), n_dev * n_steps, min(t_e) / min(t_j), f"best of {reps}")
    table.add("", "", "  (peers' setup: numpy expm tables)", t_setup, 0, note="not in their times")
    p_np, e_np, g_np, i_np = out_np
    for name, got, want in (
        ("p", np.moveaxis(tr.p, 0, -1), p_np),
        ("e_aj", tr.e_aj.T, e_np),
        ("g_ps", tr.g_ps.T, g_np),
        ("i_pa", tr.i_pa.T, i_np),
    ):
        dev = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
        checks.append((f"parity: numpy runs == simulate, {name} (max dev / max)", dev, 1e-9, dev <= 1e-9))
    t_copy_s, bytes_per_s = copy_bandwidth()
    k = params.n_states
    n_runs = np.union1d(np.flatnonzero(which[1:] != which[:-1]) + 1, np.arange(0, n_steps, SAVE_EVERY)).size
    saved_bytes = n_dev * (n_steps // SAVE_EVERY + 1) * (k + 3) * 8
    run_bytes = n_dev * n_runs * (k**2 + 2 * k + 1) * 8
    table.add("", "bandwidth", "numpy copy of 256 MiB (read + write)", t_copy_s, 0,
              note=f"{bytes_per_s / 1e9:.1f} GB/s; the saved state ({saved_bytes / 1e6:.0f} MB) and the {n_runs} runs' "
              f"rows ({run_bytes / 1e6:.0f} MB) stream in {(saved_bytes + run_bytes) / bytes_per_s * 1e3:.1f} ms: "
              f"simulate takes {min(t_j) * bytes_per_s / (saved_bytes + run_bytes):.1f}x that")  # fmt: skip


def peer_binomial_membrane(pr, v_k, v_rest, n_pores, save_every, rng):
    """Counts of one membrane stepped by exact binomial (multinomial) moves; returns w saved."""
    levels, which = np.unique(v_k, return_inverse=True)
    props = [scipy.linalg.expm(np_generator(pr, float(v)) * DT_NS) for v in levels]
    n = rng.multinomial(n_pores, np_steady_state(np_generator(pr, v_rest)))
    k_states = n.size
    out = [n[0]]
    for k, j in enumerate(which, start=1):
        prop = props[j]
        if k_states == 2:
            leave0 = rng.binomial(n[0], prop[0, 1])
            leave1 = rng.binomial(n[1], prop[1, 0])
            n = n + np.array([leave1 - leave0, leave0 - leave1])
        else:
            n = sum(rng.multinomial(n[s], prop[s]) for s in range(k_states))
        if k % save_every == 0:
            out.append(n[0])
    return np.array(out) / n_pores


def peer_binomial_batch(pr, v_k, v_rest, n_membranes, n_pores, rng):
    """B membranes of identical pores stepped together (vectorised over membranes); final w."""
    levels, which = np.unique(v_k, return_inverse=True)
    props = [scipy.linalg.expm(np_generator(pr, float(v)) * DT_NS) for v in levels]
    pi = np_steady_state(np_generator(pr, v_rest))
    n = rng.multinomial(n_pores, pi, size=n_membranes)
    k_states = pi.size
    for j in which:
        prop = props[j]
        if k_states == 2:
            leave0 = rng.binomial(n[:, 0], prop[0, 1])
            leave1 = rng.binomial(n[:, 1], prop[1, 0])
            n = n + np.stack([leave1 - leave0, leave0 - leave1], axis=1)
        else:
            n = sum(rng.multinomial(n[:, s], prop[s]) for s in range(k_states))
    return n[:, 0] / n_pores


def z_score(w_obs, w_ref, n_total):
    """|w_obs - w_ref| in binomial standard errors sqrt(w(1-w)/n): pores are independent."""
    se = np.sqrt(np.clip(w_ref * (1.0 - w_ref), 1e-300, None) / n_total)
    return np.abs(w_obs - w_ref) / se


# --------------------------------------------------------------------------------------------
# 1d. voltage batches of step protocols against parameter batches

VB_SIZES = (256, 10_000)
VB_STEP = dict(t_on_ns=20.0, t_off_ns=120.0, duration_ns=200.0)  # 4000 steps at DT_NS
VB_AMPLITUDES_V = (0.05, 0.5)  # the voltage batch's step amplitudes, evenly spaced
VB_REPEATS = {256: 15, 10_000: 3}


def voltage_batches(params: KineticParams, table: Table, checks: list) -> None:
    """At each B of ``VB_SIZES`` and save_every 1 and ``SAVE_EVERY``: B step amplitudes on one calibration
    against B jittered parameter sets under one step (the middle amplitude), the two calls alternated
    and each timed best of ``VB_REPEATS``; the host share is ``ionkinetics.simulate``'s reading of
    the protocols and its checks (``_check_before_running`` and the drive), timed alone."""
    one = jax.tree.map(jnp.asarray, params)
    n_steps = round(VB_STEP["duration_ns"] / DT_NS)
    for n in VB_SIZES:
        amplitudes = np.linspace(*VB_AMPLITUDES_V, n)
        protos = [ik.protocols.step(float(a), **VB_STEP) for a in amplitudes]
        mid = protos[n // 2]
        batch = jax.tree.map(jnp.asarray, perturbed_batch(params, n, seed=n))
        reps = VB_REPEATS.get(n, 3)
        for every in (1, SAVE_EVERY):

            def run_params(every=every, batch=batch, mid=mid):
                return ik.simulate(batch, mid, DT_NS, save_every=every)

            def run_volts(every=every, protos=protos):
                return ik.simulate(one, protos, DT_NS, save_every=every)

            wall(run_params)  # compile both
            _, tr_v = wall(run_volts)
            t_p, t_v = [], []
            for _ in range(reps):  # alternated: a burst of load hits both
                t_p.append(wall(run_params)[0])
                t_v.append(wall(run_volts)[0])
            t_host = min(
                wall(
                    lambda protos=protos, every=every: (
                        ik._check_before_running(one, protos, DT_NS, every),
                        _sim._drive(protos, DT_NS),
                    )
                )[0]
                for _ in range(reps)
            )
            size = f"B={n}, {n_steps} steps, save {every}"
            table.add(
                "volt batch" if (n, every) == (VB_SIZES[0], 1) else "",
                size,
                f"  parameter batch (1 step), best of {reps}",
                min(t_p),
                n * n_steps,
            )
            table.add(
                "",
                "",
                f"  voltage batch ({n} steps), best of {reps}",
                min(t_v),
                n * n_steps,
                min(t_p) / min(t_v),
                f"ratio voltage/parameter {min(t_v) / min(t_p):.2f} (goal <= 2; median of pairs "
                f"{np.median(np.array(t_v) / np.array(t_p)):.2f}); host share {t_host * 1e3:.1f} ms",
            )
            i = n // 3
            ref = ik.simulate(one, protos[i], DT_NS, save_every=every)
            dev = max(
                float(np.max(np.abs(getattr(tr_v, f)[i] - getattr(ref, f)) / np.max(np.abs(getattr(ref, f)))))
                for f in ("p", "g_ps", "i_pa", "e_aj")
            )
            checks.append((f"step voltage batch B={n} save {every}: device == its single run", dev, 1e-12, dev <= 1e-12))


# --------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, under a minute")
    ap.add_argument("--cal", default="crown6:NaCl@1.0+KCl@0.5", help="shipped calibration (system id) or JSON path")
    ap.add_argument("--voltage-batches", action="store_true", help="only 1d: step voltage batches against parameter batches")
    ap.add_argument("--parity", action="store_true", help="only goal 4: simulate against the same runs algorithm in numpy")
    ap.add_argument("--cpu-time", action="store_true", help="with --parity: time by process CPU time (pin to one core)")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=INT",
        help=f"override a size, e.g. --set mf_devices=100 (names: {', '.join(FULL)})",
    )
    args = ap.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    for item in args.set:
        name, _, value = item.partition("=")
        if name not in cfg or not value.isdigit() or int(value) < 1:
            ap.error(f"--set needs NAME=positive integer with NAME one of {', '.join(cfg)}; got {item!r}")
        cfg[name] = int(value)
    for name in ("mf_steps", "st_steps", "batch_steps"):
        if cfg[name] % SAVE_EVERY:
            ap.error(f"{name} must be a multiple of save_every = {SAVE_EVERY}; got {cfg[name]}")
    cfg["peer_devices"] = min(cfg["peer_devices"], cfg["mf_devices"])
    cfg["stack_devices"] = min(cfg["stack_devices"], cfg["mf_devices"])
    cfg["batch_peer_steps"] = min(cfg["batch_peer_steps"], cfg["batch_steps"])
    reps = cfg["repeats"]
    t_start = time.perf_counter()

    cal = ik.load_calibration(args.cal)
    params = cal.params
    changed = ", ".join(f"{k}={v}" for k, v in cfg.items() if v != (QUICK if args.quick else FULL)[k])
    print("ionkinetics kinetics benchmark" + (" (--quick)" if args.quick else "") + (f" ({changed})" if changed else ""))
    for line in _machine_lines(f"scipy {scipy.__version__}"):
        print("  " + line)
    print(
        f"  model       {args.cal}: {params.n_states} states; dt = {DT_NS} ns; pulse train {PULSE_V} V, "
        f"{WIDTH_NS} ns wide every {PERIOD_NS} ns from rest at 0 V; save_every = {SAVE_EVERY}"
    )
    print()
    table = Table()
    checks = []  # (name, value, limit, ok)
    if args.voltage_batches:
        voltage_batches(params, table, checks)
        return report(table, checks, None, t_start)
    if args.parity:
        parity(params, cfg, table, checks, cpu_time=args.cpu_time)
        return report(table, checks, None, t_start)

    # ---- 1. mean-field batch -----------------------------------------------------------------
    n_dev, n_steps, n_sub = cfg["mf_devices"], cfg["mf_steps"], cfg["peer_devices"]
    proto = pulse_protocol(n_steps)
    v_k = proto.sample(DT_NS)
    host = perturbed_batch(params, n_dev)
    batch = jax.tree.map(jnp.asarray, host)
    size = f"{n_dev} dev x {n_steps} steps"

    def run_mf():
        return ik.simulate(batch, proto, DT_NS, save_every=SAVE_EVERY)

    with compile_seconds() as comp_mf:
        t_first, _ = wall(run_mf)
    t_mf, tr = best_of(run_mf, reps)
    table.add("mean-field", size, f"jax simulate (jit+vmap), best of {reps}", t_mf, n_dev * n_steps)
    table.add("", "", "  first call (compile + run)", t_first, 0, note=f"compile {comp_mf.total:.2f} s (JAX compile events)")

    # stack_params, the documented way to batch parameter sets, on a slice of the same batch
    # (leaves as jax arrays, as jnp arithmetic on cal.params gives). The first call compiles a
    # concatenate of n operands per leaf shape, so it grows faster than n: no extrapolation.
    n_stack = cfg["stack_devices"]
    singles = [jax.tree.map(jnp.asarray, device(host, i)) for i in range(n_stack)]
    t_stack1, stacked = wall(lambda: stack_params(singles))
    t_stack2, _ = wall(lambda: stack_params(singles))
    same = all(np.array_equal(a, b[:n_stack]) for a, b in zip(jax.tree.leaves(stacked), jax.tree.leaves(host), strict=True))
    t_tree, _ = wall(lambda: jax.tree.map(lambda *xs: jnp.asarray(np.stack(xs)), *singles))
    table.add("", "", f"  stack_params of {n_stack} sets, 1st call", t_stack1, 0, note="not used for the run")
    table.add("", "", f"  stack_params of {n_stack} sets, repeat", t_stack2, 0)
    table.add("", "", f"  tree_map(np.stack) of {n_stack} sets", t_tree, 0, t_stack1 / t_tree, "ratio: stack_params 1st / this")
    checks.append((f"stack_params({n_stack}) == host-built batch slice", 0.0 if same else 1.0, 0.0, same))

    sub = np.unique(np.linspace(0, n_dev - 1, n_sub).astype(int))
    w_jax = tr.w[sub]

    # peer A: solve_ivp
    sub_params = [params_np(device(host, i)) for i in sub]
    t_a, w_a = per_device_best(lambda pr: peer_solve_ivp(pr, proto, n_steps, SAVE_EVERY), sub_params, reps)
    t_a *= n_dev / sub.size
    dev_a = float(np.max(np.abs(w_a - w_jax)))
    table.add(
        "",
        "",
        f"  peer A: solve_ivp LSODA, {sub.size} dev",
        t_a,
        n_dev * n_steps,
        t_a / t_mf,
        f"best of {reps} per dev, extrap. to {n_dev}; max|dw| = {dev_a:.1e}",
    )
    checks.append(("mean-field: max |w_jax - w_solve_ivp|", dev_a, MF_TOL, dev_a <= MF_TOL))

    # peer B: numpy loop with cached expm propagators
    t_b, w_b = per_device_best(lambda pr: peer_expm_loop(pr, v_k, proto.v_rest_v, SAVE_EVERY), sub_params, reps)
    t_b *= n_dev / sub.size
    dev_b = float(np.max(np.abs(w_b - w_jax)))
    table.add(
        "",
        "",
        f"  peer B: numpy loop + expm, {sub.size} dev",
        t_b,
        n_dev * n_steps,
        t_b / t_mf,
        f"best of {reps} per dev, extrap. to {n_dev}; max|dw| = {dev_b:.1e}",
    )
    checks.append(("mean-field: max |w_jax - w_expm_loop|", dev_b, MF_TOL, dev_b <= MF_TOL))

    # peers C-E: every device at once in numpy on the same exact propagators, built once here and
    # not timed (scipy expm per device and level); w only, where JAX also integrates the energy and
    # forms G and I at the saved times
    all_params = [params_np(device(host, i)) for i in range(n_dev)]
    levels_np, which = np.unique(v_k, return_inverse=True)
    t_setup, props = wall(lambda: np_propagator_table(all_params, levels_np))
    p0_np = np_rest_occupancy(all_params, proto.v_rest_v)
    peers = (
        ("C", "vectorised numpy, per step", peer_numpy_vectorised, "one einsum per step"),
        ("D", "hand-unrolled numpy, per step", peer_numpy_unrolled, "K^2 multiply-adds per step"),
        ("E", "hand-unrolled numpy, per run", peer_numpy_runs, "ionkinetics' algorithm: runs + squaring"),
    )
    for tag, name, fn, how in peers:
        t_p, w_p = best_of(lambda fn=fn: fn(props, which, p0_np, SAVE_EVERY), reps)
        dev_p = float(np.max(np.abs(w_p - tr.w)))
        table.add(
            "", "", f"  peer {tag}: {name}", t_p, n_dev * n_steps, t_p / t_mf, f"best of {reps}; {how}; max|dw| = {dev_p:.1e}"
        )
        checks.append((f"mean-field: max |w_jax - w_numpy {tag}|", dev_p, MF_TOL, dev_p <= MF_TOL))
    table.add(
        "",
        "",
        "  (peers C-E setup: scipy expm table)",
        t_setup,
        0,
        note=f"{n_dev} dev x {levels_np.size} levels; not in their times",
    )

    # the recurrence alone, JAX against numpy on identical inputs (ionkinetics' own run tables, built
    # once and not timed): what the compiled loop is worth, apart from the algorithm and the tables
    drive = _sim._drive(proto, DT_NS)
    runs = _sim._runs(drive.steps, SAVE_EVERY, n_dev * params.n_states * (params.n_states + 1))
    squarings = _sim._squaring_cap(host, DT_NS)
    factors = jax.jit(
        jax.vmap(lambda pr: _sim._run_factors(pr, DT_NS, drive.levels, runs.pair_level, runs.pair_length, runs.n_bits, squarings))
    )
    run_p, run_c = (np.ascontiguousarray(np.moveaxis(np.asarray(x), 0, -1)) for x in factors(batch))
    rec_args = (run_p, run_c, runs.grid, p0_np)
    rec_jax = jax.jit(_sim._runs_scan)  # with the count of saved intervals, as simulate calls it (filled slots only)
    n_valid = np.int32(runs.grid.shape[0])
    jax.block_until_ready(rec_jax(*rec_args, n_valid))
    t_rj, (p_rj, e_rj) = best_of(lambda: jax.block_until_ready(rec_jax(*rec_args, n_valid)), reps)
    p_rj = np.stack([np.asarray(x) for x in p_rj], axis=1)  # one array per state
    t_rn, (p_rn, e_rn) = best_of(lambda: peer_numpy_run_recurrence(*rec_args), reps)
    dev_rec = max(
        float(np.max(np.abs(np.asarray(p_rj) - p_rn))), float(np.max(np.abs(np.asarray(e_rj) - e_rn) / np.abs(e_rn).max()))
    )
    table.add(
        "",
        f"{np.count_nonzero(runs.grid)} runs",
        "jax run recurrence alone (same tables)",
        t_rj,
        n_dev * n_steps,
        note=f"best of {reps}",
    )
    table.add(
        "",
        "",
        "  peer F: numpy run recurrence",
        t_rn,
        n_dev * n_steps,
        t_rn / t_rj,
        f"best of {reps}; occupancy and energy; max rel dev {dev_rec:.1e}",
    )
    checks.append(("run recurrence: jax == numpy (p, e / max e)", dev_rec, 1e-12, dev_rec <= 1e-12))

    # the per-step JAX scan (the public mean_field_scan, jit + vmap): what simulate ran before runs
    step_scan = jax.jit(
        jax.vmap(
            lambda pr, p0: ik.kinetics.mean_field_scan(
                pr, jnp.asarray(which), DT_NS, p0, save_every=SAVE_EVERY, levels=jnp.asarray(levels_np)
            ),
        )
    )
    p0_jax = jnp.asarray(p0_np.T)
    jax.block_until_ready(step_scan(batch, p0_jax))
    t_scan, (p_scan, _) = best_of(lambda: jax.block_until_ready(step_scan(batch, p0_jax)), reps)
    dev_scan = float(np.max(np.abs(np.asarray(p_scan)[..., 0] - tr.w)))
    table.add(
        "",
        "",
        "  jax per-step scan (mean_field_scan)",
        t_scan,
        n_dev * n_steps,
        t_scan / t_mf,
        f"best of {reps}; max|dw| = {dev_scan:.1e}",
    )
    checks.append(("mean-field: max |w_runs - w_per_step_scan|", dev_scan, MF_TOL, dev_scan <= MF_TOL))

    # a voltage batch of the same size: one calibration, every device its own pulse amplitude (no cliff:
    # each device gets its own propagator table, found from the change points)
    amplitudes = np.linspace(0.1, 0.6, n_dev)
    protos_v = [
        ik.protocols.pulse_train(float(a), WIDTH_NS, PERIOD_NS, proto.count, duration_ns=proto.duration_ns) for a in amplitudes
    ]
    one = jax.tree.map(jnp.asarray, params)

    def run_vb():
        return ik.simulate(one, protos_v, DT_NS, save_every=SAVE_EVERY)

    t_vb_first, _ = wall(run_vb)
    t_vb, tr_vb = best_of(run_vb, reps)
    table.add(
        "",
        f"{n_dev} voltages",
        "jax simulate, one protocol per device",
        t_vb,
        n_dev * n_steps,
        t_mf / t_vb,
        f"ratio: parameter batch / voltage batch (goal >= 0.5); first call {t_vb_first:.2f} s",
    )
    # how far from the memory-bandwidth limit: the state the run must write (occupancy, energy, G
    # and I at the saved points) against this machine's copy bandwidth, and streaming per run what
    # the run recurrence touches (each device's run-table row, K^2 + K values, read; K + 1 of state
    # written), once per constant-voltage run (a jump or a saved time)
    t_copy_s, bytes_per_s = copy_bandwidth()
    n_states = params.n_states
    n_runs = np.union1d(np.flatnonzero(which[1:] != which[:-1]) + 1, np.arange(0, n_steps, SAVE_EVERY)).size
    saved_bytes = n_dev * (n_steps // SAVE_EVERY + 1) * (n_states + 3) * 8
    run_bytes = n_dev * n_runs * (n_states**2 + 2 * n_states + 1) * 8
    table.add(
        "",
        "bandwidth",
        "numpy copy of 256 MiB (read + write)",
        t_copy_s,
        0,
        note=f"{bytes_per_s / 1e9:.1f} GB/s; writing the saved state ({saved_bytes / 1e6:.0f} MB) needs "
        f"{saved_bytes / bytes_per_s * 1e3:.1f} ms, streaming the {n_runs} runs' table rows and state "
        f"{run_bytes / bytes_per_s * 1e3:.1f} ms: the parameter batch takes "
        f"{t_mf * bytes_per_s / (saved_bytes + run_bytes):.1f}x the sum",
    )

    i_check = n_dev // 3
    ref_vb = ik.simulate(one, protos_v[i_check], DT_NS, save_every=SAVE_EVERY).w
    dev_vb = float(np.max(np.abs(tr_vb.w[i_check] - ref_vb)))
    checks.append(("voltage batch: device == its single run", dev_vb, 1e-12, dev_vb <= 1e-12))

    # ---- 1d. voltage batches of step protocols against parameter batches ------------------------
    voltage_batches(params, table, checks)

    # ---- 2a. one membrane of 10^6 pores -------------------------------------------------------
    n_pores, st_steps = cfg["st_pores"], cfg["st_steps"]
    proto_st = pulse_protocol(st_steps)
    v_st = proto_st.sample(DT_NS)
    key = jax.random.key(20261125)

    def run_st():
        return ik.simulate(cal, proto_st, DT_NS, n_pores=n_pores, key=key, save_every=SAVE_EVERY)

    with compile_seconds() as comp_st:
        t_first, _ = wall(run_st)
    t_st, tr_st = best_of(run_st, reps)
    w_ref = ik.simulate(cal, proto_st, DT_NS, save_every=SAVE_EVERY).w
    size = f"1 x {n_pores:.0e} pores x {st_steps} st"
    table.add(
        "stochastic",
        size,
        f"jax simulate, best of {reps}",
        t_st,
        st_steps,
        note=f"{n_pores * st_steps / t_st:.2e} pore-steps/s (pores as counts per state: cost independent of pores)",
    )
    table.add(
        "",
        "",
        "  first call (compile + run)",
        t_first,
        0,
        note=f"compile {comp_st.total:.2f} s; goal < 10 s with compile: {'met' if t_first < 10 else 'NOT met'}",
    )
    rng = np.random.default_rng(20261125)
    host1 = params_np(params)
    t_np, w_np = best_of(lambda: peer_binomial_membrane(host1, v_st, proto_st.v_rest_v, n_pores, SAVE_EVERY, rng), reps)
    table.add("", "", "  peer: numpy Generator.binomial loop", t_np, st_steps, t_np / t_st, f"all steps, best of {reps}")
    z_jax = float(np.max(z_score(tr_st.w, w_ref, n_pores)))
    z_np = float(np.max(z_score(w_np, w_ref, n_pores)))
    checks.append((f"1 membrane: max_t |w_jax - w_mf| / SE ({w_ref.size} times)", z_jax, Z_MAX, z_jax <= Z_MAX))
    checks.append((f"1 membrane: max_t |w_numpy - w_mf| / SE ({w_ref.size} times)", z_np, Z_MAX, z_np <= Z_MAX))

    # compile time of a 4-state stochastic run (K^2 - K transitions; issue 14's goal: < 10 s on 2 cores)
    # a ternary mixture from the shipped K+ and Mg2+ calibrations: open, K+ and Mg2+ at either mouth
    raw = ik.load_calibration("crown6:NaCl@1.0+KCl@0.5").to_dict()
    raw["system"] = "crown6:NaCl@1.0+KCl@0.5+MgCl2@0.25"
    raw["dopants"] += ik.load_calibration("crown6:NaCl@1.0+MgCl2@0.25").to_dict()["dopants"]
    four = ik.Calibration.from_dict(raw)
    jax.clear_caches()
    with compile_seconds() as comp4:
        t4_first, _ = wall(lambda: ik.simulate(four, proto_st, DT_NS, n_pores=n_pores, key=key, save_every=SAVE_EVERY))
    t4, _ = best_of(lambda: ik.simulate(four, proto_st, DT_NS, n_pores=n_pores, key=key, save_every=SAVE_EVERY), reps)
    table.add(
        "",
        f"4 states, {n_pores:.0e} pores",
        f"jax simulate, best of {reps}",
        t4,
        st_steps,
        note=f"compile {comp4.total:.1f} s (goal < 10 s: {'met' if comp4.total < 10 else 'NOT met'}); 1st call {t4_first:.1f} s",
    )

    # ---- 2b. a batch of small membranes ---------------------------------------------------------
    n_mem, n_p, b_steps, peer_steps = cfg["batch_membranes"], cfg["batch_pores"], cfg["batch_steps"], cfg["batch_peer_steps"]
    reps_params = tiled(params, n_mem)
    proto_b = pulse_protocol(b_steps)

    def run_batch(pr):
        return ik.simulate(reps_params, pr, DT_NS, n_pores=n_p, key=key, save_every=SAVE_EVERY)

    # the full-length run is too long to repeat: it runs once, and its compile is what JAX's own
    # compile-duration events report during that call (measured, not estimated from another run)
    with compile_seconds() as comp:
        t_b_total, tr_b = wall(lambda: run_batch(proto_b))
    t_b_run = t_b_total - comp.total
    size = f"{n_mem} x {n_p} pores x {b_steps} st"
    table.add("", size, "jax simulate (vmap), 1 run", t_b_run, n_mem * b_steps, note=f"{t_b_total:.2f} s incl. compile")
    table.add("", "", "  compile (JAX compile events in that call)", comp.total, 0)
    v_peer = proto_b.sample(DT_NS)[:peer_steps]
    t0 = time.perf_counter()
    peer_binomial_batch(params_np(params), v_peer, proto_b.v_rest_v, n_mem, n_p, rng)
    t_pb = (time.perf_counter() - t0) * b_steps / peer_steps
    table.add(
        "",
        "",
        "  peer: numpy binomial, vectorised",
        t_pb,
        n_mem * b_steps,
        t_pb / t_b_run,
        f"{peer_steps} steps, extrap. to {b_steps}",
    )
    w_ref_b = ik.simulate(cal, proto_b, DT_NS, save_every=SAVE_EVERY).w
    mean_w = tr_b.w.mean(axis=0)
    z_b = float(np.max(z_score(mean_w, w_ref_b, n_mem * n_p)))
    var_ratio = float(np.mean(tr_b.w.var(axis=0, ddof=1)[1:] / (w_ref_b[1:] * (1 - w_ref_b[1:]) / n_p)))
    checks.append((f"batch: max_t |mean w - w_mf| / SE ({w_ref_b.size} times)", z_b, Z_MAX, z_b <= Z_MAX))

    # ---- report -------------------------------------------------------------------------------
    return report(table, checks, var_ratio, t_start)


def report(table: Table, checks: list, var_ratio: float | None, t_start: float) -> int:
    """Print the table and the agreement checks; 1 if a check failed."""
    table.print()
    print()
    print("agreement checks")
    for name, value, limit, ok in checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {name:<58} {value:10.3g}  (limit {limit:g})")
    if var_ratio is not None:
        print(f"  info var across membranes / binomial w(1-w)/N, mean over times: {var_ratio:.3f} (expect ~1)")
    print()
    print(f"load avg at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}; total wall {time.perf_counter() - t_start:.1f} s")
    failed = [c for c in checks if not c[3]]
    if failed:
        print(f"{len(failed)} agreement check(s) FAILED", file=sys.stderr)
        return 1
    return 0


def params_np(params: KineticParams) -> KineticParams:
    return jax.tree.map(np.asarray, params)


if __name__ == "__main__":
    sys.exit(main())
