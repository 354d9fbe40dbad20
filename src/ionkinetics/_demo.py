"""``ionkinetics demo``: the shipped calibrations, as the paper's figures and a summary table.

Writes to the output folder: ``gv_curves.png`` (log G–V per pore, Figure 5 style, with the
published points), ``step_responses.png`` (current / w / V under a 0.5 V step, Figure 4
style: mean-field thick, 16-pore stochastic membranes thin), ``potentiation.png`` (a pulse
train on an activating membrane: potentiation and forgetting), and ``summary.csv`` /
``summary.json`` with conductances, α, β, roles, time constants and the predicted switching
energy per pore. The switching energies are predictions: they were never fitted.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import jax
import numpy as np

from ._io import write_json_atomic, write_text_atomic
from .calibrate import list_calibrations, load_calibration
from .calibrate._summary import STEP_V, summarise_calibration
from .kinetics import protocols, simulate, stack_params, switching_energy

__all__ = ["run_demo"]

DT_NS = 0.05
STEP = dict(v=STEP_V, t_on_ns=20.0, t_off_ns=120.0, duration_ns=400.0)
N_STOCHASTIC_TRACES = 10
N_PORES_PER_MEMBRANE = 16
# Held-out numbers from section 2.3, never fitted: compared against the model's prediction.
PUBLISHED_SWITCHING_AJ = {"crown6:NaCl@1.0+KCl@0.5": 0.3, "B3N:KCl@1.0+RbCl@0.5": 0.1}
POTENTIATION = dict(amplitude_v=0.5, width_ns=2.0, period_ns=25.0, count=8, t_start_ns=20.0, duration_ns=600.0)


def _batched_step_runs(cals, key):
    """Mean-field and stochastic step responses, one compiled run per state count."""
    proto = protocols.step(**STEP)
    v_k = proto.sample(DT_NS)
    out = {}
    groups: dict[int, list] = {}
    for cal in cals:
        groups.setdefault(len(cal.state_names), []).append(cal)
    for group in groups.values():
        batch = stack_params([c.params for c in group])
        mean = simulate(batch, proto, DT_NS)
        for i, cal in enumerate(group):
            key, sub = jax.random.split(key)
            noisy = simulate(
                cal, np.tile(v_k, (N_STOCHASTIC_TRACES, 1)), DT_NS, n_pores=N_PORES_PER_MEMBRANE, key=sub, save_every=10
            )
            out[cal.system_id] = (_index(mean, i), noisy)
    return out


def _index(trace, i):
    from dataclasses import replace

    return replace(
        trace,
        v=trace.v[i],
        p=trace.p[i],
        w=trace.w[i],
        g_ps=trace.g_ps[i],
        i_pa=trace.i_pa[i],
        e_aj=trace.e_aj[i],
        ok=trace.ok[i],
    )


def _plot_gv(cals, path):
    import matplotlib.pyplot as plt

    from . import conductance

    pores = sorted({c.system.pore for c in cals}, key=lambda p: ["crown6", "B3N", "B6N3", "B10N6"].index(p))
    fig, axes = plt.subplots(1, len(pores), figsize=(5.2 * len(pores), 4.2), squeeze=False)
    v = np.linspace(0.0, 0.5, 101)
    for ax, pore in zip(axes[0], pores, strict=True):
        for cal in (c for c in cals if c.system.pore == pore):
            style = "-" if not cal.dopants else "--"
            label = cal.system_id.split(":", 1)[1] + (" (assumed)" if cal.provenance.get("contains_assumed_values") else "")
            (line,) = ax.semilogy(v, conductance(cal, v), style, lw=2, label=label)
            pts = [t for t in cal.provenance.get("targets", []) if t["kind"] == "conductance" and not t.get("assumed")]
            if pts:
                ax.semilogy([t["v"] for t in pts], [t["g_ps"] for t in pts], "o", color=line.get_color(), ms=7, mec="k")
        ax.set_title(f"{pore}  (lines: model; dots: published)")
        ax.set_xlabel("ΔV (V)")
        ax.set_ylabel("G per pore (pS)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _plot_stacked(columns, path, title):
    """columns: list of (label, mean Trace, stochastic Trace or None)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        3, len(columns), figsize=(4.2 * len(columns), 7.2), sharex="col", squeeze=False, gridspec_kw={"height_ratios": [2, 2, 1]}
    )
    for j, (label, mean, noisy) in enumerate(columns):
        ax_i, ax_w, ax_v = axes[:, j]
        if noisy is not None:
            for k in range(noisy.w.shape[0]):
                ax_i.plot(noisy.t_ns, noisy.i_pa[k] / noisy.n_pores, color="0.75", lw=0.6)
                ax_w.plot(noisy.t_ns, noisy.w[k], color="0.75", lw=0.6)
        ax_i.plot(mean.t_ns, mean.i_pa, color="C3", lw=2)
        ax_w.plot(mean.t_ns, mean.w, color="C0", lw=2)
        ax_v.plot(mean.t_ns, mean.v, color="k", lw=1.5, drawstyle="steps-post")
        ax_i.set_title(label, fontsize=9)
        ax_w.set_ylim(-0.03, 1.03)
        ax_v.set_xlabel("t (ns)")
        if j == 0:
            ax_i.set_ylabel("I per pore (pA)")
            ax_w.set_ylabel("w")
            ax_v.set_ylabel("V (V)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _potentiation(cals):
    """Pulse-train response of the activating membranes; w read just after each pulse."""
    proto = protocols.pulse_train(**POTENTIATION)
    results = {}
    for cal in cals:
        tr = simulate(cal, proto, DT_NS)
        ends = proto.pulse_onsets_ns() + POTENTIATION["width_ns"]
        w_after = np.interp(ends, tr.t_ns, tr.w)
        last = ends[-1]
        w_end = float(np.interp(POTENTIATION["duration_ns"], tr.t_ns, tr.w))
        results[cal.system_id] = (
            tr,
            {
                "w_after_each_pulse": w_after.tolist(),
                "w_at_end": w_end,
                "t_after_last_pulse_ns": POTENTIATION["duration_ns"] - float(last),
            },
        )
    return proto, results


def _csv(rows) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def _circuit_experiments(out: Path) -> dict:
    """Every shipped circuit experiment (``circuits/*.toml``), each into its own folder."""
    from concurrent.futures import ThreadPoolExecutor

    from .circuits import list_circuits, load_circuit, run_experiment

    files = [load_circuit(path) for path in list_circuits()]
    # two threads: XLA compiles (most of the time here) release the GIL, so two cores share them
    with ThreadPoolExecutor(max_workers=2) as pool:
        summaries = list(pool.map(lambda cf: run_experiment(cf, out / cf.name), files))
    return {cf.name: {k: v for k, v in s.items() if k not in ("file", "figures")} for cf, s in zip(files, summaries, strict=True)}


def run_demo(out_dir, *, seed: int = 0, progress=None) -> dict:
    """Run the demo and write its files into ``out_dir``; returns the summary dict."""
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def tick(message):
        if progress is not None:
            progress(message)

    cals = [load_calibration(s) for s in list_calibrations()]
    if not cals:
        raise RuntimeError("no shipped calibrations found; run the fits in calibration/regenerate first")
    mixtures = [c for c in cals if c.dopants]
    tick("G-V curves and summary")
    rows = [summarise_calibration(c) for c in cals]
    _plot_gv(cals, out / "gv_curves.png")
    tick("step responses (mean-field and stochastic)")
    runs = _batched_step_runs(mixtures, jax.random.key(seed))
    for row in rows:
        if row["system"] in runs:
            mean, _ = runs[row["system"]]
            t_on = STEP["t_on_ns"]
            row["e_switch_tau_aj"] = float(switching_energy(mean, t_on, t_on + row["tau_on_0p5v_ns"]))
            row["e_switch_4tau_aj"] = float(switching_energy(mean, t_on, t_on + 4 * row["tau_on_0p5v_ns"]))
            row["published_e_switch_aj"] = PUBLISHED_SWITCHING_AJ.get(row["system"], "")
    order = sorted(mixtures, key=lambda c: (c.system.pore != "crown6", c.system_id))
    _plot_stacked(
        [
            (c.system_id + (" (assumed)" if c.provenance.get("contains_assumed_values") else ""), *runs[c.system_id])
            for c in order
        ],
        out / "step_responses.png",
        f"0.5 V step from {STEP['t_on_ns']:g} to {STEP['t_off_ns']:g} ns: mean-field (thick) and "
        f"{N_STOCHASTIC_TRACES} membranes of {N_PORES_PER_MEMBRANE} stochastic pores (thin)",
    )
    tick("pulse-train potentiation")
    activating = [
        c
        for c in mixtures
        if any(r["system"] == c.system_id and "activator" in r["role"] and "inactivator" not in r["role"] for r in rows)
    ]
    proto, pot = _potentiation(activating)
    _plot_stacked(
        [(sid, tr, None) for sid, (tr, _) in pot.items()],
        out / "potentiation.png",
        f"{proto.count} pulses of {proto.amplitude_v:g} V, {proto.width_ns:g} ns every {proto.period_ns:g} ns: "
        "w grows pulse by pulse (potentiation) and relaxes after (forgetting)",
    )
    tick("circuit experiments")
    circuits = _circuit_experiments(out / "circuits")
    summary = {
        "units": "conductance pS per pore, voltage V, time ns, energy aJ per pore",
        "switching_energy_window": "from the step onset for one (tau) and four (4tau) integral relaxation times of w at 0.5 V",
        "systems": rows,
        "potentiation": {"protocol": POTENTIATION, "systems": {k: v for k, (_, v) in pot.items()}},
        "circuits": circuits,
        "files": ["gv_curves.png", "step_responses.png", "potentiation.png", "summary.csv", "summary.json", "circuits/"],
    }
    write_text_atomic(out / "summary.csv", _csv(rows))
    write_json_atomic(out / "summary.json", json.loads(json.dumps(summary, default=float)))
    return summary
