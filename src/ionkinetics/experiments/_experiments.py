"""The neuromorphic experiments run by ``ionkinetics circuit run FILE``: each takes a circuit
file whose ``[experiment]`` table names what to measure, solves it (batched where a sweep is
asked for: one compiled program for all variants) and writes its figures (png, pdf or svg:
:func:`ionkinetics._io.figure_output`), a CSV of every trace it draws (units in every column
name; listed under ``data`` in the summary) and a JSON summary.
Every summary carries a ``finding``: one sentence computed from the traces (what they show,
including when they do not show what the file's comment expects), and the energy of every
element (see *Energies* below).

Kinds (fields of ``[experiment]``):

- no ``[experiment]`` table: a plain transient. Writes ``transient.csv`` (time, every node
  voltage, every element current, every membrane's open fraction and every element's energy,
  units in the headers),
  ``transient.png`` and the energies.
- ``pulse`` (``probe``: the element whose current is the pulse; default the voltage source):
  peak current, full width at half maximum, charge, and how far the current falls from its peak
  before the drive changes again.
- ``potentiation`` (``membrane``, ``read_delay_ns``, ``ppf_intervals_ns``): the voltage source
  is a pulse train on a low read bias (``v_base``); reports the weight w and the read
  conductance after each pulse, the retention time after the last pulse, and the paired-pulse
  facilitation ratio G(after pulse 2)/G(after pulse 1) against the interval between pulses.
- ``memristor`` (``membrane``, ``frequencies_ghz``): the voltage source is a sine; the same
  circuit is driven at each frequency (each a whole number of cycles in the run); reports the
  pinched I–V loop's lobe areas over the last cycle per frequency.
- ``retention`` (``membrane``, ``read_times_ns``): a write step on a read bias; reports the read
  conductance and w at the given times after the write, and the retention time.
- ``neuron`` and ``plasticity``: the ionic neuron and the bias-steered synapse (fields and
  measurements in ``_neuron.py`` and ``_plasticity.py``; ``circuits/neuron.toml``,
  ``circuits/plasticity.toml``). ``network``: input neurons, an output neuron and plastic synapses that
  learn a spike pattern by STDP from the neurons' own spikes (``_network.py``, ``circuits/network.toml``).
  ``neuron-design``: the neuron's gradient design search, bifurcation
  scan and stochastic jitter, apart (``circuits/design/neuron-design.toml``: minutes, not seconds).
- ``sweep`` (``voltages_v``, ``probes``): the voltage source held at each DC voltage (batched);
  reports the final current of every probe and the source, the conductance I/V, where it peaks,
  and its half-maximum edges on each side (``null`` where G does not fall to half its maximum
  inside the sweep: then it is no band-pass on that side).

Energies (``energies_aj`` in every summary; aJ, cumulative over the run from t = 0): each
element's **absorbed** energy ``∫ v·i dt`` with v the voltage from its first node to its second
and i the current through it in that direction (passive sign convention). So:

- a **source** (``voltage_source``, ``current_source``) absorbs a negative energy when it
  **delivers** energy to the circuit: ``delivered_aj = −absorbed``;
- a **resistor** or a **membrane** absorbs a positive energy and **dissipates** it (a membrane's
  ionic current is dissipation in the electrolyte and pore; its gating charge's work is
  dissipated too, the occupancy stores no electrical energy);
- a **capacitor**'s absorbed energy is **stored**: ``½C(v(t)² − v(0)²)``, negative when it
  discharges.

Tellegen's theorem makes the absorbed energies sum to zero at every step, so delivered =
dissipated + stored (``balance_aj`` is the round-off). Batched experiments (sweep, memristor)
report one value per variant.
"""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .. import circuits as C
from .._io import PALETTE, figure_output, write_columns_csv, write_json_atomic
from ..circuits import (
    CircuitFile,
    CircuitFileError,
    compile_circuit,
    figure,
    save_figure_atomic,
    source_batch,
    trace_columns,
    trace_figure,
    transient,
)
from ._network import run_network
from ._neuron import run_neuron, run_neuron_design
from ._plasticity import run_plasticity

__all__ = [
    "ENERGY_SIGN_CONVENTION",
    "EXPERIMENTS",
    "describe_pulse_train_response",
    "rises_with_every_pulse",
    "run_experiment",
]


def _source(cf: CircuitFile):
    sources = [el for _, _, el in C.elements(cf.graph) if isinstance(el, C.VoltageSource)]
    if len(sources) != 1:
        raise CircuitFileError(f"{cf.name}: this experiment needs exactly one voltage source; found {[s.name for s in sources]}")
    return sources[0]


