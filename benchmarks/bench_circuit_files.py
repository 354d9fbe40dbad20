"""Benchmark of the circuit solver against ngspice on every shipped circuit file and a 3-membrane network.

    python benchmarks/bench_circuit_files.py [--quick] [--only NAME ...]

Issue 16, goal 3 and issue 27, goal 7: >= 20x ngspice on every circuit of ``circuits/``, on a
3-membrane series/parallel network with a capacitor under a pulse train, and on a stiff 3-membrane
network whose element values span 6 decades, batches of >= 100 variants, at 1e-3 agreement. One row
per circuit.

* Circuits: every ``circuits/*.toml`` loaded with ``circuits.load_circuit`` (graph, duration and dt
  of the file; all their membranes are mean-field, as SPICE export needs), at the file's own
  duration and dt unless ``DT_OVERRIDE_NS`` names a finer one (printed); ``3-membrane``: a pulse
  train (0.5 V, 2 ns every 10 ns from 5 ns) -> access resistor -> membrane M1 (B3N K+/Na+) in series
  with M2 (crown6 Na+/K+) || M3 (B3N K+/Rb+) || capacitor C to ground, 200 ns at dt 0.02 ns;
  ``3-membrane-stiff``: :func:`stiff_network_graph`, the same drive and step.
* Variants: variant 0 is the circuit as given; the others have every resistance and capacitance
  scaled log-uniformly within x/÷ ``JITTER`` and every source's amplitude (all the voltage or current
  values of its protocol, rest value included) scaled uniformly within 1 ± ``AMP_JITTER``. Each
  variant is its own graph; the batched ``values`` are the variants' ``compile_circuit`` values
  stacked along a leading axis (the same arrays each variant compiles to on its own).
* ionkinetics: one batched, jitted ``transient(compiled, values=..., batched=True)`` per circuit;
  best of ``repeats`` calls after a first (compile, or persistent-cache load) call; the time
  includes the copy of every trace back to numpy.
* ngspice: ``to_spice`` netlists of an evenly spaced subset of the variants (variant 0 always),
  one ``ngspice -b`` process per circuit, timed one by one (process wall time), extrapolated to all
  variants by the subset's mean. Exporting the netlists is not timed.
* Per circuit-step: time / (variants x the circuit's steps) for both.
* Agreement, on the subset: for every voltage source's current and every node voltage, max over
  the run of |ngspice - ionkinetics| (ngspice linearly interpolated to the solver's grid), divided
  by the circuit's largest source-current peak (currents) or largest node-voltage peak (voltages).
  A per-source peak would divide round-off by round-off where a source carries no net current
  (plasticity's Vpost and Vpre: two opposite membrane currents).

Benchmarks, not tests: nothing asserts a speed. Exits 1 if ngspice fails or if any agreement figure
exceeds 1e-3.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import networkx as nx
import numpy as np

from bench_circuits import AGREE_TOL, find_ngspice, spice_lines
from ionkinetics import circuits as C
from ionkinetics.circuits import compile_circuit, list_circuits, load_circuit, transient
from ionkinetics.circuits._spice import read_spice_data, to_spice
from ionkinetics.kinetics import protocols

JITTER = 1.25  # resistances and capacitances: log-uniform in [x/1.25, x*1.25]
AMP_JITTER = 0.2  # source amplitudes: uniform factor in [0.8, 1.2]
DT_OVERRIDE_NS: dict[str, float] = {}  # circuit name -> a finer dt where the file's is too coarse for 1e-3
FULL = dict(variants=200, subset=6, repeats=2)
QUICK = dict(variants=100, subset=1, repeats=1)  # the one ngspice run is variant 0
_AMPLITUDE_FIELDS = ("v", "v_rest_v", "v_base", "amplitude_v", "offset_v")  # a protocol's voltage (or pA) fields


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    graph: nx.MultiDiGraph
    duration_ns: float
    dt_ns: float
    note: str


def network_graph() -> nx.MultiDiGraph:
    """The 3-membrane series/parallel network with a capacitor under a pulse train."""
    train = protocols.pulse_train(0.5, 2.0, 10.0, 20, t_start_ns=5.0, duration_ns=200.0)
    g = nx.MultiDiGraph()
    for a, b, el in [
        ("in", "0", C.VoltageSource("Vs", train)),
        ("in", "a", C.Resistor("Ra", 5e7)),
        ("a", "b", C.Membrane("M1", "B3N:KCl@1.0+NaCl@0.5", n_pores=100)),
        ("b", "0", C.Membrane("M2", "crown6:NaCl@1.0+KCl@0.5", n_pores=100)),
        ("b", "0", C.Membrane("M3", "B3N:KCl@1.0+RbCl@0.5", n_pores=100)),
        ("b", "0", C.Capacitor("Cb", 5e-18)),
    ]:
        g.add_edge(a, b, key=el.name, element=el)
    return g


def stiff_network_graph(c_f: float = 1e-18) -> nx.MultiDiGraph:
    """The 3-membrane network made stiff: element values over 6 decades. A 100 kOhm access resistor
    feeds node a, which holds a ``c_f`` capacitor to ground (time constant R_a·C = 1e-4 ns at 1 aF,
    dt/200 at dt 0.02 ns) and a 100 GOhm leak; M1 (B3N K+/Na+) from a to b, and from b to ground
    M2 (crown6 Na+/K+) || M3 (B3N K+/Rb+) || a 10 MOhm / 100 MOhm divider to a sense node. The
    resistances span 1e5-1e11 Ohm; the modes, the capacitor's 1e-4 ns to the membranes' slowest
    relaxation (M1's 323 ns at 0 V), 6.5 decades."""
    train = protocols.pulse_train(0.5, 2.0, 10.0, 20, t_start_ns=5.0, duration_ns=200.0)
    g = nx.MultiDiGraph()
    for a, b, el in [
        ("in", "0", C.VoltageSource("Vs", train)),
        ("in", "a", C.Resistor("Ra", 1e5)),
        ("a", "0", C.Capacitor("Ca", c_f)),
        ("a", "0", C.Resistor("Rleak", 1e11)),
        ("a", "b", C.Membrane("M1", "B3N:KCl@1.0+NaCl@0.5", n_pores=100)),
        ("b", "0", C.Membrane("M2", "crown6:NaCl@1.0+KCl@0.5", n_pores=100)),
        ("b", "0", C.Membrane("M3", "B3N:KCl@1.0+RbCl@0.5", n_pores=100)),
        ("b", "s", C.Resistor("Rs", 1e7)),
        ("s", "0", C.Resistor("Rg", 1e8)),
    ]:
        g.add_edge(a, b, key=el.name, element=el)
    return g


def cases(only=None) -> list[Case]:
    out = []
    for path in list_circuits():
        cf = load_circuit(path)
        dt = DT_OVERRIDE_NS.get(cf.name, cf.dt_ns)
        note = f"dt {dt:g} ns (file: {cf.dt_ns:g} ns, too coarse for 1e-3)" if dt != cf.dt_ns else f"file's dt {dt:g} ns"
        out.append(Case(cf.name, cf.graph, cf.duration_ns, dt, note))
    out.append(Case("3-membrane", network_graph(), 200.0, 0.02, "Ra -> M1 -> (M2 || M3 || C), 0.5 V pulse train"))
    out.append(Case("3-membrane-stiff", stiff_network_graph(), 200.0, 0.02, "R 1e5-1e11 ohm, Ra*C = dt/200: modes over 6+ dec."))
    return [c for c in out if not only or c.name in only]


def _scaled(protocol, factor: float):
    fields = {f.name for f in dataclasses.fields(protocol)}
    return dataclasses.replace(protocol, **{k: factor * getattr(protocol, k) for k in _AMPLITUDE_FIELDS if k in fields})


def variant_graphs(graph: nx.MultiDiGraph, n: int, rng, amp_jitter: float = AMP_JITTER) -> list[nx.MultiDiGraph]:
    """Variant 0 is ``graph``; the rest jitter every R and C (log-uniform) and every source's amplitude
    (by ``amp_jitter``; 0: sources as given)."""
    out = [graph]
    for _ in range(n - 1):
        g = nx.MultiDiGraph()
        g.add_nodes_from(graph.nodes)
        for a, b, key, el in graph.edges(keys=True, data="element"):
            if isinstance(el, C.Resistor):
                el = dataclasses.replace(el, r_ohm=el.r_ohm * JITTER ** rng.uniform(-1, 1))
            elif isinstance(el, C.Capacitor):
                el = dataclasses.replace(el, c_f=el.c_f * JITTER ** rng.uniform(-1, 1))
            elif isinstance(el, (C.VoltageSource, C.CurrentSource)):
                el = dataclasses.replace(el, protocol=_scaled(el.protocol, rng.uniform(1 - amp_jitter, 1 + amp_jitter)))
            g.add_edge(a, b, key=key, element=el)
        out.append(g)
    return out


def stacked_values(graphs, duration_ns: float, dt_ns: float):
    """Each variant's own compiled values, stacked along a leading batch axis."""
    each = [compile_circuit(g, duration_ns, dt_ns).values for g in graphs]
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *each)


