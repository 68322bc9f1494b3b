#!/usr/bin/env bash
# bench_ab.sh [-r ROUNDS] A B -- FLAGS...: is B's training step faster than A's? Two builds, or one build under
# two environments, take turns with `bench_train_step --torch 0 FLAGS`, so that the VM's drift from minute to
# minute falls on both alike (on the 2-core VM the same binary's step moves by 10-15% within an hour; one run
# of each cannot tell such a minute from the code).
#
#   A, B   BUILD_DIR or BUILD_DIR:VAR=VALUE[,VAR=VALUE...], e.g. `build-old build` (two commits) or
#          `build:PVLM_MAX_ISA=base build` (the same build, a vector tier capped)
#   -r N   rounds (default 6); A runs first in odd rounds and B first in even ones
#   FLAGS  bench_train_step's flags; --threads must name one count (its default 0 measures two)
#
# Prints one line a round (each side's median step, of the precision --precision names), then each side's
# mean and median, B's mean against A's, and in how many rounds B was faster. Runs with OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE unset, as bench_train_step's other scripts do. Run it on a quiet machine.
set -euo pipefail
rounds=6
if [ "${1:-}" = -r ]; then rounds=$2; shift 2; fi
if [ $# -lt 3 ] || [ "$3" != -- ] || [ "${1:-}" = --help ]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  [ "${1:-}" = --help ] && exit 0 || exit 2
fi
A=$1 B=$2
shift 3
case " $* " in *" --threads "[1-9]*) ;; *) echo "bench_ab.sh: give --threads N (one count)" >&2; exit 2 ;; esac

# One run of side $1: its median step time in seconds on stdout.
step_of() {
  local dir=${1%%:*} envs=() out line
  [[ $1 == *:* ]] && IFS=, read -r -a envs <<< "${1#*:}"
  out=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "${envs[@]}" "$dir/bench/bench_train_step" --torch 0 "${@:2}")
  line=$(grep -m1 -E '\] pvlm [^:]*: step [0-9.]+ s \(median' <<< "$out") ||
    { echo "bench_ab.sh: no step line from $1" >&2; return 1; }
  sed -E 's/.*: step ([0-9.]+) s.*/\1/' <<< "$line"
}

echo "== $(date -u +%FT%TZ) $(lscpu | sed -n 's/^Model name: *//p'), CPU family $(sed -n 's/^cpu family[^0-9]*//p' \
  /proc/cpuinfo | head -1); load $(cut -d' ' -f1-3 /proc/loadavg); A=$A B=$B; flags: $*"
res=()
for ((i = 1; i <= rounds; i++)); do
  if ((i % 2)); then a=$(step_of "$A" "$@"); b=$(step_of "$B" "$@"); else b=$(step_of "$B" "$@"); a=$(step_of "$A" "$@"); fi
  echo "round $i: A $a s, B $b s"
  res+=("$a $b")
done
printf '%s\n' "${res[@]}" | awk '
  function median(v, n,   i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  { a[NR] = $1; b[NR] = $2; sa += $1; sb += $2; if ($2 < $1) w++ }
  END {
    ma = sa / NR; mb = sb / NR
    printf "A: mean %.3f s, median %.3f s; B: mean %.3f s, median %.3f s\n", ma, median(a, NR), mb, median(b, NR)
    printf "B against A: %+.1f%% on the mean step; B faster in %d of %d rounds\n", 100 * (mb / ma - 1), w, NR
  }'
