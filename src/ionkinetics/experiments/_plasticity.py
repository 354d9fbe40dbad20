"""Synaptic plasticity in both directions from symmetric membranes: a bias-steered differential pair.

A membrane in a symmetric electrolyte gates on ``|u|``: a −0.5 V pulse potentiates it exactly like
+0.5 V, so one device cannot be depressed by a pulse. The model has no electrolyte that differs
between the two sides of a membrane (its rates are mirror images by construction), so the asymmetry
here comes from the circuit: two identical activating membranes between the ``post`` and ``pre``
terminals, each behind its own bias source of opposite sign (``circuits/plasticity.toml``):

- ``MA`` sees ``u_A = V_post − V_pre + E_b``: positive pulses raise ``|u_A|`` and potentiate it;
- ``MB`` sees ``u_B = V_post − V_pre − E_b``: negative pulses potentiate it.

The synaptic weight is the differential read conductance ``W = G_A − G_B`` (pS; each ``G = I/u`` at
the read bias, as a crossbar's differential column pair reads it): positive pulses raise W
(potentiation), negative pulses lower it (depression); between pulses both relax to the bias's
steady state (forgetting). The bias is a DC source in series with each membrane (an electrode or a
concentration cell), not a property of the pore.

:func:`run_plasticity` measures, from one batched mean-field program and one stochastic one: the
potentiation/depression curve, spike-rate-dependent plasticity (ΔW against the pulse rate),
spike-timing-dependent plasticity (ΔW against the pre/post delay of bipolar spikes), and the
memristor figures of merit (distinguishable levels, nonlinearity ν of each branch, on/off ratio,
device-to-device and cycle-to-cycle variability from stochastic pores).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from .. import circuits as C
from .._io import PALETTE, write_columns_csv
from ..circuits import CircuitFileError, compile_circuit, figure, save_figure_atomic, source_batch, transient

__all__ = ["fit_nonlinearity", "run_plasticity", "weight_pS"]


def weight_pS(tr, plus: str, minus: str, idx) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(W, G_plus, G_minus)`` (pS) at saved indices ``idx``: ``W = G_plus − G_minus`` and the two
    chord conductances I/u it is the difference of."""
    g = [tr.i(m)[..., idx] / tr.vb(m)[..., idx] for m in (plus, minus)]
    return g[0] - g[1], g[0], g[1]


def fit_nonlinearity(w) -> float:
    """The nonlinearity ν of a monotone update curve (NeuroSim's form): normalised
    ``y(x) = (1 − e^{−ν x}) / (1 − e^{−ν})`` for x, y in [0, 1]; ν = 0 is linear, larger is more
    saturating (ν < 0: accelerating). Least squares over a grid of ν."""
    w = np.asarray(w, dtype=float)
    y = (w - w[0]) / (w[-1] - w[0])
    x = np.linspace(0.0, 1.0, w.size)
    nus = np.linspace(-10, 30, 4001)
    nus = nus[np.abs(nus) > 1e-9]
    err = [np.sum(((1 - np.exp(-nu * x)) / (1 - np.exp(-nu)) - y) ** 2) for nu in nus]
    lin = np.sum((x - y) ** 2)
    k = int(np.argmin(err))
    return 0.0 if lin <= err[k] else float(nus[k])


def _distinct_levels(w, sigma) -> int:
    """Levels of a monotone sequence ``w`` that differ from the previous kept level by > 2σ."""
    levels, last = 1, w[0]
    for x in w[1:]:
        if abs(x - last) > 2.0 * sigma:
            levels += 1
            last = x
    return levels


def _pulse(t_mid, on, width, amp):
    return np.where((t_mid > on) & (t_mid < on + width), amp, 0.0)


@dataclasses.dataclass(frozen=True)
class _Drives:
    """The plasticity experiment's timing settings and the source rows of its one batched transient:
    row 0 the training train, then one row per SRDP period, then one per STDP delay."""

    amp: float
    width: float
    period: float
    n_pot: int
    n_dep: int
    t0: float
    onsets: np.ndarray
    srdp_periods: list
    srdp_count: int
    read_after: float
    head: float
    tail: float
    delays: list
    n_pairs: int
    pair_period: float
    t_pre0: float
    rows: list


