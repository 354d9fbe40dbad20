#!/usr/bin/env bash
# The background validation campaign: one OpenMM CPU thread; every finished window is recorded
# under <validation file's folder>/pmf/ (committed; skipped when re-run).
# Resume (any session, any clone), from the repository root:
#   nohup md/validation/run_campaign.sh > md/validation/logs/campaign-$(date -u +%Y%m%dT%H%M%SZ).log 2>&1 &
# Optional first argument: a validation file (default md/validation/validation.toml); further
# arguments go to ionkinetics.md._validate._main, as for `ionkinetics md validate` (e.g. --only crown6-K).
set -euo pipefail
cd "$(dirname "$0")/../.."
. .venv/bin/activate
export OPENMM_CPU_THREADS=1 IONKINETICS_PLATFORM=CPU
file=md/validation/validation.toml
if [[ $# -gt 0 && "$1" == *.toml ]]; then file=$1; shift; fi
exec python -c 'import sys; from ionkinetics.md._validate import _main; sys.exit(_main(sys.argv[1:]))' "$file" --run "$@"
