"""A small spiking network that learns: ionic neurons joined by plastic ionic synapses (issue 25, item 3).

Parts (``circuits/network.toml``): the file holds one neuron (the circuit of ``circuits/neuron.toml``:
a B3N K⁺/Rb⁺ and a crown6 Na⁺/K⁺ membrane behind their bias sources, on a capacitor) and one synapse
(the differential pair of ``circuits/plasticity.toml``: two B3N K⁺/Na⁺ membranes between ``post`` and
``pre``, behind ±E_b). The network is ``n_inputs`` copies of the neuron (inputs), one more (output), and
one synapse from each input to the output.

How it runs, presentation by presentation (every device through the project's own models):

- **Input neurons** are driven by a current pulse at their time in the pattern. Each is the circuit
  solver's neuron; their responses depend only on their drive time, so each distinct time is one row
  of one batched transient (``transient``), run once.
- **Transmission.** The output neuron's stimulus is the read of every synapse: the presynaptic neuron's
  own spike voltage above rest, applied as the read voltage, times the synapse weight ``W = G₊ − G₋``
  (pS, the pair's differential chord conductance at its bias), times ``read_gain``:
  ``I_out(t) = read_gain · Σ_i W_i · (V_i(t) − V_rest)`` (pA). The current mirror that subtracts the
  two columns of a differential read is ideal: it is not an ionic device. The weight is read at the
  start of a presentation and held through it.
- **Output neuron**: the circuit solver's neuron, one batched transient per presentation (the trained
  pattern and a shuffled one for every seed; the shuffled rows only watch, they do not teach).
- **STDP from the neurons' own spikes.** Every spike of a neuron (its upward crossing of rest +
  ``spike_rise_v``) sends a shaped voltage spike to the synapse terminals it touches, as in memristive
  STDP (a positive head ``spike_v`` for ``spike_head_ns``, then a negative tail that starts at
  ``spike_tail_fraction · spike_v`` and falls linearly to 0 over ``spike_tail_ns``): inputs to the ``pre``
  terminal of their synapse, the output to the ``post`` terminal of all of them. The pair's membranes
  see ``u± = V_post − V_pre ± E_b`` and move by the kinetic core's exact mean-field propagators
  (``mean_field_scan``; ideal sources, so no circuit solve is needed: the same answer to round-off),
  carrying their occupancies from one presentation to the next. A post spike over the tail of a pre
  spike raises |u₊| most: W rises (pre before post potentiates); a pre spike over a post tail raises
  |u₋|: W falls (:func:`stdp_window`).
- **Test.** After training, one more presentation of the trained pattern and of its shuffle (the
  same input times, given to other neurons) with the weights at the end of training: the output fires
  or not (:func:`selectivity`).

What it cannot do (see the README): the weights are volatile (the pair relaxes to W = 0 within about a
microsecond at its bias: the calibration's Na⁺ escape rate at E_b bounds retention whatever the
molarity), so training keeps the weights where the pattern drives them, not more; and the network is
mean-field (no pore noise).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np

from .. import circuits as C
from .._io import PALETTE, write_columns_csv
from ..circuits import CircuitFileError, compile_circuit, figure, save_figure_atomic, source_batch, transient
from ..kinetics import mean_field_scan, membrane_current_pa, protocols, steady_state
from ._neuron import _rows, detect_spikes, neuron_parts

__all__ = ["SynapsePair", "network_synapse", "run_network", "selectivity", "stdp_spike_wave", "stdp_window"]


def stdp_spike_wave(t_ns, spike_times_ns, *, amplitude_v: float, head_ns: float, tail_ns: float, tail_fraction: float):
    """The voltage a neuron sends to its synapse terminals (V at each ``t_ns``): for every spike time s,
    ``+amplitude_v`` over (s, s + head_ns), then ``−tail_fraction·amplitude_v·(1 − x)`` over the tail,
    x from 0 to 1 across ``tail_ns``."""
    t = np.asarray(t_ns, dtype=float)
    v = np.zeros_like(t)
    for s in np.asarray(spike_times_ns, dtype=float).ravel():
        v += np.where((t > s) & (t < s + head_ns), amplitude_v, 0.0)
        x = (t - s - head_ns) / tail_ns
        v += np.where((x >= 0) & (x < 1), -tail_fraction * amplitude_v * (1.0 - x), 0.0)
    return v


@dataclasses.dataclass(frozen=True)
class SynapsePair:
    """The differential pair: kinetic parameters of its two membranes, pores each, bias E_b (V)."""

    params_plus: object
    params_minus: object
    n_plus: int
    n_minus: int
    bias_v: float


@functools.partial(jax.jit, static_argnames=("save_every",))
def _advance(params, p0_sk, u_st, dt_ns, save_every):
    """Every synapse membrane of one kind from occupancies ``p0_sk`` under voltages ``u_st`` (S, T):
    occupancies (S, T/save_every + 1, K) and cumulative energy per pore (aJ) at the saved points."""
    return jax.vmap(lambda p, u: mean_field_scan(params, u, dt_ns, p, save_every=save_every))(p0_sk, u_st)


def _weight_ps(syn: SynapsePair, p_plus, p_minus):
    """W = G₊ − G₋ (pS): chord conductances at the pair's rest voltages ±E_b."""
    b = syn.bias_v
    g = lambda params, n, p, u: n * jax.vmap(lambda q: membrane_current_pa(params, u, q))(p) / u  # noqa: E731
    return np.asarray(g(syn.params_plus, syn.n_plus, p_plus, b) - g(syn.params_minus, syn.n_minus, p_minus, -b))


