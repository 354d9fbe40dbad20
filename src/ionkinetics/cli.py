"""The ``ionkinetics`` command."""

from __future__ import annotations

import contextlib
import shlex
import sys
import time
import zipfile
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

# rich_markup_mode=None: help and usage errors as plain text, so "[experiment]" or "[run]" in a help
# text is printed, not taken for markup
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Voltage-gated ion transport through Å-scale pores.",
)
# markup off: messages carry user text and values ("[bias]", "[/red]") that must print as they are;
# styles are given explicitly (style=..., Text.assemble)
console = Console(markup=False, highlight=False)


def _x64():
    """64-bit JAX and the persistent compilation cache (both set when ``ionkinetics`` is imported:
    ``ionkinetics._precision``); kept as the CLI's explicit statement of what it runs with."""
    import jax

    from ._precision import enable_compilation_cache

    jax.config.update("jax_enable_x64", True)
    enable_compilation_cache()


def _format_option():
    return typer.Option("png", "--format", help="Figure format: png, pdf or svg (vector formats for journals).")


def _dpi_option():
    return typer.Option(300, "--dpi", help="Resolution of png figures (and raster parts of pdf/svg), dots per inch.")


def _figure_output(figure_format: str, dpi: int):
    """The figure format and dpi for every figure a command writes, checked (exit 2 on a bad value)."""
    from ._io import figure_output

    return figure_output(figure_format, dpi)


@contextlib.contextmanager
def _warnings_as_lines():
    """Within the block, ionkinetics' warnings (a voltage beyond a calibration's data) are printed as
    "warning: ..." lines as they happen, every time (Python's own display would hide them or print
    a source line)."""
    import warnings

    from ._checks import OutsideDataRange

    def show(message, category, *args, **kwargs):
        console.print(f"warning: {message}", style="yellow", soft_wrap=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always", OutsideDataRange)
        warnings.showwarning = show
        yield


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _version_callback(value: bool):
    if value:
        from . import __version__

        typer.echo(f"ionkinetics {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the package version and exit."
    ),
):
    """Voltage-gated ion transport through Å-scale pores."""


def _aligned(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table: every column as wide as its widest cell, nothing cut or wrapped (so an
    id can be copied whole), header underlined; one line per row."""
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


@app.command("list")
def list_cmd():
    """List the shipped calibrations: published numbers (by system id) and the project's MD (by name)."""
    from .calibrate import list_calibrations, list_md_calibrations, load_calibration

    headers = ["load as", "states", "data |V| (V)", "assumed values", "source"]
    rows = []
    for key in [*list_calibrations(), *list_md_calibrations()]:
        cal = load_calibration(key)
        prov = cal.provenance
        if prov.get("targets_file"):
            source = f"targets {prov['targets_file']}"
        else:
            source = f"MD: {prov.get('total_simulated_ns', 0):g} ns on {', '.join(prov.get('platforms', [])) or '?'}"
        if key != cal.system_id:
            source = f"{cal.system_id}; {source}"
        span = getattr(cal, "data_range_v", None)  # the |V| its data cover: simulating outside extrapolates
        rows.append(
            [
                key,
                ", ".join(cal.state_names),
                "not stated" if span is None else f"{span[0]:g}–{span[1]:g}",
                "yes" if prov.get("contains_assumed_values") else "no",
                source,
            ]
        )
    if not rows:
        typer.echo("no shipped calibrations found")
        return
    typer.echo(_aligned(headers, rows))


@app.command()
def demo(
    out: Path = typer.Option(Path("ionkinetics-demo"), "--out", "-o", help="Folder for figures and the summary."),
    seed: int = typer.Option(0, help="Seed of the stochastic traces."),
    figure_format: str = _format_option(),
    dpi: int = _dpi_option(),
):
    """The main job: G–V curves, step responses, potentiation and switching energies on the shipped calibrations."""
    _x64()
    from ._demo import run_demo
    from ._io import check_figure_output

    check_figure_output(figure_format, dpi)

    start = time.perf_counter()
    stages = 4
    with _progress() as progress:
        task = progress.add_task("loading calibrations", total=stages)
        done = {"n": -1}

        def advance(message):
            done["n"] += 1
            progress.update(task, completed=done["n"], description=message)

        summary = run_demo(out, seed=seed, progress=advance, figure_format=figure_format, dpi=dpi)
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
        ("E win|τ|4τ aJ", ("e_switch_paper_window_aj", "e_switch_tau_aj", "e_switch_4tau_aj"), ".2g"),
        ("paper aJ (win ns)", ("published_e_switch_aj", "paper_window_ns"), None),
    ]
    for title, _, _ in cols:
        table.add_column(title, overflow="fold")
    records = []
    for row in summary["systems"]:
        cells = []
        for _, key, fmt in cols:
            keys = key if isinstance(key, tuple) else (key,)
            values = [row.get(k, "") for k in keys]
            text = [format(v, fmt) if (fmt and isinstance(v, float)) else str(v) for v in values]
            if key == ("published_e_switch_aj", "paper_window_ns"):
                cells.append(f"{text[0]} ({text[1]} ns)" if text[0] else "")
            else:
                cells.append(" | ".join(t or "–" for t in text) if any(text) else "")
        cells[1] = cells[1].replace("voltage ", "")
        if row.get("assumed_targets"):
            cells[0] += " *"
        table.add_row(*cells)
        records.append(cells)
    if console.width >= 110:
        console.print(table)
    else:  # a narrow terminal: one short record per system instead of a folded table
        console.print(table.title, style="bold")
        for cells in records:
            console.print(Text.assemble((cells[0], "bold"), f"  {cells[1]}"))
            console.print(
                "   " + "  ".join(f"{title} {cell}" for (title, _, _), cell in zip(cols[2:], cells[2:], strict=True) if cell)
            )
    console.print("* calibrated to assumed values (no numbers in the paper's text); see its targets file.")
    for row in summary["systems"]:
        if "e_switch_paper_window_aj" in row:
            e, paper = row["e_switch_paper_window_aj"], row["published_e_switch_aj"]
            console.print(
                f"switching energy {row['system']} (prediction, never fitted): {e:.3g} aJ per pore over the paper's "
                f"{row['paper_window_ns']:g} ns after the 0.5 V step ({100 * row['e_switch_dopant_share']:.0f} % moved "
                f"by the dopant itself); paper {paper:g} aJ, ratio {e / paper:.2f}",
                markup=False,
            )
    for sid, pot in summary["potentiation"]["systems"].items():
        console.print(f"potentiation {sid}: {pot['description']}; w at the end = {pot['w_at_end']:.3f}")
    for name, c in summary["circuits"].items():
        console.print(f"circuit {name}: {_circuit_line(c)}")
    console.print(f"wrote {', '.join(summary['files'])} to {out.resolve()} in {time.perf_counter() - start:.1f} s")