def _membrane(cf: CircuitFile, exp: dict) -> str:
    names = [el.name for _, _, el in C.elements(cf.graph) if isinstance(el, C.Membrane)]
    name = exp.get("membrane", names[0] if len(names) == 1 else None)
    if name not in names:
        raise CircuitFileError(f"{cf.name}: experiment.membrane must name one of the membranes {names}; got {name!r}")
    return name


def _read_conductance_ps(tr, membrane):
    v = tr.vb(membrane)
    return np.where(np.abs(v) > 1e-12, tr.i(membrane) / np.where(np.abs(v) > 1e-12, v, 1.0), np.nan)


def _integral_time_ns(t, y, y_inf):
    """∫(y − y∞)dt / (y(0) − y∞): the mean relaxation time of a decay sampled at t."""
    d = y - y_inf
    if abs(d[0]) < 1e-12:
        return float("nan")
    return float(np.trapezoid(d, t) / d[0])


_figure = figure


def _stacked(tr, panels, title, path) -> str:
    return save_figure_atomic(trace_figure(tr.t_ns, panels, title), path).name


def _write_csv(out, name, columns) -> str:
    return write_columns_csv(out / name, columns).name


_ROLE = {C.VoltageSource: "delivered", C.CurrentSource: "delivered", C.Resistor: "dissipated", C.Membrane: "dissipated"}
ENERGY_SIGN_CONVENTION = (
    "absorbed_aj = ∫ v·i dt per element (v from its first node to its second, i through it in that direction; "
    "cumulative from t = 0). Sources: delivered_aj = −absorbed_aj (positive when the source powers the circuit). "
    "Resistors and membranes: absorbed = dissipated (≥ 0). Capacitors: absorbed = stored (½C·Δv², negative when "
    "discharging). Delivered = dissipated + stored; balance_aj is the round-off."
)


def _energies(cf: CircuitFile, tr) -> dict:
    """Every element's energy over the run (the last saved point), by the sign convention above;
    one value per variant for a batched trace."""

    def value(x):
        x = np.asarray(x)
        return float(x) if x.ndim == 0 else x.tolist()

    elements, totals = {}, {"delivered": 0.0, "dissipated": 0.0, "stored": 0.0}
    for _, _, el in C.elements(cf.graph):
        absorbed = tr.energy(el.name)[..., -1]
        role = _ROLE.get(type(el), "stored")
        amount = -absorbed if role == "delivered" else absorbed
        totals[role] = totals[role] + amount
        elements[el.name] = {"kind": type(el).__name__, "role": role, "absorbed_aj": value(absorbed), f"{role}_aj": value(amount)}
    return {
        "sign_convention": ENERGY_SIGN_CONVENTION,
        "elements": elements,
        "delivered_by_sources_aj": value(totals["delivered"]),
        "dissipated_aj": value(totals["dissipated"]),
        "stored_in_capacitors_aj": value(totals["stored"]),
        "balance_aj": value(totals["delivered"] - totals["dissipated"] - totals["stored"]),
    }


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
    v_src = tr.vb(src.name)
    changes = np.nonzero(np.abs(np.diff(v_src[k:])) > 1e-12)[0]
    k_end = k + int(changes[0]) if changes.size else len(t) - 1  # the last point before the drive changes again
    fall = float(i[k_end] / peak) if peak != 0 else float("nan")
    pulse = bool(peak != 0 and abs(fall) < 0.5)
    if pulse:
        finding = (
            f"a current pulse through {probe}: it peaks at {peak:.4g} pA at t = {t[k]:.3g} ns and falls to "
            f"{100 * fall:.0f} % of the peak by t = {t[k_end]:.3g} ns, while the drive is still held; FWHM {t[hi] - t[lo]:.3g} ns"
        )
    else:
        finding = (
            f"no pulse: the current through {probe} peaks at {peak:.4g} pA at t = {t[k]:.3g} ns but is still "
            f"{100 * fall:.0f} % of the peak when the drive changes at t = {t[k_end]:.3g} ns"
        )
    membranes = [el.name for _, _, el in C.elements(cf.graph) if isinstance(el, C.Membrane)]
    fig_name = _stacked(
        tr,
        [
            (f"I through {probe} (pA)", [(probe, i)]),
            ("w (open fraction)", [(m, tr.w(m)) for m in membranes]),
            ("V (V)", [(src.name, v_src)]),
        ],
        f"{cf.name}: " + ("current pulse" if pulse else "no pulse") + f" through {probe}: peak {peak:.3g} pA, "
        f"falls to {100 * fall:.0f} % under the held drive",
        out / "pulse.png",
    )
    return {
        "finding": finding,
        "is_pulse": pulse,
        "probe": probe,
        "peak_current_pa": peak,
        "t_peak_ns": float(t[k]),
        "fwhm_ns": float(t[hi] - t[lo]),
        "current_before_drive_changes_pa": float(i[k_end]),
        "w_at_start": {m: float(tr.w(m)[0]) for m in membranes},
        "w_before_drive_changes": {m: float(tr.w(m)[k_end]) for m in membranes},
        "fraction_of_peak_before_drive_changes": fall,
        "charge_fc": float(np.trapezoid(i, t) * 1e-3),  # pA·ns = 1e-3 fC
        "energies_aj": _energies(cf, tr),
        "figures": [fig_name],
        "data": [_write_csv(out, "pulse.csv", trace_columns(tr))],
    }


