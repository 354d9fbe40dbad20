"""Experiments on ionic circuits: what ``ionkinetics circuit run FILE`` measures, one layer above the
circuit engine (:mod:`ionkinetics.circuits`: graph, compile, solver, SPICE, circuit files).

:mod:`ionkinetics.circuits` parses and compiles a circuit file and keeps its ``[experiment]`` table
as data; this package registers the kinds (:data:`EXPERIMENTS`) and runs them
(:func:`run_experiment`): the transient, pulse, potentiation, memristor, retention and band-pass
sweep (``_experiments``), the ionic neuron and its design search (``_neuron``), the bias-steered
synapse (``_plasticity``) and the spiking network that learns by STDP (``_network``).
"""

from .. import _precision  # noqa: F401  (first: sets JAX up once, before any JAX code runs)
from ._experiments import ENERGY_SIGN_CONVENTION as ENERGY_SIGN_CONVENTION
from ._experiments import EXPERIMENTS as EXPERIMENTS
from ._experiments import describe_pulse_train_response as describe_pulse_train_response
from ._experiments import rises_with_every_pulse as rises_with_every_pulse
from ._experiments import run_experiment as run_experiment
from ._network import SynapsePair as SynapsePair
from ._network import network_synapse as network_synapse
from ._network import selectivity as selectivity
from ._network import stdp_spike_wave as stdp_spike_wave
from ._network import stdp_window as stdp_window
from ._neuron import NeuronParts as NeuronParts
from ._neuron import classify_fi as classify_fi
from ._neuron import design_loss as design_loss
from ._neuron import detect_spikes as detect_spikes
from ._neuron import equilibria_stability as equilibria_stability
from ._neuron import neuron_parts as neuron_parts
from ._neuron import oscillatory_designs as oscillatory_designs
from ._plasticity import fit_nonlinearity as fit_nonlinearity
