"""Run a task file: the physical reservoir, the same-size echo-state network and a linear delay
line on the same series and splits; energy and input rate; optionally an inverse design. Writes
figures and ``summary.json`` (atomic writes)."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .._io import PALETTE, save_figure, write_columns_csv, write_json_atomic
from ..kinetics import mean_field_scan, steady_state
from ._delay import DelayReservoir
from ._design import design_loss, optimise_design
from ._esn import delay_line, tune_esn
from ._readout import accuracy, fit_ridge, memory_capacity, nrmse, select_ridge
from ._reservoir import Reservoir, make_mask
from ._series import mackey_glass, narma10, waveforms

__all__ = [
    "ANCHORS",
    "SUMMARY_SCHEMA",
    "build_reservoir",
    "check_energy",
    "horizon_steps",
    "make_series",
    "run_task",
    "select_gains",
]

SUMMARY_SCHEMA = "ionkinetics.task-summary/1"

# Published numbers of the anchors, quoted only where a source could be read; none of them ran the
# same task at the same size as here, so they are context, not a like-for-like comparison.
ANCHORS = [
    {
        "work": "Zhong et al., Nat. Commun. (2021), doi 10.1038/s41467-020-20692-1 (dynamic-memristor parallel reservoir)",
        "task": "Henon map prediction",
        "metric": "nrmse",
        "value": 0.046,
        "size": "M x N = 4 x 25 = 100 (mask length 4, 25 parallel memristors)",
        "source": "https://www.nature.com/articles/s41467-020-20692-1 (abstract; Fig. 4 caption)",
    },
    {
        "work": "Zhong et al. 2021 (as above)",
        "task": "spoken-digit recognition",
        "metric": "word error rate",
        "value": 0.004,
        "size": "not quoted here",
        "source": "https://www.nature.com/articles/s41467-020-20692-1 (abstract)",
    },
    {
        "work": "Liang et al., Nat. Commun. 13, 1549 (2022), doi 10.1038/s41467-022-29260-1 (rotating-neuron reservoir)",
        "task": "Mackey-Glass one-step prediction",
        "metric": "nrmse",
        "value": 0.17,
        "size": "one 8-neuron eRNR",
        "source": "https://www.nature.com/articles/s41467-022-29260-1 (Fig. 4 caption)",
    },
    {
        "work": "Liang et al. 2022 (as above)",
        "task": "Mackey-Glass one-step prediction",
        "metric": "nrmse",
        "value": 0.03,
        "size": "eight parallel 8-neuron eRNRs (M = 8, N = 8)",
        "source": "https://www.nature.com/articles/s41467-022-29260-1 (Fig. 4 caption)",
    },
    {
        "work": "Liang et al. 2022 (as above)",
        "task": "handwriting classification, all-analog with a memristor readout",
        "metric": "accuracy",
        "value": 0.94,
        "size": "not quoted here",
        "source": "https://www.nature.com/articles/s41467-022-29260-1 (abstract)",
    },
    {
        "work": "Kamsma et al., Faraday Discuss. (2026), doi 10.1039/D5FD00168D, arXiv 2601.14986 (fluidic iontronic "
        "memristor circuits, pyontronics)",
        "task": "Mackey-Glass, tau = 17, 10 steps ahead",
        "metric": "nrmse",
        "value": 0.043,
        "size": "45 memristors at 39.8 pW (15 memristors: NRMSE 0.059 at 15.8 pW)",
        "source": "as quoted in issue 25; the stored text of arXiv 2601.14986 gave only the abstract, so the sampling "
        "interval and step time (and hence the energy per step) could not be read",
    },
    {
        "work": "Kamsma et al., Chaos 35, 093133 (2025) (iontronic echo-state and band-pass networks); "
        "Kamsma et al., arXiv 2601.14986 (pyontronics)",
        "task": "NARMA / time-series benchmarks",
        "metric": "nrmse",
        "value": None,
        "size": None,
        "source": "abstracts at https://arxiv.org/abs/2505.13451 and https://arxiv.org/html/2601.14986v1 read; "
        "no NRMSE, size or energy figure could be read from the stored text, so none is quoted",
    },
]


def make_series(task: dict, seed: int):
    """``(u, y, scaled_u)`` for a task: raw input, target aligned with it, input scaled to [−1, 1]
    (Mackey–Glass: the target is the series ``horizon_steps`` samples ahead; the input is scaled
    from the washout and training samples' range with a 5 % margin, clipped, as a
    driver saturates; the count clipped is in the summary). Waveform splits count periods; the
    series returned are per sample."""
    kind = task["kind"]
    n = task["washout"] + task["train"] + task["val"] + task["test"]
    if kind == "narma10":
        u, y = narma10(n, seed=seed)
        return u, y, 4.0 * u - 1.0
    if kind == "mackey-glass":
        h = task.get("horizon_steps", 1)
        x = mackey_glass(n + h, tau=task["tau"], sample_interval=task["sample_interval"], dt=task["dt"])
        u, y = x[:n], x[h:]  # horizon_steps samples ahead
        seen = u[: task["washout"] + task["train"]]  # scaled from what the training split saw, 5 % margin
        lo, hi = seen.min() - 0.05 * np.ptp(seen), seen.max() + 0.05 * np.ptp(seen)
        return u, y, np.clip(2.0 * (u - lo) / (hi - lo) - 1.0, -1.0, 1.0)  # a driver saturates at its range
    u, c = waveforms(n, seed=seed, period=task["period"])
    return u, c, u


def splits(task: dict):
    """The train, validation and test slices of a series, after the washout; the task's counts are input steps,
    or for a waveform task periods of ``period`` samples each."""
    per = task.get("period", 1) if task["kind"] == "waveform" else 1
    w, a, b, c = (task[k] * per for k in ("washout", "train", "val", "test"))
    return slice(w, w + a), slice(w + a, w + a + b), slice(w + a + b, w + a + b + c)


def build_reservoir(tf, *, molar_hi: float = 4.0) -> Reservoir:
    """The task file's reservoir: parallel membranes (:class:`Reservoir`) or delayed-feedback loops
    (:class:`DelayReservoir`, ``kind = "delay"``)."""
    r = tf.reservoir
    mask = make_mask(len(tf.membranes), r["virtual_nodes"], seed=tf.seed + 1, kind=r["mask"])
    if r["read_nodes"]:
        mask[:, -r["read_nodes"] :] = 0.0
    if r.get("kind", "parallel") == "delay":
        return DelayReservoir(
            tf.membranes,
            mask,
            r["hold_ns"],
            input_gain=r["input_gain"],
            feedback_gain=r["feedback_gain"],
            delay_nodes=r["delay_nodes"],
            shared_resistance_ohm=r.get("shared_resistance_ohm", 0.0),
            shared_capacitance_f=r.get("shared_capacitance_f", 0.0),
            fano=r["fano"],
            max_molar=molar_hi,
        )
    return Reservoir(tf.membranes, mask, r["hold_ns"], fano=r["fano"], max_molar=molar_hi)


def horizon_steps(task: dict) -> int:
    """Input steps between the last input seen and the value predicted: NARMA-10 predicts y(t+1);
    Mackey–Glass ``horizon_steps`` samples ahead; sine/square labels the current sample (0)."""
    return {"narma10": 1, "mackey-glass": task.get("horizon_steps", 1)}.get(task["kind"], 0)


def select_gains(res, us, y, sp, grid: dict, ridges, *, key=None) -> dict:
    """The delay reservoir's input gain γ and feedback gain η from ``grid`` with the lowest
    validation NRMSE (mean-field, or with ``key`` stochastic pores and shot noise; readout fitted on
    the train split, ridge chosen on validation). The test split is never read. Returns the choice
    and every point's validation score."""
    rows = []
    for g in grid["input_gain"]:
        for e in grid["feedback_gain"]:
            x = np.asarray(res.run(jnp.asarray(us), input_gain=g, feedback_gain=e, key=key).features())
            lam, val = select_ridge(x[sp[0]], y[sp[0]], x[sp[1]], y[sp[1]], ridges)
            rows.append({"input_gain": g, "feedback_gain": e, "ridge": lam, "val_nrmse": val})
    best = min(rows, key=lambda r: r["val_nrmse"])
    return {"input_gain": best["input_gain"], "feedback_gain": best["feedback_gain"], "grid": rows}