def agreement(trace, k: int, compiled, data) -> tuple[float, float]:
    """(worst source current, worst node voltage) of variant ``k`` against ngspice's ``data``, each
    relative to the circuit's largest peak of that kind."""
    topo = compiled.topology
    t = trace.t_ns
    names = topo.names_of("V")
    i_ours = [trace.i(s)[k] for s in names]
    i_peak = max(float(np.max(np.abs(i))) for i in i_ours) if names else 0.0
    di = max(
        (float(np.max(np.abs(i - np.interp(t, data["t_ns"], data["i"][s])))) for s, i in zip(names, i_ours, strict=True)),
        default=0.0,
    )
    v_ours = [trace.v(nd)[k] for nd in topo.nodes]
    v_peak = max(float(np.max(np.abs(v))) for v in v_ours)
    dv = max(
        float(np.max(np.abs(v - np.interp(t, data["t_ns"], data["v"][nd])))) for nd, v in zip(topo.nodes, v_ours, strict=True)
    )
    return (di / i_peak if i_peak > 0 else di), (dv / v_peak if v_peak > 0 else dv)


def bench_case(case: Case, cfg: dict, ngspice: str, seed: int, amp_jitter: float = AMP_JITTER) -> dict:
    n, n_sub, reps = cfg["variants"], cfg["subset"], cfg["repeats"]
    graphs = variant_graphs(case.graph, n, np.random.default_rng(seed), amp_jitter)
    compiled = compile_circuit(case.graph, case.duration_ns, case.dt_ns)
    values = stacked_values(graphs, case.duration_ns, case.dt_ns)
    n_steps = compiled.topology.n_steps
    v = compiled.values
    held = all(np.all(np.asarray(v[k]) == np.asarray(v[r])[:, None]) for k, r in (("vs", "vs_rest"), ("is_", "is_rest")))

    t0 = time.perf_counter()
    trace = transient(compiled, values=values, batched=True)
    t_first = time.perf_counter() - t0
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        trace = transient(compiled, values=values, batched=True)
        times.append(time.perf_counter() - t0)
    t_jax = min(times)

    sub = np.unique(np.linspace(0, n - 1, n_sub).round().astype(int))
    per_circuit, di, dv, pts = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bench_circuit_files_") as tmp:
        tmp = Path(tmp)
        for k in sub:
            net = to_spice(graphs[k], case.duration_ns, case.dt_ns, title=f"{case.name} variant {k}", data_file=f"c{k}.data")
            (tmp / f"c{k}.cir").write_text(net)
        for k in sub:
            t0 = time.perf_counter()
            res = subprocess.run([ngspice, "-b", f"c{k}.cir"], cwd=tmp, capture_output=True, text=True, check=False)
            per_circuit.append(time.perf_counter() - t0)
            if res.returncode != 0:
                raise RuntimeError(f"ngspice failed on {case.name} variant {k}:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
            data = read_spice_data(tmp / f"c{k}.data", graphs[k], duration_ns=case.duration_ns)
            pts.append(len(data["t_ns"]))
            a, b = agreement(trace, int(k), compiled, data)
            di.append(a)
            dv.append(b)
    t_spice = float(np.mean(per_circuit)) * n
    return dict(
        case=case, n=n, n_steps=n_steps, reps=reps, t_jax=t_jax, t_first=t_first, t_spice=t_spice,
        spice_median=float(np.median(per_circuit)), n_sub=sub.size, spice_points=int(np.median(pts)),
        di=float(np.max(di)), dv=float(np.max(dv)), worst_k=int(sub[int(np.argmax(np.maximum(di, dv)))]), held=held,
    )  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help=f"{QUICK['variants']} variants, {QUICK['subset']} ngspice runs per circuit"
    )
    ap.add_argument("--only", nargs="+", metavar="NAME", help="only these circuits (file names, 3-membrane, 3-membrane-stiff)")
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    ngspice = find_ngspice()
    if ngspice is None:
        return 1
    names = [c.name for c in cases()]
    chosen = [c for c in cases() if not args.only or c.name in args.only]
    missing = sorted(set(args.only or ()) - set(names))
    if missing:
        print(f"no circuit named {', '.join(missing)}; circuits: {', '.join(names)}", file=sys.stderr)
        return 1
    t_start = time.perf_counter()
    print(
        "ionkinetics circuits benchmark: every circuit file and a 3-membrane network, batched vs ngspice"
        + (" (--quick)" if args.quick else "")
    )
    for line in spice_lines(ngspice):
        print("  " + line)
    print(
        f"  variants    {cfg['variants']} per circuit (variant 0 as given; R and C log-uniform x/÷{JITTER:g}, source amplitudes "
        f"x U({1 - AMP_JITTER:g}, {1 + AMP_JITTER:g})); ngspice on {cfg['subset']} evenly spaced, extrapolated; "
        f"ionkinetics best of {cfg['repeats']} after a first call"
    )
    print(f"  compile     persistent cache {jax.config.jax_compilation_cache_dir or 'off'}: a first call may load, not compile")
    print()
    head = (
        f"{'circuit':<17} {'steps':>6} {'jax s':>7} {'1st s':>6} {'spice s':>8} {'jax us/cs':>10} {'spice us/cs':>12} "
        f"{'ratio':>7} {'i agree':>9} {'v agree':>9}  note"
    )
    print(head)
    print("-" * len(head))
    results, failed = [], []
    for case in chosen:
        seed = 20261130 + names.index(case.name)  # the circuit's place in the full list: --only runs the same variants
        try:
            try:
                r = bench_case(case, cfg, ngspice, seed=seed)
            except FloatingPointError as exc:  # a design near a bifurcation (the neurons' biases) may lose its
                # operating point when its sources are scaled by 1 ± AMP_JITTER: then R and C jitter only
                print(f"{case.name}: with source amplitudes jittered: {exc}; rerun with sources as given", flush=True)
                r = bench_case(case, cfg, ngspice, seed=seed, amp_jitter=0.0)
                case = dataclasses.replace(case, note=case.note + "; sources as given (jittered: no operating point)")
        except (RuntimeError, FloatingPointError) as exc:
            print(f"{case.name}: FAILED: {exc}", flush=True)
            failed.append(case.name)
            continue
        results.append(r)
        steps = r["n"] * r["n_steps"]
        ok = max(r["di"], r["dv"]) <= AGREE_TOL
        if not ok:
            failed.append(case.name)
        print(
            f"{case.name:<17} {r['n_steps']:>6} {r['t_jax']:7.2f} {r['t_first']:6.1f} {r['t_spice']:8.1f} "
            f"{r['t_jax'] / steps * 1e6:10.3f} {r['t_spice'] / steps * 1e6:12.3f} {r['t_spice'] / r['t_jax']:7.1f} "
            f"{r['di']:9.1e} {r['dv']:9.1e}  {case.note}{'; sources never change (rest held)' if r['held'] else ''}"
            f"{'' if ok else '  AGREEMENT FAILED'}",
            flush=True,
        )
    print()
    print(
        "columns: steps per circuit; jax s = one batched transient of all variants (best); 1st s = its first call; "
        "spice s = ngspice extrapolated to all variants; us/cs = microseconds per circuit-step; ratio = spice/jax; "
        "agree = max over the ngspice subset, relative to the circuit's largest source-current / node-voltage peak"
    )
    for r in results:
        print(
            f"  {r['case'].name:<17} {r['n']} variants; ngspice {r['n_sub']} run, median {r['spice_median']:.3f} s per circuit, "
            f"~{r['spice_points']} output points; worst-agreeing variant {r['worst_k']}"
        )
    print()
    print(f"load avg at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}; total wall {time.perf_counter() - t_start:.1f} s")
    if failed:
        print(f"agreement check FAILED (> {AGREE_TOL:g}) on: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
