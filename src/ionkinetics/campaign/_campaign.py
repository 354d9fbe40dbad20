"""MD campaigns: systems × biases × seeds × lengths (and PMF windows) as independent tasks on Dask.

A campaign spec (TOML, schema ``ionkinetics.campaign/1``, in ``md/``)::

    schema = "ionkinetics.campaign/1"
    name = "crown6-NaCl-KCl-cpu"             # output: md/runs/<name>/ unless --out
    label = "cpu-reduced"                    # optional: calibrations are openmm-<label>-<system>.json

    [membrane]                               # as in MD specs, for every system
    spacing_nm = 1.6
    cells = [2, 1]
    box_z_nm = 6.0

    [run]                                    # RunSettings, except length_ns and seed (the sweep's)
    frame_ps = 10.0
    chunk_frames = 50
    platform = "auto"

    [analysis]
    skip_ns = 0.0

    [[system]]
    id = "crown6:NaCl@1.0+KCl@0.5"
    blockers = ["K+"]                        # the dopant: pores it sits in count as blocked

    [[system]]
    id = "crown6:NaCl@1.0"                   # a carrier-only control (no blockers)

    [sweep]
    biases_v = [0.25, 0.5, 0.75]
    seeds = [1, 2, 3]
    lengths_ns = [2.0]
    protocol = "step"                        # "step": 0 V for rest_ns, V, 0 V for rest_ns; "dc": V throughout
    rest_ns = 0.5

    [[pmf]]                                  # optional: one task per umbrella window
    system = "crown6:KCl@1.0"
    ion = "K+"
    z_min_nm = -0.1
    z_max_nm = 1.2
    spacing_nm = 0.1
    equilibration_steps = 2500
    sampling_steps = 5000
    k_z_kj_per_mol_nm2 = 2000.0
    seed = 1

Every (system, bias, seed, length) is one MD task and every window one PMF task, with an id
that depends only on what the task computes (a readable prefix and a hash of its settings),
so re-planning the same spec gives the same ids and adding a seed adds tasks without renaming
the others. The output folder holds::

    tasks/<task_id>/             an MD run directory (checkpointed, resumable; ``md run`` format)
    pmf/<system>-<ion>/          the windows of one PMF (``window_<i>.npz``, written atomically)
    results/<task_id>.json       the task's result, written atomically when it has finished: the
                                 commit point; a task with a result is never run again
    campaign.json                the last run's table (status, attempts, ns/day per task)
    calibration/, pmf/*/pmf.json what ``campaign collect`` derives

Execution: :func:`run_campaign` submits every task without a result to a Dask cluster — a
``LocalCluster`` of single-threaded worker processes by default, an existing scheduler by
address, or any ``distributed.Client`` (e.g. on a dask-jobqueue ``SLURMCluster``). A task whose
worker dies is rescheduled by Dask and resumes from its last checkpoint; a task that raises is
retried up to ``retries`` times; what still fails is reported and the other tasks' results
are kept. With ``gpus`` > 0 worker *i* uses GPU ``i mod gpus`` (OpenMM ``DeviceIndex``).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import hashlib
import itertools
import json
import math
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from .. import species as _species
from .._checks import bad_argument
from .._io import load_toml_as, save_figure, write_json_atomic
from ..kinetics import protocols as _protocols
from ..md import RunSettings

__all__ = [
    "CAMPAIGN_SCHEMA",
    "Campaign",
    "CampaignError",
    "CampaignReport",
    "Task",
    "TaskStatus",
    "collect_campaign",
    "execute_task",
    "load_campaign",
    "parse_campaign",
    "plan_rows",
    "run_campaign",
]

CAMPAIGN_SCHEMA = "ionkinetics.campaign/1"
DEFAULT_RETRIES = 2
_MEMBRANE_KEYS = {"spacing_nm", "cells", "box_xy_nm", "box_z_nm"}
_RUN_KEYS = {f.name for f in dataclasses.fields(RunSettings)} - {"length_ns", "seed"}
_SWEEP_KEYS = {"biases_v", "seeds", "lengths_ns", "protocol", "rest_ns"}
_PMF_KEYS = {
    "system",
    "ion",
    "z_min_nm",
    "z_max_nm",
    "spacing_nm",
    "equilibration_steps",
    "sampling_steps",
    "k_z_kj_per_mol_nm2",
    "seed",
}
_PMF_DEFAULTS = {"equilibration_steps": 5000, "sampling_steps": 50000, "k_z_kj_per_mol_nm2": 2000.0, "seed": 0}
_TOP_KEYS = {"schema", "name", "label", "note", "membrane", "run", "analysis", "system", "sweep", "pmf"}


class CampaignError(ValueError):
    """A campaign spec that breaks the schema; the message names the field."""


def _bad(field: str, rule: str, value) -> CampaignError:
    return bad_argument(f"campaign field '{field}'", rule, value, CampaignError)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_")


def _digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]


@dataclasses.dataclass(frozen=True)
class Task:
    """One unit of work: ``kind`` "md" (a run) or "pmf" (an umbrella window); ``payload`` is
    everything it computes from (JSON-ready), ``task_id`` a readable prefix plus its hash."""

    task_id: str
    kind: str
    payload: dict

    @property
    def simulated_ns(self) -> float:
        """Simulated time this task asks for, in ns: an MD run's ``length_ns``, or an umbrella window's equilibration
        plus sampling steps times its timestep."""
        if self.kind == "md":
            return float(self.payload["settings"]["length_ns"])
        w = self.payload["window"]
        return (w["equilibration_steps"] + w["sampling_steps"]) * w["timestep_fs"] * 1e-6

    def to_dict(self) -> dict:
        """The task as a JSON-ready mapping (``task_id``, ``kind``, ``payload``), which :meth:`from_dict` reads back."""
        return {"task_id": self.task_id, "kind": self.kind, "payload": self.payload}

    @classmethod
    def from_dict(cls, raw: dict) -> Task:
        """The task written by :meth:`to_dict` (no validation beyond the three keys being present)."""
        return cls(raw["task_id"], raw["kind"], raw["payload"])


@dataclasses.dataclass(frozen=True)
class Campaign:
    """A validated campaign spec expanded into its tasks: the ``[[system]]`` entries (each with its blockers), the
    raw TOML mapping and the file it came from (``None`` when parsed from a mapping)."""

    name: str
    label: str | None
    tasks: tuple[Task, ...]
    systems: tuple[dict, ...]
    raw: dict
    path: str | None

    @property
    def simulated_ns(self) -> float:
        """Simulated time of all the campaign's tasks together, in ns."""
        return float(sum(t.simulated_ns for t in self.tasks))

    def default_out(self) -> Path:
        """Default output folder, ``md/runs/<name>`` (relative to the working directory)."""
        return Path("md") / "runs" / self.name