@functools.partial(jax.jit, static_argnames="n_steps")
def _kinetics_energy_aj(params, v_k, dt_ns, n_steps):
    """Energy per pore, aJ, of one membrane held at ``v_k`` (T,) for ``dt_ns`` each: the kinetics
    layer's own mean-field scan and its own ∫ I·V dt accumulation."""
    _, e = mean_field_scan(params, v_k, dt_ns, steady_state(params, v_k[0]), save_every=n_steps)
    return e[-1]


def check_energy(res: Reservoir, run, molar, n_pores, *, steps: int = 100) -> dict:
    """Energy of the first ``steps`` input steps of ``run`` (a :class:`ReservoirRun` of ``res`` at
    ``molar``, ``n_pores``) two ways: the reservoir's per-interval ``V × charge`` sums, and the
    kinetics layer's ``mean_field_scan`` of each membrane under the same piecewise-constant voltage
    (its own cumulative ∫ I·V dt, from its own propagators). They must agree to round-off: the
    accounting closes. (The run is causal, so its first steps are a run of those steps alone.)"""
    per_membrane = np.asarray(run.energy_aj)[:steps].sum(axis=(0, 1))
    v_tn = np.asarray(run.v)[:steps].reshape(-1, res.n_membranes)
    other = np.array(
        [
            float(_kinetics_energy_aj(res.params(i, float(molar[i])), jnp.asarray(v_tn[:, i]), res.hold_ns, v_tn.shape[0]))
            * float(n_pores[i])
            for i in range(res.n_membranes)
        ]
    )
    total, total_other = float(per_membrane.sum()), float(other.sum())
    return {
        "steps": steps,
        "sum_of_intervals_aj": total,
        "kinetics_mean_field_scan_aj": total_other,
        "relative_difference": abs(total - total_other) / abs(total_other),
        "per_membrane_max_relative_difference": float(np.max(np.abs(per_membrane - other) / np.abs(other))),
    }


