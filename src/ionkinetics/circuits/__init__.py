"""Circuits of ionic membranes: a networkx graph of two-terminal elements, compiled once to
arrays and solved by a jitted implicit transient (see ``_solver``); the engine only. What a circuit
file's ``[experiment]`` table measures (pulse, neuron, synapse, network, ...) is
:mod:`ionkinetics.experiments`, one layer up.

Sign conventions. Every element is a branch from its first node ``a`` to its second ``b``:
its voltage is ``v = V(a) − V(b)`` and its current ``i`` flows from ``a`` to ``b`` through it
(:meth:`CircuitTrace.i`, :meth:`CircuitTrace.vb`). Its energy (:meth:`CircuitTrace.energy`, and
``energies_aj`` in every experiment summary) is the energy it **absorbed**, ``∫ v·i dt`` in aJ
from t = 0, so per element:

- voltage and current sources: negative while they **deliver** energy to the circuit; a
  summary's ``delivered_aj`` is ``−absorbed``;
- resistors and membranes: positive, energy **dissipated** (a membrane's carrier current and
  its dopant's gating current alike);
- capacitors: energy **stored**, ``½C·(v(t)² − v(0)²)``, negative while discharging.

The absorbed energies sum to zero at every step (Tellegen's theorem): delivered = dissipated +
stored, to round-off (a summary's ``balance_aj``).
"""

from .. import _precision  # noqa: F401  (first: sets JAX up once, before any JAX code runs)
from ._figures import figure as figure
from ._figures import figure_output as figure_output
from ._figures import save_figure_atomic as save_figure_atomic
from ._figures import trace_columns as trace_columns
from ._figures import trace_figure as trace_figure
from ._files import CIRCUIT_SCHEMA as CIRCUIT_SCHEMA
from ._files import CircuitFile as CircuitFile
from ._files import CircuitFileError as CircuitFileError
from ._files import circuits_dir as circuits_dir
from ._files import list_circuits as list_circuits
from ._files import load_circuit as load_circuit
from ._files import parse_circuit as parse_circuit
from ._graph import CAP_UNIT_PER_FARAD as CAP_UNIT_PER_FARAD
from ._graph import GROUND as GROUND
from ._graph import Block as Block
from ._graph import Capacitor as Capacitor
from ._graph import CurrentSource as CurrentSource
from ._graph import Element as Element
from ._graph import Membrane as Membrane
from ._graph import Resistor as Resistor
from ._graph import VoltageSource as VoltageSource
from ._graph import circuit as circuit
from ._graph import elements as elements
from ._graph import parallel as parallel
from ._graph import series as series
from ._graph import validate as validate
from ._solver import CircuitTrace as CircuitTrace
from ._solver import Compiled as Compiled
from ._solver import Topology as Topology
from ._solver import compile_circuit as compile_circuit
from ._solver import operating_point as operating_point
from ._solver import solve as solve
from ._solver import source_batch as source_batch
from ._solver import transient as transient
from ._spice import read_spice_data as read_spice_data
from ._spice import to_spice as to_spice
