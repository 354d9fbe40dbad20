"""Reservoir computing tasks: series generators against their definitions, the readout against
numpy's least squares, energy accounting against the kinetics layer, jax.grad of the design loss
against central differences, task-file validation, and the physical reservoir against a same-size
echo-state network with a stated bound. Small sizes: the whole module runs in well under 30 s."""

import json

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest

from conftest import NSIGMA_MAX, assert_allclose
from ionkinetics import tasks
from ionkinetics.constants import PA_PER_E_PER_NS
from ionkinetics.tasks import (
    TaskFileError,
    check_energy,
    design_loss,
    fit_ridge,
    fit_ridge_jax,
    mackey_glass,
    narma10,
    nrmse,
    parse_task,
    waveforms,
)

TWO_STATE = "crown6:NaCl@1.0+KCl@0.5"  # open, K+ (center site)
THREE_STATE = "B3N:KCl@1.0+RbCl@0.3"  # open, Rb+@cis, Rb+@trans (entrance plugs), a derived molarity


def _reservoir():
    """The reservoir of the tiny task file below (shared, so its compiled programs are too)."""
    return tasks.build_reservoir(parse_task(_task_dict()))


def test_narma10_follows_its_recurrence():
    u, y = narma10(300, seed=4)
    assert u.min() >= 0 and u.max() <= 0.5
    # the recurrence written out term by term (y_next[t] is y(t+1), aligned with u[t])
    prev = [0.0] * 300
    for t in range(9, 299):
        window = sum(prev[t - i] for i in range(10))
        nxt = 0.3 * prev[t] + 0.05 * prev[t] * window + 1.5 * u[t - 9] * u[t] + 0.1
        prev[t + 1] = nxt
        assert y[t] == pytest.approx(nxt, rel=1e-13, abs=1e-15)
    assert np.all(y[:9] == 0.0)


def test_mackey_glass_is_fourth_order_and_on_its_attractor():
    kw = {"n": 60, "sample_interval": 1.7, "discard": 170.0}
    ref = mackey_glass(dt=1.7 / 128, **kw)
    err = [np.max(np.abs(mackey_glass(dt=1.7 / k, **kw) - ref)) for k in (4, 8, 16)]
    orders = np.log2(np.array(err[:-1]) / np.array(err[1:]))
    assert np.all((orders > 3.5) & (orders < 4.6)), (err, orders)  # RK4 + cubic Hermite delay: 4th order
    x = mackey_glass(500, discard=500.0)
    assert 0.2 < x.min() < 0.6 and 1.1 < x.max() < 1.45  # the τ = 17 chaotic attractor's range
    with pytest.raises(ValueError, match=r"tau/dt must be a whole number"):
        mackey_glass(10, dt=0.3)


def test_waveforms_are_sines_and_squares_labelled_per_sample():
    u, c = waveforms(40, seed=1, period=8)
    assert u.shape == c.shape == (320,)
    periods = u.reshape(40, 8)
    square = c.reshape(40, 8)[:, 0] == 1
    assert square.any() and (~square).any()
    assert np.all(np.abs(periods[square]) == 1.0)
    assert_allclose(periods[~square], np.sin(2 * np.pi * np.arange(8) / 8)[None].repeat((~square).sum(), 0), rtol=0, atol=1e-15)


def test_ridge_readout_matches_numpy_lstsq_and_jax():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)) * np.array([1, 10, 0.1, 3, 1, 5]) + 2.0
    y = x @ rng.normal(size=6) + 0.5 + 0.01 * rng.normal(size=200)
    design = np.column_stack([x, np.ones(200)])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    z = rng.normal(size=(50, 6))
    assert_allclose(fit_ridge(x, y, 0.0)(z), np.column_stack([z, np.ones(50)]) @ coef, rtol=1e-9, atol=1e-9)
    var = rng.uniform(0.01, 0.1, 6)
    f_np = fit_ridge(x, y, 1e-3, noise_var=var)
    f_jax = fit_ridge_jax(jnp.asarray(x), jnp.asarray(y), 1e-3, jnp.asarray(var))
    assert_allclose(f_jax(jnp.asarray(z)), f_np(z), rtol=1e-10, atol=1e-10)
    assert nrmse(np.full(10, 3.0), np.arange(10.0)) == pytest.approx(
        np.sqrt(np.mean((3 - np.arange(10)) ** 2) / np.var(np.arange(10)))
    )