def _fit_score(x, y, sp, ridges, classify):
    train, val, test = sp
    score = accuracy if classify else nrmse
    lam, val_score = select_ridge(x[train], y[train], x[val], y[val], ridges, score=score, lower_is_better=not classify)
    f = fit_ridge(x[train], y[train], lam)
    return {"ridge": lam, "val": val_score, "test": score(f(x[test]), y[test]), "pred": f(x)}


def _baselines(tf, n_nodes: int, us, y, sp, classify: bool):
    """The same-size ESN (hyperparameters chosen on the validation split) and the linear delay line:
    (ESN hyperparameters, ESN states, ESN scores, delay-line scores)."""
    hyper, _, xe = tune_esn(
        us,
        y,
        sp[:2],
        n_nodes,
        tf.ridges,
        seed=tf.seed,
        grid=tf.esn_grid,
        score=accuracy if classify else nrmse,
        lower_is_better=not classify,
    )
    esn = _fit_score(xe, y, sp, (hyper["ridge"],), classify)
    lin = _fit_score(delay_line(us, n_nodes), y, sp, tf.ridges, classify)
    return hyper, xe, esn, lin


def _memory_capacities(x, xe, us, sp) -> dict:
    """NARMA-10's input is i.i.d. uniform: the linear memory capacity of the reservoir and the ESN comes free."""
    mc, mc_d = memory_capacity(x, us, sp[0], sp[2])
    mc_esn, mc_esn_d = memory_capacity(xe, us, sp[0], sp[2])
    return {
        "memory_capacity": mc,
        "esn_memory_capacity": mc_esn,
        "memory_capacity_by_delay": mc_d,
        "esn_memory_capacity_by_delay": mc_esn_d,
    }


def _sizes(tf, res, pores0, classify: bool) -> dict:
    return {
        "n_membranes": res.n_membranes,
        "virtual_nodes": res.n_virtual,
        "read_nodes": tf.reservoir["read_nodes"],
        "n_features": res.n_features,
        "esn_nodes": res.n_features,
        "linear_delay_depth": res.n_features,
        "washout": tf.task["washout"],
        "train": tf.task["train"],
        "val": tf.task["val"],
        "test": tf.task["test"],
        "samples_per_split_unit": tf.task.get("period", 1) if classify else 1,
        "total_pores": float(pores0.sum()),
    }


