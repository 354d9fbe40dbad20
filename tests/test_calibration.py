"""Calibration files: schema validation, round trips, and the shipped calibrations against the
paper's statements (including the ones held out of the fit)."""

import copy
import json
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ionkinetics as ik
from conftest import assert_allclose
from helpers import make_calibration
from ionkinetics.calibrate import Calibration, CalibrationError, encounter_rate_per_ns_per_molar
from ionkinetics.kinetics import protocols

GOOD = make_calibration(
    "crown6:NaCl@1.0+KCl@0.5+MgCl2@0.25",
    dopants=(("K+", "center", 0.08, 0.1, 3e-5, 0.55, 0.0), ("Mg2+", "entrance", 0.05, 0.6, 0.08, 0.3, 0.02)),
).to_dict()


def _broken(edit):
    raw = copy.deepcopy(GOOD)
    edit(raw)
    return raw


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.pop("carrier"), r"missing the field 'carrier'"),
        (lambda r: r["dopants"][0]["trap"].pop("delta_plus"), r"missing the field 'dopants\[0\]\.trap\.delta_plus'"),
        (lambda r: r.update(schema="ionkinetics.calibration/0"), r"'schema'.*ionkinetics\.calibration/1"),
        (lambda r: r["dopants"][0]["escape"].update(k_plus_per_ns=-1.0), r"dopants\[0\]\.escape\.k_plus_per_ns' must be >= 0"),
        (lambda r: r["dopants"][0].update(ion="Xe+"), r"'dopants\[0\]\.ion' must be a known ion \(Li\+.*got 'Xe\+'"),
        (lambda r: r["dopants"][0]["trap"].update(delta_plus=1.5), r"trap\.delta_plus' must be <= 1"),  # K+: |z| = 1
        (lambda r: r["dopants"][1]["trap"].update(delta_plus=2.5), r"trap\.delta_plus' must be <= 2"),  # Mg2+: |z| = 2
        (lambda r: r["dopants"][0].update(leak_fraction=1.0), r"leak_fraction"),
        (lambda r: r["dopants"][0]["trap"].update(k_max_per_ns_per_molar=0.0), r"k_max_per_ns_per_molar' must be > 0"),
        (lambda r: r["dopants"][0]["trap"].update(speed=1.0), r"unknown keys \['speed'\]"),
        (lambda r: r["carrier"]["open_conductance"].update(c_ps="big"), r"c_ps' must be a number"),
        (lambda r: r["dopants"].pop(1), r"every non-carrier cation.*Mg2\+"),
        (lambda r: r["dopants"][0].update(site="rim"), r"site"),
        (lambda r: r.update(system="crown6:NaCl@1.0+KCl@0.5+XeCl@1"), r"unknown salt 'XeCl'"),
        # issue 15, item 7: unknown keys everywhere (a misspelt key silently meant its default), and
        # physically absurd values, each refused with the reason
        (lambda r: r.update(leak_fracton=0.2), r"unknown top-level keys \['leak_fracton'\]"),
        (lambda r: r["carrier"].update(leak=0.1), r"'carrier' has unknown keys \['leak'\]"),
        (
            lambda r: r["carrier"]["open_conductance"].update(alpha=1.0),
            r"'carrier\.open_conductance' has unknown keys \['alpha'\]",
        ),
        (lambda r: r["dopants"][0].update(leak_fracton=0.2), r"'dopants\[0\]' has unknown keys \['leak_fracton'\]"),
        (lambda r: r.update(temperature_k=1000.0), r"'temperature_k' must be within 253\.15–373\.15 K .*got 1000\.0"),
        (lambda r: r.update(temperature_k=25.0), r"'temperature_k' must be within"),  # °C given as K
        (lambda r: r["carrier"]["open_conductance"].update(alpha_per_v=500.0), r"alpha_per_v' must be within ±77\.8 /V"),
        (
            lambda r: r["dopants"][0]["trap"].update(k_plus_per_ns_per_molar=1e4),
            r"dopants\[0\]\.trap\.k_plus_per_ns_per_molar' \+ k_minus_per_ns_per_molar \(the zero-bias rate\) must be <= 100× "
            r"the diffusion-limited ceiling",
        ),
        (lambda r: r["dopants"][1]["escape"].update(k_minus_per_ns=1e6), r"dopants\[1\]\.escape\.k_plus_per_ns' \+ k_minus"),
    ],
)
def test_bad_calibrations_are_rejected_naming_the_field(edit, message):
    with pytest.raises(CalibrationError, match=message):
        Calibration.from_dict(_broken(edit))


