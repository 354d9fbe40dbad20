"""Benchmark of the circuit solver against ngspice on the exported netlists.

    python benchmarks/bench_circuits.py [--quick]

A potentiation circuit: a voltage pulse train drives an access resistor in series with a
membrane of 100 pores of ``B3N:KCl@1.0+NaCl@0.5`` (mean-field). 10^3 variants (access
resistance log-uniform in 10 MΩ .. 1 GΩ, pulse amplitude uniform in 0.3 .. 0.6 V) x 10^4
steps of dt = 0.02 ns (200 ns: pulses 2 ns wide every 10 ns from 5 ns, from rest at 0 V).

dt and the amplitude range are chosen for matched accuracy: at 0.6 V this membrane's escape
rate is ~2/ns, and the solver's error after each pulse onset (second order, but with a large
constant while rate·dt ~ 0.1..0.3) stays near 1e-4 of the peak current at dt = 0.02 ns; at
0.7 V and dt = 0.05 ns it reaches ~1e-2, while ngspice's adaptive step shrinks after every
breakpoint.

* ionkinetics: one batched, jitted ``transient(compiled, values=..., batched=True)``; the values
  pytree is the compiled base circuit's with every leaf stacked along a leading batch axis
  (``g_ps`` per variant, ``vs`` replaced by each variant's sampled pulse train). Best of
  ``repeats`` calls after a first (compile) call; the time includes the copy of every trace
  back to numpy, as ``transient`` returns it.
* ngspice: ``to_spice`` netlists of a subset of the variants (evenly spaced), one
  ``ngspice -b`` process per circuit as a user would run it, timed one by one (process wall
  time: start-up, parse, operating point, transient, writing the data file), extrapolated to
  all variants. Exporting the netlists is not timed.
* Accuracy: on the subset, max over the run of |i_ngspice - i_ionkinetics| / max |i| for the
  source current (ngspice's output linearly interpolated to the solver's time points). On the
  subset circuit where they differ most, and on the first, both are also compared with the
  solver at dt/8 (second order: ~64x more accurate), to show how far each is from the answer.

Benchmarks, not tests: nothing asserts a speed. Exits 1 if ngspice fails or if the currents
differ by more than 1e-3 of the peak.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import ionkinetics as ik  # noqa: E402
from _machine import machine_lines  # noqa: E402
from ionkinetics import circuits as C  # noqa: E402
from ionkinetics.circuits import compile_circuit, transient  # noqa: E402
from ionkinetics.circuits._spice import read_spice_data, to_spice  # noqa: E402
from ionkinetics.kinetics import protocols  # noqa: E402

CAL = "B3N:KCl@1.0+NaCl@0.5"
N_PORES = 100
DT_NS = 0.02
WIDTH_NS, PERIOD_NS, T_START_NS = 2.0, 10.0, 5.0
R_RANGE_OHM = (1e7, 1e9)
AMP_RANGE_V = (0.3, 0.6)  # see the module docstring for why not higher at this dt
AGREE_TOL = 1e-3
FULL = dict(variants=1000, steps=10_000, subset=20, repeats=2)
QUICK = dict(variants=100, steps=2000, subset=10, repeats=3)


def spice_lines(ngspice: str) -> list[str]:
    version = subprocess.run([ngspice, "--version"], capture_output=True, text=True, check=False).stdout
    spice = next((ln.strip("* ").split(" ")[0] for ln in version.splitlines() if "ngspice-" in ln), "ngspice")
    return machine_lines(f"{spice} ({ngspice})")


def pulses(amplitude_v: float, n_steps: int) -> protocols.PulseTrain:
    duration = n_steps * DT_NS
    count = int((duration - T_START_NS - WIDTH_NS) // PERIOD_NS) + 1
    return protocols.pulse_train(amplitude_v, WIDTH_NS, PERIOD_NS, count, t_start_ns=T_START_NS, duration_ns=duration)


def potentiation_circuit(r_ohm: float, amplitude_v: float, n_steps: int):
    membrane = C.Membrane("M1", CAL, n_pores=N_PORES)
    return C.circuit(C.series(C.Resistor("Ra", r_ohm), membrane), C.VoltageSource("vs", pulses(amplitude_v, n_steps)))


def batched_values(compiled, r_ohm, amplitude_v, n_steps, dt_ns=DT_NS):
    """The compiled base circuit's values with a leading batch axis: resistor conductance and
    the source's held values per variant, everything else repeated."""
    n = len(r_ohm)
    tile = lambda x: np.broadcast_to(np.asarray(x), (n, *np.shape(x))).copy()  # noqa: E731
    values = jax.tree.map(tile, compiled.values)
    ri = compiled.value_index("Ra")[1]
    values["g_ps"][:, ri] = 1e12 / np.asarray(r_ohm)
    vi = compiled.value_index("vs")[1]
    values["vs"][:, vi, :] = np.stack([pulses(a, n_steps).sample(dt_ns)[: compiled.topology.n_steps] for a in amplitude_v])
    values["vs_rest"][:, vi] = 0.0
    return values