def test_memory_capacity_of_a_delay_line_is_its_depth():
    u = np.random.default_rng(3).uniform(-1, 1, 3000)
    mc, by_delay = tasks.memory_capacity(tasks.delay_line(u, 5), u, slice(50, 2000), slice(2000, 3000), max_delay=9)
    assert_allclose(by_delay[:5], 1.0, rtol=0, atol=1e-9)
    assert max(by_delay[5:]) < 0.01  # the first five delays recalled exactly, the rest not at all
    assert 5.0 <= mc < 5.03


def test_energy_accounting_closes_against_the_kinetics_layer():
    res = _reservoir()
    u = np.random.default_rng(1).uniform(-1, 1, 1000)  # the length of the tiny task's series: one compile
    run = res.run(u)
    check = check_energy(res, run, res.default_molar(), res.default_pores(), steps=100)
    # the reservoir's per-interval V·charge and the kinetics layer's own ∫ I·V dt (mean_field_scan, Van Loan
    # propagators), membrane by membrane
    assert check["per_membrane_max_relative_difference"] < 1e-10
    # energy is V × charge in every interval, and the charge is the count of ions times e
    e = np.asarray(run.energy_aj)
    assert_allclose(e, np.asarray(run.v) * np.asarray(run.ions) * 1.602176634e-19 * 1e18, rtol=1e-12, atol=0)
    assert check["sum_of_intervals_aj"] == pytest.approx(e[:100].sum(), rel=1e-12)
    # a passive membrane dissipates over a run (within one interval a dopant's displacement current
    # may hand some energy back, so this is a sum, not a per-interval sign)
    assert np.all(e.sum(axis=(0, 1)) > 0)


@pytest.mark.slow  # ~15-20 s on the loaded 2-core VM: compiles the stochastic scan
def test_stochastic_reservoir_averages_to_mean_field():
    res = _reservoir()
    u = np.random.default_rng(2).uniform(-1, 1, 100)
    mf = res.run(u)
    runs = np.stack([np.asarray(res.run(u, key=jax.random.key(s)).ions) for s in range(20)])  # (seed, T, M, N)
    totals, mean = runs.sum(axis=(1, 2)), np.asarray(mf.ions).sum(axis=(0, 1))  # ions per membrane over the run
    se = totals.std(0, ddof=1) / np.sqrt(len(runs))
    assert np.all(np.abs(totals.mean(0) - mean) < NSIGMA_MAX * se)
    # the spread of one interval's count across seeds is what the mean-field noise model says
    # (binomial pore states + shot noise), membrane by membrane
    ratio = runs.var(0, ddof=1).mean(axis=(0, 1)) / np.asarray(mf.var_ions).mean(axis=(0, 1))
    assert np.all((ratio > 0.8) & (ratio < 1.25)), ratio


def test_grad_of_design_loss_matches_central_differences():
    res = _reservoir()
    u, y = narma10(100, seed=5)
    u, y = jnp.asarray(4 * u - 1), jnp.asarray(y)
    train, val = slice(10, 75), slice(75, 100)
    molar0, pores0 = res.default_molar(), res.default_pores()

    def loss(m, n):
        return design_loss(res, u, y, m, n, train=train, val=val, ridge=1e-4)

    value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))  # one compiled program for all
    _, (g_m, g_n) = value_and_grad(jnp.asarray(molar0), jnp.asarray(pores0))
    f = lambda m, n: float(value_and_grad(jnp.asarray(m), jnp.asarray(n))[0])  # noqa: E731
    assert np.all(np.abs(np.asarray(g_m)) > 0) and np.all(np.abs(np.asarray(g_n)) > 0)
    for i in (0, 1):  # a two-state (center site) and a three-state (entrance plugs) membrane
        h = 1e-5 * molar0[i]
        dm = np.eye(res.n_membranes)[i] * h
        fd = (f(molar0 + dm, pores0) - f(molar0 - dm, pores0)) / (2 * h)
        assert float(g_m[i]) == pytest.approx(fd, rel=1e-5, abs=1e-9)
    h = 1e-4 * pores0[1]
    dn = np.eye(res.n_membranes)[1] * h
    fd = (f(molar0, pores0 + dn) - f(molar0, pores0 - dn)) / (2 * h)
    assert float(g_n[1]) == pytest.approx(fd, rel=1e-5, abs=1e-12)


