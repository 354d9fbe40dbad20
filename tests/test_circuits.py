"""Circuits against closed forms, the kinetic core, conservation laws and finite differences."""

import dataclasses

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest

import ionkinetics as ik
from conftest import NSIGMA_MAX, assert_allclose
from helpers import xla_compiles
from ionkinetics import circuits as C
from ionkinetics.kinetics import gating_current_vector_pa, open_conductance_ps, state_weights

P = ik.protocols
RB = "B3N:KCl@1.0+RbCl@0.5"


def _kcl_residual_pa(tr):
    """Largest net current into any non-ground node, pA, at every saved point."""
    top = tr.topology
    net = np.zeros((*tr.branch_i_pa.shape[:-1], len(top.nodes) + 1))
    col = 0
    for kind in C._solver.KINDS:
        a, b = top.idx(kind)
        for j in range(len(a)):
            net[..., a[j]] += tr.branch_i_pa[..., col]
            net[..., b[j]] -= tr.branch_i_pa[..., col]
            col += 1
    return np.abs(net[..., :-1]).max(axis=-1)


def test_series_and_parallel_resistors_equal_their_closed_forms():
    r1, r2, r3, r4 = 1e9, 2e9, 3e9, 6e9
    net = C.series(C.Resistor("R1", r1), C.parallel(C.Resistor("R2", r2), C.series(C.Resistor("R3", r3), C.Resistor("R4", r4))))
    g = C.circuit(net, C.VoltageSource("V1", P.dc(0.2, 1.0)))
    tr = C.transient(C.compile_circuit(g, 1.0, 0.1))
    tr = dataclasses.replace(tr, branch_i_pa=tr.branch_i_pa[1:])  # t = 0 is the rest state (0 V before the DC turns on)
    r_total = r1 + 1 / (1 / r2 + 1 / (r3 + r4))
    assert_allclose(-tr.i("V1"), 0.2 / r_total * 1e12, rtol=1e-12, atol=0)  # pA
    i1 = 0.2 / r_total
    v_mid = 0.2 - i1 * r1
    assert_allclose(tr.i("R2"), v_mid / r2 * 1e12, rtol=1e-12, atol=0)
    assert_allclose(tr.i("R4"), v_mid / (r3 + r4) * 1e12, rtol=1e-12, atol=0)
    assert _kcl_residual_pa(tr).max() < 1e-9


def _rc(dt_ns, duration_ns=10.0):
    g = C.circuit(
        C.series(C.Resistor("R1", 1e9), C.Capacitor("C1", 1e-18)),
        C.VoltageSource("V1", P.step(0.1, 1.0, 6.0, duration_ns=duration_ns)),
    )
    return C.transient(C.compile_circuit(g, duration_ns, dt_ns))


def _rc_exact(t):  # τ = RC = 1 ns, 0.1 V from 1 to 6 ns
    on = 0.1 * (1 - np.exp(-(t - 1.0)))
    return np.where(t < 1.0, 0.0, np.where(t < 6.0, on, 0.1 * (1 - np.exp(-5.0)) * np.exp(-(t - 6.0))))


def test_rc_step_matches_the_exponential_and_converges_at_second_order():
    errors = []
    for dt in (0.1, 0.05, 0.025):
        tr = _rc(dt)
        errors.append(np.abs(tr.vb("C1") - _rc_exact(tr.t_ns)).max())
        assert _kcl_residual_pa(tr).max() < 1e-8
    assert errors[-1] / 0.1 < 1e-4  # relative to the 0.1 V step
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert_allclose(orders, 2.0, rtol=0, atol=0.05)  # trapezoidal: the declared order is 2


