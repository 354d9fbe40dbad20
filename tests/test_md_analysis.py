"""MD analysis on synthetic trajectories with known answers: membrane crossings, current and
conductance, block-bootstrap errors, per-pore occupancy and w(t), dwell-time rates with censoring."""

import itertools
import json
import math

import numpy as np
import pytest
import scipy.signal

from conftest import NSIGMA_MAX, assert_allclose
from ionkinetics.md._analysis import (
    PA_PER_E_PER_NS,
    CylinderSite,
    analyze_trajectory,
    block_bootstrap_se,
    count_crossings,
    dwell_intervals,
    dwell_times,
    filter_short_dwells,
    ionic_current,
    pore_occupancy,
    unwrap_z,
)

L_Z = 10.0
Z_M = 5.0
STEP_NM = 0.05  # largest per-frame move on the synthetic paths


def polyline(knots, step_nm=STEP_NM):
    """Unwrapped z along straight segments between ``knots``, at most ``step_nm`` per frame."""
    out = [np.array([knots[0]], dtype=float)]
    for a, b in itertools.pairwise(knots):
        n = max(1, math.ceil(abs(b - a) / step_nm))
        out.append(np.linspace(a, b, n + 1)[1:])
    return np.concatenate(out)


def stack_paths(paths):
    """(n_frames, n_ions): each path held at its last value until the longest one ends."""
    n = max(len(p) for p in paths)
    return np.stack([np.concatenate([p, np.full(n - len(p), p[-1])]) for p in paths], axis=1)


# (unwrapped z knots relative to the membrane at 5 nm, up crossings, down crossings)
CASES = {
    "up": ([3.0, 7.0], 1, 0),
    "down": ([7.0, 3.0], 0, 1),
    "wrap through the top of the box and back": ([8.0, 12.0, 8.5, 11.0], 0, 0),
    "wrap through the bottom of the box": ([2.0, -2.0, 1.0], 0, 0),
    "flicker across the plane": ([4.0, 4.8, 5.3, 4.6, 5.45, 4.55, 5.2, 4.0], 0, 0),
    "into the band from below and back out below": ([3.0, 5.45, 3.0], 0, 0),
    "into the band from above and back out above": ([7.0, 4.55, 7.0], 0, 0),
    "up then crossing back": ([4.0, 6.5, 3.5], 1, 1),
    "up, back, up again": ([4.0, 6.5, 3.5, 7.0], 2, 1),
    "a full period up, wrapping on the way": ([3.0, 16.0], 2, 0),
    "down, wrapping through the bottom": ([7.0, -3.5], 0, 1),
    "jitter in the band, then a real transit": ([4.0, 5.4, 4.6, 5.4, 4.6, 6.0], 1, 0),
    "starts inside the band, leaves up (unfinished transit)": ([5.2, 7.0], 0, 0),
    "ends inside the band (unfinished transit)": ([3.0, 5.3], 0, 0),
}
SPECIES = ["K+", "Cl-", "Na+"]


@pytest.mark.parametrize("membrane_z_nm", [5.0, 0.2, 9.9, -5.0, 25.0])
def test_crossings_count_exactly_with_wrap_flicker_both_directions_and_many_ions(membrane_z_nm):
    names = list(CASES)
    paths = [np.array(polyline(CASES[n][0])) - Z_M + membrane_z_nm for n in names]
    z = np.mod(stack_paths(paths), L_Z)  # wrapped into [0, L_z), as a runner writes them
    species = [SPECIES[k % 3] for k in range(len(names))]
    c = count_crossings(z, species, box_z_nm=L_Z, membrane_z_nm=membrane_z_nm, dt_ns=0.01, hysteresis_nm=0.5)
    for k, name in enumerate(names):
        assert (c.up_i[k], c.down_i[k]) == CASES[name][1:], name
    assert c.max_step_nm <= STEP_NM + 1e-9
    for s, name in enumerate(SPECIES):
        ions = [k for k in range(len(names)) if species[k] == name]
        row = c.by_species()[name]
        assert row["up"] == sum(CASES[names[k]][1] for k in ions)
        assert row["down"] == sum(CASES[names[k]][2] for k in ions)
        assert row["net"] == int(c.dn_ts[:, s].sum()) == int(c.net_i[ions].sum())


