"""The README's code, run as a new user runs it: every ```python block in a fresh interpreter at
JAX's default settings (no JAX or ionkinetics environment variables), and the numbers it states.

Convention for stated numbers: a line ``print(<expr>)  # <expected>`` must print numbers that match
the comment's, in order, to 3 % (README numbers are rounded to two or three digits); a remark after
two spaces in parentheses is prose. Shell blocks cannot all run here (the Quickstart's installs are
what CI itself runs; campaigns take days): every ``ionkinetics ...`` line of the plain and bash
blocks is checked against the real CLI instead: each sub-command exists, each option it shows is in
that sub-command's ``--help``, each repository file it names exists. Python files the README points
to instead of showing (the SLURM scheduler script) are compiled.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
REL_TOL = 0.03


def _all_blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block, in order (a fence line opens, the next one closes)."""
    blocks, lang, lines = [], None, []
    for line in README.splitlines():
        if line.startswith("```"):
            if lang is None:
                lang, lines = line[3:].strip(), []
            else:
                blocks.append((lang, "\n".join(lines) + "\n"))
                lang = None
        elif lang is not None:
            lines.append(line)
    assert lang is None, "README has an unclosed code fence"
    return blocks


def _blocks(*langs: str) -> list[str]:
    return [code for lang, code in _all_blocks() if lang in langs]


PYTHON_BLOCKS = _blocks("python")


def _fresh_env() -> dict:
    """The caller's environment without anything that changes JAX's or ionkinetics' defaults."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_", "IONKINETICS_"))}


def _expected_prints(code: str) -> list[str]:
    """The stated output of each ``print(...)  # <output>  (<remark>)`` line: the remark in
    parentheses after two spaces is prose, not output."""
    return [m.group(1).split("  (")[0] for m in re.finditer(r"^print\(.*\)\s*#\s*(.+)$", code, flags=re.M)]


def test_readme_has_python_blocks_that_state_numbers():
    assert len(PYTHON_BLOCKS) >= 3
    assert sum(len(_expected_prints(b)) for b in PYTHON_BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_readme_python_block_runs_in_a_fresh_interpreter(index, tmp_path):
    code = PYTHON_BLOCKS[index]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=_fresh_env(), capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"README python block {index} failed:\n{code}\n--- stderr ---\n{done.stderr[-4000:]}"
    expected = _expected_prints(code)
    printed = [line for line in done.stdout.splitlines() if NUMBER.search(line) or line.strip()]
    assert len(printed) >= len(expected), f"block {index} printed {printed!r}, expected lines for {expected!r}"
    for want, got in zip(expected, printed[-len(expected) :] if expected else [], strict=True):
        want_n = [float(x) for x in NUMBER.findall(want)]
        got_n = [float(x) for x in NUMBER.findall(got)]
        assert len(want_n) == len(got_n), f"block {index}: printed {got!r}, README says {want!r}"
        for w, g in zip(want_n, got_n, strict=True):
            assert abs(g - w) <= REL_TOL * max(abs(w), 1e-12) or abs(g - w) < 1e-12, (
                f"block {index}: printed {got!r}, README says {want!r}"
            )


def _synopsis_lines() -> list[str]:
    """Every ``ionkinetics ...`` command line of the README's plain and bash blocks."""
    lines = []
    for block in _blocks("", "bash"):
        lines += [ln.strip() for ln in block.splitlines() if ln.strip().startswith("ionkinetics ")]
    return lines


def test_readme_command_synopsis_matches_the_cli():
    from typer.testing import CliRunner

    from ionkinetics.cli import app

    lines = _synopsis_lines()
    assert len(lines) >= 10
    runner = CliRunner()
    for line in lines:
        words = line.split("#", 1)[0].split()[1:]
        path = []
        for w in words:  # sub-command words come first: lowercase, no option or file syntax
            if re.fullmatch(r"[a-z][a-z-]*", w) and len(path) < 2:
                path.append(w)
            else:
                break
        result = runner.invoke(app, [*path, "--help"], terminal_width=200)
        assert result.exit_code == 0, f"README synopsis {line!r}: `ionkinetics {' '.join(path)} --help` failed"
        help_text = result.output
        for option in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", line):
            assert option in help_text, f"README synopsis {line!r}: {option} is not an option of {' '.join(path)}"
        for word in words:
            if "/" in word and re.fullmatch(r"[\w./-]+\.(toml|json|py)", word) and "<" not in word:
                assert (REPO / word).exists(), f"README synopsis {line!r} names {word}, which does not exist"


def test_readme_python_files_it_points_to_compile():
    import py_compile

    named = set(re.findall(r"`([\w./-]+\.py)`", README))
    files = [REPO / n for n in named if (REPO / n).is_file()]
    assert any(f.name == "slurm_cluster.py" for f in files)
    for f in files:
        py_compile.compile(str(f), doraise=True)


def test_readme_links_nothing_outside_the_repository():
    assert "../" not in README
    for target in re.findall(r"\]\(([^)#]+)\)", README):  # markdown links
        assert (not target.startswith(("/", "..")) and (REPO / target).exists()) or target.startswith("http"), target
    for path in re.findall(r"`((?:src|tests|benchmarks|calibration|circuits|md|docs)/[\w./<>*-]+)`", README):
        if not any(c in path for c in "<>*"):
            assert (REPO / path).exists(), f"README names {path}, which does not exist"