def _circuit_line(c: dict) -> str:
    """A circuit summary in one line: its finding, computed from the traces (never a fixed claim)."""
    return c.get("finding", c["experiment"])


circuit_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Circuits of ionic membranes: run experiments, export SPICE."
)
app.add_typer(circuit_app, name="circuit")


@app.command()
def design(
    roles: Path = typer.Option(
        None, "--roles", help="Role table (TOML/JSON, schema ionkinetics.role-table/1); default: the paper's text."
    ),
    out: Path = typer.Option(Path("ionkinetics-design"), "--out", "-o", help="Folder for design.json and role_map.png."),
    figure_format: str = _format_option(),
    dpi: int = _dpi_option(),
):
    """The design space: mixtures per pore, bicationic pairs, and the voltage-activated/inactivated
    systems a role table predicts (carrier × activator, carrier × inactivator in the same pore)."""
    from ._io import write_json_atomic
    from .calibrate import PAPER_TEXT_ROLES, design_report, load_role_table, role_map_figure

    table = load_role_table(roles) if roles else PAPER_TEXT_ROLES
    report = design_report(table)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "design.json", {"role_table": {p: dict(r) for p, r in table.items()}, **report})
    from ._io import save_figure

    with _figure_output(figure_format, dpi):
        role_map = save_figure(role_map_figure(table), out / "role_map.png").name
    console.print(
        f"{report['n_ions']} cations × {report['n_pores']} pores: {report['n_mixtures']} mixtures "
        f"(2^N − 1 per pore), {report['n_bicationic']} bicationic pairs"
    )
    source = str(roles) if roles else "the paper's text (partial: only the roles it states)"
    console.print(f"role table: {source}, {report['role_table_entries']} of {report['role_table_entries_possible']} entries")
    for kind in ("voltage_activated", "voltage_inactivated"):
        rows = report[kind]
        console.print(
            Text.assemble(
                (kind.replace("_", " "), "bold"),
                f" ({len(rows)}; the paper's full table: {report['paper_full_table_counts'][kind]})",
            )
        )
        for r in rows:
            console.print(f"  {r['system']}  ({r['carrier']} gated by {r['controller']})")
    console.print(f"wrote design.json, {role_map} to {out.resolve()}")


md_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Molecular dynamics (OpenMM): build, run and analyse membranes under bias."
)
app.add_typer(md_app, name="md")


@md_app.command("build")
def md_build(
    spec: Path = typer.Argument(..., help="MD spec TOML (schema ionkinetics.md/1), e.g. md/crown6-NaCl-KCl-step.toml."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Folder for system.pdb and build.json (default md/runs/<name>/, where `md run` writes)."
    ),
):
    """Build the system of a spec, print a short summary (atoms, box, pores, ions, force field) and write
    system.pdb (open it in VMD; the topology for frames/*.dcd) and build.json (everything, as JSON)."""
    from ._io import write_json_atomic
    from .md import load_md_spec

    s = load_md_spec(spec)
    target = out or Path("md") / "runs" / s.name
    with console.status(f"building {s.system}"):
        built = s.build()
    summary = built.summary()
    for line in _build_summary_lines(summary):
        console.print(line, soft_wrap=True)
    pdb = _write_system_pdb(built, target / "system.pdb")
    write_json_atomic(target / "build.json", summary)
    console.print(f"wrote {pdb.name} (VMD, and the topology of frames/*.dcd), build.json to {target.resolve()}", soft_wrap=True)


def _build_summary_lines(summary: dict) -> list[str]:
    """What `md build` built, in a few lines a person reads (build.json keeps everything)."""
    m, e = summary["membrane"], summary["electrolyte"]
    box = " × ".join(f"{x:.2f}" for x in summary["box_nm"])
    ions = ", ".join(f"{n} {ion}" for ion, n in e["counts"].items())
    molar = ", ".join(f"{ion} {c:.3g} M" for ion, c in e["effective_molar"].items())
    files = ", ".join(Path(f).name for f in summary["forcefield_files"])
    return [
        f"{summary['system_id']}: {summary['n_atoms']} atoms in a {box} nm box",
        f"  membrane: {m['material']} sheet ({summary['sheet']}), {m['n_atoms']} atoms, {m['n_pores']} {m['pore']} pores "
        f"of {m['pore_diameter_nm']:.2f} nm, {m['spacing_nm']:.2f} nm apart",
        f"  electrolyte: {e['n_water']} waters, {ions} (effective {molar})",
        f"  force field: {summary['forcefield_option']} ({files}), cutoff {summary['cutoff_nm']:g} nm",
    ]


def _write_system_pdb(built, path: Path) -> Path:
    """The built system's topology and starting positions as a PDB (openmm.app.PDBFile), atomically."""
    import io

    import numpy as np
    import openmm.app as app
    import openmm.unit as u

    from ._io import write_text_atomic

    buffer = io.StringIO()
    # openmm.unit makes its prefixed units at import time, out of a checker's sight
    nm = u.nanometer  # pyright: ignore[reportAttributeAccessIssue]
    app.PDBFile.writeFile(built.topology, np.asarray(built.positions_nm) * nm, buffer)
    return write_text_atomic(path, buffer.getvalue())