def test_flicker_counts_only_without_the_hysteresis_band():
    rng = np.random.default_rng(20260101)
    z = Z_M + rng.uniform(-0.49, 0.49, size=(5000, 4))  # jitter inside the band, never a transit
    species = ["K+"] * 4
    banded = count_crossings(z, species, box_z_nm=L_Z, membrane_z_nm=Z_M, dt_ns=0.001, hysteresis_nm=0.5)
    assert banded.up_i.sum() == banded.down_i.sum() == 0
    bare = count_crossings(z, species, box_z_nm=L_Z, membrane_z_nm=Z_M, dt_ns=0.001, hysteresis_nm=0.0)
    assert bare.up_i.min() > 100  # the test would catch a counter without hysteresis
    assert abs(int(bare.net_i.sum())) <= 4


def test_unwrap_follows_minimum_image():
    u = polyline([1.0, 38.0, -12.0])
    assert_allclose(unwrap_z(np.mod(u, L_Z)[:, None], L_Z)[:, 0], u - u[0] + np.mod(u[0], L_Z), rtol=0, atol=1e-9)


def constant_flux_run(n_steps=20000, dt_ns=0.002):
    """3 K+ moving +0.05 nm per frame (100 periods each), 2 Cl- moving −0.02 nm per frame (40 each)."""
    t = np.arange(n_steps + 1)[:, None]
    z = np.concatenate([2.0 + 0.05 * t + 0.3 * np.arange(3), 8.0 - 0.02 * t + 0.3 * np.arange(2)], axis=1)
    return np.mod(z, L_Z), ["K+"] * 3 + ["Cl-"] * 2, dt_ns


def test_current_from_constant_flux_is_exact():
    z, species, dt = constant_flux_run()
    c = count_crossings(z, species, box_z_nm=L_Z, membrane_z_nm=Z_M, dt_ns=dt)
    assert c.up_i.tolist() == [100, 100, 100, 0, 0] and c.down_i.tolist() == [0, 0, 0, 40, 40]
    cur = ionic_current(c, v=0.5, block_ns=1.0, n_bootstrap=500, seed=7)
    duration_ns = 20000 * dt
    exact_pa = (3 * 100 * (+1) + 2 * (-40) * (-1)) * PA_PER_E_PER_NS / duration_ns
    assert_allclose(PA_PER_E_PER_NS, 160.2176634, rtol=1e-15, atol=0)
    assert_allclose(cur.current_pa, exact_pa, rtol=1e-12, atol=0)
    assert_allclose(cur.current_by_species_pa["K+"], 300 * PA_PER_E_PER_NS / duration_ns, rtol=1e-12, atol=0)
    assert_allclose(cur.current_by_species_pa["Cl-"], 80 * PA_PER_E_PER_NS / duration_ns, rtol=1e-12, atol=0)
    assert_allclose(cur.conductance_ps, exact_pa / 0.5, rtol=1e-12, atol=0)
    assert_allclose(cur.conductance_se_ps, cur.current_se_pa / 0.5, rtol=1e-12, atol=0)
    assert cur.n_blocks == 40 and cur.block_ns == pytest.approx(1.0)
    # the bootstrap spread of the mean of 40 blocks: population std of the block currents / √40,
    # up to the Monte Carlo error of 500 resamples
    block_pa = (c.dn_ts @ np.array([1.0, -1.0])).reshape(40, 500).sum(axis=1) * PA_PER_E_PER_NS / 1.0
    assert abs(cur.current_se_pa / (block_pa.std() / math.sqrt(40)) - 1) < NSIGMA_MAX / math.sqrt(2 * 500)
    again = ionic_current(c, v=0.5, block_ns=1.0, n_bootstrap=500, seed=7)
    assert again.current_se_pa == cur.current_se_pa  # same seed, same error
    reversed_run = count_crossings(z[::-1], species, box_z_nm=L_Z, membrane_z_nm=Z_M, dt_ns=dt)
    assert_allclose(ionic_current(reversed_run, v=-0.5).conductance_ps, exact_pa / 0.5, rtol=1e-12, atol=0)
    assert ionic_current(c).conductance_ps is None and ionic_current(c, v=0.0).conductance_ps is None


