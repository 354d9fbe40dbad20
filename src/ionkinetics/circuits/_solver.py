"""Transient solver: modified nodal analysis, trapezoidal companions, Newton–Raphson, one
jitted ``lax.scan``.

Unknowns per time point: the non-ground node voltages, the current through every voltage
source and through every capacitor. Capacitors use the trapezoidal companion
``i_{n+1} + i_n = (2C/dt)(v_{n+1} − v_n)``; resistive elements (resistors, membranes,
sources) are algebraic at ``t_{n+1}``. A membrane's occupancy is advanced *inside* the Newton
residual by the kinetic core's exact exponential, ``p_{n+1} = p_n·expm(Q(V̄)·dt)`` with
``V̄ = (V_n + V_{n+1})/2`` (the exponential midpoint rule), so Newton solves node voltages and
occupancies together with the occupancy eliminated exactly. Both parts are second order; the
error falls as dt² (measured in the tests).

Source jumps (protocol breakpoints, on the time grid) are discontinuities: before the step
after a jump the solver finds the consistent state at ``t_n⁺`` (capacitor voltages and
occupancies continuous, sources at their new values), as a DAE solver re-initialises after an
event, and a membrane driven by an ideal source sees exactly the held voltage that the kinetic
core's ``simulate`` uses (same answer to round-off). Where a capacitor's time constant
``C/G`` at that state is below dt/2 (stiff: a tiny capacitance behind a large resistance), the
step after a jump and the one after it are L-stable backward-Euler steps (``i_{n+1} = (C/dt)(v_{n+1} − v_n)``,
occupancies at ``V_{n+1}``; the first cut into 16 substeps, so a node with τ ≪ dt has settled by the
next saved point), followed by a re-initialisation of the currents, before the
trapezoidal steps resume (SPICE's start-up after a breakpoint): the stiff node relaxes within
those steps instead of ringing (trapezoidal's amplification is −1 in the stiff limit). A fixed
number of first-order steps per jump keeps the global order 2; a circuit with no stiff capacitor
is stepped trapezoidally throughout. With stochastic membranes the conductance jumps at every
step, so a stiff circuit takes backward-Euler steps throughout (first order).

Energy: every element's absorbed energy is accumulated as ``dt·v̄·ī`` with the step's
averages. By Tellegen's theorem the sum over elements is zero to round-off at every step, and
for a capacitor it equals ``½C(v²_{n+1} − v²_n)`` exactly, so source energy = dissipated +
stored holds to round-off.

Stochastic membranes move their pores by exact multinomial draws with the propagator at the
extrapolated mid-step voltage ``1.5·V_n − 0.5·V_{n−1}`` (``V_n⁺`` after a jump) and then
hold their counts while Newton solves the step.

Gradients go through the Newton solves by the implicit function theorem (``lax.custom_root``),
not through the iterations.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

from .._checks import check_voltage
from ..constants import AJ_PER_PA_V_NS
from ..kinetics import max_squarings_for, membrane_current_pa, multinomial_counts, steady_state, transition_matrix
from . import _graph as G

__all__ = ["CircuitTrace", "Compiled", "Topology", "compile_circuit", "solve", "transient"]

_NEWTON_MAX_ITER = 100
MAX_DT_HALVINGS = 3  # a run whose Newton fails at some step is repeated at dt/2, dt/4, dt/8
_MAX_HALVINGS = 10
_NEWTON_ATOL = 1e-13
_NEWTON_RTOL = 1e-11
_MAX_DV_PER_ITER_V = 0.2  # voltage limiting, as SPICE limits junction voltages between iterations
_RESIDUAL_TOL_PA = 1e-7  # a converged step's current balance (pA) is below this × (1 + largest current)
_RESIDUAL_TOL_V = 1e-9  # and its constraint rows (V) below this × (1 + largest node voltage)


@dataclasses.dataclass(frozen=True)
class Topology:
    """The static, hashable part of a compiled circuit: node order, element names and
    terminals per kind (``R, C, V, I, M``; ground is index ``len(nodes)``), membrane sizes."""

    nodes: tuple
    names: tuple  # per kind, in KINDS order: tuple of element names
    terminals: tuple  # per kind: (a indices, b indices)
    n_pores: tuple
    stochastic: tuple
    state_names: tuple
    dt_ns: float
    n_steps: int
    max_squarings: int = 40  # of the K > 2 membranes' expm: set from the values by ``transient``

    def idx(self, kind):
        """``(a, b)`` int32 node indices of the first and second terminal of every element of ``kind`` (ground is
        ``len(nodes)``)."""
        a, b = self.terminals[KINDS.index(kind)]
        return np.array(a, dtype=np.int32), np.array(b, dtype=np.int32)

    def names_of(self, kind):
        """Names of the elements of ``kind`` (one of ``R, C, V, I, M``), in branch order."""
        return self.names[KINDS.index(kind)]

    @property
    def branch_names(self) -> tuple:
        """Every element's name in branch order (kinds in ``R, C, V, I, M`` order): the last axis of the branch arrays."""
        return tuple(n for kind in KINDS for n in self.names_of(kind))


@dataclasses.dataclass(frozen=True)
class Compiled:
    """A circuit compiled once, before jit: its :class:`Topology` and default element values.

    ``values`` is a dict pytree: ``g_ps`` (resistor conductances, pS), ``c`` (capacitances,
    pA·ns/V), ``vs``/``is_`` (source values per step, V / pA), ``vs_rest``/``is_rest`` (before
    t = 0) and ``mem`` (a tuple of KineticParams, one per membrane). Replace any leaf, or give
    every leaf a leading batch axis, and pass it to :func:`transient`.
    """

    topology: Topology
    values: dict
    # per membrane: (name, system id, |V| range its calibration's data cover or None), for the warning
    data_ranges: tuple = ()

    def value_index(self, name: str) -> tuple[str, int]:
        """(values key, position) of element ``name``'s value."""
        for kind, key in zip(KINDS, ("g_ps", "c", "vs", "is_", "mem"), strict=True):
            if name in self.topology.names_of(kind):
                return key, self.topology.names_of(kind).index(name)
        raise ValueError(f"no element named {name!r}; elements: {list(self.topology.branch_names)}")


KINDS = ("R", "C", "V", "I", "M")


