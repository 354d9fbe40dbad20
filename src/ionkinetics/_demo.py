"""``ionkinetics demo``: the shipped calibrations, as the paper's figures and a summary table.

Writes to the output folder: ``gv_curves.png`` (log G–V per pore, Figure 5 style: the fitted
C·e^{αV} lines with α, Laplace bands, published points; :func:`plot_gv_curves`),
``step_responses.png`` (current and w under a 0.5 V step, Figure 4 style: mean-field thick,
16-pore stochastic membranes thin), ``potentiation.png`` (a pulse train on each activating
membrane, each panel titled with what its w trace shows), a CSV of every trace they draw
(``gv_curves.csv``, ``step_responses.csv``, ``potentiation.csv``; units in the column names) and
``summary.csv`` / ``summary.json`` with conductances, α, β, roles, time constants and the predicted
switching energy per pore. Figures are png, pdf or svg (``figure_format``). The switching energies
are predictions: they were never fitted. α and C are defined once
(:data:`ionkinetics.calibrate.GV_FIT_DEFINITION`): the figure, the table and the README quote the same
numbers.
"""

from __future__ import annotations

import csv
import io
import json
import textwrap
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ._io import PALETTE, figure_output, save_figure, write_columns_csv, write_json_atomic, write_text_atomic
from .calibrate import (
    GV_FIT_DEFINITION,
    STEP_V,
    conductance_band,
    gv_exponential_fit,
    gv_fit_range_v,
    list_calibrations,
    load_calibration,
    summarise_calibration,
)
from .experiments import describe_pulse_train_response
from .kinetics import protocols, simulate, stack_params, switching_energy

__all__ = ["gv_fit_range_v", "plot_gv_curves", "run_demo"]


def save_name(path) -> str:
    """The name :func:`ionkinetics._io.save_figure` gives ``path`` in the current figure format."""
    from ._io import current_figure_output

    return Path(path).with_suffix("." + current_figure_output()[0]).name


DT_NS = 0.05
STEP = dict(v=STEP_V, t_on_ns=20.0, t_off_ns=120.0, duration_ns=400.0)
N_STOCHASTIC_TRACES = 10
N_PORES_PER_MEMBRANE = 16
# Held-out numbers from section 2.3, never fitted: compared against the model's prediction.
PUBLISHED_SWITCHING_AJ = {"crown6:NaCl@1.0+KCl@0.5": 0.3, "B3N:KCl@1.0+RbCl@0.5": 0.1}
# The paper integrates E = ∫ I·V dt "over the activation/inactivation time τ" (section 2.3) and states
# those times as "within 5 ns" (crown6 K+ activation) and "within 10 ns" (B3N Rb+ inactivation):
# the prediction integrates over exactly those windows from the 0.5 V step's onset. τ and 4τ (the
# model's integral relaxation time) are shown beside it.
PAPER_SWITCHING_WINDOW_NS = {"crown6:NaCl@1.0+KCl@0.5": 5.0, "B3N:KCl@1.0+RbCl@0.5": 10.0}
POTENTIATION: dict[str, Any] = dict(amplitude_v=0.5, width_ns=2.0, period_ns=25.0, count=8, t_start_ns=20.0, duration_ns=600.0)


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


def _dopant_share(trace, t0_ns, t1_ns) -> float:
    """Fraction of ∫ I·V dt over [t0, t1] carried by the dopant's displacement current (the rest is
    the carrier's G·V²), by the trapezoid rule on the saved points."""
    sel = (trace.t_ns >= t0_ns) & (trace.t_ns <= t1_ns)
    t, v = trace.t_ns[sel], trace.v[sel]
    total = np.trapezoid(trace.i_pa[sel] * v, t)
    dopant = np.trapezoid((trace.i_pa[sel] - trace.g_ps[sel] * v) * v, t)
    return float(dopant / total) if total else 0.0


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


_PORE_ORDER = ("crown6", "B3N", "B6N3", "B10N6")
GV_BAND_SAMPLES = 300


@jax.jit
def _g_curve_ps(params, v):
    """Steady-state G (pS per pore) at each of ``v``: one compiled program per state count."""
    from .kinetics import conductance_ps

    return jax.vmap(lambda x: conductance_ps(params, x))(v)