def ar1(rng, phi, n):
    """A stationary AR(1) series x_t = φ·x_{t−1} + ε_t, ε ~ N(0, 1)."""
    e = rng.standard_normal(n)
    x0 = rng.standard_normal() / math.sqrt(1 - phi**2)
    x, _ = scipy.signal.lfilter([1.0], [1.0, -phi], e, zi=[phi * x0])
    return x


def test_block_bootstrap_error_matches_the_exact_error_of_a_correlated_series():
    phi, block_len, n_blocks, n_bootstrap = 0.9, 500, 1000, 2000
    x = ar1(np.random.default_rng(11), phi, block_len * n_blocks)
    se = float(block_bootstrap_se(x, block_len=block_len, n_bootstrap=n_bootstrap, seed=3))
    # exact variance of one block's mean, then of the mean of n_blocks (nearly independent) blocks;
    # the bootstrap of n_blocks block means estimates (n_blocks − 1)/n_blocks of that variance
    k = np.arange(1, block_len)
    var_block = (1 + 2 * np.sum((1 - k / block_len) * phi**k)) / (1 - phi**2) / block_len
    expected = math.sqrt(var_block / n_blocks * (n_blocks - 1) / n_blocks)
    # relative sampling error of an SE estimated from n_blocks blocks and n_bootstrap resamples
    rel_sigma = math.sqrt(1 / (2 * (n_blocks - 1)) + 1 / (2 * n_bootstrap))
    assert abs(se / expected - 1) < NSIGMA_MAX * rel_sigma
    naive = x.std() / math.sqrt(x.size)  # ignores the correlation: ~4.4 times too small
    assert abs(naive / expected - 1) > NSIGMA_MAX * rel_sigma


def telegraph(rng, *, k_trap, k_escape, n_pores, n_frames, dt_ns):
    """Open/blocked series of independent two-state pores (exact exponential dwells, stationary
    start) sampled every dt_ns: (n_frames, n_pores), True = blocked."""
    t_end = (n_frames - 1) * dt_ns
    t_frames = np.arange(n_frames) * dt_ns
    blocked0 = rng.random(n_pores) < k_trap / (k_trap + k_escape)
    n_max = math.ceil(2 * t_end / (1 / k_trap + 1 / k_escape)) + 60
    parity = np.arange(n_max)[None, :] % 2 == 1
    blocked_j = blocked0[:, None] ^ parity  # state of dwell j of each pore
    switch = np.cumsum(rng.exponential(size=(n_pores, n_max)) / np.where(blocked_j, k_escape, k_trap), axis=1)
    assert (switch[:, -1] > t_end).all()
    out = np.empty((n_frames, n_pores), dtype=bool)
    for p in range(n_pores):
        out[:, p] = blocked0[p] ^ (np.searchsorted(switch[p], t_frames, side="right") % 2 == 1)
    return out


K_TRAP, K_ESCAPE = 0.4, 0.1  # per ns


def within(estimate, true, se):
    return abs(estimate - true) < NSIGMA_MAX * se


def test_dwell_rates_recovered_from_a_long_telegraph_process():
    rng = np.random.default_rng(42)
    x = telegraph(rng, k_trap=K_TRAP, k_escape=K_ESCAPE, n_pores=50, n_frames=100_001, dt_ns=0.002)
    d = dwell_times(x, dt_ns=0.002, n_bootstrap=1000, seed=5)
    assert d.trap.n_events > 500 and d.escape.n_events > 500
    assert within(d.trap.rate_per_ns, K_TRAP, d.trap.se_per_ns)
    assert within(d.escape.rate_per_ns, K_ESCAPE, d.escape.se_per_ns)
    assert_allclose(d.trap.exposure_ns + d.escape.exposure_ns, 50 * 100_000 * 0.002, rtol=1e-12, atol=0)
    for r in (d.trap, d.escape):
        assert_allclose(r.se_per_ns, r.rate_per_ns / math.sqrt(r.n_events), rtol=1e-12, atol=0)
        # bootstrap and Fisher errors estimate the same spread: relative sampling error of a
        # bootstrap SE from 1000 resamples, and of an SE from n events, added in quadrature
        rel_sigma = math.sqrt(1 / (2 * 1000) + 1 / (2 * r.n_events))
        assert abs(r.se_boot_per_ns / r.se_per_ns - 1) < NSIGMA_MAX * rel_sigma


