"""Issue 15: one error path for every failure a user can cause (exit 2, one plain line, nothing
half-written), and no text lost to the terminal's markup."""

import errno
import sys

import numpy as np
import pytest

from ionkinetics import cli


def _main(monkeypatch, capsys, *args):
    """Run ``ionkinetics ARGS`` in this process (no re-import of JAX); return (exit code, output)."""
    monkeypatch.setattr(sys, "argv", ["ionkinetics", *args])
    with pytest.raises(SystemExit) as info:
        cli.main()
        raise SystemExit(0)
    out = capsys.readouterr()
    return info.value.code, out.out + out.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # Rich markup used to eat "[bias]" and crash (MarkupError) on "[/red]"
        (["simulate", "crown6:NaCl@1.0+[bias]Cl@0.5"], "unknown salt '[bias]Cl'"),
        (["simulate", "crown6:NaCl@1.0+[/red]@0.5"], "unknown salt '[/red]'"),
        # count=2.5 used to say "invalid literal for int() with base 10: '2.5'"
        (
            ["simulate", "B3N:KCl@1.0", "--protocol", "pulse_train:amplitude_v=0.5,width_ns=1,period_ns=5,count=2.5"],
            "count must be an integer (number of pulses); got '2.5'",
        ),
    ],
)
def test_errors_keep_their_text_on_one_plain_line(monkeypatch, capsys, tmp_path, args, message):
    monkeypatch.chdir(tmp_path)
    code, out = _main(monkeypatch, capsys, *args)
    assert code == 2, out
    assert message in out
    assert out.count("\n") == 1 and out.startswith("error: ")  # one line, no traceback
    assert not list(tmp_path.iterdir())


def test_output_that_is_a_folder_or_a_full_disk_is_one_line_and_leaves_nothing(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    proto = "step:v=0.5,t_on_ns=1,t_off_ns=2,duration_ns=3"
    code, out = _main(monkeypatch, capsys, "simulate", "B3N:KCl@1.0", "--protocol", proto, "-o", "out")
    # one error line (a data-range warning about the protocol may precede it), no traceback
    last = out.strip().splitlines()[-1]
    assert code == 2 and last == "error: IsADirectoryError: output 'out' is a folder; it must name a file", out
    assert "Traceback" not in out
    import ionkinetics._io as io

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.tempfile, "mkstemp", full)
    code, out = _main(monkeypatch, capsys, "simulate", "B3N:KCl@1.0", "--protocol", proto, "-o", "t.csv")
    assert code == 2 and out.strip().splitlines()[-1] == "error: OSError: [Errno 28] No space left on device", out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and not list((tmp_path / "out").iterdir())


def test_written_json_is_as_readable_as_the_figures(tmp_path):
    """JSON used to be 0600 (mkstemp's mode) while figures were 0644."""
    import os

    from ionkinetics._io import write_json_atomic
    from ionkinetics.circuits._figures import figure, save_figure_atomic

    old = os.umask(0o022)
    try:
        j = write_json_atomic(tmp_path / "a.json", {"x": 1})
        fig, _ = figure()
        f = save_figure_atomic(fig, tmp_path / "a.png")
    finally:
        os.umask(old)
    assert oct(j.stat().st_mode & 0o777) == oct(f.stat().st_mode & 0o777) == oct(0o644)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.png"]  # no temporary left


def test_a_failing_experiment_leaves_no_folder_behind(tmp_path):
    """An experiment that fails after its output folder was made used to leave it (empty) behind."""
    from ionkinetics import circuits as C
    from ionkinetics import experiments as E

    raw = {
        "schema": "ionkinetics.circuit/1",
        "name": "t",
        "duration_ns": 2.0,
        "dt_ns": 0.1,
        "element": [
            {
                "name": "V1",
                "kind": "voltage_source",
                "nodes": ["in", "0"],
                "protocol": {"kind": "dc", "v": 0.1, "duration_ns": 2.0},
            },
            {"name": "R1", "kind": "resistor", "nodes": ["in", "0"], "r_ohm": 1e9},
        ],
        "experiment": {"kind": "pulse", "probe": "nowhere"},
    }
    cf = C.parse_circuit(raw)
    target = tmp_path / "a" / "b"
    with pytest.raises(ValueError, match="nowhere"):
        E.run_experiment(cf, target)
    assert not list(tmp_path.iterdir())


