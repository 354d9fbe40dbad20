"""Design-space counts, prediction by rule from a role table, and role-table files."""

import json

import pytest

from ionkinetics import species
from ionkinetics.calibrate._design import (
    PAPER_PREDICTED_COUNTS,
    PAPER_TEXT_ROLE_SOURCES,
    PAPER_TEXT_ROLES,
    DesignedSystem,
    RoleTableError,
    bicationic_pairs,
    count_bicationic,
    count_mixtures,
    design_report,
    enumerate_mixtures,
    load_role_table,
    parse_role_table,
    predict_systems,
    save_role_table,
)


def test_design_space_counts_for_nine_ions_and_four_pores():
    assert len(species.CATIONS) == 9 and len(species.PORES) == 4
    mixtures = enumerate_mixtures()
    assert len(mixtures) == count_mixtures(9, 4) == 2044
    assert len(set(mixtures)) == 2044
    for pore in species.PORES:
        assert sum(1 for p, _ in mixtures if p == pore) == 2**9 - 1 == 511
    pairs = bicationic_pairs()
    assert len(pairs) == count_bicationic(9, 4) == 144
    assert all(len(set(pair)) == 2 for _, pair in pairs)
    assert {(p, m) for p, m in mixtures if len(m) == 2} == set(pairs)


def test_enumeration_rejects_unknown_names():
    with pytest.raises(ValueError, match="pore"):
        enumerate_mixtures(pores=["crown7"])
    with pytest.raises(ValueError, match="cations"):
        bicationic_pairs(ions=["Na+", "Cl-"])


HAND = {
    "crown6": {"Na+": "carrier", "Li+": "carrier", "K+": "voltage activator", "Mg2+": "voltage inactivator", "Cs+": "passive"},
    "B3N": {"K+": "carrier", "Rb+": "voltage inactivator", "Na+": "voltage activator", "Ca2+": "voltage inactivator"},
    "B6N3": {"Gdm+": "voltage activator"},  # no carrier: nothing predicted here
}


def test_prediction_follows_the_rule_on_a_hand_made_table():
    pred = predict_systems(HAND)
    act = {(s.pore, s.carrier, s.controller) for s in pred.activated}
    inact = {(s.pore, s.carrier, s.controller) for s in pred.inactivated}
    assert act == {("crown6", "Na+", "K+"), ("crown6", "Li+", "K+"), ("B3N", "K+", "Na+")}
    assert inact == {("crown6", "Na+", "Mg2+"), ("crown6", "Li+", "Mg2+"), ("B3N", "K+", "Rb+"), ("B3N", "K+", "Ca2+")}
    assert pred.counts == {"voltage_activated": 3, "voltage_inactivated": 4}
    # brute force over all pairs agrees with the rule
    for pore, (a, b) in bicationic_pairs():
        roles = HAND.get(pore, {})
        for c, d in ((a, b), (b, a)):
            expect_act = roles.get(c) == "carrier" and roles.get(d) == "voltage activator"
            expect_inact = roles.get(c) == "carrier" and roles.get(d) == "voltage inactivator"
            assert ((pore, c, d) in act) == expect_act and ((pore, c, d) in inact) == expect_inact


def test_designed_system_id():
    s = DesignedSystem("crown6", "Li+", "K+", "voltage_activated")
    assert s.system_id() == "crown6:LiCl@1.0+KCl@0.5"
    assert species.parse_system_id(s.system_id()).cation_molar == {"Li+": 1.0, "K+": 0.5}


def test_paper_text_table_is_only_what_the_text_states():
    assert set(PAPER_TEXT_ROLES) == {"crown6", "B3N", "B10N6", "B6N3"}
    assert dict(PAPER_TEXT_ROLES["crown6"]) == {
        "Na+": "carrier",
        "Li+": "carrier",
        "K+": "voltage activator",
        "Rb+": "voltage activator",
        "Cs+": "voltage activator",
        "NH4+": "voltage activator",
        "Ca2+": "voltage inactivator",
        "Mg2+": "voltage inactivator",
    }
    assert "Gdm+" not in PAPER_TEXT_ROLES["crown6"]  # unknown, not invented
    assert dict(PAPER_TEXT_ROLES["B3N"]) == {"K+": "carrier", "Rb+": "voltage inactivator", "Na+": "voltage activator"}
    assert dict(PAPER_TEXT_ROLES["B10N6"]) == {"Li+": "carrier", "Gdm+": "voltage activator"}
    assert dict(PAPER_TEXT_ROLES["B6N3"]) == {"Rb+": "carrier", "Mg2+": "voltage inactivator", "Gdm+": "voltage inactivator"}
    assert set(PAPER_TEXT_ROLE_SOURCES) == {(p, i) for p, r in PAPER_TEXT_ROLES.items() for i in r}
    # the paper's example: crown6 LiCl + KCl is predicted voltage-activated
    pred = predict_systems(PAPER_TEXT_ROLES)
    assert ("crown6", "Li+", "K+") in {(s.pore, s.carrier, s.controller) for s in pred.activated}
    # the partial text table (crown6 2x4 + B3N 1x1 + B10N6 1x1 = 10; 2x2 + 1x1 + 1x2 = 7) predicts fewer than the full 15 / 36
    assert pred.counts == {"voltage_activated": 10, "voltage_inactivated": 7}
    assert dict(PAPER_PREDICTED_COUNTS) == {"voltage_activated": 15, "voltage_inactivated": 36}


def test_design_report():
    rep = design_report()
    assert rep["n_mixtures"] == 2044 and rep["n_bicationic"] == 144
    assert rep["role_table_entries"] == 16 and rep["role_table_entries_possible"] == 36
    assert rep["predicted_counts"] == {"voltage_activated": 10, "voltage_inactivated": 7}
    assert rep["paper_full_table_counts"] == {"voltage_activated": 15, "voltage_inactivated": 36}
    assert len(rep["voltage_activated"]) == 10
    json.dumps(rep)


def test_role_table_files_round_trip(tmp_path):
    toml = tmp_path / "roles.toml"
    toml.write_text('schema = "ionkinetics.role-table/1"\n[roles.crown6]\n"Na+" = "carrier"\n"K+" = "voltage activator"\n')
    table = load_role_table(toml)
    assert predict_systems(table).counts == {"voltage_activated": 1, "voltage_inactivated": 0}
    out = save_role_table(tmp_path / "roles.json", HAND, note="hand-made")
    again = load_role_table(out)
    assert {p: dict(r) for p, r in again.items()} == HAND
    assert predict_systems(again) == predict_systems(HAND)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"roles": {}}, "schema"),
        ({"schema": "ionkinetics.role-table/1", "roles": {"crown7": {}}}, "crown7"),
        ({"schema": "ionkinetics.role-table/1", "roles": {"B3N": {"Cl-": "carrier"}}}, "not a cation"),
        ({"schema": "ionkinetics.role-table/1", "roles": {"B3N": {"K+": "activator"}}}, "must be one of"),
        ({"schema": "ionkinetics.role-table/1", "roles": {}, "extra": 1}, "unknown fields"),
    ],
)
def test_bad_role_tables_are_named(raw, match):
    with pytest.raises(RoleTableError, match=match):
        parse_role_table(raw)


def test_bad_role_table_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_role_table(tmp_path / "missing.toml")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(RoleTableError, match="JSON"):
        load_role_table(bad)
    with pytest.raises(RoleTableError, match=r"\.toml or \.json"):
        load_role_table(tmp_path / "roles.yaml")