def rises_with_every_pulse(w_after) -> bool:
    """True when every pulse leaves w higher than the one before (by more than 0.1 % of the
    train's rise) and the train raises it by at least 10 % of the first read."""
    w = np.asarray(w_after, dtype=float)
    rise = w[-1] - w[0] if w.size > 1 else 0.0
    return bool(w.size > 1 and rise >= 0.1 * abs(w[0]) and rise > 0 and np.all(np.diff(w) > 1e-3 * rise))


def describe_pulse_train_response(w_after, w_before=None) -> str:
    """What the open fraction read after each pulse of a train shows, in words.

    ``w_after``: w just after each pulse; ``w_before``: w just before each pulse (optional; the
    first is the rest level). "rises pulse by pulse" only when every pulse leaves w higher
    (:func:`rises_with_every_pulse`) and the rise does not come mostly from the first half of the
    train; otherwise it says where the rise stops, or that there is none. With ``w_before`` it
    adds how far w falls back toward rest between pulses when it loses more than half of it."""
    w = np.asarray(w_after, dtype=float)
    n = w.size
    rise = w[-1] - w[0] if n > 1 else 0.0
    n90 = 1 + int(np.argmax(w - w[0] >= 0.9 * rise)) if rise > 0 else n  # pulse by which 90 % of the rise is in
    if rises_with_every_pulse(w):
        if n90 <= n // 2:
            head = (
                f"w rises with every pulse but saturates: 90 % of its rise ({w[0]:.2f} → {w[-1]:.2f}) comes by pulse {n90} of {n}"
            )
        else:
            head = f"w rises pulse by pulse ({w[0]:.2f} → {w[-1]:.2f}): potentiation"
    elif n > 1 and rise >= 0.1 * abs(w[0]) and np.all(np.diff(w) > -1e-3 * rise):
        head = f"w rises over the first {n90} pulses ({w[0]:.2f} → {w[-1]:.2f}), then stays there"
    elif n > 1 and abs(rise) < 0.1 * abs(w[0]):
        head = f"w reaches the same level ({w.mean():.2f} ± {w.std():.2f}) at every pulse: no accumulation"
    else:
        head = "w does not rise pulse by pulse: " + ", ".join(f"{x:.2f}" for x in w)
    if w_before is not None and n > 1:
        rest, troughs = float(w_before[0]), np.asarray(w_before, dtype=float)[1:]
        lost = (w[:-1] - troughs) / np.maximum(np.abs(w[:-1] - rest), 1e-12)
        if np.median(lost) > 0.5:
            head += (
                f"; between pulses w falls back {100 * np.median(lost):.0f} % of the way to rest ({rest:.2g}), "
                f"to {troughs.min():.2g}–{troughs.max():.2g}"
            )
    return head


def _describe_ppf(intervals, ppf) -> str:
    ppf = np.asarray(ppf)
    fmt = ", ".join(f"{g:g} ns: {r:.2f}" for g, r in zip(intervals, ppf, strict=True))
    if np.all(ppf > 1) and np.all(np.diff(ppf) < 0):
        return f"paired-pulse facilitation (G2/G1 > 1) that fades as the interval grows: {fmt}"
    if np.all(ppf > 1):
        return f"paired-pulse facilitation (G2/G1 > 1 at every interval), not monotonic in the interval: {fmt}"
    return f"no paired-pulse facilitation at every interval: {fmt}"


def _pulse_train_of(src):
    from ..kinetics.protocols import PulseTrain

    if not isinstance(src.protocol, PulseTrain):
        raise CircuitFileError(f"element {src.name!r}: a potentiation experiment needs a pulse_train protocol")
    return src.protocol