def _delay_summary(res, gains, selection, run) -> dict:
    v = np.asarray(run.v)  # the membranes' voltages (the drive less v_c when the loops share a node)
    at_rail = np.abs(v - res.v_bias_v) >= res.v_span_v * (1 - 1e-9)
    shared = None
    if res.coupled:
        shared = {
            "shared_resistance_ohm": res.shared_resistance_ohm,
            "shared_capacitance_f": res.shared_capacitance_f,
            "tau_ns": res.shared_tau_ns,
            "note": "every membrane's far side on node c, R_c || C_c to ground; v_c held over each interval "
            "(first order in hold/tau); the resistor's dissipation is not in energy_aj_per_step",
        }
    return {
        "delay_loop": {
            **gains,
            "delay_nodes": res.delay_nodes,
            "loop_delay_ns": res.delay_nodes * res.hold_ns,
            "selected_on": "validation split (mean-field), from the [select] grid" if selection else "the file's values",
            "selection_grid": selection["grid"] if selection else None,
            # coupled: the membranes' voltages move with v_c, so the driver's rails are not read from them
            "share_of_intervals_at_the_driver_rails": None if res.coupled else float(at_rail.mean()),
            "membrane_voltage_range_v": [float(v.min()), float(v.max())],
            "shared_node": shared,
        }
    }


def _notes(metric: str, delay: bool = False) -> dict:
    """What each headline number of a task summary is."""
    extra = {}
    if delay:
        extra["delay_loop"] = (
            "each membrane is the nonlinear node of its own delayed-feedback loop: held at v_bias + v_span*clip(input_gain*"
            "mask*u + feedback_gain*x(g - delay_nodes)), x the measured current of the interval delay_nodes holds earlier "
            "(offset and gain of the amplifier fixed from the calibration); features are the ions counted per hold"
        )
        extra[f"{metric}_stochastic_selected"] = (
            "stochastic pores + shot noise with the gains chosen on the stochastic device's own validation score "
            "(same grid, same seed); nrmse_stochastic keeps the mean-field choice"
        )
        extra["energy_aj_per_step"] = (
            "sum over membranes of ∫ I·V dt per input step, mean-field, over the train+val+test steps; the feedback "
            "amplifier and delay line are not counted"
        )
    return {
        metric: "mean-field pores, noise-free readout; ridge chosen on the validation split, scored on the test split",
        f"{metric}_stochastic": "stochastic pores (exact multinomial moves) and shot noise (variance = fano x ions) "
        "at the stated pore counts, same readout procedure",
        f"esn_{metric}": "leaky tanh ESN with as many nodes as readout features; spectral radius, input scaling, "
        "leak and ridge chosen on the validation split",
        f"linear_{metric}": "ridge readout of a delay line of the last n_features scaled inputs",
        "energy_aj_per_step": "sum over membranes of ∫ I·V dt per input step, mean-field, over the train+val+test steps",
        "memory_capacity": "narma10 only: sum over delays 0..19 of the squared test correlation of a ridge readout "
        "(fitted on the train split) of the scaled input d steps back; mean-field features, and the ESN's",
        "horizon_steps": "input steps between the last input seen and the value predicted",
    } | extra


def _design_headline(d: dict) -> dict:
    """A design run's before/after numbers, repeated at the top level of its summary."""
    return {
        "nrmse_before": d["test_nrmse_before"],
        "nrmse_after": d["test_nrmse_after"],
        "nrmse_stochastic_before": d["test_nrmse_stochastic_before"],
        "nrmse_stochastic_after": d["test_nrmse_stochastic_after"],
        "energy_aj_per_step_after": d["energy_aj_per_step_after"],
    }


def _delay_gains(res, us, y, sp, tf, say) -> tuple[dict | None, dict]:
    """A delay reservoir's ``(selection, gains)``: the input and feedback gains chosen on the
    validation split where the file asks (else the reservoir's own); a parallel one has neither."""
    if not isinstance(res, DelayReservoir):
        return None, {}
    selection = None
    if tf.select:
        say(f"delay loops: input and feedback gain chosen on the validation split from {tf.select}")
        selection = select_gains(res, us, y, sp, tf.select, tf.ridges)
    return selection, {
        "input_gain": selection["input_gain"] if selection else res.input_gain,
        "feedback_gain": selection["feedback_gain"] if selection else res.feedback_gain,
    }


