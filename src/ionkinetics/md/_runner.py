"""Resumable OpenMM runs under a time-dependent transmembrane bias.

A run directory holds::

    spec.json          the run's settings and their hash (a directory from another spec is refused)
    frames/chunk_000000.npz ...   ion positions (float32, nm) per frame, one file per chunk, each
                       written atomically; with the frame times, the bias and the box
    checkpoint_<c>.chk OpenMM checkpoint (positions, velocities, box, parameters, integrator RNG)
                       after chunk c − 1, written atomically
    progress.json      {"frames_done": n, "chunks_done": c, "checkpoint": "checkpoint_<c>.chk", "platform": ...}:
                       the commit point, written atomically after the chunk and its checkpoint

Each chunk is committed in three atomic writes: the frames, the checkpoint, then progress.json.
A run killed anywhere resumes from the checkpoint progress.json names, discards chunks and
checkpoints written after it, and produces exactly the frames an uninterrupted run would (bit
for bit on the Reference platform, whose integrator is deterministic given the checkpointed RNG
state).

The bias is a uniform field along z set through a global parameter of the system's field force
(``E = V/L_z``); protocols are the kinetic core's, evaluated once per frame interval (their jumps
must fall on the frame grid).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import time
from pathlib import Path
from typing import IO, Any
from typing import Protocol as _TypingProtocol

import numpy as np

from .._io import write_atomic, write_bytes_atomic, write_npz_atomic
from ..kinetics import protocols as _protocols
from ._records import Progress, SystemRecord, read_progress, read_system_record, write_progress, write_run_spec
from ._settings import RunSettings as RunSettings

__all__ = ["BuiltSystem", "Frames", "RunResult", "load_frames", "run_md"]

from ._system import FARADAY_KJ_PER_MOL_PER_V as FARADAY_KJ_PER_MOL_PER_V  # kJ/mol per (e·V): E = V/L_z · this


class BuiltSystem(_TypingProtocol):
    """What the runner needs from a system builder (``ionkinetics.md`` builds one), read only: a frozen
    record's fields or properties satisfy it."""

    @property
    def topology(self) -> Any:
        """The openmm.app.Topology."""
        ...

    @property
    def system(self) -> Any:
        """The openmm.System, whose field force has the global parameter ``field_parameter``."""
        ...

    @property
    def positions_nm(self) -> np.ndarray:
        """(N, 3) positions, nm."""
        ...

    @property
    def box_nm(self) -> np.ndarray:
        """(3,) orthorhombic box edges, nm."""
        ...

    @property
    def ion_indices(self) -> np.ndarray:
        """(n_ions,) particle indices recorded every frame."""
        ...

    @property
    def ion_species(self) -> tuple:
        """(n_ions,) species names, e.g. "K+", "Cl-"."""
        ...

    @property
    def field_parameter(self) -> str:
        """Name of the global parameter holding E in kJ/mol/nm/e."""
        ...


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What :func:`run_md` did: the run folder, frames committed in all (``resumed_from_frame`` of them before this call),
    the OpenMM platform, the speed in ns/day, and whether and by which signal the run was stopped."""

    run_dir: Path
    frames_done: int
    resumed_from_frame: int
    platform: str
    ns_per_day: float
    interrupted: bool = False  # stopped by Ctrl-C (SIGINT) or SIGTERM: frames_done were committed, the rest resumes
    stopped_by: str | None = None  # "SIGINT" or "SIGTERM" when a signal stopped the run


def _protocol_volts(protocol: _protocols.Protocol, settings: RunSettings) -> np.ndarray:
    """Bias held over each frame interval (V), from the kinetic core's protocol sampling."""
    if not math.isclose(protocol.duration_ns, settings.length_ns, rel_tol=1e-9):
        raise ValueError(f"protocol duration_ns={protocol.duration_ns:g} must equal the run's length_ns={settings.length_ns:g}")
    try:
        return protocol.sample(settings.frame_ps / 1000.0)
    except ValueError as exc:
        raise ValueError(f"bias protocol: {exc} (jumps must fall on the {settings.frame_ps:g} ps frame grid)") from None


