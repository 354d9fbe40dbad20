"""MD that talks like OpenMM (issue 26, item 4): `md run` off a terminal writes StateDataReporter-style
lines (step, ns, %, ns/day, time remaining) as it goes, SIGTERM stops it at a whole frame with a
checkpoint and a message, `--length-ns` runs part of a spec that the same spec resumes, and
`md build` writes system.pdb with a short summary."""

import copy
import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from ionkinetics.cli import app
from ionkinetics.kinetics import protocols
from ionkinetics.md._runner import load_frames, run_md

openmm = pytest.importorskip("openmm")
from test_md_cli import TINY, _write  # noqa: E402 (after the importorskip: both need OpenMM)
from test_md_runner import SETTINGS, _toy  # noqa: E402

runner = CliRunner()
# the smallest real membrane system the spec allows (2 cells, 3 nm box, ~2100 atoms), no minimisation:
# a build and 10 frames take seconds on a CPU
FAST = copy.deepcopy(TINY)
FAST["membrane"]["box_z_nm"] = 3.0
FAST["run"].update(length_ns=0.002, minimize=False)
FAST["bias"]["protocol"] = {"kind": "dc", "v": 0.3, "duration_ns": 0.002}
LOG_ROW = re.compile(r"^(\d+),([\d.e+-]+),([\d.]+),([\d.e+-]+),(\d+:\d\d:\d\d|--)$")


def test_sigterm_stops_at_a_whole_frame_with_a_checkpoint_and_the_run_resumes_to_the_same_frames(tmp_path, capfd):
    proto = protocols.step(0.5, 0.01, 0.02, duration_ns=0.03)
    before = signal.getsignal(signal.SIGTERM)
    whole = run_md(_toy(), proto, SETTINGS, tmp_path / "whole")

    def kill_after_first_chunk(done, total, ns_per_day):
        if done == SETTINGS.chunk_frames:
            os.kill(os.getpid(), signal.SIGTERM)  # as a batch scheduler stops a job

    part = run_md(_toy(), proto, SETTINGS, tmp_path / "split", progress=kill_after_first_chunk)
    assert part.interrupted and part.stopped_by == "SIGTERM" and part.frames_done == SETTINGS.chunk_frames
    assert "SIGTERM received: stopping at the next whole frame and writing a checkpoint" in capfd.readouterr().err
    done = json.loads((tmp_path / "split" / "progress.json").read_text())
    assert done["frames_done"] == SETTINGS.chunk_frames and (tmp_path / "split" / done["checkpoint"]).is_file()
    assert signal.getsignal(signal.SIGTERM) == before  # the run's handler is gone again
    rest = run_md(_toy(), proto, SETTINGS, tmp_path / "split")
    assert rest.resumed_from_frame == SETTINGS.chunk_frames and rest.frames_done == whole.frames_done == 30
    assert np.array_equal(load_frames(tmp_path / "whole").positions_nm, load_frames(tmp_path / "split").positions_nm)


def test_until_ns_runs_part_of_a_spec_that_the_same_spec_resumes(tmp_path):
    proto = protocols.step(0.5, 0.01, 0.02, duration_ns=0.03)
    first = run_md(_toy(), proto, SETTINGS, tmp_path / "r", until_ns=0.012)
    assert (first.frames_done, first.interrupted) == (12, False)
    rest = run_md(_toy(), proto, SETTINGS, tmp_path / "r")  # the same spec: continues, not "another spec"
    assert (rest.resumed_from_frame, rest.frames_done) == (12, 30)
    with pytest.raises(ValueError, match=r"length_ns must be at most the spec's \[run\]\.length_ns = 0\.03 ns"):
        run_md(_toy(), proto, SETTINGS, tmp_path / "q", until_ns=0.05)
    with pytest.raises(ValueError, match=r"whole number of 1 ps frames; got 0\.0125"):
        run_md(_toy(), proto, SETTINGS, tmp_path / "q", until_ns=0.0125)


def test_md_run_through_a_pipe_logs_progress_and_stops_cleanly_on_sigterm(tmp_path):
    spec = _write(tmp_path / "fast.toml", FAST)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ionkinetics.cli", "md", "run", str(spec), "-o", str(run_dir), "--length-ns", "0.001"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    lines = []
    try:
        for line in proc.stdout:  # read while it runs: each line must arrive when written (flushed)
            lines.append(line.rstrip("\n"))
            if LOG_ROW.match(lines[-1]):
                proc.send_signal(signal.SIGTERM)
                break
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    lines += out.splitlines()
    assert lines[0].startswith("md run tiny: B3N:KCl@1.0+RbCl@0.5, 100 frames (500 steps of 2 fs, 0.001 ns) on CPU"), lines
    assert lines[1] == '#"Step","Time (ns)","Progress (%)","Speed (ns/day)","Time Remaining"'
    step, t_ns, percent, speed, _eta = LOG_ROW.match(lines[2]).groups()
    assert (int(step), float(t_ns), float(percent)) == (50, 0.0001, 10.0) and float(speed) > 0  # chunk 1 of 10
    assert proc.returncode == 143, (lines, err)
    assert "SIGTERM received: stopping at the next whole frame" in err
    kept = json.loads((run_dir / "progress.json").read_text())["frames_done"]
    assert 10 <= kept < 100  # the first chunk, plus the frames finished before the signal was seen
    assert any(f"stopped by SIGTERM: kept {kept} of 200 frames, checkpoint written" in line for line in lines), lines
    assert (run_dir / "system.pdb").is_file() and list(run_dir.glob("checkpoint_*.chk"))


def test_md_build_writes_a_pdb_and_prints_a_short_summary(tmp_path):
    spec = _write(tmp_path / "fast.toml", FAST)
    result = runner.invoke(app, ["md", "build", str(spec), "-o", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) <= 6 and "{" not in result.output  # was ~80 lines of JSON
    assert re.match(r"B3N:KCl@1\.0\+RbCl@0\.5: \d+ atoms in a [\d.]+ × [\d.]+ × 3\.00 nm box$", lines[0])
    assert "4 B3N pores" in result.output and "wrote system.pdb" in result.output
    build = json.loads((tmp_path / "b" / "build.json").read_text())
    pdb = openmm.app.PDBFile(str(tmp_path / "b" / "system.pdb"))
    assert pdb.topology.getNumAtoms() == build["n_atoms"]
    box = pdb.topology.getPeriodicBoxVectors().value_in_unit(openmm.unit.nanometer)
    assert np.allclose([box[0][0], box[1][1], box[2][2]], build["box_nm"], atol=1e-3)