def test_censoring_handled_in_short_runs_where_naive_estimators_fail():
    """Runs of 4 ns with a 10 ns mean blocked dwell: most blocked intervals are censored."""
    rng = np.random.default_rng(7)
    dt = 0.004
    x = telegraph(rng, k_trap=K_TRAP, k_escape=K_ESCAPE, n_pores=4000, n_frames=1001, dt_ns=dt)
    d = dwell_times(x, dt_ns=dt)
    iv = d.intervals
    assert within(d.trap.rate_per_ns, K_TRAP, d.trap.se_per_ns)
    assert within(d.escape.rate_per_ns, K_ESCAPE, d.escape.se_per_ns)
    for blocked, true, ours in ((False, K_TRAP, d.trap), (True, K_ESCAPE, d.escape)):
        sel = iv.blocked_k == blocked
        # ignoring censored intervals: only dwells that fit inside the run survive, too short
        complete = sel & ~iv.left_censored_k & ~iv.right_censored_k
        k_complete = complete.sum() / iv.exposure_ns_k[complete].sum()
        assert not within(k_complete, true, k_complete / math.sqrt(complete.sum()))
        # treating the first interval as censored too (exposure, no event) loses real events
        k_no_left = iv.event_k[sel & ~iv.left_censored_k].sum() / ours.exposure_ns
        assert not within(k_no_left, true, ours.se_per_ns)
    assert k_complete > 2 * K_ESCAPE  # the escape rate from complete intervals alone is off by > 2x


def test_intervals_of_a_hand_made_series():
    x = np.array([1, 1, 1, 0, 0, 1, 1, 1, 1, 0], dtype=int)
    iv = dwell_intervals(x, dt_ns=0.5)
    assert iv.blocked_k.tolist() == [True, False, True, False]
    assert iv.n_frames_k.tolist() == [3, 2, 4, 1]
    assert_allclose(iv.exposure_ns_k, [1.5, 1.0, 2.0, 0.0], rtol=0, atol=0)
    assert iv.event_k.tolist() == [True, True, True, False]
    assert iv.left_censored_k.tolist() == [True, False, False, False]
    assert iv.right_censored_k.tolist() == [False, False, False, True]
    d = dwell_times(x, dt_ns=0.5)
    assert (d.trap.n_events, d.escape.n_events) == (1, 2)
    assert_allclose([d.trap.rate_per_ns, d.escape.rate_per_ns], [1 / 1.0, 2 / 3.5], rtol=1e-15, atol=0)
    whole = dwell_times(np.zeros(20, dtype=bool), dt_ns=0.5)  # never blocked: one doubly censored interval
    assert whole.trap.rate_per_ns == 0.0 and whole.trap.se_per_ns is None and whole.trap.exposure_ns == 9.5
    assert whole.escape.rate_per_ns is None and whole.escape.n_events == 0


def test_short_dwell_filter_on_a_hand_made_series():
    x = np.array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0], dtype=bool)
    y = filter_short_dwells(x, 3)
    # the leading 1-frame run takes the first long state, blips inside runs are absorbed, the
    # unfinished 1-frame run at the end too
    assert y.astype(int).tolist() == [0] * 10 + [1] * 9
    assert (filter_short_dwells(x, 1) == x).all()
    assert (filter_short_dwells(np.stack([x, ~x], axis=1), 3) == np.stack([y, ~y], axis=1)).all()


def test_short_dwell_filter_removes_recrossing_noise():
    rng = np.random.default_rng(3)
    dt = 0.002
    x = telegraph(rng, k_trap=K_TRAP, k_escape=K_ESCAPE, n_pores=50, n_frames=100_001, dt_ns=dt)
    noisy = x ^ (rng.random(x.shape) < 1e-3)  # one-frame flickers at the site boundary
    raw = dwell_times(noisy, dt_ns=dt)
    assert not within(raw.trap.rate_per_ns, K_TRAP, raw.trap.se_per_ns)
    filtered = dwell_times(noisy, dt_ns=dt, min_dwell_frames=3)
    assert filtered.min_dwell_frames == 3
    assert within(filtered.trap.rate_per_ns, K_TRAP, filtered.trap.se_per_ns)
    assert within(filtered.escape.rate_per_ns, K_ESCAPE, filtered.escape.se_per_ns)


