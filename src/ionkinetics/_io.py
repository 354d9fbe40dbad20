"""Atomic file writes (write beside the target, then rename over it), figure saving in the format
and resolution the user asked for, and tables of traces as CSV."""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import tempfile
import textwrap
import tomllib
from pathlib import Path

# Okabe & Ito's eight colours, distinguishable with every common colour-vision deficiency (the
# palette Nature's and Science's figure guides point to); black is last so it is free for drives.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
FIGURE_FORMATS = ("png", "pdf", "svg")
DEFAULT_DPI = 300  # raster figures (png) and raster parts of vector ones; a journal's minimum for line art is 300-600

_FIGURE_OUTPUT: contextvars.ContextVar[tuple[str, int]] = contextvars.ContextVar(
    "ionkinetics_figure_output", default=("png", DEFAULT_DPI)
)


def read_toml(path, what: str, error: type[Exception]) -> tuple[Path, dict]:
    """Read a TOML file; a missing file raises FileNotFoundError naming ``what``, bad TOML ``error``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {str(path)!r} does not exist")
    try:
        with open(path, "rb") as fh:
            return path, tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Mode of a new file as ``open()`` makes it (0o666 less the umask; mkstemp's 0o600 is private)."""
    return 0o666 & ~_umask()


def write_atomic(path, write, *, suffix: str = ".tmp") -> Path:
    """The one atomic write: ``write(tmp)`` fills a temporary beside ``path`` (same folder, so the
    rename is atomic; ``suffix`` keeps writers that add their own extension, such as numpy's
    ``.npz``, from renaming it), which is flushed to disk, given the mode ``open()`` would give a new
    file (mkstemp's 0o600 would make it private) and renamed over ``path``. A failure (disk full, a
    signal) leaves ``path`` as it was and no temporary behind."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"output {str(path)!r} is a folder; it must name a file")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path, text: str) -> Path:
    """``text`` written to ``path`` as UTF-8 through :func:`write_atomic`; returns the path."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes_atomic(path, data: bytes) -> Path:
    """``data`` written to ``path`` through :func:`write_atomic`; returns the path."""
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_npz_atomic(path, **arrays) -> Path:
    """``numpy.savez_compressed`` of ``arrays`` to ``path``, atomically."""
    import numpy as np

    return write_atomic(path, lambda tmp: np.savez_compressed(tmp, **arrays), suffix=".tmp.npz")


def git_commit(*, mark_dirty: bool = False) -> str | None:
    """The commit of the git checkout this package runs from (``None`` for an installed copy, or
    without git), ``+dirty`` appended when ``mark_dirty`` and the package's files have changes."""
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=False)
        if out.returncode != 0 or not out.stdout.strip():
            return None
        commit = out.stdout.strip()
        if mark_dirty:
            st = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=here, capture_output=True, text=True,
                                timeout=10, check=False)  # fmt: skip
            commit += "+dirty" if st.stdout.strip() else ""
        return commit
    except (OSError, subprocess.SubprocessError):
        return None


