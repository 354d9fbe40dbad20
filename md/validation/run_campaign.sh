#!/usr/bin/env bash
# The background validation campaign: one OpenMM CPU thread per process; every finished window is recorded
# under <validation file's folder>/pmf/ (committed by commit_loop.sh; skipped when re-run).
# Resume (any session, any clone), from the repository root:
#   nohup md/validation/run_campaign.sh > md/validation/logs/campaign-$(date -u +%Y%m%dT%H%M%SZ).log 2>&1 &
# Without arguments it works through the queue below in order (finished files cost nothing);
# with a validation file as first argument it runs only that file, further arguments going to
# `ionkinetics md validate FILE --run` (e.g. --only crown6-K).
set -euo pipefail
cd "$(dirname "$0")/../.."
. .venv/bin/activate
export OPENMM_CPU_THREADS=1 IONKINETICS_PLATFORM=CPU
mkdir -p md/validation/logs
# one process per validation file at a time (a file's windows are written by one process; one
# single-thread process per free core, each on its own file, is how both cores are used)
lock=md/validation/logs/.campaign${1:+-$(printf '%s' "$1" | tr '/.' '__')}.lock
exec 9> "$lock"
if ! flock -n 9; then echo "another run_campaign.sh holds $lock; not starting" >&2; exit 1; fi
queue=(md/validation/screen-b3n-centre/screen.toml md/validation/screen-crown-0.28/screen.toml
       md/validation/screen-crown-0.36/screen.toml md/validation/validation.toml)
run() { ionkinetics md validate "$1" --run "${@:2}"; }
if [[ $# -gt 0 && "$1" == *.toml ]]; then
  file=$1; shift
  run "$file" "$@"
else
  for file in "${queue[@]}"; do run "$file" "$@"; done
fi
