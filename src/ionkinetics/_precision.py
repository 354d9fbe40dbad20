"""Precision policy: the one module that changes JAX's global configuration, and why.

Imported first by each subpackage that runs JAX code (``kinetics``, ``calibrate``, ``circuits``, ``experiments``,
``tasks``), so it runs once, when JAX is first needed: ``import ionkinetics`` alone (and the CLI's
``--version`` and ``--help``) imports no JAX and changes nothing. ionkinetics computes in float64 and
turns JAX's 64-bit mode on then; set ``IONKINETICS_X64=0`` beforehand to keep JAX's float32 default. Why float64: rates span
eight decades (1e-6 to 1e2 per ns) and closed-state occupancies of 1e-3 to 1e-4 set a gated
membrane's conductance; energies accumulate over 1e4-1e6 steps; the circuit Newton solve converges
to femtoamps on nanoamp currents; the fits' Laplace errors need a Hessian accurate to ~1e-8; and
pymbar (the PMF stage) switches the same flag on itself when it is used.

With 64-bit mode off the kinetic core still runs correctly in float32 (occupancies are
renormalised every step, and probability loss is judged against a tolerance that follows the
dtype, never reported as a bad calibration); circuits and fits switch to float64 locally.

Compilation cache: compiling is most of a short run's time (a circuit compiles in seconds and runs
in milliseconds), so ionkinetics also points JAX's persistent compilation cache at
``$IONKINETICS_JAX_CACHE`` (default ``~/.cache/ionkinetics/jax``; an empty string disables it) unless
the caller has set a cache directory already: a second Python session, ``demo`` or ``circuit run``
starts warm.
"""

import os

import jax

X64_ENV = "IONKINETICS_X64"
X64_ON = os.environ.get(X64_ENV, "1").strip().lower() not in ("0", "false", "no", "off")
if X64_ON:
    jax.config.update("jax_enable_x64", True)

CACHE_ENV = "IONKINETICS_JAX_CACHE"


def enable_compilation_cache() -> str | None:
    """Point JAX's persistent compilation cache at ``$IONKINETICS_JAX_CACHE`` (default
    ``~/.cache/ionkinetics/jax``) unless one is set already or the variable is empty; returns the
    directory in use (None: no cache)."""
    # jax.config's flags are read as attributes (JAX's documented way), which its stubs do not declare
    current = jax.config.jax_compilation_cache_dir  # pyright: ignore[reportAttributeAccessIssue]
    if current:
        return current
    cache = os.environ.get(CACHE_ENV, os.path.join(os.path.expanduser("~"), ".cache", "ionkinetics", "jax"))
    if not cache:
        return None
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return cache


enable_compilation_cache()
