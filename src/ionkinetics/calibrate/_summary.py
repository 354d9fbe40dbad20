"""One row of headline numbers per calibration: G at 0.1/0.3/0.5 V, the G–V and w–V exponents,
the dopant's role, w at 0 and 0.5 V and the relaxation times of a 0.5 V step (the demo's table,
and the MD-vs-published comparison of ``campaign collect``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..kinetics import conductance_ps, mean_relaxation_time_ns, steady_state
from ._roles import classify_role, exponential_fit

__all__ = ["CEILING_NEAR", "FIT_V", "STEP_V", "rates_near_ceiling", "summarise_calibration"]

STEP_V = 0.5
FIT_V = (0.1, 0.2, 0.3)
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


def _steady_w(params, v):
    return float(steady_state(params, v)[0])


def _conductance(cal, v) -> np.ndarray:
    """Steady-state conductance per pore, pS, at each of ``v`` (volts)."""
    v = np.atleast_1d(np.asarray(v, dtype=float))
    return np.asarray(jax.vmap(lambda x: conductance_ps(cal.params, x))(jnp.asarray(v)))


def summarise_calibration(cal) -> dict:
    """The headline numbers of ``cal`` (a Calibration), units in the keys."""
    params = cal.params
    g_fit = _conductance(cal, FIT_V)
    c_ps, alpha = exponential_fit(FIT_V, g_fit)
    row = {
        "system": cal.system_id,
        "carrier": cal.carrier,
        "dopants": " ".join(f"{d.ion}({d.site})" for d in cal.dopants),
        "g_0.1v_ps": float(_conductance(cal, 0.1)[0]),
        "g_0.3v_ps": float(_conductance(cal, 0.3)[0]),
        "g_0.5v_ps": float(_conductance(cal, 0.5)[0]),
        "alpha_per_v": alpha,
        "c_ps": c_ps,
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
