"""Figures without pyplot's global state, saved atomically (written beside the target, then renamed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._io import PALETTE, figure_output, save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["figure", "figure_output", "save_figure_atomic", "trace_columns", "trace_figure"]


def figure(nrows: int = 1, ncols: int = 1, **kw) -> tuple[Figure, Any]:
    """A matplotlib Figure and its axes, outside pyplot (safe in threads, nothing left open), each
    axes cycling through the colour-blind-safe :data:`ionkinetics._io.PALETTE`. The axes are one
    ``Axes`` or an array of them, as ``Figure.subplots`` gives for ``nrows``, ``ncols`` and ``squeeze``
    (typed ``Any``, as matplotlib types them)."""
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=kw.pop("figsize", (6, 4)))
    axes = fig.subplots(nrows, ncols, **kw)
    for ax in np.atleast_1d(axes).ravel():
        ax.set_prop_cycle(color=list(PALETTE))
    return fig, axes


def save_figure_atomic(fig, path, *, dpi: int | None = None) -> Path:
    """Save ``fig`` so a reader never sees half a file, in the format and dpi of
    :func:`ionkinetics._io.figure_output` (``path``'s suffix is replaced by that format; default
    png at 300 dpi), with panel letters and titles that fit. Returns the path written."""
    return save_figure(fig, path, dpi=dpi)


def trace_figure(t_ns, panels, title: str):
    """Stacked panels sharing the time axis. ``panels``: ``[(y label, [(legend, y array), ...]), ...]``."""
    import numpy as np

    fig, axes = figure(len(panels), 1, sharex=True, figsize=(7, 1.9 * len(panels) + 0.4))
    for ax, (label, series) in zip(np.atleast_1d(axes), panels, strict=True):
        for name, y in series:
            ax.plot(t_ns, y, lw=1.2, label=name)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if len(series) > 1:  # beside the panel, never on the data
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    np.atleast_1d(axes)[-1].set_xlabel("t (ns)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def trace_columns(tr, *, b=None, tag="") -> dict:
    """``{header: array}`` of a circuit trace: time, every node voltage, element current, membrane
    open fraction and element energy, units in the headers; ``b`` picks one variant of a batched
    trace and ``tag`` (e.g. ``"[1 GHz]"``) marks its columns."""
    import numpy as np

    top = tr.topology

    def pick(x):
        x = np.asarray(x)
        return x if b is None else x[b]

    columns = {} if tag else {"t_ns": tr.t_ns}
    columns.update({f"V({n}){tag}_V": pick(tr.v(n)) for n in top.nodes})
    columns.update({f"I({e}){tag}_pA": pick(tr.i(e)) for e in top.branch_names})
    columns.update({f"w({m}){tag}_fraction": pick(tr.w(m)) for m in top.names_of("M")})
    columns.update({f"E({e}){tag}_aJ": pick(tr.energy(e)) for e in top.branch_names})
    return columns
