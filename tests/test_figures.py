"""Figures and traces a journal accepts (issue 26, item 3): the format and dpi the user asks for,
panel letters, titles that fit, a CSV with units in every column name beside every experiment's
figures, and one definition of the fitted α and C shared by the figure, the table and the docs."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from typer.testing import CliRunner

import ionkinetics as ik
from ionkinetics._io import (
    check_unit_headers,
    columns_csv,
    current_figure_output,
    figure_output,
    label_panels,
    save_figure,
)
from ionkinetics.cli import app

REPO = Path(__file__).resolve().parents[1]
MAGIC = {"png": b"\x89PNG", "pdf": b"%PDF", "svg": b"<?xml"}


def _two_panels(title="t"):
    fig = Figure(figsize=(4, 4))
    axes = fig.subplots(2, 1)
    for ax in axes:
        ax.plot([0, 1], [0, 1])
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@pytest.mark.parametrize("fmt", ["png", "pdf", "svg"])
def test_figures_are_saved_in_the_format_asked_for_with_panel_letters(tmp_path, fmt):
    with figure_output(fmt, 150):
        assert current_figure_output() == (fmt, 150)
        fig = _two_panels()
        path = save_figure(fig, tmp_path / "x.png")  # the suffix follows the format asked for
    assert current_figure_output() == ("png", 300)  # the block's setting ends with it
    assert path.name == f"x.{fmt}" and path.read_bytes()[:5].startswith(MAGIC[fmt])
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"x.{fmt}"]  # no temporary left
    letters = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert letters == ["a", "b"]  # top panel first
    assert label_panels(fig) == []  # a lettered figure is not lettered twice


def test_png_resolution_follows_dpi(tmp_path):
    from matplotlib.image import imread

    sizes = []
    for dpi in (100, 200):
        with figure_output("png", dpi):
            img = imread(save_figure(_two_panels(), tmp_path / f"d{dpi}.png"))
        sizes.append(img.shape[1])
    assert 1.9 < sizes[1] / sizes[0] < 2.1


@pytest.mark.parametrize(
    ("fmt", "dpi", "message"),
    [("jpeg", 300, r"figure format must be one of png, pdf, svg; got 'jpeg'"), ("pdf", 10, r"dpi must be .* 50 to 2400; got 10")],
)
def test_bad_format_or_dpi_is_refused_naming_the_value(fmt, dpi, message):
    with pytest.raises(ValueError, match=message), figure_output(fmt, dpi):
        pass


def test_a_title_wider_than_its_figure_is_wrapped_not_clipped(tmp_path):
    fig = _two_panels("a long title " * 12)
    save_figure(fig, tmp_path / "t.png")
    title = fig._suptitle
    renderer = fig.canvas.get_renderer()
    assert "\n" in title.get_text()
    box = title.get_window_extent(renderer)
    assert box.width <= fig.bbox.width
    # nothing of the panels (their letters included) runs into the title
    assert all(ax.get_tightbbox(renderer).y1 <= box.y0 + 1 for ax in fig.axes)


def test_csv_columns_carry_units():
    text = columns_csv({"t_ns": [0.0, 1.0], "w(M1)_fraction": [0.5, 0.25]})
    assert text.splitlines() == ["t_ns,w(M1)_fraction", "0,0.5", "1,0.25"]
    with pytest.raises(ValueError, match=r"must end in a unit .*got \['w\(M1\)'\]"):
        check_unit_headers(["t_ns", "w(M1)"])
    with pytest.raises(ValueError, match="equal lengths"):
        columns_csv({"t_ns": [0.0, 1.0], "v_V": [1.0]})


RETENTION = """schema = "ionkinetics.circuit/1"
name = "short-retention"
duration_ns = 200.0
dt_ns = 0.5

[[element]]
name = "V1"
kind = "voltage_source"
nodes = ["in", "0"]
protocol = { kind = "step", v = 0.5, t_on_ns = 10.0, t_off_ns = 30.0, duration_ns = 200.0, v_base = 0.05 }

[[element]]
name = "Racc"
kind = "resistor"
nodes = ["in", "m"]
r_ohm = 1e8

[[element]]
name = "M1"
kind = "membrane"
nodes = ["m", "0"]
calibration = "B3N:KCl@1.0+NaCl@0.5"
n_pores = 100