def _task_dict(**over):
    raw = {
        "schema": "ionkinetics.task/1",
        "name": "tiny",
        "seed": 0,
        "task": {"kind": "narma10", "washout": 50, "train": 500, "val": 150, "test": 300},
        "reservoir": {
            "hold_ns": 0.5,
            "virtual_nodes": 2,
            "read_nodes": 1,
            "membranes": [TWO_STATE, THREE_STATE, "crown6:NaCl@1.0+KCl@0.15"],
            "stochastic": False,
        },
        "esn": {"spectral_radius": [0.6, 0.9], "input_scaling": [0.1, 0.5], "leak": [1.0]},
        "readout": {"ridge": [1e-8, 1e-6, 1e-4, 1e-2]},
    }
    for key, value in over.items():
        section, _, field = key.partition("__")
        if field:
            raw[section] = {**raw[section], field: value}
        else:
            raw[section] = value
    return raw


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema": "ionkinetics.task/0"}, r"field 'schema' must be 'ionkinetics.task/1'; got 'ionkinetics.task/0'"),
        ({"task__kind": "narma20"}, r"field 'task.kind' must be one of .*; got 'narma20'"),
        ({"task__train": 0}, r"field 'task.train' must be an integer >= 1; got 0"),
        ({"task__period": 8}, r"\[task\] has unknown fields \['period'\]"),
        ({"reservoir__hold_ns": -1.0}, r"field 'reservoir.hold_ns' must be > 0; got -1.0"),
        ({"reservoir__read_nodes": 2}, r"field 'reservoir.read_nodes' must be < virtual_nodes = 2 .*; got 2"),
        ({"reservoir__membranes": []}, r"field 'reservoir.membranes' must be a non-empty list"),
        ({"reservoir__membranes": ["crown6:NaCl@1.0+XCl@0.5"]}, r"reservoir.membranes\[0\].system: unknown or invalid system"),
        ({"reservoir__v_bias_v": 0.45}, r"v_bias_v \+ v_span_v' must stay within the 0.5 V .*; got 0.65"),
        ({"reservoir__mask": "gaussian"}, r"field 'reservoir.mask' must be 'binary' or 'uniform'; got 'gaussian'"),
        (
            {"reservoir__shared_resistance_ohm": 50.0},
            r"field 'reservoir.kind' must be 'delay' for the fields \['shared_resistance_ohm'\]",
        ),
        (
            {
                "reservoir__kind": "delay",
                "reservoir__input_gain": 0.1,
                "reservoir__feedback_gain": 0.5,
                "reservoir__shared_resistance_ohm": 50.0,
            },
            r"field 'reservoir.shared_capacitance_f' must make the shared node's R_c·C_c >= hold_ns = 0.5 ns "
            r"\(it is 0 ns\); got 0.0",
        ),
        ({"esn__leak": [0.0]}, r"field 'esn.leak' must hold leak rates in \(0, 1\]"),
        ({"design": {"molar_range": [1.0, 0.5]}}, r"field 'design.molar_range' must be \[lo, hi\] molar"),
        ({"design": {"molar_range": [0.2, 2.0]}}, r"must contain every membrane's starting molarity"),
    ],
)
def test_bad_task_file_is_refused_naming_field_rule_and_value(change, message):
    with pytest.raises(TaskFileError, match=message):
        parse_task(_task_dict(**change))


def test_shipped_task_files_parse():
    files = {p.name: tasks.load_task(p) for p in tasks.list_tasks()}
    assert {"narma10.toml", "mackey-glass.toml", "waveform.toml", "design-narma10.toml"} <= set(files)
    assert files["design-narma10.toml"].design is not None
    # issue 25: <= 100 features, <= 45 membranes
    for name in ("delay-narma10.toml", "delay-mackey-glass.toml", "coupled-narma10.toml"):
        tf = files[name]
        assert tf.reservoir["kind"] == "delay" and tf.select is not None
        assert len(tf.membranes) * tf.reservoir["virtual_nodes"] <= 100 and len(tf.membranes) <= 45
    assert files["delay-mackey-glass.toml"].task["horizon_steps"] == 10
    coupled = tasks.build_reservoir(files["coupled-narma10.toml"])
    assert coupled.coupled and coupled.shared_tau_ns >= coupled.hold_ns
    assert {files[n].task["kind"] for n in files} == {"narma10", "mackey-glass", "waveform"}


# Stated bound, measured at these sizes (3 membranes x 2 virtual nodes = 6 features; 500 training
# steps, seed 0): the reservoir's test NRMSE is 0.72 against 0.87 for the 6-node ESN tuned on the
# validation split (and 0.86 for a 6-tap linear delay line), so at this size it must stay below the
# ESN (factor 1.0). At 40 features the ESN wins (tasks/narma10.toml: 0.65 against 0.40): the
# membranes are uncoupled, so the reservoir's memory does not grow with their number (see
# docs/readme-reservoir.md).
NARMA_BOUND_VS_ESN = 1.0


