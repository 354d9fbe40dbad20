"""``ionkinetics md analyze RUN_DIR``: the analysis of a recorded run, one segment per constant bias.

A step or pulse protocol changes the bias during a run; currents and conductances are only
meaningful at constant bias, so the frames are split into maximal runs of constant ``v`` and
each is analysed on its own (crossings, current, conductance, occupancy, dwell-time rates); w(t)
is also given for the whole run. The result is ``RUN_DIR/analysis.json`` (units in the keys).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from ._analysis import DEFAULT_BLOCK_NS, CylinderSite, analyze_trajectory, pore_occupancy
from ._records import ANALYSIS_SCHEMA, RunAnalysis, write_run_analysis
from ._runner import load_frames

__all__ = ["analyze_run"]

MIN_SEGMENT_FRAMES = 10


def _segments(v: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) frame ranges of constant bias."""
    edges = np.flatnonzero(np.diff(v) != 0) + 1
    bounds = [0, *edges.tolist(), v.size]
    return list(itertools.pairwise(bounds))


def analyze_run(
    run_dir, *, blockers, site: CylinderSite | None = None, skip_ns: float = 0.0, block_ns: float | None = None, seed: int = 0
) -> RunAnalysis:
    """Analyse ``run_dir`` and write its ``analysis.json``; returns the typed :class:`RunAnalysis`.
    ``blockers`` are the species that block a pore (e.g. ``["K+"]``); ``skip_ns`` drops the start of
    every constant-bias segment (relaxation after a change); ``block_ns`` is the bootstrap block
    (default: 1 ns, or a tenth of a shorter segment). The pores' occupancy is counted once for the
    whole run; each segment reads its slice."""
    run_dir = Path(run_dir)
    frames = load_frames(run_dir)
    info = frames.system
    x, t, v = frames.positions_nm, frames.t_ns, frames.v
    if info.pore_centres_nm is None:
        raise ValueError(f"run {str(run_dir)!r} records no pore centres; analysis needs a membrane with pores")
    if isinstance(skip_ns, bool) or not isinstance(skip_ns, (int, float)) or not skip_ns >= 0:
        raise ValueError(f"skip_ns must be a number >= 0; got {skip_ns!r}")
    dt_ns = frames.frame_ns
    site = CylinderSite() if site is None else site
    centres = np.asarray(info.pore_centres_nm)
    occupancy = pore_occupancy(x, info.ion_species, centres, box_nm=frames.box_nm, membrane_z_nm=info.membrane_z_nm, site=site)
    w_t = occupancy.w_t(list(blockers))  # checks the blockers before any segment's work
    segments = []
    skip = round(skip_ns / dt_ns)
    for start, stop in _segments(v):
        lo = start + skip
        if stop - lo < MIN_SEGMENT_FRAMES:
            continue
        block = block_ns if block_ns is not None else min(DEFAULT_BLOCK_NS, (stop - lo) * dt_ns / 10.0)
        result = analyze_trajectory(
            x[lo:stop],
            info.ion_species,
            dt_ns=dt_ns,
            v=float(v[start]),
            block_ns=block,
            box_nm=frames.box_nm,
            membrane_z_nm=info.membrane_z_nm,
            pore_centres_nm=centres,
            blockers=list(blockers),
            site=site,
            seed=seed,
            occupancy=occupancy.frames(lo, stop),
        )
        segments.append({"t_start_ns": float(t[lo]), "t_stop_ns": float(t[stop - 1]), "v": float(v[start]), **result})
    out = {
        "schema": ANALYSIS_SCHEMA,
        "run_dir": str(run_dir),
        "blockers": list(blockers),
        "skip_ns": skip_ns,
        "frame_ns": dt_ns,
        "segments": segments,
        "w_t": {"t_ns": t.tolist(), "w": np.asarray(w_t).tolist(), "v": v.tolist()},
    }
    return write_run_analysis(run_dir, out)  # checked as the typed record, then written