def compile_circuit(graph: nx.MultiDiGraph, duration_ns: float, dt_ns: float) -> Compiled:
    """Validate ``graph`` and turn it into arrays for :func:`transient` (done once, before jit)."""
    G.validate(graph)
    if not (isinstance(dt_ns, (int, float)) and math.isfinite(dt_ns) and dt_ns > 0):
        raise ValueError(f"dt_ns must be a finite number > 0; got {dt_ns!r}")
    if not (isinstance(duration_ns, (int, float)) and math.isfinite(duration_ns) and duration_ns > 0):
        raise ValueError(f"duration_ns must be a finite number > 0; got {duration_ns!r}")
    n_steps = round(duration_ns / dt_ns)
    if abs(n_steps * dt_ns - duration_ns) > 1e-9 * duration_ns:
        raise ValueError(f"dt_ns must divide duration_ns={duration_ns:g}; got dt_ns={dt_ns:g}")
    nodes = tuple(n for n in graph if n != G.GROUND)
    idx = {n: i for i, n in enumerate(nodes)}
    idx[G.GROUND] = len(nodes)
    kinds = {"R": G.Resistor, "C": G.Capacitor, "V": G.VoltageSource, "I": G.CurrentSource, "M": G.Membrane}
    names, index, els = {}, {}, {}
    for kind, cls in kinds.items():
        chosen = [(a, b, el) for a, b, el in G.elements(graph) if isinstance(el, cls)]
        els[kind] = [el for *_, el in chosen]
        names[kind] = tuple(el.name for el in els[kind])
        index[kind] = (
            np.array([idx[a] for a, *_ in chosen], dtype=np.int32),
            np.array([idx[b] for _, b, _ in chosen], dtype=np.int32),
        )

    def samples(el):
        try:
            return el.protocol.sample(dt_ns)[:n_steps], el.protocol.v_rest_v
        except ValueError as exc:
            raise ValueError(f"element {el.name!r}: {exc}") from None

    def source_arrays(kind):
        if not els[kind]:
            return np.zeros((0, n_steps)), np.zeros(0)
        pairs = [samples(el) for el in els[kind]]
        for el, (s, _) in zip(els[kind], pairs, strict=True):
            if s.shape[0] != n_steps:
                raise ValueError(
                    f"element {el.name!r}: its protocol lasts {el.protocol.duration_ns:g} ns, shorter than {duration_ns:g} ns"
                )
            if el.protocol.duration_ns > duration_ns * (1 + 1e-9):  # the rest would be cut off unseen
                raise ValueError(
                    f"element {el.name!r}: its protocol lasts {el.protocol.duration_ns:g} ns, longer than the circuit's "
                    f"duration_ns={duration_ns:g}; make them equal"
                )
        return np.stack([s for s, _ in pairs]), np.array([r for _, r in pairs])

    vs, vs_rest = source_arrays("V")
    is_, is_rest = source_arrays("I")
    cals = [el.load() for el in els["M"]]
    values = {
        "g_ps": np.array([G.PS_PER_SIEMENS / el.r_ohm for el in els["R"]]),
        "c": np.array([G.CAP_UNIT_PER_FARAD * el.c_f for el in els["C"]]),
        "vs": vs,
        "vs_rest": vs_rest,
        "is_": is_,
        "is_rest": is_rest,
        "mem": tuple(c.params for c in cals),
    }
    topology = Topology(
        nodes=nodes,
        names=tuple(names[k] for k in KINDS),
        terminals=tuple((tuple(int(x) for x in index[k][0]), tuple(int(x) for x in index[k][1])) for k in KINDS),
        n_pores=tuple(el.n_pores for el in els["M"]),
        stochastic=tuple(el.stochastic for el in els["M"]),
        state_names=tuple(c.state_names for c in cals),
        dt_ns=float(dt_ns),
        n_steps=int(n_steps),
    )
    ranges = tuple((el.name, c.system_id, c.data_range_v) for el, c in zip(els["M"], cals, strict=True))
    return Compiled(topology, values, data_ranges=ranges)


# ----------------------------------------------------------------------------------------------
# residuals


def _dt(cc: Topology, vals):
    """The step, ns: a runtime input (``vals["dt_ns"]``, set by :func:`transient`, so a sweep over dt
    compiles once) or the topology's own for a direct :func:`solve`."""
    return vals["dt_ns"] if "dt_ns" in vals else cc.dt_ns


def _branch_v(v_full, ab):
    a, b = ab
    return v_full[a] - v_full[b]


def _membrane_current(params, n_pores, v, p):
    return n_pores * membrane_current_pa(params, v, p)


def _mean_field_update(params, p_start, v_start, v_end, dt, theta=0.5, max_squarings=None):
    """Exact propagator at ``(1−θ)·V_start + θ·V_end``: the midpoint (θ = ½) in a trapezoidal
    step, the end point (θ = 1) in a backward-Euler step."""
    return _propagated(params, p_start, (1.0 - theta) * v_start + theta * v_end, dt, max_squarings)


@functools.partial(jax.custom_jvp, nondiff_argnums=(4,))
def _propagated(params, p_start, v_bar, dt, max_squarings):
    """``p_start·expm(Q(v̄)·dt)``. Its JVP differentiates the propagator in v̄ once, along a unit
    tangent, and scales that by v̄'s tangent: Newton's ``jacfwd`` pushes one tangent per unknown,
    which would otherwise each go through the K > 2 membranes' Padé expm (the costliest part of
    a Jacobian). Tangents of the parameters and of dt (gradients) take one more JVP, only when
    present."""
    return p_start @ transition_matrix(params, v_bar, dt, max_squarings=max_squarings)


def _propagated_jvp(max_squarings, primals, tangents):
    params, p_start, v_bar, dt = primals
    d_params, d_p, d_v, d_dt = tangents
    zero = lambda t: isinstance(t, SymbolicZero)  # noqa: E731
    prop = lambda pr, v, h: transition_matrix(pr, v, h, max_squarings=max_squarings)  # noqa: E731
    t_mat, dt_dv = jax.jvp(lambda v: prop(params, v, dt), (v_bar,), (jnp.ones_like(v_bar),))
    d_t = jnp.zeros_like(t_mat) if zero(d_v) else dt_dv * d_v
    if not (all(zero(t) for t in jax.tree_util.tree_leaves(d_params, is_leaf=zero)) and zero(d_dt)):
        fill = lambda x, t: jnp.zeros_like(x) if zero(t) else t  # noqa: E731
        d_pr = jax.tree_util.tree_map(fill, params, d_params, is_leaf=zero)
        d_t = d_t + jax.jvp(lambda pr, h: prop(pr, v_bar, h), (params, dt), (d_pr, fill(dt, d_dt)))[1]
    d_out = p_start @ d_t
    if not zero(d_p):
        d_out = d_out + d_p @ t_mat
    return p_start @ t_mat, d_out