def test_membrane_on_an_ideal_source_reproduces_the_kinetic_core():
    proto = P.pulse_train(0.5, width_ns=4.0, period_ns=15.0, count=3, duration_ns=45.0)
    g = C.circuit(C.Membrane("M1", RB, n_pores=100), C.VoltageSource("V1", proto))
    tr = C.transient(C.compile_circuit(g, 45.0, 0.05))
    cal = ik.load_calibration(RB)
    ref = ik.simulate(cal, proto, 0.05)
    assert_allclose(tr.w("M1"), ref.w, rtol=0, atol=1e-13)
    v_held = proto.sample(0.05)  # the voltage over the step that ends at each saved point
    g_ref = open_conductance_ps(cal.params.open, v_held) * (ref.p[1:] @ state_weights(cal.params))
    j_ref = np.stack([np.asarray(gating_current_vector_pa(cal.params, v)) for v in v_held])  # dopant's own current
    assert_allclose(tr.i("M1")[1:], 100 * (g_ref * v_held + np.sum(ref.p[1:] * j_ref, axis=1)), rtol=1e-12, atol=1e-12)
    # the core integrates the energy exactly; the circuit takes the trapezoid of the same current (O(dt²);
    # the dopant's displacement current decays at the switching rates right after each jump)
    assert_allclose(tr.energy("M1")[-1], 100 * ref.e_aj[-1], rtol=5e-4, atol=0)


def _rc_membrane(stochastic=False, r_ohm=5e8, n_pores=100, duration_ns=40.0, dt_ns=0.05, cal=RB):
    load = C.parallel(C.Membrane("M1", cal, n_pores=n_pores, stochastic=stochastic), C.Capacitor("Cm", 2e-17))
    g = C.circuit(
        C.series(C.Resistor("Racc", r_ohm), load),
        C.VoltageSource("V1", P.step(0.5, 5.0, min(25.0, duration_ns - 2.0), duration_ns=duration_ns)),
    )
    return C.compile_circuit(g, duration_ns, dt_ns)


def test_energy_balance_source_equals_dissipated_plus_stored():
    cc = _rc_membrane()
    tr = C.transient(cc)
    delivered = -tr.energy("V1")[-1]
    dissipated = tr.energy("Racc")[-1] + tr.energy("M1")[-1]
    c_f = 2e-17
    stored = 0.5 * c_f * (tr.vb("Cm")[-1] ** 2 - tr.vb("Cm")[0] ** 2) * 1e18  # J → aJ
    assert delivered > 0
    assert_allclose(delivered, dissipated + stored, rtol=1e-6, atol=0)
    assert_allclose(tr.energy("Cm")[-1], stored, rtol=1e-9, atol=1e-15)  # the capacitor's share is ½CΔv², exactly
    assert _kcl_residual_pa(tr).max() < 1e-7


def test_gradients_match_finite_differences():
    cc = _rc_membrane(duration_ns=10.0)
    top = cc.topology
    i_r = top.branch_names.index("Racc")

    def charge(values):  # charge through the access resistor over the run, pA·ns
        _, _, _, amps, _ = C.solve(top, values)
        return jnp.sum(amps[1:, i_r]) * top.dt_ns

    base = jax.tree_util.tree_map(jnp.asarray, cc.values)

    def with_knobs(x):  # x = (access resistance Ω, scale of both escape prefactors of the Rb+ plug)
        p = base["mem"][0]
        esc = dataclasses.replace(
            p.escape, k_plus_per_ns=p.escape.k_plus_per_ns * x[1], k_minus_per_ns=p.escape.k_minus_per_ns * x[1]
        )
        return dict(base, g_ps=base["g_ps"].at[0].set(1e12 / x[0]), mem=(dataclasses.replace(p, escape=esc),))

    # one forward program and one gradient program for both knobs (compiles dominate this test)
    f = jax.jit(lambda x: charge(with_knobs(x)))
    x0, steps = jnp.array([5e8, 1.0]), (1e3, 1e-6)
    grad = jax.jit(jax.grad(lambda x: charge(with_knobs(x))))(x0)
    for k, h in enumerate(steps):
        e = jnp.zeros(2).at[k].set(h)
        fd = (f(x0 + e) - f(x0 - e)) / (2 * h)
        assert_allclose(grad[k], fd, rtol=1e-5, atol=0)
        assert abs(grad[k]) > 0


