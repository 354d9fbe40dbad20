"""The targets template for a new ion pair: a targets TOML (schema ``ionkinetics.targets/1``) with
every number to fill marked ``nan`` and every citation empty, written by ``ionkinetics fit --template``
(:func:`targets_template`)."""

from __future__ import annotations

from .. import species
from ._calibration import list_calibrations
from ._design import PAPER_TEXT_ROLE_SOURCES, PAPER_TEXT_ROLES

__all__ = ["targets_template"]


# Starting values of a template's fit: gating charges sum to half the ion's charge (a site at the
# centre of a symmetric membrane crosses half the drop), rates in the range of the shipped files.
_TEMPLATE_START = {
    "trap.k0_per_ns_per_molar": 0.05,
    "trap.delta": 0.2,
    "escape.k0_per_ns": 0.01,
    "escape.delta": 0.3,
}
_SITE_BY_ROLE = {"voltage activator": "center", "voltage inactivator": "entrance"}


def _toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _template_row(kind, fields, *, comment, assumed=False) -> list[str]:
    """One ``[[target]]`` row of a targets template: published (section and quote to fill) or assumed."""
    out = ["", "[[target]]", f'kind = "{kind}"']
    out += [f"{k} = {v}" for k, v in fields]
    if assumed:
        out += ["assumed = true", f'note = "ASSUMED: {comment}"']
    else:
        out += [
            'section = ""  # FILL: the section (or figure) of the source',
            'quote = ""  # FILL: the sentence that states it',
        ]
    return out


def _template_targets(dopants) -> list[str]:
    """The template's target rows: G at 0.1 and 0.4 V; with dopants w at rest (assumed) and both step times."""
    lines: list[str] = []
    lines += _template_row(
        "conductance", [("v", 0.1), ("g_ps", "nan  # FILL: conductance per pore (pS) at v"), ("rel_sigma", 0.15)], comment=""
    )
    lines += _template_row(
        "conductance", [("v", 0.4), ("g_ps", "nan  # FILL: conductance per pore (pS) at v"), ("rel_sigma", 0.15)], comment=""
    )
    if dopants:
        lines += _template_row(
            "steady_w",
            [("v", 0.0), ("w", "nan  # FILL: open fraction at rest, 0..1"), ("sigma", 0.05)],
            comment="say here what was assumed (and list it in `assumptions`)",
            assumed=True,
        )
        lines += _template_row(
            "step_tau",
            [
                ("v_from", 0.0),
                ("v_to", 0.5),
                ("tau_ns", "nan  # FILL: relaxation time of w after the step, ns"),
                ("rel_sigma", 0.5),
            ],
            comment="",
        )
        lines += _template_row(
            "step_tau",
            [
                ("v_from", 0.5),
                ("v_to", 0.0),
                ("tau_ns", "nan  # FILL: relaxation time of w after the bias is removed, ns"),
                ("rel_sigma", 0.5),
            ],
            comment="",
        )
    return lines


def _template_parameters(dopants, reuse_open: bool) -> list[str]:
    """The template's ``[parameters]`` table (starting values) and its ``free`` list."""
    lines, free = [], []
    lines.append("[parameters]  # starting values of the fit; a parameter not listed in `free` stays fixed")
    if not reuse_open:
        lines += ['"open.c_ps" = 100.0', '"open.alpha_per_v" = 0.0']
        free += ["open.c_ps", "open.alpha_per_v"]
    for ion in dopants:
        z = abs(species.get_ion(ion).charge)
        for key, value in _TEMPLATE_START.items():
            value = value * z if key.endswith("delta") else value
            lines.append(f'"{ion}.{key}" = {value:g}')
            free.append(f"{ion}.{key}")
        lines.append(f'"{ion}.leak_fraction" = 0.0  # fixed: add it to free if a blocked pore still conducts')
    lines.append("free = [" + ", ".join(_toml_str(n) for n in free) + "]")
    return lines


def targets_template(system: str) -> str:
    """A targets TOML (schema ionkinetics.targets/1) for ``system``, to be filled in by hand.

    Carrier: the first salt's cation (the system-id convention). Dopants: the other cations; each
    one's site from the paper's stated role in this pore (activator: trapped in the pore,
    ``center``; inactivator: plugs a mouth, ``entrance``), else ``center`` marked to check. The
    open-pore conductance is reused from a shipped calibration of the carrier's salt alone in the
    same pore when there is one. Numbers to fill are ``nan`` and citations empty, so a file left
    unfilled is refused by the targets validator naming the row and field."""
    try:
        sid = species.parse_system_id(system)
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from None
    cations = list(sid.cation_molar)
    carrier, dopants = cations[0], cations[1:]
    roles = PAPER_TEXT_ROLES.get(sid.pore, {})
    carrier_salt = sid.salts[0]
    carrier_only = species.format_system_id(sid.pore, [carrier_salt])
    reuse_open = bool(dopants) and carrier_only in list_calibrations()

    def role_note(ion):
        role = roles.get(ion)
        if role is None:
            return f"the paper's text states no role for {ion} in {sid.pore}"
        return f"paper: {ion} is a {role} in {sid.pore} ({PAPER_TEXT_ROLE_SOURCES[(sid.pore, ion)]})"

    lines = [
        f"# Targets template for {sid}, written by `ionkinetics fit --template`.",
        "#",
        "# To fit: (1) replace every `nan` by the number your source gives and fill every empty",
        "# section/quote (a row left unfilled is refused, naming the row and field); a number the",
        "# source does not give may instead be ASSUMED: set `assumed = true` on its row and say what",
        "# and why in `assumptions` (see the steady_w row). Delete rows you have no number for; change",
        "# a row's `v` to the voltage your source states. (2) run:",
        "#     ionkinetics fit THIS_FILE -o my-calibration.json",
        "# Sigmas set the Laplace uncertainties. The shipped files read '~X' as rel_sigma 0.15,",
        "# 'approximately X' as 0.3, and 'within T' / 'over T' as complete (4 tau) by T: tau = T/4,",
        "# rel_sigma 0.5. Each free parameter needs a target that moves it; the fit names any that",
        "# are not identified. Schema and target kinds: ionkinetics.calibrate.load_targets.",
        'schema = "ionkinetics.targets/1"',
        f"system = {_toml_str(str(sid))}",
        f"carrier = {_toml_str(carrier)}  # the first salt's cation; {role_note(carrier)}",
        'source = ""  # FILL: the reference your numbers come from (authors, journal, year)',
    ]
    if reuse_open:
        lines.append(
            f"open_conductance_from = {_toml_str(carrier_only)}  # the open-pore G(V) of the shipped "
            f"{carrier_only} calibration, reused (not refitted)"
        )
    if dopants:
        lines += [
            "assumptions = [  # what each row marked assumed = true assumes, and why",
            '  "w(0 V) = ...: FILL what is assumed and why",',
            "]",
            "",
        ]
    else:
        lines += ["assumptions = []  # what each row marked assumed = true assumes, and why", ""]
    for ion in dopants:
        site = _SITE_BY_ROLE.get(roles.get(ion, ""), "center")
        why = (
            f"{role_note(ion)}"
            if ion in roles and roles[ion] in _SITE_BY_ROLE
            else f"CHECK: {role_note(ion)}; 'center' if it traps inside the pore, 'entrance' if it plugs a mouth"
        )
        lines += ["[[dopant]]", f"ion = {_toml_str(ion)}", f"site = {_toml_str(site)}  # {why}", ""]
    lines += _template_parameters(dopants, reuse_open)
    lines += _template_targets(dopants)
    return "\n".join(lines) + "\n"
