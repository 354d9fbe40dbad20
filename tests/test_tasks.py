"""Reservoir computing tasks: series generators against their definitions, the readout against
numpy's least squares, energy accounting against the kinetics layer, jax.grad of the design loss
against central differences, task-file validation, and the physical reservoir against a same-size
echo-state network with a stated bound. Small sizes: the whole module runs in well under 30 s."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import NSIGMA_MAX, assert_allclose
from ionkinetics import tasks
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
