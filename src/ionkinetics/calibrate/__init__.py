"""Calibration: the file format, published-number targets and the differentiable fit."""

from ._calibration import SCHEMA as SCHEMA
from ._calibration import Calibration as Calibration
from ._calibration import CalibrationError as CalibrationError
from ._calibration import Dopant as Dopant
from ._calibration import calibration_dir as calibration_dir
from ._calibration import encounter_rate_per_ns_per_molar as encounter_rate_per_ns_per_molar
from ._calibration import escape_ceiling_per_ns as escape_ceiling_per_ns
from ._calibration import list_calibrations as list_calibrations
from ._calibration import load_calibration as load_calibration
from ._calibration import params_from_rates as params_from_rates
from ._calibration import save_calibration as save_calibration
from ._calibration import site_rates as site_rates
from ._fit import FitResult as FitResult
from ._fit import fit_targets as fit_targets
from ._fit import predict_target as predict_target
from ._targets import TARGETS_SCHEMA as TARGETS_SCHEMA
from ._targets import Target as Target
from ._targets import Targets as Targets
from ._targets import TargetsError as TargetsError
from ._targets import load_targets as load_targets
from ._targets import parameter_names as parameter_names
from ._targets import parse_targets as parse_targets