BOX = np.array([3.0, 3.0, 6.0])
PORES = np.array([[0.05, 0.05], [1.5, 2.95], [2.98, 1.5]])  # at the corner, the y edge, the x edge
MEMBRANE_NEAR_EDGE_NM = 0.2  # the sites cross z = 0 too


def test_occupancy_and_w_near_the_periodic_boundary():
    species = ["K+", "Na+", "K+", "K+", "Cl-", "K+"]
    frames = [
        # K+ in pore 0 across the corner; Na+ in pore 1 across y and z; K+ in pore 2 across x;
        # a K+ above pore 0 but beyond the half-height; Cl- in the bulk; a K+ just outside pore 0's radius
        [(2.9, 2.95, 0.4), (1.6, 0.1, 5.9), (0.1, 1.4, 0.0), (0.05, 0.05, 0.9), (1.5, 1.5, 3.0), (0.47, 0.05, 0.2)],
        [(1.0, 1.0, 0.2), (1.6, 0.1, 5.9), (0.1, 1.4, 0.0), (0.05, 0.05, 0.5), (1.5, 1.5, 3.0), (0.47, 0.05, 0.2)],
        [(1.0, 1.0, 0.2), (1.6, 0.1, 5.9), (1.0, 1.0, 3.0), (1.0, 2.0, 3.0), (1.5, 1.5, 3.0), (0.47, 0.05, 0.2)],
    ]
    occ = pore_occupancy(frames, species, PORES, box_nm=BOX, membrane_z_nm=MEMBRANE_NEAR_EDGE_NM, site=CylinderSite(0.4, 0.5))
    assert occ.species_s == ("K+", "Na+", "Cl-")
    k, na, cl = (occ.count_tps[:, :, s] for s in range(3))
    assert k.tolist() == [[1, 0, 1], [1, 0, 1], [0, 0, 0]]
    assert na.tolist() == [[0, 1, 0]] * 3
    assert cl.sum() == 0
    assert_allclose(occ.w_t("K+"), [1 / 3, 1 / 3, 1.0], rtol=0, atol=1e-15)
    assert_allclose(occ.w_t(["K+", "Na+"]), [0.0, 0.0, 2 / 3], rtol=0, atol=1e-15)
    assert_allclose(occ.w_t([]), [1.0, 1.0, 1.0], rtol=0, atol=0)
    # the default site is the cylinder 0.4 nm × ±0.5 nm, and any periodic image gives the same answer
    shifted = np.asarray(frames) + BOX * np.array([2, -1, 3])
    again = pore_occupancy(shifted, species, PORES - BOX[:2], box_nm=BOX, membrane_z_nm=MEMBRANE_NEAR_EDGE_NM + BOX[2])
    assert (again.count_tps == occ.count_tps).all()


def test_occupancy_matches_a_brute_force_sum_over_images():
    rng = np.random.default_rng(9)
    box = np.array([4.5, 3.2, 5.0])
    pores = np.array([[0.1, 0.2], [1.6, 1.8], [3.2, 0.05], [4.4, 1.7]])  # two near the periodic edges
    x = rng.uniform(0, 1, size=(20, 300, 3)) * box
    species = list(rng.choice(["K+", "Na+", "Cl-"], size=300))
    site = CylinderSite(radius_nm=0.6, half_height_nm=0.8)
    occ = pore_occupancy(x, species, pores, box_nm=box, membrane_z_nm=4.7, site=site)
    shifts = np.array(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1])).reshape(3, -1).T * box
    names = ["K+", "Na+", "Cl-"]
    brute = np.zeros_like(occ.count_tps)
    for f in range(x.shape[0]):
        for i in range(x.shape[1]):
            for p in range(pores.shape[0]):
                d = x[f, i] + shifts - np.array([*pores[p], 4.7])
                if np.any((d[:, 0] ** 2 + d[:, 1] ** 2 <= 0.36) & (np.abs(d[:, 2]) <= 0.8)):
                    brute[f, p, names.index(species[i])] += 1
    assert brute.sum() > 50
    assert (occ.count_tps[:, :, [occ.species_s.index(n) for n in names]] == brute).all()


