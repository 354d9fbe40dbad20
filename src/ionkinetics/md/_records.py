"""Typed records of a run folder (``ionkinetics md run``), each with one reader and one writer.

A run folder holds ``spec.json`` (what determines the frames, and its hash), ``system.json``
(what analysis needs to read the frames), ``progress.json`` (the commit point of the last
chunk) and, once analysed, ``analysis.json`` (one segment per constant bias). Every stage reads
them through this module: the runner writes them, ``md analyze`` writes the analysis, the
MD-to-calibration step and the campaign read them, and :mod:`ionkinetics.md.testsystems` writes
synthetic runs with the same writers, so there is one copy of the format.

Versions: ``spec.json`` and ``system.json`` carry ``"schema": RUN_RECORD_SCHEMA`` and
``analysis.json`` ``"schema": ANALYSIS_SCHEMA``; a file without one is read as version 1 (the
folders written before the field existed); another version is refused by name.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import numpy as np

from .._io import write_json_atomic
from ._settings import RunSettings

__all__ = [
    "ANALYSIS_SCHEMA",
    "RUN_RECORD_SCHEMA",
    "DwellCount",
    "Progress",
    "RunAnalysis",
    "RunRecord",
    "SegmentAnalysis",
    "SystemRecord",
    "read_progress",
    "read_run_analysis",
    "read_run_record",
    "read_run_settings",
    "read_system_record",
    "write_progress",
    "write_run_analysis",
    "write_run_spec",
]

RUN_RECORD_SCHEMA = "ionkinetics.md-run/1"
ANALYSIS_SCHEMA = "ionkinetics.md-run-analysis/1"


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"run_dir {str(path.parent)!r} has no {path.name} ({what}); is it a run directory?")
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{str(path)!r} is not readable JSON ({exc}); the run folder was changed by hand") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{str(path)!r} must hold an object; got {type(raw).__name__}")
    schema = raw.get("schema", None)
    expected = ANALYSIS_SCHEMA if path.name == "analysis.json" else RUN_RECORD_SCHEMA
    if schema is not None and schema != expected:
        raise ValueError(f"{str(path)!r}: schema must be {expected!r} (this ionkinetics reads version 1); got {schema!r}")
    return raw


@dataclasses.dataclass(frozen=True)
class SystemRecord:
    """``system.json``: the ions' species in frame order, the box, the membrane plane and the pore axes."""

    ion_species: tuple[str, ...]
    box_nm: tuple[float, float, float]
    membrane_z_nm: float
    pore_centres_nm: tuple[tuple[float, float], ...] | None
    n_atoms: int
    system_id: str | None
    forcefield_files: tuple[str, ...]
    forcefield_option: str | None = None
    cutoff_nm: float | None = None

    @property
    def n_pores(self) -> int:
        """Number of pore axes recorded (0 when the system has none)."""
        return len(self.pore_centres_nm or ())

    @classmethod
    def from_built(cls, built) -> SystemRecord:
        """From an :class:`~ionkinetics.md.MDSystem` (or anything with its attributes)."""
        centres = getattr(built, "pore_centres_nm", None)
        return cls(
            ion_species=tuple(built.ion_species),
            box_nm=tuple(np.asarray(built.box_nm, dtype=float).tolist()),
            membrane_z_nm=float(getattr(built, "membrane_z_nm", 0.0)),
            pore_centres_nm=None if centres is None else tuple(map(tuple, np.asarray(centres, dtype=float)[:, :2].tolist())),
            n_atoms=int(np.asarray(built.positions_nm).shape[0]),
            system_id=getattr(built, "system_id", None),
            forcefield_files=tuple(getattr(built, "forcefield_files", ()) or ()),
            forcefield_option=getattr(built, "forcefield_option", None),
            cutoff_nm=getattr(built, "cutoff_nm", None),
        )

    @classmethod
    def from_dict(cls, raw: Mapping) -> SystemRecord:
        """The record from its ``system.json`` mapping (``pore_centres_nm`` keeps x and y only)."""
        centres = raw.get("pore_centres_nm")
        box = tuple(float(b) for b in raw["box_nm"])
        if len(box) != 3:
            raise ValueError(f"system record: box_nm must hold the 3 box edges (nm); got {raw['box_nm']!r}")
        return cls(
            ion_species=tuple(raw["ion_species"]),
            box_nm=box,
            membrane_z_nm=float(raw.get("membrane_z_nm", 0.0)),
            pore_centres_nm=None if centres is None else tuple((float(c[0]), float(c[1])) for c in centres),
            n_atoms=int(raw["n_atoms"]),
            system_id=raw.get("system_id"),
            forcefield_files=tuple(raw.get("forcefield_files") or ()),
            forcefield_option=raw.get("forcefield_option"),
            cutoff_nm=raw.get("cutoff_nm"),
        )

    def to_dict(self) -> dict:
        """The record as its ``system.json`` mapping, with ``schema``."""
        out = dataclasses.asdict(self)
        out["ion_species"] = list(self.ion_species)
        out["box_nm"] = list(self.box_nm)
        out["pore_centres_nm"] = None if self.pore_centres_nm is None else [list(c) for c in self.pore_centres_nm]
        out["forcefield_files"] = list(self.forcefield_files)
        return {"schema": RUN_RECORD_SCHEMA, **out}


