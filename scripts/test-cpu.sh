#!/usr/bin/env bash
# test-cpu.sh [BUILD_DIR [REGEX]] - the CPU time of every ctest test, one test at a time, as the Markdown table
# of docs/CONTRIBUTING.md: user + system seconds of the whole process tree (`/usr/bin/time` around
# `ctest -R ^NAME$`, which waits for every process the test starts), the wall time, the verdict, and
# a flag on any test over the 120 s budget. Fixture set-up tests (`*_fixture_*`) run first, and each
# test then runs with `-FS '.*'` so that its fixtures are not run (and counted) again.
# REGEX (default: every test) selects tests by name. The slurm_* tests are skipped: they start Slurm daemons (docs/slurm.md) and are measured by their owner.
set -euo pipefail
build=${1:-build}; select=${2:-.}
cd "$build"
names=$(ctest -N | awk '/Test +#/ {print $3}' | grep -v '^slurm_' | grep -E -- "$select" || true)
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
echo "| Test | CPU s (user+sys) | wall s | result |"
echo "|---|---:|---:|---|"
for t in $(grep _fixture_ <<<"$names") $(grep -v _fixture_ <<<"$names"); do
  res=pass
  /usr/bin/time -o "$tmp" -f "%U %S %e" ctest -R "^$t\$" -FS '.*' >"$tmp.log" 2>&1 || res=FAIL
  grep -q "Skipped\|Not Run" "$tmp.log" && res=skipped
  read -r u s e <"$tmp"
  cpu=$(awk -v u="$u" -v s="$s" 'BEGIN {printf "%.1f", u + s}')
  flag=$(awk -v c="$cpu" 'BEGIN {print (c > 120) ? " **over 120 s**" : ""}')
  echo "| \`$t\` | $cpu | $e | $res$flag |"
done
rm -f "$tmp.log"