def write_json_atomic(path, data) -> Path:
    """``data`` as indented JSON (keys in their given order, trailing newline) written atomically to ``path``; returns it."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def load_toml_as(path, what: str, error: type[Exception], parse):
    """``parse(raw, path=...)`` of a TOML file; any ValueError comes back as ``error`` prefixed by the path."""
    path, raw = read_toml(path, what, error)
    try:
        return parse(raw, path=str(path))
    except ValueError as exc:
        raise error(f"{path}: {exc}") from None


def shipped_dir(name: str) -> Path:
    """Folder of shipped data ``name`` (``calibration``, ``circuits``, ``tasks``): the copy packaged in a
    wheel (``ionkinetics/_shipped/<name>``) if there is one, else ``<name>/`` at the root of a checkout."""
    from importlib import resources

    packaged = resources.files("ionkinetics") / "_shipped" / name
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / name


def check_figure_output(figure_format, dpi) -> tuple[str, int]:
    """``(format, dpi)`` checked: format one of :data:`FIGURE_FORMATS`, dpi a whole number 50–2400."""
    fmt = str(figure_format).lower().lstrip(".")
    if fmt not in FIGURE_FORMATS:
        raise ValueError(f"figure format must be one of {', '.join(FIGURE_FORMATS)}; got {figure_format!r}")
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not 50 <= dpi <= 2400:
        raise ValueError(f"dpi must be a whole number from 50 to 2400; got {dpi!r}")
    return fmt, dpi


@contextlib.contextmanager
def figure_output(figure_format: str | None = None, dpi: int | None = None):
    """Within the block, :func:`save_figure` writes ``figure_format`` (png, pdf or svg) at ``dpi``;
    ``None`` keeps the enclosing setting (default png at :data:`DEFAULT_DPI`). Threads started inside
    the block do not inherit it: pass the values on (``current_figure_output()``)."""
    fmt0, dpi0 = _FIGURE_OUTPUT.get()
    fmt, dpi = check_figure_output(fmt0 if figure_format is None else figure_format, dpi0 if dpi is None else dpi)
    token = _FIGURE_OUTPUT.set((fmt, dpi))
    try:
        yield
    finally:
        _FIGURE_OUTPUT.reset(token)


def current_figure_output() -> tuple[str, int]:
    """The ``(format, dpi)`` :func:`save_figure` uses here."""
    return _FIGURE_OUTPUT.get()


def _main_axes(fig):
    """The figure's data panels in reading order (rows top to bottom, then left to right): no
    colour bars, no twin axes sharing a panel's box, nothing invisible."""
    seen, panels = [], []
    for ax in fig.axes:
        if not ax.get_visible() or ax.get_label() == "<colorbar>" or not ax.axison:
            continue
        box = tuple(round(x, 3) for x in ax.get_position().bounds)
        if box in seen:
            continue
        seen.append(box)
        panels.append(ax)
    return sorted(panels, key=lambda ax: (-round(ax.get_position().y1, 2), round(ax.get_position().x0, 2)))


def label_panels(fig) -> list[str]:
    """Bold letters a, b, c, ... at the top left of each panel of a figure with more than one
    (reading order); a figure already lettered is left alone. Returns the letters drawn."""
    panels = _main_axes(fig)
    if len(panels) < 2 or getattr(fig, "_ionkinetics_lettered", False):
        return []
    letters = [chr(ord("a") + k) for k in range(len(panels))]
    for ax, letter in zip(panels, letters, strict=True):
        ax.text(-0.02, 1.02, letter, transform=ax.transAxes, ha="right", va="bottom", fontsize=11, fontweight="bold")
    fig._ionkinetics_lettered = True
    return letters


def _wrap_to_width(text_artist, width_px, renderer) -> bool:
    """Re-wrap a title wider than ``width_px`` onto as many lines as it needs; True if it changed."""
    text = text_artist.get_text()
    if not text:
        return False
    extent = text_artist.get_window_extent(renderer)
    if extent.width <= width_px:
        return False
    longest = max(len(line) for line in text.splitlines())
    chars = max(20, int(longest * width_px / extent.width * 0.95))
    text_artist.set_text("\n".join(textwrap.fill(line, chars) for line in text.splitlines()))
    return True


def fit_titles(fig) -> bool:
    """Wrap the figure's suptitle and each panel's title onto more lines where they would run past
    the figure's or the panel's edges (a clipped title is unreadable in print); True if any changed."""
    canvas = fig.canvas
    if canvas is None or not hasattr(canvas, "get_renderer"):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    changed = False
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None:
        changed |= _wrap_to_width(suptitle, 0.98 * fig.bbox.width, renderer)
    for ax in fig.axes:
        changed |= _wrap_to_width(ax.title, 0.98 * ax.bbox.width, renderer)  # inside the panel: clear of its letter
    return changed