def test_reservoir_nrmse_within_stated_factor_of_same_size_esn(tmp_path):
    tf = parse_task(_task_dict())
    summary = tasks.run_task(tf, tmp_path)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["nrmse"] == pytest.approx(summary["nrmse"])
    for key in ("nrmse", "esn_nrmse", "linear_nrmse", "energy_aj_per_step", "input_rate_ghz", "sizes", "seed", "anchors"):
        assert key in written
    for key in ("memory_capacity", "esn_memory_capacity"):
        assert key in written
    assert written["sizes"]["esn_nodes"] == written["sizes"]["n_features"] == 6
    assert written["input_rate_ghz"] == pytest.approx(1.0)
    assert written["nrmse"] < 0.95
    assert written["nrmse"] < NARMA_BOUND_VS_ESN * written["esn_nrmse"]
    assert written["energy_check"]["relative_difference"] < 1e-10
    assert (tmp_path / "prediction.png").stat().st_size > 0


def test_cli_task_list_and_bad_file(tmp_path):
    from typer.testing import CliRunner

    from ionkinetics.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["task", "list"])
    assert result.exit_code == 0, result.output
    for name in ("narma10.toml", "mackey-glass.toml", "waveform.toml", "design-narma10.toml"):
        assert name in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text('schema = "ionkinetics.task/1"\n[task]\nkind = "narma10"\ntrain = 10\nval = 10\ntest = -3\n')
    result = runner.invoke(app, ["task", "run", str(bad), "--out", str(tmp_path / "out")])
    assert isinstance(result.exception, TaskFileError)
    assert "field 'task.test' must be an integer >= 1; got -3" in str(result.exception)
    assert not (tmp_path / "out").exists()


TINY_TOML = """schema = "ionkinetics.task/1"
name = "tiny"
seed = 0

[task]
kind = "narma10"
washout = 50
train = 500
val = 150
test = 300

[reservoir]
hold_ns = 0.5
virtual_nodes = 2
read_nodes = 1
stochastic = false
membranes = ["crown6:NaCl@1.0+KCl@0.5", "B3N:KCl@1.0+RbCl@0.3", "crown6:NaCl@1.0+KCl@0.15"]

[esn]
spectral_radius = [0.6, 0.9]
input_scaling = [0.1, 0.5]
leak = [1.0]

[readout]
ridge = [1e-8, 1e-6, 1e-4, 1e-2]
"""


def test_cli_task_run_writes_the_summary_of_the_file(tmp_path):
    from typer.testing import CliRunner

    from ionkinetics.cli import app

    path = tmp_path / "tiny.toml"
    path.write_text(TINY_TOML)
    assert tasks.load_task(path).task == parse_task(_task_dict()).task  # the same task as above
    result = CliRunner().invoke(app, ["task", "run", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["name"] == "tiny" and summary["metric"] == "nrmse"
    assert f"nrmse {summary['nrmse']:.4g}" in " ".join(result.output.split())
    assert {"prediction.png", "reservoir.png"} <= {p.name for p in (tmp_path / "out").iterdir()}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"u_k": [0.5, 1.5]}, r"u_k must be finite and within \[-1, 1\] .*values \[0.5, 1.5\]"),
        ({"u_k": [0.0, np.nan]}, r"u_k must be finite"),
        ({"u_k": [0.0], "molar": [0.1, -1.0, 0.2]}, r"molar must be 3 finite numbers > 0, one per membrane; .*-1.0"),
        ({"u_k": [0.0], "n_pores": [10.0, 20.0]}, r"n_pores must be 3 finite numbers > 0, one per membrane; got shape \(2,\)"),
    ],
)
def test_reservoir_run_refuses_bad_inputs_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _reservoir().run(**kwargs)


# --- the delay reservoir (issue 25): delayed-feedback loops of calibrated membranes ---------------


