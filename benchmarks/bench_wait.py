"""Where users wait (issue 27, goals 5, 1 and 2), each figure beside its baseline in this process.

    python benchmarks/bench_wait.py [--quick]

1. Start-up (goal 5): fresh interpreters, alternated, best of N wall times: ``import jax``,
   ``import ionkinetics`` (lazy: no JAX), ``import ionkinetics`` followed by the subpackages its old
   ``__init__`` imported eagerly (``calibrate``, ``kinetics``: what the import cost before), and the
   ``ionkinetics`` command's ``--version`` and ``--help`` (``ionkinetics.cli:main``, as the console
   script runs it).
2. Compile once (goal 1): one device, a 0.5 V step; a 300 ns run, then 310 ns, 350 ns, 300 ns at
   dt = 0.04 ns and 310 ns again, each call's wall time and JAX compile seconds; bucketed (simulate
   as shipped) beside unpadded (the previous behaviour: ``_saved_bucket`` patched to the identity, so
   every new number of saved points compiles), on the per-step scan (save_every = 1) and on the runs
   path (save_every = 10).
3. The fast path by default (goal 2): save_every = 1, a pulse train, B devices (a parameter batch):
   simulate as shipped (the device-last run loop from 8 devices on) beside the per-step scan
   (``_runs`` patched to None), best of N, after a warm-up call; the two traces agree to 1e-12.

Benchmarks, not tests: nothing asserts a speed. The load average is printed at the start and end.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import time

# cold compiles: the compile figures are XLA compiling, not a persistent-cache load
os.environ.setdefault("IONKINETICS_JAX_CACHE", "")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def startup(repeats: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    cli = "import sys; from ionkinetics.cli import main; sys.argv = ['ionkinetics', '{}']; main()"
    cases = {
        "import jax": "import jax",
        "import ionkinetics": "import ionkinetics",
        "import ionkinetics + calibrate, kinetics (the old eager import)": "import ionkinetics as ik; ik.calibrate; ik.kinetics",
        "ionkinetics --version": cli.format("--version"),
        "ionkinetics --help": cli.format("--help"),
    }
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(repeats):  # alternated: a load change hits every case alike
        for name, code in cases.items():
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
            best[name] = min(best[name], time.perf_counter() - t0)
    jax_s = best["import jax"]
    print(f"\n1. start-up, fresh interpreters, best of {repeats} (load {_load()})")
    for name, t in best.items():
        print(f"  {name:66s} {t:7.3f} s   {t / jax_s:5.2f}x import jax")


def compile_once() -> None:
    import ionkinetics as ik
    from _machine import compile_seconds
    from ionkinetics.kinetics import _simulate

    cal = ik.load_calibration("crown6:NaCl@1.0+KCl@0.5")
    params = cal.params  # built once: the calls time simulate, not the calibration's parameter build
    sequence = [(300.0, 0.05), (310.0, 0.05), (350.0, 0.05), (300.0, 0.04), (310.0, 0.05)]
    bucket = _simulate._saved_bucket
    print(f"\n2. compile once: one device, 0.5 V step 20-120 ns (load {_load()})")
    print("  save_every  run           bucketed: wall s (compile s)   unpadded: wall s (compile s)   unpadded/bucketed")
    for save_every in (1, 10):
        rows = {}
        for mode in ("bucketed", "unpadded"):
            _simulate._saved_bucket = bucket if mode == "bucketed" else (lambda n: n)
            try:
                for i, (duration_ns, dt_ns) in enumerate(sequence):
                    proto = ik.protocols.step(0.5, t_on_ns=20.0, t_off_ns=120.0, duration_ns=duration_ns)
                    with compile_seconds() as c:
                        t0 = time.perf_counter()
                        ik.simulate(params, proto, dt_ns, save_every=save_every)
                        wall = time.perf_counter() - t0
                    rows.setdefault(i, {})[mode] = (wall, c.total)
            finally:
                _simulate._saved_bucket = bucket
        for i, (duration_ns, dt_ns) in enumerate(sequence):
            (wb, cb), (wu, cu) = rows[i]["bucketed"], rows[i]["unpadded"]
            label = f"{duration_ns:g} ns, dt {dt_ns:g}" + (" (first)" if i == 0 else "")
            print(
                f"  {save_every:10d}  {label:22s} {wb:10.3f} ({cb:6.3f})              {wu:10.3f} ({cu:6.3f})"
                f"             {wu / wb:7.1f}x"
            )


def fast_path(batches: list[int], repeats: int) -> int:
    import numpy as np

    import ionkinetics as ik
    from ionkinetics.kinetics import _simulate, stack_params

    cal = ik.load_calibration("crown6:NaCl@1.0+KCl@0.5")
    proto = ik.protocols.pulse_train(0.5, 2.0, 7.0, 57, duration_ns=400.0)  # 8000 steps, all saved
    runs = _simulate._runs
    print(f"\n3. save_every = 1, 8000 steps of a pulse train, best of {repeats} after a warm-up (load {_load()})")
    print("  devices   shipped path       s     per-step scan s   per-step/shipped   max |dw|   max |de|/|e|")
    worst = 0.0
    for n in batches:
        rng = np.random.default_rng(0)
        params = cal.params if n == 1 else stack_params([cal.params] * n)
        if n > 1:  # distinct devices: the escape prefactor jittered
            jitter = rng.uniform(0.5, 2.0, params.escape.k_plus_per_ns.shape)
            escape = dataclasses.replace(params.escape, k_plus_per_ns=params.escape.k_plus_per_ns * jitter)
            params = dataclasses.replace(params, escape=escape)
        times, traces = {}, {}
        for mode in ("shipped", "per-step"):
            _simulate._runs = runs if mode == "shipped" else (lambda *a, **k: None)
            try:
                traces[mode] = ik.simulate(params, proto, 0.05)
                best = float("inf")
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    ik.simulate(params, proto, 0.05)
                    best = min(best, time.perf_counter() - t0)
                times[mode] = best
            finally:
                _simulate._runs = runs
        path = "runs" if n >= _simulate._BATCH_RUNS else "per-step"
        dw = float(np.max(np.abs(traces["shipped"].w - traces["per-step"].w)))
        e_ref = traces["per-step"].e_aj
        de = float(np.max(np.abs(traces["shipped"].e_aj - e_ref) / np.maximum(np.abs(e_ref), 1e-300)))
        worst = max(worst, dw)
        ratio = times["per-step"] / times["shipped"]
        print(
            f"  {n:7d}   {path:9s} {times['shipped']:9.4f}   {times['per-step']:14.4f}   {ratio:14.2f}x   {dw:8.1e}   {de:8.1e}"
        )
    return 0 if worst <= 1e-12 else 1  # the same trace: exit 1 if not


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and smaller batches")
    args = ap.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    t0 = time.perf_counter()
    startup(3 if args.quick else 5)

    import jax

    jax.config.update("jax_enable_x64", True)
    from _machine import machine_lines

    print()
    print("\n".join(machine_lines()))
    compile_once()
    status = fast_path([1, 10, 100] if args.quick else [1, 10, 100, 1000], 3)
    print(f"\nload avg at the end {_load()}; {time.perf_counter() - t0:.0f} s in all")
    return status


if __name__ == "__main__":
    sys.exit(main())
