"""MD run specs (TOML, schema ``ionkinetics.md/1``), as in ``md/*.toml``::

    schema = "ionkinetics.md/1"
    name = "crown6-NaCl-KCl-step"           # the run directory: md/runs/<name>/
    system = "crown6:NaCl@1.0+KCl@0.5"       # pore and salts, as everywhere in ionkinetics

    [membrane]                               # arguments of ionkinetics.md.build_system
    spacing_nm = 1.6                         # pore centre-to-centre (the paper: 1.5-1.7 nm)
    cells = [2, 1]                           # rectangular cells of the pore superlattice (2 pores each)
    box_z_nm = 6.0                           # box height; ΔV = E·L_z

    [bias]                                   # a kinetic-core protocol, volts, jumps on the frame grid
    protocol = { kind = "step", v = 0.5, t_on_ns = 0.5, t_off_ns = 1.5, duration_ns = 2.0 }

    [run]                                    # ionkinetics.md.RunSettings
    length_ns = 2.0
    timestep_fs = 2.0
    frame_ps = 10.0
    chunk_frames = 50                        # frames per record file and per checkpoint
    temperature_k = 298.15
    seed = 1
    platform = "auto"                        # CUDA (mixed) → OpenCL → CPU, or a name
    dcd_every_frames = 0                     # > 0: every atom to frames/chunk_*.dcd for viewing

    [forcefield]                             # optional; a cited membrane-charge option
    option = "ik-2025"                       # ionkinetics.md.FORCEFIELD_OPTIONS (default ik-2025)

    [analysis]
    blockers = ["K+"]                        # species that block a pore, for w(t) and dwell times
    skip_ns = 0.0                            # dropped at the start of each constant-bias segment

Everything is validated before anything is built or written.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .. import species as _species
from .._io import load_toml_as
from ..kinetics import protocols as _protocols
from ._runner import RunSettings

__all__ = ["MD_SCHEMA", "MDSpec", "MDSpecError", "load_md_spec", "parse_md_spec"]

MD_SCHEMA = "ionkinetics.md/1"
_MEMBRANE_KEYS = {"spacing_nm", "cells", "box_xy_nm", "box_z_nm"}
_RUN_KEYS = {f.name for f in dataclasses.fields(RunSettings)}
_ANALYSIS_KEYS = {"blockers", "skip_ns"}


class MDSpecError(ValueError):
    """An MD spec that breaks the schema; the message names the field."""


@dataclasses.dataclass(frozen=True)
class MDSpec:
    """A validated MD spec: the run's name, system id, membrane geometry, bias protocol, run settings, the blockers
    and skip time (ns) its analysis uses, the raw TOML mapping and the file it came from."""

    name: str
    system: str
    membrane: dict
    protocol: _protocols.Protocol
    settings: RunSettings
    blockers: tuple
    skip_ns: float
    raw: dict
    path: str | None
    forcefield_option: str | None = None

    def build(self):
        """The OpenMM system (``ionkinetics.md.MDSystem``)."""
        from ._system import build_system

        return build_system(self.system, seed=self.settings.seed, forcefield_option=self.forcefield_option, **self.membrane)


def _table(raw, key, allowed) -> dict:
    table = raw.get(key, {})
    if not isinstance(table, dict):
        raise MDSpecError(f"[{key}] must be a table; got {table!r}")
    unknown = set(table) - allowed
    if unknown:
        raise MDSpecError(f"[{key}] has unknown fields {sorted(unknown)}; allowed {sorted(allowed)}")
    return dict(table)


def parse_md_spec(raw: dict, *, path: str | None = None) -> MDSpec:
    """Validate an MD spec mapping (as read from TOML) into an :class:`MDSpec`; :class:`MDSpecError` names a bad field."""
    if raw.get("schema") != MD_SCHEMA:
        raise MDSpecError(f"field 'schema' must be {MD_SCHEMA!r}; got {raw.get('schema')!r}")
    name = raw.get("name", Path(path).stem if path else None)
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise MDSpecError(f"field 'name' must be a plain directory name; got {name!r}")
    try:
        system = str(_species.parse_system_id(raw.get("system")))
    except (TypeError, ValueError) as exc:
        raise MDSpecError(f"field 'system': {exc}") from None
    membrane = _table(raw, "membrane", _MEMBRANE_KEYS)
    for key in ("cells", "box_xy_nm"):
        if key in membrane:
            membrane[key] = tuple(membrane[key])
    bias = _table(raw, "bias", {"protocol"})
    if "protocol" not in bias:
        raise MDSpecError('[bias] needs a protocol, e.g. protocol = { kind = "dc", v = 0.3, duration_ns = 1.0 }')
    try:
        protocol = _protocols.from_dict(bias["protocol"], "[bias].protocol")
    except ValueError as exc:
        raise MDSpecError(str(exc)) from None
    run = _table(raw, "run", _RUN_KEYS)
    try:
        settings = RunSettings(**run)
    except (TypeError, ValueError) as exc:
        raise MDSpecError(f"[run]: {exc}") from None
    if abs(protocol.duration_ns - settings.length_ns) > 1e-9 * settings.length_ns:
        raise MDSpecError(f"[bias].protocol lasts {protocol.duration_ns:g} ns but [run].length_ns is {settings.length_ns:g}")
    try:
        protocol.sample(settings.frame_ps / 1000.0)
    except ValueError as exc:
        raise MDSpecError(f"[bias].protocol: {exc} (jumps must fall on the {settings.frame_ps:g} ps frame grid)") from None
    analysis = _table(raw, "analysis", _ANALYSIS_KEYS)
    cations = _species.parse_system_id(system).cation_molar
    blockers = tuple(analysis.get("blockers", ()))
    for b in blockers:
        if b not in cations:
            raise MDSpecError(f"[analysis].blockers must name cations of {system} ({', '.join(cations)}); got {b!r}")
    skip = analysis.get("skip_ns", 0.0)
    if isinstance(skip, bool) or not isinstance(skip, (int, float)) or skip < 0:
        raise MDSpecError(f"[analysis].skip_ns must be a number >= 0; got {skip!r}")
    ff = _table(raw, "forcefield", {"option"})
    option = ff.get("option")
    if option is not None:
        from ._forcefield import FORCEFIELD_OPTIONS

        if not isinstance(option, str) or option not in FORCEFIELD_OPTIONS:
            raise MDSpecError(f"[forcefield].option must be one of {', '.join(sorted(FORCEFIELD_OPTIONS))}; got {option!r}")
    return MDSpec(name, system, membrane, protocol, settings, blockers, float(skip), raw, path, option)


def load_md_spec(path) -> MDSpec:
    """Read and validate an MD spec TOML file (:func:`parse_md_spec`)."""
    return load_toml_as(path, "MD spec", MDSpecError, parse_md_spec)
