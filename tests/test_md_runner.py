"""The MD runner on a toy system (ions in a box with LJ, no water): field force = qE, resumable
runs give the same frames as uninterrupted ones, the record is complete, bad input is refused."""

import dataclasses
import json

import numpy as np
import pytest

from conftest import assert_allclose
from ionkinetics.kinetics import protocols
from ionkinetics.md._analyze_run import analyze_run
from ionkinetics.md._runner import FARADAY_KJ_PER_MOL_PER_V, RunSettings, load_frames, run_md

openmm = pytest.importorskip("openmm")
app = pytest.importorskip("openmm.app")


@dataclasses.dataclass
class Toy:
    topology: object
    system: object
    positions_nm: np.ndarray
    box_nm: np.ndarray
    ion_indices: np.ndarray
    ion_species: tuple
    field_parameter: str = "field_kj_per_mol_nm_e"
    membrane_z_nm: float = 1.25
    pore_centres_nm: np.ndarray = dataclasses.field(default_factory=lambda: np.array([[1.25, 1.25]]))


def _toy(n=8, seed=0):
    """n/2 cations and n/2 anions (LJ + Coulomb, reaction field) in a 2.5 nm box, with the field force."""
    box = np.array([2.5, 2.5, 2.5])
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) for row in np.diag(box)])
    nb = openmm.NonbondedForce()
    nb.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    nb.setCutoffDistance(1.0)
    field = openmm.CustomExternalForce("-q*field_kj_per_mol_nm_e*z")
    field.addGlobalParameter("field_kj_per_mol_nm_e", 0.0)
    field.addPerParticleParameter("q")
    top = app.Topology()
    chain = top.addChain()
    species = []
    for i in range(n):
        q = 1.0 if i % 2 == 0 else -1.0
        system.addParticle(23.0 if q > 0 else 35.45)
        nb.addParticle(q, 0.3, 0.5)
        field.addParticle(i, [q])
        res = top.addResidue("NA" if q > 0 else "CL", chain)
        top.addAtom("NA" if q > 0 else "CL", app.Element.getBySymbol("Na" if q > 0 else "Cl"), res)
        species.append("Na+" if q > 0 else "Cl-")
    system.addForce(nb)
    system.addForce(field)
    top.setPeriodicBoxVectors(np.diag(box) * openmm.unit.nanometer)
    grid = np.stack(np.meshgrid(*[np.arange(2)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n] * 1.2 + 0.3
    return Toy(top, system, grid.astype(float), box, np.arange(n), tuple(species))


SETTINGS = RunSettings(length_ns=0.03, timestep_fs=2.0, frame_ps=1.0, chunk_frames=5, platform="Reference", seed=3)


def test_field_force_on_a_lone_ion_is_qE():
    toy = _toy(2)
    ctx = openmm.Context(toy.system, openmm.VerletIntegrator(1.0), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(np.array([[0.2, 0.2, 0.2], [1.4, 1.4, 1.4]]) * openmm.unit.nanometer)
    v, lz = 0.5, toy.box_nm[2]
    e_field = v / lz * FARADAY_KJ_PER_MOL_PER_V
    nb_only = (
        ctx.getState(getForces=True).getForces(asNumpy=True).value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.nanometer)
    )
    ctx.setParameter(toy.field_parameter, e_field)
    both = (
        ctx.getState(getForces=True).getForces(asNumpy=True).value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.nanometer)
    )
    assert_allclose(both[:, 2] - nb_only[:, 2], [e_field, -e_field], rtol=1e-12, atol=1e-12)
    assert_allclose(e_field * lz / FARADAY_KJ_PER_MOL_PER_V, v, rtol=1e-15, atol=0)  # ΔV = E·L_z


def test_killed_and_resumed_run_gives_the_same_frames(tmp_path):
    proto = protocols.step(0.5, 0.01, 0.02, duration_ns=0.03)
    run_md(_toy(), proto, SETTINGS, tmp_path / "whole")
    part = run_md(_toy(), proto, SETTINGS, tmp_path / "split", stop_after_frames=10)  # "killed" after 2 chunks
    assert part.frames_done == 10
    # a kill between a chunk's frames and its commit leaves an extra chunk file: it must be discarded
    stray = np.load(tmp_path / "split" / "frames" / "chunk_000000.npz")
    np.savez(tmp_path / "split" / "frames" / "chunk_000002.npz", **stray)
    rest = run_md(_toy(), proto, SETTINGS, tmp_path / "split")
    assert rest.resumed_from_frame == 10 and rest.frames_done == 30
    a, b = load_frames(tmp_path / "whole"), load_frames(tmp_path / "split")
    assert a.positions_nm.shape == (30, 8, 3)
    assert np.array_equal(a.positions_nm, b.positions_nm)  # bit for bit on Reference
    assert_allclose(a.t_ns, np.arange(1, 31) * 1e-3, rtol=1e-12, atol=0)
    assert_allclose(a.v, np.where((np.arange(30) >= 10) & (np.arange(30) < 20), 0.5, 0.0), rtol=0, atol=0)
    assert json.loads((tmp_path / "split" / "progress.json").read_text())["frames_done"] == 30
    assert len(list((tmp_path / "split").glob("checkpoint_*.chk"))) == 1


def test_a_run_directory_from_another_spec_is_refused_and_bad_settings_name_the_rule(tmp_path):
    proto = protocols.dc(0.2, 0.03)
    run_md(_toy(), proto, SETTINGS, tmp_path / "r", stop_after_frames=5)
    other = dataclasses.replace(SETTINGS, seed=4)
    with pytest.raises(ValueError, match="holds a run of another spec"):
        run_md(_toy(), proto, other, tmp_path / "r")
    with pytest.raises(ValueError, match="frame_ps must be a whole number of time steps"):
        RunSettings(length_ns=0.03, timestep_fs=2.0, frame_ps=1.001)
    with pytest.raises(ValueError, match=r"protocol duration_ns=0\.05 must equal the run's length_ns=0\.03"):
        run_md(_toy(), protocols.dc(0.2, 0.05), SETTINGS, tmp_path / "q")
    with pytest.raises(ValueError, match="frame grid"):
        run_md(_toy(), protocols.step(0.5, 0.0105, 0.02, duration_ns=0.03), SETTINGS, tmp_path / "s")


def test_analyze_run_splits_a_step_protocol_into_constant_bias_segments(tmp_path):
    proto = protocols.step(0.5, 0.01, 0.02, duration_ns=0.03)
    run_md(_toy(), proto, SETTINGS, tmp_path / "r")
    out = analyze_run(tmp_path / "r", blockers=["Na+"])
    assert [s.v for s in out.segments] == [0.0, 0.5, 0.0]
    assert [round(s.t_start_ns, 6) for s in out.segments] == [0.001, 0.011, 0.021]
    assert out.w.size == 30 and np.all((out.w >= 0.0) & (out.w <= 1.0))
    on = out.segments[1]
    assert on.raw["conductance_ps"] is not None and out.segments[0].raw["conductance_ps"] is None  # no conductance at 0 V
    assert json.loads((tmp_path / "r" / "analysis.json").read_text())["schema"] == "ionkinetics.md-run-analysis/1"
    with pytest.raises(ValueError, match="blockers"):
        analyze_run(tmp_path / "r", blockers=["Xe+"])


def test_a_real_membrane_run_killed_and_resumed_on_reference_gives_the_same_frames(tmp_path):
    from ionkinetics.md import build_system

    built = build_system("B3N:KCl@1.0+RbCl@0.5", cells=(2, 1), box_z_nm=4.0)
    settings = RunSettings(length_ns=4e-5, frame_ps=0.004, chunk_frames=5, platform="Reference", seed=1, minimize=False)
    proto = protocols.dc(0.5, 4e-5)
    run_md(built, proto, settings, tmp_path / "whole")
    run_md(built, proto, settings, tmp_path / "split", stop_after_frames=5)
    run_md(built, proto, settings, tmp_path / "split")
    a, b = load_frames(tmp_path / "whole"), load_frames(tmp_path / "split")
    assert a.positions_nm.shape == (10, len(built.ion_indices), 3)
    assert np.array_equal(a.positions_nm, b.positions_nm)
    assert np.all(np.isfinite(a.positions_nm))


def test_optional_dcd_chunks_hold_every_atom_for_viewing(tmp_path):
    settings = dataclasses.replace(SETTINGS, dcd_every_frames=2)
    run_md(_toy(), protocols.dc(0.2, 0.03), settings, tmp_path / "r", stop_after_frames=10)
    run_md(_toy(), protocols.dc(0.2, 0.03), settings, tmp_path / "r")
    dcds = sorted((tmp_path / "r" / "frames").glob("chunk_*.dcd"))
    assert len(dcds) == 6
    for path in dcds:
        raw = path.read_bytes()
        assert raw[4:8] == b"CORD" and len(raw) > 100  # a DCD header; readable by VMD / MDTraj
    with pytest.raises(ValueError, match="dcd_every_frames must be an integer >= 0"):
        RunSettings(length_ns=0.03, dcd_every_frames=-1)


# Issue 15: the run folder is locked, a path in progress.json is never followed, Ctrl-C stops at
# once keeping every whole frame, and a failed write leaves no temporary.


class _Interrupting:
    """The toy system, with a Ctrl-C (SIGINT to this process) just before frame ``at`` is run
    (the runner reads ``field_parameter`` once per frame)."""

    def __init__(self, toy, at):
        self._toy, self._at, self._frames = toy, at, 0

    def __getattr__(self, name):
        return getattr(self._toy, name)

    @property
    def field_parameter(self):
        import os
        import signal

        if self._frames == self._at:
            os.kill(os.getpid(), signal.SIGINT)
        self._frames += 1
        return self._toy.field_parameter


def test_ctrl_c_stops_at_once_keeps_the_whole_frames_and_resumes_bit_for_bit(tmp_path, monkeypatch):
    import signal

    import ionkinetics.md._runner as R

    monkeypatch.setattr(R, "_STEPS_PER_BLOCK", 100)  # 5 blocks per frame: the cut lands inside frame 7
    proto = protocols.step(0.5, 0.01, 0.02, duration_ns=0.03)
    handler = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN under nohup/a background job
    whole = run_md(_toy(), proto, SETTINGS, tmp_path / "whole")
    cut = run_md(_Interrupting(_toy(), 7), proto, SETTINGS, tmp_path / "cut")
    assert cut.interrupted and cut.frames_done == 7  # old code: KeyboardInterrupt after the frame, frames 5-6 lost
    assert signal.getsignal(signal.SIGINT) is handler  # the caller's handler is put back
    assert json.loads((tmp_path / "cut" / "progress.json").read_text())["frames_done"] == 7
    assert load_frames(tmp_path / "cut").positions_nm.shape[0] == 7
    rest = run_md(_toy(), proto, SETTINGS, tmp_path / "cut")
    assert rest.resumed_from_frame == 7 and rest.frames_done == 30 and not rest.interrupted and whole.frames_done == 30
    a, b = load_frames(tmp_path / "whole"), load_frames(tmp_path / "cut")
    assert np.array_equal(a.positions_nm, b.positions_nm)  # bit for bit on Reference
    assert not [p for p in (tmp_path / "cut").rglob("*") if ".tmp" in p.name]


def test_progress_json_cannot_point_outside_its_run_folder(tmp_path):
    proto = protocols.dc(0.2, 0.03)
    run_md(_toy(), proto, SETTINGS, tmp_path / "other", stop_after_frames=5)
    run_md(_toy(), proto, SETTINGS, tmp_path / "r", stop_after_frames=5)
    victim = tmp_path / "other" / "checkpoint_000001.chk"
    progress = tmp_path / "r" / "progress.json"
    done = json.loads(progress.read_text())
    progress.write_text(json.dumps({**done, "checkpoint": "../other/checkpoint_000001.chk"}))
    with pytest.raises(ValueError, match=r"progress\.json': field 'checkpoint' must be this folder's 'checkpoint_000001\.chk'"):
        run_md(_toy(), proto, SETTINGS, tmp_path / "r")  # old code: resumed from, then deleted, the other run's file
    assert victim.is_file()


def test_a_run_folder_is_locked_against_a_second_process(tmp_path):
    """Two `md run` into one folder used to both start from scratch and both report success."""
    import os
    import signal
    import subprocess
    import sys
    import time

    run_dir = tmp_path / "r"
    run_dir.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pathlib import Path\nfrom ionkinetics.md._runner import _RunLock\n"
            "with _RunLock(Path(sys.argv[1])):\n    print('locked', flush=True)\n    time.sleep(60)\n",
            str(run_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ValueError, match=rf"run_dir '.*r' is in use by `md run` pid {holder.pid} on .* since "):
            run_md(_toy(), protocols.dc(0.2, 0.03), SETTINGS, run_dir)
        assert not (run_dir / "spec.json").exists()  # refused before anything was written
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # a killed holder's lock goes with it
        holder.wait()
        holder.stdout.close()
    time.sleep(0.1)
    assert run_md(_toy(), protocols.dc(0.2, 0.03), SETTINGS, run_dir).frames_done == 30


def test_a_failed_checkpoint_write_leaves_no_temporary(tmp_path, monkeypatch):
    import errno

    import ionkinetics._io as io

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.os, "fsync", full)  # the one atomic writer every record goes through
    with pytest.raises(OSError, match="No space left"):
        io.write_bytes_atomic(tmp_path / "checkpoint_000001.chk", b"x" * 100)
    with pytest.raises(OSError, match="No space left"):
        io.write_npz_atomic(tmp_path / "chunk_000000.npz", a=np.zeros(3))
    with pytest.raises(OSError, match="No space left"):
        io.write_text_atomic(tmp_path / "summary.json", "{}")
    assert not list(tmp_path.iterdir())  # old code: .checkpoint_000001.chk.tmp stayed


