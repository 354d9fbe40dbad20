"""Simulated time per wall second of one network presentation, against a numpy loop of the same model.

    python benchmarks/bench_network.py [--repeats 3]

One presentation of ``circuits/network.toml`` for one seed, at the file's settings: the output neuron
(the circuit of ``circuits/neuron.toml``) driven by the read of its four synapses (the input neurons' spike
voltages from the file's input batch, times the initial weights and ``read_gain``), then the four synapse
pairs advanced under the STDP spikes of the inputs and of the output's spike:

* ionkinetics: ``circuits.transient`` of the output neuron (jitted Newton/``lax.scan``) and the kinetic
  core's ``mean_field_scan`` for the 4 × 2 synapse membranes (vmapped), best of ``repeats`` after a first
  (compile) call;
* peer: ``bench_neuron_sim.numpy_neuron`` (trapezoidal node, scipy ``expm`` per membrane per Newton
  iterate) and a numpy loop of the synapse membranes (``scipy.linalg.expm`` of ``bench_tasks._np_membrane``'s
  generator per step), nothing from JAX inside.

Prints simulated ns per wall second for both, their ratio, the output spike times and the final weights of
both. Benchmarks, not tests: nothing asserts a speed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np
import scipy.linalg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_lines
from bench_neuron_sim import numpy_neuron
from bench_tasks import _np_membrane
from ionkinetics import circuits as C
from ionkinetics import experiments as E
from ionkinetics.calibrate import load_calibration
from ionkinetics.circuits import source_batch
from ionkinetics.experiments import _network as N  # the experiment's own sub-circuit and synapse steps
from ionkinetics.experiments._neuron import _rows


def numpy_synapses(syn_np, du, dt, bias):
    """W after advancing each pair (rows of ``du`` = V_post − V_pre per step) from rest, numpy/scipy."""
    (p_plus, _n_plus), (p_minus, _n_minus) = syn_np
    out = []
    for row in du:
        occ = []
        for p, sign in ((p_plus, 1.0), (p_minus, -1.0)):
            x = _np_membrane(p, sign * bias)[1]
            for u in row:
                x = x @ scipy.linalg.expm(_np_membrane(p, u + sign * bias)[0] * dt)
            occ.append(x)
        g = [
            n * float(o @ _np_membrane(p, s * bias)[2]) / (s * bias)
            for (p, n), o, s in zip(syn_np, occ, (1.0, -1.0), strict=True)
        ]
        out.append(g[0] - g[1])
    return np.array(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    jax.config.update("jax_enable_x64", True)
    print("\n".join(machine_lines(f"scipy {scipy.__version__}")))
    cf = C.load_circuit(C.circuits_dir() / "network.toml")
    exp = cf.experiment
    parts = E.neuron_parts(cf, exp)
    syn, names = E.network_synapse(cf, exp)
    duration, dt, syn_dt = float(exp["presentation_ns"]), cf.dt_ns, float(exp["synapse_dt_ns"])
    cc = C.compile_circuit(N._sub_circuit(cf, parts.element_names, duration), duration, dt)
    n = cc.topology.n_steps
    t_mid = (np.arange(n) + 0.5) * dt
    times = exp["input_times_ns"]
    drive = [np.where((t_mid > s) & (t_mid < s + exp["input_pulse_width_ns"]), exp["input_pulse_pa"], 0.0) for s in times]
    tr_in = C.transient(cc, values=source_batch(cc, _rows(cc, parts.stimulus, drive), "is_"), batched=True)
    v_in = tr_in.v(parts.node)
    v_rest = float(v_in[0, 0])
    w0 = 255.4  # pS: the initial weight after the file's programming pulses (summary weights_ps[0])
    i_out = exp["read_gain"] * w0 * (v_in[:, 1:] - v_rest).sum(axis=0)
    wave = {
        k: float(exp[f"spike_{k2}"])
        for k, k2 in (("amplitude_v", "v"), ("head_ns", "head_ns"), ("tail_ns", "tail_ns"), ("tail_fraction", "tail_fraction"))
    }
    level = v_rest + float(exp["spike_rise_v"])
    t_syn = (np.arange(round(duration / syn_dt)) + 0.5) * syn_dt
    pre = [E.stdp_spike_wave(t_syn, E.detect_spikes(tr_in.t_ns, v_in[k], level), **wave) for k in range(len(times))]

    def ik_presentation():
        tr = C.transient(cc, values=source_batch(cc, _rows(cc, parts.stimulus, [i_out]), "is_"), batched=True)
        v = tr.v(parts.node)[0]
        post = E.stdp_spike_wave(t_syn, E.detect_spikes(tr.t_ns, v, level), **wave)
        w = N._train_synapses(syn, np.array([post - p for p in pre]), syn_dt, None)[1]
        return tr.t_ns, v, w

    t0 = time.perf_counter()
    ik_presentation()
    first = time.perf_counter() - t0
    best = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        t, v_jax, w_jax = ik_presentation()
        best.append(time.perf_counter() - t0)
    by = {d["element"].name: d["element"] for *_, d in cf.graph.edges(data=True)}
    npp = lambda name: jax.tree_util.tree_map(np.asarray, load_calibration(by[name].calibration).params)  # noqa: E731
    p_i, p_a = npp(parts.inactivating), npp(parts.activating)
    syn_np = ((npp(names["membrane_plus"]), syn.n_plus), (npp(names["membrane_minus"]), syn.n_minus))
    t0 = time.perf_counter()
    v_np = numpy_neuron(parts, p_i, p_a, parts.c_f * 1e21, v_rest, i_out, dt)
    t_end = np.concatenate([[0.0], (np.arange(n) + 1) * dt])
    s_np = E.detect_spikes(t_end, v_np, level)
    post_np = E.stdp_spike_wave(t_syn, s_np, **wave)
    w_np = numpy_synapses(syn_np, np.array([post_np - p for p in pre]), syn_dt, syn.bias_v)
    t_np = time.perf_counter() - t0
    print(f"load avg    {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min) at end")
    print(f"network.toml, one presentation of one seed: {duration:g} ns (neuron dt {dt:g} ns, synapses dt {syn_dt:g} ns)")
    print(f"ionkinetics: first call (compile + run) {first:.2f} s, best of {args.repeats} {min(best):.3f} s")
    print(f"  simulated ns per wall second: {duration / min(best):,.0f}")
    print(f"numpy/scipy loop: {t_np:.2f} s, {duration / t_np:,.0f} simulated ns per wall second")
    print(f"ratio numpy / ionkinetics: {t_np / min(best):.1f}x")
    s_jax = np.round(E.detect_spikes(t, v_jax, level), 1).tolist()
    print(f"output spike times (ns): ionkinetics {s_jax}, numpy {np.round(s_np, 1).tolist()}")
    print(f"weights after (pS): ionkinetics {np.round(w_jax, 1).tolist()}, numpy {np.round(w_np, 1).tolist()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