def plot_gv_curves(cals, path=None, *, seed: int = 0):
    """log G vs ΔV per pore of every calibration in ``cals``, in the style of the paper's Figure 5:
    the model's steady-state G(V) (thin line) with its Laplace band (16–84 % of the parameters'
    posterior, shaded), the least-squares G = C·e^{αV} line through the model over the paper's
    voltage range (thick; dashed for a mixture, solid for a single salt, as the paper draws them) with
    α and C printed (:func:`ionkinetics.calibrate.gv_exponential_fit`, the same numbers as the demo's
    table), and the published points (filled; open: assumed values, listed only where there are
    some). The legend sits below each panel, off the data. Returns the Figure; saves it to ``path``
    when given (format from :func:`ionkinetics._io.figure_output`). Nothing is hard-coded: ranges,
    points and bands come from the calibrations."""
    from matplotlib.figure import Figure

    class _GVFigure(Figure):
        gv_fits: dict  # the fitted C, α and range per system, as drawn

    pores = sorted({c.system.pore for c in cals}, key=lambda p: _PORE_ORDER.index(p) if p in _PORE_ORDER else 99)
    n_max = max(sum(c.system.pore == p for c in cals) for p in pores)
    fig = _GVFigure(figsize=(6.0 * len(pores), 4.2 + 0.36 * (n_max + 3)), layout="constrained")
    axes = fig.subplots(1, len(pores), squeeze=False)[0]
    v_model = np.linspace(0.02, 0.5, 97)
    rows = {}
    for ax, pore in zip(axes, pores, strict=True):
        ax.set_prop_cycle(color=list(PALETTE))
        any_assumed = False
        for k, cal in enumerate(c for c in cals if c.system.pore == pore):
            rows[cal.system_id], assumed = _draw_gv_system(ax, cal, cals, PALETTE[k % len(PALETTE)], v_model, seed)
            any_assumed |= assumed
        _finish_gv_panel(ax, pore, any_assumed)
    if path is not None:
        save_figure(fig, path)
    fig.gv_fits = rows  # the fitted C, α and range per system, as drawn
    return fig


def _draw_gv_system(ax, cal, cals, color, v_model, seed: int):
    """One calibration on its pore's panel: the model's G(V), its Laplace band, the C·e^{αV} fit and
    the published points. Returns (the row of ``fig.gv_fits``, whether an assumed point was drawn)."""
    gv = gv_exponential_fit(cal)
    c_ps, alpha = gv["c_ps"], gv["alpha_per_v"]
    lo, hi = gv["fit_v"][0], gv["fit_v"][-1]
    v_fit = np.linspace(lo, hi, 25)
    g_model = np.asarray(_g_curve_ps(cal.params, v_model))
    name = cal.system_id.split(":", 1)[1] + (" (assumed)" if cal.provenance.get("contains_assumed_values") else "")
    paper = [t for t in cal.provenance.get("targets", []) if t["kind"] == "gv_fit" and not t.get("assumed")]
    stated = ""
    if paper and "alpha_per_v" in paper[0]:
        stated = f"; paper α = {paper[0]['alpha_per_v']:+.1f}"
    ax.semilogy(v_model, g_model, "-", color=color, lw=1.0, alpha=0.8)
    try:
        band = conductance_band(cal, v_model, cals=cals, seed=seed, n_samples=GV_BAND_SAMPLES)
    except Exception as exc:  # a calibration whose posterior cannot be sampled: say so, draw none
        band, note = None, f" (no band: {type(exc).__name__})"
    else:
        note = "" if band is not None else " (no band: no covariance or targets file)"
    if band is not None:
        ax.fill_between(v_model, band[0], band[1], color=color, alpha=0.18, lw=0)
    ax.semilogy(
        v_fit,
        c_ps * np.exp(alpha * v_fit),
        "--" if cal.dopants else "-",
        color=color,
        lw=2.4,
        label=f"{name}: α = {alpha:+.1f} V⁻¹, C = {c_ps:.3g} pS{stated}{note}",
    )
    any_assumed = False
    for t in cal.provenance.get("targets", []):
        if t["kind"] != "conductance":
            continue
        assumed = bool(t.get("assumed"))
        any_assumed |= assumed
        ax.semilogy([t["v"]], [t["g_ps"]], "o", ms=8, mfc="none" if assumed else color, mec="k", mew=1.2, zorder=5)
    row = {
        "fit_range_v": [lo, hi],
        "fit_v": gv["fit_v"],
        "c_ps": c_ps,
        "alpha_per_v": alpha,
        "band": band is not None,
        "v_v": v_model,
        "g_model_ps": g_model,
        "band_ps": band,
    }
    return row, any_assumed