_propagated.defjvp(_propagated_jvp, symbolic_zeros=True)


def _split(cc: Topology, z):
    n, m = len(cc.nodes), len(cc.names_of("V"))
    v_full = jnp.concatenate([z[:n], jnp.zeros((1,), z.dtype)])
    return v_full, z[n : n + m], z[n + m :]


def _branches(cc: Topology, vals, z, mem_p, src_i):
    """Branch voltages and currents (R, C, V, I, M order) at a solution ``z``, with membrane
    occupancies ``mem_p`` (tuple) at that time."""
    v_full, i_v, i_c = _split(cc, z)
    volts, amps = [], []
    vr = _branch_v(v_full, cc.idx("R"))
    volts.append(vr)
    amps.append(vals["g_ps"] * vr)
    for kind, amp in (("C", i_c), ("V", i_v), ("I", src_i)):
        volts.append(_branch_v(v_full, cc.idx(kind)))
        amps.append(amp)
    vm = _branch_v(v_full, cc.idx("M"))
    volts.append(vm)
    amps.append(
        jnp.stack(
            [_membrane_current(pr, n, vm[j], p) for j, (pr, n, p) in enumerate(zip(vals["mem"], cc.n_pores, mem_p, strict=True))]
        )
        if cc.n_pores
        else jnp.zeros(0, z.dtype)
    )
    return jnp.concatenate(volts), jnp.concatenate(amps)


def _residual(cc: Topology, vals, mode, z, ctx):
    """F(z) = 0 for one time point. ``mode``: "dc" (operating point), "init" (consistent state
    after a jump), "step" (trapezoidal step from ``ctx``)."""
    n = len(cc.nodes)
    v_full, _i_v, i_c = _split(cc, z)
    src_v, src_i = ctx["src_v"], ctx["src_i"]
    vm = _branch_v(v_full, cc.idx("M"))
    mem_p = []
    for j, pr in enumerate(vals["mem"]):
        if mode == "dc":
            mem_p.append(steady_state(pr, vm[j]))
        elif mode == "step" and not cc.stochastic[j]:
            mem_p.append(
                _mean_field_update(pr, ctx["mem_p"][j], ctx["v_mem"][j], vm[j], _dt(cc, vals), ctx["theta"], cc.max_squarings)
            )
        else:
            mem_p.append(ctx["mem_p"][j])
    _, amps = _branches(cc, vals, z, mem_p, src_i)
    f = jnp.zeros(n + 1, z.dtype)
    start = 0
    for kind in KINDS:
        a, b = cc.idx(kind)
        cur = amps[start : start + len(a)]
        f = f.at[a].add(cur).at[b].add(-cur)
        start += len(a)
    rows = [f[:n], _branch_v(v_full, cc.idx("V")) - src_v]
    vc = _branch_v(v_full, cc.idx("C"))
    if mode == "dc":
        rows.append(i_c)
    elif mode == "init":
        rows.append(vc - ctx["v_c"])
    else:  # θ = ½: trapezoidal; θ = 1: backward Euler (after a jump)
        theta = ctx["theta"]
        rows.append(_dt(cc, vals) / vals["c"] * (theta * i_c + (1.0 - theta) * ctx["i_c"]) - (vc - ctx["v_c"]))
    return jnp.concatenate(rows), tuple(mem_p)


def _with_value(f):
    def both(x):
        y = f(x)
        return y, y

    return both


def _limited_newton(fun, n_volt):
    """Newton with the voltage part of each update clipped to ``_MAX_DV_PER_ITER_V`` and a
    backtracking line search on ‖F‖ (halving, at most ``_MAX_HALVINGS`` times): membranes in
    series can have negative differential resistance, where plain Newton cycles."""

    def solve(f, z0):
        def body(carry):
            z, _, it = carry
            jac, fz = jax.jacfwd(_with_value(f), has_aux=True)(z)  # F and J from one trace
            dz = jnp.linalg.solve(jac, fz)
            big = jnp.max(jnp.abs(dz[:n_volt])) if n_volt else jnp.zeros((), z.dtype)
            dz = dz * jnp.where(big > _MAX_DV_PER_ITER_V, _MAX_DV_PER_ITER_V / jnp.where(big > 0, big, 1.0), 1.0)
            # rows mix pA (current balance) and V (constraints): the merit ‖D·F‖² equilibrates
            # them by each row's largest Jacobian entry, held fixed through the line search
            row = jnp.max(jnp.abs(jac), axis=1)
            d = 1.0 / jnp.where(row > 0, row, 1.0)
            fz = d * fz
            norm0 = jnp.sum(fz * fz)

            def shrink(state):
                alpha, _ = state
                return alpha * 0.5, jnp.sum(jnp.square(d * f(z - 0.5 * alpha * dz)))

            # round-off floor of ‖F‖²: below it a full step is always taken
            floor = fz.size * jnp.square(_NEWTON_RTOL * (1.0 + jnp.max(jnp.abs(z[:n_volt]), initial=0.0)))

            def too_big(state):
                alpha, norm = state
                return (alpha > 2.0**-_MAX_HALVINGS) & ~(norm <= (1.0 - 1e-4 * alpha) * norm0 + floor)

            # start "one halving above" the full step so f is traced once, inside the loop
            alpha, _ = lax.while_loop(too_big, shrink, (jnp.full((), 2.0, z.dtype), jnp.full((), jnp.inf, z.dtype)))
            return z - alpha * dz, dz, it + 1  # convergence is judged on the full Newton step

        def cond(carry):
            z, dz, it = carry
            small = jnp.max(jnp.abs(dz)) <= _NEWTON_ATOL + _NEWTON_RTOL * jnp.max(jnp.abs(z))
            return (it < _NEWTON_MAX_ITER) & ~small & jnp.all(jnp.isfinite(z))

        z, _, _ = lax.while_loop(cond, body, (z0, jnp.full_like(z0, jnp.inf), 0))
        return z

    return solve


