"""`ionkinetics md build|run|analyze` on a real (small) membrane system on the CPU, and bad specs."""

import copy
import json

import pytest
from typer.testing import CliRunner

from ionkinetics.cli import app
from ionkinetics.md._spec import MDSpecError, parse_md_spec

pytest.importorskip("openmm")
runner = CliRunner()

TINY = {
    "schema": "ionkinetics.md/1",
    "name": "tiny",
    "system": "B3N:KCl@1.0+RbCl@0.5",
    "membrane": {"spacing_nm": 1.6, "cells": [2, 1], "box_z_nm": 4.0},
    "bias": {"protocol": {"kind": "step", "v": 0.5, "t_on_ns": 0.0001, "t_off_ns": 0.0002, "duration_ns": 0.0003}},
    "run": {"length_ns": 0.0003, "timestep_fs": 2.0, "frame_ps": 0.01, "chunk_frames": 10, "seed": 2, "platform": "CPU"},
    "analysis": {"blockers": ["Rb+"]},
}


def _write(path, raw):
    lines = [f'schema = "{raw["schema"]}"', f'name = "{raw["name"]}"', f'system = "{raw["system"]}"']
    for table in ("membrane", "bias", "run", "analysis"):
        lines.append(f"[{table}]")
        for k, v in raw[table].items():
            if isinstance(v, dict):
                inner = ", ".join(f"{a} = {json.dumps(b)}" for a, b in v.items())
                lines.append(f"{k} = {{ {inner} }}")
            else:
                lines.append(f"{k} = {json.dumps(v)}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow  # 40 s of real MD on idle cores (test_md_runner covers real runs in the default tier); CI runs it
def test_md_run_then_analyze_a_small_real_system(tmp_path):
    spec = _write(tmp_path / "tiny.toml", TINY)
    run_dir = tmp_path / "runs" / "tiny"
    result = runner.invoke(app, ["md", "run", str(spec), "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    progress = json.loads((run_dir / "progress.json").read_text())
    assert progress["frames_done"] == 30 and progress["chunks_done"] == 3
    build = json.loads((run_dir / "build.json").read_text())
    assert build["membrane"]["n_pores"] == 4
    result = runner.invoke(app, ["md", "analyze", str(run_dir)])
    assert result.exit_code == 0, result.output
    analysis = json.loads((run_dir / "analysis.json").read_text())
    assert [s["v"] for s in analysis["segments"]] == [0.0, 0.5, 0.0]
    assert len(analysis["w_t"]["w"]) == 30
    # the same spec again: already complete, nothing re-run; another spec in the same place is refused
    assert runner.invoke(app, ["md", "run", str(spec), "--out", str(run_dir)]).exit_code == 0
    other = copy.deepcopy(TINY)
    other["run"]["seed"] = 3
    result = runner.invoke(app, ["md", "run", str(_write(tmp_path / "other.toml", other)), "--out", str(run_dir)])
    assert result.exit_code != 0 and "another spec" in str(result.exception)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.update(system="B3N:KCl@1.0+XeCl@0.5"), r"field 'system': unknown salt 'XeCl'"),
        (lambda r: r.update(system="hole:KCl@1.0"), r"unknown pore 'hole'"),
        (lambda r: r.update(system="B3N:KCl@-1.0"), r"molar"),
        (lambda r: r["run"].update(length_ns=0.0004), r"lasts 0.0003 ns but \[run\]\.length_ns is 0.0004"),
        (lambda r: r["run"].update(frame_ps=0.003), r"whole number of time steps"),
        (lambda r: r["analysis"].update(blockers=["Cs+"]), r"blockers must name cations of"),
        (lambda r: r["membrane"].update(radius=3), r"\[membrane\] has unknown fields \['radius'\]"),
        (lambda r: r.update(schema="ionkinetics.md/0"), r"'schema' must be 'ionkinetics.md/1'"),
    ],
)
def test_bad_specs_are_refused_before_anything_is_written(tmp_path, edit, message):
    raw = copy.deepcopy(TINY)
    edit(raw)
    with pytest.raises(MDSpecError, match=message):
        parse_md_spec(raw)


def test_a_box_too_small_for_the_pore_array_is_refused(tmp_path):
    raw = copy.deepcopy(TINY)
    raw["membrane"] = {"spacing_nm": 1.6, "box_xy_nm": [1.0, 1.0]}
    spec = parse_md_spec(raw)
    with pytest.raises(ValueError, match="box_xy_nm"):
        spec.build()
    assert not list(tmp_path.iterdir())


def test_md_pmf_refuses_an_ion_the_system_does_not_hold(tmp_path):
    spec = _write(tmp_path / "tiny.toml", TINY)
    result = runner.invoke(app, ["md", "pmf", str(spec), "--ion", "Na+", "--out", str(tmp_path / "pmf")])
    assert result.exit_code != 0
    assert "--ion must be a species in B3N:KCl@1.0+RbCl@0.5" in str(result.exception)
    assert not (tmp_path / "pmf").exists()
