"""Hand-made calibrations for model tests (independent of the shipped files)."""

from ionkinetics.calibrate import Calibration, site_rates


def make_calibration(
    system="crown6:NaCl@1.0+KCl@0.5",
    *,
    dopants=(("K+", "center", 0.08, 0.1, 3e-5, 0.55, 0.0),),
    c_ps=400.0,
    alpha_per_v=-1.7,
    k_max=(4.0, 20.0),
):
    """dopants: (ion, site, trap_k0_per_ns_per_molar, trap_delta, escape_k0_per_ns, escape_delta, leak)."""
    carrier = {"crown6:NaCl": "Na+", "B3N:KCl": "K+"}[system.split("@")[0]]
    return Calibration.from_dict(
        {
            "schema": "ionkinetics.calibration/1",
            "system": system,
            "carrier": {"ion": carrier, "open_conductance": {"c_ps": c_ps, "alpha_per_v": alpha_per_v, "v_smooth_v": 0.005}},
            "dopants": [
                {
                    "ion": ion,
                    "site": site,
                    "leak_fraction": leak,
                    "trap": site_rates(site, tk, td, k_max[0], trap=True),
                    "escape": site_rates(site, ek, ed, k_max[1], trap=False),
                }
                for ion, site, tk, td, ek, ed, leak in dopants
            ],
        }
    )


def write_synthetic_md_run(run_dir, cal, volts, *, frame_ns, grid=10, carriers=60, seed=0):
    """A run directory in the format of ``ionkinetics md run`` whose frames come from a known model.

    ``grid`` × ``grid`` pores 1 nm apart in the plane z = 0 (box grid × grid × 6 nm). The one
    dopant of ``cal`` has one ion per pore: in the pore's site (z = 0) while blocked, 1.5 nm
    above it while open, switching by the exact two-state transition probabilities of ``cal``
    at the bias ``volts[f]`` held over frame interval f. Carrier ions cross the membrane as a
    Poisson stream at rate G_open(V)·V·n_open/e (one full box turn per crossing: z = −1 → +1 →
    +2.5 → −1, wrapped, so the crossing analysis counts each once). Initial states from the
    steady state at ``volts[0]``. Returns the per-frame open fraction actually drawn.
    """
    import json
    from pathlib import Path

    import numpy as np

    from ionkinetics.kinetics._rates import open_conductance_ps, steady_state, transition_rates_per_ns
    from ionkinetics.md._analysis import PA_PER_E_PER_NS

    run_dir = Path(run_dir)
    (run_dir / "frames").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    params = cal.params
    (dopant,) = [d.ion for d in cal.dopants]
    volts = np.asarray(volts, dtype=float)
    n_frames, n_pores, lz = volts.size, grid * grid, 6.0
    centres = np.array([[i + 0.5, j + 0.5] for i in range(grid) for j in range(grid)])
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
    t = (np.arange(n_frames) + 1) * frame_ns
    np.savez_compressed(
        run_dir / "frames" / "chunk_000000.npz", positions_nm=pos, t_ns=t, v=volts, box_nm=np.array([grid, grid, lz], float)
    )
    settings = {
        "length_ns": n_frames * frame_ns,
        "frame_ps": frame_ns * 1000.0,
        "timestep_fs": 2.0,
        "temperature_k": cal.temperature_k,
        "seed": seed,
    }
    spec = {"system": cal.system_id, "analysis": {"blockers": [dopant]}}
    (run_dir / "spec.json").write_text(
        json.dumps({"settings": settings, "spec": spec, "protocol": "synthetic", "hash": f"synthetic-{seed}"})
    )
    (run_dir / "system.json").write_text(
        json.dumps(
            {
                "ion_species": [dopant] * n_pores + [cal.carrier] * carriers,
                "box_nm": [grid, grid, lz],
                "membrane_z_nm": 0.0,
                "pore_centres_nm": centres.tolist(),
                "n_atoms": n_pores + carriers,
                "system_id": cal.system_id,
                "forcefield_files": ["synthetic"],
            }
        )
    )
    (run_dir / "progress.json").write_text(
        json.dumps({"frames_done": n_frames, "chunks_done": 1, "checkpoint": None, "platform": "synthetic"})
    )
    return w
