"""ionkinetics: voltage-gated ion transport through Å-scale pores in 2D membranes.

Molecular dynamics (OpenMM) → calibrated rate laws → a JAX Markov model of the pores'
conductance weight w(t) → circuits. See ``../DESIGN.md`` and the README.

Import is cheap: the subpackages and the names re-exported here load on first use (PEP 562
``__getattr__``, as numpy and scipy defer theirs), so ``ionkinetics --version`` and ``--help``
import no JAX. The first use of a JAX-backed name sets JAX up once (``ionkinetics._precision``).
"""

import typing as _typing

from ._checks import WARNED_RANGES as _WARNED_RANGES  # noqa: F401  (tests reset the warn-once set; stdlib only, cheap)
from ._checks import OutsideDataRange as OutsideDataRange
from ._version import __version__ as __version__

if _typing.TYPE_CHECKING:  # the lazy names, for type checkers and editors
    from . import calibrate as calibrate
    from . import kinetics as kinetics
    from . import species as species
    from .calibrate import Calibration as Calibration
    from .calibrate import fit_targets as fit_targets
    from .calibrate import list_calibrations as list_calibrations
    from .calibrate import load_calibration as load_calibration
    from .calibrate import load_targets as load_targets
    from .calibrate import save_calibration as save_calibration
    from .kinetics import Trace as Trace
    from .kinetics import protocols as protocols
    from .kinetics import switching_energy as switching_energy
    from .species import parse_system_id as parse_system_id

__all__ = [
    "Calibration",
    "OutsideDataRange",
    "Trace",
    "__version__",
    "calibrate",
    "conductance",
    "fit_targets",
    "kinetics",
    "list_calibrations",
    "load_calibration",
    "load_targets",
    "parse_system_id",
    "protocols",
    "save_calibration",
    "simulate",
    "species",
    "switching_energy",
]

# re-exported name -> the subpackage that defines it, imported on first access
_LAZY_NAMES = {
    "Calibration": "calibrate",
    "fit_targets": "calibrate",
    "list_calibrations": "calibrate",
    "load_calibration": "calibrate",
    "load_targets": "calibrate",
    "save_calibration": "calibrate",
    "Trace": "kinetics",
    "protocols": "kinetics",
    "switching_energy": "kinetics",
    "parse_system_id": "species",
}
# subpackages reachable as ``ik.<name>`` without an import of their own
_SUBPACKAGES = frozenset({"calibrate", "campaign", "circuits", "experiments", "kinetics", "md", "species", "tasks"})


def __getattr__(name: str):
    import importlib

    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")  # the import binds it here too
    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY_NAMES[name]}"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(__all__)


def conductance(cal, v):
    """Steady-state conductance per pore, pS, at voltage(s) ``v`` (volts); vectorised over v."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from .kinetics import KineticParams, conductance_ps

    cal = _resolve(cal)
    params = cal if isinstance(cal, KineticParams) else cal.params
    v_arr = jnp.asarray(v, dtype=float)
    bad = ~np.isfinite(np.asarray(v_arr))
    if bad.any():  # a NaN in would be a NaN out, silently
        raise ValueError(f"v must be finite voltages (volts); got {np.asarray(v_arr)[bad][:3].tolist()} in {v!r}")
    if v_arr.size:  # beyond ±2 V refused ("did you mean mV?"), beyond the data's range warned
        from ._checks import check_voltage

        check_voltage(
            float(np.max(np.abs(np.asarray(v_arr)))),
            argument="v",
            system_id=getattr(cal, "system_id", None),
            data_range_v=getattr(cal, "data_range_v", None),
        )
    out = jax.vmap(lambda x: conductance_ps(params, x))(v_arr.reshape(-1)).reshape(v_arr.shape)
    return np.asarray(out)


def _resolve(cal):
    """A Calibration or KineticParams as given; a system id, ``openmm-*`` name or path loaded."""
    from .calibrate import Calibration, load_calibration
    from .kinetics import KineticParams

    if isinstance(cal, (KineticParams, Calibration)):
        return cal
    return load_calibration(cal)


def _check_before_running(cal, protocol, dt_ns, save_every=1) -> None:
    """Refuse |V| beyond ±2 V and runs too large for this machine (both with the numbers); warn once
    per calibration and range (:class:`OutsideDataRange`) when ``protocol`` leaves ``cal.data_range_v``."""
    import numpy as np

    from ._checks import check_run_size, check_voltage
    from .kinetics import protocols, sample_voltages

    single = isinstance(protocol, protocols.Protocol)
    batch = protocols.is_batch(protocol)
    if (single or batch) and isinstance(dt_ns, (int, float)) and not isinstance(dt_ns, bool):
        first = protocol if single else protocol[0]
        n_states = getattr(getattr(cal, "params", cal), "n_states", 2)
        every = save_every if isinstance(save_every, int) and save_every >= 1 else 1
        devices = 1 if single else len(protocol)
        # per step: the voltage held, and per saved step t, v, w, G, I, E and the occupancy (float64)
        check_run_size(first.duration_ns, dt_ns, bytes_per_step=8 * devices * (1 + (6 + n_states) / every), what="simulate")
    try:  # closed-form peaks where the protocol has one: an amplitude sweep is read from its fields' table
        if single or batch:
            v_max = protocols.peak_abs_v(protocol, dt_ns)
        else:
            v_max = float(np.max(np.abs(sample_voltages(protocol, dt_ns)[0])))
    except (TypeError, ValueError):
        return  # kinetics.simulate reports the bad protocol itself
    check_voltage(
        v_max,
        argument="the protocol",
        system_id=getattr(cal, "system_id", None),
        data_range_v=getattr(cal, "data_range_v", None),
        stacklevel=3,
    )


def simulate(cal, protocol, dt_ns: float = 0.05, **options) -> "Trace":
    """:func:`ionkinetics.kinetics.simulate` that also takes a system id (``"crown6:NaCl@1.0+KCl@0.5"``,
    any molarity of a shipped pair: see :func:`load_calibration`), an ``openmm-*`` name or a path,
    wherever :func:`conductance` does. Warns once (:class:`OutsideDataRange`) when the protocol
    goes beyond the voltage range the calibration's data cover; refuses |V| beyond ±2 V (volts, not
    mV) and a run whose steps would not fit in memory (a ``dt_ns`` typed in seconds), with the numbers."""
    from . import kinetics

    cal = _resolve(cal)
    _check_before_running(cal, protocol, dt_ns, options.get("save_every", 1))
    return kinetics.simulate(cal, protocol, dt_ns, **options)