def _hms(seconds: float) -> str:
    """Seconds as h:mm:ss (OpenMM's StateDataReporter style); "--" when unknown."""
    if not seconds == seconds or seconds in (float("inf"), float("-inf")):
        return "--"
    seconds = round(max(seconds, 0.0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _md_log(settings, n_frames: int):
    """Progress of `md run` off a terminal (a pipe, a log file, a batch job): a header, then one
    comma-separated line per chunk, as OpenMM's StateDataReporter writes them (step, simulated time,
    progress, speed, time remaining), flushed at once so a log can be followed while it runs."""
    console.print('#"Step","Time (ns)","Progress (%)","Speed (ns/day)","Time Remaining"', soft_wrap=True)
    console.file.flush()

    def report(done, total, ns_per_day):
        left_ns = (total - done) * settings.frame_ps / 1000.0
        eta = left_ns / ns_per_day * 86400.0 if ns_per_day > 0 else float("nan")
        console.print(
            f"{done * settings.steps_per_frame},{done * settings.frame_ps / 1000.0:.6g},{100.0 * done / total:.1f},"
            f"{ns_per_day:.4g},{_hms(eta)}",
            soft_wrap=True,
        )
        console.file.flush()

    return report


@md_app.command("run")
def md_run(
    spec: Path = typer.Argument(..., help="MD spec TOML (schema ionkinetics.md/1)."),
    out: Path = typer.Option(None, "--out", "-o", help="Run directory (default md/runs/<name>/); resumes if it exists."),
    length_ns: float = typer.Option(
        None,
        "--length-ns",
        help="Simulate only the first LENGTH ns of the spec (whole frames, at most its [run].length_ns); "
        "the same command without it continues the run later.",
    ),
):
    """Run (or resume) an MD spec: checkpoints every chunk, frames recorded incrementally. On a
    terminal a progress bar; in a pipe or log file one line per chunk (step, ns, %, ns/day, time
    remaining). Ctrl-C or SIGTERM stops at the next whole frame with a checkpoint; rerun to resume."""
    import json

    from ._io import write_json_atomic
    from .md import load_md_spec, run_md

    s = load_md_spec(spec)
    run_dir = out or Path("md") / "runs" / s.name
    with console.status(f"building {s.system}"):
        built = s.build()
    n_total = s.settings.n_frames
    n_frames = n_total if length_ns is None else round(length_ns * 1000.0 / s.settings.frame_ps)
    raw = json.loads(json.dumps(s.raw))
    if console.is_terminal:
        with _progress() as progress:
            task = progress.add_task(f"{s.name} on {s.settings.platform}", total=n_frames)

            def report(done, total, ns_per_day):
                progress.update(task, completed=done, description=f"{s.name}: {ns_per_day:.2f} ns/day")

            result = run_md(built, s.protocol, s.settings, run_dir, spec=raw, progress=report, until_ns=length_ns)
    else:
        steps = n_frames * s.settings.steps_per_frame
        console.print(
            f"md run {s.name}: {s.system}, {n_frames} frames ({steps} steps of {s.settings.timestep_fs:g} fs, "
            f"{n_frames * s.settings.frame_ps / 1000.0:g} ns) on {s.settings.platform} into {run_dir.resolve()}",
            soft_wrap=True,
        )
        report = _md_log(s.settings, n_frames)
        result = run_md(built, s.protocol, s.settings, run_dir, spec=raw, progress=report, until_ns=length_ns)
    write_json_atomic(run_dir / "build.json", built.summary())
    if not (run_dir / "system.pdb").exists():  # the topology its DCD frames need, and a file for VMD
        _write_system_pdb(built, run_dir / "system.pdb")
    resume = f"ionkinetics md run {shlex.quote(str(spec))} -o {shlex.quote(str(run_dir))}"
    if result.interrupted:
        console.print(
            f"stopped by {result.stopped_by or 'a signal'}: kept {result.frames_done} of {n_total} frames, checkpoint "
            f"written, in {run_dir.resolve()}; resume with: {resume}",
            style="yellow",
            soft_wrap=True,
        )
        raise typer.Exit(143 if result.stopped_by == "SIGTERM" else 130)
    note = f" (resumed from frame {result.resumed_from_frame})" if result.resumed_from_frame else ""
    console.print(
        f"{result.frames_done} frames on {result.platform} at {result.ns_per_day:.2f} ns/day{note}; wrote {run_dir.resolve()}",
        soft_wrap=True,
    )
    if result.frames_done < n_total:
        console.print(
            f"ran {result.frames_done} of the spec's {n_total} frames (--length-ns); continue with: {resume}", soft_wrap=True
        )


@md_app.command("pmf")
def md_pmf(
    spec: Path = typer.Argument(..., help="MD spec TOML: the system whose pore the ion crosses."),
    ion: str = typer.Option(..., help="Species of the pulled ion, e.g. K+ (one ion of it is restrained)."),
    z_min_nm: float = typer.Option(-1.5, help="Lowest window centre (nm from the membrane plane)."),
    z_max_nm: float = typer.Option(1.5, help="Highest window centre (nm)."),
    spacing_nm: float = typer.Option(0.1, help="Window spacing (nm)."),
    sampling_steps: int = typer.Option(50000, help="Sampling steps per window."),
    equilibration_steps: int = typer.Option(5000, help="Equilibration steps per window, before sampling."),
    k_z_kj_per_mol_nm2: float = typer.Option(2000.0, help="Umbrella force constant along z (kJ/mol/nm²)."),
    bin_width_nm: float = typer.Option(0.05, help="Histogram bin of the PMF (nm)."),
    min_bin_count: int = typer.Option(10, help="Uncorrelated samples a bin needs to be reported."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Folder (default md/runs/<name>-pmf-<ion>/); finished windows are skipped."
    ),
    figure_format: str = _format_option(),
    dpi: int = _dpi_option(),
):
    """Umbrella sampling of one ion along the pore axis, then MBAR (pymbar): PMF with errors, overlap check."""
    from ._io import check_figure_output, save_figure, write_json_atomic

    check_figure_output(figure_format, dpi)
    from .md import WindowSettings, analyze_windows, load_md_spec, plot_pmf, run_window, window_centres_nm

    s = load_md_spec(spec)
    built = s.build()
    matches = [int(i) for i, sp in zip(built.ion_indices, built.ion_species, strict=True) if sp == ion]
    if not matches:
        raise ValueError(f"--ion must be a species in {s.system} ({', '.join(sorted(set(built.ion_species)))}); got {ion!r}")
    target = out or Path("md") / "runs" / f"{s.name}-pmf-{ion.replace('+', 'p').replace('-', 'm')}"
    settings = WindowSettings(
        sampling_steps=sampling_steps,
        equilibration_steps=equilibration_steps,
        k_z_kj_per_mol_nm2=k_z_kj_per_mol_nm2,
        seed=s.settings.seed,
        platform=s.settings.platform,
    )
    centres = window_centres_nm(z_min_nm, z_max_nm, spacing_nm)
    with _progress() as progress:
        task = progress.add_task(f"{len(centres)} windows", total=len(centres))
        for i, z0 in enumerate(centres):
            run_window(built, matches[0], i, float(z0), settings, target)
            progress.update(task, advance=1)
    result = analyze_windows(target, bin_width_nm=bin_width_nm, min_bin_count=min_bin_count)
    write_json_atomic(target / "pmf.json", result.summary())
    with _figure_output(figure_format, dpi):
        pmf_fig = save_figure(plot_pmf(result, label=f"{ion} through {s.system.split(':')[0]}"), target / "pmf.png").name
    if not result.overlap_ok:
        console.print(f"warning: poor overlap next to windows {result.poor_overlap_windows}; add windows there", style="yellow")
    console.print(f"wrote pmf.json, {pmf_fig} to {target.resolve()}")


# 4 fs, 0.9 nm cutoff, one OpenMM CPU thread, ~4000-atom cells (issue 23: 2.3x the 7.5 ns/day of 2 fs / 1.0 nm)
_CPU_NS_PER_DAY_ESTIMATE = 17.0


def _run_adaptive_validation(plan, file: Path, records: Path, only, workers, run_concurrently) -> None:
    """Every remaining PMF of an [adaptive] plan at once, after printing the wall-time bound."""
    import json
    import os

    from .md import estimate_wall_hours, select_platform

    names = [p.name for p in plan.pmfs if not only or p.name in only]
    platform, _ = select_platform(plan.settings.platform)
    gpu = platform.getName() in ("CUDA", "OpenCL")
    n = workers or (len(names) if gpu else min(len(names), os.cpu_count() or 1))
    old = file.parent / "summary.json"
    rate = json.loads(old.read_text()).get("measured_ns_per_day") if old.is_file() else None
    rate = rate or (None if gpu else _CPU_NS_PER_DAY_ESTIMATE)
    bound = (
        f"≤ {estimate_wall_hours(plan, names, rate, n):.1f} h at {rate:.0f} ns/day per process"
        if rate
        else "unknown (first GPU run)"
    )
    console.print(f"{len(names)} PMFs on {platform.getName()}, {n} at once; wall time {bound}")
    for line in run_concurrently(plan, records, workers=n, only=only):
        console.print(line)


@md_app.command("validate")
def md_validate(
    file: Path = typer.Argument(Path("md/validation/validation.toml"), help="Validation file (ionkinetics.md-validation/1)."),
    run: bool = typer.Option(False, "--run", help="First run the windows not yet recorded (hours per PMF on a CPU)."),
    only: list[str] = typer.Option(None, "--only", help="Run only these [[pmf]] names (repeatable)."),
    max_windows: int = typer.Option(None, help="Stop after this many new windows."),
    workers: int = typer.Option(
        None, help="[adaptive] plans: PMFs run at once, one process each (default: one per CPU core; all of them on a GPU)."
    ),
):
    """Force-field validation against the paper's single-salt facts (§2.1, Figure 2): umbrella windows
    recorded under <file's folder>/pmf/ (skipped when already there), then summary.json and pmfs.png."""
    from .md import load_validation, run_validation, run_validation_concurrently, summarize_validation

    plan = load_validation(file)
    records = file.parent / "pmf"
    if run and plan.adaptive is not None:
        _run_adaptive_validation(plan, file, records, only or None, workers, run_validation_concurrently)
    elif run:
        n_planned = len(plan.pmfs) * len(plan.centres_nm)
        with _progress() as progress:
            task = progress.add_task(f"windows of {file.name} ({plan.forcefield_option})", total=n_planned)

            def report(pmf, z, path):
                progress.update(task, advance=1, description=f"{pmf.name} z0 = {z:+.2f} nm")

            n = run_validation(plan, records, only=only or None, max_windows=max_windows, progress=report)
        console.print(f"ran {n} windows into {records.resolve()}")
    summary = summarize_validation(plan, records, file.parent)
    table = Table("fact", "holds", "status", title=f"force-field option {plan.forcefield_option}")
    for f in summary["facts"]:
        table.add_row(f["name"], "yes" if f["holds"] else "no", f["status"])
    console.print(table)
    rate = summary["measured_ns_per_day"]
    cost = f"; {summary['remaining_cpu_hours_at_measured_rate']:.0f} h at {rate:.1f} ns/day" if rate else ""
    console.print(f"remaining {summary['remaining_simulated_ns']:.2f} simulated ns{cost}")
    console.print(f"wrote summary.json, pmfs.png to {file.parent.resolve()}")


@md_app.command("analyze")
def md_analyze(
    run_dir: Path = typer.Argument(..., help="A run directory written by `ionkinetics md run`."),
    blockers: str = typer.Option(None, help="Comma-separated blocking species (default: the spec's [analysis].blockers)."),
):
    """Currents, conductances, w(t) and trapping/escape rates per constant-bias segment → analysis.json."""
    from .md import analyze_run, read_run_record

    if not (run_dir / "spec.json").is_file():
        raise FileNotFoundError(f"{str(run_dir)!r} is not a run directory (no spec.json)")
    rec = read_run_record(run_dir)
    names = blockers.split(",") if blockers else list(rec.blockers)
    out = analyze_run(run_dir, blockers=names, skip_ns=rec.skip_ns)
    table = Table("t (ns)", "V", "I (pA)", "G (pS)", "w", "k_trap /ns", "k_escape /ns", title=f"{run_dir}: blockers {names}")

    def cell(seg, key, fmt=".3g"):
        value = seg.raw.get(key)
        return "—" if value is None else format(value, fmt)

    for seg in out.segments:
        table.add_row(
            f"{seg.t_start_ns:.3g}–{seg.t_stop_ns:.3g}",
            f"{seg.v:g}",
            f"{cell(seg, 'current_pa')} ± {cell(seg, 'current_se_pa', '.2g')}",
            cell(seg, "conductance_ps"),
            f"{seg.w_mean:.3g}",
            cell(seg, "trap_rate_per_ns"),
            cell(seg, "escape_rate_per_ns"),
        )
    console.print(table)
    console.print(f"wrote {(run_dir / 'analysis.json').resolve()}")


campaign_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="MD campaigns on Dask: plan, run (resumable), collect into calibrations."
)
app.add_typer(campaign_app, name="campaign")


@campaign_app.command("plan")
def campaign_plan(
    spec: Path = typer.Argument(..., help="Campaign TOML (schema ionkinetics.campaign/1), e.g. md/campaign-headline.toml."),
    out: Path = typer.Option(None, "--out", "-o", help="Campaign folder (default md/runs/<name>/), to mark finished tasks."),
):
    """List the tasks (stable ids) and the simulation they cost."""
    from .campaign import load_campaign, plan_rows

    c = load_campaign(spec)
    rows = plan_rows(c, out)
    table = Table("task id", "system", "what", "seed", "ns", "done", title=f"campaign {c.name}")
    for r in rows:
        table.add_row(
            r["task_id"], r["system"], r["what"], str(r["seed"]), f"{r['simulated_ns']:.4g}", "yes" if r["done"] else ""
        )
    console.print(table)
    left = sum(r["simulated_ns"] for r in rows if not r["done"])
    n_md = sum(r["kind"] == "md" for r in rows)
    console.print(
        f"{len(rows)} tasks ({n_md} MD runs, {len(rows) - n_md} PMF windows); "
        f"{c.simulated_ns:.4g} ns of simulation, {left:.4g} ns still to run"
    )


@campaign_app.command("run")
def campaign_run(
    spec: Path = typer.Argument(..., help="Campaign TOML (schema ionkinetics.campaign/1)."),
    out: Path = typer.Option(None, "--out", "-o", help="Campaign folder (default md/runs/<name>/)."),
    scheduler: str = typer.Option(
        None, help="Address of a running Dask scheduler (e.g. tcp://10.0.0.5:8786); default a LocalCluster."
    ),
    workers: int = typer.Option(None, help="LocalCluster worker processes (default: one per core, or one per GPU)."),
    gpus: int = typer.Option(0, help="GPUs on this machine: worker i uses GPU i mod gpus."),
    retries: int = typer.Option(2, help="Retries of a task that raises, before it is reported as failed."),
    no_worker_timeout: float = typer.Option(
        600.0, help="Seconds the cluster may have no worker (all died, none replaced) before unfinished tasks fail."
    ),
):
    """Run every unfinished task on Dask; finished tasks are skipped, interrupted ones resume."""
    from .campaign import load_campaign, run_campaign

    c = load_campaign(spec)
    with _progress() as progress:
        bar = progress.add_task(f"{c.name}: {len(c.tasks)} tasks", total=len(c.tasks))

        def report(row):
            progress.update(bar, advance=1, description=f"{c.name}: {row['task_id']} {row['status']}")

        result = run_campaign(
            c,
            out_dir=out,
            scheduler=scheduler,
            n_workers=workers,
            gpus=gpus,
            retries=retries,
            progress=report,
            no_worker_timeout_s=no_worker_timeout,
        )
        progress.update(bar, completed=len(c.tasks))
    table = Table("task id", "status", "ns", "ns/day", "platform", "worker", title=f"campaign {c.name}")
    for r in result.rows:
        rate = r.get("ns_per_day")
        table.add_row(
            r["task_id"],
            r["status"] if r["status"] != "failed" else Text(f"failed: {r.get('error', '')}", style="red"),
            f"{r['simulated_ns']:.4g}",
            "" if rate is None else f"{rate:.3g}",
            str(r.get("platform") or ""),
            str(r.get("worker") or ""),
        )
    console.print(table)
    console.print(
        f"done {sum(r['status'] == 'done' for r in result.rows)}, skipped {sum(r['status'] == 'skipped' for r in result.rows)}, "
        f"failed {len(result.failed)}; {result.throughput_ns_per_day:.3g} ns/day in {result.wall_s:.1f} s; "
        f"wrote {(result.out_dir / 'campaign.json').resolve()}"
    )
    if result.failed:
        raise typer.Exit(1)


@campaign_app.command("collect")
def campaign_collect(
    spec: Path = typer.Argument(..., help="Campaign TOML (schema ionkinetics.campaign/1)."),
    out: Path = typer.Option(None, "--out", "-o", help="Campaign folder (default md/runs/<name>/)."),
    calibration_dir: Path = typer.Option(None, help="Where to write openmm-<system>.json (default <out>/calibration)."),
    refine: bool = typer.Option(False, help="Refine each calibration on the runs' w(t) and G(V)."),
    figure_format: str = _format_option(),
    dpi: int = _dpi_option(),
):
    """Gather the results: one calibration per mixture (with its carrier-only controls), one PMF per [[pmf]]
    (pmf.json and its figure, --format png|pdf|svg)."""
    from ._io import check_figure_output

    check_figure_output(figure_format, dpi)
    _x64()
    from .campaign import collect_campaign, load_campaign

    c = load_campaign(spec)
    with _figure_output(figure_format, dpi):
        summary = collect_campaign(c, out_dir=out, calibration_dir=calibration_dir, refine=refine)
    for cal in summary["calibrations"]:
        console.print(f"{cal['system']}: {cal['runs']} runs + {cal['controls']} controls → {cal['path']}")
    for p in summary["pmfs"]:
        console.print(
            f"PMF {p['folder']}: barrier {p.get('barrier_kt', float('nan')):.2f} kT, well {p.get('well_kt', float('nan')):.2f} kT"
        )
    for f in summary["failed"]:
        console.print(f"not calibrated: {f['system']}: {f['error']}", style="yellow")
    if summary["missing"]:
        console.print(
            f"{len(summary['missing'])} tasks have no result yet; run `ionkinetics campaign run {spec}`", style="yellow"
        )


@circuit_app.command("run")
def circuit_run(
    file: Path = typer.Argument(..., help="Circuit TOML (schema ionkinetics.circuit/1), e.g. circuits/potentiation.toml."),
    out: Path = typer.Option(None, "--out", "-o", help="Output folder (default: ./circuit-<name>/)."),
    figure_format: str = _format_option(),
    dpi: int = _dpi_option(),
):
    """Solve a circuit file's experiment; write its figures (--format png|pdf|svg), a CSV of every
    trace they draw (units in the column names) and summary.json. A file without an
    [experiment] table runs as a plain transient: transient.csv (node voltages, element currents,
    membrane w, element energies; units in the headers) and transient.png. Energies are absorbed
    energies per element: a source delivers when its absorbed energy is negative; resistors and
    membranes dissipate; capacitors store."""
    from ._io import check_figure_output

    check_figure_output(figure_format, dpi)  # before anything is loaded or solved
    _x64()
    from .circuits import load_circuit
    from .experiments import run_experiment

    cf = load_circuit(file)
    target = out or Path(f"circuit-{cf.name}")
    start = time.perf_counter()
    with _warnings_as_lines(), console.status(f"solving {cf.name} ({cf.duration_ns:g} ns at dt {cf.dt_ns:g} ns)"):
        summary = run_experiment(cf, target, figure_format=figure_format, dpi=dpi)
    console.print(f"{cf.name}: {_circuit_line(summary)}")
    console.print(
        f"wrote {', '.join([*summary.get('data', []), *summary['figures'], 'summary.json'])} to {target.resolve()} "
        f"in {time.perf_counter() - start:.1f} s"
    )


@circuit_app.command("export-spice")
def circuit_export_spice(
    file: Path = typer.Argument(..., help="Circuit TOML."),
    output: Path = typer.Option(..., "--output", "-o", help="ngspice netlist to write."),
):
    """Write an ngspice netlist: membranes as behavioural subcircuits with occupancy state nodes."""
    _x64()
    from ._io import write_text_atomic
    from .circuits import load_circuit, to_spice

    cf = load_circuit(file)
    path = write_text_atomic(output, to_spice(cf.graph, cf.duration_ns, cf.dt_ns, title=cf.name))
    console.print(f"wrote {path}; run it with: ngspice -b {path}")


task_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Reservoir computing on standard tasks (NARMA-10, Mackey-Glass, waveforms) and inverse design.",
)
app.add_typer(task_app, name="task")