def test_stochastic_membranes_average_to_the_mean_field_circuit():
    n_pores, n_runs = 50, 64
    mean = C.transient(_rc_membrane(n_pores=n_pores))
    cc = _rc_membrane(stochastic=True, n_pores=n_pores)
    batch = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(jnp.asarray(x), (n_runs, *jnp.shape(x))), cc.values)
    runs = C.transient(cc, values=batch, batched=True, key=jax.random.key(5))
    w = runs.w("M1")
    assert_allclose(w * n_pores, np.round(w * n_pores), rtol=0, atol=1e-9)  # whole pores
    for t in (4.0, 6.0, 10.0, 24.0, 30.0, 40.0):
        i = np.searchsorted(mean.t_ns, t)
        se = max(w[:, i].std(ddof=1), 1.0 / n_pores) / np.sqrt(n_runs)
        assert abs(w[:, i].mean() - mean.w("M1")[i]) < NSIGMA_MAX * se, t


def test_batch_with_jumps_at_different_steps_equals_single_runs():
    # in a batch the re-initialisation after a jump runs only at steps where some circuit jumps, and
    # each circuit keeps its own branch: lanes that jump at different steps, or never, are each
    # what they are alone (200 steps padded to 256: the padded tail is skipped and cut)
    cc = _rc_membrane(duration_ns=10.0, cal="crown6:NaCl@1.0+KCl@0.5")  # 2 states: the jump logic does not depend on K
    base = np.asarray(cc.values["vs"])
    rows = [base, np.roll(base, 20, axis=-1), np.zeros_like(base)]
    batch = jax.tree_util.tree_map(lambda x: jnp.stack([jnp.asarray(x)] * len(rows)), cc.values)
    batch["vs"] = jnp.asarray(np.stack(rows))
    out = C.transient(cc, values=batch, batched=True)
    for j, row in enumerate(rows):
        single = C.transient(cc, values=dict(cc.values, vs=row))
        assert_allclose(out.i("V1")[j], single.i("V1"), rtol=1e-12, atol=1e-12)
        assert_allclose(out.node_v[j], single.node_v, rtol=1e-12, atol=1e-15)


def test_batch_equals_single_runs_and_compiles_once():
    cc = _rc_membrane(duration_ns=10.0, cal="crown6:NaCl@1.0+KCl@0.5")  # 2 states: batching does not depend on K
    rs = np.array([2e8, 5e8, 1e9])
    batch = jax.tree_util.tree_map(lambda x: jnp.stack([jnp.asarray(x)] * 3), cc.values)
    batch["g_ps"] = jnp.asarray(1e12 / rs)[:, None]
    out = C.transient(cc, values=batch, batched=True)
    for j, r in enumerate(rs):
        single = C.transient(cc, values=dict(cc.values, g_ps=np.array([1e12 / r])))
        assert_allclose(out.i("V1")[j], single.i("V1"), rtol=1e-10, atol=1e-9)
    # a sweep over an element value and a source's values is runtime input: nothing compiles again
    with xla_compiles() as compiled:
        other = C.transient(cc, values=dict(cc.values, g_ps=np.array([1e12 / 3e8]), vs=0.8 * cc.values["vs"]))
    assert compiled == []
    assert np.max(np.abs(other.vb("V1"))) == pytest.approx(0.8 * 0.5, rel=1e-12)  # the new source values ran


