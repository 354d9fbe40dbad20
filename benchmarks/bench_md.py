"""ns/day of `ionkinetics md run` (run_md: field updates, per-frame ion records, chunked atomic
writes, checkpoints) against a bare OpenMM loop (Simulation.step) on the same system, same
platform, side by side in one process. Target: overhead <= 5 %.

    python benchmarks/bench_md.py [--ps 2.0] [--platform CPU] [--system B3N:KCl@1.0+RbCl@0.5]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as u

from _machine import cpu_model
from ionkinetics.kinetics import protocols
from ionkinetics.md import RunSettings, build_system, run_md, select_platform


def bare(built, settings, plat, props) -> float:
    integ = openmm.LangevinMiddleIntegrator(
        settings.temperature_k * u.kelvin, 1 / u.picosecond, settings.timestep_fs * u.femtoseconds
    )
    integ.setRandomNumberSeed(1)
    sim = app.Simulation(built.topology, built.system, integ, plat, props)
    sim.context.setPositions(built.positions_nm * u.nanometer)
    sim.minimizeEnergy()
    sim.context.setVelocitiesToTemperature(settings.temperature_k * u.kelvin, 1)
    sim.step(settings.steps_per_frame)  # warm-up
    n = settings.n_frames * settings.steps_per_frame
    t0 = time.perf_counter()
    sim.step(n)
    sim.context.getState(getPositions=True)
    return n * settings.timestep_fs * 1e-6 / (time.perf_counter() - t0) * 86400


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ps", type=float, default=2.0)
    ap.add_argument("--platform", default="CPU")
    ap.add_argument("--system", default="B3N:KCl@1.0+RbCl@0.5")
    args = ap.parse_args()
    built = build_system(args.system, cells=(2, 1), box_z_nm=6.0)
    plat, props = select_platform(args.platform)
    settings = RunSettings(length_ns=args.ps / 1000, frame_ps=0.1, chunk_frames=5, platform=args.platform, seed=1)
    print("ionkinetics MD runner benchmark")
    print(f"  cpu        {cpu_model()}; {os.cpu_count()} logical cores; {platform.platform()}")
    print(f"  openmm     {openmm.__version__}, platform {plat.getName()} {props}")
    print(f"  system     {args.system}: {len(built.positions_nm)} atoms, box {np.round(built.box_nm, 3).tolist()} nm")
    every = f"a frame every {settings.frame_ps} ps, checkpoint every {settings.chunk_frames} frames"
    print(f"  run        {args.ps} ps, dt {settings.timestep_fs} fs, {every}")
    rates = {"bare": [], "runner": []}
    for _ in range(2):  # alternate to share any drift in machine load
        rates["bare"].append(bare(built, settings, plat, props))
        with tempfile.TemporaryDirectory() as tmp:
            proto = protocols.dc(0.3, settings.length_ns)
            res = run_md(built, proto, settings, tmp)
            rates["runner"].append(res.ns_per_day)
    b, r = max(rates["bare"]), max(rates["runner"])
    print(
        f"  bare OpenMM loop       {b:8.3f} ns/day (best of {len(rates['bare'])}: {', '.join(f'{x:.3f}' for x in rates['bare'])})"
    )
    runs = ", ".join(f"{x:.3f}" for x in rates["runner"])
    print(f"  ionkinetics md run     {r:8.3f} ns/day (best of {len(rates['runner'])}: {runs})")
    print(f"  overhead               {100 * (b / r - 1):+.1f} %  (target <= 5 %)")


if __name__ == "__main__":
    main()