def _cap_time_constants_ns(cc: Topology, vals, z, ctx):
    """Each capacitor's time constant (ns) at ``z``: C·(1/G_a + 1/G_b) with G the conductance
    from each of its nodes (∂ current balance / ∂ node voltage, capacitors excluded; 0 at ground)."""
    n = len(cc.nodes)
    jac = jax.jacfwd(lambda x: _residual(cc, vals, "init", x, ctx)[0])(z)
    g_node = jnp.concatenate([jnp.abs(jnp.diagonal(jac)[:n]), jnp.full((1,), jnp.inf, z.dtype)])
    a, b = cc.idx("C")
    return vals["c"] * (1.0 / g_node[a] + 1.0 / g_node[b])


def _tangent_solve(g, y):
    return jnp.linalg.solve(jax.jacfwd(g)(y), y)


def _solve(cc, vals, mode, z0, ctx):
    fun = lambda z: _residual(cc, vals, mode, z, ctx)[0]  # noqa: E731
    z = lax.custom_root(fun, z0, _limited_newton(fun, len(cc.nodes)), _tangent_solve)
    f, mem_p = _residual(cc, vals, mode, z, ctx)
    n = len(cc.nodes)
    # current-balance rows are judged in pA against the circuit's currents, constraint rows in V
    amps = jnp.concatenate([jnp.abs(z[n:]), jnp.abs(ctx["src_i"]), jnp.zeros(1, z.dtype)])
    tol = jnp.concatenate(
        [
            jnp.full(n, _RESIDUAL_TOL_PA * (1.0 + jnp.max(amps))),
            jnp.full(f.size - n, _RESIDUAL_TOL_V * (1.0 + jnp.max(jnp.abs(z[:n]), initial=0.0))),
        ]
    )
    bad = jnp.any(jnp.abs(f) > tol) | ~jnp.all(jnp.isfinite(z))
    return z, mem_p, bad, jnp.argmax(jnp.abs(jnp.where(jnp.isfinite(f), f, jnp.inf)))


# ----------------------------------------------------------------------------------------------
# the scan

_INT = jnp.int32
# Backward-Euler steps after a jump: the first relaxes a stiff node to within τ/dt of its
# quasi-static value, the second to within the physical lag τ·dV/dt, so the trapezoidal steps
# that follow (amplification −1 in the stiff limit) carry no visible ringing.
_BE_STEPS = 2
# The first of them is cut into this many backward-Euler substeps: a stiff node (τ ≪ dt) then
# relaxes within the step to (1 + dt/(m·τ))^-m of the jump instead of (1 + dt/τ)^-1 (at τ = dt/200,
# 1e-18 instead of 5e-3), so the saved point after a jump holds the settled voltage and current, as
# an adaptive SPICE step that shrinks at the breakpoint does.
_JUMP_SUBSTEPS = 16


def _jumps(vals):
    """True for each step whose source values differ from the previous step's (or, for step 0,
    from the values before t = 0)."""
    both = jnp.concatenate([vals["vs"], vals["is_"]], axis=0)
    rest = jnp.concatenate([vals["vs_rest"], vals["is_rest"]])
    prev = jnp.concatenate([rest[:, None], both[:, :-1]], axis=1)
    return jnp.any(both != prev, axis=0)


class NewtonPhase(enum.IntEnum):
    """Where a Newton solve failed, the third entry of a circuit's failure record ``[step, row, phase]``
    (step ``NO_FAILURE`` = −1 when none failed, ``AT_OPERATING_POINT`` = −2 before t = 0)."""

    OPERATING_POINT = 0
    JUMP = 1  # re-initialisation after a source jump
    STEP = 2  # a time step


NO_FAILURE = -1
AT_OPERATING_POINT = -2


def _initial_state(cc: Topology, vals, key_init):
    """The operating point, each membrane's occupancy at t = 0 (stochastic membranes: one multinomial
    draw of their pores from it, and the circuit re-balanced with them held), and the Newton outcome."""
    n_unknown = len(cc.nodes) + len(cc.names_of("V")) + len(cc.names_of("C"))
    ctx0 = {"src_v": vals["vs_rest"], "src_i": vals["is_rest"]}
    z_dc, mem_dc, bad0, row0 = _solve(cc, vals, "dc", jnp.zeros(n_unknown, jnp.result_type(float)), ctx0)
    states = []
    for j, p in enumerate(mem_dc):
        if cc.stochastic[j]:
            start = jnp.zeros_like(p).at[0].set(cc.n_pores[j])
            counts = multinomial_counts(jax.random.fold_in(key_init, j), start, jnp.broadcast_to(p, (p.shape[0],) * 2))
            states.append(counts / cc.n_pores[j])
        else:
            states.append(p)
    states = tuple(states)
    if any(cc.stochastic):  # the drawn pores carry a different current: re-balance t = 0 with them held
        z_dc, _, bad_i, row_i = _solve(
            cc, vals, "init", z_dc, {**ctx0, "mem_p": states, "v_c": _branch_v(_split(cc, z_dc)[0], cc.idx("C"))}
        )
        bad0, row0 = bad0 | bad_i, jnp.where(bad0, row0, row_i)
    return z_dc, states, bad0, row0, ctx0


def _moved_pores(cc: Topology, vals, mem_p, v_mem, vm_prev, jump, key_run, k) -> tuple:
    """Occupancies held over step ``k``: stochastic membranes move by exact multinomial draws at the
    extrapolated mid-step voltage; mean-field ones are left to the step's own solve."""
    held = []
    for j in range(len(cc.n_pores)):
        if cc.stochastic[j]:
            v_mid = jnp.where(jump, v_mem[j], 1.5 * v_mem[j] - 0.5 * vm_prev[j])
            prop = transition_matrix(vals["mem"][j], v_mid, _dt(cc, vals), max_squarings=cc.max_squarings)
            counts = jnp.round(mem_p[j] * cc.n_pores[j])
            step_key = jax.random.fold_in(jax.random.fold_in(key_run, k), j)
            held.append(multinomial_counts(step_key, counts, prop) / cc.n_pores[j])
        else:
            held.append(mem_p[j])
    return tuple(held)


