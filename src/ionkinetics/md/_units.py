"""OpenMM's units at the MD boundary, named once for the type checker.

``openmm.unit`` creates its SI-prefixed units (``nanometer``, ``picosecond``, ``femtoseconds``, ...) in
a loop at import time and attaches ``Unit``'s arithmetic operators afterwards (``unit_operators.py``),
so a type checker sees neither those names nor ``value * unit``. The units the MD modules use are
named here as ``Any``: the objects are ``openmm.unit``'s own, so nothing changes at run time. Import
this module lazily, where ``openmm.unit`` would be imported (OpenMM is slow to import).
"""

from __future__ import annotations

from typing import Any

import openmm.unit as _u

# the prefixed units: made by setattr in openmm/unit/unit_definitions.py, invisible to a checker
nanometer: Any = _u.nanometer  # pyright: ignore[reportAttributeAccessIssue]
picosecond: Any = _u.picosecond  # pyright: ignore[reportAttributeAccessIssue]
femtoseconds: Any = _u.femtoseconds  # pyright: ignore[reportAttributeAccessIssue]
# a base unit (declared statically), Any like the others so that value * unit type-checks
kelvin: Any = _u.kelvin
