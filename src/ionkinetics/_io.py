"""Atomic file writes: write beside the target, then rename over it."""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
from pathlib import Path


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


def write_text_atomic(path, text: str) -> Path:
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"output {str(path)!r} is a folder; it must name a file")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fchmod(fh.fileno(), file_mode())  # as readable as the figures beside it
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path, data) -> Path:
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