@task_app.command("run")
def task_run(
    file: Path = typer.Argument(..., help="Task TOML (schema ionkinetics.task/1), e.g. tasks/narma10.toml."),
    out: Path = typer.Option(None, "--out", "-o", help="Output folder (default: ./task-<name>/)."),
    figure_format: str = _format_option(),
    dpi: int = _dpi_option(),
):
    """Run a task file: the ionic reservoir, a same-size echo-state network and a linear delay line
    on the same series; energy per input step and input rate; the inverse design if the file has a
    [design] table. Writes figures and summary.json."""
    _x64()
    from .tasks import load_task, run_task

    tf = load_task(file)
    target = out or Path(f"task-{tf.name}")
    start = time.perf_counter()
    with _figure_output(figure_format, dpi):
        summary = run_task(tf, target, progress=lambda msg: console.print(msg, style="dim"))
    m = summary["metric"]
    console.print(
        f"{tf.name}: {m} {summary[m]:.4g} (stochastic pores {summary[m + '_stochastic'] or float('nan'):.4g}), "
        f"ESN {summary['esn_' + m]:.4g}, linear {summary['linear_' + m]:.4g}; "
        f"{summary['energy_aj_per_step']:.4g} aJ per input step at {summary['input_rate_ghz']:.3g} GHz"
    )
    if "design" in summary:
        console.print(
            f"design: test NRMSE with stochastic pores {summary['nrmse_stochastic_before']:.4g} -> "
            f"{summary['nrmse_stochastic_after']:.4g} (mean-field {summary['nrmse_before']:.4g} -> "
            f"{summary['nrmse_after']:.4g}); "
            f"energy {summary['energy_aj_per_step']:.4g} -> {summary['energy_aj_per_step_after']:.4g} aJ per step"
        )
    console.print(
        f"wrote {', '.join([*summary.get('data', []), *summary['figures'], 'summary.json'])} to {target.resolve()} "
        f"in {time.perf_counter() - start:.1f} s"
    )


