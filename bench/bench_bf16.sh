#!/usr/bin/env bash
# bench_bf16.sh BUILD [RUN_DIR DATA_DIR]: every figure of docs/performance.md's bf16 section in one sitting.
#  1. bench_train_step --precision bf16 --torch 1 at 1 and 2 threads: pvlm bf16, pvlm fp32, PyTorch fp32 and
#     PyTorch bf16 autocast, with the measured SGEMM and bf16 GEMM peaks;
#  2. the 16 GiB plan (bench_train_step --memory-table 16) and one point of it run for real (bench config,
#     --recompute block, batch 256, fp32: peak RSS against the plan); then each --recompute mode at batch 32,
#     1 thread, bf16 and fp32 (activation arena, peak RSS of the process, step time);
#  3. with a trained run folder and its data (images/, test_captions.json): `pvlm caption` in fp32 and bf16,
#     greedy and beam 3, and how many captions differ;
#  4. BF16_REPEAT (default 5) more runs of part 1 without PyTorch at each thread count of BF16_REPEAT_THREADS
#     (default "1 2"), one line each (the GEMM peaks: the higher of the medians before and after the steps;
#     both step times, the ratio, the share of the bf16 peak) and the medians: on a shared VM the speed moves
#     by 10-15% from minute to minute, more in bf16 and at 2 threads, and one run cannot tell such a minute
#     from the code.
# Run it on a quiet machine; it unsets OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for its own commands only.
# BF16_PARTS=captions runs part 3 alone (bench_all.sh runs part 1 itself).
set -u
b=${1:-build}; run=${2:-}; data=${3:-}
nob=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
echo "== $(date -u +%FT%TZ) $(lscpu | sed -n 's/^Model name: *//p'), CPU family $(sed -n 's/^cpu family[^0-9]*//p' /proc/cpuinfo | head -1); load $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "${BF16_PARTS:-all}" != captions ]; then
"${nob[@]}" "$b/bench/bench_train_step" --threads 0 --steps 3 --warmup 1 --torch 1 --precision bf16
"$b/bench/bench_train_step" --memory-table 16
/usr/bin/time -f "batch 256, recompute block: peak RSS %M KiB (getrusage)" "${nob[@]}" "$b/bench/bench_train_step" \
  --threads 1 --steps 1 --warmup 0 --torch 0 --batch 256 --recompute block | grep -E "activations|RSS"
for m in none attention block; do
  echo "-- --recompute $m, batch 32, 1 thread"
  "${nob[@]}" "$b/bench/bench_train_step" --threads 1 --steps 3 --warmup 1 --torch 0 --precision bf16 --recompute "$m" |
    grep -E ": step [0-9.]+ s \(median"
done
fi
median_line() { # stdin: one number per line; prints "median (min, max) over N runs", $2 decimals, unit $1
  sort -g | awk -v u="$1" -v d="$2" '{r[NR] = $1} END {
    m = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
    f = "%." d "f"
    printf f "%s (min " f "%s, max " f "%s) over %d runs\n", m, u, r[1], u, r[NR], u, NR}'
}
repeat_runs() {
  local n=${BF16_REPEAT:-5} th i log
  [ "$n" -gt 0 ] || return 0
  log=$(mktemp)
  for th in ${BF16_REPEAT_THREADS:-1 2}; do
    local ratios=() shares=()
    echo "== $(date -u +%FT%TZ) $n more $th-thread runs (bench_train_step --threads $th --steps 3 --warmup 1" \
      "--torch 0 --precision bf16); load $(cut -d' ' -f1-3 /proc/loadavg)"
    for i in $(seq "$n"); do
      "${nob[@]}" "$b/bench/bench_train_step" --threads "$th" --steps 3 --warmup 1 --torch 0 --precision bf16 \
        > "$log" 2>&1
      local sg bp s16 s32 sh
      local hi='.*the higher of the two medians, before and after: SGEMM'
      sg=$(sed -n "s/$hi \\([0-9.]*\\),.*/\\1/p" "$log")
      bp=$(sed -n "s/$hi [0-9.]*, bf16 \\([0-9.]*\\) GFLOP.*/\\1/p" "$log")
      s16=$(sed -n 's/.*pvlm bf16: step \([0-9.]*\) s.*/\1/p' "$log")
      s32=$(sed -n 's/.*pvlm fp32: step \([0-9.]*\) s.*/\1/p' "$log")
      sh=$(sed -n 's/.*pvlm bf16: step .* = \([0-9]*\)% of the bf16 GEMM peak.*/\1/p' "$log")
      [ -n "$s16" ] && [ -n "$s32" ] && [ -n "$sh" ] || { echo "run $i failed:"; tail -3 "$log"; continue; }
      ratios+=("$(echo "scale=4; $s32 / $s16" | bc)") shares+=("$sh")
      printf 'run %d: SGEMM peak %s, bf16 peak %s GFLOP/s; step bf16 %s s, fp32 %s s; bf16 / fp32 %.2fx; %s%% of the' \
        "$i" "$sg" "$bp" "$s16" "$s32" "${ratios[-1]}" "$sh"
      echo " bf16 peak"
    done
    [ ${#ratios[@]} -gt 0 ] || continue
    echo "median bf16 / fp32 at $th thread(s): $(printf '%s\n' "${ratios[@]}" | median_line x 2)"
    echo "median share of the bf16 GEMM peak at $th thread(s): $(printf '%s\n' "${shares[@]}" | median_line % 0)"
  done
  rm -f "$log"
}
[ "${BF16_PARTS:-all}" != captions ] && trap repeat_runs EXIT
[ -n "$run" ] && [ -n "$data" ] || exit 0
out=$(mktemp -d)
for beam in 1 3; do
  for p in fp32 bf16; do
    "${nob[@]}" "$b/cli/pvlm" caption --ckpt "$run" --annotations "$data/test_captions.json" --images "$data/images" \
      --out "$out/$p-$beam.json" --beam "$beam" --threads 1 --precision "$p" 2>&1 | grep -E "wrote|ERROR"
  done
  /usr/bin/python3 - "$out/fp32-$beam.json" "$out/bf16-$beam.json" "$beam" <<'PY'
import json, sys
a = {r["image_id"]: r["caption"] for r in json.load(open(sys.argv[1]))}
b = {r["image_id"]: r["caption"] for r in json.load(open(sys.argv[2]))}
diff = [k for k in sorted(a) if a[k] != b.get(k)]
print(f"beam {sys.argv[3]}: {len(diff)} of {len(a)} bf16 captions differ from fp32")
for k in diff: print(f"  image {k}: fp32 {a[k]!r}, bf16 {b[k]!r}")
PY
done
rm -rf "$out"
