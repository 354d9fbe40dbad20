"""Task files (TOML, schema ``ionkinetics.task/1``): a benchmark, the reservoir that computes it,
the baselines' search grids and, optionally, an inverse design.

::

    schema = "ionkinetics.task/1"
    name = "narma10"
    description = "NARMA-10 on 20 membranes"
    seed = 0                          # series, input mask, ESN weights, stochastic pores

    [task]
    kind = "narma10"                  # narma10 | mackey-glass | waveform
    washout = 200                     # input steps dropped before the splits
    train = 2000                      # steps (waveform: periods) in each split
    val = 400
    test = 1000
    # mackey-glass: tau = 17.0, sample_interval = 1.0, dt = 0.1, horizon_steps = 1; waveform: period = 8

    [reservoir]
    hold_ns = 0.5                     # each virtual node's hold time
    virtual_nodes = 2                 # M hold intervals per input step
    read_nodes = 1                    # the last read_nodes intervals hold v_bias_v (mask 0): a read
    mask = "binary"                   # binary (±1) | uniform (on [−1, 1])
    v_bias_v = 0.3                    # defaults for every membrane
    v_span_v = 0.2
    n_pores = 10000
    fano = 1.0                        # shot noise of the ions counted: variance = fano × count
    stochastic = true                 # also run stochastic pores + shot noise
    membranes = ["crown6:NaCl@1.0+KCl@0.1", {system = "B3N:KCl@1.0+RbCl@0.3", n_pores = 20000}]

    # kind = "delay": each membrane is the node of its own delayed-feedback loop (DelayReservoir)
    # kind = "delay"
    # input_gain = 0.05               # γ: drive = γ·mask·u + η·x(g − D), clipped to [−1, 1]
    # feedback_gain = 0.7             # η: gain of the delayed feedback of the measured current
    # delay_nodes = 26                # D: loop delay in hold intervals (default virtual_nodes)
    # shared_resistance_ohm = 69.4    # optional: the loops' membranes share node c, R_c ∥ C_c to ground
    # shared_capacitance_f = 1.44e-8  # (τ_c = R_c·C_c ≥ hold_ns); absent or 0: uncoupled loops

    [readout]
    ridge = [1e-10, 1e-8, 1e-6, 1e-4, 1e-2]   # chosen on the validation split

    [select]                          # optional (kind = "delay"): γ and η chosen on the validation
    input_gain = [0.03, 0.06]         # split (mean-field), over this grid; the file's values are
    feedback_gain = [0.6, 0.7, 0.8]   # then only the defaults
    stochastic = false                # also choose them again on the stochastic device's validation score

    [esn]                             # optional: the grid searched on the validation split
    spectral_radius = [0.3, 0.6, 0.9, 1.0, 1.2]
    input_scaling = [0.1, 0.3, 1.0]
    leak = [0.3, 0.6, 1.0]

    [design]                          # optional: inverse design by gradient
    steps = 30
    learning_rate = 0.1
    molar_range = [0.02, 2.0]
    ridge = 1e-6
    train = 1200                      # the (shorter) series the gradient loop sees
    val = 400
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Literal, overload

from .._checks import bad_argument, check_real
from .._io import load_toml_as, shipped_dir
from ._esn import ESN_GRID
from ._reservoir import MembraneSpec

__all__ = ["TASK_KINDS", "TASK_SCHEMA", "TaskFile", "TaskFileError", "list_tasks", "load_task", "parse_task", "tasks_dir"]

TASK_SCHEMA = "ionkinetics.task/1"
TASK_KINDS = ("narma10", "mackey-glass", "waveform")
MAX_STEPS = 200_000  # input steps in all splits together: features are kept in memory
DEFAULT_RIDGES = (1e-12, 1e-10, 1e-8, 1e-6, 1e-4, 1e-2, 1.0)


class TaskFileError(ValueError):
    """A task file that breaks the schema; the message names the field, the rule and the value."""


@dataclasses.dataclass(frozen=True)
class TaskFile:
    """A validated task file: the benchmark (``[task]``), the membranes and ``[reservoir]`` settings, the ridge and ESN
    search grids, the optional ``[design]`` and ``[select]`` tables, the seed and the file it came from."""

    name: str
    description: str
    seed: int
    task: dict
    membranes: tuple
    reservoir: dict
    ridges: tuple
    esn_grid: dict
    design: dict | None
    path: str | None
    select: dict | None = None


def _err(field: str, rule: str, value) -> TaskFileError:
    return bad_argument(f"field {field!r}", rule, value, TaskFileError)


def _int(raw: dict, key: str, where: str, default=None, lo: int = 1) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise _err(f"{where}.{key}" if where else key, f"must be an integer >= {lo}", value)
    return value


def _num(raw: dict, key: str, where: str, default=None, *, lo=None, hi=None, positive=False) -> float:
    name = f"field {f'{where}.{key}'!r}"
    return check_real(
        name, raw.get(key, default), positive=positive, minimum=lo, maximum=hi, error=TaskFileError, numpy_scalars=False
    )


@overload
def _table(raw: dict, key: str, allowed, *, required: Literal[True]) -> dict: ...
@overload
def _table(raw: dict, key: str, allowed, *, required: bool = False) -> dict | None: ...
def _table(raw: dict, key: str, allowed, *, required: bool = False) -> dict | None:
    """``[key]`` of the file checked for unknown fields; None where it is absent (refused where ``required``)."""
    value = raw.get(key)
    if value is None:
        if required:
            raise TaskFileError(f"task file needs a [{key}] table")
        return None
    if not isinstance(value, dict):
        raise _err(key, "must be a table", value)
    unknown = set(value) - set(allowed)
    if unknown:
        raise TaskFileError(
            f"[{key}] has unknown fields {sorted(unknown)} (a misspelt key would be ignored); allowed: {sorted(allowed)}"
        )
    return value


def _grid(raw: dict, key: str, where: str, default) -> tuple:
    value = raw.get(key, list(default))
    if not (isinstance(value, list) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise _err(f"{where}.{key}", "must be a non-empty list of numbers", value)
    if not all(math.isfinite(v) and v >= 0 for v in value):
        raise _err(f"{where}.{key}", "must hold finite numbers >= 0", value)
    return tuple(float(v) for v in value)


_TASK_KEYS = {
    "narma10": {"kind", "washout", "train", "val", "test"},
    "mackey-glass": {"kind", "washout", "train", "val", "test", "tau", "sample_interval", "dt", "horizon_steps"},
    "waveform": {"kind", "washout", "train", "val", "test", "period"},
}
_RES_KEYS = {
    "kind",
    "input_gain",
    "feedback_gain",
    "delay_nodes",
    "shared_resistance_ohm",
    "shared_capacitance_f",
    "hold_ns",
    "virtual_nodes",
    "read_nodes",
    "mask",
    "v_bias_v",
    "v_span_v",
    "n_pores",
    "fano",
    "stochastic",
    "membranes",
}
_MEM_KEYS = {"system", "n_pores", "v_bias_v", "v_span_v"}


def _membrane(i: int, raw, defaults: dict) -> MembraneSpec:
    where = f"reservoir.membranes[{i}]"
    if isinstance(raw, str):
        raw = {"system": raw}
    if not isinstance(raw, dict):
        raise _err(where, "must be a system id string or a table {system = ..., n_pores = ...}", raw)
    unknown = set(raw) - _MEM_KEYS
    if unknown:
        raise TaskFileError(f"{where} has unknown fields {sorted(unknown)}; allowed: {sorted(_MEM_KEYS)}")
    system = raw.get("system")
    if not isinstance(system, str) or not system:
        raise _err(f"{where}.system", "must be a system id such as 'crown6:NaCl@1.0+KCl@0.5'", system)
    merged = {**defaults, **raw}
    spec = MembraneSpec(
        system=system,
        n_pores=_num(merged, "n_pores", where, lo=1.0),
        v_bias_v=_num(merged, "v_bias_v", where, lo=0.0),
        v_span_v=_num(merged, "v_span_v", where, lo=0.0),
    )
    try:
        cal = spec.calibration()
    except (ValueError, FileNotFoundError) as exc:
        raise TaskFileError(f"{where}.system: unknown or invalid system {system!r}: {exc}") from None
    if len(cal.dopants) > 1:
        raise _err(f"{where}.system", "must have at most one dopant salt (its molarity is the design variable)", system)
    top = cal.data_range_v[1] if cal.data_range_v else 0.5
    v_max = spec.v_bias_v + spec.v_span_v
    if v_max > top + 1e-12:
        raise _err(
            f"{where}.v_bias_v + v_span_v",
            f"must stay within the {top:g} V the calibration's data cover ({system}); lower the bias or the span",
            v_max,
        )
    if spec.v_span_v > spec.v_bias_v:
        raise _err(
            f"{where}.v_span_v", f"must be <= v_bias_v ({spec.v_bias_v:g} V) so the drive keeps one polarity", spec.v_span_v
        )
    return spec


def _task_table(raw: dict, kind: str) -> dict:
    """``[task]``: the series' kind, split lengths and the kind's own settings, checked."""
    task = _table(raw, "task", _TASK_KEYS[kind], required=True)
    t = {"kind": kind, "washout": _int(task, "washout", "task", default=100, lo=0)}
    for key in ("train", "val", "test"):
        t[key] = _int(task, key, "task")
    if kind == "mackey-glass":
        t["tau"] = _num(task, "tau", "task", 17.0, positive=True)
        t["sample_interval"] = _num(task, "sample_interval", "task", 1.0, positive=True)
        t["dt"] = _num(task, "dt", "task", 0.1, positive=True)
        t["horizon_steps"] = _int(task, "horizon_steps", "task", default=1)
        for key in ("tau", "sample_interval"):
            ratio = t[key] / t["dt"]
            if abs(ratio - round(ratio)) > 1e-9:
                raise _err(f"task.{key}", f"must be a whole multiple of task.dt = {t['dt']:g}", t[key])
    if kind == "waveform":
        t["period"] = _int(task, "period", "task", default=8, lo=4)
        if t["period"] % 2:
            raise _err("task.period", "must be even (a square wave is half +1, half −1)", t["period"])
    steps = (t["washout"] + t["train"] + t["val"] + t["test"]) * (t.get("period", 1))
    if steps > MAX_STEPS:
        raise _err("task.washout + train + val + test", f"must be at most {MAX_STEPS} input steps in all", steps)
    return t


def _reservoir_table(raw: dict) -> tuple[dict, tuple]:
    """``[reservoir]``: the multiplexing settings and the membranes (system ids or tables), checked."""
    res = _table(raw, "reservoir", _RES_KEYS, required=True)
    r = {
        "hold_ns": _num(res, "hold_ns", "reservoir", positive=True),
        "virtual_nodes": _int(res, "virtual_nodes", "reservoir"),
        "read_nodes": _int(res, "read_nodes", "reservoir", default=0, lo=0),
        "fano": _num(res, "fano", "reservoir", 1.0, lo=0.0),
        "mask": res.get("mask", "binary"),
        "stochastic": res.get("stochastic", True),
    }
    r["kind"] = res.get("kind", "parallel")
    if r["kind"] not in ("parallel", "delay"):
        raise _err("reservoir.kind", "must be 'parallel' or 'delay'", r["kind"])
    if r["kind"] == "delay":
        r["input_gain"] = _num(res, "input_gain", "reservoir", lo=0.0)
        r["feedback_gain"] = _num(res, "feedback_gain", "reservoir", lo=0.0)
        r["delay_nodes"] = _int(res, "delay_nodes", "reservoir", default=r["virtual_nodes"])
        r["shared_resistance_ohm"] = _num(res, "shared_resistance_ohm", "reservoir", 0.0, lo=0.0)
        r["shared_capacitance_f"] = _num(res, "shared_capacitance_f", "reservoir", 0.0, lo=0.0)
        tau_ns = r["shared_resistance_ohm"] * r["shared_capacitance_f"] * 1e9
        if r["shared_resistance_ohm"] > 0 and tau_ns < r["hold_ns"]:
            rule = f"must make the shared node's R_c·C_c >= hold_ns = {r['hold_ns']:g} ns (it is {tau_ns:.3g} ns)"
            raise _err("reservoir.shared_capacitance_f", rule, r["shared_capacitance_f"])
    else:
        extra = sorted({"input_gain", "feedback_gain", "delay_nodes", "shared_resistance_ohm", "shared_capacitance_f"} & set(res))
        if extra:
            raise _err("reservoir.kind", f"must be 'delay' for the fields {extra}", r["kind"])
    if r["mask"] not in ("binary", "uniform"):
        raise _err("reservoir.mask", "must be 'binary' or 'uniform'", r["mask"])
    if not isinstance(r["stochastic"], bool):
        raise _err("reservoir.stochastic", "must be true or false", r["stochastic"])
    if r["read_nodes"] >= r["virtual_nodes"]:
        raise _err(
            "reservoir.read_nodes",
            f"must be < virtual_nodes = {r['virtual_nodes']} (a step needs a write interval)",
            r["read_nodes"],
        )
    defaults = {"n_pores": res.get("n_pores", 1e4), "v_bias_v": res.get("v_bias_v", 0.3), "v_span_v": res.get("v_span_v", 0.2)}
    rows = res.get("membranes")
    if not isinstance(rows, list) or not rows:
        raise _err("reservoir.membranes", "must be a non-empty list of system ids or tables", rows)
    membranes = tuple(_membrane(i, row, defaults) for i, row in enumerate(rows))
    return r, membranes


def _design_table(raw: dict, kind: str, t: dict, membranes) -> dict | None:
    """``[design]`` (regression tasks only): the optimiser's settings and the molarity range, checked."""
    design = _table(raw, "design", {"steps", "learning_rate", "molar_range", "ridge", "train", "val"})
    if design is not None:
        if kind == "waveform":
            raise TaskFileError("[design] is for regression tasks (narma10, mackey-glass); got task.kind = 'waveform'")
        mr = design.get("molar_range", [0.02, 2.0])
        if not (
            isinstance(mr, list)
            and len(mr) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in mr)
            and 0 < mr[0] < mr[1]
            and math.isfinite(mr[1])
        ):
            raise _err("design.molar_range", "must be [lo, hi] molar with 0 < lo < hi", mr)
        design = {
            "steps": _int(design, "steps", "design", default=30),
            "learning_rate": _num(design, "learning_rate", "design", 0.1, positive=True),
            "molar_range": (float(mr[0]), float(mr[1])),
            "ridge": _num(design, "ridge", "design", 1e-6, positive=True),
            "train": _int(design, "train", "design", default=min(t["train"], 1200)),
            "val": _int(design, "val", "design", default=min(t["val"], 400)),
        }
        for m in membranes:
            if m.molar is not None and not (mr[0] <= m.molar <= mr[1]):
                raise _err("design.molar_range", f"must contain every membrane's starting molarity ({m.system})", mr)
    return design