def _stochastic_fits(tf, res, us, y, sp, molar0, pores0, gains, classify, say) -> tuple[dict | None, dict | None]:
    """``(stoch, stoch_sel)``: the readout fit on stochastic pores + shot noise at the mean-field
    gains, and (delay loops whose selection asks for it) the gains chosen again on the stochastic
    device's own validation score with its fit; None where the file asks for neither."""
    stoch = None
    if tf.reservoir["stochastic"]:
        say("stochastic pores + shot noise")
        xs = np.asarray(res.run(jnp.asarray(us), molar0, pores0, key=jax.random.key(tf.seed), **gains).features())
        stoch = _fit_score(xs, y, sp, tf.ridges, classify)
    stoch_sel = None
    if isinstance(res, DelayReservoir) and tf.select and tf.select.get("stochastic") and tf.reservoir["stochastic"]:
        say("stochastic pores: gains chosen again on the stochastic device's validation score")
        key = jax.random.key(tf.seed)
        stoch_sel = select_gains(res, us, y, sp, tf.select, tf.ridges, key=key)
        chosen = {"input_gain": stoch_sel["input_gain"], "feedback_gain": stoch_sel["feedback_gain"]}
        xs = np.asarray(res.run(jnp.asarray(us), molar0, pores0, key=key, **chosen).features())
        stoch_sel["fit"] = _fit_score(xs, y, sp, tf.ridges, classify)
    return stoch, stoch_sel


def _stochastic_entries(metric: str, stoch: dict | None, stoch_sel: dict | None) -> dict:
    """The summary's stochastic scores (the re-selected ones only where there are some)."""
    out: dict = {f"{metric}_stochastic": stoch["test"] if stoch else None}
    if stoch_sel:
        out[f"{metric}_stochastic_selected"] = stoch_sel["fit"]["test"]
        out["stochastic_selection"] = {k: stoch_sel[k] for k in ("input_gain", "feedback_gain", "grid")}
    return out


def _energy_per_step(run, sp) -> tuple[float, np.ndarray]:
    """Energy (aJ) per input step over the train+val+test steps: all membranes, and per membrane."""
    body = slice(sp[0].start, sp[2].stop)
    energy_step = float(np.asarray(run.energy_aj)[body].sum() / (body.stop - body.start))
    energy_membrane = np.asarray(run.energy_aj)[body].sum(axis=(0, 1)) / (body.stop - body.start)
    return energy_step, energy_membrane


def _run_design(summary: dict, tf, res, us, y, sp, molar0, pores0, say, out) -> list:
    """The inverse design of a task file with a [design] table: its record (and its headline numbers
    at the top level) added to ``summary``; returns its figures."""
    say(f"inverse design: {tf.design['steps']} Adam steps on jax.grad of the validation NRMSE")
    summary["design"], fig = _design(tf, res, us, y, sp, molar0, pores0, say, out)
    summary.update(_design_headline(summary["design"]))
    return fig


