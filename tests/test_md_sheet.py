"""Membrane mechanics (ionkinetics.md._sheet): the moving hBN pore rim of option "hbn-rim" is at rest as
built, its OpenMM energy equals an independent numpy evaluation of the cited bonded terms for a deformed
rim, only rim atoms move, and the frozen sheet is unchanged."""

import math

import numpy as np
import openmm
import pytest
from openmm import unit

from ionkinetics import md
from ionkinetics.md._sheet import rim_atoms
from ionkinetics.md._validate import membrane_model_for

RIM = md.SHEET_MODELS["sgouros-2025-rim"]
EV = 96.48533212331002  # kJ/mol per eV


@pytest.fixture(scope="module")
def rim_system():
    return md.build_system("B3N:KCl@1.0", cells=(2, 1), box_z_nm=4.0, forcefield_option="hbn-rim")


def _bonded_context(built):
    """A context of the built system's membrane bonded terms alone (force group 5)."""
    system = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(built.system))
    for f in system.getForces():
        custom = isinstance(f, (openmm.CustomBondForce, openmm.CustomAngleForce, openmm.CustomTorsionForce))
        f.setForceGroup(5 if custom else 0)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in built.box_vectors_nm.tolist()])
    return ctx


def _energy_forces(ctx, pos_nm):
    ctx.setPositions(pos_nm * unit.nanometer)
    st = ctx.getState(getEnergy=True, getForces=True, groups={5})
    return (st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))  # fmt: skip


def _numpy_bonded_energy(membrane, pos, moving):
    """The same terms, written independently: Morse bonds, K2·Δθ² + K3·Δθ³ angles, K(1 − cos 2φ)
    torsions, over every term that touches a moving atom, rest values from the built sheet."""
    edges = np.diag(membrane.box_vectors_nm)[:2]
    ref = membrane.positions_nm

    def mi(d):
        d = d.copy()
        d[:2] -= edges * np.round(d[:2] / edges)
        return d

    nbr = {i: [] for i in range(membrane.n_atoms)}
    for i, j in membrane.bonds.tolist():
        nbr[i].append(j)
        nbr[j].append(i)
    e = 0.0
    for i, j in membrane.bonds.tolist():
        if moving[i] or moving[j]:
            r, r0 = np.linalg.norm(mi(pos[j] - pos[i])), np.linalg.norm(mi(ref[j] - ref[i]))
            e += 5.35 * EV * (1 - math.exp(-18.97 * (r - r0))) ** 2

    def ang(p, i, j, k):
        u, v = mi(p[i] - p[j]), mi(p[k] - p[j])
        return math.acos(np.clip(u @ v / np.linalg.norm(u) / np.linalg.norm(v), -1, 1))

    for j, ns in nbr.items():
        for a in range(len(ns)):
            for b in range(a + 1, len(ns)):
                i, k = ns[a], ns[b]
                if moving[i] or moving[j] or moving[k]:
                    d = ang(pos, i, j, k) - ang(ref, i, j, k)
                    e += 2.685 * EV * d**2 - 1.78 * EV * d**3

    def dihedral(p, i, j, k, l):
        b0, b1, b2 = mi(p[j] - p[i]), mi(p[k] - p[j]), mi(p[l] - p[k])
        n1, n2 = np.cross(b0, b1), np.cross(b1, b2)
        m1 = np.cross(n1, b1 / np.linalg.norm(b1))
        return math.atan2(m1 @ n2, n1 @ n2)

    for j, k in membrane.bonds.tolist():
        for i in nbr[j]:
            for l in nbr[k]:
                if i != k and l != j and (moving[i] or moving[j] or moving[k] or moving[l]):
                    cis = abs(dihedral(ref, i, j, k, l)) < math.pi / 2
                    kk = (0.109 if cis else 0.066) * EV
                    e += kk * (1 - math.cos(2 * dihedral(pos, i, j, k, l)))
    return e


def test_the_built_rim_is_at_rest_and_only_rim_atoms_move(rim_system):
    b = rim_system
    assert b.sheet == "sgouros-2025-rim" and b.summary()["sheet"] == "sgouros-2025-rim"
    moving = b.moving_membrane_atoms
    np.testing.assert_array_equal(moving, rim_atoms(b.membrane, RIM.rim_radius_nm))
    # every pore's six edge N move, and no atom farther than the rim radius from every pore does
    assert set(b.membrane.edge_atoms.ravel().tolist()) <= set(moving.tolist())
    masses = np.array([b.system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(b.membrane.n_atoms)])
    assert np.all(masses[moving] == md._sheet.RIM_MASS_AMU)
    assert np.count_nonzero(masses) == len(moving)
    e, f = _energy_forces(_bonded_context(b), np.array(b.positions_nm))
    assert abs(e) < 1e-6
    assert np.max(np.abs(f)) < 1e-4  # kJ/mol/nm: the built sheet is the bonded terms' minimum


