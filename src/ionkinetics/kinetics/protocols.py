"""Voltage protocols: DC, step, pulse train, sine and sampled arrays.

A protocol is a frozen description; :meth:`Protocol.sample` turns it into the voltage held on
each time step ``[t_k, t_k + dt)``, the form the exact piecewise-constant integrator takes.
Jumps must fall on the time grid (otherwise the "exact" update would smear them), so
``sample`` refuses a ``dt_ns`` that does not divide every breakpoint. Smooth protocols
(sine) are held at each step's midpoint, a second-order zero-order hold.

Before ``t = 0`` the device sits at ``v_rest_v``; simulations start from the steady state there.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import operator

import numpy as np

from .._checks import check_real

__all__ = [
    "DC",
    "KINDS",
    "Protocol",
    "PulseTrain",
    "Sampled",
    "Sine",
    "Step",
    "dc",
    "from_dict",
    "from_text",
    "is_batch",
    "peak_abs_v",
    "pulse_train",
    "sampled",
    "sine",
    "step",
    "switch_values",
]

_GRID_RTOL = 1e-9
SINE_MIN_STEPS_PER_PERIOD = 4  # fewer and a held sine aliases (Nyquist: more than 2)


def _check_real(name: str, value, *, positive=False, nonnegative=False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__} {value!r}")
    return check_real(name, value, positive=positive, nonnegative=nonnegative, not_finite="must be finite", report_float=True)


class Protocol(abc.ABC):
    """Base class: subclasses define ``duration_ns``, ``v_rest_v``, ``voltage_v`` and ``breakpoints_ns``."""

    duration_ns: float
    v_rest_v: float
    # constant between breakpoints (a batch of such protocols with the same jumps is read per segment)
    piecewise_constant = False
    # (on, off): the two fields whose values the voltage takes, on a pattern of times that the other
    # fields fix, resting (before t = 0) at the off value; a batch that differs only in these (an
    # amplitude sweep) is evaluated all at once (:func:`switch_values`)
    switch_fields: tuple[str, str] | None = None

    @abc.abstractmethod
    def voltage_v(self, t_ns) -> np.ndarray:
        """Voltage (V) at times ``t_ns``."""

    def breakpoints_ns(self) -> np.ndarray:
        """Times at which the voltage jumps (must lie on the time grid)."""
        return np.zeros(0)

    def n_steps(self, dt_ns: float) -> int:
        """Number of time steps of ``dt_ns`` in ``duration_ns``; raises ``ValueError`` unless ``dt_ns`` divides it."""
        dt_ns = _check_real("dt_ns", dt_ns, positive=True)
        n = self.duration_ns / dt_ns
        if abs(n - round(n)) > _GRID_RTOL * max(1.0, n):
            raise ValueError(
                f"dt_ns must divide the protocol duration_ns={self.duration_ns:g}; got dt_ns={dt_ns:g} "
                f"({n:.6g} steps). Pick a dt_ns that gives a whole number of steps."
            )
        return round(n)

    def check_sampling(self, dt_ns: float) -> None:  # noqa: B027 (a hook: most protocols accept any grid dt)
        """Refuse a ``dt_ns`` too coarse for this protocol (a smooth one would alias)."""

    def peak_abs_v(self, dt_ns: float) -> float:
        """Largest |V| a run at ``dt_ns`` holds, the rest voltage included (V); closed forms need no sampling."""
        return max(abs(float(self.v_rest_v)), float(np.max(np.abs(self.sample(dt_ns)))))

    def grid_steps(self, dt_ns: float) -> tuple[int, np.ndarray]:
        """``(n_steps, k)``: the number of steps at ``dt_ns`` and the step index of every jump
        (``breakpoints_ns / dt_ns``); refuses a ``dt_ns`` that leaves a jump off the grid."""
        n = self.n_steps(dt_ns)
        self.check_sampling(dt_ns)
        jumps = np.asarray(self.breakpoints_ns(), dtype=float)
        k = jumps / dt_ns
        off = np.abs(k - np.round(k)) > _GRID_RTOL * np.maximum(1.0, k)  # all jumps at once (a train has many)
        if np.any(off):
            tb = float(jumps[np.argmax(off)])
            raise ValueError(
                f"dt_ns={dt_ns:g} does not put the protocol's jump at t={tb:g} ns on the time grid; "
                "choose a dt_ns that divides every jump time so the exact update stays exact"
            )
        return n, np.round(k).astype(np.int64)

    def sample(self, dt_ns: float) -> np.ndarray:
        """Voltage held on each step, shape (n_steps,), volts."""
        n, _ = self.grid_steps(dt_ns)
        t_mid = (np.arange(n) + 0.5) * dt_ns
        return np.asarray(self.voltage_v(t_mid), dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class DC(Protocol):
    """Constant bias ``v`` (V) for ``duration_ns``, resting at ``v_rest_v`` before t = 0."""

    piecewise_constant = True

    v: float
    duration_ns: float
    v_rest_v: float = 0.0

    def __post_init__(self):
        _check_real("v", self.v)
        _check_real("duration_ns", self.duration_ns, positive=True)
        _check_real("v_rest_v", self.v_rest_v)

    def voltage_v(self, t_ns):
        """``v`` at every time of ``t_ns``, in V."""
        return np.full(np.shape(t_ns), float(self.v))

    def peak_abs_v(self, dt_ns: float) -> float:
        """The larger of |v| and |v_rest_v|, in V (any ``dt_ns``)."""
        return max(abs(float(self.v)), abs(float(self.v_rest_v)))


@dataclasses.dataclass(frozen=True)
class Step(Protocol):
    """``v`` (V) from ``t_on_ns`` until ``t_off_ns`` (or the end when ``None``), ``v_base`` before and after, and
    at rest before t = 0."""

    piecewise_constant = True
    switch_fields = ("v", "v_base")

    v: float
    t_on_ns: float
    t_off_ns: float | None
    duration_ns: float
    v_base: float = 0.0

    def __post_init__(self):
        _check_real("v", self.v)
        _check_real("t_on_ns", self.t_on_ns, nonnegative=True)
        _check_real("duration_ns", self.duration_ns, positive=True)
        _check_real("v_base", self.v_base)
        if self.t_off_ns is not None:
            _check_real("t_off_ns", self.t_off_ns)
            if not self.t_on_ns < self.t_off_ns <= self.duration_ns:
                raise ValueError(
                    f"step needs t_on_ns < t_off_ns <= duration_ns; got t_on_ns={self.t_on_ns}, "
                    f"t_off_ns={self.t_off_ns}, duration_ns={self.duration_ns}"
                )
        elif self.t_on_ns >= self.duration_ns:
            raise ValueError(f"step needs t_on_ns < duration_ns; got {self.t_on_ns} >= {self.duration_ns}")

    @property
    def v_rest_v(self) -> float:
        """The rest voltage, ``v_base``, in V."""
        return float(self.v_base)

    def breakpoints_ns(self):
        """The step's jump times: ``t_on_ns``, and ``t_off_ns`` when given."""
        return np.array([t for t in (self.t_on_ns, self.t_off_ns) if t is not None], dtype=float)

    def peak_abs_v(self, dt_ns: float) -> float:
        """The larger of |v| and |v_base|, in V (any ``dt_ns``)."""
        return max(abs(float(self.v)), abs(float(self.v_base)))

    def voltage_v(self, t_ns):
        """``v`` at the times of ``t_ns`` within ``[t_on_ns, t_off_ns)``, ``v_base`` elsewhere, in V."""
        t = np.asarray(t_ns, dtype=float)
        on = t >= self.t_on_ns
        if self.t_off_ns is not None:
            on &= t < self.t_off_ns
        return np.where(on, float(self.v), float(self.v_base))


