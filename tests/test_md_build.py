"""MD builders: membranes and pores (counts, shells, neutrality, diameters vs the paper, periodic
pore arrays), the uniform field (q·E on the Reference platform, ΔV = E·L_z), electrolytes (the
molarity rule, neutrality, placement), bad input, and short CPU runs of each pore type."""

import math
import re

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
from openmm import unit  # noqa: E402

from conftest import assert_allclose  # noqa: E402
from ionkinetics import md  # noqa: E402
from ionkinetics.species import IONS  # noqa: E402

PORES = ("crown6", "B3N", "B6N3", "B10N6")
A_HBN = md.A_HBN_NM
B_N = A_HBN / math.sqrt(3.0)  # B–N bond, nm
C_C = md.A_CC_GRAPHENE_NM
# Paper (Noh & Smolyanitsky 2026, §2.1 and the Fig. 5 text): B3N is 0.7 Å smaller than the crown
# pore, B6N3 0.1 Å larger; the issue allows 0.15 Å on each difference.
PAPER_TOL_NM = 0.015
MIXED = {
    "crown6": "crown6:NaCl@1.0+KCl@0.5+NH4Cl@0.3",
    "B3N": "B3N:KCl@1.0+RbCl@0.5+MgCl2@0.25",
    "B6N3": "B6N3:RbCl@1.0+GdmCl@0.3+CaCl2@0.25",
    "B10N6": "B10N6:LiCl@1.0+GdmCl@0.5+CsCl@0.3",
}


@pytest.fixture(scope="module")
def membranes():
    return {p: md.build_membrane(p, spacing_nm=1.6, cells=(2, 1)) for p in PORES}


def _degrees(m):
    return np.bincount(m.bonds.ravel(), minlength=m.n_atoms)


def _min_image_xy(d, box_xy):
    return d - box_xy * np.round(d / box_xy)


# ---------------------------------------------------------------------------------------- membranes


