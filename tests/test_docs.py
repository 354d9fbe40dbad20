"""The documentation site (issue 26, item 5): `mkdocs build --strict` passes, the notebooks run top
to bottom without an error or a warning, and the Python blocks and command lines of the docs pages
are as true as the README's (the same checks as tests/test_readme.py, on the pages the README's
sections moved to)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from test_readme import NUMBER, REL_TOL, _expected_prints, _fresh_env

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if not p.name.startswith("readme-"))
NOTEBOOKS = sorted((DOCS / "notebooks").glob("*.ipynb"))


def _blocks(text: str, *langs: str) -> list[str]:
    out, lang, lines = [], None, []
    for line in text.splitlines():
        if line.startswith("```"):
            if lang is None:
                lang, lines = line[3:].strip(), []
            else:
                if lang in langs:
                    out.append("\n".join(lines) + "\n")
                lang = None
        elif lang is not None:
            lines.append(line)
    return out


README_BLOCKS = set(_blocks((REPO / "README.md").read_text(), "python"))
# every python block of the docs that the README's own test does not already run
DOC_BLOCKS = [
    (page.relative_to(DOCS).as_posix(), code)
    for page in PAGES
    for code in _blocks(page.read_text(), "python")
    if code not in README_BLOCKS
]


def test_docs_have_the_pages_the_readme_links():
    readme = (REPO / "README.md").read_text()
    for target in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (REPO / target).is_file(), target
    for name in ("calibration-json", "targets-toml", "circuit-toml", "task-toml", "md-spec-toml"):
        assert (DOCS / "reference" / f"{name}.md").is_file()
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize(("page", "code"), DOC_BLOCKS, ids=[f"{p}-{i}" for i, (p, _) in enumerate(DOC_BLOCKS)])
def test_docs_python_block_runs_in_a_fresh_interpreter(page, code, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=_fresh_env(), capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{page}: python block failed:\n{code}\n--- stderr ---\n{done.stderr[-4000:]}"
    expected = _expected_prints(code)
    printed = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(printed) >= len(expected), f"{page}: printed {printed!r}, expected {expected!r}"
    for want, got in zip(expected, printed[-len(expected) :] if expected else [], strict=True):
        want_n, got_n = [float(x) for x in NUMBER.findall(want)], [float(x) for x in NUMBER.findall(got)]
        assert len(want_n) == len(got_n), f"{page}: printed {got!r}, the page says {want!r}"
        for w, g in zip(want_n, got_n, strict=True):
            assert abs(g - w) <= REL_TOL * max(abs(w), 1e-12) or abs(g - w) < 1e-12, f"{page}: printed {got!r}, says {want!r}"


def test_docs_command_lines_match_the_cli():
    """Every ``ionkinetics ...`` line of a docs page's shell blocks names a real sub-command, options it
    has and repository files that exist (the README's rule, on the docs)."""
    from typer.testing import CliRunner

    from ionkinetics.cli import app

    runner, helps, checked = CliRunner(), {}, 0
    for page in PAGES:
        for block in _blocks(page.read_text(), "", "bash"):
            for line in (ln.strip() for ln in block.splitlines()):
                if not line.startswith("ionkinetics "):
                    continue
                words = line.split("#", 1)[0].split()[1:]
                path = []
                for w in words:
                    if re.fullmatch(r"[a-z][a-z-]*", w) and len(path) < 2:
                        path.append(w)
                    else:
                        break
                key = tuple(path)
                if key not in helps:
                    result = runner.invoke(app, [*path, "--help"], terminal_width=200)
                    assert result.exit_code == 0, f"{page.name}: {line!r}: `ionkinetics {' '.join(path)} --help` failed"
                    helps[key] = result.output
                for option in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", line):
                    assert option in helps[key], f"{page.name}: {line!r}: {option} is not an option of {' '.join(path)}"
                for word in words:
                    if "/" in word and re.fullmatch(r"[\w./-]+\.(toml|json|py)", word) and "<" not in word:
                        assert (REPO / word).exists(), f"{page.name}: {line!r} names {word}, which does not exist"
                checked += 1
    assert checked >= 20


def _mkdocs_available() -> bool:
    try:
        import mkdocs  # noqa: F401
        import mkdocstrings  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow  # about 40 s on 2 busy cores (mkdocstrings reads every public module)
def test_docs_build_strictly(tmp_path):
    """`mkdocs build --strict`: every link, anchor, snippet and API object resolves, no warning."""
    assert _mkdocs_available(), "the docs need the 'docs' extra (in 'test' too): pip install -e '.[test]'"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"), "-d", str(tmp_path / "site")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "kinetics" / "index.html").read_text()
    assert "ionkinetics.kinetics.simulate" in api or 'id="ionkinetics.kinetics.simulate"' in api
    schema = (tmp_path / "site" / "reference" / "circuit-toml" / "index.html").read_text()
    assert "read_times_ns" in schema and "--8&lt;--" not in schema  # the shipped example was included


_RUN_NOTEBOOK = """
import sys, nbformat, nbclient
nb = nbformat.read(sys.argv[1], as_version=4)
nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
nbformat.write(nb, sys.argv[3])
"""


@pytest.mark.slow  # each notebook is 20-60 s on 2 busy cores, most of it JAX compiling
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom_without_errors_or_warnings(notebook, tmp_path):
    env = {**_fresh_env(), "JUPYTER_PLATFORM_DIRS": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1", "MPLBACKEND": "Agg"}
    out = tmp_path / notebook.name
    done = subprocess.run(
        [sys.executable, "-c", _RUN_NOTEBOOK, str(notebook), str(tmp_path), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    cells = json.loads(out.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code and all(c.get("execution_count") for c in code)

    def text(o):  # the notebook file stores a stream's text as one string or a list of lines
        return "".join(o.get("text", ""))

    for c in code:
        for o in c.get("outputs", []):
            assert o["output_type"] != "error", o
            if o["output_type"] == "stream" and o["name"] == "stderr":
                assert "Warning" not in text(o), text(o)
    printed = "".join(text(o) for c in code for o in c.get("outputs", []) if o["output_type"] == "stream")
    assert "nan" not in printed.lower().split()
