"""Campaigns: many MD runs and PMF windows as independent tasks on Dask, then calibrations.

The orchestration layer, on top of ``md`` (which it runs) and ``calibrate`` (which turns the
finished runs into calibration files): a campaign spec (``md/campaign-*.toml``, schema
``ionkinetics.campaign/1``, documented in :mod:`ionkinetics.campaign._campaign`) is expanded into
tasks with stable ids; ``run_campaign`` runs them on a LocalCluster, a running scheduler or SLURM;
``collect_campaign`` calibrates each mixture and analyses each PMF.
"""

from ._campaign import CAMPAIGN_SCHEMA as CAMPAIGN_SCHEMA
from ._campaign import Campaign as Campaign
from ._campaign import CampaignError as CampaignError
from ._campaign import CampaignReport as CampaignReport
from ._campaign import Task as Task
from ._campaign import TaskStatus as TaskStatus
from ._campaign import collect_campaign as collect_campaign
from ._campaign import execute_task as execute_task
from ._campaign import load_campaign as load_campaign
from ._campaign import parse_campaign as parse_campaign
from ._campaign import plan_rows as plan_rows
from ._campaign import run_campaign as run_campaign
