"""Synthetic MD runs with known answers, for testing what reads runs (openmmtools' testsystems habit).

:func:`write_synthetic_run` writes a run folder in exactly the format of ``ionkinetics md run``
(through :mod:`ionkinetics.md._records`' writers and the runner's chunk layout), whose ion
positions come from a known two-state pore model instead of OpenMM, and returns a
:class:`SyntheticRun` that publishes the exact answers: the generating trap and escape rates and
open-pore conductance at every bias, the steady-state open fraction, and the open fraction
actually drawn per frame. A calibration from MD (``ionkinetics calibrate-md``), the campaign
collector and the analysis are tested against these numbers.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..constants import PA_PER_E_PER_NS
from ..kinetics import KineticParams, open_conductance_ps, steady_state, transition_rates_per_ns
from ._records import Progress, SystemRecord, write_progress, write_run_spec
from ._settings import RunSettings

__all__ = ["BrownianUmbrellaSampler", "SyntheticRun", "exact_window_mean_nm", "write_synthetic_run"]


@dataclasses.dataclass(frozen=True, eq=False)
class SyntheticRun:
    """A written synthetic run and its exact answers (per ns, pS; biases in V)."""

    run_dir: Path
    volts: np.ndarray  # bias held over each frame interval
    w_drawn: np.ndarray  # open fraction of the pores at each frame, as drawn
    n_pores: int
    trap_rate_per_ns: dict[float, float]  # open → blocked, at the run's dopant molarity
    escape_rate_per_ns: dict[float, float]  # blocked → open
    open_conductance_ps: dict[float, float]  # per open pore
    steady_open_fraction: dict[float, float]


def _draw_frames(rng, params, volts, frame_ns: float, centres: np.ndarray, carriers: int):
    """Ion positions per frame (dopants first, one per pore; then the carriers) and the open fraction."""
    n_frames, n_pores, grid = volts.size, len(centres), round(np.sqrt(len(centres)))
    open_now = rng.random(n_pores) < float(steady_state(params, volts[0])[0])
    phase = np.zeros(carriers, dtype=int)
    cxy = rng.uniform(0.0, grid, size=(carriers, 2))
    cxy = np.floor(cxy) + np.where(rng.random((carriers, 2)) < 0.5, 0.05, 0.95)  # away from pore axes
    pos = np.empty((n_frames, n_pores + carriers, 3), dtype=np.float32)
    w = np.empty(n_frames)
    for f, v in enumerate(volts):
        kt, ke = (float(x[0]) for x in transition_rates_per_ns(params, v))
        s = kt + ke
        relax = 1.0 - np.exp(-s * frame_ns)
        flip = rng.random(n_pores) < np.where(open_now, kt / s * relax, ke / s * relax)
        n_open_mid = open_now.sum()
        open_now = open_now ^ flip
        # carriers: advance the ones mid-turn, then start Poisson(λ dt) new crossings
        moving = phase > 0
        phase[moving] = (phase[moving] + 1) % 3
        idle = np.flatnonzero((phase == 0) & ~moving)  # a carrier back at −1 this frame rests one frame
        rate = float(open_conductance_ps(params.open, v)) * abs(v) * 0.5 * (n_open_mid + open_now.sum()) / PA_PER_E_PER_NS
        start = rng.choice(idle, size=min(rng.poisson(rate * frame_ns), idle.size), replace=False) if v > 0 else []
        phase[start] = 1
        cz = np.array([-1.0, 1.0, 2.5])[phase]
        pos[f, :n_pores, :2] = centres
        pos[f, :n_pores, 2] = np.where(open_now, 1.5, 0.0)
        pos[f, n_pores:, :2] = cxy
        pos[f, n_pores:, 2] = cz
        w[f] = open_now.mean()
    return pos, w


def write_synthetic_run(
    run_dir,
    params: KineticParams,
    *,
    system_id: str,
    carrier: str,
    dopant: str,
    volts,
    frame_ns: float,
    temperature_k: float = 298.15,
    grid: int = 10,
    carriers: int = 60,
    seed: int = 0,
) -> SyntheticRun:
    """A run folder whose frames come from the two-state model ``params`` (one dopant).

    ``grid`` × ``grid`` pores 1 nm apart in the plane z = 0 (box grid × grid × 6 nm). The dopant has
    one ion per pore: in the pore's site (z = 0) while blocked, 1.5 nm above it while open, switching
    by the exact two-state transition probabilities at the bias ``volts[f]`` held over frame interval
    f. Carrier ions cross the membrane as a Poisson stream at rate G_open(V)·V·n_open/e (one full box
    turn per crossing: z = −1 → +1 → +2.5 → −1, wrapped, so the crossing analysis counts each once).
    Initial states from the steady state at ``volts[0]``.
    """
    if params.n_states != 2:
        raise ValueError(f"params must describe one dopant (2 states); got {params.n_states}")
    run_dir = Path(run_dir)
    (run_dir / "frames").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    volts = np.asarray(volts, dtype=float)
    n_frames, n_pores, lz = volts.size, grid * grid, 6.0
    centres = np.array([[i + 0.5, j + 0.5] for i in range(grid) for j in range(grid)])
    pos, w = _draw_frames(rng, params, volts, frame_ns, centres, carriers)
    t = (np.arange(n_frames) + 1) * frame_ns
    box = np.array([grid, grid, lz], float)
    np.savez_compressed(run_dir / "frames" / "chunk_000000.npz", positions_nm=pos, t_ns=t, v=volts, box_nm=box)
    settings = RunSettings(
        length_ns=n_frames * frame_ns, frame_ps=frame_ns * 1000.0, timestep_fs=2.0, temperature_k=temperature_k, seed=seed
    )
    record = {
        "settings": dataclasses.asdict(settings),
        "spec": {"system": system_id, "analysis": {"blockers": [dopant]}},
        "protocol": "synthetic",
    }
    system = SystemRecord(
        ion_species=(dopant,) * n_pores + (carrier,) * carriers,
        box_nm=tuple(box.tolist()),
        membrane_z_nm=0.0,
        pore_centres_nm=tuple(map(tuple, centres.tolist())),
        n_atoms=n_pores + carriers,
        system_id=system_id,
        forcefield_files=("synthetic",),
    )
    write_run_spec(run_dir, record, f"synthetic-{seed}", system)
    write_progress(run_dir, Progress(n_frames, 1, None, float(t[-1]), "synthetic"))  # finished: nothing to resume
    levels = sorted({float(v) for v in volts})
    rates = {v: tuple(float(x[0]) for x in transition_rates_per_ns(params, v)) for v in levels}
    return SyntheticRun(
        run_dir=run_dir,
        volts=volts,
        w_drawn=w,
        n_pores=n_pores,
        trap_rate_per_ns={v: r[0] for v, r in rates.items()},
        escape_rate_per_ns={v: r[1] for v, r in rates.items()},
        open_conductance_ps={v: float(open_conductance_ps(params.open, v)) for v in levels},
        steady_open_fraction={v: float(steady_state(params, v)[0]) for v in levels},
    )


# --------------------------------------------------------------------------- umbrella windows with a known PMF


class BrownianUmbrellaSampler:
    """Umbrella windows on a known 1D PMF, for the adaptive plan (:mod:`ionkinetics.md._adaptive`):
    overdamped Langevin (Brownian) dynamics of each restrained ion's z in W(z) + ½k(z − z0)², W and
    its derivative given in kT and kT/nm, diffusion ``diffusion_nm2_per_ps`` (2e-3 is an ion in water),
    Euler–Maruyama steps of ``dt_ps``. The exact window averages follow from :func:`exact_window_mean_nm`.
    ``calls`` records every ``sample`` call's window centres (a test reads how runs were grouped)."""

    def __init__(self, w_kt, dw_kt_per_nm, plan, *, diffusion_nm2_per_ps: float = 2e-3, dt_ps: float = 0.01, seed: int = 0):
        self.w, self.dw, self.plan = w_kt, dw_kt_per_nm, plan
        self.d, self.dt = float(diffusion_nm2_per_ps), float(dt_ps)
        self.rng = np.random.default_rng(seed)
        self.every = round(plan.sample_every_ps / self.dt)
        self.calls: list[tuple[float, ...]] = []

    def sample(self, z0s, *, equilibration_ps: float, sampling_ps: float, start):
        """Brownian windows at the centres ``z0s`` (nm), as :meth:`OpenMMUmbrellaSampler.sample` does in OpenMM: returns
        ``(z, None, end)``, z per window in nm, no lateral r, and the end positions a later call may start from."""
        z0 = np.asarray(z0s, dtype=float)
        self.calls.append(tuple(z0.tolist()))
        k = self.plan.k_z_kj_per_mol_nm2 / self.plan.kt_kj_per_mol  # kT/nm²
        z = z0.copy() if start is None else np.asarray(start, dtype=float)[: z0.size].copy()
        if z.size < z0.size:  # a run with more ions than the last one: the new ion starts at its centre
            z = np.concatenate([z, z0[z.size :]])
        amp = np.sqrt(2.0 * self.d * self.dt)

        def steps(n):
            nonlocal z
            for _ in range(n):
                z = z - self.d * self.dt * (self.dw(z) + k * (z - z0)) + amp * self.rng.standard_normal(z.size)

        steps(round(equilibration_ps / self.dt))
        n = round(sampling_ps / self.plan.sample_every_ps)
        out = np.empty((n, z0.size))
        for j in range(n):
            steps(self.every)
            out[j] = z
        return list(out.T), None, z.copy()


def exact_window_mean_nm(w_kt, z0_nm: float, k_kt_per_nm2: float, *, half_width_nm: float = 1.0, n: int = 20001) -> float:
    """⟨z⟩ of the umbrella window at ``z0_nm`` on the PMF ``w_kt`` (kT), by quadrature of
    exp(−W(z) − ½k(z − z0)²) over z0 ± ``half_width_nm``."""
    z = np.linspace(z0_nm - half_width_nm, z0_nm + half_width_nm, n)
    u = w_kt(z) + 0.5 * k_kt_per_nm2 * (z - z0_nm) ** 2
    p = np.exp(-(u - u.min()))
    return float(np.sum(z * p) / np.sum(p))