def _terminals(cf, top, exp):
    """The pre and post sources and the plus and minus membranes named by ``[experiment]``, checked."""
    names_v = top.names_of("V")
    pre, post = exp.get("pre", "Vpre"), exp.get("post", "Vpost")
    plus, minus = exp.get("membrane_plus", "MA"), exp.get("membrane_minus", "MB")
    for nm, role in ((pre, "pre"), (post, "post")):
        if nm not in names_v:
            raise CircuitFileError(f"{cf.name}: experiment.{role} must name a voltage source; got {nm!r}")
    for nm, role in ((plus, "membrane_plus"), (minus, "membrane_minus")):
        if nm not in top.names_of("M"):
            raise CircuitFileError(f"{cf.name}: experiment.{role} must name a membrane; got {nm!r}")
    return pre, post, plus, minus


def _drives(cf, cc, exp, pre, post) -> _Drives:
    """Every drive of the experiment as a row of source values: the training train (``n_potentiate``
    positive then ``n_depress`` negative pulses on post), the SRDP trains (the same number of positive
    pulses at each rate) and the STDP pairs (bipolar spikes, head +a and tail −a/2, at pre and post with
    post − pre = Δt)."""
    top = cc.topology
    names_v = top.names_of("V")
    dt, n = top.dt_ns, top.n_steps
    t_mid = (np.arange(n) + 0.5) * dt
    amp = float(exp.get("pulse_v", 0.35))
    width = float(exp.get("pulse_width_ns", 1.0))
    period = float(exp.get("period_ns", 10.0))
    n_pot, n_dep = int(exp.get("n_potentiate", 20)), int(exp.get("n_depress", 20))
    t0 = float(exp.get("t_start_ns", 10.0))
    if t0 + (n_pot + n_dep) * period > cf.duration_ns:
        raise CircuitFileError(f"{cf.name}: {n_pot}+{n_dep} pulses every {period:g} ns do not fit in duration_ns")
    j_pre, j_post = names_v.index(pre), names_v.index(post)

    def row(v_pre, v_post):
        r = np.array(cc.values["vs"], copy=True)
        r[j_pre], r[j_post] = v_pre, v_post
        return r

    zero = np.zeros(n)
    onsets = t0 + period * np.arange(n_pot + n_dep)
    train = sum(_pulse(t_mid, on, width, amp if k < n_pot else -amp) for k, on in enumerate(onsets))
    rows = [row(zero, train)]
    srdp_periods = [float(p) for p in exp.get("srdp_periods_ns", [5.0, 10.0, 20.0, 40.0])]
    srdp_count = int(exp.get("srdp_count", 8))
    read_after = float(exp.get("read_delay_ns", 2.0))
    for p in srdp_periods:
        if t0 + srdp_count * p + read_after > cf.duration_ns:
            raise CircuitFileError(f"{cf.name}: srdp period {p:g} ns × {srdp_count} does not fit in duration_ns")
        rows.append(row(zero, sum(_pulse(t_mid, t0 + k * p, width, amp) for k in range(srdp_count))))
    head, tail = float(exp.get("spike_head_ns", 2.0)), float(exp.get("spike_tail_ns", 8.0))
    a_sp = float(exp.get("spike_v", 0.25))
    delays = [float(d) for d in exp.get("stdp_delays_ns", [-12, -8, -6, -4, -2, 0, 2, 4, 6, 8, 12])]
    n_pairs = int(exp.get("stdp_pairs", 5))
    pair_period = float(exp.get("stdp_period_ns", 40.0))
    t_pre0 = t0 + max(0.0, -min(delays))

    def spike(on):
        return _pulse(t_mid, on, head, a_sp) + _pulse(t_mid, on + head, tail, -0.5 * a_sp)

    for d in delays:
        v_pre = sum(spike(t_pre0 + k * pair_period) for k in range(n_pairs))
        v_post = sum(spike(t_pre0 + d + k * pair_period) for k in range(n_pairs))
        rows.append(row(v_pre, v_post))
    return _Drives(
        amp, width, period, n_pot, n_dep, t0, onsets, srdp_periods, srdp_count, read_after,
        head, tail, delays, n_pairs, pair_period, t_pre0, rows,
    )  # fmt: skip