def _paired_pulse_facilitation(cf, cc, exp, src, pt, m, read_delay):
    """Paired-pulse facilitation: the same circuit with two pulses at each of ``ppf_intervals_ns``, one
    batch; G read after the second pulse over G read after the first. Returns (intervals, ratios)."""
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
    pairs = transient(cc, values=source_batch(cc, rows), batched=True)
    ppf = []
    g_pairs = _read_conductance_ps(pairs, m)
    for b, (r1, r2) in enumerate(reads):
        i1, i2 = np.searchsorted(pairs.t_ns, [r1 - 1e-9, r2 - 1e-9])
        ppf.append(float(g_pairs[b, i2] / g_pairs[b, i1]))
    return intervals, ppf


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
    intervals, ppf = _paired_pulse_facilitation(cf, cc, exp, src, pt, m, read_delay)
    fig, axes = _figure(3, 1, figsize=(7, 6.5))
    axes[0].plot(t, tr.vb(src.name), lw=1, color="k")
    axes[0].set_ylabel("V (V)")
    axes[0].set_xlabel("t (ns)")
    axes[1].plot(t, w, lw=1.2, label="w")
    axes[1].plot(t[idx], w_after, "o", ms=4, label="read after each pulse")
    axes[1].set_ylabel(f"w of {m} (open fraction)")
    axes[1].set_xlabel("t (ns)")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    axes[2].semilogx(intervals, ppf, "o-")
    axes[2].axhline(1.0, color="0.5", lw=0.8)
    axes[2].set_xlabel("interval between pulses (ns)")
    axes[2].set_ylabel("PPF = G2/G1")
    starts = np.searchsorted(t, pt.pulse_onsets_ns() - 1e-9)
    trend = describe_pulse_train_response(w_after, w[np.maximum(starts - 1, 0)])
    fig.suptitle(f"{cf.name}, {m}: {trend.split(': ')[0]}; after the train τ = {tau_ret:.3g} ns", fontsize=9)
    fig.tight_layout()
    fig_name = save_figure_atomic(fig, out / "potentiation.png").name
    data = [
        _write_csv(out, "potentiation.csv", trace_columns(tr)),
        _write_csv(
            out,
            "potentiation_reads.csv",
            {"pulse_count": np.arange(1, idx.size + 1), "t_read_ns": t[idx], "w_read_fraction": w_after, "G_read_pS": g_after},
        ),
        _write_csv(out, "potentiation_ppf.csv", {"interval_ns": intervals, "ppf_ratio": ppf}),
    ]
    return {
        "finding": f"{trend}; then w relaxes (retention τ {tau_ret:.3g} ns); {_describe_ppf(intervals, ppf)}",
        "rises_with_every_pulse": rises_with_every_pulse(w_after),
        "energies_aj": _energies(cf, tr),
        "membrane": m,
        "w_rest": w_rest,
        "w_after_each_pulse": w_after.tolist(),
        "read_conductance_after_each_pulse_ps": g_after.tolist(),
        "read_bias_v": pt.v_base,
        "retention_tau_ns": tau_ret,
        "ppf_intervals_ns": intervals,
        "ppf_ratio": ppf,
        "figures": [fig_name],
        "data": data,
    }


def _sine_rows(cf, cc, src, sine, freqs) -> list:
    """One row of source values per frequency: the source's sine at that frequency, each a whole number
    (>= 2) of cycles in the run."""
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
    return rows


def _at_zero_crossings(v, i) -> float:
    """The largest |current| where V crosses 0 (interpolated), over the peak |current|; nan without a crossing."""
    cross = np.nonzero(np.sign(v[:-1]) * np.sign(v[1:]) < 0)[0]  # current where V crosses 0, interpolated
    i0 = [i[c] + (i[c + 1] - i[c]) * (-v[c]) / (v[c + 1] - v[c]) for c in cross]
    return float(np.max(np.abs(i0)) / np.abs(i).max()) if i0 else float("nan")


