"""One row of headline numbers per calibration: G at 0.1/0.3/0.5 V, the G–V and w–V exponents,
the dopant's role, w at 0 and 0.5 V and the relaxation times of a 0.5 V step (the demo's table,
and the MD-vs-published comparison of ``campaign collect``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..kinetics import conductance_ps, mean_relaxation_time_ns, steady_state
from ._roles import classify_role, exponential_fit

__all__ = [
    "CEILING_NEAR",
    "FIT_V",
    "GV_FIT_DEFINITION",
    "GV_FIT_STEP_V",
    "STEP_V",
    "gv_exponential_fit",
    "gv_fit_range_v",
    "rates_near_ceiling",
    "summarise_calibration",
]

STEP_V = 0.5
# β of w = w0·e^{βV} (the role rule) is fitted over these voltages for every pore
FIT_V = (0.1, 0.2, 0.3)
# α and C of G = C·e^{αV}: one definition for the demo's figure, its table and the README
GV_FIT_STEP_V = 0.1
GV_FIT_DEFINITION = (
    "α and C of G = C·exp(α·ΔV): the least-squares line through ln G of the model's steady-state "
    "conductance per pore at 0.1 V steps across the paper's G–V range for the system (its own "
    "published G–V points, else those of its carrier's single-salt calibration: crown6 0.1–0.3 V, "
    "B3N 0.1–0.4 V), as the paper's Figure 5 fits"
)
# a rate within this fraction of its diffusion-limited ceiling is reported: the ceiling, not the
# Bell law, is then doing the physics
CEILING_NEAR = 0.1


def rates_near_ceiling(cal, v: float = STEP_V, near: float = CEILING_NEAR) -> list[dict]:
    """Every trapping or escape rate of ``cal`` at ``±v`` that is within ``near`` (fraction) of
    its diffusion-limited ceiling (saturated ``k = k_bell·k_max/(k_bell + k_max)`` ≥ (1 − near)·k_max)."""
    from ..kinetics import transition_rates_per_ns

    params = cal.params
    names = cal.state_names[1:]
    out = []
    for volts in (v, -v):
        trap, escape = (np.asarray(x) for x in transition_rates_per_ns(params, volts))
        caps = {
            "trap": np.asarray(params.trap.k_max_per_ns) * np.asarray(params.molar),
            "escape": np.asarray(params.escape.k_max_per_ns),
        }
        for kind, rates in (("trap", trap), ("escape", escape)):
            for s, name in enumerate(names):
                frac = float(rates[s] / caps[kind][s])
                if frac >= 1.0 - near:
                    row = {"state": name, "rate": kind, "v": volts, "k_per_ns": float(rates[s])}
                    out.append(row | {"k_max_per_ns": float(caps[kind][s]), "fraction_of_ceiling": frac})
    return out


def _published_voltages(cal) -> list[float]:
    """Voltages of ``cal``'s transcribed (not assumed) G–V targets."""
    vs = []
    for t in cal.provenance.get("targets", []):
        if t.get("assumed"):
            continue
        if t["kind"] == "conductance":
            vs.append(float(t["v"]))
        elif t["kind"] == "gv_fit":
            vs.extend(float(x) for x in t["v"])
    return vs


def gv_fit_range_v(cal) -> tuple[float, float]:
    """The |V| range over which α and C of ``cal`` are fitted (:data:`GV_FIT_DEFINITION`): its own
    published G–V points, else the data range of its carrier's shipped single-salt calibration,
    else the span of :data:`FIT_V`."""
    from .. import species
    from ._calibration import list_calibrations, load_calibration

    vs = _published_voltages(cal)
    if vs and max(vs) > min(vs):
        return min(vs), max(vs)
    if cal.dopants:
        carrier_only = species.format_system_id(cal.system.pore, [cal.system.salts[0]])
        if carrier_only in list_calibrations():
            carrier = load_calibration(carrier_only)
            vs = _published_voltages(carrier)
            if vs and max(vs) > min(vs):
                return min(vs), max(vs)
            if carrier.data_range_v is not None and carrier.data_range_v[1] > carrier.data_range_v[0]:
                lo, hi = carrier.data_range_v
                return float(lo), float(hi)
    return min(FIT_V), max(FIT_V)


def gv_exponential_fit(cal) -> dict:
    """``{"c_ps", "alpha_per_v", "fit_v"}``: G = C·e^{αV} fitted as :data:`GV_FIT_DEFINITION` says
    (the voltages used in ``fit_v``, volts; C in pS per pore)."""
    lo, hi = gv_fit_range_v(cal)
    n = max(2, round((hi - lo) / GV_FIT_STEP_V) + 1)
    v = np.linspace(lo, hi, n)
    c_ps, alpha = exponential_fit(v, _conductance(cal, v))
    return {"c_ps": c_ps, "alpha_per_v": alpha, "fit_v": [round(float(x), 9) for x in v]}


def _steady_w(params, v):
    return float(steady_state(params, v)[0])


@jax.jit
def _conductance_jit(params, v):
    return jax.vmap(lambda x: conductance_ps(params, x))(v)


def _conductance(cal, v) -> np.ndarray:
    """Steady-state conductance per pore, pS, at each of ``v`` (volts); one compiled program per
    parameter structure and voltage count (op-by-op dispatch took seconds per calibration)."""
    v = np.atleast_1d(np.asarray(v, dtype=float))
    return np.asarray(_conductance_jit(cal.params, jnp.asarray(v)))


def summarise_calibration(cal) -> dict:
    """The headline numbers of ``cal`` (a Calibration), units in the keys."""
    params = cal.params
    gv = gv_exponential_fit(cal)
    row = {
        "system": cal.system_id,
        "carrier": cal.carrier,
        "dopants": " ".join(f"{d.ion}({d.site})" for d in cal.dopants),
        "g_0.1v_ps": float(_conductance(cal, 0.1)[0]),
        "g_0.3v_ps": float(_conductance(cal, 0.3)[0]),
        "g_0.5v_ps": float(_conductance(cal, 0.5)[0]),
        "alpha_per_v": gv["alpha_per_v"],
        "c_ps": gv["c_ps"],
        "gv_fit_range_v": [gv["fit_v"][0], gv["fit_v"][-1]],
        "assumed_targets": bool(cal.provenance.get("contains_assumed_values", False)),
        "data_range_v": None if cal.data_range_v is None else list(cal.data_range_v),
    }
    if not cal.dopants:
        row.update(beta_per_v=0.0, role=classify_role(0.0, has_dopant=False))
        return row
    w_fit = [_steady_w(params, v) for v in FIT_V]
    _w0, beta = exponential_fit(FIT_V, w_fit)
    row.update(
        beta_per_v=beta,
        role=f"{cal.dopants[0].ion}: {classify_role(beta, has_dopant=True)}",
        w_0v=_steady_w(params, 0.0),
        w_0p5v=_steady_w(params, STEP_V),
        tau_on_0p5v_ns=float(mean_relaxation_time_ns(params, STEP_V, steady_state(params, 0.0))),
        tau_off_0v_ns=float(mean_relaxation_time_ns(params, 0.0, steady_state(params, STEP_V))),
        rates_near_ceiling_0p5v=rates_near_ceiling(cal),
    )
    return row