def _tight_below_suptitle(fig) -> None:
    """``tight_layout`` with the panels (their letters and titles included) kept below the figure's
    suptitle, which tight_layout itself does not make room for."""
    fig.tight_layout()
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is None or not suptitle.get_text():
        return
    renderer = fig.canvas.get_renderer()
    box = suptitle.get_window_extent(renderer)
    top = box.y0 / fig.bbox.height - 0.01
    if 0.3 < top < 1.0:
        fig.tight_layout(rect=(0.0, 0.0, 1.0, top))


def _declutter_log_ticks(fig) -> None:
    """On a log axis whose minor tick labels (2×10², 3×10², ...) run into each other or into the
    major ones, keep the major labels only."""
    from matplotlib.ticker import NullFormatter

    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() != "log":
                continue
            boxes = [
                t.label1.get_window_extent(renderer)
                for t in [*axis.get_major_ticks(), *axis.get_minor_ticks()]
                if t.label1.get_visible() and t.label1.get_text()
            ]
            if any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :]):
                axis.set_minor_formatter(NullFormatter())


def save_figure(fig, path, *, dpi: int | None = None) -> Path:
    """Save ``fig`` atomically in the format of :func:`figure_output` (the suffix of ``path`` is
    replaced by it) at its dpi (or ``dpi``), with panel letters on figures of several panels and
    titles wrapped to fit. Returns the path written."""
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    fmt, dpi0 = _FIGURE_OUTPUT.get()
    dpi = check_figure_output(fmt, dpi0 if dpi is None else dpi)[1]
    path = Path(path).with_suffix("." + fmt)
    if path.is_dir():
        raise IsADirectoryError(f"output {str(path)!r} is a folder; it must name a file")
    label_panels(fig)
    fit_titles(fig)
    fig.canvas.draw()  # tick labels exist only once drawn
    _declutter_log_ticks(fig)
    if not isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):  # constrained layout makes its own room
        _tight_below_suptitle(fig)  # again: room for the letters and a title that now takes two lines
    # "tight" keeps every title, label and letter inside the saved page
    return write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=fmt, bbox_inches="tight", pad_inches=0.04),
                        suffix=path.suffix)  # fmt: skip


def columns_csv(columns) -> str:
    """CSV text of ``{header: 1-D array}`` columns of equal length, 9 significant digits. Every
    header carries its unit (``t_ns``, ``V(in)_V``, ``w(M1)_fraction``): :func:`check_unit_headers`."""
    import csv
    import io

    import numpy as np

    names = list(columns)
    check_unit_headers(names)
    data = [np.asarray(columns[n], dtype=float).reshape(-1) for n in names]
    lengths = {d.size for d in data}
    if len(lengths) != 1:
        raise ValueError(f"CSV columns must have equal lengths; got {dict(zip(names, (d.size for d in data), strict=True))}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    for row in np.column_stack(data):
        writer.writerow([f"{x:.9g}" for x in row])
    return buf.getvalue()


UNIT_SUFFIXES = (
    "_ns", "_v", "_V", "_pa", "_pA", "_ps", "_pS", "_aj", "_aJ", "_fraction", "_ghz", "_GHz", "_per_ns", "_molar",
    "_nm", "_fc", "_fC", "_ratio", "_count", "_index", "_pa_v", "_mhz", "_MHz",
)  # fmt: skip


def check_unit_headers(names) -> None:
    """Every column name ends in a unit (:data:`UNIT_SUFFIXES`; ``_fraction``, ``_ratio``, ``_count``
    and ``_index`` for dimensionless numbers)."""
    bad = [n for n in names if not str(n).endswith(UNIT_SUFFIXES)]
    if bad:
        raise ValueError(f"CSV column names must end in a unit ({', '.join(UNIT_SUFFIXES)}); got {bad}")


def write_columns_csv(path, columns) -> Path:
    """Write ``columns`` (see :func:`columns_csv`) to ``path`` atomically."""
    return write_text_atomic(path, columns_csv(columns))