def bundle_run():
    """10 ns: Na+ crossing up 10 times away from the pore; K+ plugging the pore for frames
    [0, 500) and [1200, 2001), out of it (above the membrane) in between; a static Cl-."""
    n, dt = 2001, 0.005
    t = np.arange(n)
    x = np.zeros((n, 3, 3))
    x[:, 0] = np.stack([np.full(n, 0.2), np.full(n, 0.2), np.mod(2.0 + 0.05 * t, L_Z)], axis=1)
    blocked = (t < 500) | (t >= 1200)
    x[:, 1] = np.stack([np.full(n, 1.5), np.full(n, 1.5), np.where(blocked, 5.0, 7.5)], axis=1)
    x[:, 2] = [2.5, 2.5, 8.0]
    return x, ["Na+", "K+", "Cl-"], dt


def test_analyze_trajectory_bundles_and_writes_json(tmp_path):
    x, species, dt = bundle_run()
    path = tmp_path / "run" / "analysis.json"
    out = analyze_trajectory(
        x,
        species,
        dt_ns=dt,
        box_nm=[3.0, 3.0, L_Z],
        membrane_z_nm=Z_M,
        pore_centres_nm=[[1.5, 1.5]],
        blockers=["K+"],
        v=0.25,
        n_bootstrap=200,
        seed=1,
        metadata={"id": "synthetic"},
        path=path,
    )
    assert json.loads(path.read_text()) == out
    assert [p.name for p in path.parent.iterdir()] == ["analysis.json"]  # no temporary file left
    assert out["run"] == {"id": "synthetic"}
    assert out["crossings"]["by_species"]["Na+"] == {"up": 10, "down": 0, "net": 10, "charge_e": 1.0}
    assert out["crossings"]["by_species"]["K+"]["net"] == 0  # in the pore, never through it
    assert_allclose(out["current_pa"], 10 * PA_PER_E_PER_NS / 10.0, rtol=1e-12, atol=0)
    assert_allclose(out["conductance_ps"], out["current_pa"] / 0.25, rtol=1e-12, atol=0)
    assert_allclose(out["w_mean"], 700 / 2001, rtol=1e-12, atol=0)
    assert (out["n_trap_events"], out["n_escape_events"]) == (1, 1)
    assert_allclose(out["trap_rate_per_ns"], 1 / (700 * dt), rtol=1e-12, atol=0)
    assert_allclose(out["escape_rate_per_ns"], 1 / ((500 + 800) * dt), rtol=1e-12, atol=0)
    assert out["dwell"]["escape"]["n_right_censored"] == 1 and out["dwell"]["escape"]["n_left_censored"] == 1
    assert out["settings"]["hysteresis_nm"] == 0.5 and out["settings"]["block_ns"] == pytest.approx(1.0)
    assert out["settings"]["site"] == {"kind": "cylinder", "radius_nm": 0.4, "half_height_nm": 0.5}