[experiment]
kind = "retention"
read_times_ns = [1.0, 10.0, 100.0]
"""


def _read_csv(path):
    with open(path) as fh:
        rows = list(csv.reader(fh))
    return rows[0], np.array(rows[1:], dtype=float)


def test_circuit_run_format_pdf_writes_pdfs_and_a_csv_with_units(tmp_path):
    """The issue's acceptance: `circuit run FILE --format pdf` writes PDF figures and a CSV of the
    traces (units in every column name) that replot the figure: w read at the read times."""
    path = tmp_path / "retention.toml"
    path.write_text(RETENTION)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["circuit", "run", str(path), "-o", str(out), "--format", "pdf", "--dpi", "200"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["figures"] == ["retention.pdf"]
    assert (out / "retention.pdf").read_bytes()[:4] == b"%PDF"
    assert not list(out.glob("*.png"))
    assert summary["data"] == ["retention.csv", "retention_reads.csv"]
    header, data = _read_csv(out / "retention.csv")
    check_unit_headers(header)
    assert header[0] == "t_ns" and "w(M1)_fraction" in header and "V(m)_V" in header and "I(M1)_pA" in header
    t, w = data[:, 0], data[:, header.index("w(M1)_fraction")]
    reads_header, reads = _read_csv(out / "retention_reads.csv")
    assert reads_header == ["t_after_write_ns", "w_read_fraction", "G_read_pS"]
    np.testing.assert_allclose(reads[:, 0], [1.0, 10.0, 100.0])
    # the reads are the trace's w at write end + the read time (the saved grid holds them exactly)
    np.testing.assert_allclose(reads[:, 1], [w[np.argmin(np.abs(t - (30.0 + a)))] for a in reads[:, 0]], rtol=1e-8)
    np.testing.assert_allclose(reads[:, 1], summary["w_read"], rtol=1e-8)
    assert "retention.pdf" in result.output and "retention.csv" in result.output


def test_a_bad_format_exits_2_naming_it(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "retention.toml"
    path.write_text(RETENTION)
    done = subprocess.run(
        [sys.executable, "-m", "ionkinetics.cli", "circuit", "run", str(path), "--format", "tiff", "-o", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "figure format must be one of png, pdf, svg; got 'tiff'" in done.stdout + done.stderr
    assert not (tmp_path / "o").exists()


def test_role_map_is_colour_blind_safe():
    """No red against green: the role colours are Okabe–Ito colours, and every cell also has a letter."""
    from ionkinetics._io import PALETTE
    from ionkinetics.calibrate._gv import ROLE_COLORS

    assert {c.upper() for r, c in ROLE_COLORS.items() if r != "passive"} <= set(PALETTE)


# -- one α and C --------------------------------------------------------------------------------

ROWS = {  # the docs' "Model against the paper" table rows and their system ids
    "crown6 Na⁺": "crown6:NaCl@1.0",
    "crown6 Na⁺ + K⁺": "crown6:NaCl@1.0+KCl@0.5",
    "crown6 Na⁺ + NH4⁺": "crown6:NaCl@1.0+NH4Cl@0.5",
    "crown6 Na⁺ + Mg²⁺": "crown6:NaCl@1.0+MgCl2@0.25",
    "B3N K⁺": "B3N:KCl@1.0",
    "B3N K⁺ + Rb⁺": "B3N:KCl@1.0+RbCl@0.5",
    "B3N K⁺ + Na⁺": "B3N:KCl@1.0+NaCl@0.5",
}


def _first_number(cell: str) -> float:
    return float(re.search(r"[-−]?\d+(?:\.\d+)?", cell).group(0).replace("−", "-"))


def test_alpha_and_c_have_one_definition_in_the_table_and_the_docs():
    """Issue 26: B3N Rb⁺ α was −8.6 in the figure, −9.0 in the demo table and −8.2 in the README.
    One fit now (0.1 V steps over the paper's G–V range: B3N 0.1–0.4 V, crown6 0.1–0.3 V) gives the
    table's row and the documented table's numbers; the figure draws the same fit
    (test_figures_text.py), and the demo's table is checked against it row by row (test_cli.py, slow)."""
    from ionkinetics.calibrate import GV_FIT_DEFINITION, exponential_fit, gv_exponential_fit, summarise_calibration

    text = (REPO / "docs" / "calibration.md").read_text()
    table = {line.split("|")[1].strip(): line.split("|") for line in text.splitlines() if line.startswith("| ")}
    for row, sid in ROWS.items():
        cal = ik.load_calibration(sid)
        gv = gv_exponential_fit(cal)
        v = np.asarray(gv["fit_v"])
        assert np.allclose(np.diff(v), 0.1) and v[0] == pytest.approx(0.1)
        assert v[-1] == pytest.approx(0.3 if sid.startswith("crown6") else 0.4)
        c_ps, alpha = exponential_fit(v, ik.conductance(cal, v))
        assert gv["alpha_per_v"] == pytest.approx(alpha, rel=1e-9) and gv["c_ps"] == pytest.approx(c_ps, rel=1e-9)
        cells = table[row]
        assert _first_number(cells[4]) == pytest.approx(alpha, abs=0.051), (row, cells[4], alpha)
        assert _first_number(cells[5]) == pytest.approx(c_ps, rel=0.03, abs=0.051), (row, cells[5], c_ps)
    rb = summarise_calibration(ik.load_calibration("B3N:KCl@1.0+RbCl@0.5"))  # the example, in the table
    assert round(rb["alpha_per_v"], 1) == -8.2 and rb["gv_fit_range_v"] == [0.1, 0.4]
    assert "0.1 V steps" in GV_FIT_DEFINITION
    assert "0.1 V steps across the paper's G–V range" in " ".join((REPO / "README.md").read_text().split())


def test_simulate_csv_has_units_in_every_column_and_plots_in_the_format_asked_for(tmp_path):
    out = tmp_path / "trace.csv"
    protocol = "step:v=0.3,t_on_ns=5,t_off_ns=25,duration_ns=50"
    result = CliRunner().invoke(
        app, ["simulate", "B3N:KCl@1.0+RbCl@0.5", "--protocol", protocol, "-o", str(out), "--plot", "--format", "svg"]
    )
    assert result.exit_code == 0, result.output
    header, data = _read_csv(out)
    assert header == ["t_ns", "v_V", "w_fraction", "g_pS", "i_pA", "e_aJ"]
    check_unit_headers(header)
    assert np.all((data[:, 2] >= 0) & (data[:, 2] <= 1)) and data[:, 1].max() == pytest.approx(0.3)
    assert (tmp_path / "trace.svg").read_bytes()[:5] == b"<?xml"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace.csv", "trace.svg"]


def test_step_response_axis_shows_the_plateau_behind_a_transient_and_leaves_short_pulses_alone():
    """issue 26: a 350 pA transient hid the inactivated plateau. The current axis now spans the
    plateaus (the spike is written beside it); a train of short pulses, whose plateaus are the
    pulses themselves, keeps its full range."""
    from ionkinetics._demo import _off_scale_limits

    t = np.arange(0.0, 400.0, 0.05)
    v = np.where((t >= 20) & (t < 120), 0.5, 0.0)
    plateau = 0.7
    i = np.where(v > 0, plateau, 0.0) + 183.0 * np.exp(-(t - 20) / 2.5) * (t >= 20)
    lo, hi = _off_scale_limits(t, i, v)
    assert lo < 0 < plateau < hi < 10 < i.max()
    pulses = np.zeros_like(t)
    for k in range(8):
        pulses[(t >= 20 + 25 * k) & (t < 22 + 25 * k)] = 0.5
    assert _off_scale_limits(t, np.where(pulses > 0, 60.0, 0.0), pulses) is None


def test_a_panel_title_stays_clear_of_its_letter(tmp_path):
    fig = Figure(figsize=(6, 3))
    axes = fig.subplots(1, 2)
    for ax in axes:
        ax.plot([0, 1], [0, 1])
        ax.set_ylabel("V (V)")
    axes[0].set_title("pulses of growing amplitude (vermilion: crosses the spike level)")
    fig.tight_layout()
    save_figure(fig, tmp_path / "p.png")
    renderer = fig.canvas.get_renderer()
    for ax in axes:
        letter = ax.texts[0].get_window_extent(renderer)
        assert not letter.overlaps(ax.title.get_window_extent(renderer))


def test_crowded_log_minor_tick_labels_are_dropped(tmp_path):
    fig = Figure(figsize=(3, 2.5))
    ax = fig.subplots()
    ax.loglog([204, 816, 3264], [150, 50, 13], "o-")
    fig.tight_layout()
    save_figure(fig, tmp_path / "log.png")
    renderer = fig.canvas.get_renderer()
    labels = [t.label1 for t in [*ax.xaxis.get_major_ticks(), *ax.xaxis.get_minor_ticks()] if t.label1.get_text()]
    boxes = [lab.get_window_extent(renderer) for lab in labels if lab.get_visible()]
    assert boxes and not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