@task_app.command("list")
def task_list():
    """List the shipped task files."""
    from .tasks import list_tasks, load_task

    rows = []
    for path in list_tasks():
        tf = load_task(path)
        rows.append([str(path.name), tf.task["kind"], str(len(tf.membranes)), "yes" if tf.design else "no", tf.description])
    console.print(_aligned(["file", "task", "membranes", "design", "description"], rows))


def _write_template(template: str, targets: Path | None, output: Path | None) -> None:
    """``fit --template``: print the targets template of ``template`` (a system id), or write it to a new
    file ``output`` (never over an existing one)."""
    if targets is not None:
        raise ValueError(f"fit: give either TARGETS or --template, not both; got TARGETS={str(targets)!r}")
    from .calibrate import targets_template

    try:
        text = targets_template(template)
    except ValueError as exc:
        raise ValueError(f"--template: {exc}") from None
    if output is None:
        typer.echo(text, nl=False)
        return
    from ._io import write_text_atomic

    if output.exists():
        raise ValueError(f"--output must not exist (a template never overwrites a file); got {str(output)!r}")
    created = _new_folder_note(output)
    path = write_text_atomic(output, text)
    console.print(f"{created}wrote {path}; fill in every nan and citation, then: ionkinetics fit {path} -o <calibration>.json")


