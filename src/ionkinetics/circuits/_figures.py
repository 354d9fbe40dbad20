"""Figures without pyplot's global state, saved atomically (written beside the target, then renamed)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .._io import file_mode

__all__ = ["figure", "save_figure_atomic", "trace_figure"]


def figure(nrows=1, ncols=1, **kw):
    """A matplotlib Figure and its axes, outside pyplot (safe in threads, nothing left open)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=kw.pop("figsize", (6, 4)))
    return fig, fig.subplots(nrows, ncols, **kw)


def save_figure_atomic(fig, path, *, dpi: int = 120) -> Path:
    """Save ``fig`` to ``path`` (format from the suffix) so a reader never sees half a file."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"output {str(path)!r} is a folder; it must name a file")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi)
        os.chmod(tmp, file_mode())  # mkstemp's 0o600 would make figures private, unlike other files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def trace_figure(t_ns, panels, title: str):
    """Stacked panels sharing the time axis. ``panels``: ``[(y label, [(legend, y array), ...]), ...]``."""
    import numpy as np

    fig, axes = figure(len(panels), 1, sharex=True, figsize=(7, 1.9 * len(panels) + 0.4))
    for ax, (label, series) in zip(np.atleast_1d(axes), panels, strict=True):
        for name, y in series:
            ax.plot(t_ns, y, lw=1.2, label=name)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=7, loc="best")
    np.atleast_1d(axes)[-1].set_xlabel("t (ns)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
