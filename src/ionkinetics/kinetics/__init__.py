"""The JAX Markov occupancy model of voltage-gated pore conductance.

A pore is open or blocked by a dopant at one of its sites; rates follow a saturating
two-polarity Bell law; occupancy advances by exact matrix exponentials (mean-field) or exact
multinomial moves of N pores (stochastic). See :func:`simulate`.
"""

from .. import _precision  # noqa: F401  (first: sets JAX up once, before any JAX code runs)
from . import protocols as protocols
from ._params import BellRate as BellRate
from ._params import KineticParams as KineticParams
from ._params import OpenConductance as OpenConductance
from ._params import stack_params as stack_params
from ._params import thermal_voltage_v as thermal_voltage_v
from ._rates import HOLD_CORNER_V as HOLD_CORNER_V
from ._rates import PA_PER_E_PER_NS as PA_PER_E_PER_NS
from ._rates import bell_rate_per_ns as bell_rate_per_ns
from ._rates import bell_terms_per_ns as bell_terms_per_ns
from ._rates import conductance_ps as conductance_ps
from ._rates import gating_current_vector_pa as gating_current_vector_pa
from ._rates import generator as generator
from ._rates import max_squarings_for as max_squarings_for
from ._rates import mean_relaxation_time_ns as mean_relaxation_time_ns
from ._rates import membrane_current_pa as membrane_current_pa
from ._rates import open_conductance_ps as open_conductance_ps
from ._rates import propagator_and_energy as propagator_and_energy
from ._rates import propagators as propagators
from ._rates import state_weights as state_weights
from ._rates import steady_state as steady_state
from ._rates import step_occupancy as step_occupancy
from ._rates import transition_matrix as transition_matrix
from ._rates import transition_rates_per_ns as transition_rates_per_ns
from ._simulate import Trace as Trace
from ._simulate import mean_field_scan as mean_field_scan
from ._simulate import multinomial_counts as multinomial_counts
from ._simulate import sample_voltages as sample_voltages
from ._simulate import simulate as simulate
from ._simulate import stochastic_scan as stochastic_scan
from ._simulate import switching_energy as switching_energy