def stdp_window(syn: SynapsePair, delays_ns, *, wave: dict, dt_ns: float, pairs: int = 1, period_ns: float = 1000.0):
    """ΔW (pS) of the synapse from rest after ``pairs`` pre/post spike pairs at each delay
    ``t_post − t_pre`` of ``delays_ns`` (spikes shaped by ``wave``: :func:`stdp_spike_wave`'s keywords)."""
    delays = np.asarray(delays_ns, dtype=float)
    lead = max(0.0, -float(delays.min())) + 10.0
    duration = lead + pairs * period_ns
    t = (np.arange(round(duration / dt_ns)) + 0.5) * dt_ns
    pre = stdp_spike_wave(t, lead + period_ns * np.arange(pairs), **wave)
    du = np.stack([stdp_spike_wave(t, lead + d + period_ns * np.arange(pairs), **wave) - pre for d in delays])
    w0, w1 = _train_synapses(syn, du, dt_ns, None)[:2]
    return w1 - w0


def _train_synapses(syn: SynapsePair, du_st, dt_ns: float, state):
    """Advance S synapses under ``V_post − V_pre = du_st`` (S, T) from ``state`` (occupancies of both
    membranes; None: rest). Returns (W before, W after, new state, energy absorbed by each pair, aJ)."""
    du = np.asarray(du_st, dtype=float)
    if state is None:
        rest = lambda params, u: np.tile(np.asarray(steady_state(params, u)), (du.shape[0], 1))  # noqa: E731
        state = (rest(syn.params_plus, syn.bias_v), rest(syn.params_minus, -syn.bias_v))
    with jax.enable_x64(True):
        w_before = _weight_ps(syn, *state)
        occ_p, e_p = _advance(syn.params_plus, jnp.asarray(state[0]), jnp.asarray(du + syn.bias_v), dt_ns, du.shape[1])
        occ_m, e_m = _advance(syn.params_minus, jnp.asarray(state[1]), jnp.asarray(du - syn.bias_v), dt_ns, du.shape[1])
        new = (np.asarray(occ_p[:, -1]), np.asarray(occ_m[:, -1]))
        w_after = _weight_ps(syn, *new)
    energy = syn.n_plus * np.asarray(e_p[:, -1]) + syn.n_minus * np.asarray(e_m[:, -1])
    return w_before, w_after, new, energy