def _reads(tr, d: _Drives, plus, minus, dt):
    """W, G+ and G− of the training row just before each pulse and after the last; ΔW of each SRDP
    row after its train and of each STDP row after its last pair's tails."""
    t = tr.t_ns
    read_t = np.concatenate([d.onsets, [d.onsets[-1] + d.period]]) - 0.5 * dt
    idx = np.searchsorted(t, read_t - 1e-9)
    w_train, ga, gb = weight_pS(tr, plus, minus, idx)
    srdp = []
    for b, p in enumerate(d.srdp_periods, start=1):
        k_end = int(np.searchsorted(t, d.t0 + (d.srdp_count - 1) * p + d.width + d.read_after - 1e-9))
        w_end = weight_pS(tr, plus, minus, np.array([0, k_end]))[0][b]
        srdp.append({"period_ns": p, "rate_mhz": 1e3 / p, "delta_w_ps": float(w_end[1] - w_end[0])})
    stdp = []
    t_end = d.t_pre0 + (d.n_pairs - 1) * d.pair_period + max(d.delays) + d.head + d.tail + d.read_after
    k_end = int(np.searchsorted(t, t_end - 1e-9))
    for b, delay in enumerate(d.delays, start=1 + len(d.srdp_periods)):
        w = weight_pS(tr, plus, minus, np.array([0, k_end]))[0][b]
        stdp.append({"delay_ns": delay, "delta_w_ps": float(w[1] - w[0])})
    return w_train[0], ga[0], gb[0], srdp, stdp


def _finding(d: _Drives, ltp, ltd, srdp, stdp) -> str:
    pot_ok = bool(np.all(np.diff(ltp) > 0))
    dep_ok = bool(np.all(np.diff(ltd) < 0))
    causal = [s["delta_w_ps"] for s in stdp if s["delay_ns"] > 0]
    acausal = [s["delta_w_ps"] for s in stdp if s["delay_ns"] < 0]
    return (
        f"{'potentiation' if pot_ok else 'no monotone potentiation'}: W {ltp[0]:.4g} → {ltp[-1]:.4g} pS over {d.n_pot} "
        f"+{d.amp:g} V pulses; {'depression' if dep_ok else 'no monotone depression'}: → {ltd[-1]:.4g} pS over {d.n_dep} "
        f"−{d.amp:g} V pulses; SRDP: ΔW {srdp[0]['delta_w_ps']:.3g} pS at {srdp[0]['rate_mhz']:.0f} MHz vs "
        f"{srdp[-1]['delta_w_ps']:.3g} pS at {srdp[-1]['rate_mhz']:.0f} MHz; STDP: ΔW {max(causal):.3g} pS (post after pre) "
        f"and {min(acausal):.3g} pS (post before pre)"
    )


def run_plasticity(cf, cc, exp, out, *, energies):
    """The ``plasticity`` experiment. ``[experiment]`` fields (all optional): ``pre``, ``post`` (voltage
    sources), ``membrane_plus``, ``membrane_minus``; ``pulse_v``, ``pulse_width_ns``, ``period_ns``,
    ``n_potentiate``, ``n_depress``, ``t_start_ns``, ``read_delay_ns``; ``srdp_periods_ns``,
    ``srdp_count``; ``spike_v``, ``spike_head_ns``, ``spike_tail_ns``, ``stdp_delays_ns``,
    ``stdp_pairs``, ``stdp_period_ns``; ``devices`` (stochastic devices, 0: mean field only),
    ``cycles`` (≥ 3, the first a warm-up), ``seed``. Writes ``plasticity.png``; returns the summary.

    Every drive (training train, SRDP trains, STDP pairs) is a row of one batched transient
    (:func:`_drives`), then each is read at its own times (:func:`_reads`)."""
    pre, post, plus, minus = _terminals(cf, cc.topology, exp)
    d = _drives(cf, cc, exp, pre, post)
    tr = transient(cc, values=source_batch(cc, d.rows), batched=True, save_every=cf.save_every)
    t = tr.t_ns
    w_train, ga, gb, srdp, stdp = _reads(tr, d, plus, minus, cc.topology.dt_ns)
    ltp, ltd = w_train[: d.n_pot + 1], w_train[d.n_pot :]
    amp, width, period, n_pot, n_dep, t0 = d.amp, d.width, d.period, d.n_pot, d.n_dep, d.t0
    # stochastic pores (devices = 0: mean field only, no variability and no level count)
    stoch = (
        _stochastic(cf, exp, plus, minus, amp, width, period, n_pot, n_dep, t0, pre, post) if int(exp.get("devices", 6)) else None
    )
    sigma = stoch["cycle_to_cycle_sd_ps"] if stoch else None
    fom = {
        "levels_potentiation": _distinct_levels(ltp, sigma) if stoch else None,
        "levels_depression": _distinct_levels(ltd, sigma) if stoch else None,
        "nonlinearity_potentiation": fit_nonlinearity(ltp),
        "nonlinearity_depression": fit_nonlinearity(-ltd),
        "on_off_ratio_device": float(ga.max() / ga.min()),
        "on_off_ratio_weight_range_ps": [float(w_train.min()), float(w_train.max())],
        "cycle_to_cycle_variability": stoch["cycle_to_cycle_sd_ps"] / float(np.ptp(w_train)) if stoch else None,
        "device_to_device_variability": stoch["device_to_device_sd_ps"] / float(np.ptp(w_train)) if stoch else None,
    }
    energy = energies(tr)
    figs = _figures(cf, t, tr, plus, minus, w_train, n_pot, srdp, stdp, stoch, out)
    return {
        "finding": _finding(d, ltp, ltd, srdp, stdp),
        "potentiates": bool(np.all(np.diff(ltp) > 0)),
        "depresses": bool(np.all(np.diff(ltd) < 0)),
        "bias_sources_v": {
            el.name: float(el.protocol.v_rest_v)
            for _, _, el in C.elements(cf.graph)
            if isinstance(el, C.VoltageSource) and el.name not in (pre, post)
        },
        "pulse_v": amp,
        "pulse_width_ns": width,
        "period_ns": period,
        "weight_after_each_pulse_ps": w_train.tolist(),
        "g_plus_ps": ga.tolist(),
        "g_minus_ps": gb.tolist(),
        "srdp": srdp,
        "stdp": stdp,
        "figures_of_merit": fom,
        "stochastic": stoch,
        "energies_aj": energy,
        "train_energy_dissipated_per_pulse_aj": float(energy["dissipated_aj"][0] / (n_pot + n_dep)),
        "figures": figs,
        "data": _data(out, t, tr, plus, minus, w_train, srdp, stdp),
    }