Z3 = np.zeros((10, 2))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: count_crossings(np.zeros((10, 2, 3)), ["K+"] * 2, box_z_nm=L_Z, membrane_z_nm=Z_M, dt_ns=0.1),
            "z_nm must have shape",
        ),
        (
            lambda: count_crossings(Z3, ["K+"] * 2, box_z_nm=0.0, membrane_z_nm=Z_M, dt_ns=0.1),
            "box_z_nm must be a finite number > 0",
        ),
        (lambda: count_crossings(Z3, ["K+"] * 2, box_z_nm=-1, membrane_z_nm=Z_M, dt_ns=0.1), "box_z_nm .*got -1"),
        (
            lambda: count_crossings(Z3, ["K+"] * 2, box_z_nm=L_Z, membrane_z_nm=Z_M, dt_ns=0.0),
            "dt_ns must be a finite number > 0",
        ),
        (
            lambda: count_crossings(
                np.where(np.eye(10, 2) > 0, np.nan, 1.0), ["K+"] * 2, box_z_nm=L_Z, membrane_z_nm=Z_M, dt_ns=0.1
            ),
            r"z_nm must be finite everywhere .*nan at index \(0, 0\)",
        ),
        (
            lambda: count_crossings(Z3, ["K+"], box_z_nm=L_Z, membrane_z_nm=Z_M, dt_ns=0.1),
            "species must name every ion: 2 labels; got 1",
        ),
        (
            lambda: count_crossings(Z3, ["K+", "Xx+"], box_z_nm=L_Z, membrane_z_nm=Z_M, dt_ns=0.1),
            "species must be known ion names.*'Xx\\+'",
        ),
        (
            lambda: count_crossings(Z3, ["K+"] * 2, box_z_nm=L_Z, membrane_z_nm=Z_M, dt_ns=0.1, hysteresis_nm=5.0),
            "hysteresis_nm must lie in",
        ),
        (lambda: count_crossings(Z3[:1], ["K+"] * 2, box_z_nm=L_Z, membrane_z_nm=Z_M, dt_ns=0.1), "at least 2 frames"),
        (
            lambda: ionic_current(count_crossings(Z3, ["K+"] * 2, box_z_nm=L_Z, membrane_z_nm=Z_M, dt_ns=0.1), block_ns=0.6),
            "block_ns must leave at least 2 blocks",
        ),
        (
            lambda: ionic_current(count_crossings(Z3, ["K+"] * 2, box_z_nm=L_Z, membrane_z_nm=Z_M, dt_ns=0.1), seed=-1),
            "seed must be an integer >= 0",
        ),
        (
            lambda: pore_occupancy(np.zeros((4, 2)), ["K+"] * 2, PORES, box_nm=BOX, membrane_z_nm=0.0),
            "positions_nm must have shape",
        ),
        (
            lambda: pore_occupancy(np.full((4, 2, 3), np.nan), ["K+"] * 2, PORES, box_nm=BOX, membrane_z_nm=0.0),
            "positions_nm must be finite",
        ),
        (lambda: pore_occupancy(np.zeros((4, 2, 3)), ["K+"] * 2, PORES, box_nm=[3, 3, 0], membrane_z_nm=0.0), "box_nm must hold"),
        (
            lambda: pore_occupancy(np.zeros((4, 2, 3)), ["K+"] * 2, PORES[:, :1], box_nm=BOX, membrane_z_nm=0.0),
            "pore_centres_nm must have shape",
        ),
        (
            lambda: pore_occupancy(np.zeros((4, 2, 3)), ["K+"] * 2, [[0.0, 0.0], [0.5, 0.0]], box_nm=BOX, membrane_z_nm=0.0),
            "site must not overlap",
        ),
        (
            lambda: pore_occupancy(np.zeros((4, 2, 3)), ["K+"] * 2, PORES, box_nm=BOX, membrane_z_nm=0.0).w_t(["Kk+"]),
            "blockers must name",
        ),
        (
            lambda: pore_occupancy(np.zeros((4, 2, 3)), ["K+"] * 2, PORES, box_nm=BOX, membrane_z_nm=0.0).w_t("Na+"),
            "blockers .*'Na\\+'",
        ),
        (lambda: CylinderSite(radius_nm=-0.1), "radius_nm must be a finite number > 0"),
        (lambda: dwell_times(np.array([0, 1, 2]), dt_ns=0.1), "blocked_tp must be bool or 0/1"),
        (lambda: dwell_times(np.zeros(10), dt_ns=-0.1), "dt_ns must be a finite number > 0"),
        (lambda: dwell_times(np.zeros(10), dt_ns=0.1, min_dwell_frames=0), "min_dwell_frames must be an integer >= 1"),
        (lambda: dwell_times(np.zeros((2, 2, 2)), dt_ns=0.1), "blocked_tp must have shape"),
        (lambda: block_bootstrap_se(np.zeros(10), block_len=6), "block_len must leave at least 2 blocks"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_analyze_trajectory_with_an_unknown_blocker_writes_nothing(tmp_path):
    x, species, dt = bundle_run()
    path = tmp_path / "analysis.json"
    with pytest.raises(ValueError, match=r"blockers must name species present in the trajectory .*'Mg2\+'"):
        analyze_trajectory(
            x,
            species,
            dt_ns=dt,
            box_nm=[3.0, 3.0, L_Z],
            membrane_z_nm=Z_M,
            pore_centres_nm=[[1.5, 1.5]],
            blockers=["Mg2+"],
            path=path,
        )
    assert not path.exists()