def _table(raw: dict, key: str, allowed: set) -> dict:
    table = raw.get(key, {})
    if not isinstance(table, dict):
        raise _bad(key, "must be a table", table)
    unknown = set(table) - allowed
    if unknown:
        raise _bad(key, f"has unknown fields {sorted(unknown)}; allowed {sorted(allowed)}", sorted(unknown))
    return dict(table)


def _numbers(field: str, value, *, positive: bool = False, integer: bool = False) -> list:
    if not isinstance(value, list) or not value:
        raise _bad(field, "must be a non-empty list", value)
    out = []
    for x in value:
        ok = isinstance(x, int) if integer else isinstance(x, (int, float))
        if isinstance(x, bool) or not ok or not math.isfinite(x) or (positive and x <= 0) or (integer and x < 0):
            kind = "integers >= 0" if integer else ("numbers > 0" if positive else "finite numbers")
            raise _bad(field, f"must hold {kind}", value)
        out.append(x)
    if len(set(out)) != len(out):
        raise _bad(field, "must not repeat a value", value)
    return out


def _protocol(kind: str, v: float, length_ns: float, rest_ns: float) -> _protocols.Protocol:
    if kind == "dc":
        return _protocols.DC(v=v, duration_ns=length_ns)
    return _protocols.Step(v=v, t_on_ns=rest_ns, t_off_ns=length_ns - rest_ns, duration_ns=length_ns)


def _protocol_dict(kind: str, v: float, length_ns: float, rest_ns: float) -> dict:
    if kind == "dc":
        return {"kind": "dc", "v": v, "duration_ns": length_ns}
    return {"kind": "step", "v": v, "t_on_ns": rest_ns, "t_off_ns": length_ns - rest_ns, "duration_ns": length_ns}


