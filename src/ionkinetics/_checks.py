"""Checks made before a run costs anything, with one message style (argument, rule, value, fix).

- Voltages: beyond :data:`MAX_ABS_V` no pore of this kind survives, so a larger value is refused
  (a value that fits once divided by 1000 was typed in mV: the message says so); beyond the
  voltages a calibration's data cover, rates are Bell-law extrapolations: :class:`OutsideDataRange`
  warns (once per calibration and range where the caller asks for once).
- Run sizes: the steps and the memory a run will hold are estimated from its duration and time
  step before anything is allocated, and refused with the numbers (a time step typed in seconds
  asks for 10^12 steps).
- Arguments: :func:`bad_argument` builds every "``<argument> <rule>; got <value>``" error, and
  :func:`check_real` refuses a number that is not a finite real within its bounds, with that message.
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from typing import Any, TypeVar

__all__ = [
    "MAX_ABS_V",
    "MAX_RUN_BYTES_FRACTION",
    "OutsideDataRange",
    "bad_argument",
    "check_real",
    "check_run_size",
    "check_voltage",
    "looks_like_path",
    "machine_memory_bytes",
    "seconds_hint",
]

# No Å-scale pore in a 2D membrane survives a sustained bias beyond this (dielectric breakdown and
# electrochemistry set in well before); a larger |V| is a unit mistake or a typo.
MAX_ABS_V = 2.0
# A run may hold at most this fraction of the machine's physical memory.
MAX_RUN_BYTES_FRACTION = 0.5
# A time step below this (ns) is read as one typed in seconds when ×1e9 lands in the usual range.
_SECONDS_HINT_BELOW_NS = 1e-6
_USUAL_DT_NS = (1e-4, 10.0)


_E = TypeVar("_E", bound=Exception)


def bad_argument(arg: str, rule: str, value: object, error: type[_E] = ValueError) -> _E:
    """The error (an ``error`` instance, not raised) for ``arg`` breaking ``rule``:
    ``"<arg> <rule>; got <value!r>"``. ``arg`` is the whole name as the message shows it (a file
    reader passes e.g. ``"calibration field 'x'"``)."""
    return error(f"{arg} {rule}; got {value!r}")


def check_real(
    arg: str,
    value: Any,
    rule: str | None = None,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    minimum: float | None = None,
    exclusive_minimum: bool = False,
    maximum: float | None = None,
    error: type[Exception] = ValueError,
    numpy_scalars: bool = True,
    convert: bool = False,
    not_number: str = "must be a finite number",
    not_finite: str | None = None,
    report_float: bool = False,
) -> float:
    """``value`` as a float, refused (:func:`bad_argument`, class ``error``) unless it is a finite
    real number (never a bool) that is > 0 (``positive``), >= 0 (``nonnegative``), >= ``minimum``
    (> with ``exclusive_minimum``) and <= ``maximum``.

    ``rule`` is the message for every failure; without it each failure says its own:
    ``not_number`` (not a real number), ``not_finite`` (default ``not_number``), ``must be > 0``,
    ``must be >= 0``, ``must be >= <minimum>`` or ``must be <= <maximum>``.
    Accepted types: Python ``int``/``float`` and NumPy's real scalars (``numbers.Real``), only Python's
    with ``numpy_scalars=False`` (values read from JSON/TOML), anything ``float()`` takes with
    ``convert`` (a 0-d array, a numeric string). ``report_float``: a failure after the type check
    shows the value as converted to float (as the file readers' messages do)."""

    def bad(default: str, shown: object) -> Exception:
        return bad_argument(arg, rule or default, shown, error)

    if isinstance(value, bool):
        raise bad(not_number, value)
    if convert:
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise bad(not_number, value) from None
    elif isinstance(value, (numbers.Real if numpy_scalars else (int, float))):
        x = float(value)
    else:
        raise bad(not_number, value)
    shown = x if report_float else value
    if not math.isfinite(x):
        raise bad(not_finite or not_number, shown)
    if positive and x <= 0:
        raise bad("must be > 0", shown)
    if nonnegative and x < 0:
        raise bad("must be >= 0", shown)
    if minimum is not None and (x < minimum or (exclusive_minimum and x == minimum)):
        raise bad(f"must be {'>' if exclusive_minimum else '>='} {minimum:g}", shown)
    if maximum is not None and x > maximum:
        raise bad(f"must be <= {maximum:g}", shown)
    return x


class OutsideDataRange(UserWarning):
    """A simulation drives a calibration beyond the voltages its data cover."""


# (system id, data range) pairs already warned in this process (tests discard theirs first)
WARNED_RANGES: set = set()


def check_voltage(
    v_abs_max: float,
    *,
    argument: str,
    system_id: str | None = None,
    data_range_v=None,
    once: bool = True,
    stacklevel: int = 2,
) -> None:
    """Refuse ``v_abs_max`` (the largest |V| an argument reaches, volts) beyond :data:`MAX_ABS_V`;
    warn :class:`OutsideDataRange` when it exceeds ``data_range_v[1]`` (the highest |V| of the
    calibration's data). ``once``: warn once per (system id, range) in this process."""
    v = float(v_abs_max)
    if not math.isfinite(v):
        return  # non-finite values are refused by the callers' own checks, with their names
    top = None if data_range_v is None else float(data_range_v[1])
    if v > MAX_ABS_V * (1 + 1e-12):
        hint = f"; did you mean mV? {v:g} mV is {v / 1000:g} V: pass {v / 1000:g}" if v / 1000 <= MAX_ABS_V else ""
        raise ValueError(
            f"{argument} must stay within ±{MAX_ABS_V:g} V (volts; no pore of this kind survives more); got |V| = {v:g} V{hint}"
        )
    if data_range_v is None or top is None or v <= top * (1 + 1e-9):
        return
    key = (system_id, tuple(float(x) for x in data_range_v))
    if once:
        if key in WARNED_RANGES:
            return
        WARNED_RANGES.add(key)
    who = f"{system_id}: " if system_id else ""
    warnings.warn(
        f"{who}{argument} reaches |V| = {v:.3g} V, beyond the voltages the calibration's data cover "
        f"({float(data_range_v[0]):g}-{top:g} V); rates there are Bell-law extrapolations" + (" (warned once)" if once else ""),
        OutsideDataRange,
        stacklevel=stacklevel + 1,
    )


def machine_memory_bytes() -> int | None:
    """Physical memory of this machine, bytes (None where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _bytes_text(n: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def seconds_hint(dt_ns: float, dt_argument: str = "dt_ns") -> str:
    """ "; did you mean seconds? ..." for a time step that reads as one typed in seconds, else ""."""
    if 0 < dt_ns < _SECONDS_HINT_BELOW_NS and _USUAL_DT_NS[0] <= dt_ns * 1e9 <= _USUAL_DT_NS[1]:
        return f"; did you mean seconds? {dt_ns:g} s is {dt_argument} = {dt_ns * 1e9:g} (ns)"
    return ""


def check_run_size(
    duration_ns: float,
    dt_ns: float,
    *,
    bytes_per_step: float,
    max_steps: float | None = None,
    what: str = "the run",
    dt_argument: str = "dt_ns",
    max_bytes: float | None = None,
) -> int:
    """The number of steps of ``duration_ns`` at ``dt_ns``, refused before anything is allocated when
    it exceeds ``max_steps`` or when ``bytes_per_step`` × steps exceeds ``max_bytes`` (default
    :data:`MAX_RUN_BYTES_FRACTION` of this machine's memory); the message gives the numbers and,
    for a time step that looks typed in seconds, the value in ns."""
    duration_ns, dt_ns = float(duration_ns), float(dt_ns)
    if not (math.isfinite(duration_ns) and math.isfinite(dt_ns) and dt_ns > 0 and duration_ns > 0):
        return 0  # the callers refuse these with their own names
    steps = duration_ns / dt_ns
    need = steps * float(bytes_per_step)
    if max_bytes is None:
        memory = machine_memory_bytes()
        max_bytes = math.inf if memory is None else MAX_RUN_BYTES_FRACTION * memory
    too_many = max_steps is not None and steps > max_steps
    if not too_many and need <= max_bytes:
        return round(steps)
    limit = (
        f"at most {max_steps:.3g} steps"
        if too_many
        else f"at most {_bytes_text(max_bytes)} ({MAX_RUN_BYTES_FRACTION:g} of this machine's memory)"
    )
    hint = seconds_hint(dt_ns, dt_argument) or f"; use a larger {dt_argument} or a shorter duration"
    raise ValueError(
        f"{what}: duration {duration_ns:g} ns / {dt_argument} = {dt_ns:g} ns = {steps:.3g} steps, about "
        f"{_bytes_text(need)} held in memory; {limit}{hint}"
    )


def looks_like_path(text: str) -> bool:
    """Whether a calibration (or other) reference is a file path rather than an id: not ``word:...``
    (a system id ``pore:salt@molar+...``, however misspelt after the colon), and it has a folder
    separator or a file suffix."""
    text = str(text)
    head, colon, _ = text.partition(":")
    if colon and len(head) > 1 and head.isalnum():  # a drive letter ("C:") is one character
        return False
    return "/" in text or "\\" in text or bool(os.path.splitext(text)[1])