def _print_fit(result) -> None:
    """The fit's parameter table, its warnings (other minima, no convergence), the target-vs-model
    rows and the verdict line."""
    table = Table("parameter", "value", "1σ (Laplace)", title=f"{result.calibration.system_id}: χ² = {2 * result.loss:.3g}")
    for name, entry in result.sigma.items():
        table.add_row(name, f"{entry['value']:.5g}", "not identified" if entry["sigma"] is None else f"{entry['sigma']:.3g}")
    console.print(table)
    for alt in result.alternative_minima:
        shown = ", ".join(f"{k} = {v:.4g}" for k, v in alt["values"].items())
        console.print(
            f"warning: another start fits as well (χ² = {2 * alt['loss']:.3g}): {shown}; "
            "the targets do not pin the parameters down uniquely (recorded in fit.alternative_minima)",
            style="yellow",
        )
    if not result.converged:
        console.print("warning: the optimiser stopped before the gradient tolerance; see fit.gradient_norm", style="yellow")
    limit = result.verdict["thresholds"]["max_residual_sigma"]  # beyond it a row is marked "!"
    rows = [
        [
            r["label"] + (" (assumed)" if r["assumed"] else ""),
            f"{r['value']:.4g}",
            f"{100 * r['sigma']:.3g} %" if r["relative"] else f"{r['sigma']:.3g}",
            f"{r['model']:.4g}",
            f"{r['residual_sigma']:+.2f}" + (" !" if abs(r["residual_sigma"]) > limit else ""),
        ]
        for r in result.target_rows
    ]
    console.print(_aligned(["target", "value", "σ", "model", "(model−value)/σ"], rows), soft_wrap=True)
    v = result.verdict
    dof = f"χ²/dof = {v['chi2']:.3g}/{v['dof']} = {v['chi2_per_dof']:.3g}" if v["chi2_per_dof"] is not None else "no dof left"
    console.print(f"worst residual {v['max_abs_residual_sigma']:.3g}σ; {dof}")


