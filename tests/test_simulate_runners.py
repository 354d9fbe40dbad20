"""simulate's named runners (issue 28) and the run recurrence's closed forms and device chunks (issue 27 goal 4)."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_allclose
from helpers import make_calibration
from ionkinetics.kinetics import _simulate, protocols, simulate, stack_params

TWO_STATE = make_calibration()
ONE_STATE = make_calibration("crown6:NaCl@1.0", dopants=())


@pytest.mark.parametrize("cal", [ONE_STATE, TWO_STATE], ids=["1 state", "2 states"])
def test_closed_run_factors_equal_the_doubled_ones(cal):
    """For K <= 2 a run's factors are the one-step closed forms at n·dt: the same P^n and energy
    vector as repeated squaring of the one-step factors, for every run length up to 2^8 - 1, and the
    identity for a length-0 pair."""
    levels = jnp.asarray([0.0, 0.2, -0.35, 0.5])
    lengths = np.arange(256, dtype=np.int32)
    pair_level = jnp.asarray(lengths % 4, dtype=jnp.int32)
    pair_length = jnp.asarray(lengths)
    closed = _simulate._run_factors(cal.params, 0.05, levels, pair_level, pair_length, 8, 0)
    doubled = _simulate._doubled_run_factors(cal.params, 0.05, levels, pair_level, pair_length, 8, 0)
    k = cal.params.n_states
    assert closed[0].shape == doubled[0].shape == (256, k, k) and closed[1].shape == doubled[1].shape == (256, k)
    assert_allclose(closed[0], doubled[0], rtol=0, atol=1e-13)
    assert_allclose(closed[1], doubled[1], rtol=1e-12, atol=1e-16)
    assert np.array_equal(np.asarray(closed[0][0]), np.eye(k)) and not np.any(np.asarray(closed[1][0]))


def test_the_recurrence_in_device_chunks_equals_the_whole_batch(monkeypatch):
    """Devices go through the run recurrence in chunks (the last one overlapping the one before): the
    trace equals the unchunked run's, for a batch of devices with their own parameters and their own
    jump times (the per-device grid, gathered along the devices)."""
    base = TWO_STATE.params
    params = stack_params(
        [dataclasses.replace(base, escape=dataclasses.replace(base.escape, k_plus_per_ns=base.escape.k_plus_per_ns * f))
         for f in np.linspace(0.3, 3.0, 11)]
    )  # fmt: skip
    batch = [protocols.pulse_train(0.4, w, 7.0, 4, duration_ns=30.0) for w in np.linspace(1.0, 3.5, 11)]
    whole = simulate(params, batch, 0.05, save_every=10)
    with monkeypatch.context() as m:
        m.setattr(_simulate, "_CHUNK_TABLE_BYTES", 1)
        m.setattr(_simulate, "_MIN_CHUNK", 4)  # chunks of 4, 4 and the last 4 of 11 (overlapping)
        assert _simulate._lane_chunk(11, 16, 2) == 4
        chunked = simulate(params, batch, 0.05, save_every=10)
    for field in ("p", "w", "g_ps", "i_pa", "e_aj"):
        assert_allclose(getattr(chunked, field), getattr(whole, field), rtol=1e-13, atol=1e-16, err_msg=field)
    assert np.array_equal(chunked.ok, whole.ok) and np.all(chunked.ok)


def test_simulate_dispatches_to_one_runner_each_with_one_return_shape(monkeypatch):
    """One device saved every step takes the per-step runner, a batch of at least _BATCH_RUNS the runs
    runner, n_pores the stochastic runner; each returns a _Saved record."""
    import jax

    seen = []
    for name in ("_per_step_runner", "_runs_runner", "_stochastic_runner"):
        original = getattr(_simulate, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            out = _original(*args, **kwargs)
            seen.append((_name, type(out).__name__))
            return out

        monkeypatch.setattr(_simulate, name, spy)
    proto = protocols.step(0.3, 1.0, 4.0, duration_ns=6.0)
    simulate(TWO_STATE, proto, 0.05)
    simulate(stack_params([TWO_STATE.params] * _simulate._BATCH_RUNS), proto, 0.05)
    simulate(TWO_STATE, proto, 0.05, n_pores=20, key=jax.random.key(0))
    assert seen == [("_per_step_runner", "_Saved"), ("_runs_runner", "_Saved"), ("_stochastic_runner", "_Saved")]