def test_rim_energy_equals_an_independent_evaluation_of_the_cited_terms(rim_system):
    b = rim_system
    rng = np.random.default_rng(7)
    moving = np.zeros(b.n_atoms, dtype=bool)
    moving[b.moving_membrane_atoms] = True
    pos = np.array(b.positions_nm)
    # a thermal-size deformation: 0.005 nm in-plane, 0.02 nm out of plane, rim atoms only
    pos[b.moving_membrane_atoms] += rng.normal(size=(len(b.moving_membrane_atoms), 3)) * [0.005, 0.005, 0.02]
    e_openmm, _ = _energy_forces(_bonded_context(b), pos)
    e_numpy = _numpy_bonded_energy(b.membrane, pos[: b.membrane.n_atoms], moving[: b.membrane.n_atoms])
    assert e_openmm > 1.0  # the deformation costs energy (kJ/mol)
    assert e_openmm == pytest.approx(e_numpy, rel=1e-9, abs=1e-9)


def test_the_frozen_sheet_is_unchanged_and_records_keep_their_folders():
    b = md.build_system("B3N:KCl@1.0", cells=(2, 1), box_z_nm=4.0, forcefield_option="crown-midpoint")
    assert b.sheet == "frozen" and len(b.moving_membrane_atoms) == 0
    assert all(b.system.getParticleMass(i).value_in_unit(unit.dalton) == 0 for i in range(b.membrane.n_atoms))
    assert not any(isinstance(f, openmm.CustomBondForce) for f in b.system.getForces())
    # frozen hBN windows stay where they were recorded; moving rims get their own folder; crown is frozen
    assert membrane_model_for("crown-midpoint", "B3N") == "won-aluru-2008"
    assert membrane_model_for("hbn-rim", "B3N") == "won-aluru-2008+sgouros-2025-rim"
    assert membrane_model_for("hbn-rim", "crown6") == "midpoint-0.32"
    crown = md.build_system("crown6:KCl@1.0", cells=(2, 1), box_z_nm=4.0, forcefield_option="hbn-rim")
    assert crown.sheet == "frozen"


def test_bad_sheet_choices_name_argument_rule_and_value():
    with pytest.raises(ValueError, match=r"sheet must be one of .*frozen.*got 'bendy'"):
        md.sheet_model("bendy")
    membrane = md.build_membrane("crown6", cells=(2, 1), box_z_nm=4.0)
    electrolyte = md.build_electrolyte(membrane, "crown6:KCl@1.0")
    with pytest.raises(ValueError, match=r"sheet moves only hBN membranes.*got 'graphene'"):
        md.assemble_system(membrane, electrolyte, sheet="sgouros-2025-rim")


def test_edge_lj_option_changes_only_the_edge_n_and_gets_its_own_records():
    b = md.build_system("B3N:KCl@1.0", cells=(2, 1), box_z_nm=4.0, forcefield_option="hbn-edge-uff")
    (nb,) = [f for f in b.system.getForces() if isinstance(f, openmm.NonbondedForce)]
    uff = md.EDGE_LJ_SETS["uff-1992"]
    names = b.membrane.residue_names
    for i in range(b.membrane.n_atoms):
        _q, sig, eps = nb.getParticleParameters(i)
        if names[i] == "HBE":
            assert (sig.value_in_unit(unit.nanometer), eps.value_in_unit(unit.kilojoule_per_mole)) == (
                uff.sigma_nm,
                uff.epsilon_kj_per_mol,
            )
        elif names[i] == "HBN":
            assert sig.value_in_unit(unit.nanometer) == 0.3365
    assert md.EDGE_LJ_SETS["uff-1992"].sigma_nm == pytest.approx(0.3660 / 2 ** (1 / 6), abs=1e-5)  # σ = x/2^(1/6)
    assert membrane_model_for("hbn-edge-uff", "B3N") == "won-aluru-2008+edge-uff-1992"
    assert membrane_model_for("hbn-rim-edge-uff", "B3N") == "won-aluru-2008+sgouros-2025-rim+edge-uff-1992"