def _numpy_delay_loop(cal, mask_m, u, *, hold_ns, gamma, eta, d, v_bias, v_span, n_pores, r_ohm=0.0, c_f=0.0):
    """The delay loop's recursion written out in numpy/scipy, interval by interval: V from the input
    and the measured current D intervals back, ``P = expm(Q·θ)`` and ``∫expm`` by scipy (Van Loan's
    block), the per-state current from the kinetics layer. With ``r_ohm`` > 0 the membrane's far side
    sits on a node with R ∥ C to ground (the DC points by scipy's brentq). Returns ions (T, M) and the
    membrane's held V (T, M)."""
    import scipy.linalg
    import scipy.optimize

    from ionkinetics.kinetics import generator

    params = cal.params

    def factors(v):
        q = np.asarray(generator(params, v))
        k = q.shape[0]
        block = np.zeros((2 * k, 2 * k))
        block[:k, :k], block[:k, k:] = q, np.eye(k)
        e = scipy.linalg.expm(block * hold_ns)
        return e[:k, :k], e[:k, k:] @ np.asarray(tasks.state_current_pa(params, v))

    def stationary(v):
        q = np.asarray(generator(params, v))
        w, vec = np.linalg.eig(q.T)
        pi = np.real(vec[:, np.argmin(np.abs(w))])
        return pi / pi.sum()

    def dc_node(v_drive):
        if r_ohm == 0:
            return 0.0
        i_ss = lambda v: stationary(v) @ np.asarray(tasks.state_current_pa(params, v))  # noqa: E731
        return scipy.optimize.brentq(lambda vc: vc - r_ohm * n_pores * i_ss(v_drive - vc) * 1e-12, 0.0, v_drive, xtol=1e-15)

    vc_rest = dc_node(v_bias)
    p_rest = stationary(v_bias - vc_rest)
    rest = p_rest @ factors(v_bias - vc_rest)[1] / PA_PER_E_PER_NS
    span = (
        0.5 * (p_rest @ factors(v_bias - vc_rest + v_span)[1] - p_rest @ factors(v_bias - vc_rest - v_span)[1]) / PA_PER_E_PER_NS
    )
    decay = np.exp(-hold_ns / (r_ohm * c_f * 1e9)) if r_ohm > 0 else 0.0
    m = len(mask_m)
    fed = [0.0] * d  # the delay line starts empty (x = 0: the rest current)
    v_first = v_bias + v_span * np.clip(gamma * mask_m[0] * u[0], -1, 1)
    vc = dc_node(v_first)
    p = stationary(v_first - vc)  # at steady state at the first V (the circuit's DC point)
    ions, volts = np.zeros((len(u), m)), np.zeros((len(u), m))
    for g in range(len(u) * m):
        k, j = divmod(g, m)
        v = v_bias + v_span * np.clip(gamma * mask_m[j] * u[k] + eta * fed[g % d], -1, 1) - vc
        prop, aj = factors(v)
        q_pore = p @ aj / PA_PER_E_PER_NS
        fed[g % d] = (q_pore - rest) / span
        ions[k, j], volts[k, j] = n_pores * q_pore, v
        vc = vc * decay + r_ohm * n_pores * q_pore * PA_PER_E_PER_NS / hold_ns * 1e-12 * (1 - decay)
        p = p @ prop
    return ions, volts


@pytest.mark.parametrize(
    ("system", "hold_ns", "d"),
    [(TWO_STATE, 0.5, 5), pytest.param(THREE_STATE, 2.0, 4, marks=pytest.mark.slow)],  # ~15 s each under load: compiles
)
def test_delay_reservoir_matches_a_numpy_loop_of_the_same_recursion(system, hold_ns, d):
    m, t = 4, 16
    mask = np.random.default_rng(0).uniform(-1, 1, (1, m))
    res = tasks.DelayReservoir(
        [tasks.MembraneSpec(system, n_pores=1e4, v_bias_v=0.3, v_span_v=0.2)],
        mask,
        hold_ns,
        input_gain=0.6,
        feedback_gain=0.9,
        delay_nodes=d,
    )
    u = np.random.default_rng(1).uniform(-1, 1, t)
    run = res.run(u)
    ions, volts = _numpy_delay_loop(
        res.membranes[0].calibration(), mask[0], u, hold_ns=hold_ns, gamma=0.6, eta=0.9, d=d, v_bias=0.3, v_span=0.2, n_pores=1e4
    )
    assert_allclose(np.asarray(run.v)[:, :, 0], volts, rtol=1e-10, atol=1e-12)
    assert_allclose(np.asarray(run.ions)[:, :, 0], ions, rtol=1e-9, atol=1e-9)
    # the loop is doing something: the feedback moves the voltages away from the open-loop drive
    assert np.max(np.abs(volts - (0.3 + 0.2 * np.clip(0.6 * mask[0] * u[:, None], -1, 1)))) > 1e-3