@app.command()
def fit(
    targets: Path = typer.Argument(
        None, help="Targets TOML (schema ionkinetics.targets/1), e.g. calibration/targets/crown6-NaCl1.0-KCl0.5.toml."
    ),
    output: Path = typer.Option(
        None, "--output", "-o", help="Calibration JSON to write (with --template: the targets TOML to write)."
    ),
    starts: int = typer.Option(8, help="Number of L-BFGS starts."),
    seed: int = typer.Option(0, help="Seed of the start jitter."),
    template: str = typer.Option(
        None,
        "--template",
        help="Instead of fitting, write a targets template for a system id PORE:SALT@M+SALT@M "
        "(e.g. 'B3N:KCl@1.0+NaCl@0.5') to -o, or print it: fill its nan numbers and citations, then fit it.",
    ),
    accept_poor_fit: bool = typer.Option(
        False,
        "--accept-poor-fit",
        help="Write the calibration even when the fit is poor (a target missed by more than 3σ, or χ²/dof > 9), "
        "with that verdict recorded in it (fit.verdict); without it a poor fit exits 1 and writes nothing.",
    ),
):
    """Fit a calibration to targets by gradients through the jitted model; write it atomically.

    Prints a line per optimiser start, the parameters and a target-vs-model table (value, σ, model,
    residual in σ). A poor fit (a target missed by more than 3σ, or χ²/dof > 9: the targets contradict
    each other or the model) exits 1 and writes nothing, unless --accept-poor-fit.

    A new ion pair: `ionkinetics fit --template "B3N:KCl@1.0+CsCl@0.5" -o my-targets.toml`, fill in
    the numbers marked nan (and cite them, or mark them assumed), then fit it as a shipped file is
    fitted: `ionkinetics fit calibration/targets/B3N-KCl1.0-NaCl0.5.toml -o my-calibration.json`."""
    if template is not None:
        _write_template(template, targets, output)
        return
    if targets is None:
        raise ValueError("fit: TARGETS (a targets TOML) is required unless --template is given; got none")
    if output is None:
        raise ValueError("fit: --output/-o (the calibration JSON to write) is required; got none")
    _x64()
    from .calibrate import fit_targets, load_targets, save_calibration

    command = " ".join(shlex.quote(a) for a in ["ionkinetics", *sys.argv[1:]])
    spec = load_targets(targets)
    console.print(f"fitting {targets}: {len(spec.free)} free parameters, {starts} L-BFGS starts (the first compiles)")
    best = {"chi2": float("inf")}

    def report(i, n, loss, seconds):
        best["chi2"] = min(best["chi2"], 2 * loss) if loss == loss else best["chi2"]
        got = f"χ² = {2 * loss:.4g}" if loss == loss and abs(loss) != float("inf") else "failed (non-finite loss)"
        console.print(f"  start {i}/{n}: {got} in {seconds:.1f} s; best so far χ² = {best['chi2']:.4g}", soft_wrap=True)

    result = fit_targets(spec, n_starts=starts, seed=seed, command=command, progress=report)
    _print_fit(result)
    v = result.verdict
    cal = result.calibration
    if v["poor"]:
        reasons = "; ".join(v["reasons"])
        if not accept_poor_fit:
            console.print(
                f"poor fit: {reasons}. The targets contradict each other or the model; wrote nothing. Fix the targets "
                "(or their σ), or rerun with --accept-poor-fit to write it with this verdict recorded (fit.verdict).",
                style="red",
                soft_wrap=True,
            )
            raise typer.Exit(1)
        cal = cal.replace(fit={**cal.fit, "verdict": {**v, "accepted": True}})
        console.print(
            f"poor fit accepted (--accept-poor-fit): {reasons}; recorded in fit.verdict", style="yellow", soft_wrap=True
        )
    created = _new_folder_note(output)
    path = save_calibration(cal, output)
    console.print(f"{created}wrote {path}", soft_wrap=True)


def _new_folder_note(output: Path) -> str:
    """The note "created folder ...; " when writing ``output`` will create its folder (never silently), else ""."""
    folder = output.parent
    if folder.exists():
        return ""
    return f"created folder {folder.resolve()} (it did not exist); "


