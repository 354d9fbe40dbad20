#!/usr/bin/env bash
# Every INTERVAL_S (default 1200 s), when new window records exist: refresh the summaries of md/validation/validation.toml and
# md/validation/screen*/screen.toml from the recorded windows and commit ONLY those folders' records
# (pmf/ window files, summary.json, pmfs.png), nothing else.
#   nohup md/validation/commit_loop.sh > md/validation/logs/commit-loop.log 2>&1 &
set -uo pipefail
cd "$(dirname "$0")/../.."
. .venv/bin/activate
export OPENMM_CPU_THREADS=1
interval=${INTERVAL_S:-1200}
while true; do
  # only when window records changed: summaries alone (their commit field changes with every commit) are not news
  if [[ -n $(git status --porcelain -- 'md/validation/*pmf/*' 2>/dev/null) ]]; then
    present=()
    for f in md/validation/validation.toml md/validation/screen*/screen.toml; do
      [[ -f $f ]] || continue
      ionkinetics md validate "$f" > /dev/null 2>&1 || echo "$(date -u) summary of $f failed"
      d=$(dirname "$f")
      for p in "$d/pmf" "$d/summary.json" "$d/pmfs.png"; do [[ -e $p ]] && present+=("$p"); done
    done
    for try in 1 2 3 4 5 6; do
      if git add -- "${present[@]}" 2>/dev/null; then
        if git diff --cached --quiet -- "${present[@]}"; then break; fi
        n=$(git diff --cached --name-only --diff-filter=A -- "${present[@]}" | grep -c 'window_.*\.npz$' || true)
        if git commit -q -m "md validation: recorded windows (+$n window files) and summaries" -- "${present[@]}"; then
          echo "$(date -u) committed $(git rev-parse --short HEAD) (+$n windows)"; break
        fi
      fi
      sleep 5  # index.lock held by someone else: try again
    done
  fi
  sleep "$interval"
done
