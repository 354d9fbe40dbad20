"""Every shipped file as a user runs it, one row each: wall time, CPU time and load (issue 27, goal 6).

    python benchmarks/bench_shipped_files.py [--only NAME ...] [--warm] [--timeout S] [--keep DIR]

Rows: every ``circuits/*.toml`` (``ionkinetics circuit run FILE``), every ``tasks/*.toml``
(``ionkinetics task run FILE``) and ``ionkinetics demo``, each in a fresh process with the
persistent compilation cache that ionkinetics sets up (``$IONKINETICS_JAX_CACHE``, default
``~/.cache/ionkinetics/jax``). ``--warm`` runs each file once first, untimed, so that its row is a
warm-cache start (the figure users see from the second run on); without it the row is whatever state
the cache is in (printed). Per row: wall seconds (``time.perf_counter`` around the child), the child's
user + sys CPU seconds (``resource.getrusage(RUSAGE_CHILDREN)``, the figure ``/usr/bin/time`` prints),
the 1-minute load average before and after, and the sha256 of the ``summary.json`` it wrote (the first
12 hex digits), so that a speed-up that moved a shipped result shows.

The goal is < 60 s wall on 2 idle cores. On a loaded machine the wall time measures the load as much
as the program, so the verdict column judges CPU time <= 60 s instead: a run that needs at most 60
CPU-seconds finishes within 60 s on 2 idle cores whether it uses one core or both (it can only be
faster than its CPU time when it runs on both). ``--timeout`` (default 900 s) stops a row and marks it.

A benchmark, not a test: nothing asserts a speed; it exits 1 if a run fails or times out.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BAR_S = 60.0


def shipped() -> list[tuple[str, list[str]]]:
    """(row name, the ``ionkinetics`` arguments before ``--out``) of every shipped file and the demo."""
    rows = [(f"circuits/{p.name}", ["circuit", "run", str(p)]) for p in sorted((ROOT / "circuits").glob("*.toml"))]
    rows += [(f"tasks/{p.name}", ["task", "run", str(p)]) for p in sorted((ROOT / "tasks").glob("*.toml"))]
    return [*rows, ("demo", ["demo"])]


def run_once(args: list[str], out: Path, timeout: float) -> tuple[float, float, int | None, str]:
    """(wall s, user + sys CPU s of the child, exit status or None on timeout, last lines of its output)."""
    exe = Path(sys.executable).with_name("ionkinetics")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "ionkinetics.cli"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([*cmd, *args, "--out", str(out)], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        status, text = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        status, text = None, exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else (exc.output or "")
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, status, "\n".join(text.strip().splitlines()[-3:])


def summary_digest(out: Path) -> str:
    """The first 12 hex digits of the sha256 of ``summary.json`` under ``out`` (``-`` if none was written)."""
    found = sorted(out.rglob("summary.json"))
    if not found:
        return "-"
    return hashlib.sha256(b"".join(p.read_bytes() for p in found)).hexdigest()[:12]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", metavar="NAME", help="rows whose name contains one of these (e.g. neuron demo)")
    ap.add_argument("--warm", action="store_true", help="run each file once, untimed, before its timed run")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds before a run is stopped (default 900)")
    ap.add_argument("--keep", type=Path, help="write the outputs here (default: a temporary folder, removed)")
    args = ap.parse_args(argv)
    rows = [r for r in shipped() if not args.only or any(s in r[0] for s in args.only)]
    sys.path.insert(0, str(Path(__file__).parent))
    from _machine import machine_lines

    print("ionkinetics: every shipped file, as users run it" + (" (warm cache)" if args.warm else ""))
    for line in machine_lines():
        print("  " + line)
    cache = os.environ.get("IONKINETICS_JAX_CACHE", str(Path.home() / ".cache" / "ionkinetics" / "jax"))
    print(f"  compile cache {cache or 'off'}; goal < {BAR_S:.0f} s wall on 2 idle cores, judged here by CPU time")
    print()
    head = f"{'file':<44} {'wall s':>8} {'cpu s':>8} {'load':>11}  {'summary':<12}  verdict"
    print(head)
    print("-" * len(head))
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        for name, cli in rows:
            out = base / name.replace("/", "_").removesuffix(".toml")
            if args.warm:
                run_once(cli, out.with_name(out.name + "-warm"), args.timeout)
            load0 = os.getloadavg()[0]
            wall, cpu, status, tail = run_once(cli, out, args.timeout)
            load1 = os.getloadavg()[0]
            if status is None:
                verdict = f"TIMED OUT after {args.timeout:.0f} s"
            elif status:
                verdict = f"FAILED (exit {status}): {tail.splitlines()[-1] if tail else ''}"
            else:
                verdict = "under the bar" if cpu <= BAR_S else f"OVER the bar ({cpu / BAR_S:.1f}x)"
            failed += status != 0
            print(
                f"{name:<44} {wall:8.1f} {cpu:8.1f} {load0:5.1f}-{load1:<5.1f}  {summary_digest(out):<12}  {verdict}", flush=True
            )
    print()
    print(f"load avg at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