def _memristor(cf, cc, exp, out):
    from ..kinetics.protocols import Sine

    src = _source(cf)
    m = _membrane(cf, exp)
    if not isinstance(src.protocol, Sine):
        raise CircuitFileError(f"element {src.name!r}: a memristor experiment needs a sine protocol")
    sine = src.protocol
    freqs = [float(f) for f in exp.get("frequencies_ghz", [sine.frequency_ghz])]
    tr = transient(cc, values=source_batch(cc, _sine_rows(cf, cc, src, sine, freqs)), batched=True)
    v_all, i_all = tr.vb(m), tr.i(m)
    i_ionic_all = _carrier_current_pa(cc, tr, m)
    fig, (ax, ax_c) = _figure(1, 2, figsize=(10, 4.5))
    areas, pinch, pinch_ionic = [], [], []

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
        pinch.append(_at_zero_crossings(v, i))
        pinch_ionic.append(_at_zero_crossings(v, i_ionic_all[b, sel]))
        ax.plot(v, i, lw=1.1, label=f"{f:g} GHz")
        ax_c.plot(v, i_ionic_all[b, sel], lw=1.1, label=f"{f:g} GHz")
    ax.set_xlabel(f"V across {m} (V)")
    ax.set_ylabel("I (pA): carrier + dopant gating current")
    ax.set_title("total current", fontsize=9)
    ax_c.set_xlabel(f"V across {m} (V)")
    ax_c.set_ylabel("I carrier (pA) = N·G_open(V)·w·V")
    ax_c.set_title("carrier current alone: pinched at 0 V", fontsize=9)
    for a in (ax, ax_c):
        a.axhline(0.0, color="0.6", lw=0.6)
        a.axvline(0.0, color="0.6", lw=0.6)
    ax_c.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title="drive")
    total = [a + b for a, b in areas]
    shrinks = bool(all(x > y for x, y in itertools.pairwise(total)))
    pinched = bool(np.nanmax(pinch) < 1e-3)
    if pinched:
        loop = "an I–V loop pinched at 0 V"
    else:
        loop = (
            f"an I–V loop open at 0 V (up to {100 * np.nanmax(pinch):.1f} % of the peak current flows at 0 V: the "
            f"dopant's gating current; the carrier current alone is pinched to {np.nanmax(pinch_ionic):.1e})"
        )
    loop += ", its area shrinking as the frequency rises" if shrinks else ", its area not shrinking monotonically with frequency"
    fig.suptitle(f"{cf.name}: {loop.split(' (')[0]} (last cycle)", fontsize=9)
    fig.tight_layout()
    fig_name = save_figure_atomic(fig, out / "memristor_iv.png").name
    columns = {"t_ns": tr.t_ns}
    for b, f in enumerate(freqs):
        tag = f"[{f:g} GHz]"
        columns[f"V({m}){tag}_V"] = v_all[b]
        columns[f"I({m}){tag}_pA"] = i_all[b]
        columns[f"I_carrier({m}){tag}_pA"] = i_ionic_all[b]
        columns[f"w({m}){tag}_fraction"] = tr.w(m)[b]
    return {
        "finding": f"{loop}: " + ", ".join(f"{f:g} GHz: {a:.3g} pA·V" for f, a in zip(freqs, total, strict=True)),
        "energies_aj": _energies(cf, tr),
        "membrane": m,
        "frequencies_ghz": freqs,
        "lobe_areas_pa_v": areas,
        "loop_area_pa_v": total,
        "area_shrinks_with_frequency": shrinks,
        "pinch_current_fraction_near_0v": pinch,
        "carrier_pinch_current_fraction_near_0v": pinch_ionic,
        "figures": [fig_name],
        "data": [_write_csv(out, "memristor_iv.csv", columns)],
    }


def _carrier_current_pa(cc, tr, m):
    """The carrier (ionic) part of membrane ``m``'s current, pA: ``N·G_open(V)·(p·weights)·V``,
    without the dopant's gating current."""
    from ..kinetics import open_conductance_ps, state_weights

    j = cc.topology.names_of("M").index(m)
    params = cc.values["mem"][j]
    v = tr.vb(m)
    g_open = np.asarray(open_conductance_ps(params.open, jnp.asarray(v)))
    return cc.topology.n_pores[j] * g_open * (tr.occupancy[m] @ np.asarray(state_weights(params))) * v


