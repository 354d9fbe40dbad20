"""Benchmark of the ionic reservoir (``ionkinetics.tasks``): throughput and time per gradient step.

    python benchmarks/bench_tasks.py [--quick]

The reservoir of ``tasks/narma10.toml`` (20 membranes of the five shipped dopant pairs at four
molarities each, 2 virtual nodes of 0.5 ns, 40 readout features; 8 membranes have 3 occupancy
states, 12 have 2), driven by a NARMA-10 input.

* Throughput, input steps per second: the jitted, mean-field ``Reservoir.run`` (best of ``repeats``
  after a first, compiling call) against (A) the same reservoir in plain numpy/scipy (a loop over
  steps and membranes, the rate law re-implemented in numpy from its documented form,
  ``scipy.linalg.expm`` of Q·hold for P, the same group-inverse formula for ∫expm, on ``peer_steps``
  steps, extrapolated), checked to agree to 1e-8, and (B) the 40-node tanh ESN of
  the same script in numpy (the software reservoir it is compared with).
* Gradient step: ``jax.value_and_grad`` of the design loss (validation NRMSE of the closed-form
  ridge readout with the expected readout noise) with respect to the 20 molarities and 20 pore
  counts, jitted, best of ``repeats``; against central finite differences of the same jitted loss
  (2 x 40 + 1 evaluations, timed as 81 x one evaluation), and the two gradients compared.

* Delay reservoir (issue 25): ``tasks/delay-narma10.toml`` (4 delayed-feedback loops, one B3N:RbCl
  membrane each, 25 virtual nodes of 8 ns, 100 features), the jitted mean-field
  ``DelayReservoir.run`` against the same loop in numpy/scipy (interval by interval: V from the input
  and the delayed current, ``scipy.linalg.expm`` of Van Loan's block for P and ∫expm, the same
  per-state current), in simulated ns per wall second, checked to agree to 1e-8.

Benchmarks, not tests: nothing asserts a speed. Exits 1 if an agreement check fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402

from _machine import machine_lines  # noqa: E402
from ionkinetics.constants import PA_PER_E_PER_NS  # noqa: E402
from ionkinetics.kinetics import generator  # noqa: E402
from ionkinetics.tasks import build_reservoir, design_loss, esn_states, load_task, narma10, state_current_pa  # noqa: E402

TASK = Path(__file__).resolve().parents[1] / "tasks" / "narma10.toml"
DELAY_TASK = Path(__file__).resolve().parents[1] / "tasks" / "delay-narma10.toml"
FULL = {"steps": 4000, "peer_steps": 200, "esn_steps": 4000, "grad_train": 1200, "grad_val": 400, "repeats": 3, "delay_peer": 40}
QUICK = {"steps": 1000, "peer_steps": 50, "esn_steps": 1000, "grad_train": 300, "grad_val": 100, "repeats": 2, "delay_peer": 10}


def _np_bell(rate, v, vt):
    """The saturating two-polarity Bell law, (with, against) per site, re-implemented in numpy."""
    up = rate.k_plus_per_ns * np.exp(np.clip(rate.delta_plus * v / vt, -80, 80))
    down = rate.k_minus_per_ns * np.exp(np.clip(-rate.delta_minus * v / vt, -80, 80))
    sat = rate.k_max_per_ns / (up + down + rate.k_max_per_ns)
    return up * sat, down * sat


def _np_membrane(p, v):
    """(Q, stationary π, per-state current pA) of one pore at held ``v``, from the documented rate law in numpy:
    star-shaped generator, carrier G_open(V)·weight·V plus the dopant's displacement current."""
    vt = p.v_thermal_v
    t_up, t_down = _np_bell(p.trap, v, vt)
    e_up, e_down = _np_bell(p.escape, v, vt)
    trap, esc = (t_up + t_down) * p.molar, e_up + e_down
    k = len(trap) + 1
    q = np.zeros((k, k))
    q[0, 1:], q[1:, 0] = trap, esc
    q -= np.diag(q.sum(axis=1))
    o = p.open
    hold = 1e-3  # the kinetics layer's HOLD_CORNER_V
    u = np.sqrt(v * v + o.v_smooth_v**2) - o.v_smooth_v
    u = u - hold * np.logaddexp(0.0, (u - o.v_max_v) / hold)
    g = o.c_ps * np.exp(np.clip(o.alpha_per_v * u, -80, 80))
    d_cis = p.trap.delta_plus + p.escape.delta_minus
    d_trans = p.trap.delta_minus + p.escape.delta_plus
    gate = np.concatenate([[np.sum(p.molar * (t_up * d_cis - t_down * d_trans))], e_up * d_trans - e_down * d_cis])
    weights = np.concatenate([[1.0], p.leak_fraction])
    pi = np.concatenate([[1.0], trap / esc])  # the star-shaped chain's stationary state, exactly
    return q, pi / pi.sum(), g * weights * v + PA_PER_E_PER_NS * gate


