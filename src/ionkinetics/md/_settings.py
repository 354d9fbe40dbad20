"""The Langevin thermostat and integrator every OpenMM run of the MD stage shares (one definition)."""

from __future__ import annotations

import dataclasses

__all__ = ["LangevinSettings"]


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
        import openmm.unit as u

        integrator = openmm.LangevinMiddleIntegrator(
            self.temperature_k * u.kelvin, self.friction_per_ps / u.picosecond, self.timestep_fs * u.femtoseconds
        )
        integrator.setRandomNumberSeed(self.seed + seed_offset)
        return integrator
