"""Reservoir computing with ionic membranes on standard tasks (NARMA-10, Mackey–Glass one-step
prediction, sine/square classification), beside a same-size echo-state network, with energy per
input step, and inverse design of molarities and pore counts by ``jax.grad``. Task files
(``tasks/*.toml``) run with ``ionkinetics task run``."""

from .. import _precision  # noqa: F401  (first: sets JAX up once, before any JAX code runs)
from ._delay import DelayReservoir as DelayReservoir
from ._delay import state_current_pa as state_current_pa
from ._design import DesignResult as DesignResult
from ._design import design_loss as design_loss
from ._design import from_design as from_design
from ._design import optimise_design as optimise_design
from ._design import to_design as to_design
from ._esn import ESN_GRID as ESN_GRID
from ._esn import delay_line as delay_line
from ._esn import esn_states as esn_states
from ._esn import tune_esn as tune_esn
from ._files import TASK_KINDS as TASK_KINDS
from ._files import TASK_SCHEMA as TASK_SCHEMA
from ._files import TaskFile as TaskFile
from ._files import TaskFileError as TaskFileError
from ._files import list_tasks as list_tasks
from ._files import load_task as load_task
from ._files import parse_task as parse_task
from ._files import tasks_dir as tasks_dir
from ._readout import accuracy as accuracy
from ._readout import fit_ridge as fit_ridge
from ._readout import fit_ridge_jax as fit_ridge_jax
from ._readout import memory_capacity as memory_capacity
from ._readout import nrmse as nrmse
from ._readout import select_ridge as select_ridge
from ._reservoir import AJ_PER_PA_V_NS as AJ_PER_PA_V_NS
from ._reservoir import MembraneSpec as MembraneSpec
from ._reservoir import Reservoir as Reservoir
from ._reservoir import ReservoirRun as ReservoirRun
from ._reservoir import make_mask as make_mask
from ._run import ANCHORS as ANCHORS
from ._run import SUMMARY_SCHEMA as SUMMARY_SCHEMA
from ._run import build_reservoir as build_reservoir
from ._run import check_energy as check_energy
from ._run import horizon_steps as horizon_steps
from ._run import make_series as make_series
from ._run import run_task as run_task
from ._run import select_gains as select_gains
from ._series import mackey_glass as mackey_glass
from ._series import narma10 as narma10
from ._series import waveforms as waveforms