def _spec_hash(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


def _write_dcd_atomic(path: Path, topology, box, frames, settings: RunSettings) -> None:
    """Every atom at the given (frame number, positions nm) as a DCD for VMD/MDTraj, written atomically."""
    import openmm.app as app

    from . import _units as u

    def write(tmp):
        with open(tmp, "wb") as fh:
            dcd = app.DCDFile(
                fh,
                topology,
                settings.timestep_fs * u.femtoseconds,
                firstStep=frames[0][0] * settings.steps_per_frame,
                interval=settings.dcd_every_frames * settings.steps_per_frame,
            )
            for _, xyz in frames:
                dcd.writeModel(xyz * u.nanometer, periodicBoxVectors=np.diag(box) * u.nanometer)

    write_atomic(path, write)


def run_md(
    built: BuiltSystem,
    protocol: _protocols.Protocol,
    settings: RunSettings,
    run_dir,
    *,
    spec: dict | None = None,
    progress=None,
    stop_after_frames: int | None = None,
    until_ns: float | None = None,
) -> RunResult:
    """Run (or resume) ``built`` under ``protocol`` into ``run_dir``.

    ``spec`` (JSON-able) identifies the run with ``settings``; an existing directory made from a
    different spec is refused. ``progress(frames_done, n_frames, ns_per_day)`` is called after each
    chunk. ``stop_after_frames`` stops early (as a kill would), for tests and time-boxed jobs.
    ``until_ns`` runs only the first ``until_ns`` of the run (a whole number of frames, at most
    ``length_ns``); the same spec resumes from there later (the run's identity is its full length).

    The folder is locked for the run (a second run into it is refused, naming the holder). In the
    main thread, Ctrl-C (SIGINT) or SIGTERM (a scheduler's stop) prints a message, stops within one
    block of steps and commits the whole frames done with their checkpoint (``RunResult.interrupted``,
    ``stopped_by``); a second signal interrupts at once.
    """
    volts = _protocol_volts(protocol, settings)
    target_frames = _frames_until(until_ns, settings)
    run_dir = Path(run_dir)
    record = {"settings": dataclasses.asdict(settings), "spec": spec or {}, "protocol": repr(protocol)}
    digest = _spec_hash(record)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"run_dir {str(run_dir)!r} is a file; it must be a folder (or not exist yet)")
    run_dir.mkdir(parents=True, exist_ok=True)
    with _RunLock(run_dir), _StopOnInterrupt() as stop:  # one `md run` per folder: the spec check below is atomic
        return _run_locked(built, settings, run_dir, record, digest, volts, progress, stop_after_frames, stop, target_frames)


def _frames_until(until_ns, settings: RunSettings) -> int:
    """The frames a run stopping at ``until_ns`` holds (all of them for None); refused unless a whole
    number of frames within the run's length."""
    if until_ns is None:
        return settings.n_frames
    bad = isinstance(until_ns, bool) or not isinstance(until_ns, (int, float)) or not math.isfinite(until_ns)
    frames = 0.0 if bad else until_ns * 1000.0 / settings.frame_ps
    if bad or until_ns <= 0 or abs(frames - round(frames)) > 1e-9 * max(frames, 1.0):
        raise ValueError(
            f"length_ns (the part of the run to simulate now) must be a positive whole number of {settings.frame_ps:g} ps "
            f"frames; got {until_ns!r}"
        )
    if round(frames) > settings.n_frames:
        raise ValueError(
            f"length_ns must be at most the spec's [run].length_ns = {settings.length_ns:g} ns (its bias protocol "
            f"ends there; to run longer, lengthen both in the spec); got {until_ns:g}"
        )
    return round(frames)