@dataclasses.dataclass(frozen=True)
class _Stepper:
    """What every step of one circuit's scan shares: the compiled topology, its values, the key of the
    run's pore moves and the batch axis (``axis_name``, see :func:`_run`). Trace-time only: a step is
    a function of this and of the scan's carry and input."""

    cc: Topology
    vals: dict
    key_run: jax.Array
    axis_name: str | None

    def context(self, z, mem_p, src_v, src_i) -> dict:
        """The solve's context at unknowns ``z`` and occupancies ``mem_p``."""
        v_full, _, i_c = _split(self.cc, z)
        return {
            "src_v": src_v,
            "src_i": src_i,
            "mem_p": mem_p,
            "v_mem": _branch_v(v_full, self.cc.idx("M")),
            "v_c": _branch_v(v_full, self.cc.idx("C")),
            "i_c": i_c,
        }

    def stiff_at(self, z, ctx):
        """Whether any capacitor's time constant is below dt/2 at the consistent state ``z``."""
        if not self.cc.names_of("C"):
            return jnp.zeros((), bool)
        return jnp.any(_cap_time_constants_ns(self.cc, self.vals, z, ctx) < 0.5 * _dt(self.cc, self.vals))

    def in_any_lane(self, pred):
        """``pred`` of this circuit, or of any circuit in the batch when vmapped over ``axis_name``:
        one predicate for the whole batch, so a ``lax.cond`` on it stays a branch."""
        return pred if self.axis_name is None else lax.pmax(pred.astype(_INT), self.axis_name) > 0

    def lane_cond(self, pred, yes, no):
        """``lax.cond(pred, yes, no)`` per circuit; in a batch, ``yes`` runs (every lane, each then
        taking its own branch's value) only at steps where some lane needs it."""
        if self.axis_name is None:
            return lax.cond(pred, yes, no)
        pick = lambda: jax.tree_util.tree_map(lambda a, b: jnp.where(pred, a, b), yes(), no())  # noqa: E731
        return lax.cond(self.in_any_lane(pred), pick, no)


def _one_step(st: _Stepper, carry, inp):
    """A step; the steps of a padded run's tail (``k`` past ``n_steps_valid``, cut from the outputs)
    are skipped, the carry held."""
    if "n_steps_valid" not in st.vals:
        return _circuit_step(st, carry, inp)
    return st.lane_cond(inp[3] < st.vals["n_steps_valid"], lambda: _circuit_step(st, carry, inp), lambda: (carry, None))


def _state_after_jump(st: _Stepper, z, mem_p, src_v, src_i, redo, stiff):
    """Where ``redo`` (a jump, or the end of backward-Euler steps): the consistent state at t_n⁺ and the
    stiffness re-measured there; else ``z`` and ``stiff`` as they are. Returns ``(z⁺, bad, row, stiff)``."""

    def at_jump():
        ctx_j = st.context(z, mem_p, src_v, src_i)
        z_p, _, bad_p, row_p = _solve(st.cc, st.vals, "init", z, ctx_j)
        return z_p, bad_p, row_p, st.stiff_at(z_p, ctx_j)

    def no_jump():
        return z, jnp.zeros((), bool), jnp.zeros((), jnp.argmax(jnp.zeros(2)).dtype), stiff

    return st.lane_cond(redo, at_jump, no_jump)


def _whole_step(st: _Stepper, z_plus, ctx, theta, bv_start, bi_start, src_i):
    """One θ-method step from ``z_plus``: ``(z, occupancies, bad, row, energy increment per branch (aJ),
    branch currents)``. The energy is the step's own quadrature (θ-weighted currents): Tellegen holds
    for every θ, and a capacitor's share is ½C(v²_{n+1} − v²_n) exactly."""
    cc, vals = st.cc, st.vals
    z_new, p_end, bad, row = _solve(cc, vals, "step", z_plus, ctx)
    p_end = tuple(p_end)
    bv_end, bi_end = _branches(cc, vals, z_new, p_end, src_i)
    i_bar = theta * bi_end + (1.0 - theta) * bi_start
    return z_new, p_end, bad, row, _dt(cc, vals) * 0.5 * (bv_start + bv_end) * i_bar * AJ_PER_PA_V_NS, bi_end


def _jump_substeps(st: _Stepper, z_plus, mem_p, src_v, src_i, bi_start):
    """The first step after a jump with a stiff capacitor as ``_JUMP_SUBSTEPS`` backward-Euler
    substeps: the stiff node's transient decays by (1 + dt/(m·τ))^m instead of 1 + dt/τ. Returns
    what :func:`_whole_step` returns."""
    cc, vals = st.cc, st.vals
    dtype = jnp.result_type(float)
    h = _dt(cc, vals) / _JUMP_SUBSTEPS
    vals_h = {**vals, "dt_ns": h}

    def sub(_, state):
        z_s, p_s, bad_s, row_s, e_s, _ = state
        ctx_s = {**st.context(z_s, p_s, src_v, src_i), "theta": jnp.ones((), dtype)}
        bv_s, _ = _branches(cc, vals, z_s, p_s, src_i)
        z_n, p_n, bad_n, row_n = _solve(cc, vals_h, "step", z_s, ctx_s)
        p_n = tuple(p_n)
        bv_n, bi_n = _branches(cc, vals, z_n, p_n, src_i)
        e_s = e_s + h * 0.5 * (bv_s + bv_n) * bi_n * AJ_PER_PA_V_NS
        return z_n, p_n, bad_s | bad_n, jnp.where(bad_s, row_s, row_n), e_s, bi_n

    row0 = jnp.zeros((), jnp.argmax(jnp.zeros(2)).dtype)
    state0 = (z_plus, mem_p, jnp.zeros((), bool), row0, jnp.zeros(len(cc.branch_names), dtype), bi_start)
    return lax.fori_loop(0, _JUMP_SUBSTEPS, sub, state0)


