"""The neuromorphic experiments run by ``ionkinetics circuit run FILE``: each takes a circuit
file whose ``[experiment]`` table names what to measure, solves it (batched where a sweep is
asked for: one compiled program for all variants) and writes PNG figures and a JSON summary.

Kinds (fields of ``[experiment]``):

- ``pulse`` (``probe``: the element whose current is the pulse; default the voltage source):
  peak current, full width at half maximum, charge.
- ``potentiation`` (``membrane``, ``read_delay_ns``, ``ppf_intervals_ns``): the voltage source
  is a pulse train on a low read bias (``v_base``); reports the weight w and the read
  conductance after each pulse, the retention time after the last pulse, and the paired-pulse
  facilitation ratio G(after pulse 2)/G(after pulse 1) against the interval between pulses.
- ``memristor`` (``membrane``, ``frequencies_ghz``): the voltage source is a sine; the same
  circuit is driven at each frequency (each a whole number of cycles in the run); reports the
  pinched I–V loop's lobe areas over the last cycle per frequency.
- ``retention`` (``membrane``, ``read_times_ns``): a write step on a read bias; reports the read
  conductance and w at the given times after the write, and the retention time.
- ``sweep`` (``voltages_v``, ``probes``): the voltage source held at each DC voltage (batched);
  reports the final current of every probe and the source, and the conductance I/V.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .._io import write_json_atomic
from . import _graph as G
from ._files import CircuitFile, CircuitFileError
from ._solver import compile_circuit, transient

__all__ = ["EXPERIMENTS", "run_experiment"]


def _source(cf: CircuitFile):
    sources = [el for _, _, el in G.elements(cf.graph) if isinstance(el, G.VoltageSource)]
    if len(sources) != 1:
        raise CircuitFileError(f"{cf.name}: this experiment needs exactly one voltage source; found {[s.name for s in sources]}")
    return sources[0]


def _membrane(cf: CircuitFile, exp: dict) -> str:
    names = [el.name for _, _, el in G.elements(cf.graph) if isinstance(el, G.Membrane)]
    name = exp.get("membrane", names[0] if len(names) == 1 else None)
    if name not in names:
        raise CircuitFileError(f"{cf.name}: experiment.membrane must name one of the membranes {names}; got {name!r}")
    return name


def _batched(cc, vs_rows):
    """``cc.values`` repeated for each row of source values (B, n_sources, T)."""
    b = len(vs_rows)
    vals = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(jnp.asarray(x), (b, *np.shape(x))), cc.values)
    vals["vs"] = jnp.asarray(np.stack(vs_rows))
    return vals


def _read_conductance_ps(tr, membrane):
    v = tr.vb(membrane)
    return np.where(np.abs(v) > 1e-12, tr.i(membrane) / np.where(np.abs(v) > 1e-12, v, 1.0), np.nan)


def _integral_time_ns(t, y, y_inf):
    """∫(y − y∞)dt / (y(0) − y∞): the mean relaxation time of a decay sampled at t."""
    d = y - y_inf
    if abs(d[0]) < 1e-12:
        return float("nan")
    return float(np.trapezoid(d, t) / d[0])


def _figure(nrows=1, ncols=1, **kw):
    """A matplotlib Figure without pyplot's global state, so experiments may run in threads."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=kw.pop("figsize", (6, 4)))
    return fig, fig.subplots(nrows, ncols, **kw)


