"""The spiking network that learns (issue 25, item 3): ionic neurons joined by plastic ionic synapses.

By default: the STDP window's sign on the network file's synapse (kinetic core only, a few seconds), the
spike waveform, the selectivity arithmetic and the file's refusals of bad input; under ``--runslow`` the
shipped file once (one compile of the neuron batch, then ~20 batched transients)."""

import dataclasses

import numpy as np
import pytest

from ionkinetics import circuits as C
from ionkinetics import experiments as E

# the shipped file's claim (README): the mean over seeds of [fires for trained] − [fires for shuffled]
SELECTIVITY_MIN = 0.5
SELECTIVITY_BEFORE_MAX = 0.2  # with the initial weights the network does not yet tell them apart


@pytest.fixture(scope="module")
def network_file():
    return C.load_circuit(C.circuits_dir() / "network.toml")


def _wave(cf):
    e = cf.experiment
    return {
        "amplitude_v": e["spike_v"],
        "head_ns": e["spike_head_ns"],
        "tail_ns": e["spike_tail_ns"],
        "tail_fraction": e["spike_tail_fraction"],
    }


def test_stdp_window_sign_pre_before_post_potentiates_post_before_pre_depresses(network_file):
    syn, names = E.network_synapse(network_file, network_file.experiment)
    assert names["membrane_plus"] == "MA" and syn.bias_v == pytest.approx(0.15)
    delays = np.array([-300.0, -100.0, -20.0, 20.0, 100.0, 300.0])
    dw = np.asarray(E.stdp_window(syn, delays, wave=_wave(network_file), dt_ns=1.0)).ravel()
    assert np.all(dw[delays > 0] > 0), dw
    assert np.all(dw[delays < 0] < 0), dw
    # the window: strongest at short delays, fading as the delay nears the spike tail's length
    assert dw[3] > dw[4] > dw[5] and dw[2] < dw[1] < dw[0]
    # near-odd in the delay at short delays: the pair is mirror-symmetric (u± ↔ −u∓)
    np.testing.assert_allclose(dw[3:5], -dw[1:3][::-1], rtol=0.2)


def test_stdp_spike_wave_is_a_head_then_a_linear_tail():
    t = np.arange(0.0, 40.0, 0.5) + 0.25
    v = E.stdp_spike_wave(t, [10.0], amplitude_v=0.3, head_ns=4.0, tail_ns=20.0, tail_fraction=0.5)
    assert np.all(v[t < 10] == 0) and np.all(v[(t > 10) & (t < 14)] == 0.3)
    tail = v[(t > 14) & (t < 34)]
    assert tail[0] == pytest.approx(-0.15, abs=0.01) and np.all(np.diff(tail) > 0) and np.all(tail < 0)
    assert np.all(v[t > 34] == 0)


def test_selectivity_is_the_seed_mean_of_trained_minus_shuffled_firing():
    s = E.selectivity([True, True, True, False], [False, True, False, False])
    assert s["per_seed"] == [1.0, 0.0, 1.0, 0.0]
    assert s["mean"] == pytest.approx(0.5) and s["seed_std"] == pytest.approx(np.std([1, 0, 1, 0], ddof=1))
    with pytest.raises(ValueError, match="same length >= 2"):
        E.selectivity([True], [False])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input_times_ns": [20.0]}, "input_times_ns must list >= 2"),
        ({"seeds": 1}, "seeds must be an integer >= 2"),
        ({"read_gain": -1.0}, "read_gain must be a finite number > 0"),
        ({"presentation_ns": 500.0}, "presentation_ns = 500 must exceed"),
        ({"membrane_plus": "Istim"}, "membrane_plus must name a membrane"),
    ],
)
def test_network_file_refuses_bad_input_naming_the_field(network_file, tmp_path, changes, message):
    cf = dataclasses.replace(network_file, experiment={**network_file.experiment, **changes})
    with pytest.raises(C.CircuitFileError, match=message):
        E.run_experiment(cf, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # the shipped file: one compile of the neuron batch and ~20 batched transients, ~40-120 s
def test_circuit_network_learns_to_fire_for_the_trained_pattern_and_not_its_shuffle(network_file, tmp_path):
    import re
    import warnings

    from ionkinetics import OutsideDataRange

    # the output neuron driven by the strongest reads takes its B3N membrane to |u| ~0.515 V, 3 % beyond its
    # calibration's data (0-0.5 V): users are warned (once); the excess is bounded here
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", OutsideDataRange)
        s = E.run_experiment(network_file, tmp_path)
    for w in seen:
        assert issubclass(w.category, OutsideDataRange), w
        assert float(re.search(r"\|V\| = ([0-9.]+) V", str(w.message)).group(1)) <= 0.52, w.message
    assert s["n_neurons"] >= 3 and s["n_synapses"] >= 2
    assert s["selectivity"] >= SELECTIVITY_MIN, s["finding"]
    assert s["selectivity_before_training"] <= SELECTIVITY_BEFORE_MAX, s["finding"]
    # the weights moved apart: training changed them
    w = np.asarray(s["weights_ps"])
    assert np.ptp(w[-1], axis=1).min() > 50.0
    for fig in s["figures"]:
        assert (tmp_path / fig).stat().st_size > 10_000