@dataclasses.dataclass(frozen=True)
class PulseTrain(Protocol):
    """``count`` pulses of ``amplitude_v`` (V), each ``width_ns`` long, one every ``period_ns`` from ``t_start_ns``;
    ``v_base`` between the pulses, after them and at rest."""

    piecewise_constant = True
    switch_fields = ("amplitude_v", "v_base")

    amplitude_v: float
    width_ns: float
    period_ns: float
    count: int
    t_start_ns: float
    duration_ns: float
    v_base: float = 0.0

    def __post_init__(self):
        if isinstance(self.count, bool) or not isinstance(self.count, (int, np.integer)) or self.count < 1:
            raise ValueError(f"count must be an integer >= 1 (number of pulses); got {self.count!r}")
        _check_real("amplitude_v", self.amplitude_v)
        _check_real("width_ns", self.width_ns, positive=True)
        _check_real("period_ns", self.period_ns, positive=True)
        _check_real("t_start_ns", self.t_start_ns, nonnegative=True)
        _check_real("duration_ns", self.duration_ns, positive=True)
        _check_real("v_base", self.v_base)
        if self.width_ns >= self.period_ns:
            raise ValueError(f"width_ns must be < period_ns; got width_ns={self.width_ns}, period_ns={self.period_ns}")
        end = self.t_start_ns + (self.count - 1) * self.period_ns + self.width_ns
        if end > self.duration_ns:
            raise ValueError(f"the last pulse ends at {end:g} ns, after duration_ns={self.duration_ns:g}; lengthen duration_ns")

    @property
    def v_rest_v(self) -> float:
        """The rest voltage, ``v_base``, in V."""
        return float(self.v_base)

    def pulse_onsets_ns(self) -> np.ndarray:
        """(count,) start time of each pulse, in ns."""
        return self.t_start_ns + self.period_ns * np.arange(self.count)

    def breakpoints_ns(self):
        """Every pulse's start and end time, sorted, in ns."""
        on = self.pulse_onsets_ns()
        return np.sort(np.concatenate([on, on + self.width_ns]))

    def peak_abs_v(self, dt_ns: float) -> float:
        """The larger of |amplitude_v| and |v_base|, in V (any ``dt_ns``)."""
        return max(abs(float(self.amplitude_v)), abs(float(self.v_base)))

    def voltage_v(self, t_ns):
        """``amplitude_v`` at the times of ``t_ns`` inside a pulse, ``v_base`` elsewhere, in V."""
        t = np.asarray(t_ns, dtype=float) - self.t_start_ns
        k = np.floor(t / self.period_ns)
        on = (t >= 0) & (k < self.count) & (t - k * self.period_ns < self.width_ns)
        return np.where(on, float(self.amplitude_v), float(self.v_base))