def _stacked(tr, panels, title, path):
    fig, axes = _figure(len(panels), 1, sharex=True, figsize=(7, 1.9 * len(panels)))
    for ax, (label, series) in zip(np.atleast_1d(axes), panels, strict=True):
        for name, y in series:
            ax.plot(tr.t_ns, y, lw=1.2, label=name)
        ax.set_ylabel(label)
        if len(series) > 1:
            ax.legend(fontsize=7, loc="best")
    np.atleast_1d(axes)[-1].set_xlabel("t (ns)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# ----------------------------------------------------------------------------------------------


def _pulse(cf, cc, exp, out):
    src = _source(cf)
    probe = exp.get("probe", src.name)
    tr = transient(cc)
    i = tr.i(probe) * (-1.0 if probe == src.name else 1.0)
    t = tr.t_ns
    k = int(np.argmax(np.abs(i)))
    peak = float(i[k])
    half = np.abs(i) >= 0.5 * abs(peak)
    lo = k
    while lo > 0 and half[lo - 1]:
        lo -= 1
    hi = k
    while hi < len(t) - 1 and half[hi + 1]:
        hi += 1
    membranes = [el.name for _, _, el in G.elements(cf.graph) if isinstance(el, G.Membrane)]
    _stacked(
        tr,
        [("I (pA)", [(probe, i)]), ("w", [(m, tr.w(m)) for m in membranes]), ("V (V)", [(src.name, tr.vb(src.name))])],
        f"{cf.name}: current pulse through {probe}",
        out / "pulse.png",
    )
    return {
        "probe": probe,
        "peak_current_pa": peak,
        "t_peak_ns": float(t[k]),
        "fwhm_ns": float(t[hi] - t[lo]),
        "charge_fc": float(np.trapezoid(i, t) * 1e-3),  # pA·ns = 1e-3 fC
        "figures": ["pulse.png"],
    }


def _pulse_train_of(src):
    from ..kinetics.protocols import PulseTrain

    if not isinstance(src.protocol, PulseTrain):
        raise CircuitFileError(f"element {src.name!r}: a potentiation experiment needs a pulse_train protocol")
    return src.protocol


def _potentiation(cf, cc, exp, out):
    src = _source(cf)
    m = _membrane(cf, exp)
    pt = _pulse_train_of(src)
    read_delay = float(exp.get("read_delay_ns", 1.0))
    tr = transient(cc)
    t = tr.t_ns
    g_read = _read_conductance_ps(tr, m)
    w = tr.w(m)
    ends = pt.pulse_onsets_ns() + pt.width_ns + read_delay
    idx = np.searchsorted(t, ends - 1e-9)
    w_after = w[idx]
    g_after = g_read[idx]
    last = idx[-1]
    w_rest = float(w[0])
    tau_ret = _integral_time_ns(t[last:] - t[last], w[last:], w_rest)
    # paired-pulse facilitation: the same circuit with two pulses at each interval, one batch
    intervals = [float(x) for x in exp.get("ppf_intervals_ns", [2.0, 5.0, 10.0, 20.0, 50.0])]
    dt = cc.topology.dt_ns
    t_mid = (np.arange(cc.topology.n_steps) + 0.5) * dt
    rows, reads = [], []
    j_src = cc.topology.names_of("V").index(src.name)
    for gap in intervals:
        on2 = pt.t_start_ns + pt.width_ns + gap
        if on2 + pt.width_ns + read_delay >= cf.duration_ns:
            raise CircuitFileError(f"{cf.name}: ppf interval {gap:g} ns does not fit in duration_ns={cf.duration_ns:g}")
        v = np.full(cc.topology.n_steps, pt.v_base)
        for on in (pt.t_start_ns, on2):
            v[(t_mid > on) & (t_mid < on + pt.width_ns)] = pt.amplitude_v
        row = np.array(cc.values["vs"], copy=True)
        row[j_src] = v
        rows.append(row)
        reads.append((pt.t_start_ns + pt.width_ns + read_delay, on2 + pt.width_ns + read_delay))
    pairs = transient(cc, values=_batched(cc, rows), batched=True)
    ppf = []
    g_pairs = _read_conductance_ps(pairs, m)
    for b, (r1, r2) in enumerate(reads):
        i1, i2 = np.searchsorted(pairs.t_ns, [r1 - 1e-9, r2 - 1e-9])
        ppf.append(float(g_pairs[b, i2] / g_pairs[b, i1]))
    fig, axes = _figure(3, 1, figsize=(7, 6.5))
    axes[0].plot(t, tr.vb(src.name), lw=1)
    axes[0].set_ylabel("V (V)")
    axes[1].plot(t, w, lw=1.2, label="w")
    axes[1].plot(t[idx], w_after, "o", ms=4, label="read after each pulse")
    axes[1].set_ylabel("w")
    axes[1].set_xlabel("t (ns)")
    axes[1].legend(fontsize=7)
    axes[2].semilogx(intervals, ppf, "o-")
    axes[2].axhline(1.0, color="grey", lw=0.8)
    axes[2].set_xlabel("interval between pulses (ns)")
    axes[2].set_ylabel("PPF = G2/G1")
    fig.suptitle(f"{cf.name}: potentiation of {m}, retention τ = {tau_ret:.3g} ns", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "potentiation.png", dpi=120)
    return {
        "membrane": m,
        "w_rest": w_rest,
        "w_after_each_pulse": w_after.tolist(),
        "read_conductance_after_each_pulse_ps": g_after.tolist(),
        "read_bias_v": pt.v_base,
        "retention_tau_ns": tau_ret,
        "ppf_intervals_ns": intervals,
        "ppf_ratio": ppf,
        "figures": ["potentiation.png"],
    }


def _memristor(cf, cc, exp, out):
    from ..kinetics.protocols import Sine

    src = _source(cf)
    m = _membrane(cf, exp)
    if not isinstance(src.protocol, Sine):
        raise CircuitFileError(f"element {src.name!r}: a memristor experiment needs a sine protocol")
    sine = src.protocol
    freqs = [float(f) for f in exp.get("frequencies_ghz", [sine.frequency_ghz])]
    dt, n = cc.topology.dt_ns, cc.topology.n_steps
    t_mid = (np.arange(n) + 0.5) * dt
    j_src = cc.topology.names_of("V").index(src.name)
    rows = []
    for f in freqs:
        cycles = f * cf.duration_ns
        if abs(cycles - round(cycles)) > 1e-6 or round(cycles) < 2:
            raise CircuitFileError(
                f"{cf.name}: frequency {f:g} GHz must give a whole number (>= 2) of cycles in {cf.duration_ns:g} ns"
            )
        row = np.array(cc.values["vs"], copy=True)
        row[j_src] = sine.offset_v + sine.amplitude_v * np.sin(2 * np.pi * f * t_mid + sine.phase_rad)
        rows.append(row)
    tr = transient(cc, values=_batched(cc, rows), batched=True)
    v_all, i_all = tr.vb(m), tr.i(m)
    fig, ax = _figure(figsize=(5.5, 4.5))
    areas, pinch = [], []
    for b, f in enumerate(freqs):
        period = 1.0 / f
        sel = tr.t_ns >= cf.duration_ns - period - 1e-9
        v, i = v_all[b, sel], i_all[b, sel]
        pos, neg = v >= 0, v <= 0
        lobe = []
        for mask in (pos, neg):
            vv, ii = v[mask], i[mask]
            lobe.append(float(abs(0.5 * np.sum((vv[1:] - vv[:-1]) * (ii[1:] + ii[:-1])))) if vv.size > 1 else 0.0)
        areas.append(lobe)
        cross = np.nonzero(np.sign(v[:-1]) * np.sign(v[1:]) < 0)[0]  # current where V crosses 0, interpolated
        i0 = [i[c] + (i[c + 1] - i[c]) * (-v[c]) / (v[c + 1] - v[c]) for c in cross]
        pinch.append(float(np.max(np.abs(i0)) / np.abs(i).max()) if i0 else float("nan"))
        ax.plot(v, i, lw=1.1, label=f"{f:g} GHz")
    ax.set_xlabel(f"V across {m} (V)")
    ax.set_ylabel("I (pA)")
    ax.legend(fontsize=7)
    ax.set_title(f"{cf.name}: pinched hysteresis (last cycle)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "memristor_iv.png", dpi=120)
    total = [a + b for a, b in areas]
    return {
        "membrane": m,
        "frequencies_ghz": freqs,
        "lobe_areas_pa_v": areas,
        "loop_area_pa_v": total,
        "area_shrinks_with_frequency": bool(all(x > y for x, y in itertools.pairwise(total))),
        "pinch_current_fraction_near_0v": pinch,
        "figures": ["memristor_iv.png"],
    }


def _retention(cf, cc, exp, out):
    from ..kinetics.protocols import Step

    src = _source(cf)
    m = _membrane(cf, exp)
    if not isinstance(src.protocol, Step) or src.protocol.t_off_ns is None:
        raise CircuitFileError(f"element {src.name!r}: a retention experiment needs a step protocol (the write) with t_off_ns")
    step = src.protocol
    tr = transient(cc)
    t, w, g = tr.t_ns, tr.w(m), _read_conductance_ps(tr, m)
    k_off = int(np.searchsorted(t, step.t_off_ns))
    after = [float(x) for x in exp.get("read_times_ns", [1.0, 10.0, 50.0, 100.0])]
    idx = np.searchsorted(t, step.t_off_ns + np.array(after) - 1e-9)
    if idx.max() >= len(t):
        raise CircuitFileError(f"{cf.name}: read_times_ns go past the end of the run")
    tau = _integral_time_ns(t[k_off:] - t[k_off], w[k_off:], float(w[0]))
    _stacked(
        tr,
        [("G read (pS)", [(m, g)]), ("w", [(m, w)]), ("V (V)", [(src.name, tr.vb(src.name))])],
        f"{cf.name}: write, wait, read ({m}); retention τ = {tau:.3g} ns",
        out / "retention.png",
    )
    return {
        "membrane": m,
        "read_bias_v": step.v_base,
        "read_times_after_write_ns": after,
        "w_read": w[idx].tolist(),
        "read_conductance_ps": g[idx].tolist(),
        "w_before_write": float(w[0]),
        "retention_tau_ns": tau,
        "figures": ["retention.png"],
    }


def _sweep(cf, cc, exp, out):
    src = _source(cf)
    volts = [float(v) for v in exp.get("voltages_v", np.linspace(0.05, 0.6, 12).tolist())]
    probes = list(exp.get("probes", [el.name for _, _, el in G.elements(cf.graph) if isinstance(el, G.Membrane)]))
    j_src = cc.topology.names_of("V").index(src.name)
    rows = []
    for v in volts:
        row = np.array(cc.values["vs"], copy=True)
        row[j_src] = v
        rows.append(row)
    tr = transient(cc, values=_batched(cc, rows), batched=True)
    i_src = -tr.i(src.name)[:, -1]
    currents = {p: tr.i(p)[:, -1].tolist() for p in probes}
    g_total = (i_src / np.array(volts)).tolist()
    fig, axes = _figure(2, 1, figsize=(6, 6), sharex=True)
    axes[0].plot(volts, i_src, "k-o", ms=3, label=f"source {src.name}")
    for p in probes:
        axes[0].plot(volts, currents[p], "--", label=p)
    axes[0].set_ylabel("I after the run (pA)")
    axes[0].legend(fontsize=7)
    axes[1].semilogy(volts, np.abs(g_total), "k-o", ms=3)
    axes[1].set_ylabel("G = I/V (pS)")
    axes[1].set_xlabel("source voltage (V)")
    fig.suptitle(f"{cf.name}: DC sweep ({cf.duration_ns:g} ns at each voltage)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "sweep.png", dpi=120)
    kk = int(np.argmax(g_total))
    band = [v for v, g in zip(volts, g_total, strict=True) if g >= 0.5 * g_total[kk]]
    return {
        "voltages_v": volts,
        "source_current_pa": i_src.tolist(),
        "probe_current_pa": currents,
        "conductance_ps": g_total,
        "peak_conductance_v": volts[kk],
        "half_max_band_v": [min(band), max(band)],
        "kcl_max_mismatch_pa": float(np.abs(i_src - sum(np.array(c) for c in currents.values())).max())
        if exp.get("probes_in_parallel", False)
        else None,
        "figures": ["sweep.png"],
    }


EXPERIMENTS = {"pulse": _pulse, "potentiation": _potentiation, "memristor": _memristor, "retention": _retention, "sweep": _sweep}


def run_experiment(cf: CircuitFile, out_dir) -> dict:
    """Solve the circuit file's experiment and write its figures and ``<name>.json`` into ``out_dir``."""
    exp = dict(cf.experiment)
    kind = exp.pop("kind", None)
    if kind not in EXPERIMENTS:
        raise CircuitFileError(f"{cf.name}: experiment.kind must be one of {sorted(EXPERIMENTS)}; got {kind!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cc = compile_circuit(cf.graph, cf.duration_ns, cf.dt_ns)
    result = EXPERIMENTS[kind](cf, cc, exp, out)
    summary = {"circuit": cf.name, "file": cf.path, "description": cf.description, "experiment": kind, **result}
    write_json_atomic(out / "summary.json", json.loads(json.dumps(summary, default=float)))
    return summary