@dataclasses.dataclass(frozen=True)
class Progress:
    """``progress.json``: frames and chunks committed, and the checkpoint to resume from."""

    frames_done: int = 0
    chunks_done: int = 0
    checkpoint: str | None = None
    time_ns: float | None = None
    platform: str | None = None

    def to_dict(self) -> dict:
        """The progress as its ``progress.json`` mapping."""
        return dataclasses.asdict(self)


def read_progress(path, n_frames: int | None = None, *, resumable: bool = True) -> Progress:
    """``progress.json``, checked: counts within range and a checkpoint that is this folder's own file for
    its chunk count (a path from the file is never followed out of the run folder). ``resumable=False``
    reads a run only for its frames: then the checkpoint may be absent (a finished or synthetic run, or a
    folder copied without its checkpoints), but a name it gives must still be this folder's own."""
    path = Path(path)
    raw = _read_json(path, "the run's progress")

    def bad(field, rule):
        return ValueError(f"{str(path)!r}: field {field!r} {rule}; got {raw.get(field)!r} (the run folder was changed by hand)")

    for field, high in (("frames_done", n_frames), ("chunks_done", None)):
        value = raw.get(field)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (high is not None and value > high):
            raise bad(field, f"must be an integer within [0, {high}]" if high is not None else "must be an integer >= 0")
    expected = f"checkpoint_{raw['chunks_done']:06d}.chk"
    if raw.get("checkpoint") != expected and (resumable or raw.get("checkpoint") is not None):
        raise bad("checkpoint", f"must be this folder's {expected!r} (a plain file name, no path)")
    if resumable and not (path.parent / expected).is_file():
        raise bad("checkpoint", "must name a checkpoint file present in the run folder")
    time_ns = raw.get("time_ns")
    if time_ns is not None and (isinstance(time_ns, bool) or not isinstance(time_ns, (int, float))):
        raise bad("time_ns", "must be a number of ns or null")
    return Progress(raw["frames_done"], raw["chunks_done"], raw.get("checkpoint"), time_ns, raw.get("platform"))


def write_progress(run_dir, progress: Progress) -> None:
    """Write ``progress.json`` atomically: the commit point of a chunk."""
    write_json_atomic(Path(run_dir) / "progress.json", progress.to_dict())


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """A run folder's ``spec.json``, ``system.json`` and ``progress.json`` together."""

    run_dir: Path
    settings: RunSettings
    spec: Mapping  # the spec's own sections (system, analysis, membrane, ...)
    protocol: str
    spec_hash: str
    system: SystemRecord
    progress: Progress

    @property
    def system_id(self) -> str | None:
        """The system id from the spec, else from ``system.json`` (``None`` when neither gives one)."""
        return self.spec.get("system") or self.system.system_id

    @property
    def blockers(self) -> tuple[str, ...]:
        """The blocking species the spec's ``[analysis]`` names (empty when it names none)."""
        return tuple(self.spec.get("analysis", {}).get("blockers", []))

    @property
    def skip_ns(self) -> float:
        """Time dropped at the start of each constant-bias segment, from the spec's ``[analysis]``, in ns (0 by default)."""
        return float(self.spec.get("analysis", {}).get("skip_ns", 0.0))


def read_system_record(run_dir) -> SystemRecord:
    """The run's ``system.json``."""
    return SystemRecord.from_dict(_read_json(Path(run_dir) / "system.json", "the run's system record"))


def write_run_spec(run_dir, record: Mapping, spec_hash: str, system: SystemRecord) -> None:
    """Write ``spec.json`` (``record`` = settings, spec, protocol; and its hash) and ``system.json``."""
    run_dir = Path(run_dir)
    write_json_atomic(run_dir / "spec.json", {"schema": RUN_RECORD_SCHEMA, **record, "hash": spec_hash})
    write_json_atomic(run_dir / "system.json", system.to_dict())


