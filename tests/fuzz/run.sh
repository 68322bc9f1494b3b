#!/usr/bin/env bash
# run.sh - build the libFuzzer harnesses with clang and fuzz each target for a while.
#
#   tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default 120 s, every target)
#
# Environment: PVLM_FUZZ_BUILD (build dir, default build-fuzz), PVLM_FUZZ_WORK (corpora, crash
# files and logs, default /tmp/pvlm-fuzz). Corpora start from gen_seeds' valid inputs plus the
# checked-in reproducers, and persist in $PVLM_FUZZ_WORK/corpus/<target> between runs. A crash
# leaves $PVLM_FUZZ_WORK/crash/<target>/crash-*; minimise it (fuzz_<target> -minimize_crash=1
# -runs=10000 FILE), check it in under tests/fuzz/regressions/<target>/ and fix the bug: ctest
# fuzz_regressions then replays it with gcc (+ ASan in the sanitizer build).
# One job per target (-jobs=1 equivalent): the build machines are shared.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
secs=${1:-120}
shift || true
all="safetensors imgrec textshard tokfiles tokrt ptb image urlsrc manifest json args vqa capscore checkpoint lmdb coco http ckptdir wds loaderstate"
targets=${*:-$all}
build=${PVLM_FUZZ_BUILD:-$src/build-fuzz}
work=${PVLM_FUZZ_WORK:-/tmp/pvlm-fuzz}

cmake -S "$src" -B "$build" -DCMAKE_C_COMPILER=clang -DPVLM_FUZZ=ON -DPVLM_OPENMP=OFF -DPVLM_BUILD_BENCH=OFF >/dev/null
tgts=fuzz_gen_seeds
for t in $targets; do tgts="$tgts fuzz_$t"; done
cmake --build "$build" -j2 --target $tgts
"$build/tests/fuzz/fuzz_gen_seeds" "$work/seeds" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for t in $targets; do
  corpus=$work/corpus/$t
  mkdir -p "$corpus" "$work/crash/$t" "$work/logs"
  cp -n "$work/seeds/$t"/* "$corpus"/ 2>/dev/null || true
  cp -n "$here/regressions/$t"/* "$corpus"/ 2>/dev/null || true
  extra=()
  [ "$t" = args ] && extra+=(-close_fd_mask=1) # --help output
  [ -f "$here/dicts/$t.dict" ] && extra+=(-dict="$here/dicts/$t.dict") # the format's keywords
  echo "== fuzz_$t for ${secs}s"
  if "$build/tests/fuzz/fuzz_$t" "$corpus" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
       -artifact_prefix="$work/crash/$t/" -print_final_stats=1 "${extra[@]}" >"$work/logs/$t.log" 2>&1; then
    grep -E "stat::number_of_executed_units|cov:" "$work/logs/$t.log" | tail -2
  else
    echo "   fuzz_$t FOUND A PROBLEM: $(ls "$work/crash/$t")  (log: $work/logs/$t.log)"
    status=1
  fi
done
exit $status
