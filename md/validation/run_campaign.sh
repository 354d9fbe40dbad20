#!/usr/bin/env bash
# The background validation campaign: one OpenMM CPU thread, windows recorded under md/validation/pmf/.
# Resume (any session, any clone):  nohup md/validation/run_campaign.sh > md/validation/logs/campaign-$(date -u +%Y%m%dT%H%M%SZ).log 2>&1 &
# Extra arguments go to `python -m ionkinetics.md._validate` (e.g. --only crown6-K).
set -euo pipefail
cd "$(dirname "$0")/../.."
. .venv/bin/activate
export OPENMM_CPU_THREADS=1 IONKINETICS_PLATFORM=CPU
exec python -m ionkinetics.md._validate md/validation/validation.toml --run "$@"
