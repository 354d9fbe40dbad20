"""Species, salts, pores and system ids."""

import pytest

from ionkinetics import species


def test_nine_cations_and_chloride_with_charges():
    cations = {n: i.charge for n, i in species.IONS.items() if i.charge > 0}
    assert cations == {"Li+": 1, "Na+": 1, "K+": 1, "Rb+": 1, "Cs+": 1, "NH4+": 1, "Mg2+": 2, "Ca2+": 2, "Gdm+": 1}
    assert species.get_ion("Cl-").charge == -1


@pytest.mark.parametrize(
    ("salt", "cation", "n_cl"),
    [("NaCl", "Na+", 1), ("MgCl2", "Mg2+", 2), ("GdmCl", "Gdm+", 1), ("NH4Cl", "NH4+", 1), ("CaCl2", "Ca2+", 2)],
)
def test_salts_as_chemists_write_them_are_neutral(salt, cation, n_cl):
    s = species.get_salt(salt)
    assert s.cation == cation
    assert species.get_ion(cation).charge == n_cl  # one cation balances n_cl chlorides
    assert species.salt_of(cation).name == salt


def test_pores():
    assert set(species.PORES) == {"crown6", "B3N", "B6N3", "B10N6"}
    assert species.get_pore("crown6").membrane == "graphene"
    assert {species.get_pore(p).membrane for p in ("B3N", "B6N3", "B10N6")} == {"hBN"}


def test_system_id_round_trip_and_chloride():
    sid = species.parse_system_id("crown6:NaCl@1.0+MgCl2@0.25")
    assert sid.pore == "crown6"
    assert sid.cation_molar == {"Na+": 1.0, "Mg2+": 0.25}
    assert sid.chloride_molar == pytest.approx(1.5)
    assert str(sid) == "crown6:NaCl@1.0+MgCl2@0.25"
    assert species.parse_system_id(str(sid)) == sid
    assert str(species.parse_system_id(" B3N : KCl@1 + RbCl@0.50 ")) == "B3N:KCl@1.0+RbCl@0.5"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hole:NaCl@1.0", r"unknown pore 'hole'; known pores are: crown6, B3N"),
        ("crown6:XeCl@1.0", r"unknown salt 'XeCl'; known salts are: .*NaCl"),
        ("crown6:NaCl@-1", r"molar"),
        ("crown6:NaCl", r"needs '@<molar>'"),
        ("crown6:NaCl@1.0+NaCl@0.5", r"appears twice"),
    ],
)
def test_bad_system_ids_name_the_rule(text, message):
    with pytest.raises(ValueError, match=message):
        species.parse_system_id(text)


def test_unknown_ion_lists_known():
    with pytest.raises(ValueError, match=r"unknown ion 'Xe\+'; known ions are: .*Gdm\+"):
        species.get_ion("Xe+")
