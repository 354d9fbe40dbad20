"""Named, cited force-field options (ionkinetics.md._forcefield): every option builds neutral
systems whose OpenMM charges are the option's, its name is recorded, bad names are refused."""

import json
from pathlib import Path

import numpy as np
import openmm
import pytest
from openmm import unit

from ionkinetics import md
from ionkinetics.md._spec import MDSpecError, parse_md_spec

TEMPLATES = {"crown6": ("CRO", "CRC"), "B3N": ("HBB", "HBN", "HBE")}


def _openmm_charges_e(system) -> np.ndarray:
    (nb,) = [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)]
    return np.array(
        [nb.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge) for i in range(system.getNumParticles())]
    )


@pytest.mark.parametrize("option", sorted(md.FORCEFIELD_OPTIONS))
@pytest.mark.parametrize(("pore", "salt"), [("crown6", "NaCl@1.0"), ("B3N", "KCl@1.0")])
def test_each_option_builds_a_neutral_system_with_its_charges(option, pore, salt):
    built = md.build_system(f"{pore}:{salt}", cells=(2, 1), box_z_nm=4.0, forcefield_option=option)
    q = _openmm_charges_e(built.system)
    assert abs(q.sum()) < 1e-9
    mem = built.membrane_atoms
    assert abs(q[mem].sum()) < 1e-9
    expected = md.FORCEFIELD_OPTIONS[option].template_charges_e
    names = built.membrane.residue_names
    for template in TEMPLATES[pore]:
        sel = np.array([n == template for n in names])
        assert sel.any()
        np.testing.assert_allclose(q[mem][sel], expected[template], rtol=0, atol=1e-12)
    np.testing.assert_allclose(built.membrane.charges_e, q[mem], rtol=0, atol=1e-12)
    assert built.summary()["forcefield_option"] == option


def test_the_named_choices_and_their_sources():
    sahu = md.CROWN_CHARGE_SETS["sahu-2019"]
    assert dict(sahu.charges_e) == {"CRO": -0.24, "CRC": 0.12}
    assert "Sci. Adv. 5, eaaw5478 (2019)" in sahu.source and "NOT verified" in sahu.checked
    assert dict(md.CROWN_CHARGE_SETS["opls-aa-ether"].charges_e) == {"CRO": -0.40, "CRC": 0.20}
    won = dict(md.HBN_CHARGE_SETS["won-aluru-2008"].charges_e)
    assert won == pytest.approx({"HBB": 1.05, "HBN": -1.05, "HBE": -0.70})
    for s in [*md.CROWN_CHARGE_SETS.values(), *md.HBN_CHARGE_SETS.values()]:
        assert s.source and s.checked
    # the default option is the shipped file itself, unchanged
    assert md.forcefield_option_files(md.DEFAULT_FORCEFIELD_OPTION) == md.default_forcefield_files()


def test_generated_xml_names_the_option_and_its_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("IONKINETICS_CACHE", str(tmp_path))
    files = md.forcefield_option_files("sahu-crown")
    assert files[0] == "amber14/tip3p.xml" and files[1].startswith(str(tmp_path))
    text = Path(files[1]).read_text()
    assert "option 'sahu-crown'" in text and "Sahu" in text and "Won and Aluru" in text
    assert md.forcefield_option_files("sahu-crown") == files  # same content → same cached file


def test_charge_sets_that_break_neutrality_are_refused():
    with pytest.raises(ValueError, match=r"charges_e must keep the crown neutral.*got"):
        md.ChargeSet("x", "crown", (("CRO", -0.3), ("CRC", 0.1)), "s", "c")
    with pytest.raises(ValueError, match=r"charges_e must keep hBN neutral.*HBE"):
        md.ChargeSet("x", "hBN", (("HBB", 1.0), ("HBN", -1.0), ("HBE", -0.7)), "s", "c")


def test_bad_option_names_argument_rule_and_value():
    with pytest.raises(ValueError, match=r"forcefield_option must be one of .*sahu-crown.*got 'nope'"):
        md.build_system("crown6:NaCl@1.0", cells=(2, 1), forcefield_option="nope")
    with pytest.raises(ValueError, match=r"forcefield_option must not be given together with forcefield_files"):
        md.build_system(
            "crown6:NaCl@1.0", cells=(2, 1), forcefield_option="ik-2025", forcefield_files=md.default_forcefield_files()
        )


def _raw(**extra):
    raw = {"schema": "ionkinetics.md/1", "name": "x", "system": "crown6:NaCl@1.0", "membrane": {"cells": [2, 1], "box_z_nm": 4.0},
           "bias": {"protocol": {"kind": "dc", "v": 0.0, "duration_ns": 0.01}}, "run": {"length_ns": 0.01}}  # fmt: skip
    raw.update(extra)
    return raw


def test_spec_forcefield_option_reaches_the_system_and_its_record(tmp_path):
    spec = parse_md_spec(_raw(forcefield={"option": "sahu-crown"}))
    built = spec.build()
    assert built.forcefield_option == "sahu-crown"
    assert json.loads(json.dumps(built.summary()))["forcefield_option"] == "sahu-crown"
    q = _openmm_charges_e(built.system)[built.membrane_atoms]
    assert q.min() == pytest.approx(-0.24)
    assert parse_md_spec(_raw()).build().forcefield_option == md.DEFAULT_FORCEFIELD_OPTION
    with pytest.raises(MDSpecError, match=r"\[forcefield\].option must be one of .*got 'sahu'"):
        parse_md_spec(_raw(forcefield={"option": "sahu"}))
    with pytest.raises(MDSpecError, match=r"\[forcefield\] has unknown fields \['crown'\]"):
        parse_md_spec(_raw(forcefield={"crown": "sahu-2019"}))