def _finish_gv_panel(ax, pore, any_assumed: bool) -> None:
    """A pore's panel: the legend's style entries (below the panel, off the data), title, axes, grid."""
    ax.plot([], [], "o", mfc="0.6", mec="k", label="published point (paper's text)")
    if any_assumed:
        ax.plot([], [], "o", mfc="none", mec="k", label="assumed point (no number published)")
    ax.fill_between([], [], [], color="0.5", alpha=0.25, label="Laplace band, 16–84 %")
    ax.plot([], [], "-", color="0.3", lw=1.0, label="model G(V)")
    ax.plot([], [], "--", color="0.3", lw=2.4, label="C·e^(αΔV) fit (solid: single salt)")
    ax.set_title(f"{pore}: model G(V) and its exponential fit over the paper's range", fontsize=9)
    ax.set_xlabel("ΔV (V)")
    ax.set_ylabel("G per pore (pS)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False, ncol=1)


def _gv_columns(fits) -> dict:
    """The G–V figure's curves as CSV columns: the model and its band per system."""
    columns = {}
    for sid, row in fits.items():
        columns.setdefault("V_V", row["v_v"])
        columns[f"G_model({sid})_pS"] = row["g_model_ps"]
        if row["band_ps"] is not None:
            columns[f"G_band16({sid})_pS"] = row["band_ps"][0]
            columns[f"G_band84({sid})_pS"] = row["band_ps"][1]
        columns[f"G_fit({sid})_pS"] = row["c_ps"] * np.exp(row["alpha_per_v"] * np.asarray(row["v_v"]))
    return columns


def _off_scale_limits(t, y, v, *, skip_ns: float = 10.0):
    """y-limits that show the plateaus of ``y`` rather than its spikes: the range of y away from
    the first ``skip_ns`` after each change of the drive ``v``, widened by 10 %; None when the
    spikes are within twice that range (then the whole trace fits)."""
    edges = t[1:][np.abs(np.diff(v)) > 1e-12]
    if edges.size:  # the segments that start at a change: short pulses keep their plateaus
        skip_ns = min(skip_ns, 0.25 * float(np.diff(np.r_[edges, t[-1]]).min()))
    keep = np.ones(t.size, bool)
    for e in edges:
        keep &= ~((t >= e) & (t < e + skip_ns))
    lo, hi = float(np.min(y[keep])), float(np.max(y[keep]))
    span = hi - lo
    if span <= 1e-3 * float(np.max(np.abs(y))) or (np.min(y) >= lo - span and np.max(y) <= hi + span):
        return None
    return lo - 0.1 * span, hi + 0.1 * span


def _plot_stacked(columns, path, title):
    """columns: list of (label, mean Trace, stochastic Trace or None): one row per system, current
    and w side by side, the drive shaded; a current spike that would flatten the plateaus is drawn
    off scale with its peak written in the panel. Returns the CSV columns of every trace drawn."""
    from matplotlib.figure import Figure

    n = len(columns)
    fig = Figure(figsize=(10.5, 2.3 * n + 0.8), layout="constrained")
    axes = fig.subplots(n, 2, sharex=True, squeeze=False)
    data = {}
    for j, (label, mean, noisy) in enumerate(columns):
        ax_i, ax_w = axes[j]
        sid = label.split("\n")[0].split(" (")[0]
        data.setdefault("t_ns", mean.t_ns)
        data.setdefault("V_V", mean.v)
        data[f"I({sid}) per pore_pA"] = mean.i_pa
        data[f"w({sid})_fraction"] = mean.w
        on = mean.v > 1e-12
        for ax in (ax_i, ax_w):
            ax.fill_between(mean.t_ns, 0, 1, where=on, transform=ax.get_xaxis_transform(), color="0.9", lw=0, step="post")
            ax.grid(True, alpha=0.3)
        if noisy is not None:
            for k in range(noisy.w.shape[0]):
                ax_i.plot(noisy.t_ns, noisy.i_pa[k] / noisy.n_pores, color="0.7", lw=0.5)
                ax_w.plot(noisy.t_ns, noisy.w[k], color="0.7", lw=0.5)
        ax_i.plot(mean.t_ns, mean.i_pa, color=PALETTE[1], lw=1.8)
        ax_w.plot(mean.t_ns, mean.w, color=PALETTE[0], lw=1.8)
        limits = _off_scale_limits(np.asarray(mean.t_ns), np.asarray(mean.i_pa), np.asarray(mean.v))
        if limits is not None:
            ax_i.set_ylim(*limits)
            i_pa = np.asarray(mean.i_pa)
            for k in {int(np.argmax(i_pa)), int(np.argmin(i_pa))}:  # each spike off the axis, its value written
                up = i_pa[k] > limits[1]
                if not (up or i_pa[k] < limits[0]):
                    continue
                ax_i.annotate(
                    f"transient {float(i_pa[k]):.3g} pA (off scale)",
                    xy=(float(mean.t_ns[k]), limits[1] if up else limits[0]),
                    xytext=(8, -12 if up else 12),
                    textcoords="offset points",
                    fontsize=7,
                    va="center",
                    arrowprops={"arrowstyle": "-|>", "lw": 0.6, "color": "k"},
                )
        ax_w.set_ylim(-0.03, 1.03)
        ax_i.set_ylabel("I per pore (pA)")
        ax_w.set_ylabel("w (open fraction)")
        ax_i.set_title(label, fontsize=8, loc="left")
    axes[-1, 0].set_xlabel("t (ns)")
    axes[-1, 1].set_xlabel("t (ns)")
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)
    return data


