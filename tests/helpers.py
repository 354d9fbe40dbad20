"""Hand-made calibrations for model tests (independent of the shipped files), and a compile counter."""

import contextlib
import logging
import re

import jax

from ionkinetics.calibrate import Calibration, site_rates


@contextlib.contextmanager
def xla_compiles():
    """Within the block, the name of every function XLA compiles, as ``jax.log_compiles`` reports
    them ("Compiling jit(<name>) ..."), in order: a sweep that must compile once asserts on it.
    The persistent cache is off in the test process (conftest), so a compile is never hidden."""
    names: list[str] = []
    pattern = re.compile(r"^Compiling (?:jit\()?([^\s)]+)")

    class _Collect(logging.Handler):
        def emit(self, record):
            hit = pattern.match(record.getMessage())
            if hit:
                names.append(hit.group(1))

    handler, logger = _Collect(level=logging.DEBUG), logging.getLogger("jax")
    logger.addHandler(handler)
    try:
        with jax.log_compiles():
            yield names
    finally:
        logger.removeHandler(handler)


def make_calibration(
    system="crown6:NaCl@1.0+KCl@0.5",
    *,
    dopants=(("K+", "center", 0.08, 0.1, 3e-5, 0.55, 0.0),),
    c_ps=400.0,
    alpha_per_v=-1.7,
    k_max=(4.0, 20.0),
):
    """dopants: (ion, site, trap_k0_per_ns_per_molar, trap_delta, escape_k0_per_ns, escape_delta, leak)."""
    carrier = {"crown6:NaCl": "Na+", "B3N:KCl": "K+"}[system.split("@")[0]]
    return Calibration.from_dict(
        {
            "schema": "ionkinetics.calibration/1",
            "system": system,
            "carrier": {"ion": carrier, "open_conductance": {"c_ps": c_ps, "alpha_per_v": alpha_per_v, "v_smooth_v": 0.005}},
            "dopants": [
                {
                    "ion": ion,
                    "site": site,
                    "leak_fraction": leak,
                    "trap": site_rates(site, tk, td, k_max[0], trap=True),
                    "escape": site_rates(site, ek, ed, k_max[1], trap=False),
                }
                for ion, site, tk, td, ek, ed, leak in dopants
            ],
        }
    )


def write_synthetic_md_run(run_dir, cal, volts, *, frame_ns, grid=10, carriers=60, seed=0):
    """A run folder from ``ionkinetics.md.testsystems.write_synthetic_run`` for the one-dopant calibration
    ``cal`` (its generating model); returns the per-frame open fraction actually drawn."""
    from ionkinetics.md.testsystems import write_synthetic_run

    (dopant,) = [d.ion for d in cal.dopants]
    run = write_synthetic_run(
        run_dir,
        cal.params,
        system_id=cal.system_id,
        carrier=cal.carrier,
        dopant=dopant,
        volts=volts,
        frame_ns=frame_ns,
        temperature_k=cal.temperature_k,
        grid=grid,
        carriers=carriers,
        seed=seed,
    )
    return run.w_drawn