def _retention(cf, cc, exp, out):
    from ..kinetics.protocols import Step

    src = _source(cf)
    m = _membrane(cf, exp)
    step = src.protocol
    if not isinstance(step, Step) or step.t_off_ns is None:
        raise CircuitFileError(f"element {src.name!r}: a retention experiment needs a step protocol (the write) with t_off_ns")
    tr = transient(cc)
    t, w, g = tr.t_ns, tr.w(m), _read_conductance_ps(tr, m)
    k_off = int(np.searchsorted(t, step.t_off_ns))
    after = [float(x) for x in exp.get("read_times_ns", [1.0, 10.0, 50.0, 100.0])]
    idx = np.searchsorted(t, step.t_off_ns + np.array(after) - 1e-9)
    if idx.max() >= len(t):
        raise CircuitFileError(f"{cf.name}: read_times_ns go past the end of the run")
    tau = _integral_time_ns(t[k_off:] - t[k_off], w[k_off:], float(w[0]))
    w_read = w[idx]
    reads = ", ".join(f"{x:.2f} at +{a:g} ns" for x, a in zip(w_read, after, strict=True))
    if w_read[0] > w[0] and np.all(np.diff(w_read) <= 0):
        finding = f"the write raises w from {w[0]:.2f} and the reads decay toward rest: {reads}; retention τ {tau:.3g} ns"
    else:
        finding = f"the reads do not show a written state decaying to rest (w before the write {w[0]:.2f}): {reads}"
    fig_name = _retention_figure(cf, step, m, t, w, g, k_off, idx, after, tau, out)
    data = [
        _write_csv(out, "retention.csv", trace_columns(tr)),
        _write_csv(out, "retention_reads.csv", {"t_after_write_ns": after, "w_read_fraction": w[idx], "G_read_pS": g[idx]}),
    ]
    return {
        "finding": finding,
        "energies_aj": _energies(cf, tr),
        "membrane": m,
        "read_bias_v": step.v_base,
        "read_times_after_write_ns": after,
        "w_read": w[idx].tolist(),
        "read_conductance_ps": g[idx].tolist(),
        "w_before_write": float(w[0]),
        "retention_tau_ns": tau,
        "figures": [fig_name],
        "data": data,
    }