def _circuit_step(st: _Stepper, carry, inp):
    """One time step of the scan: jump re-initialisation, θ choice, pore moves, Newton step, energy
    quadrature and the first-failure record. ``carry`` is ``(z, occupancies, membrane voltages,
    energy, failure, branch currents, backward-Euler steps left, backward Euler last step, stiff)``,
    ``inp`` ``(voltage sources, current sources, jump, k)``."""
    cc, vals = st.cc, st.vals
    z, mem_p, vm_prev, energy, fail, _, be_left, be_prev, stiff = carry
    src_v, src_i, jump, k = inp
    # a jump (or the end of backward-Euler steps): consistent state at t_n⁺, stiffness re-measured
    z_plus, bad_plus, row_plus, stiff = _state_after_jump(st, z, mem_p, src_v, src_i, jump | be_prev, stiff)
    # with a stiff capacitor, backward Euler for the _BE_STEPS steps after a jump (the stiff node
    # relaxes instead of ringing), then consistent currents before the trapezoidal steps resume
    be_left = jnp.where(jump, _BE_STEPS, be_left)
    be = stiff & ((be_left > 0) | any(cc.stochastic))  # drawn pores: the conductance jumps at every step
    theta = jnp.where(be, 1.0, 0.5)
    ctx = {**st.context(z_plus, mem_p, src_v, src_i), "theta": theta}
    bv_start, bi_start = _branches(cc, vals, z_plus, mem_p, src_i)
    ctx["mem_p"] = _moved_pores(cc, vals, mem_p, ctx["v_mem"], vm_prev, jump, st.key_run, k)

    def whole_step():
        return _whole_step(st, z_plus, ctx, theta, bv_start, bi_start, src_i)

    if any(cc.stochastic) or not cc.names_of("C"):  # drawn pores move once per step: no substeps
        z_new, p_end, bad, row, d_energy, bi_end = whole_step()
    else:
        substeps = lambda: _jump_substeps(st, z_plus, mem_p, src_v, src_i, bi_start)  # noqa: E731
        z_new, p_end, bad, row, d_energy, bi_end = st.lane_cond(be & jump, substeps, whole_step)
    energy = energy + d_energy
    phase = jnp.where(bad_plus, int(NewtonPhase.JUMP), int(NewtonPhase.STEP)).astype(_INT)
    now = jnp.stack([k.astype(_INT), jnp.where(bad_plus, row_plus, row).astype(_INT), phase])
    counted = k < vals.get("n_steps_valid", cc.n_steps)  # steps of a padded run's tail are not the circuit's
    fail = jnp.where((fail[0] == NO_FAILURE) & (bad | bad_plus) & counted, now, fail)
    return (z_new, p_end, ctx["v_mem"], energy, fail, bi_end, jnp.maximum(be_left - 1, 0), be, stiff), None