@dataclasses.dataclass(frozen=True)
class Sine(Protocol):
    """``offset_v + amplitude_v·sin(2π·frequency_ghz·t + phase_rad)`` (V, t in ns) for ``duration_ns``, resting at its
    t = 0 value."""

    amplitude_v: float
    frequency_ghz: float
    duration_ns: float
    offset_v: float = 0.0
    phase_rad: float = 0.0

    def __post_init__(self):
        _check_real("amplitude_v", self.amplitude_v)
        _check_real("frequency_ghz", self.frequency_ghz, positive=True)
        _check_real("duration_ns", self.duration_ns, positive=True)
        _check_real("offset_v", self.offset_v)
        _check_real("phase_rad", self.phase_rad)

    @property
    def v_rest_v(self) -> float:
        """The sine's value at t = 0, ``offset_v + amplitude_v·sin(phase_rad)``, in V."""
        return float(self.offset_v + self.amplitude_v * math.sin(self.phase_rad))

    def check_sampling(self, dt_ns: float) -> None:
        """Raise ``ValueError`` when ``dt_ns`` gives fewer than ``SINE_MIN_STEPS_PER_PERIOD`` steps a period (it would alias)."""
        # a hold at one step per period is a constant; between 1 and 2 it aliases to a lower
        # frequency (19 GHz at dt 0.05 ns is the 1 GHz answer); 4 steps per period at least
        n = SINE_MIN_STEPS_PER_PERIOD
        if dt_ns * self.frequency_ghz > 1.0 / n * (1 + _GRID_RTOL):
            raise ValueError(
                f"dt_ns={dt_ns:g} under-samples the sine of frequency_ghz={self.frequency_ghz:g} "
                f"({1.0 / (dt_ns * self.frequency_ghz):.3g} steps per period; it would alias): dt_ns must be "
                f"<= 1/({n}·frequency_ghz) = {1.0 / (n * self.frequency_ghz):.4g} ns"
            )

    def voltage_v(self, t_ns):
        """The sine at times ``t_ns``, in V."""
        t = np.asarray(t_ns, dtype=float)
        return self.offset_v + self.amplitude_v * np.sin(2 * np.pi * self.frequency_ghz * t + self.phase_rad)


