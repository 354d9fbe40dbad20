"""The Langevin thermostat and integrator every OpenMM run of the MD stage shares (one definition)."""

from __future__ import annotations

import dataclasses
import math

__all__ = ["LangevinSettings", "RunSettings"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class LangevinSettings:
    """Thermostat, time step, seed and platform: the fields :class:`~ionkinetics.md.RunSettings` and
    :class:`~ionkinetics.md.WindowSettings` share (keyword-only; each validates them with its own rules
    and messages). ``minimize``: minimise the energy before the first step."""

    timestep_fs: float = 2.0
    temperature_k: float = 298.15
    friction_per_ps: float = 1.0
    seed: int = 0
    platform: str = "auto"
    minimize: bool = True

    def langevin_integrator(self, seed_offset: int):
        """OpenMM's ``LangevinMiddleIntegrator`` at these settings, its random stream seeded with
        ``seed + seed_offset`` (``seed_offset`` ≥ 1: OpenMM reads 0 as "pick one at random")."""
        import openmm

        from . import _units as u

        integrator = openmm.LangevinMiddleIntegrator(
            self.temperature_k * u.kelvin, self.friction_per_ps / u.picosecond, self.timestep_fs * u.femtoseconds
        )
        integrator.setRandomNumberSeed(self.seed + seed_offset)
        return integrator


@dataclasses.dataclass(frozen=True)
class RunSettings(LangevinSettings):
    """The parts of a run that determine its frames (hashed into ``spec.json``): its length, frame and
    chunk sizes, plus the shared thermostat fields (keyword-only)."""

    length_ns: float
    frame_ps: float = 10.0
    chunk_frames: int = 100
    dcd_every_frames: int = 0  # > 0: also write every atom to frames/chunk_<c>.dcd every n frames (for viewing)

    def __post_init__(self):
        for name in ("length_ns", "timestep_fs", "frame_ps", "temperature_k", "friction_per_ps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a number > 0; got {value!r}")
        for name, low in (("chunk_frames", 1), ("seed", 0), ("dcd_every_frames", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
        steps = self.frame_ps * 1000.0 / self.timestep_fs
        if abs(steps - round(steps)) > 1e-9 * steps:
            raise ValueError(f"frame_ps must be a whole number of time steps ({self.timestep_fs} fs); got {self.frame_ps}")
        frames = self.length_ns * 1000.0 / self.frame_ps
        if abs(frames - round(frames)) > 1e-9 * frames:
            raise ValueError(f"length_ns must be a whole number of frames ({self.frame_ps} ps); got {self.length_ns}")

    @property
    def steps_per_frame(self) -> int:
        """Integrator steps per saved frame, ``frame_ps / timestep_fs``."""
        return round(self.frame_ps * 1000.0 / self.timestep_fs)

    @property
    def n_frames(self) -> int:
        """Number of frames the run saves, ``length_ns / frame_ps``."""
        return round(self.length_ns * 1000.0 / self.frame_ps)
