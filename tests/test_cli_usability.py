"""The command line as a new user meets it: `list`, `--version`, help examples that exist, the
targets template that fits once filled in, and `simulate --plot`."""

import itertools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import ionkinetics as ik
from ionkinetics.cli import app
from ionkinetics.kinetics import mean_relaxation_time_ns, steady_state

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


def _commands(cmd=None, path=()):
    """(path, click command) for the root and every sub-command, depth first."""
    cmd = typer.main.get_command(app) if cmd is None else cmd
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_version_prints_the_package_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"ionkinetics {ik.__version__}"


def test_list_prints_one_aligned_table_whose_headers_match_its_columns():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    lines = result.output.rstrip("\n").split("\n")
    header, rule, rows = lines[0], lines[1], lines[2:]
    # the rule under the header marks each column's extent: one dash run per header
    spans = [m.span() for m in re.finditer(r"-+", rule)]
    headers = [header[a:b].strip() for a, b in spans]
    assert headers == ["load as", "states", "data |V| (V)", "assumed values", "source"]
    assert len(rows) == len(ik.list_calibrations()) + len(ik.calibrate.list_md_calibrations())
    for row in rows:
        cells = [row[a:b].strip() for a, b in spans[:-1]] + [row[spans[-1][0] :].strip()]
        assert all(cells), row  # every column filled, none spilling into the next
        for (_a, b), nxt in itertools.pairwise(spans):
            assert row[b : nxt[0]].strip() == "", row  # the gap between columns is blank: aligned
        cal = ik.load_calibration(cells[0])  # the id is printed whole, loadable as shown
        assert cells[1] == ", ".join(cal.state_names)
        span = cal.data_range_v
        assert cells[2] == ("not stated" if span is None else f"{span[0]:g}–{span[1]:g}")
        assert cells[3] in ("yes", "no")
    assert "…" not in result.output


_PATHLIKE = re.compile(r"^(?!.*://)[\w.<>@+/-]*\.(toml|json|csv|png|cir|npz)$|^[\w.-]+(/[\w.<>@+-]+)+/?$")
_OUTPUT_OPTIONS = {"output", "out", "calibration_dir"}


def _examples(cmd):
    """(token, is_output) for every file named by an example in a command's help texts: the
    words after "e.g." and the arguments of backquoted `ionkinetics ...` command lines."""
    texts = [(cmd.help or "", False), (cmd.epilog or "", False)]
    texts += [(getattr(p, "help", "") or "", p.name in _OUTPUT_OPTIONS) for p in cmd.params]
    for text, is_output in texts:
        for m in re.finditer(r"e\.g\.\s+(\S+)", text):
            token = m.group(1).strip("'\"(),;:.")
            token = token[:-1] if token.endswith(".") else token
            if _PATHLIKE.match(token):
                yield token, is_output
        for line in re.findall(r"`(ionkinetics [^`]+)`", text):
            words = shlex.split(line)
            for prev, word in itertools.pairwise(words):
                if _PATHLIKE.match(word):
                    yield word, prev in ("-o", "--output", "--out")


def test_every_help_example_names_a_file_that_exists():
    seen = 0
    for path, cmd in _commands():
        for token, is_output in _examples(cmd):
            seen += 1
            where = f"`ionkinetics {' '.join(path)} --help` names {token!r}"
            if is_output:  # an example of a file to write: its folder exists
                assert (REPO / token).parent.is_dir(), where
            else:
                assert "<" not in token, f"{where}: an input example must be a real file, not a pattern"
                assert (REPO / token).exists(), f"{where}, which is not in the repository"
    assert seen >= 5  # the extraction finds the examples (fit, circuit run, md, campaign, calibrate)


def test_every_help_example_system_id_is_valid_and_shipped_where_it_says_so():
    ids = 0
    for path, cmd in _commands():
        for p in [cmd, *cmd.params]:
            text = getattr(p, "help", "") or ""
            for m in re.finditer(r"e\.g\.\s+['\"]([\w.]+:[^'\"]+)['\"]", text):
                ids += 1
                sid = str(ik.parse_system_id(m.group(1)))  # parses: a valid system id
                if "shipped" in text.lower():
                    assert sid in ik.list_calibrations(), f"`ionkinetics {' '.join(path)} --help`: {sid} is not shipped"
    assert ids >= 2  # simulate's SYSTEM and fit's --template