def run_task(tf, out, *, progress=None) -> dict:
    """Run task file ``tf`` (a :class:`TaskFile`), write figures and summary.json under ``out``."""
    out = Path(out)
    say = progress or (lambda msg: None)
    start = time.perf_counter()
    kind = tf.task["kind"]
    classify = kind == "waveform"
    metric = "accuracy" if classify else "nrmse"
    _, y, us = make_series(tf.task, tf.seed)
    sp = splits(tf.task)
    res = build_reservoir(tf, molar_hi=tf.design["molar_range"][1] if tf.design else 4.0)
    molar0, pores0 = res.default_molar(), res.default_pores()
    delay = isinstance(res, DelayReservoir)
    selection, gains = _delay_gains(res, us, y, sp, tf, say)

    say(f"reservoir: {res.n_membranes} membranes x {res.n_virtual} virtual nodes, {len(us)} input steps")
    t0 = time.perf_counter()
    run = res.run(jnp.asarray(us), molar0, pores0, **gains)
    x = np.asarray(run.features())
    t_res = time.perf_counter() - t0
    phys = _fit_score(x, y, sp, tf.ridges, classify)
    energy_step, energy_membrane = _energy_per_step(run, sp)
    stoch, stoch_sel = _stochastic_fits(tf, res, us, y, sp, molar0, pores0, gains, classify, say)

    say(f"echo-state network, {res.n_features} nodes, hyperparameters by validation")
    hyper, xe, esn, lin = _baselines(tf, res.n_features, us, y, sp, classify)

    say("energy accounting check")
    echeck = check_energy(res, run, molar0, pores0)

    summary = {
        "schema": SUMMARY_SCHEMA,
        "name": tf.name,
        "task": kind,
        "file": tf.path,
        "seed": tf.seed,
        "metric": metric,
        metric: phys["test"],
        **_stochastic_entries(metric, stoch, stoch_sel),
        f"esn_{metric}": esn["test"],
        f"linear_{metric}": lin["test"],
        f"val_{metric}": phys["val"],
        f"esn_val_{metric}": esn["val"],
        "ridge": phys["ridge"],
        "esn_hyperparameters": hyper,
        "horizon_steps": horizon_steps(tf.task),
        "energy_aj_per_step": energy_step,
        **(_memory_capacities(x, xe, us, sp) if kind == "narma10" else {}),
        "energy_aj_per_step_by_membrane": [float(e) for e in energy_membrane],
        "energy_check": echeck,
        "input_rate_ghz": res.input_rate_ghz,
        "input_clipped_samples": int(np.sum(np.abs(us) >= 1.0)) if kind == "mackey-glass" else 0,
        "hold_ns": res.hold_ns,
        "step_ns": res.step_ns,
        "sizes": _sizes(tf, res, pores0, classify),
        "membranes": [
            {"system": m.system, "n_pores": m.n_pores, "v_bias_v": m.v_bias_v, "v_span_v": m.v_span_v} for m in tf.membranes
        ],
        "reservoir_kind": "delay" if delay else "parallel",
        **(_delay_summary(res, gains, selection, run) if delay else {}),
        "notes": _notes(metric, delay),
        "anchors": ANCHORS,
        "seconds": {"reservoir_run": t_res},
    }

    figures, data = [], []
    for name, csv_name in (
        _prediction_figure(out, tf, y, sp, phys, esn, lin, metric, classify, us),
        _reservoir_figure(out, res, run, sp),
    ):
        figures.append(name)
        data.append(csv_name)
    if tf.design:
        figures.extend(_run_design(summary, tf, res, us, y, sp, molar0, pores0, say, out))
    summary["figures"] = figures
    summary["data"] = data
    summary["seconds"]["total"] = time.perf_counter() - start
    write_json_atomic(out / "summary.json", summary)
    return summary