def _campaign_systems(raw: dict) -> list[dict]:
    """``[[system]]``: each id once, with the blockers (cations of that system) the analysis counts."""
    systems_raw = raw.get("system", [])
    if not isinstance(systems_raw, list):
        raise _bad("system", "must be an array of tables ([[system]])", systems_raw)
    systems = []
    for i, s in enumerate(systems_raw):
        if not isinstance(s, dict) or set(s) - {"id", "blockers"}:
            raise _bad(f"system[{i}]", "must be a table with 'id' and optional 'blockers'", s)
        try:
            sid = _species.parse_system_id(s.get("id"))
        except (TypeError, ValueError) as exc:
            raise CampaignError(f"campaign field 'system[{i}].id': {exc}") from None
        blockers = s.get("blockers", [])
        if not isinstance(blockers, list) or any(b not in sid.cation_molar for b in blockers):
            raise _bad(f"system[{i}].blockers", f"must list cations of {sid} ({', '.join(sid.cation_molar)})", blockers)
        systems.append({"id": str(sid), "blockers": list(blockers)})
    if len({s["id"] for s in systems}) != len(systems):
        raise _bad("system", "must list each system id once", [s["id"] for s in systems])
    return systems


def _md_tasks(raw: dict, systems: list[dict], membrane: dict, run: dict, skip: float) -> list[Task]:
    """One MD task per system × length × bias × seed of ``[sweep]``, each checked by building its settings
    and sampling its protocol."""
    sweep = _table(raw, "sweep", _SWEEP_KEYS)
    biases = _numbers("sweep.biases_v", sweep.get("biases_v"))
    seeds = _numbers("sweep.seeds", sweep.get("seeds"), integer=True)
    lengths = _numbers("sweep.lengths_ns", sweep.get("lengths_ns"), positive=True)
    kind = sweep.get("protocol", "step")
    if kind not in ("step", "dc"):
        raise _bad("sweep.protocol", "must be 'step' or 'dc'", kind)
    rest = sweep.get("rest_ns", 0.0)
    if kind == "step" and (isinstance(rest, bool) or not isinstance(rest, (int, float)) or not 0 < 2 * rest < min(lengths)):
        raise _bad("sweep.rest_ns", "must be > 0 and leave time at bias (2·rest_ns < every length)", rest)
    tasks = []
    for s, length, v, seed in itertools.product(systems, lengths, biases, seeds):
        try:
            settings = RunSettings(length_ns=float(length), seed=int(seed), **run)
            proto = _protocol(kind, float(v), float(length), float(rest))
            proto.sample(settings.frame_ps / 1000.0)
        except (TypeError, ValueError) as exc:
            raise CampaignError(f"campaign fields [run]/[sweep] (length {length} ns, V {v}): {exc}") from None
        payload = {
            "system": s["id"],
            "membrane": membrane,
            "settings": dataclasses.asdict(settings),
            "protocol": _protocol_dict(kind, float(v), float(length), float(rest)),
            "analysis": {"blockers": s["blockers"], "skip_ns": float(skip)},
        }
        tid = f"md-{_slug(s['id'])}-{v:+.3f}V-s{seed}-{length:g}ns-{_digest(payload)}"
        tasks.append(Task(tid, "md", payload))
    return tasks


