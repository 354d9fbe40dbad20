"""Named, cited force-field options for the membranes' uncertain partial charges.

The membrane charges are the least certain part of the MD model (issue 12): the crown-ether O/C
charges and the hBN B/N (and vacancy-edge N) charges differ between published models by a factor
of 2–3. Each choice here is a :class:`ChargeSet` with its source and a plain statement of what was
and was not checked against that source; a :class:`ForceFieldOption` pairs one crown set with one
hBN set under a name that goes into the spec (``[forcefield] option = "..."``), ``build_system``
(``forcefield_option=``), ``system.json`` / ``build.json`` and every umbrella window's record.

Every set keeps every membrane exactly neutral with the bond-charge-increment rule of
``data/ionkinetics.xml``: crown ring C = −O/2 (6 O, 12 ring C per pore); hBN bulk B = −bulk N and
vacancy-edge N = 2/3 of bulk N (each B–N bond moves q/3). Sets that break the rule are refused.

An option other than the shipped file's own charges is realised as a copy of
``data/ionkinetics.xml`` with the five template charges replaced and the option's name and
sources written into its header (:func:`forcefield_option_files`); the copy lives in a cache
folder (``$IONKINETICS_CACHE`` or ``~/.cache/ionkinetics``) under a name carrying a hash of its
content, so every membrane atom, the OpenMM System and the membrane record agree on the charges.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from .._checks import bad_argument
from .._io import write_text_atomic
from ._membranes import default_forcefield_files, shipped_forcefield_xml
from ._sheet import sheet_model

__all__ = [
    "CROWN_CHARGE_SETS",
    "DEFAULT_FORCEFIELD_OPTION",
    "EDGE_LJ_SETS",
    "FORCEFIELD_OPTIONS",
    "HBN_CHARGE_SETS",
    "ChargeSet",
    "ForceFieldOption",
    "forcefield_option",
    "forcefield_option_files",
]

_NEUTRAL_ATOL_E = 1e-9


@dataclasses.dataclass(frozen=True)
class ChargeSet:
    """Charges (e) of some membrane residue templates (``CRO``/``CRC`` or ``HBB``/``HBN``/``HBE``),
    with ``source`` (the citation) and ``checked`` (what of it was verified, and how)."""

    name: str
    material: str
    charges_e: tuple[tuple[str, float], ...]
    source: str
    checked: str

    def __post_init__(self):
        q = dict(self.charges_e)
        if self.material == "crown":
            if set(q) != {"CRO", "CRC"}:
                raise bad_argument("charges_e", "of a crown set must give exactly CRO and CRC", sorted(q))
            net = 6 * q["CRO"] + 12 * q["CRC"]
            if abs(net) > _NEUTRAL_ATOL_E:
                raise bad_argument("charges_e", "must keep the crown neutral: 6·q(CRO) + 12·q(CRC) = 0", net)
        elif self.material == "hBN":
            if set(q) != {"HBB", "HBN", "HBE"}:
                raise bad_argument("charges_e", "of an hBN set must give exactly HBB, HBN and HBE", sorted(q))
            if abs(q["HBB"] + q["HBN"]) > _NEUTRAL_ATOL_E or abs(q["HBE"] - 2.0 / 3.0 * q["HBN"]) > _NEUTRAL_ATOL_E:
                raise bad_argument("charges_e", "must keep hBN neutral: q(HBB) = −q(HBN) and q(HBE) = (2/3)·q(HBN)", q)
        else:
            raise bad_argument("material", "must be 'crown' or 'hBN'", self.material)

    def as_dict(self) -> dict:
        """The charge set as a JSON-ready mapping (name, material, charges in e per atom type, source, check)."""
        return {"name": self.name, "material": self.material, "charges_e": dict(self.charges_e), "source": self.source,
                "checked": self.checked}  # fmt: skip


def _crown(name: str, q_o: float, source: str, checked: str) -> ChargeSet:
    return ChargeSet(name, "crown", (("CRO", q_o), ("CRC", -q_o / 2.0)), source, checked)


def _hbn(name: str, q: float, source: str, checked: str) -> ChargeSet:
    return ChargeSet(name, "hBN", (("HBB", q), ("HBN", -q), ("HBE", -2.0 * q / 3.0)), source, checked)


CROWN_CHARGE_SETS: dict[str, ChargeSet] = {
    s.name: s
    for s in (
        _crown(
            "opls-aa-ether",
            -0.40,
            "OPLS-AA dialkyl-ether group rule: O −0.40 e, each alpha CH2 group +0.20 e carried here by the H-free "
            "ring C (Jorgensen, Maxwell, Tirado-Rives, J. Am. Chem. Soc. 118, 11225 (1996); Briggs, Matsui, "
            "Jorgensen, J. Comput. Chem. 11, 958 (1990)). Not a fit to the graphene-embedded ring.",
            "Taken over from data/ionkinetics.xml as shipped (2025-11-25); the OPLS numbers were not re-checked "
            "against the papers in this session.",
        ),
        _crown(
            "sahu-2019",
            -0.24,
            "Sahu, Elenewski, Rohmann, Zwolak, 'Optimal transport and colossal ionic mechano-conductance in "
            "graphene crown ethers', Sci. Adv. 5, eaaw5478 (2019): crown O −0.24 e, stated there as consistent "
            "with DFT. Ring C = +0.12 e is this package's choice that keeps the pore neutral (6 O, 12 ring C).",
            "The O value is as cited by issue 12's review; the stored copy of the article reachable here holds "
            "only its abstract and introduction, so −0.24 e and Sahu's own ring-C charge were NOT verified "
            "against the methods section. Re-check before publishing numbers.",
        ),
        _crown(
            "midpoint-0.32",
            -0.32,
            "NOT a published value: the midpoint of the two cited sets (O −0.40 e OPLS-AA, −0.24 e Sahu 2019), "
            "ring C +0.16 e from neutrality. A screening probe added because a short screen put crown6 Na+ in a "
            "deep well with −0.40 e and behind a barrier with −0.24 e (md/validation/screen).",
            "Nothing to verify: an interpolation, stated as such. Use it to locate the charge the paper's "
            "facts need, then look for a published model near it before relying on it.",
        ),
        _crown(
            "probe-0.28",
            -0.28,
            "NOT a published value: a screening probe between the midpoint (−0.32 e) and Sahu 2019 (−0.24 e), "
            "ring C +0.14 e from neutrality (issue 23's crown screen: −0.28, −0.32, −0.36 e).",
            "Nothing to verify: a probe, stated as such; chosen (if at all) to reproduce the paper's crown facts.",
        ),
        _crown(
            "probe-0.36",
            -0.36,
            "NOT a published value: a screening probe between OPLS-AA (−0.40 e) and the midpoint (−0.32 e), "
            "ring C +0.18 e from neutrality (issue 23's crown screen: −0.28, −0.32, −0.36 e).",
            "Nothing to verify: a probe, stated as such; chosen (if at all) to reproduce the paper's crown facts.",
        ),
    )
}

HBN_CHARGE_SETS: dict[str, ChargeSet] = {
    s.name: s
    for s in (
        _hbn(
            "won-aluru-2008",
            1.05,
            "B +1.05 e, N −1.05 e: ESP-fitted DFT charges for BN nanotubes used with the Won-Aluru B/N "
            "Lennard-Jones parameters (Won and Aluru, J. Phys. Chem. C 112, 1812 (2008)). Vacancy-edge N "
            "= (2/3)(−1.05) = −0.70 e by bond-charge increments (this package's rule, not a published value).",
            "The abstract of Won and Aluru 2008 (stored copy) confirms charges 'determined by matching the "
            "electrostatic potential computed by the DFT'; the number 1.05 itself could not be seen in any "
            "stored copy and is as shipped in data/ionkinetics.xml. No published hBN *pore* model with an "
            "edge-N charge was found; the edge value is an assumption.",
        ),
        _hbn(
            "q040",
            0.40,
            "B +0.40 e, N −0.40 e: the smaller, Mulliken-like BN charges of the early BNNT water/ion MD "
            "literature (attributed in data/ionkinetics.xml to Won and Aluru, J. Am. Chem. Soc. 129, 2748 "
            "(2007)); edge N = −0.2667 e by bond-charge increments.",
            "NOT verified against the paper in this session (no stored copy of its methods was found); a "
            "sensitivity option spanning the published range (about ±0.3 to ±1.05 e), not a claim about one study.",
        ),
        _hbn(
            "uncharged",
            0.0,
            "No partial charges on B and N (Lennard-Jones only): the control Won and Aluru 2008 compare "
            "against (their abstract: with and without partial charges).",
            "The comparison is in the stored abstract of Won and Aluru 2008. A control, not a model of hBN.",
        ),
    )
}


@dataclasses.dataclass(frozen=True)
class EdgeLJ:
    """Lennard-Jones parameters of the hBN vacancy-edge N (atom type ``ik-hbn-N-edge``), with its source."""

    name: str
    sigma_nm: float
    epsilon_kj_per_mol: float
    source: str

    def as_dict(self) -> dict:
        """The parameter set as a JSON-ready mapping (σ in nm, ε in kJ/mol, source)."""
        return dataclasses.asdict(self)


EDGE_LJ_SETS: dict[str, EdgeLJ] = {
    e.name: e
    for e in (
        EdgeLJ(
            "won-aluru-2007",
            0.3365,
            0.6058432,
            "As bulk hBN N: σ = 3.365 Å, ε = 0.1448 kcal/mol (Won and Aluru 2007, 2008), the shipped data/ionkinetics.xml.",
        ),
        EdgeLJ(
            "uff-1992",
            0.32607,
            0.288696,
            "UFF nitrogen (x = 3.660 Å, D = 0.069 kcal/mol; Rappé, Casewit, "
            "Colwell, Goddard, Skiff, J. Am. Chem. Soc. 114, 10024 (1992)): σ = x/2^(1/6) = 3.2607 Å. Applied to "
            "the two-coordinated vacancy-edge N only (issue 23: the edge's wall against K+); the sheet's other N "
            "keep Won-Aluru's. A screening choice, not a published hBN-pore model.",
        ),
    )
}


@dataclasses.dataclass(frozen=True)
class ForceFieldOption:
    """One crown-ether charge set and one hBN charge set under a name (the spec's ``[forcefield] option``)."""

    name: str
    crown: ChargeSet
    hbn: ChargeSet
    note: str
    hbn_sheet: str = "frozen"  # ionkinetics.md.SHEET_MODELS: how hBN membranes move (graphene stays frozen)
    hbn_edge_lj: str = "won-aluru-2007"  # EDGE_LJ_SETS: Lennard-Jones of the vacancy-edge N

    def __post_init__(self):
        sheet_model(self.hbn_sheet)
        if self.hbn_edge_lj not in EDGE_LJ_SETS:
            raise bad_argument("hbn_edge_lj", f"must be one of {', '.join(sorted(EDGE_LJ_SETS))}", self.hbn_edge_lj)

    @property
    def template_charges_e(self) -> dict[str, float]:
        """Partial charge (e) of every crown and hBN atom type this option sets, keyed by type."""
        return {**dict(self.crown.charges_e), **dict(self.hbn.charges_e)}

    def as_dict(self) -> dict:
        """The option as a JSON-ready mapping, with its charge sets, sheet model and edge Lennard-Jones set spelled out."""
        return {"name": self.name, "note": self.note, "crown": self.crown.as_dict(), "hbn": self.hbn.as_dict(),
                "hbn_sheet": sheet_model(self.hbn_sheet).as_dict(),
                "hbn_edge_lj": EDGE_LJ_SETS[self.hbn_edge_lj].as_dict()}  # fmt: skip


def _option(name: str, crown: str, hbn: str, note: str, hbn_sheet: str = "frozen", hbn_edge_lj: str = "won-aluru-2007"):
    return ForceFieldOption(name, CROWN_CHARGE_SETS[crown], HBN_CHARGE_SETS[hbn], note, hbn_sheet, hbn_edge_lj)


DEFAULT_FORCEFIELD_OPTION = "ik-2025"
FORCEFIELD_OPTIONS: dict[str, ForceFieldOption] = {
    o.name: o
    for o in (
        _option(
            "ik-2025",
            "opls-aa-ether",
            "won-aluru-2008",
            "The charges of data/ionkinetics.xml as first shipped; still the default until `md validate` picks one. "
            "Issue 12 finds it makes crown6 a Na+ plug (K ≈ 1.6e3 /M) from short one-sided PMFs.",
        ),
        _option("sahu-crown", "sahu-2019", "won-aluru-2008", "DFT-consistent crown O (Sahu 2019); hBN as ik-2025."),
        _option("crown-midpoint", "midpoint-0.32", "won-aluru-2008", "Screening probe between the two cited crown sets."),
        _option("crown-probe-0.28", "probe-0.28", "won-aluru-2008", "Crown charge screen (issue 23): O −0.28 e."),
        _option("crown-probe-0.36", "probe-0.36", "won-aluru-2008", "Crown charge screen (issue 23): O −0.36 e."),
        _option(
            "hbn-rim",
            "midpoint-0.32",
            "won-aluru-2008",
            "hBN pore rims move (Sgouros 2025 bonded terms), hBN charges as ik-2025; crown as crown-midpoint.",
            hbn_sheet="sgouros-2025-rim",
        ),
        _option(
            "hbn-rim-q040",
            "midpoint-0.32",
            "q040",
            "hBN pore rims move (Sgouros 2025 bonded terms) with the small published hBN charges (±0.40 e).",
            hbn_sheet="sgouros-2025-rim",
        ),
        _option(
            "hbn-rim-edge-uff",
            "midpoint-0.32",
            "won-aluru-2008",
            "Moving hBN pore rims with UFF Lennard-Jones on the vacancy-edge N (issue 23's B3N K+ screen).",
            hbn_sheet="sgouros-2025-rim",
            hbn_edge_lj="uff-1992",
        ),
        _option(
            "hbn-edge-uff",
            "midpoint-0.32",
            "won-aluru-2008",
            "Frozen hBN with UFF Lennard-Jones on the vacancy-edge N (issue 23's B3N K+ screen).",
            hbn_edge_lj="uff-1992",
        ),
        _option("sahu-crown-hbn-q040", "sahu-2019", "q040", "Sahu crown; the small end of the published hBN charges."),
        _option("sahu-crown-hbn-uncharged", "sahu-2019", "uncharged", "Sahu crown; uncharged hBN (control)."),
    )
}


def forcefield_option(name) -> ForceFieldOption:
    """The option called ``name`` (one of :data:`FORCEFIELD_OPTIONS`)."""
    if not isinstance(name, str) or name not in FORCEFIELD_OPTIONS:
        raise bad_argument("forcefield_option", f"must be one of {', '.join(sorted(FORCEFIELD_OPTIONS))}", name)
    return FORCEFIELD_OPTIONS[name]


def _cache_dir() -> Path:
    root = os.environ.get("IONKINETICS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ionkinetics")
    return Path(root) / "forcefield"


def _option_xml_text(option: ForceFieldOption) -> str:
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))  # keep the shipped file's source comments
    root = ET.parse(shipped_forcefield_xml(), parser=parser).getroot()
    charges = option.template_charges_e
    seen = set()
    for res in root.iter("Residue"):
        name = res.get("name")
        if name in charges:
            (atom,) = res.findall("Atom")
            atom.set("charge", repr(float(charges[name])))
            seen.add(name)
    if seen != set(charges):
        raise AssertionError(f"shipped XML lacks templates {sorted(set(charges) - seen)}")
    edge = EDGE_LJ_SETS[option.hbn_edge_lj]
    (lj,) = [a for a in root.iter("Atom") if a.get("type") == "ik-hbn-N-edge" and a.get("sigma") is not None]
    lj.set("sigma", repr(edge.sigma_nm))
    lj.set("epsilon", repr(edge.epsilon_kj_per_mol))
    info = root.find("Info")
    if info is None:
        raise ValueError("the shipped force field XML has no <Info> element to record the charge sets in")
    for s in (option.crown, option.hbn):
        ref = ET.SubElement(info, "Reference")
        ref.text = f"[{option.name}: {s.material} charges '{s.name}'] {s.source}"
    body = ET.tostring(root, encoding="unicode")
    header = (
        f"<!-- ionkinetics force-field option '{option.name}' (generated from data/ionkinetics.xml by "
        f"ionkinetics.md.forcefield_option_files; do not edit). Membrane charges, e: "
        + ", ".join(f"{k} {v:+.6g}" for k, v in sorted(charges.items()))
        + f". Crown: {option.crown.name}; hBN: {option.hbn.name}; hBN edge N Lennard-Jones: {option.hbn_edge_lj}."
        + " Sources in <Info>; what was verified: "
        + f"crown: {option.crown.checked} hBN: {option.hbn.checked} -->\n"
    )
    inner = header[len("<!-- ") : -len(" -->\n")].replace("--", "- -")  # "--" may not appear inside an XML comment
    return f"<!-- {inner} -->\n{body}\n"


def forcefield_option_files(name: str) -> tuple[str, ...]:
    """Force-field files (for ``build_system(forcefield_files=...)``) that realise option ``name``:
    OpenMM's ``amber14/tip3p.xml`` and the shipped membrane XML when the option's charges are the
    shipped ones, else a generated copy with the option's charges (cached by content hash)."""
    option = forcefield_option(name)
    shipped = dict(_shipped_template_charges())
    same_charges = all(abs(shipped.get(k, float("nan")) - v) <= 1e-12 for k, v in option.template_charges_e.items())
    if same_charges and option.hbn_edge_lj == "won-aluru-2007":
        return default_forcefield_files()
    text = _option_xml_text(option)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = _cache_dir() / f"ionkinetics-{option.name}-{digest}.xml"
    if not path.is_file():
        write_text_atomic(path, text)
    return ("amber14/tip3p.xml", str(path))


def _shipped_template_charges() -> dict[str, float]:
    out = {}
    for res in ET.parse(shipped_forcefield_xml()).getroot().iter("Residue"):
        atoms = res.findall("Atom")
        charge = atoms[0].get("charge") if len(atoms) == 1 else None
        if charge is not None:
            out[res.get("name")] = float(charge)
    return out
