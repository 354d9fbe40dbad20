"""Time per gradient step of the neuron's design search, against a finite-difference peer.

    python benchmarks/bench_neuron.py [--repeats 5]

The loss is the one the gradient search of ``circuits/design/neuron-design.toml`` descends (on the
circuit of ``circuits/neuron.toml``)
(:func:`ionkinetics.experiments.design_loss`): minus the log of the variance of the membrane voltage
over the last 3/4 of a 480 ns run (dt 1 ns, 480 implicit steps with Newton solves, two membranes,
one capacitor) driven by a 40 pA step, as a function of the two dopant molarities (ln [RbCl],
ln [KCl]) at the shipped 0.5 M / 0.5 M.

* reverse mode: one jitted ``jax.value_and_grad`` (gradients through each Newton solve by the
  implicit function theorem), best of ``repeats`` after the compile call;
* peer: central finite differences of the same jitted loss (2 knobs: 4 loss evaluations), best
  of ``repeats`` after its compile. Both in this process, on the same cores.

Prints the two times, their ratio, how far the two gradients agree, and the machine's load.
Benchmarks, not tests: nothing asserts a speed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_model
from ionkinetics import circuits as C
from ionkinetics import experiments as E
from ionkinetics.calibrate import load_calibration
from ionkinetics.kinetics import protocols as P


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    jax.config.update("jax_enable_x64", True)
    cf = C.load_circuit(C.circuits_dir() / "neuron.toml")
    duration, dt = 480.0, 1.0
    g = nx.MultiDiGraph()
    for a, b, el in sorted(((a, b, d["element"]) for a, b, d in cf.graph.edges(data=True)), key=lambda e: e[2].name):
        if isinstance(el, (C.VoltageSource, C.CurrentSource)):
            el = dataclasses.replace(el, protocol=P.dc(el.protocol.v_rest_v, duration, v_rest_v=el.protocol.v_rest_v))
        g.add_edge(a, b, key=el.name, element=el)
    cc = C.compile_circuit(g, duration, dt)
    parts = E.neuron_parts(cf, cf.experiment)  # the file's wiring, as the experiment reads it
    by_name = {d["element"].name: d["element"] for *_, d in cf.graph.edges(data=True)}
    cal_i = load_calibration(by_name[parts.inactivating].calibration)
    cal_a = load_calibration(by_name[parts.activating].calibration)
    loss = E.design_loss(cc, parts, cal_i, cal_a, 40.0)
    theta = jnp.log(jnp.array([0.5, 0.5]))
    vg = jax.jit(jax.value_and_grad(loss))
    f = jax.jit(loss)
    t0 = time.perf_counter()
    jax.block_until_ready(vg(theta))
    compile_grad = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(f(theta))
    compile_f = time.perf_counter() - t0

    def fd(h=1e-4):
        return jnp.stack([(f(theta + h * e) - f(theta - h * e)) / (2 * h) for e in jnp.eye(2)])

    t_grad, t_fd = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        _, g_ad = jax.block_until_ready(vg(theta))
        t_grad.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        g_fd = jax.block_until_ready(fd())
        t_fd.append(time.perf_counter() - t0)
    agree = float(jnp.max(jnp.abs(g_ad - g_fd)) / jnp.max(jnp.abs(g_ad)))
    load = os.getloadavg()
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"neuron design loss: {cc.topology.n_steps} steps, 2 knobs (ln [RbCl], ln [KCl]) at 0.5 M / 0.5 M")
    print(f"compile: value_and_grad {compile_grad:.1f} s, loss alone {compile_f:.1f} s")
    print(f"gradient step (reverse mode): {min(t_grad):.3f} s   finite differences (4 solves): {min(t_fd):.3f} s")
    print(f"ratio finite-difference / reverse mode: {min(t_fd) / min(t_grad):.2f}x; gradients agree to {agree:.1e} (relative)")
    print(f"gradient: reverse mode {np.asarray(g_ad)}, finite differences {np.asarray(g_fd)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
