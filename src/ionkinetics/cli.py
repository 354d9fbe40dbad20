"""The ``ionkinetics`` command."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Voltage-gated ion transport through Å-scale pores.")
console = Console()


def _x64():
    import jax

    jax.config.update("jax_enable_x64", True)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console, transient=False
    )


@app.command("list")
def list_cmd():
    """List the shipped calibrations."""
    from .calibrate import list_calibrations, load_calibration

    table = Table("system", "states", "assumed values", "source")
    for sid in list_calibrations():
        cal = load_calibration(sid)
        table.add_row(
            sid,
            ", ".join(cal.state_names),
            "yes" if cal.provenance.get("contains_assumed_values") else "no",
            str(cal.provenance.get("targets_file", "")),
        )
    console.print(table)


@app.command()
def demo(
    out: Path = typer.Option(Path("ionkinetics-demo"), "--out", "-o", help="Folder for figures and the summary."),
    seed: int = typer.Option(0, help="Seed of the stochastic traces."),
):
    """The main job: G–V curves, step responses, potentiation and switching energies on the shipped calibrations."""
    _x64()
    from ._demo import run_demo

    start = time.perf_counter()
    stages = 3
    with _progress() as progress:
        task = progress.add_task("loading calibrations", total=stages)
        done = {"n": -1}

        def advance(message):
            done["n"] += 1
            progress.update(task, completed=done["n"], description=message)

        summary = run_demo(out, seed=seed, progress=advance)
        progress.update(task, completed=stages, description="done")
    table = Table(title="shipped calibrations, per pore (switching energies E are predictions, never fitted)")
    cols = [  # compact headers so the table fits an 80-column terminal; the CSV/JSON keep every column
        ("system", "system", None),
        ("role", "role", None),
        ("G.1V pS", "g_0.1v_ps", ".3g"),
        ("G.3V pS", "g_0.3v_ps", ".3g"),
        ("α /V", "alpha_per_v", ".1f"),
        ("β /V", "beta_per_v", ".1f"),
        ("τon ns", "tau_on_0p5v_ns", ".3g"),
        ("τoff ns", "tau_off_0v_ns", ".3g"),
        ("E τ|4τ aJ", ("e_switch_tau_aj", "e_switch_4tau_aj"), ".2g"),
        ("paper aJ", "published_e_switch_aj", None),
    ]
    for title, _, _ in cols:
        table.add_column(title, overflow="fold")
    records = []
    for row in summary["systems"]:
        cells = []
        for _, key, fmt in cols:
            keys = key if isinstance(key, tuple) else (key,)
            values = [row.get(k, "") for k in keys]
            cells.append("|".join(format(v, fmt) if (fmt and isinstance(v, float)) else str(v) for v in values))
        cells[1] = cells[1].replace("voltage ", "")
        if row.get("assumed_targets"):
            cells[0] += " *"
        table.add_row(*cells)
        records.append(cells)
    if console.width >= 110:
        console.print(table)
    else:  # a narrow terminal: one short record per system instead of a folded table
        console.print(f"[bold]{table.title}[/]")
        for cells in records:
            console.print(f"[bold]{cells[0]}[/]  {cells[1]}")
            console.print(
                "   " + "  ".join(f"{title} {cell}" for (title, _, _), cell in zip(cols[2:], cells[2:], strict=True) if cell)
            )
    console.print("* calibrated to assumed values (no numbers in the paper's text); see its targets file.")
    for sid, pot in summary["potentiation"]["systems"].items():
        ws = ", ".join(f"{w:.2f}" for w in pot["w_after_each_pulse"])
        console.print(f"potentiation {sid}: w after each pulse = [{ws}]; w at the end = {pot['w_at_end']:.3f}")
    console.print(f"wrote {', '.join(summary['files'])} to {out.resolve()} in {time.perf_counter() - start:.1f} s")


@app.command()
def fit(
    targets: Path = typer.Argument(..., help="Targets TOML (schema ionkinetics.targets/1)."),
    output: Path = typer.Option(..., "--output", "-o", help="Calibration JSON to write."),
    starts: int = typer.Option(8, help="Number of L-BFGS starts."),
    seed: int = typer.Option(0, help="Seed of the start jitter."),
):
    """Fit a calibration to targets by gradients through the jitted model; write it atomically."""
    _x64()
    from .calibrate import fit_targets, load_targets, save_calibration

    command = " ".join(shlex.quote(a) for a in ["ionkinetics", *sys.argv[1:]])
    with console.status(f"fitting {targets} ({starts} starts)"):
        result = fit_targets(load_targets(targets), n_starts=starts, seed=seed, command=command)
    path = save_calibration(result.calibration, output)
    table = Table("parameter", "value", "1σ (Laplace)", title=f"{result.calibration.system_id}: χ² = {2 * result.loss:.3g}")
    for name, entry in result.sigma.items():
        table.add_row(name, f"{entry['value']:.5g}", "not identified" if entry["sigma"] is None else f"{entry['sigma']:.3g}")
    console.print(table)
    for alt in result.alternative_minima:
        shown = ", ".join(f"{k} = {v:.4g}" for k, v in alt["values"].items())
        console.print(
            f"[yellow]warning: another start fits as well (χ² = {2 * alt['loss']:.3g}): {shown}; "
            "the targets do not pin the parameters down uniquely (recorded in fit.alternative_minima)[/]"
        )
    if not result.converged:
        console.print("[yellow]warning: the optimiser stopped before the gradient tolerance; see fit.gradient_norm[/]")
    console.print(f"wrote {path}")


@app.command("simulate")
def simulate_cmd(
    system: str = typer.Argument(..., help="Shipped system id (e.g. 'crown6:NaCl@1.0+KCl@0.5') or a calibration JSON."),
    protocol: str = typer.Option(
        "step:v=0.5,t_on_ns=20,t_off_ns=120,duration_ns=400",
        help="KIND:key=value,... with KIND one of dc, step, pulse_train, sine (arguments of ionkinetics.protocols).",
    ),
    dt_ns: float = typer.Option(0.05, help="Time step, ns."),
    n_pores: int = typer.Option(0, help="Stochastic pores (0 = mean-field per pore)."),
    seed: int = typer.Option(0, help="Seed for stochastic runs."),
    output: Path = typer.Option(Path("trace.csv"), "--output", "-o", help="CSV to write."),
):
    """Simulate one system under a protocol and write the trace as CSV."""
    _x64()
    import jax
    import numpy as np

    from ._io import write_text_atomic
    from .calibrate import load_calibration
    from .kinetics import protocols as protos
    from .kinetics import simulate

    proto = _parse_protocol(protocol, protos)
    cal = load_calibration(system)
    tr = simulate(cal, proto, dt_ns, n_pores=n_pores or None, key=jax.random.key(seed) if n_pores else None)
    header = "t_ns,v,w,g_ps,i_pa,e_aj"
    table = np.column_stack([tr.t_ns, tr.v, tr.w, tr.g_ps, tr.i_pa, tr.e_aj])
    lines = [header] + [",".join(f"{x:.9g}" for x in row) for row in table]
    path = write_text_atomic(output, "\n".join(lines) + "\n")
    console.print(f"{cal.system_id}: {len(tr.t_ns)} points, final w = {tr.w[-1]:.4f}; wrote {path}")


def _parse_protocol(text: str, protos):
    kind, _, args = text.partition(":")
    makers = {"dc": protos.dc, "step": protos.step, "pulse_train": protos.pulse_train, "sine": protos.sine}
    if kind not in makers:
        raise typer.BadParameter(f"protocol kind must be one of {sorted(makers)}; got {kind!r}", param_hint="--protocol")
    kwargs = {}
    for item in filter(None, args.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"protocol arguments are key=value; got {item!r}", param_hint="--protocol")
        kwargs[key.strip()] = int(value) if key.strip() == "count" else float(value)
    try:
        return makers[kind](**kwargs)
    except TypeError as exc:
        raise typer.BadParameter(f"{kind}: {exc}", param_hint="--protocol") from None


def main():
    try:
        app()
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