def test_bad_template_and_missing_arguments_exit_2_naming_the_argument(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "ionkinetics.cli", "fit", "--template", "crown6:NaCl@1.0+XeCl@0.5"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 2 and "--template" in r.stdout and "unknown salt 'XeCl'" in r.stdout
    assert not list(tmp_path.iterdir())
    # the same errors in-process (main() turns them into exit status 2, as above)
    result = runner.invoke(app, ["fit"])
    assert isinstance(result.exception, ValueError) and "TARGETS" in str(result.exception)
    result = runner.invoke(app, ["fit", "calibration/targets/B3N-KCl1.0.toml"])
    assert isinstance(result.exception, ValueError) and "--output/-o" in str(result.exception)
    (tmp_path / "mine.toml").write_text("keep me")
    result = runner.invoke(app, ["fit", "--template", "B3N:KCl@1.0", "-o", str(tmp_path / "mine.toml")])
    assert isinstance(result.exception, ValueError) and "--output must not exist" in str(result.exception)
    assert (tmp_path / "mine.toml").read_text() == "keep me"


def _observables(cal):
    """What the template's rows ask for, computed from a calibration: G(0.1), G(0.4), w(0),
    τ of w after 0 → 0.5 V and after 0.5 → 0 V (the template's row order)."""
    p = cal.params
    return [
        float(ik.conductance(cal, 0.1)),
        float(ik.conductance(cal, 0.4)),
        float(steady_state(p, 0.0)[0]),
        float(mean_relaxation_time_ns(p, 0.5, steady_state(p, 0.0))),
        float(mean_relaxation_time_ns(p, 0.0, steady_state(p, 0.5))),
    ]


def test_targets_template_filled_as_it_says_fits(tmp_path):
    """A new ion pair (Rb+ gating Na+ in crown6, not shipped): the template names the carrier,
    the dopant and its site from the paper's roles, refuses to fit while unfilled, and once its
    nan numbers and citations are filled, fits in one command and reproduces the numbers."""
    template = tmp_path / "crown6-Rb.toml"
    result = runner.invoke(app, ["fit", "--template", "crown6:NaCl@1.0+RbCl@0.5", "-o", str(template)])
    assert result.exit_code == 0, result.output
    text = template.read_text()
    assert 'carrier = "Na+"' in text and 'ion = "Rb+"' in text and 'site = "center"' in text
    assert 'open_conductance_from = "crown6:NaCl@1.0"' in text
    assert "assumed = true" in text and "assumptions = [" in text and 'quote = ""' in text
    with pytest.raises(ValueError, match=r"target\[0\]\.g_ps' must be a finite number; got nan"):
        ik.load_targets(template)
    # fill as the template says, with the numbers of a known model (the shipped crown6 K+ calibration)
    truth = _observables(ik.load_calibration("crown6:NaCl@1.0+KCl@0.5"))
    values = iter(truth)
    filled = re.sub(r"= nan\b", lambda m: f"= {next(values)!r}", text)
    filled = filled.replace('section = ""', 'section = "Table 1"').replace('quote = ""', 'quote = "a known model"')
    filled = filled.replace('source = ""', 'source = "the shipped crown6 K+ calibration"')
    assert next(values, None) is None  # exactly one nan per number the rows ask for
    template.write_text(filled)
    out = tmp_path / "cal.json"
    result = runner.invoke(app, ["fit", str(template), "-o", str(out), "--starts", "1"])
    assert result.exit_code == 0, result.output
    cal = ik.load_calibration(out)
    assert cal.system_id == "crown6:NaCl@1.0+RbCl@0.5" and cal.provenance["contains_assumed_values"]
    got = _observables(cal)
    np.testing.assert_allclose([got[i] for i in (0, 1, 3, 4)], [truth[i] for i in (0, 1, 3, 4)], rtol=0.05)
    assert abs(got[2] - truth[2]) < 0.05  # w(0): the row's sigma


def test_template_of_an_inactivator_and_of_a_single_salt():
    text = runner.invoke(app, ["fit", "--template", "B3N:KCl@1.0+RbCl@0.5"]).output
    assert 'site = "entrance"' in text  # the paper: Rb+ inactivates B3N by plugging its mouth
    single = runner.invoke(app, ["fit", "--template", "B6N3:RbCl@1.0"]).output
    targets = ik.calibrate._targets.parse_targets(
        __import__("tomllib").loads(re.sub(r"= nan\b", "= 10.0", single).replace('section = ""', 'section = "x"'))
    )
    assert targets.carrier == "Rb+" and targets.free == ("open.c_ps", "open.alpha_per_v") and not targets.dopants


def test_simulate_plot_writes_the_figure_beside_the_csv(tmp_path):
    out = tmp_path / "run" / "trace.csv"
    protocol = "step:v=0.5,t_on_ns=5,t_off_ns=25,duration_ns=50"
    result = runner.invoke(app, ["simulate", "B3N:KCl@1.0+RbCl@0.5", "--protocol", protocol, "-o", str(out), "--plot"])
    assert result.exit_code == 0, result.output
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert sorted(p.name for p in out.parent.iterdir()) == ["trace.csv", "trace.png"]  # no temporary left behind