def _retention_figure(cf, step, m, t, w, g, k_off, idx, after, tau, out) -> str:
    """w and the read conductance over the whole run (write shaded) and after the write on a log
    time axis (the early decay), the reads marked on both."""
    fig, axes = _figure(2, 2, figsize=(10, 5.6))
    t_after = t[k_off + 1 :] - t[k_off]  # > 0 for the log axis
    for col in (0, 1):
        ax_w, ax_g = axes[0, col], axes[1, col]
        x, ww, gg = (t, w, g) if col == 0 else (t_after, w[k_off + 1 :], g[k_off + 1 :])
        reads_x = t[idx] if col == 0 else np.asarray(after)
        ax_w.plot(x, ww, lw=1.2, label=f"w of {m}")
        ax_g.plot(x, gg, lw=1.2, color=PALETTE[1], label="G read")
        ax_w.plot(reads_x, w[idx], "o", ms=5, color="k", label="reads")
        ax_g.plot(reads_x, g[idx], "o", ms=5, color="k", label="reads")
        for a in (ax_w, ax_g):
            a.set_xscale("log" if col else "linear")
            a.grid(True, which="both", alpha=0.3)
            for rx in reads_x:
                a.axvline(rx, color="0.6", lw=0.6, ls=":")
        ax_w.axhline(float(w[0]), color="0.5", lw=0.8, ls="--", label="rest (before the write)")
        ax_w.set_ylabel(f"w of {m} (open fraction)")
        ax_g.set_ylabel(f"G read of {m} (pS)")
        ax_g.set_xlabel("time after the write ends (ns, log)" if col else "t (ns)")
        if col == 0:
            ax_w.axvspan(step.t_on_ns, step.t_off_ns, color="0.88", lw=0)
            ax_g.axvspan(step.t_on_ns, step.t_off_ns, color="0.88", lw=0)
    axes[0, 1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    axes[0, 0].set_title("the whole run (write shaded)", fontsize=9)
    axes[0, 1].set_title("after the write, log time (reads dotted)", fontsize=9)
    fig.suptitle(f"{cf.name}: write, wait, read ({m}); retention τ = {tau:.3g} ns", fontsize=9)
    fig.tight_layout()
    return save_figure_atomic(fig, out / "retention.png").name


def _sweep(cf, cc, exp, out):
    src = _source(cf)
    volts = [float(v) for v in exp.get("voltages_v", np.linspace(0.05, 0.6, 12).tolist())]
    if not volts or not all(np.isfinite(v) and v != 0.0 for v in volts):
        # the sweep reports G = I/V: at 0 V that is inf or nan, and its "largest G" finding would be wrong
        raise CircuitFileError(f"{cf.name}: experiment.voltages_v must be finite and non-zero (G = I/V); got {volts}")
    probes = list(exp.get("probes", [el.name for _, _, el in C.elements(cf.graph) if isinstance(el, C.Membrane)]))
    j_src = cc.topology.names_of("V").index(src.name)
    rows = []
    for v in volts:
        row = np.array(cc.values["vs"], copy=True)
        row[j_src] = v
        rows.append(row)
    tr = transient(cc, values=source_batch(cc, rows), batched=True)
    i_src = -tr.i(src.name)[:, -1]
    currents = {p: tr.i(p)[:, -1].tolist() for p in probes}
    g_total = (i_src / np.array(volts)).tolist()
    fig, axes = _figure(2, 1, figsize=(6, 6), sharex=True)
    axes[0].plot(volts, i_src, "k-o", ms=3, label=f"source {src.name}")
    for p in probes:
        axes[0].plot(volts, currents[p], "--", label=p)
    axes[0].set_ylabel("I after the run (pA)")
    axes[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    axes[1].semilogy(volts, np.abs(g_total), "k-o", ms=3)
    axes[1].set_ylabel("G = I/V (pS)")
    axes[1].set_xlabel("source voltage (V)")
    g = np.asarray(g_total)
    kk = int(np.argmax(g))
    lo_edge, hi_edge = _half_max_edges(volts, g, kk)
    interior = 0 < kk < len(volts) - 1
    band_pass = bool(interior and lo_edge is not None and hi_edge is not None)
    if band_pass:
        finding = (
            f"a band-pass: G = I/V peaks at {volts[kk]:g} V ({g[kk]:.3g} pS) inside the sweep and falls to half of "
            f"that at {lo_edge:.3g} V below and {hi_edge:.3g} V above"
        )
    elif not interior:
        where = "first" if kk == 0 else "last"
        finding = f"no band-pass: G = I/V is largest at the sweep's {where} voltage, {volts[kk]:g} V ({g[kk]:.3g} pS)"
    else:
        side = "below" if lo_edge is None else "above"
        finding = f"no band-pass: G = I/V peaks at {volts[kk]:g} V but does not fall to half of that {side} it within the sweep"
    share = {}
    if len(probes) > 1:
        for j, v in ((0, volts[0]), (len(volts) - 1, volts[-1])):
            top = max(probes, key=lambda p: abs(currents[p][j]))
            total = sum(abs(currents[p][j]) for p in probes)
            share[f"{v:g}"] = {"probe": top, "fraction": abs(currents[top][j]) / total if total else float("nan")}
        if exp.get("probes_in_parallel", False):
            lo_s, hi_s = share[f"{volts[0]:g}"], share[f"{volts[-1]:g}"]
            finding = (
                f"parallel membranes sum their currents; {lo_s['probe']} carries {100 * lo_s['fraction']:.0f} % of "
                f"the current at {volts[0]:g} V and {hi_s['probe']} {100 * hi_s['fraction']:.0f} % at {volts[-1]:g} V; " + finding
            )
    fig.suptitle(f"{cf.name}: DC sweep ({cf.duration_ns:g} ns at each voltage): {finding.split(':')[0]}", fontsize=9)
    for edge in (lo_edge, hi_edge):
        if edge is not None:
            axes[1].axvline(edge, color="0.5", lw=0.8, ls=":")
    fig.tight_layout()
    fig_name = save_figure_atomic(fig, out / "sweep.png").name
    table = {f"V({src.name})_V": volts, f"I({src.name} delivered)_pA": i_src}
    table.update({f"I({p})_pA": currents[p] for p in probes})
    table["G(I/V)_pS"] = g_total
    return {
        "finding": finding,
        "is_band_pass": band_pass,
        "energies_aj": _energies(cf, tr),
        "voltages_v": volts,
        "source_current_pa": i_src.tolist(),
        "probe_current_pa": currents,
        "largest_current_share": share,
        "conductance_ps": g_total,
        "peak_conductance_v": volts[kk],
        "half_max_edges_v": [lo_edge, hi_edge],
        "kcl_max_mismatch_pa": float(np.abs(i_src - sum(np.array(c) for c in currents.values())).max())
        if exp.get("probes_in_parallel", False)
        else None,
        "figures": [fig_name],
        "data": [_write_csv(out, "sweep.csv", table)],
    }


def _half_max_edges(volts, g, kk):
    """Voltages where g crosses half its maximum g[kk], below and above the peak (linear
    interpolation between sweep points); None on a side where it stays above half."""
    half = 0.5 * g[kk]
    edges = []
    for step in (-1, 1):
        j, edge = kk, None
        while 0 <= j + step < len(g):
            if g[j + step] < half:
                v0, v1, g0, g1 = volts[j], volts[j + step], g[j], g[j + step]
                edge = float(v0 + (half - g0) * (v1 - v0) / (g1 - g0))
                break
            j += step
        edges.append(edge)
    return edges[0], edges[1]


def _transient(cf, cc, exp, out):
    """A plain transient: every node voltage, element current, membrane w and element energy."""
    unknown = set(exp) - {"seed"}
    if unknown:
        raise CircuitFileError(f"{cf.name}: a plain transient takes only experiment.seed; got fields {sorted(unknown)}")
    seed = exp.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise CircuitFileError(f"{cf.name}: experiment.seed must be an integer; got {seed!r}")
    tr = transient(cc, key=jax.random.key(seed), save_every=cf.save_every)
    top = tr.topology
    elements = list(top.branch_names)
    membranes = list(top.names_of("M"))
    columns = trace_columns(tr)
    data_name = _write_csv(out, "transient.csv", columns)
    panels = [
        ("node V (V)", [(n, tr.v(n)) for n in top.nodes]),
        ("element I (pA)", [(e, tr.i(e)) for e in elements]),
    ]
    if membranes:
        panels.append(("w (open fraction)", [(m, tr.w(m)) for m in membranes]))
    fig_name = _stacked(tr, panels, f"{cf.name}: transient ({cf.duration_ns:g} ns, dt {cf.dt_ns:g} ns)", out / "transient.png")
    energies = _energies(cf, tr)
    finals = ", ".join(f"V({n}) = {tr.v(n)[-1]:.4g} V" for n in top.nodes)
    return {
        "finding": (
            f"transient of {cf.duration_ns:g} ns: at the end {finals}; sources delivered "
            f"{energies['delivered_by_sources_aj']:.4g} aJ, {energies['dissipated_aj']:.4g} aJ dissipated, "
            f"{energies['stored_in_capacitors_aj']:.4g} aJ stored"
        ),
        "seed": seed,
        "columns": list(columns),
        "final_node_voltage_v": {n: float(tr.v(n)[-1]) for n in top.nodes},
        "final_current_pa": {e: float(tr.i(e)[-1]) for e in elements},
        "energies_aj": energies,
        "figures": [fig_name],
        "data": [data_name],
    }


EXPERIMENTS = {
    "transient": _transient,
    "pulse": _pulse,
    "potentiation": _potentiation,
    "memristor": _memristor,
    "retention": _retention,
    "sweep": _sweep,
    "neuron": lambda cf, cc, exp, out: run_neuron(cf, cc, exp, out, energies=lambda tr: _energies(cf, tr)),
    "neuron-design": run_neuron_design,
    "plasticity": lambda cf, cc, exp, out: run_plasticity(cf, cc, exp, out, energies=lambda tr: _energies(cf, tr)),
    "network": run_network,
}


def run_experiment(cf: CircuitFile, out_dir, *, figure_format: str | None = None, dpi: int | None = None) -> dict:
    """Solve the circuit file's experiment (a plain transient when the file has no
    ``[experiment]`` table) and write its figures, data and ``summary.json`` into ``out_dir``.

    ``figure_format`` (``"png"``, ``"pdf"`` or ``"svg"``) and ``dpi`` choose how the figures are
    saved; ``None`` keeps the enclosing :func:`ionkinetics._io.figure_output` (default png, 300 dpi).
    Every trace a figure draws is also written as CSV (``data`` in the summary)."""
    with figure_output(figure_format, dpi):  # a bad format or dpi is refused before anything is solved
        pass
    exp = dict(cf.experiment)
    kind = exp.pop("kind", "transient" if not exp else None)
    if kind not in EXPERIMENTS:
        raise CircuitFileError(f"{cf.name}: experiment.kind must be one of {sorted(EXPERIMENTS)}; got {kind!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} is a file; it must be a folder (or not exist yet)")
    cc = compile_circuit(cf.graph, cf.duration_ns, cf.dt_ns)
    created = None if out.exists() else out  # the outermost folder this call makes
    while created is not None and not created.parent.exists():
        created = created.parent
    out.mkdir(parents=True, exist_ok=True)
    try:
        with figure_output(figure_format, dpi):
            result = EXPERIMENTS[kind](cf, cc, exp, out)
        summary = {"circuit": cf.name, "file": cf.path, "description": cf.description, "experiment": kind, **result}
        write_json_atomic(out / "summary.json", json.loads(json.dumps(summary, default=float)))
    except BaseException:
        if created is not None:  # nothing half-written: the folders this call made go with its failure
            shutil.rmtree(created, ignore_errors=True)
        raise
    return summary
