"""The electrostatic potential across the membrane and the share of an applied bias an ion crosses
(issue 24: the field's share f(z) comes from the system's own potential profile, not assumed linear).

From frames of all charged particles (water included), the planar-averaged charge density ρ(z) (e/nm³)
gives the potential of the charges by the periodic 1D Poisson equation, ε₀φ'' = −ρ, with the mean
field over the box set to zero (PME's tin-foil boundary); the applied field of the runner
(``CustomExternalForce`` −qEz, :func:`ionkinetics.md.add_field_force`) adds −E·z. The total

    φ(z) = φ_charges(z) − E·z      (kJ/mol/e; in volts after dividing by 96.485)

drops by E·L_z over one box, the bias. In bulk the electrolyte screens the field, so the drop gathers at
the membrane; the share of it crossed by an ion at z is

    f(z) = (φ(z_lo) − φ(z)) / (φ(z_lo) − φ(z_hi))

between two bulk planes z_lo < 0 < z_hi (0 on the lower side, 1 on the upper), the input
:func:`ionkinetics.calibrate.site_rates_from_profile` takes.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .._checks import bad_argument
from ..constants import FARADAY_KJ_PER_MOL_PER_V

__all__ = ["COULOMB_KJ_NM_PER_MOL_E2", "PotentialProfile", "field_share", "potential_profile"]

COULOMB_KJ_NM_PER_MOL_E2 = 138.935457  # 1/(4πε₀) in kJ·nm/(mol·e²) (OpenMM's ONE_4PI_EPS0)


@dataclasses.dataclass(frozen=True)
class PotentialProfile:
    """φ(z) at bin centres ``z_nm`` (relative to the membrane plane), in volts, with the density it came from."""

    z_nm: np.ndarray
    phi_v: np.ndarray
    rho_e_per_nm3: np.ndarray
    efield_kj_per_mol_nm_e: float

    @property
    def drop_v(self) -> float:
        """Potential drop across the profile, φ at the first bin minus φ at the last, in V."""
        return float(self.phi_v[0] - self.phi_v[-1])


def potential_profile(positions_nm, charges_e, box_nm, *, efield_kj_per_mol_nm_e: float = 0.0, membrane_z_nm: float = 0.0,
                      bin_width_nm: float = 0.02) -> PotentialProfile:  # fmt: skip
    """φ(z) from ``positions_nm`` (n_frames, n, 3) or (n, 3) and ``charges_e`` (n,) in an orthorhombic box
    ``box_nm`` (L_x, L_y, L_z), z measured from the membrane plane and wrapped into [−L_z/2, L_z/2)."""
    pos = np.asarray(positions_nm, dtype=float)
    if pos.ndim == 2:
        pos = pos[None]
    q = np.asarray(charges_e, dtype=float)
    if pos.ndim != 3 or pos.shape[2] != 3 or pos.shape[1] != q.size:
        raise bad_argument("positions_nm", f"must be (n_frames, {q.size}, 3) for {q.size} charges", pos.shape)
    box = np.asarray(box_nm, dtype=float)
    if box.shape != (3,) or not np.all(box > 0):
        raise bad_argument("box_nm", "must be three box edges > 0 nm", box_nm)
    lz = float(box[2])
    n_bins = round(lz / bin_width_nm)
    if n_bins < 8:
        raise bad_argument("bin_width_nm", f"must give at least 8 bins over L_z = {lz:g} nm", bin_width_nm)
    dz = lz / n_bins
    z = pos[..., 2] - membrane_z_nm
    z -= lz * np.floor(z / lz + 0.5)  # into [−L_z/2, L_z/2)
    edges = -0.5 * lz + dz * np.arange(n_bins + 1)
    counts = np.zeros(n_bins)
    for f in range(z.shape[0]):
        counts += np.histogram(z[f], bins=edges, weights=q)[0]
    rho = counts / z.shape[0] / (box[0] * box[1] * dz)  # e/nm³
    # Gauss: E(z) = (1/ε₀)∫ρ dz + C with ⟨E⟩ = 0; ε₀ = 1/(4π·COULOMB) in e²·mol/(kJ·nm)
    inv_eps0 = 4.0 * math.pi * COULOMB_KJ_NM_PER_MOL_E2
    e_edges = inv_eps0 * np.concatenate([[0.0], np.cumsum(rho * dz)])  # at the bin edges
    e_edges -= np.trapezoid(e_edges, dx=dz) / lz
    phi_edges = -np.concatenate([[0.0], np.cumsum(0.5 * (e_edges[1:] + e_edges[:-1]) * dz)])
    centres = 0.5 * (edges[1:] + edges[:-1])
    phi_c = 0.5 * (phi_edges[1:] + phi_edges[:-1]) - float(efield_kj_per_mol_nm_e) * centres
    return PotentialProfile(centres, phi_c / FARADAY_KJ_PER_MOL_PER_V, rho, float(efield_kj_per_mol_nm_e))


def field_share(profile: PotentialProfile, *, z_lo_nm: float, z_hi_nm: float, z_nm=None) -> np.ndarray:
    """f(z) = (φ(z_lo) − φ(z))/(φ(z_lo) − φ(z_hi)) on ``z_nm`` (default: the profile's bins between the
    planes), clipped to [0, 1] outside them; refused when the drop between the planes vanishes."""
    if not z_lo_nm < 0 < z_hi_nm:
        raise bad_argument("z_lo_nm, z_hi_nm", "must bracket the membrane plane (z_lo < 0 < z_hi)", (z_lo_nm, z_hi_nm))
    lo = float(np.interp(z_lo_nm, profile.z_nm, profile.phi_v))
    hi = float(np.interp(z_hi_nm, profile.z_nm, profile.phi_v))
    if abs(lo - hi) < 1e-9:
        raise bad_argument("profile", "must drop between the planes (no bias, or fully screened)", lo - hi)
    z = profile.z_nm[(profile.z_nm >= z_lo_nm) & (profile.z_nm <= z_hi_nm)] if z_nm is None else np.asarray(z_nm, float)
    return np.clip((lo - np.interp(z, profile.z_nm, profile.phi_v)) / (lo - hi), 0.0, 1.0)