def test_a_truncated_chunk_is_named(tmp_path):
    from ionkinetics.md._runner import load_frames

    frames = tmp_path / "frames"
    frames.mkdir()
    np.savez_compressed(frames / "chunk_000000.npz", positions_nm=np.zeros((2, 1, 3)), t_ns=[1, 2], v=[0, 0], box_nm=[1, 1, 1])
    data = (frames / "chunk_000000.npz").read_bytes()
    (frames / "chunk_000001.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"frames file '.*chunk_000001\.npz' is damaged or truncated \(BadZipFile"):
        load_frames(tmp_path)


def test_campaign_collect_with_no_results_is_an_error(monkeypatch, capsys, tmp_path):
    """It used to exit 0 having collected nothing."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text(
        'schema = "ionkinetics.campaign/1"\nname = "tiny"\n'
        "[membrane]\nspacing_nm = 1.6\ncells = [2, 1]\nbox_z_nm = 4.0\n"
        '[run]\ntimestep_fs = 2.0\nframe_ps = 0.004\nchunk_frames = 3\nplatform = "Reference"\n'
        '[[system]]\nid = "B3N:KCl@1.0+RbCl@0.5"\nblockers = ["Rb+"]\n'
        '[sweep]\nbiases_v = [0.5]\nseeds = [1]\nlengths_ns = [4.8e-5]\nprotocol = "dc"\n'
    )
    code, out = _main(monkeypatch, capsys, "campaign", "collect", "c.toml", "-o", "camp")
    assert code == 2, out
    assert out.startswith("error: campaign tiny: nothing to collect in 'camp' (1 of 1 tasks have no result)")
    assert out.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]  # nothing written


def test_conductance_refuses_a_nan_voltage():
    import ionkinetics as ik

    cal = ik.load_calibration("B3N:KCl@1.0")
    with pytest.raises(ValueError, match=r"v must be finite voltages \(volts\); got \[nan\]"):
        ik.conductance(cal, [0.1, float("nan")])  # it returned NaN
    assert np.isfinite(ik.conductance(cal, [0.1, 0.2])).all()


def test_a_sweep_through_zero_volts_is_refused_before_anything_is_written(tmp_path):
    """G = I/V at 0 V is inf: the sweep used to report 'G largest at 0 V (inf pS)'."""
    from ionkinetics import circuits as C
    from ionkinetics import experiments as E

    raw = {
        "schema": "ionkinetics.circuit/1",
        "name": "t",
        "duration_ns": 1.0,
        "dt_ns": 0.1,
        "element": [
            {
                "name": "V1",
                "kind": "voltage_source",
                "nodes": ["in", "0"],
                "protocol": {"kind": "dc", "v": 0.1, "duration_ns": 1.0},
            },
            {"name": "R1", "kind": "resistor", "nodes": ["in", "0"], "r_ohm": 1e9},
        ],
        "experiment": {"kind": "sweep", "voltages_v": [0.0, 0.1], "probes": ["R1"]},
    }
    with pytest.raises(ValueError, match=r"experiment\.voltages_v must be finite and non-zero \(G = I/V\); got \[0\.0, 0\.1\]"):
        E.run_experiment(C.parse_circuit(raw), tmp_path / "out")
    assert not list(tmp_path.iterdir())


def test_help_texts_keep_their_brackets():
    """Typer's Rich markup took "[experiment]" in `circuit run --help` for a tag and dropped it."""
    from typer.testing import CliRunner

    result = CliRunner().invoke(cli.app, ["circuit", "run", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "A file without an [experiment] table runs as a plain transient" in " ".join(result.output.split())