def _stochastic(cf, exp, plus, minus, amp, width, period, n_pot, n_dep, t0, pre, post):
    """The same train repeated for several cycles on stochastic devices (one batch over devices)."""
    import networkx as nx

    cycles = int(exp.get("cycles", 4))
    if cycles < 3:
        raise CircuitFileError(f"{cf.name}: experiment.cycles must be >= 3 (one warm-up, two to compare); got {cycles}")
    devices = int(exp.get("devices", 6))
    cyc = (n_pot + n_dep) * period
    duration = t0 + cycles * cyc + period
    g = nx.MultiDiGraph()
    from ..kinetics import protocols as P

    for a, b, el in C.elements(cf.graph):
        if el.name in (plus, minus):
            el = dataclasses.replace(el, stochastic=True)
        elif isinstance(el, C.VoltageSource):
            el = dataclasses.replace(el, protocol=P.dc(el.protocol.v_rest_v, duration, v_rest_v=el.protocol.v_rest_v))
        g.add_edge(a, b, key=el.name, element=el)
    cc = compile_circuit(g, duration, cf.dt_ns)
    n = cc.topology.n_steps
    t_mid = (np.arange(n) + 0.5) * cf.dt_ns
    onsets = t0 + period * np.arange(cycles * (n_pot + n_dep))
    sign = np.where((np.arange(onsets.size) % (n_pot + n_dep)) < n_pot, 1.0, -1.0)
    train = sum(_pulse(t_mid, on, width, s * amp) for on, s in zip(onsets, sign, strict=True))
    names_v = cc.topology.names_of("V")
    r = np.array(cc.values["vs"], copy=True)
    r[names_v.index(post)] = train
    r[names_v.index(pre)] = 0.0
    key = jax.random.key(int(exp.get("seed", 0)))
    tr = transient(cc, values=source_batch(cc, [r] * devices), batched=True, key=key, save_every=cf.save_every)
    read_t = np.concatenate([onsets, [onsets[-1] + period]]) - 0.5 * cf.dt_ns
    idx = np.searchsorted(tr.t_ns, read_t - 1e-9)
    w = weight_pS(tr, plus, minus, idx)[0]  # (devices, cycles·(n_pot+n_dep)+1)
    per = w[:, : cycles * (n_pot + n_dep)].reshape(devices, cycles, n_pot + n_dep)
    # the first cycle starts from rest, the others from the end of a depression: it is a warm-up, and
    # the spreads are taken over the repeating cycles only
    steady = per[:, 1:]
    c2c = float(np.mean(steady.std(axis=1, ddof=1)))  # spread over cycles, per device and pulse
    d2d = float(np.mean(steady.mean(axis=1).std(axis=0, ddof=1)))  # spread of cycle-averaged curves over devices
    return {
        "devices": devices,
        "cycles": cycles,
        "warm_up_cycles_excluded": 1,
        "expected_device_to_device_sd_from_cycle_noise_alone_ps": c2c / np.sqrt(cycles - 1),
        "n_pores": {m: cc.topology.n_pores[cc.topology.names_of("M").index(m)] for m in (plus, minus)},
        "cycle_to_cycle_sd_ps": c2c,
        "device_to_device_sd_ps": d2d,
        "weights_ps": per.tolist(),
    }


