"""Strict settings: 64-bit JAX, warnings as errors (pyproject), one allclose helper, named
n-sigma bound for random tests, slow tests behind --runslow and MD production behind --runhours."""

import os

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)
# No persistent compilation cache in the test process (ionkinetics turns one on at import): an entry
# read while another process writes it is a JAX warning, which "warnings are errors" turns into a
# failure unrelated to the code under test. The README's fresh-interpreter tests still use it.
os.environ.setdefault("IONKINETICS_JAX_CACHE", "")
# One OpenMM CPU thread per test process: pytest-xdist already runs one worker per core, and OpenMM's
# default (a thread per core in every worker) oversubscribes the cores; its threads then wait on each
# other, and a minimisation that takes seconds alone took over ten minutes on a loaded 2-core machine.
os.environ.setdefault("OPENMM_CPU_THREADS", "1")

# Random tests fail only beyond this many standard errors (openmmtools' NSIGMA_MAX habit).
NSIGMA_MAX = 6.0


def assert_allclose(actual, desired, *, rtol, atol, err_msg=""):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(desired), rtol=rtol, atol=atol, err_msg=err_msg)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow (CI does)")
    parser.addoption("--runhours", action="store_true", default=False, help="run tests marked hours (MD production)")


def pytest_collection_modifyitems(config, items):
    for marker, option in (("slow", "--runslow"), ("hours", "--runhours")):
        if config.getoption(option):
            continue
        skip = pytest.mark.skip(reason=f"{marker}: run with {option}")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)