def test_coupled_loop_matches_a_numpy_loop_of_the_same_recursion():
    """A loop whose membrane's far side sits on a node with R ∥ C to ground (τ = 3 holds, a 40 mV drop
    at rest), feedback on: the jitted scan against the numpy/scipy recursion (brentq for the DC points)."""
    m, t, hold, n_pores = 4, 12, 0.5, 1e4
    mask = np.random.default_rng(0).uniform(-1, 1, (1, m))
    spec = tasks.MembraneSpec(TWO_STATE, n_pores=n_pores, v_bias_v=0.3, v_span_v=0.2)
    free = tasks.DelayReservoir([spec], mask, hold, input_gain=0.6, feedback_gain=0.9, delay_nodes=5)
    r_ohm = 0.04 / (float(np.asarray(free.run(np.zeros(2)).ions)[-1, -1, 0]) * PA_PER_E_PER_NS / hold * 1e-12)
    c_f = 3 * hold * 1e-9 / r_ohm
    res = tasks.DelayReservoir([spec], mask, hold, input_gain=0.6, feedback_gain=0.9, delay_nodes=5, shared_resistance_ohm=r_ohm,
                               shared_capacitance_f=c_f)  # fmt: skip
    u = np.random.default_rng(1).uniform(-1, 1, t)
    run = res.run(u)
    ions, volts = _numpy_delay_loop(res.membranes[0].calibration(), mask[0], u, hold_ns=hold, gamma=0.6, eta=0.9, d=5, v_bias=0.3,
                                    v_span=0.2, n_pores=n_pores, r_ohm=r_ohm, c_f=c_f)  # fmt: skip
    assert_allclose(np.asarray(run.v)[:, :, 0], volts, rtol=1e-9, atol=1e-12)
    assert_allclose(np.asarray(run.ions)[:, :, 0], ions, rtol=1e-9, atol=1e-9)
    assert np.max(np.abs(volts - np.asarray(free.run(u).v)[:, :, 0])) > 0.01  # the node moves the membrane's voltage


def test_delay_loop_couples_virtual_nodes_by_inertia_and_by_the_delay():
    """One input pulse on virtual node 0 only. Holds much shorter than the pores' relaxation
    (0.5 ns against 2-13 ns): the later nodes of the same step feel it through the node's inertia.
    Holds much longer (400 ns): they hardly do, and with the feedback on and a delay of M + 1 holds
    the pulse comes back one node later in the next step."""
    mask = np.array([[1.0, 0.0, 0.0, 0.0, 0.0]])
    u = np.zeros(10)
    u[3] = 0.5

    def deviation(hold_ns, eta):
        res = tasks.DelayReservoir(
            [tasks.MembraneSpec(TWO_STATE)], mask, hold_ns, input_gain=0.5, feedback_gain=eta, delay_nodes=6
        )
        base = np.asarray(res.run(np.zeros(10)).ions)[:, :, 0]
        return np.abs(np.asarray(res.run(u).ions)[:, :, 0] - base) / np.abs(base).max()

    fast, slow, slow_fed = deviation(0.5, 0.0), deviation(400.0, 0.0), deviation(400.0, 0.5)
    assert np.all(fast[:3] == 0.0) and np.all(slow_fed[:3] == 0.0)  # causal
    assert fast[3, 1:].min() > 1e-2 * fast[3, 0]  # inertia: nodes 1-4 remember node 0's drive
    # long holds: only the transient at the start of the next hold (its share ~ τ/θ) is left of the inertia
    assert slow[3, 0] > 0.05 and slow[3, 1] < 0.2 * slow[3, 0] and slow[3, 2:].max() < 1e-5 and slow[4:].max() < 1e-5
    # the delay line: node 0 of step 3 feeds node 1 of step 4 (and node 0 of step 4, fed from step 2, is untouched)
    assert slow_fed[4, 1] > 0.01 and slow_fed[4, 0] < 1e-5 and slow_fed[4, 2:].max() < 0.3 * slow_fed[4, 1]


def test_delay_reservoir_refuses_bad_settings_by_name():
    spec = [tasks.MembraneSpec(TWO_STATE)]
    with pytest.raises(ValueError, match=r"delay_nodes must be an integer >= 1 .*; got 0"):
        tasks.DelayReservoir(spec, np.ones((1, 3)), 0.5, input_gain=0.1, feedback_gain=0.5, delay_nodes=0)
    with pytest.raises(ValueError, match=r"feedback_gain must be a finite number >= 0; got -0.5"):
        tasks.DelayReservoir(spec, np.ones((1, 3)), 0.5, input_gain=0.1, feedback_gain=-0.5)
    res = tasks.DelayReservoir(spec, np.ones((1, 3)), 0.5, input_gain=0.1, feedback_gain=0.5)
    with pytest.raises(ValueError, match=r"input_gain, feedback_gain must be finite numbers >= 0; .*nan"):
        res.run([0.0, 0.5], input_gain=float("nan"))
    with pytest.raises(TaskFileError, match=r"field 'reservoir.kind' must be 'delay' for the fields \['feedback_gain'\]"):
        parse_task(_task_dict(reservoir__feedback_gain=0.5))
    with pytest.raises(TaskFileError, match=r"field 'reservoir.kind' must be 'parallel' or 'delay'; got 'ring'"):
        parse_task(_task_dict(reservoir__kind="ring"))


