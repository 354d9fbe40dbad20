"""pyright, in basic mode, finds no error in src/ (issue 28). The settings are pyproject.toml's
``[tool.pyright]``; run ``pyright`` at the repository root to see the same report."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pyright() -> str | None:
    """The pyright executable: on PATH, or beside this interpreter (a virtual environment not activated)."""
    beside = Path(sys.executable).parent / "pyright"
    return shutil.which("pyright") or (str(beside) if beside.is_file() else None)


@pytest.mark.slow  # a whole-package type check: about a minute on a free core
def test_pyright_basic_mode_finds_no_error_in_src():
    exe = _pyright()
    if exe is None:
        pytest.skip("the pyright executable is not installed (it comes with the test extra: pip install -e '.[test]')")
    proc = subprocess.run(
        [exe, "--outputjson", "--pythonpath", sys.executable],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"pyright gave no report (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    assert report["summary"]["filesAnalyzed"] > 50  # it checked the package, not an empty selection
    errors = [d for d in report["generalDiagnostics"] if d["severity"] == "error"]
    listing = "\n".join(
        f"{Path(d['file']).relative_to(ROOT)}:{d['range']['start']['line'] + 1}: {d['message']} ({d.get('rule', '')})"
        for d in errors
    )
    assert not errors, f"pyright finds {len(errors)} errors in src/:\n{listing}"