def _design(tf, res, us, y, sp, molar0, pores0, say, out):
    d = tf.design
    w = tf.task["washout"]
    n = w + d["train"] + d["val"]
    train, val = slice(w, w + d["train"]), slice(w + d["train"], n)
    u_d, y_d = jnp.asarray(us[:n]), jnp.asarray(y[:n])
    result = optimise_design(
        res,
        u_d,
        y_d,
        train=train,
        val=val,
        ridge=d["ridge"],
        molar0=molar0,
        pores0=pores0,
        molar_range=d["molar_range"],
        steps=d["steps"],
        learning_rate=d["learning_rate"],
        progress=lambda i, loss: say(f"design step {i}: validation NRMSE (expected, with readout noise) {loss:.4f}"),
    )

    def test_scores(molar, pores, key):
        run = res.run(jnp.asarray(us), molar, pores)
        x = np.asarray(run.features())
        mf = _fit_score(x, y, sp, tf.ridges, False)
        st, st_first = [], None  # stochastic pores + shot noise: three draws, their spread says what a difference means
        for k in range(3):
            xs = np.asarray(res.run(jnp.asarray(us), molar, pores, key=jax.random.key(key + k)).features())
            fit = _fit_score(xs, y, sp, tf.ridges, False)
            st.append(fit["test"])
            st_first = st_first or fit
        body = slice(sp[0].start, sp[2].stop)
        e = float(np.asarray(run.energy_aj)[body].sum() / (body.stop - body.start))
        expected = float(
            design_loss(res, jnp.asarray(us), jnp.asarray(y), molar, pores, train=sp[0], val=sp[2], ridge=d["ridge"])
        )
        return mf, st, e, expected, st_first

    mf0, st0, e0, ex0, fit0 = test_scores(result.molar_before, result.pores_before, tf.seed)
    mf1, st1, e1, ex1, fit1 = test_scores(result.molar_after, result.pores_after, tf.seed)
    salts = [m.dopant_salt for m in tf.membranes]
    design = {
        "loss": "validation NRMSE of the closed-form ridge readout with the expected readout noise (pore switching + shot) as "
        "its Tikhonov term, mean-field reservoir, on the design series",
        "variables": "every membrane's dopant molarity (log-sigmoid into molar_range) and pore count (softmax x fixed total)",
        "steps": d["steps"],
        "learning_rate": d["learning_rate"],
        "molar_range": list(d["molar_range"]),
        "design_train": d["train"],
        "design_val": d["val"],
        "loss_history": result.loss_history,
        "seconds_per_gradient_step": result.seconds_per_step,
        "grad_nrmse_wrt_molar_at_start": result.grad_molar_before.tolist(),
        "grad_nrmse_wrt_pores_at_start": result.grad_pores_before.tolist(),
        "test_nrmse_before": mf0["test"],
        "test_nrmse_after": mf1["test"],
        "test_nrmse_stochastic_before": float(np.mean(st0)),
        "test_nrmse_stochastic_after": float(np.mean(st1)),
        "test_nrmse_stochastic_before_by_seed": st0,
        "test_nrmse_stochastic_after_by_seed": st1,
        "test_nrmse_expected_noise_before": ex0,
        "test_nrmse_expected_noise_after": ex1,
        "energy_aj_per_step_before": e0,
        "energy_aj_per_step_after": e1,
        "membranes": [
            {
                "system": m.system,
                "dopant_salt": salts[i],
                "molar_before": float(result.molar_before[i]) if salts[i] else None,
                "molar_after": float(result.molar_after[i]) if salts[i] else None,
                "n_pores_before": float(result.pores_before[i]),
                "n_pores_after": float(result.pores_after[i]),
            }
            for i, m in enumerate(tf.membranes)
        ],
    }
    figs = [_design_figure(tf, tf.membranes, result, salts, out), _design_prediction_figure(tf, y, sp, fit0, fit1, e0, e1, out)]
    return design, figs


def _design_prediction_figure(tf, y, sp, before, after, e_before, e_after, out):
    from matplotlib.figure import Figure

    test = sp[2]
    n = min(150, test.stop - test.start)
    idx = np.arange(test.start, test.start + n)
    fig = Figure(figsize=(8, 3.2))
    ax = fig.subplots(1, 1)
    ax.set_prop_cycle(color=list(PALETTE))
    ax.plot(idx, y[idx], "-", color="k", lw=1.4, label="target")
    ax.plot(idx, before["pred"][idx], "-", lw=1, label=f"before (test NRMSE {before['test']:.3g}; {e_before:.0f} aJ/step)")
    ax.plot(idx, after["pred"][idx], "-", lw=1, label=f"after (test NRMSE {after['test']:.3g}; {e_after:.0f} aJ/step)")
    ax.set_xlabel("input step")
    ax.set_ylabel("output")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)
    fig.suptitle(
        f"{tf.name}: test prediction before and after the inverse design (stochastic pores + shot noise, first draw)",
        fontsize=9,
    )
    fig.tight_layout()
    return save_figure(fig, out / "design-prediction.png").name


def _prediction_figure(out, tf, y, sp, phys, esn, lin, metric, classify, us):
    """The test split: input, target and the three readouts (ionic reservoir, same-size ESN, linear
    delay line), legend below the data; returns (figure name, CSV name)."""
    from matplotlib.figure import Figure

    test = sp[2]
    n = min(200, test.stop - test.start)
    idx = np.arange(test.start, test.start + n)
    fig = Figure(figsize=(8, 5.0))
    ax1, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[1, 2.2])
    ax1.plot(idx, us[idx], color="0.4", lw=1)
    ax1.set_ylabel("input (scaled)")
    ax2.plot(idx, y[idx], "-", color="k", lw=1.6, label="target")
    ax2.plot(idx, phys["pred"][idx], "-", color=PALETTE[0], lw=1.1, label=f"ionic reservoir ({metric} {phys['test']:.3g})")
    ax2.plot(idx, esn["pred"][idx], "--", color=PALETTE[1], lw=1.0, label=f"ESN, same size ({metric} {esn['test']:.3g})")
    ax2.plot(idx, lin["pred"][idx], ":", color=PALETTE[2], lw=1.2, label=f"linear delay line ({metric} {lin['test']:.3g})")
    ax2.set_ylabel("class score" if classify else "output")
    ax2.set_xlabel("input step (test split)")
    ax2.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)
    fig.suptitle(f"{tf.name}: test split (first {n} steps)", fontsize=9)
    fig.tight_layout()
    name = save_figure(fig, out / "prediction.png").name
    columns = {"input_step_index": idx, "input_scaled_ratio": us[idx], "target_ratio": y[idx]}
    columns.update(
        {"reservoir_ratio": phys["pred"][idx], "esn_ratio": esn["pred"][idx], "linear_delay_line_ratio": lin["pred"][idx]}
    )
    return name, write_columns_csv(out / "prediction.csv", columns).name