def _prepare_run_dir(run_dir: Path, built, record: dict, digest: str) -> Path:
    """Refuse a folder of another spec, drop a killed write's leftovers, write spec.json and system.json
    once; returns the frames folder."""
    spec_path = run_dir / "spec.json"
    if spec_path.exists():
        old = json.loads(spec_path.read_text())
        if old.get("hash") != digest:
            raise ValueError(
                f"run_dir {str(run_dir)!r} holds a run of another spec (hash {old.get('hash')} != {digest}); "
                "use a new directory or the same spec"
            )
    frames_dir = run_dir / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    for tmp in [*run_dir.glob(".*.tmp*"), *frames_dir.glob(".*.tmp*")]:
        tmp.unlink(missing_ok=True)
    if not spec_path.exists():
        write_run_spec(run_dir, record, digest, SystemRecord.from_built(built))
    return frames_dir


def _start_or_resume(simulation, built, settings, run_dir: Path, box: np.ndarray, stop) -> Progress | None:
    """The committed progress: resumed from its checkpoint, or a fresh start (box, positions, minimisation,
    velocities) at zero frames; ``None`` if Ctrl-C stopped the minimiser (nothing committed yet)."""
    from . import _units as u

    progress_path = run_dir / "progress.json"
    if progress_path.exists():
        done = read_progress(progress_path, settings.n_frames)
        if done.checkpoint is None:
            raise ValueError(f"{progress_path}: records no checkpoint to resume from; remove the run folder to start again")
        with open(run_dir / done.checkpoint, "rb") as fh:
            simulation.context.loadCheckpoint(fh.read())
        return done
    simulation.context.setPeriodicBoxVectors(*(np.diag(box) * u.nanometer))
    simulation.context.setPositions(np.asarray(built.positions_nm) * u.nanometer)
    if settings.minimize:
        simulation.minimizeEnergy(reporter=_minimization_watch(stop) if stop.armed else None)
        if stop.requested:
            return None
    simulation.context.setVelocitiesToTemperature(settings.temperature_k * u.kelvin, settings.seed + 1)
    return Progress()


def _drop_uncommitted(run_dir: Path, frames_dir: Path, done: Progress) -> None:
    """Delete chunks and checkpoints written after the last commit (a kill between the writes)."""
    for stale in sorted([*frames_dir.glob("chunk_*.npz"), *frames_dir.glob("chunk_*.dcd")]):
        if _CHUNK.fullmatch(stale.name) and int(stale.stem.split("_")[1]) >= done.chunks_done:
            stale.unlink()
    for stale in run_dir.glob("checkpoint_*.chk"):
        if _CHECKPOINT.fullmatch(stale.name) and stale.name != done.checkpoint:
            stale.unlink()


def _simulate_frames(simulation, built, settings, volts, box, ions, first: int, count: int, stop):
    """Frames ``first`` … ``first + count − 1`` under their biases; returns (ion positions of the whole
    frames, [(frame number, all positions)] for the DCD). A Ctrl-C cuts the chunk back to its last
    whole frame (answered within one block of steps)."""
    from . import _units as u

    pos = np.empty((count, ions.size, 3), dtype=np.float32)
    full = []
    boundary = None  # the state after the last whole frame, kept while Ctrl-C may cut a frame short
    kept = 0
    block = max(1, min(settings.steps_per_frame, _STEPS_PER_BLOCK))
    for j in range(count):
        frame = first + j
        simulation.context.setParameter(built.field_parameter, volts[frame] / box[2] * FARADAY_KJ_PER_MOL_PER_V)
        left = settings.steps_per_frame
        while left and not stop.requested:
            simulation.step(min(block, left))
            left -= min(block, left)
        if left:
            if boundary is not None:
                simulation.context.loadCheckpoint(boundary)
            break
        xyz = simulation.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(u.nanometer)
        pos[j] = xyz[ions]
        kept = j + 1
        if settings.dcd_every_frames and (frame + 1) % settings.dcd_every_frames == 0:
            full.append((frame + 1, xyz.copy()))
        if stop.armed and j + 1 < count:
            boundary = simulation.context.createCheckpoint()
    return pos[:kept], full