def test_a_sweep_over_dt_and_duration_compiles_once_and_matches_the_unpadded_solve():
    """dt is a runtime input and step counts are padded to a bucket (sources held, the tail's
    failures not counted, outputs cut back): 10 ns at dt 0.05 (200 steps), 0.04 (250) and 12 ns
    at 0.05 (240) share one compiled program, and each equals the direct, unpadded solve."""
    cases = [(10.0, 0.05), (10.0, 0.04), (12.0, 0.05)]
    two_state = "crown6:NaCl@1.0+KCl@0.5"  # the padding logic does not depend on K; a 2-state membrane compiles faster
    traces = [C.transient(_rc_membrane(duration_ns=d, dt_ns=dt, cal=two_state)) for d, dt in cases[:1]]
    with xla_compiles() as compiled:
        traces += [C.transient(_rc_membrane(duration_ns=d, dt_ns=dt, cal=two_state)) for d, dt in cases[1:]]
    assert compiled == []
    for (d, dt), tr in zip(cases, traces, strict=True):
        cc = _rc_membrane(duration_ns=d, dt_ns=dt, cal=two_state)
        assert tr.t_ns.size == round(d / dt) + 1 and tr.t_ns[-1] == pytest.approx(d)
        with jax.enable_x64(True):
            z, *_ = C.solve(cc.topology, jax.tree_util.tree_map(jnp.asarray, cc.values))
        assert_allclose(tr.node_v, np.asarray(z)[:, : len(cc.topology.nodes)], rtol=1e-11, atol=1e-13)


def _graph_without_ground():
    g = nx.MultiDiGraph()
    g.add_edge("a", "b", key="R1", element=C.Resistor("R1", 1e9))
    g.add_edge("a", "b", key="V1", element=C.VoltageSource("V1", P.dc(0.1, 1.0)))
    return g


def _graph(*edges):
    g = nx.MultiDiGraph()
    for a, b, el in edges:
        g.add_edge(a, b, key=el.name, element=el)
    return g


V = C.VoltageSource("V1", P.dc(0.1, 1.0))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_graph_without_ground, r"no ground: one node must be named '0'"),
        (
            lambda: _graph(("in", "0", V), ("in", "x", C.Resistor("R1", 1e9)), ("in", "0", C.Resistor("R2", 1e9))),
            r"node 'x' is floating: only one element \(R1\)",
        ),
        (
            lambda: _graph(
                ("in", "0", V),
                ("in", "0", C.Resistor("R1", 1e9)),
                ("a", "b", C.Resistor("R2", 1e9)),
                ("a", "b", C.Resistor("R3", 1e9)),
            ),
            r"nodes \['a', 'b'\] are floating: no element connects them to ground",
        ),
        (
            lambda: _graph(("in", "0", V), ("in", "0", C.VoltageSource("V2", P.dc(0.2, 1.0)))),
            r"\['V1', 'V2'\] form a loop of voltage sources",
        ),
        (
            lambda: _graph(
                ("in", "0", V),
                ("in", "m", C.Resistor("R1", 1e9)),
                ("m", "0", C.Capacitor("C1", 1e-18)),
                ("m", "x", C.Capacitor("C2", 1e-18)),
                ("x", "0", C.Capacitor("C3", 1e-18)),
                ("x", "0", C.Resistor("R2", 1e9)),
            ),
            r"loop of voltage sources and/or capacitors",
        ),
        (
            lambda: _graph(("in", "0", V), ("in", "m", C.Capacitor("C1", 1e-18)), ("m", "0", C.Capacitor("C2", 1e-18))),
            r"\['m'\] are floating at DC",
        ),
        (
            lambda: _graph(("in", "0", V), ("in", "0", C.Resistor("R1", -5.0))),
            r"element 'R1': r_ohm \(resistance, ohm\) must be a finite number > 0; got -5\.0",
        ),
        (
            lambda: _graph(("in", "0", V), ("in", "m", C.Resistor("R1", 1e9)), ("m", "0", C.Capacitor("C1", 0.0))),
            r"element 'C1': c_f \(capacitance, F\) must be a finite number > 0",
        ),
        (
            lambda: _graph(("in", "0", V), ("in", "0", C.Membrane("M1", "B3N:KCl@1.0+XeCl@0.5"))),
            r"element 'M1': unknown or invalid calibration",
        ),
    ],
)
def test_bad_circuits_raise_naming_the_element_and_rule(make, message):
    with pytest.raises(ValueError, match=message):
        C.compile_circuit(make(), 1.0, 0.1)


def test_newton_failure_names_time_and_place():
    cc = _rc_membrane(duration_ns=10.0)
    with pytest.raises(FloatingPointError, match=r"Newton did not converge at t = 5\.05 ns .*node"):
        bad = dict(cc.values, vs=np.where(np.arange(cc.topology.n_steps) >= 100, np.nan, cc.values["vs"]))
        C.transient(cc, values=bad)