def selectivity(fired_trained, fired_shuffled) -> dict:
    """Per seed, 1 if the output fired for the trained pattern, minus 1 if it fired for the shuffled one;
    the mean over seeds and its seed-to-seed standard deviation (ddof = 1)."""
    a = np.asarray(fired_trained, dtype=float)
    b = np.asarray(fired_shuffled, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError(f"fired_trained and fired_shuffled must be 1-D of the same length >= 2; got {a.shape}, {b.shape}")
    per = a - b
    return {"per_seed": per.tolist(), "mean": float(per.mean()), "seed_std": float(per.std(ddof=1))}


def _int(exp, name, default, lo):
    x = exp.get(name, default)
    if isinstance(x, bool) or not isinstance(x, int) or x < lo:
        raise CircuitFileError(f"experiment.{name} must be an integer >= {lo}; got {x!r}")
    return x


def _pos(exp, name, default):
    x = exp.get(name, default)
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not np.isfinite(x) or x <= 0:
        raise CircuitFileError(f"experiment.{name} must be a finite number > 0; got {x!r}")
    return float(x)


def _sub_circuit(cf, names, duration_ns):
    """The elements ``names`` of the file, their sources held at rest over ``duration_ns``."""
    g = nx.MultiDiGraph()
    for a, b, el in C.elements(cf.graph):
        if el.name in names:
            if isinstance(el, (C.VoltageSource, C.CurrentSource)):
                el = dataclasses.replace(
                    el, protocol=protocols.dc(el.protocol.v_rest_v, duration_ns, v_rest_v=el.protocol.v_rest_v)
                )
            g.add_edge(a, b, key=el.name, element=el)
    return g


def network_synapse(cf, exp: dict) -> tuple[SynapsePair, dict]:
    """The synapse of a network file: its two membranes (``membrane_plus``, ``membrane_minus``; default
    ``MA``, ``MB``) and their bias sources (``bias_plus``, ``bias_minus``; ``EbA``, ``EbB``, equal |v|).
    Returns the :class:`SynapsePair` and the element names."""
    els = {el.name: el for _, _, el in C.elements(cf.graph)}
    names = {
        k: exp.get(k, d)
        for k, d in (("membrane_plus", "MA"), ("membrane_minus", "MB"), ("bias_plus", "EbA"), ("bias_minus", "EbB"))
    }
    for role in ("membrane_plus", "membrane_minus"):
        if not isinstance(els.get(names[role]), C.Membrane):
            raise CircuitFileError(f"{cf.name}: experiment.{role} must name a membrane; got {names[role]!r}")
    for role in ("bias_plus", "bias_minus"):
        if not isinstance(els.get(names[role]), C.VoltageSource):
            raise CircuitFileError(f"{cf.name}: experiment.{role} must name a voltage source; got {names[role]!r}")
    b_plus, b_minus = (abs(float(els[names[r]].protocol.v_rest_v)) for r in ("bias_plus", "bias_minus"))
    if not np.isclose(b_plus, b_minus) or b_plus == 0:
        raise CircuitFileError(
            f"{cf.name}: the synapse's bias sources must have equal, non-zero |v|; got {b_plus:g} and {b_minus:g} V"
        )
    mp, mm = els[names["membrane_plus"]], els[names["membrane_minus"]]
    syn = SynapsePair(mp.load().params, mm.load().params, mp.n_pores, mm.n_pores, b_plus)
    return syn, names


def _patterns(times, seeds, first_seed):
    """Per seed: the trained assignment (input neuron i fires at time slot order[i]) and a shuffle of it
    (the same times, at least one neuron at another time)."""
    times = np.asarray(times)
    if np.unique(times).size < 2:
        raise CircuitFileError(f"experiment.input_times_ns must hold at least two different times; got {times.tolist()}")
    out = []
    for s in range(first_seed, first_seed + seeds):
        rng = np.random.default_rng(s)
        order = rng.permutation(times.size)
        while True:
            shuffled = rng.permutation(times.size)
            if np.any(times[shuffled] != times[order]):
                break
        out.append((order, shuffled))
    return out


class _NetworkSettings(NamedTuple):
    times: list
    duration: float
    presentations: int
    seeds: int
    first_seed: int
    read_gain: float
    pulse_pa: float
    pulse_ns: float
    wave: dict
    syn_dt: float
    n_program: int
    program_v: float
    rise: float


def _network_settings(cf, exp) -> _NetworkSettings:
    """The ``network`` experiment's fields, checked (defaults as in ``circuits/network.toml``'s comments)."""
    times = [float(x) for x in exp.get("input_times_ns", [20.0, 20.0, 520.0, 1020.0])]
    n_in = len(times)
    if n_in < 2:
        raise CircuitFileError(
            f"{cf.name}: experiment.input_times_ns must list >= 2 input times (one per input neuron); got {times}"
        )
    duration = _pos(exp, "presentation_ns", 1700.0)
    if max(times) + 300.0 > duration:
        raise CircuitFileError(
            f"{cf.name}: experiment.presentation_ns = {duration:g} must exceed the last input time + 300 ns; got times {times}"
        )
    presentations = _int(exp, "presentations", 8, 1)
    seeds = _int(exp, "seeds", 5, 2)
    first_seed = _int(exp, "seed", 0, 0)
    read_gain = _pos(exp, "read_gain", 1.0)
    pulse_pa, pulse_ns = _pos(exp, "input_pulse_pa", 150.0), _pos(exp, "input_pulse_width_ns", 60.0)
    wave = {
        "amplitude_v": _pos(exp, "spike_v", 0.3),
        "head_ns": _pos(exp, "spike_head_ns", 4.0),
        "tail_ns": _pos(exp, "spike_tail_ns", 400.0),
        "tail_fraction": _pos(exp, "spike_tail_fraction", 0.3),
    }
    syn_dt = _pos(exp, "synapse_dt_ns", 1.0)
    n_program, program_v = _int(exp, "program_pulses", 30, 0), _pos(exp, "program_v", 0.35)
    rise = _pos(exp, "spike_rise_v", 0.1)

    return _NetworkSettings(
        times, duration, presentations, seeds, first_seed, read_gain, pulse_pa, pulse_ns, wave, syn_dt, n_program,
        program_v, rise,
    )  # fmt: skip


def _neuron_batch(cf, parts, duration):
    """The file's neuron alone (its stimulus, capacitor, membranes and biases), compiled once for one
    presentation: a function from stimulus waves (pA, one row per neuron) to (t, V of the node, energy
    of both membranes), and the number of steps."""
    ncc = compile_circuit(_sub_circuit(cf, parts.element_names, duration), duration, cf.dt_ns)

    def neurons(waves):
        tr = transient(ncc, values=source_batch(ncc, _rows(ncc, parts.stimulus, waves), "is_"), batched=True, save_every=1)
        e = tr.energy(parts.inactivating)[:, -1] + tr.energy(parts.activating)[:, -1]
        return tr.t_ns, tr.v(parts.node), e

    return neurons, ncc.topology.n_steps


def run_network(cf, cc, exp, out):
    """The ``network`` experiment (fields in ``circuits/network.toml``); writes ``network_raster.png``,
    ``network_weights.png``, their CSVs, and returns the summary.

    The input neurons are one batch; each presentation is one batch of output neurons (trained and
    shuffled pattern per seed) followed by one STDP step of every synapse; then a test presentation
    with the final and with the initial weights."""
    parts = neuron_parts(cf, exp)
    syn, syn_names = network_synapse(cf, exp)
    settings = _network_settings(cf, exp)
    times, duration, presentations, seeds, first_seed, read_gain = settings[:6]
    pulse_pa, pulse_ns, wave, syn_dt, n_program, program_v, rise = settings[6:]
    n_in = len(times)

    batch = 2 * seeds  # one compiled shape: the input batch is padded to it
    if n_in > batch:
        raise CircuitFileError(f"{cf.name}: experiment.seeds must be >= {int(np.ceil(n_in / 2))} for {n_in} inputs; got {seeds}")
    neurons, n = _neuron_batch(cf, parts, duration)
    t_mid = (np.arange(n) + 0.5) * cf.dt_ns

    # input neurons: one row per input time (identical neurons; the response depends only on the drive time)
    drive = [np.where((t_mid > s) & (t_mid < s + pulse_ns), pulse_pa, 0.0) for s in times]
    t, v_in, e_in = neurons(drive + [np.zeros(n)] * (batch - n_in))
    v_rest = float(v_in[0, 0])
    level, reset = v_rest + rise, v_rest + 0.5 * rise
    spikes_of = lambda v: detect_spikes(t, v, level, reset_v=reset)  # noqa: E731
    slot_spikes = [spikes_of(v_in[k]) for k in range(n_in)]
    if any(s.size == 0 for s in slot_spikes):
        raise CircuitFileError(
            f"{cf.name}: an input neuron does not fire for {pulse_pa:g} pA × {pulse_ns:g} ns; raise input_pulse_pa"
        )
    above = v_in[:n_in, 1:] - v_rest  # (slots, steps): each input's read voltage
    pats = _patterns(times, seeds, first_seed)

    # synapse time grid over one presentation
    n_syn = round(duration / syn_dt)
    t_syn = (np.arange(n_syn) + 0.5) * syn_dt
    pre_wave = [stdp_spike_wave(t_syn, s, **wave) for s in slot_spikes]
    # initial programming: write pulses of +program_v (1 ns every 10 ns) on each synapse, then a rest
    prog = np.where((t_syn % 10.0 < 1.0) & (t_syn < 10.0 * n_program), program_v, 0.0)
    _, w, state, e_prog = _train_synapses(syn, np.tile(prog, (seeds * n_in, 1)), syn_dt, None)
    weights = [w.reshape(seeds, n_in)]
    counts, raster, e_syn, e_out = [], [], [], []

    def present(w_si):
        rows = []
        for s, (order, shuffled) in enumerate(pats):
            for pat in (order, shuffled):
                rows.append(read_gain * sum(w_si[s, i] * above[pat[i]] for i in range(n_in)))
        _, v_out, e = neurons(rows)
        spk = [spikes_of(v_out[b]) for b in range(batch)]
        return spk, v_out, e

    for _ in range(presentations):
        spk, _, e = present(weights[-1])
        counts.append([[spk[2 * s].size, spk[2 * s + 1].size] for s in range(seeds)])
        raster.append(spk[0])
        e_out.append(float(e[0::2].sum()))
        du = [stdp_spike_wave(t_syn, spk[2 * s], **wave) - pre_wave[pats[s][0][i]] for s in range(seeds) for i in range(n_in)]
        _, w, state, e_s = _train_synapses(syn, np.array(du), syn_dt, state)
        weights.append(w.reshape(seeds, n_in))
        e_syn.append(float(e_s.sum()))
    spk_test, v_test, _ = present(weights[-1])
    spk_before, _, _ = present(weights[0])
    w_all = np.array(weights)  # (presentations + 1, seeds, inputs)
    figs, data = _figures(cf, out, t, v_in[:n_in], v_test, pats, slot_spikes, raster, spk_test, w_all, times, duration, level)
    energy_per = (
        (float(e_in[:n_in].sum()) + float(np.mean(e_out)) / seeds + float(np.mean(e_syn)) / seeds) if presentations else None
    )
    summary = _network_summary(
        settings,
        syn,
        syn_names,
        pats,
        (spk_test, spk_before),
        (counts, w_all),
        (energy_per, e_prog, v_rest, level),
    )
    return {**summary, "figures": figs, "data": data}


def _network_summary(cfg: _NetworkSettings, syn, syn_names, pats, tests, training, energy) -> dict:
    """The ``network`` summary: the selectivity from ``tests`` = (output spikes of the test presentation
    with the final weights, with the initial ones), ``training`` = (spike counts per presentation,
    weights), ``energy`` = (per presentation, programming, v_rest, spike level), and the synapse's STDP
    window."""
    spk_test, spk_before = tests
    counts, w_all = training
    energy_per, e_prog, v_rest, level = energy
    seeds, presentations, times, duration, first_seed = cfg.seeds, cfg.presentations, cfg.times, cfg.duration, cfg.first_seed
    fired = lambda sp, k: [bool(sp[2 * i + k].size) for i in range(seeds)]  # noqa: E731
    sel = selectivity(fired(spk_test, 0), fired(spk_test, 1))
    sel_before = selectivity(fired(spk_before, 0), fired(spk_before, 1))
    window_delays = [-300, -200, -100, -50, -20, 20, 50, 100, 200, 300]
    window = stdp_window(syn, window_delays, wave=cfg.wave, dt_ns=cfg.syn_dt)
    n_in = len(times)
    n_fire = sum(sel["per_seed"][s] > 0 for s in range(seeds))
    finding = (
        f"after {presentations} presentations the output fires for the trained pattern and not for its shuffle in "
        f"{n_fire} of {seeds} seeds: selectivity {sel['mean']:.2f} ± {sel['seed_std']:.2f} (seed s.d.; "
        f"{sel_before['mean']:.2f} ± {sel_before['seed_std']:.2f} with the initial weights)"
    )
    return {
        "finding": finding,
        "selectivity": sel["mean"],
        "selectivity_seed_std": sel["seed_std"],
        "selectivity_per_seed": sel["per_seed"],
        "selectivity_before_training": sel_before["mean"],
        "selectivity_before_training_seed_std": sel_before["seed_std"],
        "selectivity_meaning": "per seed: 1 if the output fires (>= 1 spike) for the trained pattern minus 1 if it fires for "
        "the shuffled one, in one test presentation with the weights at the end of training; mean and s.d. (ddof 1) over seeds",
        "n_neurons": n_in + 1,
        "n_synapses": n_in,
        "seeds": seeds,
        "presentations": presentations,
        "presentation_ns": duration,
        "input_times_ns": times,
        "patterns": [
            {"seed": first_seed + s, "trained_slot_of_input": o.tolist(), "shuffled_slot_of_input": sh.tolist()}
            for s, (o, sh) in enumerate(pats)
        ],
        "test_spike_count_trained": [int(spk_test[2 * s].size) for s in range(seeds)],
        "test_spike_count_shuffled": [int(spk_test[2 * s + 1].size) for s in range(seeds)],
        "initial_spike_count_trained": [int(spk_before[2 * s].size) for s in range(seeds)],
        "initial_spike_count_shuffled": [int(spk_before[2 * s + 1].size) for s in range(seeds)],
        "training_spike_counts_trained_shuffled": counts,
        "weights_ps": w_all.tolist(),
        "weights_meaning": "W = G+ - G- (pS) of each synapse [presentation][seed][input], before each presentation "
        "and after the last",
        "stdp_window": {"delays_ns": window_delays, "delta_w_ps": np.asarray(window).ravel().tolist()},
        "stdp_spike": cfg.wave,
        "read_gain": cfg.read_gain,
        "synapse_bias_v": syn.bias_v,
        "synapse_membranes": [syn_names["membrane_plus"], syn_names["membrane_minus"]],
        "energy_per_presentation_aj": energy_per,
        "energy_meaning": "aJ per presentation per seed: input neurons' membranes + output neuron's membranes + both membranes "
        "of every synapse (dissipated); the read amplifier and the spike drivers are ideal and not counted",
        "energy_programming_aj": float(e_prog.sum()) / seeds,
        "v_rest_v": v_rest,
        "spike_level_v": level,
    }


def _figures(cf, out, t, v_slots, v_test, pats, slot_spikes, raster, spk_test, w_all, times, duration, level):
    seeds, n_in = w_all.shape[1], w_all.shape[2]
    order = pats[0][0]
    fig, axes = figure(2, 1, figsize=(9, 6.5))
    ax = axes[0]
    for p, post in enumerate(raster):
        off = p * duration
        for i in range(n_in):
            xs = off + slot_spikes[order[i]]
            ax.plot(xs, np.full(xs.size, i), "|", color=PALETTE[0], ms=10)
        ax.plot(off + np.asarray(post), np.full(len(post), n_in), "|", color=PALETTE[1], ms=12, mew=2)
        ax.axvline(off, color="0.85", lw=0.6)
    ax.set_yticks(range(n_in + 1), [f"in {i}" for i in range(n_in)] + ["out"])
    ax.set_xlabel("t (ns), presentations back to back")
    ax.set_title(f"training raster, seed 0 (trained pattern; {len(raster)} presentations)", fontsize=9)
    ax = axes[1]
    ax.plot(t, v_test[0], color=PALETTE[1], lw=1.2, label="output, trained pattern (test)")
    ax.plot(t, v_test[1], color=PALETTE[0], lw=1.2, label="output, shuffled pattern (test)")
    ax.axhline(level, color="0.5", ls=":", lw=0.8)
    ax.set_xlabel("t (ns)")
    ax.set_ylabel("V (V)")
    ax.legend(fontsize=7, loc="upper right", frameon=False)
    ax.set_title("after training, seed 0", fontsize=9)
    fig.suptitle(f"{cf.name}: {n_in} input ionic neurons → 1 output through plastic ionic synapses", fontsize=10)
    fig.tight_layout()
    names = [save_figure_atomic(fig, out / "network_raster.png").name]
    fig, ax = figure(figsize=(7, 4.5))
    k = np.arange(w_all.shape[0])
    for i in range(n_in):
        ax.plot(k, w_all[:, 0, i], "o-", ms=3, color=PALETTE[i % len(PALETTE)], label=f"in {i} (slot at {times[order[i]]:g} ns)")
        for s in range(1, seeds):
            ax.plot(k, w_all[:, s, i], "-", lw=0.5, color="0.75")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xlabel("presentation")
    ax.set_ylabel("W = G₊ − G₋ (pS)")
    ax.set_title("synaptic weights over training (seed 0 in colour, other seeds grey)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    names.append(save_figure_atomic(fig, out / "network_weights.png").name)
    wcols = {"presentation_count": k}
    for s in range(seeds):
        for i in range(n_in):
            wcols[f"W[seed {s}, in {i}]_pS"] = w_all[:, s, i]
    vcols = {"t_ns": t, "V(out)[trained, test]_V": v_test[0], "V(out)[shuffled, test]_V": v_test[1]}
    for j in range(v_slots.shape[0]):
        vcols[f"V(input at slot {j})_V"] = v_slots[j]
    data = [write_columns_csv(out / "network_weights.csv", wcols).name, write_columns_csv(out / "network_traces.csv", vcols).name]
    return names, data
