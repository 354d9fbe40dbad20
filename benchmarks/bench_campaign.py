"""Campaign throughput: total simulated ns/day of one campaign of small MD tasks run with 1 and with
N local Dask workers (each worker's OpenMM CPU threads = cores / workers), side by side in one
process, and the ratio. On a GPU machine, --platform CUDA --gpus 1 --workers 1,2,4 measures 1 and
several concurrent simulations per GPU the same way.

    python benchmarks/bench_campaign.py [--tasks 4] [--ps 4] [--workers 1,2] [--platform CPU] [--gpus 0]

Each configuration runs in a fresh folder; the first task on each worker pays its minimisation,
as a real campaign does.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile

from _machine import cpu_model
from ionkinetics.campaign import parse_campaign, run_campaign


def campaign(tasks: int, ps: float, platform_name: str):
    return parse_campaign(
        {
            "schema": "ionkinetics.campaign/1",
            "name": "bench",
            "membrane": {"spacing_nm": 1.6, "cells": [2, 1], "box_z_nm": 4.0},
            "run": {"timestep_fs": 2.0, "frame_ps": 1.0, "chunk_frames": 10, "platform": platform_name},
            "system": [{"id": "B3N:KCl@1.0+RbCl@0.5", "blockers": ["Rb+"]}],
            "sweep": {"biases_v": [0.5], "seeds": list(range(1, tasks + 1)), "lengths_ns": [ps / 1000.0], "protocol": "dc"},
        }
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--ps", type=float, default=4.0, help="simulated ps per task")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--platform", default="CPU")
    ap.add_argument("--gpus", type=int, default=0)
    args = ap.parse_args()
    c = campaign(args.tasks, args.ps, args.platform)
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.python_version()}; platform {args.platform}")
    print(f"campaign: {len(c.tasks)} tasks × {args.ps:g} ps of a 3.2k-atom B3N cell ({c.simulated_ns * 1000:g} ps in all)")
    rates = {}
    for n in (int(x) for x in args.workers.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            report = run_campaign(c, out_dir=tmp, n_workers=n, gpus=args.gpus)
        if report.failed:
            raise SystemExit(f"{n} workers: failed tasks {report.failed}")
        rates[n] = report.throughput_ns_per_day
        per_task = [r["ns_per_day"] for r in report.rows]
        print(
            f"{n} worker(s): {report.wall_s:7.1f} s wall, campaign {rates[n]:6.2f} ns/day "
            f"(per task while running: {min(per_task):.2f}–{max(per_task):.2f} ns/day)"
        )
    base = rates[min(rates)]
    for n, r in rates.items():
        print(f"ratio {n} vs {min(rates)} worker(s): {r / base:.2f}")


if __name__ == "__main__":
    main()