def test_round_trip_through_a_file_is_exact(tmp_path):
    cal = Calibration.from_dict(GOOD)
    path = ik.save_calibration(cal, tmp_path / "sub" / "cal.json")
    again = ik.load_calibration(path)
    assert again.to_dict() == cal.to_dict()
    assert again.state_names == ("open", "K+", "Mg2+@cis", "Mg2+@trans")
    assert not list(tmp_path.glob("**/*.tmp*"))  # the atomic write left no temporary file


def test_a_bad_file_on_disk_is_refused_and_names_the_file_field(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_broken(lambda r: r["dopants"][0]["escape"].update(delta_minus=-0.1))))
    with pytest.raises(CalibrationError, match=r"escape\.delta_minus' must be >= 0"):
        ik.load_calibration(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ik.load_calibration(tmp_path / "missing.json")
    with pytest.raises(ValueError, match=r"no shipped calibration for 'B10N6:CsCl@1\.0'"):
        ik.load_calibration("B10N6:CsCl@1.0")


def test_encounter_ceiling_is_a_few_per_ns_at_half_molar():
    # DESIGN.md: the diffusion-limited encounter rate at 0.5 M is "a few per ns"
    assert 1.0 < 0.5 * encounter_rate_per_ns_per_molar("K+") < 5.0


# --- shipped calibrations against the paper ------------------------------------------------


def test_every_shipped_calibration_loads_with_provenance():
    ids = ik.list_calibrations()
    assert {
        "crown6:NaCl@1.0",
        "crown6:NaCl@1.0+KCl@0.5",
        "crown6:NaCl@1.0+NH4Cl@0.5",
        "crown6:NaCl@1.0+MgCl2@0.25",
        "B3N:KCl@1.0",
        "B3N:KCl@1.0+RbCl@0.5",
        "B3N:KCl@1.0+NaCl@0.5",
    } <= set(ids)
    for sid in ids:
        cal = ik.load_calibration(sid)
        prov = cal.provenance
        assert prov["command"].startswith("ionkinetics fit calibration/targets/")
        assert prov["source"].startswith("Y. Noh and A. Smolyanitsky")
        assert cal.uncertainty["identifiable"], sid
        if prov["contains_assumed_values"]:
            assert prov["assumptions"], sid


def _w_after_step(cal, v_to, t_ns, v_from=0.0, dt_ns=0.05):
    tr = ik.simulate(cal, protocols.dc(v_to, t_ns), dt_ns, p0=ik.kinetics.steady_state(cal.params, v_from))
    return tr


def test_carriers_match_published_conductances():
    na = ik.load_calibration("crown6:NaCl@1.0")
    assert abs(ik.conductance(na, 0.1) / 350.0 - 1) < 0.3  # "approximately 350 pS" (2.2)
    k = ik.load_calibration("B3N:KCl@1.0")
    g = ik.conductance(k, np.array([0.1, 0.4]))
    assert abs(g[0] / 40.0 - 1) < 0.3 and abs(g[1] / 200.0 - 1) < 0.3  # "∼40 pS at 0.1 V to ∼200 pS at 0.4 V"


def test_crown_k_voltage_activation():
    cal = ik.load_calibration("crown6:NaCl@1.0+KCl@0.5")
    v = np.array([0.1, 0.2, 0.3])
    g = ik.conductance(cal, v)
    _alpha, ln_c = np.polyfit(v, np.log(g), 1)
    assert 0.5 < np.exp(ln_c) < 2.0  # "C ... decreases ... to ∼1 pS" (section 2.4), within 2x
    # "approximately 1 pS" at 0.1 V: G(0.1) = C·e^{0.1α} and the held-out rise below needs α ≥ 11.5/V,
    # so G(0.1) and C cannot both be ~1 pS; all hold within 2x only for G(0.1) in 1.6-2.0 pS (README,
    # "Calibrations"). Issue 11's bar for this system is 2x on every published number.
    assert 0.5 < g[0] < 2.0
    assert g[2] / g[0] > 10  # held out: "rising by more than an order of magnitude by 0.3 V"
    on = _w_after_step(cal, 0.5, 200.0)
    assert on.w[0] <= 0.05
    assert 0.8 / 2 <= on.w[np.searchsorted(on.t_ns, 5.0)] <= 1.0  # "within 5 ns ... from 0 to ∼0.8", within 2x
    off = _w_after_step(cal, 0.0, 200.0, v_from=0.5)
    # "gradually decays back to the closed state over 100 ns", read as every time phrase is (targets file):
    # 98 % of the decay done by then; within 2x
    done = off.w <= off.w[-1] + 0.02 * (off.w[0] - off.w[-1])
    assert 50.0 <= off.t_ns[np.argmax(done)] <= 200.0


def test_b3n_rb_voltage_inactivation():
    cal = ik.load_calibration("B3N:KCl@1.0+RbCl@0.5")
    g = ik.conductance(cal, np.array([0.1, 0.4]))
    assert 8.0 < g[0] < 32.0 and 1.0 < g[1] < 4.0  # "∼16 pS at 0.1 V to ∼2 pS at 0.4 V"
    on = _w_after_step(cal, 0.5, 100.0)
    assert on.w[0] >= 0.9 * 0.85  # "back to ∼0.9" (∼ = ±15 %)
    assert on.w[np.searchsorted(on.t_ns, 10.0)] <= 0.2  # "open to closed state within 10 ns"
    off = _w_after_step(cal, 0.0, 100.0, v_from=0.5)
    assert off.w[np.searchsorted(off.t_ns, 100.0)] >= 0.9 * 0.85  # "back to ∼0.9 over 50 ns"


def test_b3n_rb_conductance_falls_log_linearly_over_the_published_range():
    """Section 2.2 / Figure 5: G falls from ∼16 to ∼2 pS over 0.1-0.4 V, fitted as C·e^{αV}; the
    endpoints imply α = ln(2/16)/0.3 = −6.93/V. The model must fall monotonically (no leak-driven
    upturn) and keep that slope within 30 %."""
    cal = ik.load_calibration("B3N:KCl@1.0+RbCl@0.5")
    v = np.linspace(0.1, 0.4, 31)
    g = ik.conductance(cal, v)
    assert np.all(np.diff(g) < 0)
    alpha = np.polyfit(v, np.log(g), 1)[0]
    assert abs(alpha / (np.log(2 / 16) / 0.3) - 1) < 0.3
    with warnings.catch_warnings():  # beyond the data's 0.5 V: warned (OutsideDataRange), asserted all the same
        warnings.simplefilter("ignore", ik.OutsideDataRange)
        assert np.all(np.diff(ik.conductance(cal, np.linspace(0.4, 0.6, 21))) < 0)  # and beyond it


@pytest.mark.parametrize(
    ("sid", "alpha", "tol"),
    [("crown6:NaCl@1.0+NH4Cl@0.5", 8.0, 1.0), ("crown6:NaCl@1.0+MgCl2@0.25", -7.1, 1.0), ("crown6:NaCl@1.0", -1.7, 0.3)],
)
def test_published_exponential_slopes(sid, alpha, tol):
    v = np.array([0.1, 0.2, 0.3])
    slope = np.polyfit(v, np.log(ik.conductance(ik.load_calibration(sid), v)), 1)[0]
    assert abs(slope - alpha) < tol


def test_conductance_is_vectorised_and_matches_scalar():
    cal = ik.load_calibration("B3N:KCl@1.0+RbCl@0.5")
    v = np.linspace(-0.5, 0.5, 11).reshape(11, 1)
    g = ik.conductance(cal, v)
    assert g.shape == (11, 1)
    assert_allclose(g[3, 0], ik.conductance(cal, float(v[3, 0])), rtol=1e-14, atol=0)
    assert_allclose(g[::-1], g, rtol=1e-12, atol=0)  # symmetric in V


# --- concentration as a continuous input ------------------------------------------------------


def test_dopant_molarity_is_continuous_with_a_stated_law_and_a_gradient():
    base = ik.load_calibration("crown6:NaCl@1.0+KCl@0.5")
    low = ik.load_calibration("crown6:NaCl@1.0+KCl@0.1")
    assert low.system_id == "crown6:NaCl@1.0+KCl@0.1"
    assert low.provenance["derived"]["from"] == "crown6:NaCl@1.0+KCl@0.5"
    assert low.provenance["derived"]["molar"] == {"K+": [0.5, 0.1]}
    assert_allclose(ik.conductance(base.with_molar(KCl=0.1), 0.2), ik.conductance(low, 0.2), rtol=1e-14, atol=0)
    # mass action: trapping ∝ molarity, so at any V the blocked/open odds scale by exactly 0.1/0.5
    for v in (0.0, 0.3):
        odds = [float((1 - p[0]) / p[0]) for p in (ik.kinetics.steady_state(c.params, v) for c in (base, low))]
        assert_allclose(odds[1] / odds[0], 0.2, rtol=1e-12, atol=0)
    # jax.grad of a conductance and of a switching energy with respect to the molarity: finite differences
    g01 = lambda m: ik.kinetics.conductance_ps(base.params_with_molar({"KCl": m}), 0.1)  # noqa: E731
    fd = (g01(0.5 + 1e-6) - g01(0.5 - 1e-6)) / 2e-6
    assert_allclose(jax.grad(g01)(0.5), fd, rtol=1e-6, atol=0)
    v_k = jnp.asarray(protocols.step(0.5, t_on_ns=1.0, t_off_ns=6.0, duration_ns=6.0).sample(0.05))

    def energy(m):
        params = base.params_with_molar({"KCl": m})
        _, e = ik.kinetics.mean_field_scan(params, v_k, 0.05, ik.kinetics.steady_state(params, 0.0))
        return e[-1]

    fd = (energy(0.5 + 1e-6) - energy(0.5 - 1e-6)) / 2e-6
    assert_allclose(jax.grad(energy)(0.5), fd, rtol=1e-5, atol=0)


def test_molarity_changes_that_have_no_basis_are_refused():
    with pytest.raises(ValueError, match=r"carrier NaCl at 1 M.*only dopant molarities"):
        ik.load_calibration("crown6:NaCl@0.5+KCl@0.5")
    base = ik.load_calibration("crown6:NaCl@1.0+KCl@0.5")
    with pytest.raises(ValueError, match="cannot change the carrier's molarity"):
        base.with_molar(NaCl=0.5)
    with pytest.raises(ValueError, match="molarity of KCl must be a finite number > 0"):
        base.with_molar(KCl=0.0)
    with pytest.raises(ValueError, match="not a dopant salt or ion"):
        base.with_molar(RbCl=0.1)
    with pytest.raises(ValueError, match=r"no shipped calibration .* or for its salts"):
        ik.load_calibration("crown6:NaCl@1.0+CsCl@0.5")


# --- physical gating charges and ceilings -------------------------------------------------------


def test_shipped_gating_charges_are_an_ion_crossing_part_of_the_field():
    for sid in ik.list_calibrations():
        for d in ik.load_calibration(sid).dopants:
            assert d.electrical_distance is not None and 0 < d.electrical_distance <= 0.5, sid
            z = abs(ik.species.get_ion(d.ion).charge)
            assert_allclose(d.trap["delta_plus"] + d.escape["delta_minus"], z * d.electrical_distance, rtol=1e-12, atol=0)
            if d.site == "center":
                assert d.electrical_distance == 0.5  # the centre of a symmetric membrane


def test_a_file_whose_gating_charges_break_the_electrical_distance_is_refused():
    raw = ik.load_calibration("crown6:NaCl@1.0+KCl@0.5").to_dict()
    raw["dopants"][0]["escape"]["delta_minus"] += 0.1
    raw["dopants"][0]["escape"]["delta_plus"] += 0.1
    with pytest.raises(ValueError, match=r"electrical_distance' must equal the gating charge crossed along the cis path"):
        ik.Calibration.from_dict(raw)


def test_rates_at_their_diffusion_ceiling_are_reported():
    from ionkinetics.calibrate._summary import rates_near_ceiling

    mg = ik.load_calibration("crown6:NaCl@1.0+MgCl2@0.25")
    near = rates_near_ceiling(mg)
    assert {(r["state"], r["rate"], r["v"]) for r in near} == {("Mg2+@cis", "trap", 0.5), ("Mg2+@trans", "trap", -0.5)}
    assert all(r["fraction_of_ceiling"] >= 0.9 for r in near)
    assert mg.fit["rates_near_ceiling"]["rates"] == near  # written into the file by the fit
    assert rates_near_ceiling(ik.load_calibration("B3N:KCl@1.0+RbCl@0.5")) == []


def test_simulating_beyond_the_data_range_warns_once():
    cal = ik.load_calibration("B3N:KCl@1.0")
    assert cal.data_range_v == (0.1, 0.4)
    ik._WARNED_RANGES.discard((cal.system_id, (0.1, 0.4)))
    with pytest.warns(ik.OutsideDataRange, match=r"0\.1-0\.4 V"):
        ik.simulate(cal, protocols.dc(0.6, 1.0), 0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ik.simulate(cal, protocols.dc(0.6, 1.0), 0.1)  # once only
        ik.simulate(cal, protocols.dc(0.3, 1.0), 0.1)


def test_each_protocols_closed_form_peak_is_its_sampled_peak_and_a_batch_warns_at_its_largest():
    """The range warning reads ``peak_abs_v`` (closed forms for DC, step and pulse train) instead of
    sampling a batch twice: each equals the sampled max |V| with the rest voltage."""
    cases = [
        protocols.dc(-0.45, 2.0, v_rest_v=0.1),
        protocols.step(0.3, t_on_ns=0.5, t_off_ns=1.5, duration_ns=2.0, v_base=-0.35),
        protocols.pulse_train(-0.55, 0.2, 0.5, 3, duration_ns=2.0, v_base=0.05),
        protocols.sine(0.2, 1.0, 2.0, offset_v=0.1),
        protocols.sampled([0.0, 0.5, 1.0, 2.0], [0.1, -0.6, 0.2]),
    ]
    for proto in cases:
        sampled = max(abs(proto.v_rest_v), float(np.max(np.abs(proto.sample(0.05)))))
        assert proto.peak_abs_v(0.05) == pytest.approx(sampled, rel=0, abs=1e-15), proto
    cal = ik.load_calibration("B3N:KCl@1.0")
    ik._WARNED_RANGES.discard((cal.system_id, (0.1, 0.4)))
    batch = [protocols.pulse_train(a, 0.2, 0.5, 3, duration_ns=2.0) for a in (0.2, -0.7, 0.3)]
    with pytest.warns(ik.OutsideDataRange, match=r"\|V\| = 0\.7 V"):
        ik.simulate(cal, batch, 0.1)