def test_esn_baseline_recovers_a_linear_target_and_its_memory_is_bounded_by_its_size():
    """Known answers: a target that is a linear function of the current input is read out of a
    near-linear ESN (the tuning must pick the smallest input scaling) to 1e-3; and the linear memory
    capacity of an N-node reservoir is at most N (Jaeger 2002)."""
    u = np.random.default_rng(7).uniform(-1, 1, 1600)
    y = 2.0 * u + 1.0
    splits = (slice(100, 1000), slice(1000, 1300))
    grid = {"spectral_radius": (0.5,), "input_scaling": (0.01, 1.0), "leak": (1.0,)}
    hyper, _, x = tasks.tune_esn(u, y, splits, 8, (1e-12, 1e-6), seed=0, grid=grid)
    assert hyper["input_scaling"] == 0.01
    test = slice(1300, 1600)
    assert nrmse(fit_ridge(x[splits[0]], y[splits[0]], hyper["ridge"])(x[test]), y[test]) < 1e-3
    mc, _ = tasks.memory_capacity(x, u, slice(100, 1000), test, max_delay=20)
    assert 1.0 < mc <= 8.0 + 0.05


def _delay_task_dict(**over):
    raw = _task_dict(**over)
    raw["task"] = {"kind": "narma10", "washout": 20, "train": 200, "val": 60, "test": 100}
    raw["reservoir"] = {
        "kind": "delay",
        "hold_ns": 2.0,
        "virtual_nodes": 4,
        "delay_nodes": 5,
        "input_gain": 0.05,
        "feedback_gain": 0.5,
        "mask": "uniform",
        "membranes": [TWO_STATE],
        "stochastic": False,
        **over.get("reservoir", {}),
    }
    raw["select"] = {"input_gain": [0.05], "feedback_gain": [0.3, 0.5]}
    return raw


def test_delay_task_writes_the_summary_keys(tmp_path):
    tf = parse_task(_delay_task_dict())
    summary = tasks.run_task(tf, tmp_path)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["nrmse"] == pytest.approx(summary["nrmse"])
    assert written["task"] == "narma10" and written["horizon_steps"] == 1
    assert written["sizes"]["n_membranes"] == 1 and written["sizes"]["n_features"] == written["sizes"]["esn_nodes"] == 4
    for key in ("nrmse", "esn_nrmse", "energy_aj_per_step", "memory_capacity", "esn_memory_capacity"):
        assert np.isfinite(written[key]), key
    loop = written["delay_loop"]
    assert written["reservoir_kind"] == "delay" and loop["delay_nodes"] == 5
    # the gains were chosen on the validation split: the chosen point has the lowest validation score
    best = min(loop["selection_grid"], key=lambda r: r["val_nrmse"])
    assert (loop["input_gain"], loop["feedback_gain"]) == (best["input_gain"], best["feedback_gain"])
    assert written["val_nrmse"] == pytest.approx(best["val_nrmse"], rel=1e-9)
    assert written["energy_check"]["relative_difference"] < 1e-10  # the delay loop's V·charge against the kinetics layer


def test_mackey_glass_horizon_shifts_the_target():
    raw = _task_dict(task={"kind": "mackey-glass", "washout": 10, "train": 50, "val": 20, "test": 20, "horizon_steps": 10})
    tf = parse_task(raw)
    u, y, _ = tasks.make_series(tf.task, 0)
    assert tasks.horizon_steps(tf.task) == 10
    assert_allclose(y[:-10], u[10:], rtol=0, atol=0)  # y[t] = x[t + 10]
    with pytest.raises(TaskFileError, match=r"field 'task.horizon_steps' must be an integer >= 1; got 0"):
        parse_task(_task_dict(task={**raw["task"], "horizon_steps": 0}))


# The coupled loops hold v_c over each interval (first order in θ/τ_c): at τ_c = 5θ the ions of every
# interval agree with the circuit solver to this relative tolerance (measured 3.0 %; 1.6 % at 10θ, 1.1 % at
# 20θ where the solver's own dt = θ/40 error starts to show), and halving θ/τ_c halves the error.
SHARED_NODE_REL_TOL = 0.04
FIRST_ORDER_RATIO = (1.5, 2.6)  # error(τ_c = 5θ) / error(τ_c = 10θ) for a first-order scheme (2 ideally; measured 1.93)
DC_POINT_REL_TOL = 1e-9  # the first interval, where both start at the circuit's DC operating point (measured 1.7e-15)