def _run(cc: Topology, vals, key, save_every: int, axis_name=None):
    """One circuit: operating point, then ``n_steps`` steps. Returns the solutions, occupancies
    and cumulative absorbed energy per branch (aJ) at the saved points, and a failure record
    ``[step, residual row, phase]`` (:class:`NewtonPhase`; step ``NO_FAILURE``: none).

    ``axis_name``: the batch axis when ``jax.vmap`` runs this over a batch of circuits. Under vmap a
    ``lax.cond`` on a per-circuit predicate becomes a select that evaluates both branches in every
    lane at every step; with the axis named, the re-initialisation after a jump and the steps of a
    padded run's tail branch on whether *any* circuit of the batch needs them (a collective over
    the batch), and within the taken branch each lane still selects its own result, so every lane's
    output is what it is alone. The step itself is :func:`_circuit_step`."""
    dtype = jnp.result_type(float)
    key_init, key_run = jax.random.split(key)
    z_dc, states, bad0, row0, ctx0 = _initial_state(cc, vals, key_init)
    vm0 = _branch_v(_split(cc, z_dc)[0], cc.idx("M"))
    st = _Stepper(cc, vals, key_run, axis_name)
    stiff0 = st.stiff_at(z_dc, {**ctx0, "mem_p": states, "v_c": _branch_v(_split(cc, z_dc)[0], cc.idx("C"))})
    step = functools.partial(_one_step, st)

    def chunk(carry, inp):
        carry, _ = lax.scan(step, carry, inp)
        return carry, (carry[0], carry[1], carry[3], carry[5])

    n_branch = len(cc.branch_names)
    at_op = jnp.stack([jnp.asarray(AT_OPERATING_POINT, _INT), row0.astype(_INT), jnp.asarray(NewtonPhase.OPERATING_POINT, _INT)])
    fail0 = jnp.where(bad0, at_op, jnp.array([NO_FAILURE, 0, 0], _INT))
    _, bi0 = _branches(cc, vals, z_dc, states, vals["is_rest"])
    carry0 = (z_dc, states, vm0, jnp.zeros(n_branch, dtype), fail0, bi0, jnp.zeros((), _INT), jnp.zeros((), bool), stiff0)
    inputs = (vals["vs"].T, vals["is_"].T, _jumps(vals), jnp.arange(cc.n_steps, dtype=_INT))
    shaped = jax.tree_util.tree_map(lambda x: x.reshape(cc.n_steps // save_every, save_every, *x.shape[1:]), inputs)
    carry, (z_s, p_s, e_s, i_s) = lax.scan(chunk, carry0, shaped)
    z_all = jnp.concatenate([z_dc[None], z_s])
    p_all = tuple(jnp.concatenate([s0[None], ps], axis=0) for s0, ps in zip(states, p_s, strict=True))
    e_all = jnp.concatenate([jnp.zeros((1, n_branch), dtype), e_s])
    i_all = jnp.concatenate([bi0[None], i_s])
    return z_all, p_all, e_all, i_all, carry[4]


def source_batch(cc: Compiled, rows, key: str = "vs") -> dict:
    """``cc.values`` repeated for each of B rows of source waveforms: ``rows`` (B, n_sources, T) replace the
    voltage sources' (``key="vs"``) or the current sources' (``key="is_"``) held values."""
    b = len(rows)  # numpy views, as transient keeps values on the host (a jnp broadcast compiles per shape)
    vals = jax.tree_util.tree_map(lambda x: np.broadcast_to(np.asarray(x), (b, *np.shape(x))), cc.values)
    vals[key] = np.stack(rows)
    return vals


def solve(topology: Topology, values, key=None, *, save_every: int = 1):
    """Pure-JAX transient of one circuit, for ``jax.grad``/``jax.vmap``/``jax.jit`` by the caller.

    Returns ``(z, occupancies, energy_aj, branch_i_pa, failure)``: unknowns per saved point
    (node voltages, then voltage-source and capacitor currents), a tuple of occupancies per
    membrane, cumulative absorbed energy and current per branch (``topology.branch_names``
    order), and ``[step, row, phase]`` of the first Newton failure (step −1 if none).
    Gradients pass through each Newton solve by the implicit function theorem.
    """
    return _run(topology, values, jax.random.key(0) if key is None else key, save_every)


@functools.partial(jax.jit, static_argnames=("cc",))
def _operating_point_jit(cc, vals):
    n_unknown = len(cc.nodes) + len(cc.names_of("V")) + len(cc.names_of("C"))
    ctx0 = {"src_v": vals["vs_rest"], "src_i": vals["is_rest"]}
    z, mem_p, bad, _row = _solve(cc, vals, "dc", jnp.zeros(n_unknown, jnp.result_type(float)), ctx0)
    v_full = _split(cc, z)[0]
    return v_full, _branch_v(v_full, cc.idx("M")), mem_p, bad


def operating_point(compiled: Compiled) -> dict:
    """The DC operating point before t = 0 (sources at their rest values, every membrane at its
    steady state there), by the transient's own Newton solve alone: one small compiled program, not
    the whole transient (what SPICE export needs). Returns ``node_v`` and ``membrane_v`` (V) by
    name and ``occupancy`` per membrane; raises ``ValueError`` if Newton finds no operating point."""
    cc = compiled.topology
    with jax.enable_x64(True):
        v_full, v_mem, mem_p, bad = _operating_point_jit(cc, compiled.values)
    if bool(bad):
        raise ValueError(
            "the solver found no operating point for this circuit (Newton did not converge at t = 0); check the element values"
        )
    return {
        "node_v": {n: float(v_full[i]) for i, n in enumerate(cc.nodes)},
        "membrane_v": {m: float(v_mem[j]) for j, m in enumerate(cc.names_of("M"))},
        "occupancy": {m: np.asarray(mem_p[j]) for j, m in enumerate(cc.names_of("M"))},
    }


@functools.partial(jax.jit, static_argnames=("cc", "save_every", "batched"))
def _run_jit(cc, vals, key, *, save_every, batched):
    if batched:
        return jax.vmap(functools.partial(_run, cc, save_every=save_every, axis_name="circuits"), axis_name="circuits")(vals, key)
    return _run(cc, vals, key, save_every)


@dataclasses.dataclass(frozen=True)
class CircuitTrace:
    """Result of :func:`transient` at the saved times (t = 0 is the operating point).

    Arrays have a leading batch axis for a batched run. ``node_v`` (..., S+1, nodes) volts;
    ``branch_v``/``branch_i_pa`` (..., S+1, branches) with branch current from ``a`` to ``b``
    through the element; ``w`` maps each membrane to its open fraction; ``energy_aj`` is the
    cumulative energy each element absorbed (sources: negative when they deliver).
    """

    t_ns: np.ndarray
    topology: Topology
    node_v: np.ndarray
    branch_v: np.ndarray
    branch_i_pa: np.ndarray
    occupancy: dict
    energy_aj: np.ndarray

    def v(self, node: str) -> np.ndarray:
        """(..., S+1) voltage of ``node`` at the saved times, in V (zeros for ground)."""
        if node == G.GROUND:
            return np.zeros(self.node_v.shape[:-1])
        if node not in self.topology.nodes:
            raise ValueError(f"no node named {node!r}; nodes: {list(self.topology.nodes)}")
        return self.node_v[..., self.topology.nodes.index(node)]

    def _branch(self, name):
        names = self.topology.branch_names
        if name not in names:
            raise ValueError(f"no element named {name!r}; elements: {list(names)}")
        return names.index(name)

    def i(self, element: str) -> np.ndarray:
        """Current through ``element``, pA (from its first to its second node)."""
        return self.branch_i_pa[..., self._branch(element)]

    def vb(self, element: str) -> np.ndarray:
        """Voltage across ``element`` (first node minus second), V."""
        return self.branch_v[..., self._branch(element)]

    def energy(self, element: str) -> np.ndarray:
        """(..., S+1) cumulative energy ``element`` absorbed by each saved time, in aJ (negative for a source delivering)."""
        return self.energy_aj[..., self._branch(element)]

    def w(self, membrane: str) -> np.ndarray:
        """(..., S+1) open fraction of ``membrane``'s pores at the saved times."""
        if membrane not in self.occupancy:
            raise ValueError(f"no membrane named {membrane!r}; membranes: {list(self.occupancy)}")
        return self.occupancy[membrane][..., 0]


def _padded_steps(n_steps: int, save_every: int) -> int:
    """Steps a run of ``n_steps`` is compiled for: save_every × the next power of two of the saved
    points, so sweeps over dt and duration reuse a handful of compiled programs (one per bucket)."""
    return save_every * (1 << max(0, math.ceil(math.log2(n_steps // save_every))))


def _run_padded(cc: Topology, vals, key, save_every: int, batched: bool):
    """The compiled run of ``cc`` with dt as a runtime input and the steps padded to a bucket (the
    sources held at their last value, Newton failures there not counted), cut back to ``cc``'s steps."""
    n_pad = _padded_steps(cc.n_steps, save_every)
    pad = n_pad - cc.n_steps
    run = dict(vals)
    if pad:  # on the host: a jnp op here would compile once per new shape, i.e. per dt and duration
        for name in ("vs", "is_"):
            x = vals[name]
            run[name] = np.concatenate([x, np.repeat(x[..., -1:], pad, axis=-1)], axis=-1)
    lead = (vals["vs_rest"].shape[0],) if batched else ()
    run["dt_ns"] = np.full(lead, cc.dt_ns, dtype=np.float64)
    run["n_steps_valid"] = np.full(lead, cc.n_steps, dtype=_INT)
    static = dataclasses.replace(cc, dt_ns=0.0, n_steps=n_pad)  # dt is not part of the compiled program
    outputs = _run_jit(static, run, key, save_every=save_every, batched=batched)
    z, p, e, branch_i, fail = jax.tree_util.tree_map(np.asarray, outputs)
    keep = cc.n_steps // save_every + 1
    cut = (lambda x: x[:, :keep]) if batched else (lambda x: x[:keep])
    return cut(z), tuple(cut(x) for x in p), cut(e), cut(branch_i), fail


def _on_host(x) -> np.ndarray:
    """A value leaf as a numpy array, floats as float64 (Newton's tolerances need them)."""
    x = np.asarray(x)
    return x.astype(np.float64, copy=False) if np.issubdtype(x.dtype, np.floating) else x


def transient(compiled: Compiled, *, values=None, key=None, save_every: int = 1, batched: bool = False, throw: bool = True):
    """Run a compiled circuit. ``values`` replaces ``compiled.values`` (with a leading batch axis
    on every leaf when ``batched``); ``key`` is required when a membrane is stochastic (one key,
    split over a batch). Where Newton fails at some step, the run is repeated with dt halved (up
    to ``MAX_DT_HALVINGS`` times; sources held as sampled, the same saved times). Raises
    ``FloatingPointError`` naming the time and the element or node where Newton failed at the
    finest dt, unless ``throw=False``."""
    cc = compiled.topology
    vals = compiled.values if values is None else values
    _check_source_volts(cc, vals)
    if vals["mem"]:  # the expm of K > 2 membranes squares no more often than any voltage can need
        bound = max(max_squarings_for(pr, cc.dt_ns) for pr in vals["mem"])
        cc = dataclasses.replace(cc, max_squarings=bound)
    if isinstance(save_every, bool) or not isinstance(save_every, int) or save_every < 1 or cc.n_steps % save_every:
        raise ValueError(f"save_every must be a positive integer dividing the {cc.n_steps} steps; got {save_every!r}")
    if any(cc.stochastic) and key is None:
        raise ValueError("this circuit has stochastic membranes: pass key=jax.random.key(seed)")
    key = jax.random.key(0) if key is None else key
    # the values stay on the host until the compiled run: padding, dt halving and the finiteness
    # check are numpy, so a sweep over dt, duration or values compiles nothing but the run itself
    vals = jax.tree_util.tree_map(_on_host, vals)
    if batched:
        sizes = {x.shape[0] for x in jax.tree_util.tree_leaves(vals)}
        if len(sizes) != 1:
            raise ValueError(f"batched values need the same leading axis on every leaf; got sizes {sorted(sizes)}")
        key = jax.random.split(key, sizes.pop())
    with jax.enable_x64(True):  # Newton's tolerances need float64 whatever the global setting
        z, p, e, branch_i, fail = _run_padded(cc, vals, key, save_every, batched)
        # a step where Newton gave up: the whole run again at dt/2 (sources held as before, the
        # same saved times), as SPICE cuts its step, up to MAX_DT_HALVINGS times
        run_cc, halvings = cc, 0
        leaves = [x for x in jax.tree_util.tree_leaves(vals) if np.issubdtype(x.dtype, np.floating)]
        finite = all(bool(np.all(np.isfinite(x))) for x in leaves)  # NaN in, NaN out at every dt
        # failures at a time step (step >= 0) are retried at a finer dt; one at the operating point is not
        while finite and halvings < MAX_DT_HALVINGS and np.any(fail.reshape(-1, 3)[:, 0] >= 0):
            halvings += 1
            factor = 2**halvings
            run_cc = dataclasses.replace(cc, dt_ns=cc.dt_ns / factor, n_steps=cc.n_steps * factor)
            finer = dict(vals, vs=np.repeat(vals["vs"], factor, axis=-1), is_=np.repeat(vals["is_"], factor, axis=-1))
            z, p, e, branch_i, fail = _run_padded(run_cc, finer, key, save_every * factor, batched)
    if throw:
        for f in fail.reshape(-1, 3):
            if f[0] != NO_FAILURE:
                tried = f" (also at dt_ns = {run_cc.dt_ns:g} after {halvings} halving{'s' * (halvings > 1)})" if halvings else ""
                raise FloatingPointError(_failure_message(run_cc, f) + tried)
    n = len(cc.nodes)
    v_full = np.concatenate([z[..., :n], np.zeros((*z.shape[:-1], 1))], axis=-1)
    volts = [v_full[..., a] - v_full[..., b] for a, b in (cc.idx(k) for k in KINDS)]
    branch_v = np.concatenate(volts, axis=-1)
    _warn_outside_data(compiled, volts[KINDS.index("M")])
    return CircuitTrace(
        t_ns=np.arange(0, cc.n_steps + 1, save_every) * cc.dt_ns,
        topology=cc,
        node_v=z[..., :n],
        branch_v=branch_v,
        branch_i_pa=branch_i,
        occupancy={name: np.asarray(x) for name, x in zip(cc.names_of("M"), p, strict=True)},
        energy_aj=e,
    )


def _check_source_volts(cc: Topology, vals) -> None:
    """Refuse a voltage source beyond ±MAX_ABS_V before the run (a value typed in mV: Newton would fail
    after a long run and blame dt)."""
    names = cc.names_of("V")
    if not names:
        return
    vs, rest = np.abs(np.asarray(vals["vs"], dtype=float)), np.abs(np.asarray(vals["vs_rest"], dtype=float))
    for j, name in enumerate(names):
        peak = max(float(np.max(vs[..., j, :], initial=0.0)), float(np.max(rest[..., j], initial=0.0)))
        check_voltage(peak, argument=f"element {name!r} (voltage source)")


def _warn_outside_data(compiled: Compiled, v_mem) -> None:
    """Warn (:class:`OutsideDataRange`, once per calibration and range) where a membrane's voltage went
    beyond the |V| its calibration's data cover: its rates there are extrapolations."""
    for j, (name, system_id, data_range) in enumerate(compiled.data_ranges):
        if data_range is not None and v_mem.shape[-1] > j:
            peak = float(np.nanmax(np.abs(v_mem[..., j]), initial=0.0))
            check_voltage(peak, argument=f"membrane {name!r}", system_id=system_id, data_range_v=data_range, stacklevel=3)


def _failure_message(cc: Topology, fail) -> str:
    step, row, phase = (int(x) for x in fail)
    n, m = len(cc.nodes), len(cc.names_of("V"))
    if row < n:
        where = f"node {cc.nodes[row]!r} (current balance)"
    elif row < n + m:
        where = f"element {cc.names_of('V')[row - n]!r} (source voltage)"
    else:
        where = f"element {cc.names_of('C')[row - n - m]!r} (capacitor update)"
    when = "at the operating point (t = 0)" if step == AT_OPERATING_POINT else f"at t = {(step + 1) * cc.dt_ns:g} ns"
    what = {
        NewtonPhase.OPERATING_POINT: "operating point",
        NewtonPhase.JUMP: "re-initialisation after a source jump",
        NewtonPhase.STEP: "time step",
    }[NewtonPhase(phase)]
    return (
        f"Newton did not converge {when} ({what}); the largest residual is at {where}. "
        "Try a smaller dt_ns, or check element values (a huge conductance ratio or a steep membrane gating)."
    )