def _commit_chunk(simulation, built, settings, run_dir, frames_dir, volts, box, done, pos, full, platform_name) -> Progress:
    """Write a chunk in three atomic steps: frames (and DCD), checkpoint, then progress.json (the commit
    point); the previous checkpoint is removed after. Returns the new progress."""
    first, count = done.frames_done, len(pos)
    times = (np.arange(first, first + count) + 1) * settings.frame_ps / 1000.0
    if full:
        _write_dcd_atomic(frames_dir / f"chunk_{done.chunks_done:06d}.dcd", built.topology, box, full, settings)
    write_npz_atomic(
        frames_dir / f"chunk_{done.chunks_done:06d}.npz",
        positions_nm=pos,
        t_ns=times,
        v=volts[first : first + count],
        box_nm=box,
    )
    chunks = done.chunks_done + 1
    checkpoint = f"checkpoint_{chunks:06d}.chk"
    write_bytes_atomic(run_dir / checkpoint, simulation.context.createCheckpoint())
    new = Progress(first + count, chunks, checkpoint, float(times[-1]), platform_name)
    write_progress(run_dir, new)  # the commit point
    if done.checkpoint:
        (run_dir / done.checkpoint).unlink(missing_ok=True)
    return new


def _run_locked(built, settings, run_dir, record, digest, volts, progress, stop_after_frames, stop, target_frames) -> RunResult:
    import openmm.app as app

    from ._system import select_platform

    frames_dir = _prepare_run_dir(run_dir, built, record, digest)
    platform, props = select_platform(settings.platform)
    box = np.asarray(built.box_nm, dtype=float)
    integrator = settings.langevin_integrator(seed_offset=1)
    simulation = app.Simulation(built.topology, built.system, integrator, platform, props)
    done = _start_or_resume(simulation, built, settings, run_dir, box, stop)
    if done is None:
        return RunResult(run_dir, 0, 0, platform.getName(), float("nan"), True, stop.signal_name)
    _drop_uncommitted(run_dir, frames_dir, done)
    resumed_from = done.frames_done
    n_frames = target_frames
    ions = np.asarray(built.ion_indices)
    start_wall = time.perf_counter()
    frames_this_call = 0
    ns_per_day = float("nan")
    while done.frames_done < n_frames and not stop.requested:
        count = min(settings.chunk_frames, n_frames - done.frames_done)
        pos, full = _simulate_frames(simulation, built, settings, volts, box, ions, done.frames_done, count, stop)
        if len(pos) == 0:
            break
        done = _commit_chunk(simulation, built, settings, run_dir, frames_dir, volts, box, done, pos, full, platform.getName())
        frames_this_call += len(pos)
        elapsed = time.perf_counter() - start_wall
        ns_per_day = frames_this_call * settings.frame_ps / 1000.0 / elapsed * 86400.0
        if progress is not None:
            progress(done.frames_done, n_frames, ns_per_day)
        if stop_after_frames is not None and frames_this_call >= stop_after_frames:
            break
    interrupted = stop.requested and done.frames_done < n_frames
    stopped_by = stop.signal_name if interrupted else None
    return RunResult(run_dir, done.frames_done, resumed_from, platform.getName(), ns_per_day, interrupted, stopped_by)


_STEPS_PER_BLOCK = 500  # Ctrl-C is answered within this many steps
_CHUNK = re.compile(r"chunk_\d{6}\.(npz|dcd)")
_CHECKPOINT = re.compile(r"checkpoint_\d{6}\.chk")