def _shared_node_ions(tau_over_hold: float):
    """The open-loop coupled reservoir (η = 0) and the same circuit in the circuits layer: two TWO_STATE
    membranes driven by their held drives, far sides on node c, R_c ∥ C_c to ground. Returns the ions
    per interval of both and of the uncoupled reservoir."""
    from ionkinetics import circuits as C
    from ionkinetics.kinetics import protocols as P

    hold, m, t, n_pores = 2.0, 4, 10, 1e4
    mask = np.random.default_rng(2).uniform(-1, 1, (2, m))
    u = np.random.default_rng(3).uniform(-1, 1, t)
    specs = [tasks.MembraneSpec(TWO_STATE, n_pores=n_pores, v_bias_v=0.3, v_span_v=0.2)] * 2
    free = tasks.DelayReservoir(specs, mask, hold, input_gain=0.8, feedback_gain=0.0)
    i_rest_pa = float(np.sum(np.asarray(free.run(np.zeros(t)).ions)[-1, -1])) * PA_PER_E_PER_NS / hold
    r_ohm = 0.05 / (i_rest_pa * 1e-12)  # a 50 mV drop at rest: coupling strong enough to see
    c_f = tau_over_hold * hold * 1e-9 / r_ohm
    res = tasks.DelayReservoir(
        specs, mask, hold, input_gain=0.8, feedback_gain=0.0, shared_resistance_ohm=r_ohm, shared_capacitance_f=c_f
    )
    run = res.run(u)
    drive = 0.3 + 0.2 * np.clip(0.8 * mask.T[None] * u[:, None, None], -1, 1)  # (T, M, N) held source voltages
    edges = np.arange(t * m + 1) * hold
    g = nx.MultiDiGraph()
    for i in range(2):
        src = C.VoltageSource(f"V{i}", P.sampled(edges, drive[:, :, i].ravel()))
        g.add_edge(f"d{i}", "0", key=src.name, element=src)
        g.add_edge(f"d{i}", "c", key=f"M{i}", element=C.Membrane(f"M{i}", TWO_STATE, n_pores=int(n_pores)))
    g.add_edge("c", "0", key="Rc", element=C.Resistor("Rc", r_ohm))
    g.add_edge("c", "0", key="Cc", element=C.Capacitor("Cc", c_f))
    sub = 40
    tr = C.transient(C.compile_circuit(g, duration_ns=t * m * hold, dt_ns=hold / sub))
    cur = np.stack([tr.i(f"M{i}") for i in range(2)], axis=-1)  # (steps + 1, N) pA
    q = 0.5 * (cur[:-1] + cur[1:]).reshape(t * m, sub, 2).sum(axis=1) * (hold / sub) / PA_PER_E_PER_NS
    flat = lambda x: np.asarray(x).reshape(t * m, 2)  # noqa: E731  (both start at the DC operating point)
    return flat(run.ions), q, flat(free.run(u).ions)


@pytest.mark.slow  # the circuit's first compile takes 1-3 min on the loaded 2-core VM
def test_shared_node_matches_the_circuit_solver_to_first_order():
    ions, circuit_ions, uncoupled = _shared_node_ions(5.0)
    err = np.abs(ions - circuit_ions) / np.abs(circuit_ions)
    assert np.max(err[0]) < DC_POINT_REL_TOL
    err5 = np.max(err)
    assert err5 < SHARED_NODE_REL_TOL
    assert np.max(np.abs(uncoupled - circuit_ions) / np.abs(circuit_ions)) > 5 * err5  # the coupling is seen
    ions10, circuit10, _ = _shared_node_ions(10.0)
    err10 = np.max(np.abs(ions10 - circuit10) / np.abs(circuit10))
    assert FIRST_ORDER_RATIO[0] < err5 / err10 < FIRST_ORDER_RATIO[1]


def test_shared_node_refuses_bad_settings_by_name():
    spec = [tasks.MembraneSpec(TWO_STATE)] * 2
    with pytest.raises(ValueError, match=r"shared_resistance_ohm must be a finite number >= 0; got -1"):
        tasks.DelayReservoir(spec, np.ones((2, 3)), 0.5, input_gain=0.1, feedback_gain=0.5, shared_resistance_ohm=-1)
    with pytest.raises(ValueError, match=r"time constant\) must be >= hold_ns \(0.5 ns\).*got 0.1 ns"):
        tasks.DelayReservoir(spec, np.ones((2, 3)), 0.5, input_gain=0.1, feedback_gain=0.5, shared_resistance_ohm=100.0,
                             shared_capacitance_f=1e-12)  # fmt: skip
    mixed = [tasks.MembraneSpec(TWO_STATE), tasks.MembraneSpec(THREE_STATE)]
    with pytest.raises(ValueError, match=r"one occupancy-state count; got counts \[2, 3\]"):
        tasks.DelayReservoir(mixed, np.ones((2, 3)), 0.5, input_gain=0.1, feedback_gain=0.5, shared_resistance_ohm=100.0,
                             shared_capacitance_f=1e-9)  # fmt: skip