def test_on_the_cpu_platform_a_resumed_run_continues_within_round_off(tmp_path):
    """The README's determinism statement per platform: on CPU a resumed run keeps every frame
    before the resume and continues from
    the checkpoint to within float32 round-off, but not bit for bit (the CPU platform's single
    precision state does not round-trip exactly; trajectories then diverge chaotically). On
    Reference a resumed run is bit for bit (test_killed_and_resumed_run_gives_the_same_frames)."""
    cpu = dataclasses.replace(SETTINGS, platform="CPU")
    proto = protocols.step(0.5, 0.01, 0.02, duration_ns=0.03)
    run_md(_toy(), proto, cpu, tmp_path / "a")
    run_md(_toy(), proto, cpu, tmp_path / "split", stop_after_frames=10)
    rest = run_md(_toy(), proto, cpu, tmp_path / "split")
    assert rest.resumed_from_frame == 10 and rest.frames_done == 30
    a, s = (load_frames(tmp_path / n) for n in ("a", "split"))
    assert np.array_equal(a.positions_nm[:10], s.positions_nm[:10])
    assert np.abs(a.positions_nm[10] - s.positions_nm[10]).max() < 1e-4  # nm: round-off, not a new trajectory
    assert np.array_equal(a.t_ns, s.t_ns)  # no frame lost or repeated


class _InterruptingAtStart(_Interrupting):
    """Ctrl-C as the starting positions are handed to OpenMM, just before the energy minimisation."""

    def __getattr__(self, name):
        if name == "positions_nm":
            import os
            import signal

            self._frames += 1
            if self._frames == 2:  # 1: system.json's atom count; 2: setPositions
                os.kill(os.getpid(), signal.SIGINT)
        return getattr(self._toy, name)


def test_ctrl_c_during_minimisation_stops_before_any_frame_and_a_rerun_starts_clean(tmp_path):
    proto = protocols.dc(0.2, 0.03)
    cut = run_md(_InterruptingAtStart(_toy(), at=-1), proto, SETTINGS, tmp_path / "cut")
    assert cut.interrupted and cut.frames_done == 0
    assert not (tmp_path / "cut" / "progress.json").exists()
    run_md(_toy(), proto, SETTINGS, tmp_path / "cut")
    run_md(_toy(), proto, SETTINGS, tmp_path / "whole")
    assert np.array_equal(load_frames(tmp_path / "cut").positions_nm, load_frames(tmp_path / "whole").positions_nm)