@pytest.mark.parametrize(
    ("pore", "removed", "edge", "edge_element"),
    [
        ("crown6", {"C": 12}, 6, "O"),
        ("B3N", {"B": 3, "N": 1}, 6, "N"),
        ("B6N3", {"B": 6, "N": 3}, 9, "N"),
        ("B10N6", {"B": 10, "N": 6}, 12, "N"),
    ],
)
def test_atom_counts_elements_and_bonding_per_pore(membranes, pore, removed, edge, edge_element):
    m = membranes[pore]
    n, mm = m.superlattice
    sites = 4 * m.cells[0] * m.cells[1] * (n * n + n * mm + mm * mm)  # 2 atoms per primitive cell
    p = m.n_pores
    assert p == 2 * m.cells[0] * m.cells[1] == 4
    counts = m.element_counts()
    if pore == "crown6":  # 6 C removed and 6 C turned into O per pore: C12O6 ring
        assert counts == {"C": sites - 12 * p, "O": 6 * p}
        assert m.atom_types.count("ik-crown-C") == 12 * p
    else:
        assert counts == {"B": sites // 2 - removed["B"] * p, "N": sites // 2 - removed["N"] * p}
        assert m.atom_types.count("ik-hbn-N-edge") == edge * p
    assert m.edge_atoms.shape == (p, edge)
    assert {m.elements[i] for i in m.edge_atoms.ravel()} == {edge_element}
    # Every edge atom keeps two bonds, every other atom three; bonds have the lattice bond length.
    deg = _degrees(m)
    assert set(deg[m.edge_atoms.ravel()]) == {2}
    assert set(np.delete(deg, m.edge_atoms.ravel())) == {3}
    box_xy = m.box_nm[:2]
    d = _min_image_xy(m.positions_nm[m.bonds[:, 0], :2] - m.positions_nm[m.bonds[:, 1], :2], box_xy)
    assert_allclose(np.hypot(*d.T), C_C if pore == "crown6" else B_N, rtol=0, atol=1e-9)
    if pore == "crown6":  # every O bonded to two ring C, every ring C to exactly one O
        o = np.flatnonzero(np.array(m.elements) == "O")
        partners = [set(m.bonds[m.bonds[:, 0] == i, 1]) | set(m.bonds[m.bonds[:, 1] == i, 0]) for i in o]
        assert all(len(s) == 2 and all(m.elements[j] == "C" for j in s) for s in partners)
        ring_c = [j for s in partners for j in s]
        assert len(ring_c) == len(set(ring_c)) == 12 * p


@pytest.mark.parametrize(
    ("pore", "nearest_nm", "n_nearest"),
    [("crown6", 2 * C_C, 6), ("B3N", A_HBN, 6), ("B6N3", 2 * B_N, 3), ("B10N6", math.sqrt(7) * B_N, 6)],
)
def test_removal_shells_leave_the_documented_edge(membranes, pore, nearest_nm, n_nearest):
    """The module docstring's shells: the nearest edge atoms sit where the shell description says."""
    m = membranes[pore]
    box_xy = m.box_nm[:2]
    for c, edge in zip(m.pore_centres_nm, m.edge_atoms, strict=True):
        r = np.sort(np.hypot(*_min_image_xy(m.positions_nm[:, :2] - c[:2], box_xy).T))
        assert_allclose(r[:n_nearest], nearest_nm, rtol=0, atol=1e-9)
        assert r[n_nearest] > nearest_nm + 0.01
        r_edge = np.hypot(*_min_image_xy(m.positions_nm[edge, :2] - c[:2], box_xy).T)
        assert np.sum(np.isclose(r_edge, nearest_nm, atol=1e-9)) == n_nearest


@pytest.mark.parametrize("pore", [*PORES, None])
def test_membranes_are_neutral_with_edge_charges_balanced(membranes, pore):
    m = membranes[pore] if pore else md.build_membrane(None, material="hBN", cells=(1, 1))
    assert abs(m.net_charge_e) < 1e-9
    q = dict(zip(m.atom_types, m.charges_e.tolist(), strict=True))
    if m.material == "hBN":
        assert q["ik-hbn-B"] == -q["ik-hbn-N"] > 0
        if pore:
            assert q["ik-hbn-N-edge"] == pytest.approx(2 / 3 * q["ik-hbn-N"], abs=1e-12)
    else:
        assert q["ik-graphene-C"] == 0.0
        assert q["ik-crown-O"] == pytest.approx(-2 * q["ik-crown-C"], abs=1e-12)


def test_pore_diameters_order_and_the_papers_size_relations(membranes):
    d = {p: membranes[p].pore_diameter_nm for p in PORES}
    # Analytic largest empty circles of the ideal lattices: the optimiser must reproduce them.
    assert_allclose(
        [d["crown6"], d["B3N"], d["B6N3"], d["B10N6"]],
        [4 * C_C, 2 * A_HBN, 4 * B_N, 2 * math.sqrt(7) * B_N],
        rtol=0,
        atol=1e-7,
    )
    assert d["B3N"] < d["crown6"] < d["B6N3"] < d["B10N6"]
    assert abs((d["crown6"] - d["B3N"]) - 0.07) <= PAPER_TOL_NM  # 0.672 Å here
    assert abs((d["B6N3"] - d["crown6"]) - 0.01) <= PAPER_TOL_NM  # 0.103 Å here


def test_largest_inscribed_circle_known_answers():
    ring = 0.3 * np.column_stack([np.cos(np.arange(6) * np.pi / 3), np.sin(np.arange(6) * np.pi / 3)])
    centre, diam = md.largest_inscribed_circle_nm(ring + np.array([1.0, 2.0]), [1.05, 1.98])  # started off-centre
    assert_allclose(centre, [1.0, 2.0], rtol=0, atol=1e-6)
    assert_allclose(diam, 0.6, rtol=0, atol=1e-9)
    # Three points of an equilateral triangle of side s: circumcircle, diameter 2s/√3.
    tri = np.array([[0.0, 0.0], [0.5, 0.0], [0.25, 0.25 * math.sqrt(3)]])
    centre, diam = md.largest_inscribed_circle_nm(tri, [0.2, 0.1])
    assert_allclose(diam, 1.0 / math.sqrt(3), rtol=0, atol=1e-7)


@pytest.mark.parametrize("pore", PORES)
@pytest.mark.parametrize("spacing_nm", [1.5, 1.6, 1.7])
def test_pore_array_keeps_its_spacing_across_the_periodic_boundary(pore, spacing_nm):
    m = md.build_membrane(pore, spacing_nm=spacing_nm, cells=(2, 2))
    a = C_C * math.sqrt(3) if pore == "crown6" else A_HBN
    achievable = [a * math.sqrt(n * n + n * k + k * k) for n in range(1, 12) for k in range(n + 1)]
    assert abs(m.spacing_nm - spacing_nm) == pytest.approx(min(abs(x - spacing_nm) for x in achievable), abs=1e-12)
    assert abs(m.spacing_nm - spacing_nm) <= 0.05 * spacing_nm  # the documented bound
    box_xy = m.box_nm[:2]
    c = m.pore_centres_nm[:, :2]
    d = np.hypot(*_min_image_xy(c[:, None, :] - c[None, :, :], box_xy).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    assert_allclose(d.min(axis=1), m.spacing_nm, rtol=0, atol=1e-9)
    # Counting periodic images: six neighbours at the spacing, none closer, for every pore,
    # including those whose neighbours lie across the box edge.
    shifts = np.array([[i, j] for i in (-1, 0, 1) for j in (-1, 0, 1)]) * box_xy
    for k in range(m.n_pores):
        r = np.hypot(*(c[None, :, None, :] + shifts[None, None, :, :] - c[k]).reshape(-1, 2).T)
        r = r[r > 1e-9]
        assert np.sum(np.isclose(r, m.spacing_nm, atol=1e-9)) == 6
        assert r.min() == pytest.approx(m.spacing_nm, abs=1e-9)
    # Every pore is the same pore: same diameter computed on each.
    assert m.pore_diameter_nm is not None


def test_default_box_and_box_rounding():
    m = md.build_membrane("crown6")
    assert np.all(m.box_nm[:2] >= 3.0) and m.cells == (2, 2)
    m2 = md.build_membrane("crown6", box_xy_nm=(4.0, 3.0))
    assert m2.cells == (2, 1) and np.all(m2.box_nm[:2] <= [4.0, 3.0])


# -------------------------------------------------------------------------------------------- field


def _lone_ion_context(charge_e, box_z_nm, v):
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(
        openmm.Vec3(3.0, 0, 0) * unit.nanometer,
        openmm.Vec3(0, 3.0, 0) * unit.nanometer,
        openmm.Vec3(0, 0, box_z_nm) * unit.nanometer,
    )
    system.addParticle(20.0)
    md.add_field_force(system, [charge_e], [0])
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions([openmm.Vec3(0.3, 0.4, 0.5)] * unit.nanometer)
    md.set_voltage(ctx, v, box_z_nm)
    return ctx


@pytest.mark.parametrize("ion", ["Na+", "Mg2+", "Cl-"])
def test_field_force_on_a_lone_ion_is_qE_and_dV_is_E_Lz(ion):
    q, lz, v = IONS[ion].charge, 7.0, 0.35
    ctx = _lone_ion_context(q, lz, v)
    e_v_per_nm = v / lz
    f = ctx.getState(getForces=True).getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    assert_allclose(f[0], [0.0, 0.0, q * e_v_per_nm * md.FARADAY_KJ_PER_MOL_PER_V], rtol=1e-12, atol=1e-12)
    # ΔV = E·L_z: carrying the ion once up the box (z → z + L_z) changes its energy by −q·e·ΔV.
    u0 = ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    ctx.setPositions([openmm.Vec3(0.3, 0.4, 0.5 + lz)] * unit.nanometer)
    u1 = ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    assert_allclose((u0 - u1) / (q * md.FARADAY_KJ_PER_MOL_PER_V), v, rtol=1e-12, atol=0)
    assert md.voltage_for_field(md.field_for_voltage(v, lz), lz) == pytest.approx(v, rel=1e-15)
    assert md.field_for_voltage(0.1, 10.0) == pytest.approx(0.01 * 96.48533212331002, rel=1e-15)


@pytest.fixture(scope="module")
def small_system():
    return md.build_system("B3N:KCl@1.0+MgCl2@0.25+GdmCl@0.3", cells=(2, 1), box_z_nm=3.0, seed=7)


def test_field_force_in_a_built_system_is_qE_on_every_charged_particle(small_system):
    s = small_system
    ctx = openmm.Context(s.system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(s.positions())
    e = md.set_voltage(ctx, 0.25, s.box_nm[2])
    f = ctx.getState(getForces=True, groups={s.field_force_group}).getForces(asNumpy=True)
    f = f.value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    expected = np.zeros_like(f)
    expected[:, 2] = s.charges_e * e
    expected[s.membrane_atoms] = 0.0  # frozen: the field has nothing to move there
    assert_allclose(f, expected, rtol=1e-12, atol=1e-12)
    assert md.voltage_for_field(ctx.getParameter(s.field_parameter), s.box_nm[2]) == pytest.approx(0.25, rel=1e-12)


# -------------------------------------------------------------------------------------- electrolyte


def test_ion_counts_follow_the_molarity_rule_and_the_system_is_neutral(membranes):
    m = md.build_membrane("crown6", cells=(2, 1), box_z_nm=5.0)
    salts = {"NaCl": 1.0, "KCl": 0.5, "MgCl2": 0.25, "NH4Cl": 0.2, "GdmCl": 0.2}
    e = md.build_electrolyte(m, salts, seed=3)
    comp = e.composition
    lx, ly, lz = m.box_nm
    volume = lx * ly * (lz - 2 * e.gap_nm)
    assert comp.water_volume_nm3 == pytest.approx(volume, rel=1e-12)
    cations = {"NaCl": "Na+", "KCl": "K+", "MgCl2": "Mg2+", "NH4Cl": "NH4+", "GdmCl": "Gdm+"}
    for salt, c in salts.items():
        n = math.floor(c * 6.02214076e23 * volume * 1e-24 + 0.5)
        assert comp.counts[cations[salt]] == n == md.ion_count(c, volume)
        assert comp.effective_molar[cations[salt]] == pytest.approx(n / (6.02214076e23 * volume * 1e-24), rel=1e-12)
    assert comp.counts["Cl-"] == sum(IONS[ion].charge * n for ion, n in comp.counts.items() if ion != "Cl-")
    # Neutral overall and on each side of the membrane.
    for side in (0, 1):
        assert sum(IONS[ion].charge * v[side] for ion, v in comp.counts_by_side.items()) == 0
    assert abs(comp.net_charge_e) < 1e-9
    assert e.ion_species == tuple(ion for ion, n in comp.counts.items() for _ in range(n))
    # Placement: ions away from the membrane and from each other; water beyond the gap.
    box = m.box_nm
    z_ion = e.positions_nm[e.ion_atoms, 2]
    assert np.all(np.abs(z_ion) >= 0.6 - 1e-12)
    dv = e.positions_nm[e.ion_atoms][:, None] - e.positions_nm[e.ion_atoms][None]
    dv -= box * np.round(dv / box)
    r = np.sqrt((dv**2).sum(-1))
    np.fill_diagonal(r, np.inf)
    assert r.min() >= 0.5 - 1e-12
    water_o = e.residue_starts[:-1][np.array(e.residue_names) == "HOH"]
    assert comp.n_water == len(water_o)
    assert np.all(np.abs(e.positions_nm[water_o, 2]) >= e.gap_nm)
    assert comp.n_water_sites / volume == pytest.approx(md.WATER_NUMBER_DENSITY_PER_NM3, rel=0.05)
    # Same seed, same build; another seed, another placement.
    assert np.array_equal(md.build_electrolyte(m, salts, seed=3).positions_nm, e.positions_nm)
    assert not np.array_equal(md.build_electrolyte(m, salts, seed=4).positions_nm, e.positions_nm)


def test_system_id_and_salts_forms_agree(membranes):
    m = membranes["crown6"]
    a = md.build_electrolyte(m, "crown6:NaCl@1.0+KCl@0.5", seed=1)
    b = md.build_electrolyte(m, "NaCl@1.0+KCl@0.5", seed=1)
    c = md.build_electrolyte(m, [("NaCl", 1.0), ("KCl", 0.5)], seed=1)
    assert a.composition == b.composition == c.composition
    assert np.array_equal(a.positions_nm, c.positions_nm)


def test_built_system_is_neutral_frozen_and_indexed(small_system):
    s = small_system
    assert abs(s.charges_e.sum()) < 1e-9
    assert s.system.getNumParticles() == s.topology.getNumAtoms() == s.n_atoms == len(s.positions_nm)
    masses = np.array([s.system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(s.n_atoms)])
    assert np.all(masses[s.membrane_atoms] == 0.0) and np.all(masses[s.membrane.n_atoms :] > 0)
    atoms = list(s.topology.atoms())
    for i, ion in zip(s.ion_indices, s.ion_species, strict=True):
        assert atoms[i].element.symbol == {"Gdm+": "C", "NH4+": "N"}.get(ion, IONS[ion].symbol)
        residue_charge = sum(s.charges_e[a.index] for a in atoms[i].residue.atoms())
        assert residue_charge == pytest.approx(IONS[ion].charge, abs=1e-12)
    (nb,) = [f for f in s.system.getForces() if isinstance(f, openmm.NonbondedForce)]
    assert nb.getNonbondedMethod() == openmm.NonbondedForce.PME
    assert nb.getCutoffDistance().value_in_unit(unit.nanometer) == pytest.approx(1.0)
    assert nb.getExceptionsUsePeriodicBoundaryConditions()
    assert s.n_membrane_exclusions > 0
    assert s.summary()["membrane"]["n_pores"] == 4


def test_swapping_the_forcefield_xml_changes_membrane_charges(tmp_path):
    text = md.shipped_forcefield_xml().read_text()
    swapped = text.replace('charge="1.05"', 'charge="0.9"').replace('charge="-1.05"', 'charge="-0.9"')
    good = tmp_path / "hbn09.xml"
    good.write_text(swapped.replace('charge="-0.70"', 'charge="-0.6"'))
    m = md.build_membrane("B3N", cells=(2, 1), forcefield_files=("amber14/tip3p.xml", str(good)))
    assert abs(m.net_charge_e) < 1e-9 and max(m.charges_e) == pytest.approx(0.9)
    bad = tmp_path / "unbalanced.xml"
    bad.write_text(swapped)  # edge N left at −0.70 with bulk ±0.9: not neutral
    with pytest.raises(ValueError, match=r"forcefield_files .*net charge"):
        md.build_membrane("B3N", cells=(2, 1), forcefield_files=("amber14/tip3p.xml", str(bad)))


# ---------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda m: md.build_membrane("crown7"), r"pore: unknown pore 'crown7'; known pores are: crown6"),
        (lambda m: md.build_electrolyte(m, {"XCl": 1.0}), r"salts: unknown salt 'XCl'; known salts are: LiCl"),
        (lambda m: md.build_system("crown6:NaCl@1.0+FooCl@0.5", cells=(2, 1)), r"system_id: unknown salt 'FooCl'"),
        (lambda m: md.build_electrolyte(m, {"NaCl": -1.0}), r"salts: molarity of NaCl must be a finite number > 0 .*-1\.0"),
        (lambda m: md.build_electrolyte(m, "crown6:NaCl@-0.5"), r"salts: .*NaCl.*> 0.*-0\.5"),
        (lambda m: md.build_electrolyte(m, {"NaCl": 0.001}), r"salts .*round\(c·N_A·V_water\).*'NaCl@0\.001'"),
        (lambda m: md.build_electrolyte(m, "B3N:KCl@1.0"), r"salts name the membrane's pore \('crown6'\).*'B3N:KCl@1\.0'"),
        (
            lambda m: md.build_membrane("crown6", box_xy_nm=(1.0, 1.0)),
            r"box_xy_nm is too small for the crown6 pore array.*\(1\.0, 1\.0\)",
        ),
        (lambda m: md.build_membrane("B3N", spacing_nm=0.5), r"spacing_nm must be a finite pore spacing >= 1\.0 nm; got 0\.5"),
        (lambda m: md.build_membrane("B10N6", spacing_nm=1.0), r"spacing_nm is too small for B10N6.*1\.0"),
        (lambda m: md.build_membrane("crown6", cells=(0, 1)), r"cells must be two whole numbers.*\(0, 1\)"),
        (
            lambda m: md.build_system("crown6:NaCl@1.0", cells=(1, 1)),
            r"membrane.box_vectors_nm must have every box edge at least 2 × cutoff_nm",
        ),
        (lambda m: md.build_electrolyte(m, "NaCl@1.0", seed=-1), r"seed must be a whole number >= 0; got -1"),
        (lambda m: md.field_for_voltage(float("nan"), 5.0), r"v must be a finite voltage"),
        (lambda m: md.field_for_voltage(0.1, 0.0), r"box_z_nm must be a finite box height > 0 nm; got 0\.0"),
        (lambda m: md.select_platform("Nope"), r"name must be 'auto' or an OpenMM platform.*'Nope'"),
        (
            lambda m: md.build_membrane("B3N", forcefield_files=("amber14/tip3p.xml", "no/such.xml")),
            r"forcefield_files .*'no/such.xml'",
        ),
    ],
)
def test_bad_input_names_argument_rule_and_value(membranes, call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call(membranes["crown6"])


def test_non_neutral_charge_override_is_refused(membranes):
    m = membranes["B6N3"]
    e = md.build_electrolyte(m, "KCl@1.0", seed=0)
    q = m.charges_e.copy()
    q[0] += 0.1
    with pytest.raises(ValueError, match=re.escape("membrane_charges_e must sum to zero (a neutral membrane); got 0.1")):
        md.assemble_system(m, e, membrane_charges_e=q)


def test_select_platform():
    platform, props = md.select_platform("Reference")
    assert platform.getName() == "Reference" and props == {}
    platform, props = md.select_platform()
    assert platform.getName() in ("CUDA", "OpenCL", "CPU")
    assert props == ({"Precision": "mixed"} if platform.getName() in ("CUDA", "OpenCL") else {})
    with pytest.raises(ValueError, match="precision must be one of single, mixed, double; got 'half'"):
        md.select_platform(precision="half")


# ------------------------------------------------------------------------------------ short CPU runs


@pytest.mark.parametrize("pore", PORES)
def test_short_minimisation_and_md_stay_finite_with_the_membrane_fixed(pore):
    s = md.build_system(MIXED[pore], cells=(2, 1), box_z_nm=3.0, seed=11)
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1.0 / unit.picosecond, 0.002 * unit.picoseconds)
    integrator.setRandomNumberSeed(5)
    ctx = openmm.Context(s.system, integrator, openmm.Platform.getPlatformByName("CPU"))
    ctx.setPositions(s.positions())
    openmm.LocalEnergyMinimizer.minimize(ctx, 100.0, 40)
    ctx.setVelocitiesToTemperature(300 * unit.kelvin, 5)
    ctx.setParameter(s.field_parameter, s.field_for_voltage(0.5))
    integrator.step(25)
    state = ctx.getState(getEnergy=True, getPositions=True, getForces=True)
    pos = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    assert np.all(np.isfinite(pos)) and math.isfinite(energy) and energy < 0
    assert np.isfinite(state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole))
    assert np.array_equal(pos[s.membrane_atoms], s.positions_nm[s.membrane_atoms])  # frozen exactly
    assert not np.array_equal(pos[s.membrane.n_atoms :], s.positions_nm[s.membrane.n_atoms :])
