"""Molecular dynamics (OpenMM): membranes with Å-pores, mixed electrolytes, the transmembrane field.

``build_membrane`` → ``build_electrolyte`` → ``assemble_system`` (or ``build_system`` from a
system id in one call) give an :class:`MDSystem`: OpenMM Topology and System, positions in nm,
the frozen membrane, ion indices and species, and the field parameter a runner sets to apply a
bias. See the modules' docstrings for the geometry, the force field (``data/ionkinetics.xml``
with OpenMM's ``amber14/tip3p.xml``) and the counting rules.

Uncertain force-field choices and how to swap them: hBN charges (±1.05 e bulk, −0.70 e at
vacancy edges) and the crown-ether O charge (−0.40 e, ring C +0.20 e) vary between published
models. Named, cited options (``FORCEFIELD_OPTIONS``, each with its sources and what was
verified) are chosen with ``build_system(..., forcefield_option="sahu-crown")`` or a spec's
``[forcefield] option``; the default is ``DEFAULT_FORCEFIELD_OPTION`` ("ik-2025", the charges
below). Or copy ``shipped_forcefield_xml()``, edit the single-atom residue templates (GRA, CRC,
CRO, HBB, HBN, HBE; keep each membrane neutral: edge N = 2/3 of bulk N, O = −2 × ring C) and
pass ``forcefield_files=("amber14/tip3p.xml", "my.xml")`` to ``build_system`` (or to
``build_membrane`` and ``assemble_system``); or override per-atom charges with
``assemble_system(..., membrane_charges_e=...)``.
"""

from ._analysis import CylinderSite as CylinderSite
from ._analysis import analyze_trajectory as analyze_trajectory
from ._analysis import count_crossings as count_crossings
from ._analysis import dwell_times as dwell_times
from ._analysis import ionic_current as ionic_current
from ._analysis import pore_occupancy as pore_occupancy
from ._analyze_run import analyze_run as analyze_run
from ._diffusion import WindowDiffusion as WindowDiffusion
from ._diffusion import diffusion_profile as diffusion_profile
from ._diffusion import window_diffusion as window_diffusion
from ._electrolyte import AVOGADRO_PER_MOL as AVOGADRO_PER_MOL
from ._electrolyte import ION_RESIDUES as ION_RESIDUES
from ._electrolyte import WATER_NUMBER_DENSITY_PER_NM3 as WATER_NUMBER_DENSITY_PER_NM3
from ._electrolyte import Composition as Composition
from ._electrolyte import Electrolyte as Electrolyte
from ._electrolyte import build_electrolyte as build_electrolyte
from ._electrolyte import ion_count as ion_count
from ._forcefield import CROWN_CHARGE_SETS as CROWN_CHARGE_SETS
from ._forcefield import DEFAULT_FORCEFIELD_OPTION as DEFAULT_FORCEFIELD_OPTION
from ._forcefield import EDGE_LJ_SETS as EDGE_LJ_SETS
from ._forcefield import FORCEFIELD_OPTIONS as FORCEFIELD_OPTIONS
from ._forcefield import HBN_CHARGE_SETS as HBN_CHARGE_SETS
from ._forcefield import ChargeSet as ChargeSet
from ._forcefield import ForceFieldOption as ForceFieldOption
from ._forcefield import forcefield_option as forcefield_option
from ._forcefield import forcefield_option_files as forcefield_option_files
from ._membranes import A_CC_GRAPHENE_NM as A_CC_GRAPHENE_NM
from ._membranes import A_HBN_NM as A_HBN_NM
from ._membranes import MEMBRANE_TEMPLATES as MEMBRANE_TEMPLATES
from ._membranes import Membrane as Membrane
from ._membranes import build_membrane as build_membrane
from ._membranes import default_forcefield_files as default_forcefield_files
from ._membranes import largest_inscribed_circle_nm as largest_inscribed_circle_nm
from ._membranes import shipped_forcefield_xml as shipped_forcefield_xml
from ._pmf import DEFAULT_BULK_MIN_ABS_Z_NM as DEFAULT_BULK_MIN_ABS_Z_NM
from ._pmf import DEFAULT_OVERLAP_THRESHOLD as DEFAULT_OVERLAP_THRESHOLD
from ._pmf import UMBRELLA_PARAMETERS as UMBRELLA_PARAMETERS
from ._pmf import PMFResult as PMFResult
from ._pmf import WindowSettings as WindowSettings
from ._pmf import add_umbrella_restraints as add_umbrella_restraints
from ._pmf import analyze_windows as analyze_windows
from ._pmf import load_window as load_window
from ._pmf import plot_pmf as plot_pmf
from ._pmf import restraint_area_nm2 as restraint_area_nm2
from ._pmf import restraint_free_energy_kt as restraint_free_energy_kt
from ._pmf import run_window as run_window
from ._pmf import window_centres_nm as window_centres_nm
from ._pmf import window_path as window_path
from ._potential import PotentialProfile as PotentialProfile
from ._potential import field_share as field_share
from ._potential import potential_profile as potential_profile
from ._records import ANALYSIS_SCHEMA as ANALYSIS_SCHEMA
from ._records import RUN_RECORD_SCHEMA as RUN_RECORD_SCHEMA
from ._records import DwellCount as DwellCount
from ._records import Progress as Progress
from ._records import RunAnalysis as RunAnalysis
from ._records import RunRecord as RunRecord
from ._records import SegmentAnalysis as SegmentAnalysis
from ._records import SystemRecord as SystemRecord
from ._records import read_run_analysis as read_run_analysis
from ._records import read_run_record as read_run_record
from ._runner import Frames as Frames
from ._runner import load_frames as load_frames
from ._runner import run_md as run_md
from ._settings import RunSettings as RunSettings
from ._sheet import SHEET_MODELS as SHEET_MODELS
from ._sheet import SheetModel as SheetModel
from ._sheet import sheet_model as sheet_model
from ._spec import MD_SCHEMA as MD_SCHEMA
from ._spec import MDSpec as MDSpec
from ._spec import MDSpecError as MDSpecError
from ._spec import load_md_spec as load_md_spec
from ._spec import parse_md_spec as parse_md_spec
from ._system import DEFAULT_CUTOFF_NM as DEFAULT_CUTOFF_NM
from ._system import FARADAY_KJ_PER_MOL_PER_V as FARADAY_KJ_PER_MOL_PER_V
from ._system import FIELD_FORCE_GROUP as FIELD_FORCE_GROUP
from ._system import FIELD_PARAMETER as FIELD_PARAMETER
from ._system import MDSystem as MDSystem
from ._system import add_field_force as add_field_force
from ._system import assemble_system as assemble_system
from ._system import build_system as build_system
from ._system import field_for_voltage as field_for_voltage
from ._system import select_platform as select_platform
from ._system import set_voltage as set_voltage
from ._system import voltage_for_field as voltage_for_field
from ._validate import estimate_wall_hours as estimate_wall_hours
from ._validate import load_validation as load_validation
from ._validate import run_validation as run_validation
from ._validate import run_validation_concurrently as run_validation_concurrently
from ._validate import summarize_validation as summarize_validation