def _figures(cf, t, tr, plus, minus, w_train, n_pot, srdp, stdp, stoch, out):
    fig, axes = figure(2, 2, figsize=(11, 7.5))
    ax = axes[0, 0]
    k = np.arange(w_train.size)
    ax.plot(k[: n_pot + 1], w_train[: n_pot + 1], "o-", color=PALETTE[1], ms=3, label="+ pulses: potentiation")
    ax.plot(k[n_pot:], w_train[n_pot:], "o-", color=PALETTE[0], ms=3, label="− pulses: depression")
    per = np.asarray(stoch["weights_ps"]) if stoch else np.zeros((0, 0, 0))
    for dev in per:
        for c in dev:
            ax.plot(np.arange(c.size), c, color="0.6", lw=0.4, alpha=0.5)
    ax.set_xlabel("pulse number")
    ax.set_ylabel("W = G_A − G_B (pS)")
    ax.set_title("mean field (colour) and stochastic devices × cycles (grey)", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    ax = axes[0, 1]
    ax.plot(t, tr.vb(plus)[0], lw=0.6, color=PALETTE[4], label=f"u({plus})")
    ax.plot(t, tr.vb(minus)[0], lw=0.6, color=PALETTE[5], label=f"u({minus})")
    ax2 = ax.twinx()
    ax2.plot(t, tr.w(plus)[0], color=PALETTE[1], lw=1.0, label=f"w({plus})")
    ax2.plot(t, tr.w(minus)[0], color=PALETTE[0], lw=1.0, label=f"w({minus})")
    ax2.set_ylabel("w (open fraction)")
    ax.set_xlabel("t (ns)")
    ax.set_ylabel("u (V)")
    (h1, l1), (h2, l2) = ax.get_legend_handles_labels(), ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper left", bbox_to_anchor=(1.12, 1.0), frameon=False)
    ax = axes[1, 0]
    ax.plot([s["rate_mhz"] for s in srdp], [s["delta_w_ps"] for s in srdp], "o-", color="k")
    ax.set_xscale("log")
    rates = [s["rate_mhz"] for s in srdp]
    ax.set_xticks(rates, [f"{r:g}" for r in rates], minor=False)  # the rates used, not crowded log minors
    ax.set_xticks([], minor=True)
    ax.set_xlabel("pulse rate (MHz)")
    ax.set_ylabel("ΔW after the train (pS)")
    ax.set_title("spike-rate-dependent plasticity", fontsize=9)
    ax = axes[1, 1]
    ax.plot([s["delay_ns"] for s in stdp], [s["delta_w_ps"] for s in stdp], "o-", color="k")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.axvline(0, color="0.5", lw=0.8)
    ax.set_xlabel("Δt = t_post − t_pre (ns)")
    ax.set_ylabel("ΔW (pS)")
    ax.set_title("spike-timing-dependent plasticity", fontsize=9)
    fig.suptitle(f"{cf.name}: bias-steered differential pair", fontsize=10)
    fig.tight_layout()
    return [save_figure_atomic(fig, out / "plasticity.png").name]


def _data(out, t, tr, plus, minus, w_train, srdp, stdp) -> list[str]:
    """Every trace the figure draws, as CSV (units in the headers)."""
    train = {"t_ns": t}
    for m in (plus, minus):
        train[f"u({m})_V"] = tr.vb(m)[0]
        train[f"w({m})_fraction"] = tr.w(m)[0]
    return [
        write_columns_csv(out / "plasticity_train.csv", train).name,
        write_columns_csv(
            out / "plasticity_weights.csv", {"pulse_count": np.arange(w_train.size), "W_pS": np.asarray(w_train)}
        ).name,
        write_columns_csv(
            out / "plasticity_srdp.csv",
            {"rate_MHz": [s["rate_mhz"] for s in srdp], "delta_W_pS": [s["delta_w_ps"] for s in srdp]},
        ).name,
        write_columns_csv(
            out / "plasticity_stdp.csv",
            {"delay_ns": [s["delay_ns"] for s in stdp], "delta_W_pS": [s["delta_w_ps"] for s in stdp]},
        ).name,
    ]