def _potentiation(cals):
    """Pulse-train response of the activating membranes; w read just after each pulse."""
    proto = protocols.pulse_train(**POTENTIATION)
    results = {}
    for cal in cals:
        tr = simulate(cal, proto, DT_NS)
        onsets = proto.pulse_onsets_ns()
        ends = onsets + POTENTIATION["width_ns"]
        w_after = np.interp(ends, tr.t_ns, tr.w)
        w_before = np.interp(onsets - DT_NS, tr.t_ns, tr.w)  # the last step before each pulse
        last = ends[-1]
        w_end = float(np.interp(POTENTIATION["duration_ns"], tr.t_ns, tr.w))
        results[cal.system_id] = (
            tr,
            {
                "description": describe_pulse_train_response(w_after, w_before),
                "w_after_each_pulse": w_after.tolist(),
                "w_before_each_pulse": w_before.tolist(),
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


def _circuit_experiments(out: Path, figure_format: str, dpi: int) -> dict:
    """Every shipped circuit experiment (``circuits/*.toml``), each into its own folder."""
    from concurrent.futures import ThreadPoolExecutor

    from .circuits import list_circuits, load_circuit
    from .experiments import run_experiment

    # files marked in_demo = false (the neuron's and the synapse's long searches) run on their own
    files = [cf for cf in (load_circuit(path) for path in list_circuits()) if cf.experiment.get("in_demo", True)]
    # two threads: XLA compiles (most of the time here) release the GIL, so two cores share them
    with ThreadPoolExecutor(max_workers=2) as pool:
        summaries = list(pool.map(lambda cf: run_experiment(cf, out / cf.name, figure_format=figure_format, dpi=dpi), files))
    return {cf.name: {k: v for k, v in s.items() if k not in ("file", "figures")} for cf, s in zip(files, summaries, strict=True)}


def run_demo(out_dir, *, seed: int = 0, progress=None, figure_format: str = "png", dpi: int | None = None) -> dict:
    """Run the demo and write its files into ``out_dir``; returns the summary dict. Figures are
    ``figure_format`` (png, pdf or svg) at ``dpi`` (default 300)."""
    from ._io import DEFAULT_DPI

    dpi = DEFAULT_DPI if dpi is None else dpi
    with figure_output(figure_format, dpi):
        return _run_demo(Path(out_dir), seed, progress, figure_format, dpi)


def _run_demo(out, seed, progress, figure_format, dpi) -> dict:
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
    gv = plot_gv_curves(cals, out / "gv_curves.png", seed=seed)
    files = [save_name(out / "gv_curves.png"), write_columns_csv(out / "gv_curves.csv", _gv_columns(gv.gv_fits)).name]
    tick("step responses (mean-field and stochastic)")
    runs = _batched_step_runs(mixtures, jax.random.key(seed))
    for row in rows:
        if row["system"] in runs:
            mean, _ = runs[row["system"]]
            t_on = STEP["t_on_ns"]
            row["e_switch_tau_aj"] = float(switching_energy(mean, t_on, t_on + row["tau_on_0p5v_ns"]))
            row["e_switch_4tau_aj"] = float(switching_energy(mean, t_on, t_on + 4 * row["tau_on_0p5v_ns"]))
            window = PAPER_SWITCHING_WINDOW_NS.get(row["system"])
            if window is not None:
                row["paper_window_ns"] = window
                row["e_switch_paper_window_aj"] = float(switching_energy(mean, t_on, t_on + window))
                row["e_switch_dopant_share"] = _dopant_share(mean, t_on, t_on + window)
            row["published_e_switch_aj"] = PUBLISHED_SWITCHING_AJ.get(row["system"], "")
    order = sorted(mixtures, key=lambda c: (c.system.pore != "crown6", c.system_id))
    traces = _plot_stacked(
        [
            (c.system_id + (" (assumed)" if c.provenance.get("contains_assumed_values") else ""), *runs[c.system_id])
            for c in order
        ],
        out / "step_responses.png",
        f"0.5 V step from {STEP['t_on_ns']:g} to {STEP['t_off_ns']:g} ns (shaded): mean-field (thick) and "
        f"{N_STOCHASTIC_TRACES} membranes of {N_PORES_PER_MEMBRANE} stochastic pores (thin grey)",
    )
    files += [save_name(out / "step_responses.png"), write_columns_csv(out / "step_responses.csv", traces).name]
    tick("pulse-train potentiation")
    activating = [
        c
        for c in mixtures
        if any(r["system"] == c.system_id and "activator" in r["role"] and "inactivator" not in r["role"] for r in rows)
    ]
    proto, pot = _potentiation(activating)
    traces = _plot_stacked(
        [(sid + "\n" + textwrap.fill(row["description"], 90), tr, None) for sid, (tr, row) in pot.items()],
        out / "potentiation.png",
        f"{proto.count} pulses of {proto.amplitude_v:g} V, {proto.width_ns:g} ns every {proto.period_ns:g} ns (shaded) on the "
        "activating systems; each panel says what its w trace shows",
    )
    files += [save_name(out / "potentiation.png"), write_columns_csv(out / "potentiation.csv", traces).name]
    tick("circuit experiments")
    circuits = _circuit_experiments(out / "circuits", figure_format, dpi)
    summary = {
        "units": "conductance pS per pore, voltage V, time ns, energy aJ per pore",
        "switching_energy_window": (
            "E = integral of I*V (carrier current plus the dopant's displacement current) from the 0.5 V step's onset: "
            "e_switch_paper_window_aj over the paper's stated switching time (5 ns crown6 K+ activation, 10 ns B3N Rb+ "
            "inactivation; the prediction), e_switch_tau_aj and e_switch_4tau_aj over one and four integral relaxation "
            "times of w; never fitted"
        ),
        "systems": rows,
        "potentiation": {"protocol": POTENTIATION, "systems": {k: v for k, (_, v) in pot.items()}},
        "circuits": circuits,
        "gv_fit_definition": GV_FIT_DEFINITION,
        "files": [*files, "summary.csv", "summary.json", "circuits/"],
    }
    write_text_atomic(out / "summary.csv", _csv(rows))
    write_json_atomic(out / "summary.json", json.loads(json.dumps(summary, default=float)))
    return summary