def numpy_reservoir(res, u, steps):
    """The same reservoir in numpy/scipy, nothing from JAX inside the loop: ions (steps, M, N), one
    membrane and hold interval at a time (``scipy.linalg.expm`` for P, the group inverse for ∫expm)."""
    n, m = res.n_membranes, res.n_virtual
    v = np.asarray(res.voltages(u[:steps]))
    pores = res.default_pores()
    out = np.empty((steps, m, n))
    for i in range(n):
        params = jax.tree_util.tree_map(np.asarray, res.params(i, res.default_molar()[i]))
        _, p, _ = _np_membrane(params, v[0, 0, i])
        for k in range(steps):
            for j in range(m):
                q, pi, cur = _np_membrane(params, v[k, j, i])
                big_pi = np.broadcast_to(pi, q.shape)
                prop = scipy.linalg.expm(q * res.hold_ns)
                a = big_pi * res.hold_ns + (big_pi - np.linalg.inv(big_pi - q)) @ (prop - np.eye(len(pi)))
                out[k, j, i] = pores[i] * (p @ a @ cur) / PA_PER_E_PER_NS
                p = p @ prop
    return out


def numpy_delay_reservoir(res, u, steps):
    """The delay reservoir in numpy/scipy: ions (steps, M, N), loop by loop and interval by
    interval (V from the input and the current D intervals back, Van Loan's block by scipy)."""
    n, m, d = res.n_membranes, res.n_virtual, res.delay_nodes
    out = np.empty((steps, m, n))
    for i in range(n):
        params = res.params(i, res.default_molar()[i])
        vb, vs, mask = res.v_bias_v[i], res.v_span_v[i], res.mask[i]

        def factors(v, params=params):
            q = np.asarray(generator(params, v))
            k = q.shape[0]
            block = np.zeros((2 * k, 2 * k))
            block[:k, :k], block[:k, k:] = q, np.eye(k)
            e = scipy.linalg.expm(block * res.hold_ns)
            return q, e[:k, :k], e[:k, k:] @ np.asarray(state_current_pa(params, v))

        def stationary(v, factors=factors):
            w, vec = np.linalg.eig(factors(v)[0].T)
            pi = np.real(vec[:, np.argmin(np.abs(w))])
            return pi / pi.sum()

        p_rest = stationary(vb)
        rest = p_rest @ factors(vb)[2] / PA_PER_E_PER_NS
        span = 0.5 * (p_rest @ factors(vb + vs)[2] - p_rest @ factors(vb - vs)[2]) / PA_PER_E_PER_NS
        fed = [0.0] * d
        p = stationary(vb + vs * np.clip(res.input_gain * mask[0] * u[0], -1, 1))
        for g in range(steps * m):
            k, j = divmod(g, m)
            v = vb + vs * np.clip(res.input_gain * mask[j] * u[k] + res.feedback_gain * fed[g % d], -1, 1)
            _, prop, aj = factors(v)
            q_pore = p @ aj / PA_PER_E_PER_NS
            fed[g % d] = (q_pore - rest) / span
            out[k, j, i] = res.default_pores()[i] * q_pore
            p = p @ prop
    return out


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = fn()
        times.append(time.perf_counter() - t0)
    return min(times), r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter series (about a minute)")
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    ok = True
    print("ionkinetics tasks benchmark: ionic reservoir throughput and gradient step" + (" (--quick)" if args.quick else ""))
    for line in machine_lines():
        print("  " + line)
    tf = load_task(TASK)
    res = build_reservoir(tf)
    k_states = list(res.state_counts)
    print(
        f"  reservoir   {TASK.name}: {res.n_membranes} membranes ({k_states.count(3)} with 3 states, "
        f"{k_states.count(2)} with 2), "
        f"{res.n_virtual} virtual nodes x {res.hold_ns:g} ns, {res.n_features} features, {res.input_rate_ghz:g} GHz input"
    )
    print()
    u, _ = narma10(cfg["steps"], seed=0)
    us = jnp.asarray(4 * u - 1)
    rows = []

    # ---- throughput --------------------------------------------------------------------------
    t0 = time.perf_counter()
    first = np.asarray(res.run(us).ions)
    t_first = time.perf_counter() - t0
    t_jax, _ = best_of(lambda: np.asarray(res.run(us).ions), cfg["repeats"])
    rate_jax = cfg["steps"] / t_jax
    rows.append(("throughput", f"{cfg['steps']} steps", "jax Reservoir.run (jit, mean-field), best", t_jax, rate_jax, "", ""))
    rows.append(("", "", "  first call (compile + run)", t_first, None, "", f"compile ~ {t_first - t_jax:.1f} s"))
    ps = cfg["peer_steps"]
    t0 = time.perf_counter()
    peer = numpy_reservoir(res, np.asarray(us), ps)
    t_peer = (time.perf_counter() - t0) * cfg["steps"] / ps
    rel = float(np.max(np.abs(peer - first[:ps]) / np.maximum(np.abs(first[:ps]), 1e-300)))
    ok &= rel < 1e-8
    rows.append(
        (
            "",
            "",
            f"  peer A: numpy/scipy loop, {ps} steps",
            t_peer,
            cfg["steps"] / t_peer,
            f"{t_peer / t_jax:.1f}",
            f"extrap. to {cfg['steps']}; max rel |dions| = {rel:.1e}",
        )
    )
    ue = np.asarray(us)[: cfg["esn_steps"]]
    t_esn, _ = best_of(
        lambda: esn_states(ue, res.n_features, spectral_radius=0.9, input_scaling=0.1, leak=1.0, seed=0), cfg["repeats"]
    )
    t_esn *= cfg["steps"] / cfg["esn_steps"]
    rows.append(
        ("", "", f"  peer B: numpy tanh ESN, {res.n_features} nodes", t_esn, cfg["steps"] / t_esn, f"{t_esn / t_jax:.2f}", "")
    )

    # ---- gradient step -------------------------------------------------------------------------
    w = 100
    n = w + cfg["grad_train"] + cfg["grad_val"]
    u2, y2 = narma10(n, seed=0)
    un, yn = jnp.asarray(4 * u2 - 1), jnp.asarray(y2)
    train, val = slice(w, w + cfg["grad_train"]), slice(w + cfg["grad_train"], n)
    m0, p0 = jnp.asarray(res.default_molar()), jnp.asarray(res.default_pores())

    def loss(mp):
        return design_loss(res, un, yn, mp[0], mp[1], train=train, val=val, ridge=1e-6)

    vg = jax.jit(jax.value_and_grad(loss))
    f = jax.jit(loss)
    x0 = jnp.stack([m0, p0])
    t0 = time.perf_counter()
    _, g = vg(x0)
    t_first_g = time.perf_counter() - t0
    t_grad, (_, g) = best_of(lambda: jax.block_until_ready(vg(x0)), cfg["repeats"])
    f(x0).block_until_ready()
    t_f, _ = best_of(lambda: f(x0).block_until_ready(), cfg["repeats"])
    n_par = x0.size
    t_fd = (2 * n_par + 1) * t_f
    # central differences on a few coordinates, to check the gradient
    check = []
    for idx in [(0, 0), (0, 7), (1, 3), (1, 12)]:
        h = 1e-5 * float(x0[idx])
        e = jnp.zeros_like(x0).at[idx].set(h)
        fd = (float(f(x0 + e)) - float(f(x0 - e))) / (2 * h)
        check.append(abs(float(g[idx]) - fd) / max(abs(fd), 1e-12))
    ok &= max(check) < 1e-4
    rows.append(("gradient", f"{n_par} params, T={n}", "jax.value_and_grad (jit), best", t_grad, None, "", ""))
    rows.append(("", "", "  first call (compile + run)", t_first_g, None, "", f"compile ~ {t_first_g - t_grad:.1f} s"))
    rows.append(("", "", "  one loss evaluation (jit)", t_f, None, "", f"grad / loss = {t_grad / t_f:.1f}"))
    rows.append(
        (
            "",
            "",
            f"  peer: central differences ({2 * n_par + 1} evals)",
            t_fd,
            None,
            f"{t_fd / t_grad:.1f}",
            f"max rel |g - fd| on 4 coords = {max(check):.1e}",
        )
    )

    # ---- delay reservoir (issue 25) -------------------------------------------------------------
    dres = build_reservoir(load_task(DELAY_TASK))
    step_ns = dres.step_ns
    t0 = time.perf_counter()
    dfirst = np.asarray(dres.run(us).ions)
    t_dfirst = time.perf_counter() - t0
    t_djax, _ = best_of(lambda: np.asarray(dres.run(us).ions), cfg["repeats"])
    sim_ns = cfg["steps"] * step_ns
    rows.append(
        (
            "delay",
            f"{cfg['steps']} steps",
            f"jax DelayReservoir.run, {dres.n_membranes}x{dres.n_virtual} nodes",
            t_djax,
            cfg["steps"] / t_djax,
            "",
            f"{sim_ns / t_djax:.3g} simulated ns per wall s",
        )
    )
    rows.append(("", "", "  first call (compile + run)", t_dfirst, None, "", f"compile ~ {t_dfirst - t_djax:.1f} s"))
    dp = cfg["delay_peer"]
    t0 = time.perf_counter()
    dpeer = numpy_delay_reservoir(dres, np.asarray(us), dp)
    t_dpeer = (time.perf_counter() - t0) * cfg["steps"] / dp
    drel = float(np.max(np.abs(dpeer - dfirst[:dp]) / np.abs(dfirst[:dp])))
    ok &= drel < 1e-8
    rows.append(
        (
            "",
            "",
            f"  peer: numpy/scipy loop, {dp} steps",
            t_dpeer,
            cfg["steps"] / t_dpeer,
            f"{t_dpeer / t_djax:.0f}",
            f"{sim_ns / t_dpeer:.3g} sim ns/s; max rel |dions| = {drel:.1e}",
        )
    )

    hdr = f"{'case':<11} {'size':<20} {'implementation':<44} {'time s':>9} {'steps/s':>10} {'peer/jax':>9}  note"
    print(hdr)
    print("-" * len(hdr))
    for case, size, impl, t, rate, ratio, note in rows:
        r = f"{rate:10.0f}" if rate else " " * 10
        print(f"{case:<11} {size:<20} {impl:<44} {t:9.3f} {r} {ratio:>9}  {note}")
    print()
    print(f"  load avg    {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min) at end")
    print("agreement checks " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