@app.command()
def calibrate(
    run_dirs: list[Path] = typer.Argument(
        ..., help="Finished `ionkinetics md run` directories: mixture runs and carrier-only controls."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Calibration JSON to write, e.g. calibration/openmm-<name>.json."),
    carrier: str = typer.Option(None, help="Carrier cation (default: the mixture's cation that is not the blocker)."),
    dopant: str = typer.Option(None, help="Dopant cation (default: the runs' [analysis].blockers)."),
    refine: bool = typer.Option(False, help="Also fit the kinetic model to the runs' w(t) and G(V), from the direct estimate."),
    bootstrap: int = typer.Option(200, help="Parametric-bootstrap resamples of the rate fits (0: Laplace errors only)."),
    seed: int = typer.Option(0, help="Seed of the bootstrap and of the refinement's start jitter."),
    pmf: Path = typer.Option(
        None, help="pmf.json of the dopant through this pore: its escape barrier's Kramers/Eyring k(0) beside the fit."
    ),
):
    """A calibration from MD: censored-ML Bell laws of the pores' dwell times, G–V of the carrier,
    optionally refined on w(t) and G(V); uncertainties and provenance (runs, platform, force field, commit)."""
    _x64()
    from .calibrate import calibrate_from_runs, save_calibration

    command = " ".join(shlex.quote(a) for a in ["ionkinetics", *sys.argv[1:]])
    with console.status(f"calibrating from {len(run_dirs)} run(s)"):
        import json

        pmf_summary = json.loads(pmf.read_text()) if pmf is not None else None
        cal = calibrate_from_runs(
            run_dirs,
            carrier=carrier,
            dopant=dopant,
            refine=refine,
            n_bootstrap=bootstrap,
            seed=seed,
            command=command,
            pmf=pmf_summary,
        )
    path = save_calibration(cal, output)
    if cal.fit is None or cal.uncertainty is None:  # calibrate_from_md records both
        raise RuntimeError(f"{path}: the calibration from MD has no fit or uncertainty record")
    details = cal.fit["md_direct"]["details"]
    for which in ("trap", "escape"):
        if which not in details:
            continue
        d = details[which]
        table = Table("V", "events", "time at risk (ns)", "observed /ns", "Bell law /ns", title=f"{cal.dopants[0].ion} {which}")
        for row in zip(d["v"], d["n_events"], d["exposure_ns"], d["observed_rate_per_ns"], d["fitted_rate_per_ns"], strict=True):
            table.add_row(f"{row[0]:g}", f"{row[1]:.0f}", f"{row[2]:.4g}", f"{row[3]:.4g}", f"{row[4]:.4g}")
        console.print(table)
    sigma = cal.uncertainty["parameters"]
    table = Table("parameter", "value", "1σ", title=f"{cal.system_id} from {cal.provenance['total_simulated_ns']:g} ns of MD")
    for name, entry in sigma.items():
        table.add_row(name, f"{entry['value']:.5g}", "—" if entry["sigma"] is None else f"{entry['sigma']:.3g}")
    console.print(table)
    cmp = details.get("zero_bias_vs_pmf")
    if cmp:
        console.print(
            f"escape k(0): MD fit {cmp['md_fit_k0_per_ns']:.3g} /ns; from the PMF barrier {cmp['barrier_kt']:.2f} kT: "
            f"Kramers (D/a²) {cmp['kramers_diffusive_k0_per_ns']:.3g} /ns, Eyring (k_BT/h) {cmp['eyring_k0_per_ns']:.3g} /ns"
        )
    for note in cal.provenance.get("assumptions", []):
        console.print(f"assumed: {note}", style="yellow")
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
    plot: bool = typer.Option(
        False, "--plot", help="Also write the I / w / V figure beside the CSV (the CSV's name, suffix from --format)."
    ),
    figure_format: str = _format_option(),
    dpi: int = _dpi_option(),
):
    """Simulate one system under a protocol and write the trace as CSV (and with --plot its figure)."""
    _x64()
    import jax
    import numpy as np

    from . import simulate  # the root's: voltages and run size checked first, the range warning shown
    from ._io import write_text_atomic
    from .calibrate import load_calibration
    from .kinetics import protocols as protos

    proto = protos.from_text(protocol, "--protocol")
    cal = load_calibration(system)
    with _warnings_as_lines():
        tr = simulate(cal, proto, dt_ns, n_pores=n_pores or None, key=jax.random.key(seed) if n_pores else None)
    header = "t_ns,v_V,w_fraction,g_pS,i_pA,e_aJ"  # units in every column name, as every CSV ionkinetics writes
    table = np.column_stack([tr.t_ns, tr.v, tr.w, tr.g_ps, tr.i_pa, tr.e_aj])
    lines = [header] + [",".join(f"{x:.9g}" for x in row) for row in table]
    path = write_text_atomic(output, "\n".join(lines) + "\n")
    written = [str(path)]
    if plot:
        with _figure_output(figure_format, dpi):
            written.append(str(_plot_trace(tr, cal.system_id, protocol, output.with_suffix(".png"))))
    console.print(f"{cal.system_id}: {len(tr.t_ns)} points, final w = {tr.w[-1]:.4f}; wrote {', '.join(written)}")


def _plot_trace(tr, system_id: str, protocol: str, path: Path) -> Path:
    """The I / w / V figure of a simulate trace (per pore, or the whole membrane when stochastic)."""
    from .circuits import save_figure_atomic, trace_figure

    who = "per pore" if tr.n_pores is None else f"{tr.n_pores} pores"
    fig = trace_figure(
        tr.t_ns,
        [(f"I {who} (pA)", [("I", tr.i_pa)]), ("w (open fraction)", [("w", tr.w)]), ("V (V)", [("V", tr.v)])],
        f"{system_id}: {protocol} ({'mean-field' if tr.n_pores is None else 'stochastic'})",
    )
    fig.axes[1].set_ylim(-0.03, 1.03)
    fig.axes[2].lines[0].set_drawstyle("steps-post")  # V is held from each time on
    return save_figure_atomic(fig, path)


# Failures a user can cause (bad input, a file that cannot be read or written, a solver that gives
# up): one plain line and exit 2. Anything else is a bug and keeps its traceback.
_USER_ERRORS = (ValueError, TypeError, OSError, FloatingPointError, OverflowError, zipfile.BadZipFile)


def error_line(exc: BaseException) -> str:
    """``exc`` as one plain-text line (no markup: ``[bias]`` or ``[/red]`` in a value stays as is)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if (isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError)) or isinstance(exc, OverflowError):
        text = f"{type(exc).__name__}: {text}"
    return f"error: {text}"


def main():
    """Console entry point: runs the CLI and turns a user error (bad value, missing file) into one red
    ``error: ...`` line and exit status 2 instead of a traceback."""
    try:
        app()
    except _USER_ERRORS as exc:
        console.print(error_line(exc), style="red", markup=False, highlight=False, soft_wrap=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
