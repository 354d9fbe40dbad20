"""Simulated time per wall second of the shipped all-or-none neuron, against a numpy loop of the same model.

    python benchmarks/bench_neuron_sim.py [--current-pa 30] [--duration-ns 1500] [--repeats 3]

The circuit of ``circuits/neuron.toml`` (a B3N K+/Rb+ membrane and a crown6 Na+/K+ membrane, each behind
its bias source, on a capacitor) driven by a current step (0 to ``--current-pa`` at 20 ns; tonic firing),
at the file's dt:

* ionkinetics: ``circuits.transient`` of the compiled circuit (one jitted ``lax.scan``: trapezoidal
  capacitor, Newton on the node voltage with the occupancies advanced inside the residual by
  ``expm(Q(V̄)·dt)``), best of ``repeats`` after a first (compile) call;
* peer: the same scheme as a numpy/scipy loop, nothing from JAX inside it (the rate law re-implemented in
  numpy, ``bench_tasks._np_membrane``; ``scipy.linalg.expm`` per membrane per Newton iterate; a scalar
  Newton with a numerical derivative on the node's trapezoidal residual). At the source's jump the
  circuit re-initialises and takes backward-Euler steps; the peer does not, so the two agree to the
  spike times, not to round-off.

Prints simulated ns per wall second for both, their ratio, the spike times of both and the machine's
load. Benchmarks, not tests: nothing asserts a speed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import jax
import networkx as nx
import numpy as np
import scipy.linalg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_lines
from bench_tasks import _np_membrane
from ionkinetics import circuits as C
from ionkinetics import experiments as E
from ionkinetics.calibrate import load_calibration
from ionkinetics.kinetics import protocols as P


def numpy_neuron(parts, p_i, p_a, c_pa_ns_per_v, v0, i_stim, dt):
    """Trapezoidal node, exponential-midpoint occupancies, scalar Newton: V (n+1,) from rest ``v0``."""
    mems = [(p_i, parts.n_inactivating, parts.e_inactivating_v), (p_a, parts.n_activating, parts.e_activating_v)]
    occ = [_np_membrane(p, v0 - e)[1] for p, _, e in mems]

    def mem_current(v, v_old, occ_old):
        total, new = 0.0, []
        for (p, n, e), p_old in zip(mems, occ_old, strict=True):
            q, _, _ = _np_membrane(p, 0.5 * (v + v_old) - e)  # Q at the midpoint of u = V − E
            p_new = p_old @ scipy.linalg.expm(q * dt)
            _, _, j = _np_membrane(p, v - e)
            total += n * float(p_new @ j)
            new.append(p_new)
        return total, new

    v = np.empty(len(i_stim) + 1)
    v[0] = v0
    i_c = 0.0  # the capacitor carries no current at rest
    for k, i_s in enumerate(i_stim):
        x = v[k]

        def residual(y, k=k, i_s=i_s, occ=occ, i_c=i_c):
            i_m, new = mem_current(y, v[k], occ)
            return c_pa_ns_per_v / dt * (y - v[k]) - 0.5 * ((i_s - i_m) + i_c), new, i_s - i_m

        for _ in range(12):
            f, _, _ = residual(x)
            if abs(f) < 1e-9 * c_pa_ns_per_v:  # pA: the node's current balance
                break
            h = 1e-6
            df = (residual(x + h)[0] - f) / h
            x -= float(np.clip(f / df, -0.05, 0.05))
        _, occ, i_c = residual(x)
        v[k + 1] = x
    return v


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--current-pa", type=float, default=30.0)
    ap.add_argument("--duration-ns", type=float, default=1500.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    jax.config.update("jax_enable_x64", True)
    print("\n".join(machine_lines(f"scipy {scipy.__version__}")))
    cf = C.load_circuit(C.circuits_dir() / "neuron.toml")
    parts = E.neuron_parts(cf, cf.experiment)
    duration, dt = args.duration_ns, cf.dt_ns
    g = nx.MultiDiGraph()
    for a, b, d in cf.graph.edges(data=True):
        el = d["element"]
        if el.name == parts.stimulus:
            el = dataclasses.replace(
                el, protocol=P.step(v=args.current_pa, t_on_ns=20.0, t_off_ns=duration, duration_ns=duration)
            )
        elif isinstance(el, C.VoltageSource):
            el = dataclasses.replace(el, protocol=P.dc(el.protocol.v_rest_v, duration, v_rest_v=el.protocol.v_rest_v))
        g.add_edge(a, b, key=el.name, element=el)
    cc = C.compile_circuit(g, duration, dt)
    t0 = time.perf_counter()
    tr = C.transient(cc)
    first = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        tr = C.transient(cc)
        jax.block_until_ready(tr.v(parts.node))
        times.append(time.perf_counter() - t0)
    v_jax = np.asarray(tr.v(parts.node))
    by_name = {d["element"].name: d["element"] for *_, d in cf.graph.edges(data=True)}
    # numpy leaves: nothing from JAX inside the peer's loop
    p_i = jax.tree_util.tree_map(np.asarray, load_calibration(by_name[parts.inactivating].calibration).params)
    p_a = jax.tree_util.tree_map(np.asarray, load_calibration(by_name[parts.activating].calibration).params)
    n = cc.topology.n_steps
    t_end = (np.arange(n) + 1) * dt
    i_stim = np.where(t_end > 20.0, args.current_pa, 0.0)
    t0 = time.perf_counter()
    v_np = numpy_neuron(parts, p_i, p_a, parts.c_f * 1e21, float(v_jax[0]), i_stim, dt)
    t_np = time.perf_counter() - t0
    level = float(v_jax[0]) + 0.1
    s_jax = E.detect_spikes(np.asarray(tr.t_ns), v_jax, level)
    s_np = E.detect_spikes(np.concatenate([[0.0], t_end]), v_np, level)
    print(f"load avg    {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min) at end")
    print(f"neuron.toml, {args.current_pa:g} pA step, {duration:g} ns at dt {dt:g} ns ({n} steps)")
    print(f"ionkinetics transient: first call (compile + run) {first:.2f} s, best of {args.repeats} {min(times):.3f} s")
    print(f"  simulated ns per wall second: {duration / min(times):,.0f}")
    print(f"numpy/scipy loop: {t_np:.2f} s, {duration / t_np:,.0f} simulated ns per wall second")
    print(f"ratio numpy / ionkinetics: {t_np / min(times):.1f}x")
    print(f"spike times (ns): ionkinetics {np.round(s_jax, 1).tolist()}")
    print(f"                  numpy       {np.round(s_np, 1).tolist()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