def test_stochastic_operating_point_balances_with_the_drawn_pores_and_unknown_elements_are_refused():
    tr = C.transient(_rc_membrane(stochastic=True, n_pores=20, duration_ns=10.0), key=jax.random.key(2))
    assert _kcl_residual_pa(tr).max() < 1e-6  # t = 0 included: KCL with the drawn occupancy

    class Diode(C.Resistor):
        pass

    g = C.circuit(C.series(C.Resistor("R1", 1e9), Diode("D1", 1e9)), V)
    with pytest.raises(ValueError, match=r"element 'D1' is a Diode; the solver knows Resistor"):
        C.compile_circuit(g, 1.0, 0.1)


# Stiff circuits (issue 15, item 1): a time constant far below dt. Trapezoidal steps alone ring
# (amplification −1 in the stiff limit) and report a wrong answer with no error; backward-Euler
# steps after each jump relax the stiff node instead.


def _divider(c_f=None, duration_ns=5.0):
    """0.5 V step at 1 ns through 1e8 Ω onto 1e8 Ω to ground, optionally with ``c_f`` at the
    middle node (τ = c_f·5e7 Ω: 5e-5 ns for 1e-21 F, a thousandth of dt)."""
    load = C.Resistor("R2", 1e8) if c_f is None else C.parallel(C.Resistor("R2", 1e8), C.Capacitor("Cs", c_f))
    g = C.circuit(C.series(C.Resistor("R1", 1e8), load), C.VoltageSource("V1", P.step(0.5, 1.0, 3.0, duration_ns=duration_ns)))
    return C.compile_circuit(g, duration_ns, 0.05)


def test_a_stiff_capacitor_relaxes_at_once_and_agrees_with_the_circuit_without_it():
    plain = C.transient(_divider())
    stiff = C.transient(_divider(1e-21))
    v_plain, v_stiff = plain.vb("R2"), stiff.vb("R2")
    assert_allclose(v_plain[21:60], 0.25, rtol=1e-12, atol=0)
    # old code: 0.25/0.0 alternating after the jump; then the first step after a jump lagged by
    # (τ/dt)·ΔV (one backward-Euler step); now that step is 16 backward-Euler substeps, so the node has
    # settled to (1 + dt/(16τ))^-16·ΔV (~1e-29 V here) by the first saved point after each jump
    tau_over_dt = 1e-21 * 5e7 * 1e9 / 0.05
    settled = (1 + 1 / (16 * tau_over_dt)) ** -16 * 0.5
    assert_allclose(v_stiff, v_plain, rtol=0, atol=1e-12 + settled)
    assert_allclose(stiff.i("R1"), plain.i("R1"), rtol=0, atol=1e-9)  # pA, of 2500 pA: the first points too
    # nothing alternates step to step (old code: the whole 0.25 V)
    dv = np.diff(v_stiff[22:60])
    assert np.abs(dv).max() < 1e-12
    # still second order on a resolved RC (test_rc_step_... above) and energy exact for the capacitor
    stored = 0.5 * 1e-21 * (v_stiff[-1] ** 2 - v_stiff[0] ** 2) * 1e18
    assert_allclose(stiff.energy("Cs")[-1], stored, rtol=1e-9, atol=1e-18)