def find_ngspice() -> str | None:
    """ngspice's path; None (after saying how to get it) when it is not on PATH."""
    path = shutil.which("ngspice")
    if path is None:
        print("ngspice is not on PATH (e.g. apt install ngspice); nothing to compare with", file=sys.stderr)
    return path


def rel_diff(t_ours, ours, t_spice, spice) -> float:
    return float(np.max(np.abs(ours - np.interp(t_ours, t_spice, spice))) / np.max(np.abs(ours)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 variants x 2000 steps (4 pulses), 10 ngspice runs")
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    ngspice = find_ngspice()
    if ngspice is None:
        return 1
    n, n_steps, n_sub, reps = cfg["variants"], cfg["steps"], cfg["subset"], cfg["repeats"]
    duration = n_steps * DT_NS
    t_start = time.perf_counter()

    print("ionkinetics circuits benchmark: batched transient vs ngspice" + (" (--quick)" if args.quick else ""))
    for line in spice_lines(ngspice):
        print("  " + line)
    proto = pulses(0.5, n_steps)
    print(
        f"  circuit     pulse train -> access resistor -> membrane {CAL} x {N_PORES} pores (mean-field, "
        f"{ik.load_calibration(CAL).params.n_states} states)"
    )
    print(
        f"  variants    {n}: R_access log-uniform {R_RANGE_OHM[0]:.0e}..{R_RANGE_OHM[1]:.0e} ohm, amplitude uniform "
        f"{AMP_RANGE_V[0]}..{AMP_RANGE_V[1]} V; {n_steps} steps of {DT_NS} ns ({duration:g} ns, {proto.count} pulses "
        f"{WIDTH_NS:g} ns every {PERIOD_NS:g} ns from {T_START_NS:g} ns)"
    )
    print()

    rng = np.random.default_rng(20261125)
    r_ohm = np.exp(rng.uniform(*np.log(R_RANGE_OHM), n))
    amp_v = rng.uniform(*AMP_RANGE_V, n)

    # ---- ionkinetics, batched ------------------------------------------------------------------
    compiled = compile_circuit(potentiation_circuit(r_ohm[0], amp_v[0], n_steps), duration, DT_NS)
    values = batched_values(compiled, r_ohm, amp_v, n_steps)
    own = compile_circuit(potentiation_circuit(r_ohm[-1], amp_v[-1], n_steps), duration, DT_NS).values
    same = all(
        np.allclose(a[-1], b, rtol=1e-15, atol=0) for a, b in zip(jax.tree.leaves(values), jax.tree.leaves(own), strict=True)
    )
    if not same:
        print("the batched values differ from the last variant's own compiled values", file=sys.stderr)
        return 1

    def run():
        return transient(compiled, values=values, batched=True)

    t0 = time.perf_counter()
    trace = run()
    t_first = time.perf_counter() - t0
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        trace = run()
        times.append(time.perf_counter() - t0)
    t_jax = min(times)
    i_jax = trace.i("vs")  # (n, n_steps + 1), pA

    # ---- ngspice on a subset -------------------------------------------------------------------
    sub = np.unique(np.linspace(0, n - 1, n_sub).round().astype(int))
    per_circuit, diffs, spice_data = [], [], {}
    with tempfile.TemporaryDirectory(prefix="bench_circuits_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        for k in sub:
            graph = potentiation_circuit(r_ohm[k], amp_v[k], n_steps)
            (tmp / f"c{k}.cir").write_text(to_spice(graph, duration, DT_NS, title=f"variant {k}", data_file=f"c{k}.data"))
        t_export = time.perf_counter() - t0
        for k in sub:
            t0 = time.perf_counter()
            res = subprocess.run([ngspice, "-b", f"c{k}.cir"], cwd=tmp, capture_output=True, text=True, check=False)
            per_circuit.append(time.perf_counter() - t0)
            if res.returncode != 0:
                print(f"ngspice failed on variant {k}:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}", file=sys.stderr)
                return 1
            graph = potentiation_circuit(r_ohm[k], amp_v[k], n_steps)
            d = read_spice_data(tmp / f"c{k}.data", graph, duration_ns=duration)
            spice_data[k] = d
            diffs.append(rel_diff(trace.t_ns, i_jax[k], d["t_ns"], d["i"]["vs"]))
            pts = len(d["t_ns"])
    t_spice_sub = float(np.sum(per_circuit))
    t_spice = t_spice_sub * n / sub.size

    # ---- accuracy against a finer solve (dt/8): the subset's worst-agreeing circuit and its first --
    ref_k = sub[[int(np.argmax(diffs)), 0]] if int(np.argmax(diffs)) != 0 else sub[:2]
    fine = compile_circuit(potentiation_circuit(r_ohm[ref_k[0]], amp_v[ref_k[0]], n_steps), duration, DT_NS / 8)
    ref = transient(fine, values=batched_values(fine, r_ohm[ref_k], amp_v[ref_k], n_steps, DT_NS / 8), batched=True, save_every=8)
    err_jax = [rel_diff(trace.t_ns, i_jax[k], ref.t_ns, ref.i("vs")[j]) for j, k in enumerate(ref_k)]
    err_spice = [rel_diff(ref.t_ns, ref.i("vs")[j], spice_data[k]["t_ns"], spice_data[k]["i"]["vs"]) for j, k in enumerate(ref_k)]

    # ---- report ------------------------------------------------------------------------------------
    dev_steps = n * n_steps
    head = f"{'implementation':<58} {'time s':>9} {'us/circuit-step':>16} {'ngspice/jax':>12}"
    print(head)
    print("-" * len(head))
    print(f"{f'ionkinetics transient, batched {n} x {n_steps}, best of {reps}':<58} {t_jax:9.2f} {t_jax / dev_steps * 1e6:16.3f}")
    print(f"{'  first call (compile + run)':<58} {t_first:9.2f} {'':16} {'':12}  compile ~ {t_first - t_jax:.1f} s")
    print(
        f"{f'ngspice -b, one process per circuit, {sub.size} run, extrap. to {n}':<58} {t_spice:9.2f} "
        f"{t_spice / dev_steps * 1e6:16.3f} {t_spice / t_jax:12.1f}"
    )
    print(
        f"  ngspice per circuit: median {np.median(per_circuit):.3f} s, min {np.min(per_circuit):.3f} s, "
        f"max {np.max(per_circuit):.3f} s ({pts} output points in the last); exporting {sub.size} netlists took "
        f"{t_export:.1f} s (not timed above)"
    )
    print()
    print("agreement (source current, relative to each circuit's peak |i|, whole run)")
    worst = float(np.max(diffs))
    med = float(np.median(diffs))
    print(f"  ngspice vs ionkinetics on {sub.size} circuits: max {worst:.2e}, median {med:.2e}  (limit {AGREE_TOL:g})")
    for j, k in enumerate(ref_k):
        print(
            f"  vs ionkinetics at dt/8, variant {k} (R {r_ohm[k]:.3g} ohm, {amp_v[k]:.3f} V): "
            f"ionkinetics {err_jax[j]:.2e}, ngspice {err_spice[j]:.2e}"
        )
    print()
    print(f"load avg at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}; total wall {time.perf_counter() - t_start:.1f} s")
    if worst > AGREE_TOL:
        print(f"agreement check FAILED: {worst:.2e} > {AGREE_TOL:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