class _RunLock:
    """An exclusive, advisory lock on a run folder (``.lock``, flock): a second `md run` into the
    same folder is refused, naming who holds it; the lock goes with the process, even on a kill."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / ".lock"
        self.fh: IO[str] | None = None

    def __enter__(self):
        import fcntl
        import socket

        fh = open(self.path, "a+")  # held open (and locked) for the run
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise ValueError(
                f"run_dir {str(self.path.parent)!r} is in use by {holder}; wait for it to finish (or stop it), "
                "or run into another folder"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"`md run` pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        self.fh = fh
        return self

    def __exit__(self, *exc):
        import fcntl

        fh = self.fh
        if fh is None:  # __enter__ raised: nothing is held
            return False
        fh.seek(0)
        fh.truncate()
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()
        return False


def _minimization_watch(stop):
    """An OpenMM minimisation reporter that ends the minimiser when Ctrl-C was pressed."""
    import openmm

    class Watch(openmm.MinimizationReporter):
        def report(self, iteration, x, grad, *args):
            return stop.requested

    return Watch()


class _StopOnInterrupt:
    """While a run is in the main thread: the first Ctrl-C (SIGINT) or SIGTERM (what a batch scheduler
    or `kill` sends) says so on stderr and asks the run to stop at the next block of steps and commit
    the whole frames it has, with their checkpoint; a second signal interrupts at once."""

    _SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self):
        self.requested = False
        self.armed = False
        self.signal_name = None
        self._previous = {}

    def _handler(self, signum, frame):
        import signal
        import sys

        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        print(
            f"{self.signal_name} received: stopping at the next whole frame and writing a checkpoint there "
            "(the run resumes from it; a second signal stops at once, losing the frames of this chunk)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for name in self._SIGNALS:
                self._previous[name] = signal.signal(getattr(signal, name), self._handler)
            self.armed = True
        return self

    def __exit__(self, *exc):
        import signal

        if self.armed:
            for name, previous in self._previous.items():
                signal.signal(getattr(signal, name), previous)
        return False


def _read_chunk(path: Path) -> dict:
    """One committed chunk's arrays; a damaged file is named with what to do."""
    import zipfile

    try:
        with open(path, "rb") as fh, np.load(fh) as z:  # our handle: closed even when the zip is bad
            return {k: z[k] for k in ("positions_nm", "t_ns", "v", "box_nm")}
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, ValueError) as exc:
        raise ValueError(
            f"frames file {str(path)!r} is damaged or truncated ({type(exc).__name__}: {exc}); chunks are written "
            "atomically, so it changed after its run wrote it: restore it from a copy, or run the spec again into a "
            "new folder (`ionkinetics md run SPEC -o NEW`)"
        ) from None


@dataclasses.dataclass(frozen=True, eq=False)
class Frames:
    """A run's recorded frames, every chunk in order: each ion's position per frame (frames, ions, 3;
    nm, float32 as recorded), the frame times (ns), the bias per frame (V), the box (nm) and the
    run's :class:`~ionkinetics.md.SystemRecord` (ion species in frame order, membrane plane, pores)."""

    positions_nm: np.ndarray
    t_ns: np.ndarray
    v: np.ndarray
    box_nm: np.ndarray
    system: SystemRecord

    @property
    def frame_ns(self) -> float:
        """The spacing of the recorded frames (the first frame's time when only one)."""
        ...
        return float(self.t_ns[1] - self.t_ns[0]) if self.t_ns.size > 1 else float(self.t_ns[0])


def load_frames(run_dir) -> Frames:
    """All recorded frames of a run, as :class:`Frames`."""
    run_dir = Path(run_dir)
    chunks = sorted((run_dir / "frames").glob("chunk_*.npz"))
    if not chunks:
        raise FileNotFoundError(f"no frames recorded in {str(run_dir)!r}")
    parts = [_read_chunk(c) for c in chunks]
    return Frames(
        positions_nm=np.concatenate([p["positions_nm"] for p in parts]),
        t_ns=np.concatenate([p["t_ns"] for p in parts]),
        v=np.concatenate([p["v"] for p in parts]),
        box_nm=parts[0]["box_nm"],
        system=read_system_record(run_dir),
    )
