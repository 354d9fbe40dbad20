"""Physical constants, SI (2019 exact values), in one place; units in the names.

The layers above derive what they need from these (thermal voltage, Eyring prefactor, encounter
rates, the charge of one gating event per ns).
"""

BOLTZMANN_J_PER_K = 1.380649e-23
ELEMENTARY_CHARGE_C = 1.602176634e-19
AVOGADRO_PER_MOL = 6.02214076e23
PLANCK_J_S = 6.62607015e-34

# derived
AVOGADRO_PER_NM3_PER_MOLAR = AVOGADRO_PER_MOL / 1e24  # 1 mol/L = 0.602 ions per nm³
PA_PER_E_PER_NS = ELEMENTARY_CHARGE_C / 1e-9 / 1e-12  # one elementary charge per ns, pA (160.2)
BOLTZMANN_KJ_PER_MOL_K = BOLTZMANN_J_PER_K * AVOGADRO_PER_MOL / 1000.0  # R, kJ/mol/K (0.0083145): the MD stage's kT
FARADAY_KJ_PER_MOL_PER_V = ELEMENTARY_CHARGE_C * AVOGADRO_PER_MOL / 1000.0  # N_A·e, kJ/mol per e·V (96.485; 1 eV/particle)
AJ_PER_PA_V_NS = 1e-3  # energy of 1 pA at 1 V for 1 ns (1e-12 A · 1 V · 1e-9 s = 1e-21 J), attojoules

__all__ = [
    "AJ_PER_PA_V_NS",
    "AVOGADRO_PER_MOL",
    "AVOGADRO_PER_NM3_PER_MOLAR",
    "BOLTZMANN_J_PER_K",
    "BOLTZMANN_KJ_PER_MOL_K",
    "ELEMENTARY_CHARGE_C",
    "FARADAY_KJ_PER_MOL_PER_V",
    "PA_PER_E_PER_NS",
    "PLANCK_J_S",
]