def _select_table(raw: dict, r: dict) -> dict | None:
    """``[select]``: the grids of input and feedback gain a delay reservoir is chosen from on the
    validation split."""
    sel = _table(raw, "select", {"input_gain", "feedback_gain", "stochastic"})
    if sel is None:
        return None
    if r["kind"] != "delay":
        raise _err("reservoir.kind", "must be 'delay' for a [select] table (it chooses the loop's gains)", r["kind"])
    stochastic = sel.get("stochastic", False)
    if not isinstance(stochastic, bool):
        raise _err("select.stochastic", "must be true or false", stochastic)
    out = {key: _grid(sel, key, "select", (r[key],)) for key in ("input_gain", "feedback_gain")}
    return out | {"stochastic": stochastic}


def parse_task(raw: dict, *, path: str | None = None) -> TaskFile:
    """Validate a task mapping (as read from TOML) into a :class:`TaskFile`; :class:`TaskFileError` names a bad field."""
    if raw.get("schema") != TASK_SCHEMA:
        raise _err("schema", f"must be {TASK_SCHEMA!r}", raw.get("schema"))
    unknown = set(raw) - {"schema", "name", "description", "seed", "task", "reservoir", "readout", "esn", "design", "select"}
    if unknown:
        raise TaskFileError(f"task file has unknown top-level fields {sorted(unknown)}")
    name = raw.get("name", Path(path).stem if path else "task")
    if not (isinstance(name, str) and name and all(c.isalnum() or c in "._-" for c in name) and name not in (".", "..")):
        raise _err("name", "must be a plain file name (letters, digits, '.', '_', '-')", name)
    seed = _int(raw, "seed", "", default=0, lo=0)
    task = raw.get("task")
    if not isinstance(task, dict):
        raise TaskFileError("task file needs a [task] table with kind = one of " + ", ".join(TASK_KINDS))
    kind = task.get("kind")
    if kind not in TASK_KINDS:
        raise _err("task.kind", f"must be one of {list(TASK_KINDS)}", kind)
    t = _task_table(raw, kind)
    r, membranes = _reservoir_table(raw)
    readout = _table(raw, "readout", {"ridge"}) or {}
    ridges = _grid(readout, "ridge", "readout", DEFAULT_RIDGES)
    esn = _table(raw, "esn", set(ESN_GRID)) or {}
    esn_grid = {key: _grid(esn, key, "esn", default) for key, default in ESN_GRID.items()}
    if any(v <= 0 or v > 1 for v in esn_grid["leak"]):
        raise _err("esn.leak", "must hold leak rates in (0, 1]", list(esn_grid["leak"]))

    design = _design_table(raw, kind, t, membranes)
    select = _select_table(raw, r)
    return TaskFile(
        name=name,
        description=str(raw.get("description", "")),
        seed=seed,
        task=t,
        membranes=membranes,
        reservoir=r,
        ridges=ridges,
        esn_grid=esn_grid,
        design=design,
        path=path,
        select=select,
    )


def load_task(path) -> TaskFile:
    """Read and validate a task TOML file."""
    return load_toml_as(path, "task", TaskFileError, parse_task)


def tasks_dir() -> Path:
    """Folder of the shipped task files: ``tasks/`` in a checkout (packaged data in a wheel)."""
    return shipped_dir("tasks")


def list_tasks() -> list[Path]:
    """The shipped task files (``*.toml`` in :func:`tasks_dir`), sorted by path."""
    return sorted(tasks_dir().glob("*.toml"))