def read_run_settings(run_dir, raw: Mapping) -> RunSettings:
    """``spec.json``'s ``settings`` as the :class:`RunSettings` that wrote them, checked by its own rules."""
    try:
        return RunSettings(**raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{str(Path(run_dir) / 'spec.json')!r}: field 'settings' is not a run's settings ({exc})") from None


def read_run_record(run_dir) -> RunRecord:
    """The records of a run folder that has committed at least one chunk, each read once and checked in
    its type: the settings as :class:`RunSettings`, the progress by :func:`read_progress` against the
    settings' frame count (its checkpoint need not be present: the frames are what is read)."""
    run_dir = Path(run_dir)
    spec = _read_json(run_dir / "spec.json", "the run's spec")
    settings = read_run_settings(run_dir, spec.get("settings") or {})
    return RunRecord(
        run_dir=run_dir,
        settings=settings,
        spec=MappingProxyType(dict(spec.get("spec") or {})),
        protocol=str(spec.get("protocol")),
        spec_hash=str(spec.get("hash")),
        system=read_system_record(run_dir),
        progress=read_progress(run_dir / "progress.json", settings.n_frames, resumable=False),
    )


@dataclasses.dataclass(frozen=True)
class DwellCount:
    """Dwell events and time at risk (ns, summed over pores) of one side of the blocking kinetics."""

    n_events: float
    exposure_ns: float


@dataclasses.dataclass(frozen=True)
class SegmentAnalysis:
    """One constant-bias segment of ``analysis.json`` (:func:`ionkinetics.md.analyze_trajectory`'s
    record plus its times): the fields later stages use, typed; ``raw`` keeps the whole record."""

    v: float
    t_start_ns: float
    t_stop_ns: float
    w_mean: float
    trap: DwellCount  # open → blocked
    escape: DwellCount  # blocked → open
    current_by_species_pa: Mapping[str, float]
    current_se_by_species_pa: Mapping[str, float]
    raw: Mapping

    @property
    def duration_ns(self) -> float:
        """Length of the segment, ``t_stop_ns − t_start_ns``, in ns."""
        return self.t_stop_ns - self.t_start_ns

    @classmethod
    def from_dict(cls, raw: Mapping) -> SegmentAnalysis:
        """The segment from its ``analysis.json`` record (dwell counts and currents typed, the rest kept in ``raw``)."""
        dwell, crossings = raw["dwell"], raw["crossings"]
        return cls(
            v=float(raw["v"]),
            t_start_ns=float(raw["t_start_ns"]),
            t_stop_ns=float(raw["t_stop_ns"]),
            w_mean=float(raw["w_mean"]),
            trap=DwellCount(float(dwell["trap"]["n_events"]), float(dwell["trap"]["exposure_ns"])),
            escape=DwellCount(float(dwell["escape"]["n_events"]), float(dwell["escape"]["exposure_ns"])),
            current_by_species_pa=MappingProxyType(dict(crossings["current_by_species_pa"])),
            current_se_by_species_pa=MappingProxyType(dict(crossings["current_se_by_species_pa"])),
            raw=MappingProxyType(dict(raw)),
        )


@dataclasses.dataclass(frozen=True, eq=False)
class RunAnalysis:
    """``analysis.json``: the segments of constant bias and w(t) over the whole run."""

    blockers: tuple[str, ...]
    skip_ns: float
    frame_ns: float
    segments: tuple[SegmentAnalysis, ...]
    t_ns: np.ndarray
    w: np.ndarray
    v: np.ndarray
    raw: Mapping

    @classmethod
    def from_dict(cls, raw: Mapping) -> RunAnalysis:
        """The analysis from its ``analysis.json`` mapping (segments and w(t) typed, the whole mapping kept in ``raw``)."""
        wt = raw["w_t"]
        return cls(
            blockers=tuple(raw["blockers"]),
            skip_ns=float(raw.get("skip_ns", 0.0)),
            frame_ns=float(raw["frame_ns"]),
            segments=tuple(SegmentAnalysis.from_dict(s) for s in raw["segments"]),
            t_ns=np.asarray(wt["t_ns"], dtype=float),
            w=np.asarray(wt["w"], dtype=float),
            v=np.asarray(wt["v"], dtype=float),
            raw=MappingProxyType(dict(raw)),
        )


def write_run_analysis(run_dir, analysis: dict) -> RunAnalysis:
    """Check ``analysis`` reads as a :class:`RunAnalysis`, then write ``analysis.json`` atomically."""
    typed = RunAnalysis.from_dict({"schema": ANALYSIS_SCHEMA, **analysis})
    write_json_atomic(Path(run_dir) / "analysis.json", {"schema": ANALYSIS_SCHEMA, **analysis})
    return typed


def read_run_analysis(run_dir, *, blockers: Sequence[str] | None = None) -> RunAnalysis | None:
    """The run's ``analysis.json``; None when there is none, or it counted other ``blockers``, or it is older
    than the run's last commit (then analyse again)."""
    run_dir = Path(run_dir)
    path = run_dir / "analysis.json"
    if not path.is_file():
        return None
    typed = RunAnalysis.from_dict(_read_json(path, "the run's analysis"))
    if blockers is not None and list(typed.blockers) != list(blockers):
        return None
    progress = run_dir / "progress.json"
    if progress.is_file() and path.stat().st_mtime < progress.stat().st_mtime:
        return None
    return typed
