"""The cheap scan that ranks the B3N options before any umbrella window (issue 23): for each option and
cation, the ion is held on the pore axis at z (a stiff restraint), every other ion and all water are
switched off, the system is minimised (moving rim atoms relax; a frozen sheet does not) and its energy is
recorded relative to z = 1 nm. No water and no entropy: this is the bare ion–membrane energy, which says
whether the centre is a wall (K+ cannot reach it whatever the solvent does) or a well. It is NOT a PMF.

    python md/validation/vacuum_scan.py [option ...]    # writes md/validation/checks/vacuum-scan.json
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import openmm
import openmm.unit as u

from ionkinetics import md

OUT = Path(__file__).parent / "checks" / "vacuum-scan.json"
OPTIONS = ("crown-midpoint", "hbn-rim", "hbn-rim-q040", "hbn-edge-uff", "hbn-rim-edge-uff")
IONS = (("K+", "KCl"), ("Na+", "NaCl"), ("Rb+", "RbCl"))
Z_NM = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.6, 1.0)
KT_KJ_PER_MOL = 2.4790  # 298.15 K


def profile(option: str, ion: str, salt: str) -> dict:
    b = md.build_system(f"B3N:{salt}@1.0", forcefield_option=option, cells=(2, 1), box_z_nm=5.0, seed=1, cutoff_nm=0.9)
    s = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(b.system))
    (nb,) = [f for f in s.getForces() if isinstance(f, openmm.NonbondedForce)]
    k = next(int(i) for i, sp in zip(b.ion_indices, b.ion_species, strict=True) if sp == ion)
    n_mem = b.membrane.n_atoms
    for i in range(n_mem, s.getNumParticles()):
        if i != k:
            _, sig, _ = nb.getParticleParameters(i)
            nb.setParticleParameters(i, 0.0, sig, 0.0)
    for j in range(nb.getNumExceptions()):
        i1, i2, _, sg, _ = nb.getExceptionParameters(j)
        if i1 >= n_mem or i2 >= n_mem:
            nb.setExceptionParameters(j, i1, i2, 0.0, sg, 0.0)
    c = b.pore_centres_nm[0]
    md.add_umbrella_restraints(s, k, pore_xy_nm=c[:2], z0_nm=0.0, k_z_kj_per_mol_nm2=1e5, flat_bottom_radius_nm=0.0,
                               k_xy_kj_per_mol_nm2=1e5)  # fmt: skip
    ctx = openmm.Context(s, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    rows = []
    for z in Z_NM:
        ctx.setParameter(md.UMBRELLA_PARAMETERS["z0_nm"], z)
        p = np.array(b.positions_nm)
        p[k] = [c[0], c[1], z]
        ctx.setPositions(p * u.nanometer)
        openmm.LocalEnergyMinimizer.minimize(ctx, 1.0, 2000)
        st = ctx.getState(getEnergy=True, getPositions=True)
        pp = st.getPositions(asNumpy=True).value_in_unit(u.nanometer)
        edge = b.membrane.edge_atoms[0]
        energy = st.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole)
        rows.append({"z_nm": z, "ion_z_nm": float(pp[k, 2]), "energy_kj_per_mol": energy,
                     "edge_radius_nm": float(np.hypot(*(pp[edge, :2] - c[:2]).T).mean())})  # fmt: skip
    e_ref = rows[-1]["energy_kj_per_mol"]
    for r in rows:
        r["energy_kt"] = (r.pop("energy_kj_per_mol") - e_ref) / KT_KJ_PER_MOL
    side = min(r["energy_kt"] for r in rows if r["z_nm"] > 0)
    return {"option": option, "ion": ion, "sheet": b.sheet, "rows": rows, "centre_kt": rows[0]["energy_kt"],
            "side_min_kt": side, "centre_over_side_kt": rows[0]["energy_kt"] - side}  # fmt: skip


def main(argv=None) -> int:
    options = (argv if argv is not None else sys.argv[1:]) or OPTIONS
    old = json.loads(OUT.read_text()) if OUT.is_file() else {"scans": []}
    scans = [s for s in old["scans"] if s["option"] not in options]
    for opt in options:
        for ion, salt in IONS:
            r = profile(opt, ion, salt)
            scans.append(r)
            print(f"{opt:18s} {ion:4s} centre {r['centre_kt']:7.1f} kT, side min {r['side_min_kt']:7.1f} kT, "
                  f"centre over side {r['centre_over_side_kt']:6.1f} kT", flush=True)  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"note": __doc__.strip().splitlines()[0], "scans": scans}, indent=1))
    os.replace(tmp, OUT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