def _pmf_tasks(raw: dict, membrane: dict, run: dict) -> list[Task]:
    """One umbrella-window task per window of each ``[[pmf]]`` (defaults ``_PMF_DEFAULTS``)."""
    from ..md import WindowSettings, window_centres_nm

    pmfs = raw.get("pmf", [])
    if not isinstance(pmfs, list):
        raise _bad("pmf", "must be an array of tables ([[pmf]])", pmfs)
    tasks = []
    for i, p in enumerate(pmfs):
        p = _table({"pmf": p}, "pmf", _PMF_KEYS)
        where = f"pmf[{i}]"
        try:
            sid = _species.parse_system_id(p.get("system"))
        except (TypeError, ValueError) as exc:
            raise CampaignError(f"campaign field '{where}.system': {exc}") from None
        ion = p.get("ion")
        if ion not in (*sid.cation_molar, "Cl-"):
            raise _bad(f"{where}.ion", f"must be an ion of {sid}", ion)
        merged = {**_PMF_DEFAULTS, **p}
        try:
            centres = window_centres_nm(float(merged["z_min_nm"]), float(merged["z_max_nm"]), float(merged["spacing_nm"]))
            window = WindowSettings(
                k_z_kj_per_mol_nm2=float(merged["k_z_kj_per_mol_nm2"]),
                equilibration_steps=int(merged["equilibration_steps"]),
                sampling_steps=int(merged["sampling_steps"]),
                seed=int(merged["seed"]),
                platform=run.get("platform", "auto"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CampaignError(f"campaign field '{where}': {exc}") from None
        folder = f"{_slug(str(sid))}-{_slug(ion)}"
        for w, z0 in enumerate(centres):
            payload = {
                "system": str(sid),
                "membrane": membrane,
                "ion": ion,
                "window_index": w,
                "z0_nm": float(z0),
                "window": dataclasses.asdict(window),
                "folder": folder,
            }
            tasks.append(Task(f"pmf-{folder}-w{w:03d}-{_digest(payload)}", "pmf", payload))
    return tasks


def parse_campaign(raw: dict, *, path: str | None = None) -> Campaign:
    """Validate a campaign mapping (as read from TOML) and expand it into tasks."""
    if raw.get("schema") != CAMPAIGN_SCHEMA:
        raise _bad("schema", f"must be {CAMPAIGN_SCHEMA!r}", raw.get("schema"))
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise _bad("(top level)", f"has unknown fields {sorted(unknown)}; allowed {sorted(_TOP_KEYS)}", sorted(unknown))
    name = raw.get("name", Path(path).stem if path else None)
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise _bad("name", "must be a plain directory name", name)
    label = raw.get("label")
    if label is not None and (not isinstance(label, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]*", label)):
        raise _bad("label", "must be letters, digits, '.' and '-' (it goes into file names)", label)
    membrane = _table(raw, "membrane", _MEMBRANE_KEYS)
    for key in ("cells", "box_xy_nm"):
        if key in membrane:
            membrane[key] = list(membrane[key])
    run = _table(raw, "run", _RUN_KEYS)
    analysis = _table(raw, "analysis", {"skip_ns"})
    skip = analysis.get("skip_ns", 0.0)
    if isinstance(skip, bool) or not isinstance(skip, (int, float)) or skip < 0:
        raise _bad("analysis.skip_ns", "must be a number >= 0", skip)
    systems = _campaign_systems(raw)
    tasks = _md_tasks(raw, systems, membrane, run, skip) if systems else []
    tasks += _pmf_tasks(raw, membrane, run)
    if not tasks:
        raise CampaignError("a campaign needs [[system]] entries with a [sweep], or [[pmf]] entries; it has neither")
    return Campaign(name, label, tuple(tasks), tuple(systems), raw, path)


def load_campaign(path) -> Campaign:
    """Read and validate a campaign TOML file and expand it into tasks (:func:`parse_campaign`)."""
    return load_toml_as(path, "campaign spec", CampaignError, parse_campaign)


# ---------------------------------------------------------------------------------------------
# one task
# ---------------------------------------------------------------------------------------------


def _result_path(out: Path, task_id: str) -> Path:
    return out / "results" / f"{task_id}.json"


def _frames_sha256(run_dir: Path) -> str:
    import numpy as np

    h = hashlib.sha256()
    for chunk in sorted((run_dir / "frames").glob("chunk_*.npz")):
        with np.load(chunk) as z:
            for key in ("positions_nm", "t_ns", "v"):
                h.update(np.ascontiguousarray(z[key]).tobytes())
    return h.hexdigest()


def _worker_name() -> str | None:
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except (ImportError, ValueError):
        return None


def _use_gpu_of_worker() -> None:
    """With ``IONKINETICS_GPUS`` = n > 0 in the worker's environment, worker i uses device i mod n."""
    n = int(os.environ.get("IONKINETICS_GPUS", "0") or 0)
    name = _worker_name()
    if n > 0 and name is not None and name.isdigit():
        os.environ["IONKINETICS_DEVICE_INDEX"] = str(int(name) % n)


_SEGMENT_KEYS = (
    "v",
    "t_start_ns",
    "t_stop_ns",
    "w_mean",
    "conductance_ps",
    "current_pa",
    "trap_rate_per_ns",
    "escape_rate_per_ns",
    "n_trap_events",
    "n_escape_events",
)


def _execute_md(t: Task, out: Path, membrane: dict) -> tuple[dict, dict]:
    """Run (or resume) an MD task and analyse it; returns (result, execution)."""
    from ..md import analyze_run, build_system, run_md

    p = t.payload
    settings = RunSettings(**p["settings"])
    proto = _protocol(p["protocol"]["kind"], p["protocol"]["v"], settings.length_ns, p["protocol"].get("t_on_ns", 0.0))
    built = build_system(p["system"], seed=settings.seed, **membrane)
    run_dir = out / "tasks" / t.task_id
    spec = {"system": p["system"], "analysis": p["analysis"], "membrane": p["membrane"], "task_id": t.task_id}
    ran = run_md(built, proto, settings, run_dir, spec=spec)
    analysis = analyze_run(run_dir, blockers=p["analysis"]["blockers"], skip_ns=p["analysis"]["skip_ns"])
    result = {
        "run_dir": str(run_dir),
        "frames": ran.frames_done,
        "frames_sha256": _frames_sha256(run_dir),
        "segments": [{k: seg.raw.get(k) for k in _SEGMENT_KEYS} for seg in analysis.segments],
    }
    rate = ran.ns_per_day if math.isfinite(ran.ns_per_day) else None  # nothing left to run: no rate
    return result, {"platform": ran.platform, "ns_per_day": rate, "resumed_from_frame": ran.resumed_from_frame}


def _execute_pmf(t: Task, out: Path, membrane: dict) -> tuple[dict, dict]:
    """Run one umbrella window (or find it finished); returns (result, execution)."""
    import numpy as np

    from ..md import WindowSettings, build_system, load_window, run_window

    p = t.payload
    window = WindowSettings(**p["window"])
    built = build_system(p["system"], seed=window.seed, **membrane)
    ions = [int(i) for i, s in zip(built.ion_indices, built.ion_species, strict=True) if s == p["ion"]]
    wpath, ran = run_window(built, ions[0], p["window_index"], p["z0_nm"], window, out / "pmf" / p["folder"])
    data = load_window(wpath)
    result = {
        "window_file": str(wpath),
        "samples": int(np.asarray(data["z_nm"]).size),
        "z_mean_nm": float(np.mean(data["z_nm"])),
        "z_sha256": hashlib.sha256(np.ascontiguousarray(data["z_nm"]).tobytes()).hexdigest(),
    }
    wall = float(np.asarray(data["wall_s"]))
    execution = {
        "platform": str(np.asarray(data["platform"])),
        "ns_per_day": t.simulated_ns / wall * 86400.0 if wall > 0 else None,
        "ran_now": ran,
    }
    return result, execution


def execute_task(task: dict, out_dir: str) -> dict:
    """Run one task (a :meth:`Task.to_dict`) into ``out_dir`` and write its result atomically.

    Idempotent: a task with a result returns it untouched; an interrupted MD task resumes from
    its last checkpoint; a finished PMF window is not re-run. Safe to call from any process."""
    out = Path(out_dir)
    t = Task.from_dict(task)
    path = _result_path(out, t.task_id)
    if path.exists():
        return json.loads(path.read_text())
    if t.kind not in ("md", "pmf"):
        raise ValueError(f"task kind must be 'md' or 'pmf'; got {t.kind!r}")
    _use_gpu_of_worker()
    membrane = {k: tuple(v) if isinstance(v, list) else v for k, v in t.payload["membrane"].items()}
    start = time.perf_counter()
    result, execution = (_execute_md if t.kind == "md" else _execute_pmf)(t, out, membrane)
    record = {
        **t.to_dict(),
        "simulated_ns": t.simulated_ns,
        "result": result,
        "execution": {
            **execution,
            "worker": _worker_name(),
            "wall_s": time.perf_counter() - start,
            "finished_utc": datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
        },
    }
    write_json_atomic(path, record)
    return record


# ---------------------------------------------------------------------------------------------
# a campaign on Dask
# ---------------------------------------------------------------------------------------------


class TaskStatus(enum.StrEnum):
    """What became of a task in one :func:`run_campaign` call (a ``str``: JSON and ``== "done"`` work)."""

    DONE = "done"  # ran now and wrote its result
    SKIPPED = "skipped"  # had a result already
    FAILED = "failed"  # its own error after the retries, a killed worker, or a cluster left with no worker


@dataclasses.dataclass(frozen=True)
class CampaignReport:
    """What one :func:`run_campaign` call did: one row per task (``task_id``, ``kind``, ``status``, ``simulated_ns``, ...),
    the output folder, the call's wall time in s and the number of Dask workers."""

    out_dir: Path
    rows: tuple[dict, ...]  # task_id, kind, status (a TaskStatus), simulated_ns, ...
    wall_s: float
    n_workers: int | None

    @property
    def failed(self) -> list[dict]:
        """The rows of the tasks whose status is :attr:`TaskStatus.FAILED`."""
        return [r for r in self.rows if r["status"] == TaskStatus.FAILED]

    @property
    def throughput_ns_per_day(self) -> float:
        """Simulated ns of the tasks run now, per day of wall time of this call."""
        ns = sum(r["simulated_ns"] for r in self.rows if r["status"] == TaskStatus.DONE)
        return ns / self.wall_s * 86400.0 if self.wall_s > 0 else float("nan")


NO_WORKER_TIMEOUT_S = 600.0  # a cluster with no worker this long is not coming back by itself
_WORKER_POLL_S = 1.0


def _local_cluster(n_workers: int, gpus: int):
    from distributed import LocalCluster

    threads = max(1, (os.cpu_count() or 1) // max(n_workers, 1))
    env = {"OPENMM_CPU_THREADS": str(threads), "IONKINETICS_GPUS": str(gpus), "OMP_NUM_THREADS": "1"}
    return LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0", env=env, silence_logs=40
    )


def _task_row(t, status: TaskStatus, **extra) -> dict:
    return {"task_id": t.task_id, "kind": t.kind, "simulated_ns": t.simulated_ns, "status": status, **extra}


def _check_run_arguments(client, scheduler, n_workers, gpus, retries, no_worker_timeout_s) -> None:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an integer >= 0; got {retries!r}")
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
        raise ValueError(f"gpus must be an integer >= 0; got {gpus!r}")
    if n_workers is not None and (isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1):
        raise ValueError(f"n_workers must be an integer >= 1; got {n_workers!r}")
    if client is not None and scheduler is not None:
        raise ValueError("give client or scheduler, not both")
    if isinstance(no_worker_timeout_s, bool) or not isinstance(no_worker_timeout_s, (int, float)) or not no_worker_timeout_s > 0:
        raise ValueError(f"no_worker_timeout_s must be a number > 0 (seconds); got {no_worker_timeout_s!r}")


def _finished_row(t, future) -> dict:
    """The row of a task whose future is done: its execution record's figures, or its error."""
    try:
        record = future.result()
    except Exception as exc:  # the task's own error after its retries, or KilledWorker
        return _task_row(t, TaskStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
    row = _task_row(t, TaskStatus.DONE, **{k: record["execution"].get(k) for k in ("platform", "ns_per_day", "worker", "wall_s")})
    if t.kind == "md":
        row["resumed_from_frame"] = record["execution"].get("resumed_from_frame")
    return row


def _collect(client, futures: dict, finish: Callable, no_worker_timeout_s: float) -> None:
    """Call ``finish(task, row)`` as each future ends; a cluster with no worker for ``no_worker_timeout_s``
    fails the unfinished tasks (their committed work is kept) instead of waiting for ever."""
    from distributed import as_completed

    ac = as_completed(futures)
    alone_since, checked = None, 0.0  # since when the cluster has had no worker
    while not ac.is_empty():
        batch = ac.next_batch(block=False)
        for future in batch:
            finish(futures[future], _finished_row(futures[future], future))
        if batch:
            continue
        now = time.monotonic()
        if now - checked >= _WORKER_POLL_S:
            checked = now
            if client.scheduler_info().get("workers"):
                alone_since = None
            elif alone_since is None:
                alone_since = now
            elif now - alone_since > no_worker_timeout_s:
                left = [f for f in futures if not f.done()]
                error = (
                    f"NoWorker: the cluster had no worker for {no_worker_timeout_s:g} s (its workers died and "
                    "none replaced them); work committed so far is kept: run the campaign again to resume"
                )
                for f in left:
                    finish(futures[f], _task_row(futures[f], TaskStatus.FAILED, error=error))
                client.cancel(left)
                return
        time.sleep(0.05)


def run_campaign(
    campaign: Campaign,
    *,
    out_dir=None,
    client=None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    gpus: int = 0,
    retries: int = DEFAULT_RETRIES,
    progress: Callable[[dict], None] | None = None,
    no_worker_timeout_s: float = NO_WORKER_TIMEOUT_S,
) -> CampaignReport:
    """Run every task of ``campaign`` that has no result yet; returns a :class:`CampaignReport`
    and writes it to ``out_dir/campaign.json``. ``client`` (a ``distributed.Client``) or
    ``scheduler`` (an address) uses an existing cluster; otherwise a ``LocalCluster`` of
    ``n_workers`` processes (default: one per core, or one per GPU) runs and is closed after.
    ``progress(row)`` is called as each task ends. A worker that dies is replaced (the LocalCluster's
    nanny restarts it) and its task resumes from its checkpoint; a cluster left with no worker for
    ``no_worker_timeout_s`` reports the unfinished tasks failed instead of waiting for ever."""
    from distributed import Client

    _check_run_arguments(client, scheduler, n_workers, gpus, retries, no_worker_timeout_s)
    out = Path(out_dir) if out_dir is not None else campaign.default_out()
    (out / "results").mkdir(parents=True, exist_ok=True)
    rows = {}
    pending = []
    for t in campaign.tasks:
        if _result_path(out, t.task_id).exists():
            rows[t.task_id] = _task_row(t, TaskStatus.SKIPPED, attempts=0)
        else:
            pending.append(t)

    def finish(t, row):
        rows[t.task_id] = row
        if progress is not None:
            progress(row)

    own = None
    start = time.perf_counter()
    workers = None
    try:
        if pending:
            if client is None:
                if scheduler is not None:
                    client = own = Client(scheduler)
                else:
                    workers = n_workers or (gpus if gpus else min(os.cpu_count() or 1, len(pending)))
                    client = own = Client(_local_cluster(workers, gpus))
            futures = {
                client.submit(
                    execute_task, t.to_dict(), str(out.resolve()), key=f"ionkinetics-{t.task_id}", retries=retries, pure=False
                ): t
                for t in pending
            }
            _collect(client, futures, finish, no_worker_timeout_s)
    finally:
        if own is not None:
            cluster = getattr(own, "cluster", None)
            own.close()
            if cluster is not None:
                cluster.close()
    ordered = tuple(rows[t.task_id] for t in campaign.tasks)
    report = CampaignReport(out, ordered, time.perf_counter() - start, workers)
    write_json_atomic(
        out / "campaign.json",
        {
            "schema": "ionkinetics.campaign-report/1",
            "campaign": campaign.name,
            "spec": campaign.path,
            "wall_s": report.wall_s,
            "n_workers": workers,
            "throughput_ns_per_day": report.throughput_ns_per_day,
            "tasks": list(ordered),
        },
    )
    return report


# ---------------------------------------------------------------------------------------------
# collect: results → calibrations and PMFs
# ---------------------------------------------------------------------------------------------


def collect_campaign(
    campaign: Campaign, *, out_dir=None, calibration_dir=None, refine: bool = False, n_bootstrap: int = 200
) -> dict:
    """Gather finished results: a calibration per mixture system (its runs and the carrier-only
    controls of the same pore) and a PMF per [[pmf]] entry. Missing tasks are listed, not run.
    Calibrations go to ``calibration_dir`` (default ``out_dir/calibration``) as
    ``openmm-<system>.json``."""
    from ..calibrate import calibrate_from_runs, list_calibrations, load_calibration, save_calibration, summarise_calibration
    from ..md import analyze_windows, plot_pmf

    out = Path(out_dir) if out_dir is not None else campaign.default_out()
    cal_dir = Path(calibration_dir) if calibration_dir is not None else out / "calibration"
    done = {t.task_id: _result_path(out, t.task_id) for t in campaign.tasks if _result_path(out, t.task_id).exists()}
    missing = [t.task_id for t in campaign.tasks if t.task_id not in done]
    if not done:  # nothing to collect is an error, not an empty success (and nothing is written)
        raise ValueError(
            f"campaign {campaign.name}: nothing to collect in {str(out)!r} ({len(missing)} of {len(campaign.tasks)} tasks "
            "have no result); run the campaign first (`ionkinetics campaign run SPEC`)"
        )
    summary = {"missing": missing, "calibrations": [], "failed": [], "comparison": [], "pmfs": []}
    md_tasks = [t for t in campaign.tasks if t.kind == "md" and t.task_id in done]
    by_system: dict[str, list[Task]] = {}
    for t in md_tasks:
        by_system.setdefault(t.payload["system"], []).append(t)
    for system, tasks in by_system.items():
        sid = _species.parse_system_id(system)
        if len(sid.cation_molar) < 2:
            continue
        blockers = tasks[0].payload["analysis"]["blockers"]
        carriers = [c for c in sid.cation_molar if c not in blockers]
        controls = [
            t
            for other, ts in by_system.items()
            for t in ts
            if _species.parse_system_id(other).pore == sid.pore
            and tuple(_species.parse_system_id(other).cation_molar) == tuple(carriers)
        ]
        run_dirs = [out / "tasks" / t.task_id for t in [*tasks, *controls]]
        try:
            cal = calibrate_from_runs(
                run_dirs,
                refine=refine,
                n_bootstrap=n_bootstrap,
                command=f"ionkinetics campaign collect {campaign.path or campaign.name}",
            )
        except ValueError as exc:  # too few events or no current: reported; the other systems go on
            summary["failed"].append({"system": system, "runs": [str(r) for r in run_dirs], "error": str(exc)})
            continue
        name = "-".join(["openmm", *([campaign.label] if campaign.label else []), _slug(system).replace("_", "-")])
        path = save_calibration(cal, cal_dir / f"{name}.json")
        summary["calibrations"].append({"system": system, "path": str(path), "runs": len(tasks), "controls": len(controls)})
        summary["comparison"].append({"source": name, **summarise_calibration(cal)})
        if system in list_calibrations():
            summary["comparison"].append({"source": "published", **summarise_calibration(load_calibration(system))})
    pmf_folders = sorted({t.payload["folder"] for t in campaign.tasks if t.kind == "pmf"})
    for folder in pmf_folders:
        windows = [t for t in campaign.tasks if t.kind == "pmf" and t.payload["folder"] == folder]
        if any(t.task_id not in done for t in windows):
            continue
        target = out / "pmf" / folder
        result = analyze_windows(target)
        write_json_atomic(target / "pmf.json", result.summary())
        label = f"{windows[0].payload['ion']} through {windows[0].payload['system'].split(':')[0]}"
        figure = save_figure(plot_pmf(result, label=label), target / "pmf.png")  # format: ionkinetics._io.figure_output
        numbers = result.summary()
        summary["pmfs"].append(
            {
                "folder": str(target),
                "figure": figure.name,
                **{k: numbers[k] for k in ("barrier_kt", "well_kt", "barrier_z_nm", "well_z_nm")},
            }
        )
    write_json_atomic(out / "collect.json", summary)
    return summary


def plan_rows(campaign: Campaign, out_dir=None) -> list[dict]:
    """One row per task: id, kind, system, bias or window, seed, simulated ns, done or not."""
    out = Path(out_dir) if out_dir is not None else campaign.default_out()
    rows = []
    for t in campaign.tasks:
        p = t.payload
        if t.kind == "md":
            what = f"{p['protocol']['kind']} {p['protocol']['v']:+g} V"
            seed = p["settings"]["seed"]
        else:
            what = f"{p['ion']} window {p['window_index']} at z = {p['z0_nm']:+.2f} nm"
            seed = p["window"]["seed"]
        rows.append(
            {
                "task_id": t.task_id,
                "kind": t.kind,
                "system": p["system"],
                "what": what,
                "seed": seed,
                "simulated_ns": t.simulated_ns,
                "done": _result_path(out, t.task_id).exists(),
            }
        )
    return rows