@dataclasses.dataclass(frozen=True, eq=False)
class Sampled(Protocol):
    """Piecewise-constant voltage: ``v[i]`` held on ``[t_ns[i], t_ns[i+1])``; ``t_ns[0] = 0``."""

    piecewise_constant = True

    t_ns: np.ndarray
    v: np.ndarray

    def __post_init__(self):
        t = np.asarray(self.t_ns, dtype=float)
        v = np.asarray(self.v, dtype=float)
        if t.ndim != 1 or v.ndim != 1 or t.size != v.size + 1 or v.size == 0:
            raise ValueError(
                f"sampled needs t_ns with one more entry than v (edges of the held intervals); "
                f"got t_ns shape {t.shape} and v shape {v.shape}"
            )
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(v))):
            raise ValueError("sampled t_ns and v must be finite")
        if t[0] != 0.0 or np.any(np.diff(t) <= 0):
            raise ValueError(f"sampled t_ns must start at 0 and increase strictly; got t_ns[:3]={t[:3]}")
        object.__setattr__(self, "t_ns", t)
        object.__setattr__(self, "v", v)

    @property
    def duration_ns(self) -> float:
        """The last interval edge, ``t_ns[-1]``, in ns."""
        return float(self.t_ns[-1])

    @property
    def v_rest_v(self) -> float:
        """The first held value, ``v[0]``, in V."""
        return float(self.v[0])

    def breakpoints_ns(self):
        """The interval edges at which the held value changes, in ns."""
        jumps = np.nonzero(np.diff(self.v))[0] + 1
        return self.t_ns[jumps]

    def voltage_v(self, t_ns):
        """The value held at each time of ``t_ns`` (``v[0]`` before 0, ``v[-1]`` from the last edge on), in V."""
        idx = np.clip(np.searchsorted(self.t_ns, np.asarray(t_ns, dtype=float), side="right") - 1, 0, self.v.size - 1)
        return self.v[idx]


def is_batch(protocol) -> bool:
    """True for a non-empty list or tuple of Protocols. Each distinct type is checked once (a batch
    of 10⁴ steps is one type): no Python loop over the protocols."""
    return (
        isinstance(protocol, (list, tuple))
        and len(protocol) > 0
        and all(issubclass(kind, Protocol) for kind in set(map(type, protocol)))
    )


def switch_values(batch) -> np.ndarray | None:
    """(B, 2) each protocol's (off, on) values where ``batch`` is an amplitude sweep: protocols of one
    kind with ``switch_fields`` that agree on every other field, so they jump at the same times and
    each rests at its off value. None for any other batch. The fields are read by ``map`` over an
    ``operator.attrgetter`` and compared as tuples (loops in C, no Python code per protocol)."""
    if not is_batch(batch):
        return None
    first = batch[0]
    kinds = set(map(type, batch))
    if len(kinds) != 1 or first.switch_fields is None:
        return None
    others = [f.name for f in dataclasses.fields(first) if f.name not in first.switch_fields]
    fixed = list(map(operator.attrgetter(*others), batch))
    if fixed.count(fixed[0]) != len(fixed):
        return None
    on, off = first.switch_fields
    return np.stack([np.fromiter(map(operator.attrgetter(name), batch), np.float64, len(batch)) for name in (off, on)], 1)


def peak_abs_v(protocol, dt_ns: float) -> float:
    """Largest |V| a run of ``protocol`` (one Protocol or a batch of them) holds at ``dt_ns``, rest
    voltages included (V): an amplitude sweep from its (off, on) table, other batches protocol by
    protocol."""
    if isinstance(protocol, Protocol):
        return protocol.peak_abs_v(dt_ns)
    values = switch_values(protocol)
    if values is not None:
        return float(np.max(np.abs(values)))
    if not is_batch(protocol):
        raise TypeError(f"protocol must be a Protocol or a non-empty list of them; got {type(protocol).__name__}")
    return max(p.peak_abs_v(dt_ns) for p in protocol)


