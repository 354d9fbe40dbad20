"""Import is cheap (issue 27): ``import ionkinetics`` and the CLI's ``--version`` / ``--help`` load no
JAX, every public name still resolves as ``ik.<name>``, JAX is set up (64-bit) when first needed, and
the package exports its API only."""

import os
import subprocess
import sys
import types

import pytest

import ionkinetics as ik


def _fresh_env():
    """The environment without JAX/XLA/ionkinetics settings (a user's fresh shell)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_", "IONKINETICS_"))}
    env["IONKINETICS_JAX_CACHE"] = ""  # no cache reads or writes from a test process
    return env


def _imported_modules(args: list[str]) -> set[str]:
    """Top-level packages a fresh interpreter imports to run ``python -X importtime <args>``."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args], env=_fresh_env(), capture_output=True, text=True, timeout=120, check=True
    )
    rows = [line.split("|")[-1] for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert rows, done.stderr[-2000:]  # -X importtime reported the imports
    return {row.strip().split(".")[0] for row in rows[1:]}  # rows[0] is the header


def test_version_and_help_import_no_jax():
    """The package itself and the ``ionkinetics`` command's --version and --help, each in a fresh
    interpreter, as the console script runs it (``ionkinetics.cli:main``)."""
    cli = "import sys; from ionkinetics.cli import main; sys.argv = ['ionkinetics', '{}']; main()"
    for args in (
        ["-c", "import ionkinetics; print(ionkinetics.__version__)"],
        ["-c", cli.format("--version")],
        ["-c", cli.format("--help")],
    ):
        seen = _imported_modules(args)
        assert "ionkinetics" in seen, args  # the check sees the package's own import
        assert not seen & {"jax", "jaxlib", "numpy", "scipy", "matplotlib"}, (args, sorted(seen))


def test_jax_is_set_up_when_first_needed():
    """A fresh interpreter: no JAX after ``import ionkinetics``; the first JAX-backed name loads the
    precision policy, so JAX is then in 64-bit mode."""
    code = (
        "import sys, ionkinetics as ik\n"
        "assert 'jax' not in sys.modules, 'import ionkinetics loaded jax'\n"
        "ik.Trace\n"
        "import jax\n"
        "print(jax.config.jax_enable_x64)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=_fresh_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "True"


def test_every_public_name_resolves_and_nothing_else_is_exported():
    for name in ik.__all__:
        assert getattr(ik, name) is not None, name
    assert ik.load_calibration is ik.calibrate.load_calibration and ik.Trace is ik.kinetics.Trace
    assert ik.circuits.__name__ == "ionkinetics.circuits"  # subpackages load on first use too
    assert ik.experiments.run_experiment is not None  # the experiments wing too
    # besides __all__, only ionkinetics' own submodules (bound when imported): no numpy, no warnings
    extra = {
        n
        for n, v in vars(ik).items()
        if not n.startswith("_")
        and n not in ik.__all__
        and not (isinstance(v, types.ModuleType) and v.__name__ == f"ionkinetics.{n}")
    }
    assert extra == set()
    assert dir(ik) == sorted(ik.__all__)
    with pytest.raises(AttributeError, match="no_such_name"):
        ik.no_such_name  # noqa: B018
