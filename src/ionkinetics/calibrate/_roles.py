"""Exponential G–V and w–V fits and the paper's functional roles (section 2.4).

``G = C·exp(α·ΔV)`` and ``w = w0·exp(β·ΔV)`` are least-squares lines through ln G and ln w.
Roles from β: > 1 V⁻¹ voltage activator, < −1 V⁻¹ voltage inactivator, otherwise carrier (a
single salt that conducts) or passive.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ROLE_THRESHOLD_PER_V", "classify_role", "exponential_fit"]

ROLE_THRESHOLD_PER_V = 1.0


def exponential_fit(v, y) -> tuple[float, float]:
    """Least-squares ``y = a·exp(b·v)`` on ln y; returns ``(a, b)``."""
    v = np.asarray(v, dtype=float)
    y = np.asarray(y, dtype=float)
    if v.shape != y.shape or v.size < 2:
        raise ValueError(f"exponential_fit needs matching v and y with at least two points; got shapes {v.shape}, {y.shape}")
    if np.any(y <= 0):
        raise ValueError("exponential_fit needs y > 0 everywhere (it fits ln y)")
    b, ln_a = np.polyfit(v, np.log(y), 1)
    return float(np.exp(ln_a)), float(b)


def classify_role(beta_per_v: float, *, has_dopant: bool, conducts: bool = True) -> str:
    """The paper's role of the secondary ion (or of the carrier in a single salt).

    ``β > 1`` → ``"voltage activator"``; ``β < −1`` → ``"voltage inactivator"``; otherwise
    ``"carrier"`` for a single salt that conducts and ``"passive"`` for the rest. The
    thresholds themselves (|β| = 1 exactly) count as carrier/passive, as the paper's strict
    inequalities say.
    """
    if not np.isfinite(beta_per_v):
        raise ValueError(f"beta_per_v must be finite; got {beta_per_v!r}")
    if beta_per_v > ROLE_THRESHOLD_PER_V:
        return "voltage activator"
    if beta_per_v < -ROLE_THRESHOLD_PER_V:
        return "voltage inactivator"
    return "carrier" if (conducts and not has_dopant) else "passive"