def dc(v: float, duration_ns: float, *, v_rest_v: float = 0.0) -> DC:
    """Constant ``v`` volts from t = 0 for ``duration_ns``, starting from rest at ``v_rest_v``."""
    return DC(v, duration_ns, v_rest_v)


def step(
    v: float, t_on_ns: float, t_off_ns: float | None = None, *, duration_ns: float | None = None, v_base: float = 0.0
) -> Step:
    """``v`` volts on ``[t_on_ns, t_off_ns)``, ``v_base`` otherwise.

    ``duration_ns`` defaults to ``t_off_ns + (t_off_ns − t_on_ns)`` (as long off as on); a step
    that never turns off (``t_off_ns=None``) needs it given.
    """
    if duration_ns is None:
        if t_off_ns is None:
            raise ValueError("step with t_off_ns=None (never turns off) needs duration_ns; pass duration_ns=...")
        duration_ns = t_off_ns + abs(t_off_ns - t_on_ns)  # abs: a reversed step reaches the t_on < t_off check
    return Step(v, t_on_ns, t_off_ns, duration_ns, v_base)


def pulse_train(
    amplitude_v: float,
    width_ns: float,
    period_ns: float,
    count: int,
    *,
    t_start_ns: float = 0.0,
    duration_ns: float | None = None,
    v_base: float = 0.0,
) -> PulseTrain:
    """``count`` rectangular pulses of ``amplitude_v`` and ``width_ns`` every ``period_ns``.

    ``duration_ns`` defaults to the start plus ``count`` periods.
    """
    if duration_ns is None:
        duration_ns = t_start_ns + count * period_ns
    return PulseTrain(amplitude_v, width_ns, period_ns, count, t_start_ns, duration_ns, v_base)


def sine(amplitude_v: float, frequency_ghz: float, duration_ns: float, *, offset_v: float = 0.0, phase_rad: float = 0.0) -> Sine:
    """``offset_v + amplitude_v·sin(2π·f·t + phase)``, f in GHz (cycles per ns)."""
    return Sine(amplitude_v, frequency_ghz, duration_ns, offset_v, phase_rad)


def sampled(t_ns, v) -> Sampled:
    """Piecewise-constant voltage ``v[i]`` on ``[t_ns[i], t_ns[i+1])`` (``len(t_ns) == len(v) + 1``)."""
    return Sampled(t_ns, v)


# The one protocol parser: circuit files, MD specs and the command line all read protocols here.
KINDS = {"dc": dc, "step": step, "pulse_train": pulse_train, "sine": sine, "sampled": sampled}


def from_dict(spec, where: str = "protocol") -> Protocol:
    """A protocol from ``{"kind": <kind>, <arguments>}`` (a TOML inline table), e.g.
    ``{"kind": "step", "v": 0.5, "t_on_ns": 20, "t_off_ns": 120, "duration_ns": 400}``.
    Errors are ``ValueError`` naming ``where``, the rule and the value."""
    if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
        raise ValueError(f"{where}.kind must be one of {sorted(KINDS)}; got {spec!r}")
    args = {k: v for k, v in spec.items() if k != "kind"}
    try:
        return KINDS[spec["kind"]](**args)
    except TypeError as exc:
        raise ValueError(f"{where}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def from_text(text: str, where: str = "protocol") -> Protocol:
    """A protocol from the command line's ``"<kind>:key=value,..."``, e.g.
    ``"step:v=0.5,t_on_ns=20,t_off_ns=120,duration_ns=400"`` (``count`` is an integer; every
    other value a number)."""
    kind, _, args = str(text).partition(":")
    if kind not in KINDS or kind == "sampled":
        raise ValueError(f"{where} kind must be one of {sorted(set(KINDS) - {'sampled'})}; got {kind!r}")
    spec: dict = {"kind": kind}
    for item in filter(None, args.split(",")):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{where} arguments are key=value; got {item!r}")
        try:
            spec[key] = int(value) if key == "count" else float(value)
        except ValueError:
            rule = "an integer (number of pulses)" if key == "count" else "a number"
            raise ValueError(f"{where} argument {key} must be {rule}; got {value.strip()!r}") from None
    return from_dict(spec, where)