@pytest.mark.slow  # two membrane circuits compile for ~10 s each on one core
def test_issue_stiff_membrane_circuit_agrees_with_the_one_without_the_capacitor():
    """The issue's case: 0.5 V through 1e8 Ω onto 1e-21 F ∥ 100 B3N K+/Rb+ pores at dt 0.05 ns."""

    def pulse(with_c):
        m = C.Membrane("M1", RB, n_pores=100)
        load = C.parallel(m, C.Capacitor("Cs", 1e-21)) if with_c else m
        g = C.circuit(C.series(C.Resistor("Racc", 1e8), load), C.VoltageSource("V1", P.step(0.5, 2.0, 30.0, duration_ns=40.0)))
        return C.transient(C.compile_circuit(g, 40.0, 0.05)).i("Racc")

    plain, stiff = pulse(False), pulse(True)
    assert plain.max() > 2000
    later = np.ones(plain.size, bool)
    later[[41, 601]] = False  # the first point after each jump: backward Euler's one-step lag
    assert_allclose(stiff[later], plain[later], rtol=0, atol=2e-3 * plain.max())  # old: 4975 vs 2369 pA, alternating
    assert_allclose(stiff[~later], plain[~later], rtol=0.03, atol=0)
    half = plain.max() / 2
    assert np.sum(stiff > half) == np.sum(plain > half)  # same FWHM (old: 0 ns)


def test_newton_failure_is_retried_at_half_the_step_before_giving_up(monkeypatch):
    """Issue 15, item 5: a step where Newton gives up is retried with dt halved (SPICE's step cut),
    and the error comes only when the finest dt fails too. Newton is capped at 2 iterations of at
    most 0.2 V here, so the RC node's first step of 0.6 V at dt 0.5 ns fails and its 0.33 V step at
    dt 0.25 ns converges (a stand-in for a hard nonlinear step, on a circuit with a closed form)."""
    monkeypatch.setattr(C._solver, "_NEWTON_MAX_ITER", 2)
    C._solver._run_jit.clear_cache()  # traces made with the cap must not outlive this test
    try:
        src = C.CurrentSource("I1", P.step(-1500.0, 1.0, None, duration_ns=4.0))  # pA (a → b) into R ∥ C: 1.5 V, τ = 1 ns
        g = C.circuit(C.parallel(C.Resistor("R1", 1e9), C.Capacitor("C1", 1e-18)), src)
        tr = C.transient(C.compile_circuit(g, 4.0, 0.5))  # old code: FloatingPointError at t = 1.5 ns
        finer = C.transient(C.compile_circuit(g, 4.0, 0.25), save_every=2)
        assert_allclose(tr.t_ns, finer.t_ns, rtol=0, atol=1e-12)
        assert_allclose(tr.vb("C1"), finer.vb("C1"), rtol=0, atol=1e-12)  # the dt/2 answer
        t = tr.t_ns
        assert_allclose(tr.vb("C1"), np.where(t > 1.0, 1.5 * (1 - np.exp(-(t - 1.0))), 0.0), rtol=0, atol=0.01)
        # 100 times the current: every dt fails; one halving allowed here (each is a compile)
        monkeypatch.setattr(C._solver, "MAX_DT_HALVINGS", 1)
        cc = C.compile_circuit(g, 4.0, 0.5)
        big = dict(cc.values, is_=100 * cc.values["is_"])
        match = r"Newton did not converge at t = 1\.25 ns .*dt_ns = 0\.25 after 1 halving\)"
        with pytest.raises(FloatingPointError, match=match):
            C.transient(cc, values=big)
    finally:
        C._solver._run_jit.clear_cache()


@pytest.mark.slow  # a stochastic membrane circuit compiles for ~15 s on one core
def test_stiff_capacitor_with_stochastic_pores_does_not_ring():
    """Drawn pores change the conductance at every step: with a stiff capacitor the solver takes
    backward-Euler steps throughout, so the capacitor's current stays the small C·dV/dt of the
    drifting node instead of alternating at the size of the resistor's."""
    load = C.parallel(C.Membrane("M1", RB, n_pores=100, stochastic=True), C.Capacitor("Cs", 1e-21))
    g = C.circuit(C.series(C.Resistor("Racc", 1e8), load), C.VoltageSource("V1", P.step(0.5, 1.0, 8.0, duration_ns=10.0)))
    tr = C.transient(C.compile_circuit(g, 10.0, 0.05), key=jax.random.key(3))
    i_r, i_c = tr.i("Racc"), tr.i("Cs")
    assert i_r.max() > 1000
    assert np.abs(i_c[25:160]).max() < 0.01 * i_r.max()  # from 0.2 ns after the jump to 8 ns
