"""Kinetic parameters as frozen JAX pytrees.

Arrays are leaves (so a batch of parameter sets is the same class with a leading axis);
the number of blocked states is read from the leaves' last axis. Units are in the names.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["V_THERMAL_298_V", "BellRate", "KineticParams", "OpenConductance", "thermal_voltage_v"]

from ..constants import BOLTZMANN_J_PER_K, ELEMENTARY_CHARGE_C


def thermal_voltage_v(temperature_k: float) -> float:
    """k_B·T/e in volts (0.025693 V at 298.15 K)."""
    return BOLTZMANN_J_PER_K * float(temperature_k) / ELEMENTARY_CHARGE_C


V_THERMAL_298_V = thermal_voltage_v(298.15)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class BellRate:
    """Two-polarity Bell law with diffusion-limited saturation, per blocked state.

    ``k_bell(V) = k_plus·exp(+delta_plus·V/V_T) + k_minus·exp(−delta_minus·V/V_T)`` and
    ``k(V) = 1 / (1/k_bell + 1/k_max)``. Shapes ``(..., S)`` for S blocked states.
    For trapping the ``k`` are per ns per molar of the dopant; for escape, per ns.
    """

    k_plus_per_ns: jax.Array
    delta_plus: jax.Array
    k_minus_per_ns: jax.Array
    delta_minus: jax.Array
    k_max_per_ns: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class OpenConductance:
    """Open-pore conductance of the carrier, ``G = c_ps·exp(alpha_per_v·|V|_s)``.

    ``|V|_s = sqrt(V² + v_smooth_v²) − v_smooth_v`` is a smooth, even stand-in for |V|, so the
    paper's ``G = C·exp(α·ΔV)`` fit becomes symmetric in V and differentiable at 0. Above
    ``v_max_v`` (the edge of the voltages the carrier was measured at; ``inf`` = no edge) G is held
    at its edge value rather than extrapolated.
    """

    c_ps: jax.Array
    alpha_per_v: jax.Array
    v_smooth_v: jax.Array
    v_max_v: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class KineticParams:
    """Everything the Markov occupancy model needs, as arrays.

    State 0 is ``open``; states 1..S are ``blocked`` states, each owned by one dopant at one
    site. ``molar`` (S,) is the owning dopant's concentration (trapping ∝ molarity),
    ``leak_fraction`` (S,) the conductance a blocked pore keeps relative to an open one.
    """

    open: OpenConductance
    trap: BellRate
    escape: BellRate
    molar: jax.Array
    leak_fraction: jax.Array
    v_thermal_v: jax.Array

    @property
    def n_blocked(self) -> int:
        """Number of blocked states, S."""
        return int(np.shape(self.molar)[-1])

    @property
    def n_states(self) -> int:
        """Number of states, S + 1 (``open`` included)."""
        return self.n_blocked + 1

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Leading batch shape of a stacked parameter set (``()`` for a single one)."""
        return tuple(np.shape(self.v_thermal_v))


def stack_params(params: list[KineticParams]) -> KineticParams:
    """Stack parameter sets with equal state counts along a new leading batch axis."""
    if not params:
        raise ValueError("stack_params needs at least one parameter set; got an empty list")
    counts = {p.n_states for p in params}
    if len(counts) != 1:
        raise ValueError(
            f"parameter sets to stack must have the same number of states; got {sorted(counts)}. "
            "Batch systems with the same dopant sites together."
        )
    # stacked on the host: one numpy copy per leaf (jnp.stack of 10⁴ traced scalars compiles a huge concatenate)
    return jax.tree_util.tree_map(lambda *xs: jnp.asarray(np.stack([np.asarray(x) for x in xs])), *params)