def _reservoir_figure(out, res, run, sp):
    from matplotlib.figure import Figure

    k0 = sp[2].start
    k = np.arange(k0, k0 + 12)
    v = np.asarray(run.v)[k].reshape(-1, res.n_membranes)
    ions = np.asarray(run.ions)[k].reshape(-1, res.n_membranes)
    t = (np.arange(v.shape[0]) + 0.5) * res.hold_ns
    shown = min(3, res.n_membranes)  # three membranes, each in its own panel: no traces on top of each other
    fig = Figure(figsize=(9, 1.9 * shown + 1.0))
    axes = np.atleast_2d(fig.subplots(shown, 2, sharex=True))
    columns = {"t_ns": t}
    for i in range(shown):
        ax_v, ax_n = axes[i]
        color = PALETTE[i % len(PALETTE)]
        ax_v.step(t, v[:, i], where="mid", lw=1, color=color)
        ax_n.plot(t, ions[:, i] / np.abs(ions[:, i]).max(), ".-", lw=0.8, ms=3, color=color)
        ax_v.set_ylabel("held V (V)")
        ax_n.set_ylabel("ions per hold\n(/ max)")
        ax_v.set_title(f"membrane {i}: {res.membranes[i].system}", fontsize=8, loc="left")
        for a in (ax_v, ax_n):
            a.grid(True, alpha=0.3)
            for b in range(0, v.shape[0] + 1, res.n_virtual):  # input-step boundaries
                a.axvline(b * res.hold_ns, color="0.8", lw=0.6)
        columns[f"V(membrane {i})_V"] = v[:, i]
        columns[f"ions(membrane {i})_count"] = ions[:, i]
    for a in axes[-1]:
        a.set_xlabel(f"t (ns); {res.hold_ns:g} ns holds, {res.n_virtual} per input step (grey lines)")
    fig.suptitle(f"time-multiplexed drive and readout (12 input steps; {shown} of {res.n_membranes} membranes)", fontsize=9)
    fig.tight_layout()
    name = save_figure(fig, out / "reservoir.png").name
    return name, write_columns_csv(out / "reservoir.csv", columns).name


def _design_figure(tf, membranes, result, salts, out):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 6))
    ax = fig.subplots(3, 1)
    ax[0].plot(result.loss_history, "o-", ms=3)
    ax[0].set_xlabel("Adam step")
    ax[0].set_ylabel("val NRMSE\n(expected, noisy readout)")
    i = np.arange(len(membranes))
    labels = [f"{m.system.split(':')[0]}:{salts[j] or '-'}" for j, m in enumerate(membranes)]
    ax[1].bar(i - 0.2, result.molar_before, 0.4, color=PALETTE[0], label="before")
    ax[1].bar(i + 0.2, result.molar_after, 0.4, color=PALETTE[1], label="after")
    ax[1].set_yscale("log")
    ax[1].set_ylabel("dopant molar")
    ax[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax[2].bar(i - 0.2, result.pores_before, 0.4, color=PALETTE[0])
    ax[2].bar(i + 0.2, result.pores_after, 0.4, color=PALETTE[1])
    ax[2].set_yscale("log")
    ax[2].set_ylabel("pores")
    for a in ax[1:]:
        a.set_xticks(i)
        a.set_xticklabels(labels, rotation=60, fontsize=6)
    fig.suptitle(f"{tf.name}: inverse design by jax.grad", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out / "design.png").name
