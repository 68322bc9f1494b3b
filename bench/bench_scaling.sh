#!/usr/bin/env bash
# bench_scaling.sh - data-parallel scaling of `pvlm pretrain` on this machine: 1 vs 2 ranks with
# 1 thread each (weak scaling: fixed micro-batch per rank), interleaved ROUNDS times; gradient
# all-reduce bandwidth from bench_allreduce; a ring all-reduce projection to 8..512 ranks.
# Results (medians) go to docs/perf-scaling.md by hand.
#
#   bench/bench_scaling.sh BUILD_DIR [ROUNDS] [STEPS]
set -euo pipefail
BUILD=${1:?usage: bench_scaling.sh BUILD_DIR [ROUNDS] [STEPS]}
ROUNDS=${2:-3}
STEPS=${3:-30}
BUILD=$(cd "$BUILD" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
PVLM=$BUILD/cli/pvlm
PY=${PVLM_PYTHON:-/usr/bin/python3}
# Open MPI's own shared-memory settings (single-copy CMA): forcing btl_vader_single_copy_mechanism=none
# copies every large message twice through 32 KiB fragments (docs/perf-scaling.md)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PVLM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
W=$(mktemp -d /tmp/pvlm-bench-scaling.XXXXXX)
trap 'rm -rf "$W"' EXIT
"$SRC/scripts/make-tiny-data.sh" "$PVLM" "$W/data" 256 >/dev/null 2>&1
# A mid-size model on 16x16 images: ~3.7M parameters (15 MB of gradients per step).
MODEL=(--tokenizer "$W/data/tok" --images "$W/data/img/manifest.json" --image-size 16 --patch-size 4
       --d-model 256 --n-heads 4 --d-ff 1024 --enc-layers 2 --dec-layers 2 --prefix-len 6 --suffix-len 12
       --micro-batch 8 --steps "$STEPS" --warmup 2 --lr 1e-3 --log-every 1000 --loader-threads 1 --threads 1)
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
# variants: 1 rank, 2 ranks with default settings (overlap decided by mpi/dp.h from the node's spare
# cores: off on a 2-core machine), 2 ranks with --overlap (buckets launched during backward, polled
# between layers), 2 ranks with --overlap --progress-thread, 2 ranks with --zero1 (default overlap)
for r in $(seq 1 "$ROUNDS"); do
  echo "# round $r: load average $(cut -d' ' -f1-3 /proc/loadavg)"
  for v in 1 2 2o 2t 2z; do
    np=${v:0:1}; extra=(); [ "$v" = 2o ] && extra=(--overlap); [ "$v" = 2t ] && extra=(--overlap --progress-thread)
    [ "$v" = 2z ] && extra=(--zero1)
    mpirun -np "$np" --bind-to none "$PVLM" pretrain "${MODEL[@]}" "${extra[@]}" --resume none \
      --metrics "$W/m-$v-$r.jsonl" 2>"$W/log-$v-$r" || { tail -5 "$W/log-$v-$r"; exit 1; }
  done
done
mpirun -np 2 --bind-to none "$BUILD/bench/bench_allreduce" 32 5 > "$W/allreduce.txt"
cat "$W/allreduce.txt"
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" - "$W" "$ROUNDS" <<'PY'
import json, statistics, sys, glob, re
w, rounds = sys.argv[1], int(sys.argv[2])
def load(v):
    rows = []
    for r in range(1, rounds + 1):
        rows += [json.loads(l) for l in open("%s/m-%s-%d.jsonl" % (w, v, r))][3:]  # skip warm-up steps
    return rows
res = {}
for np in ("1", "2", "2o", "2t", "2z"):
    rows = load(np)
    med = lambda k: statistics.median(x[k] for x in rows)
    res[np] = dict(step=med("step_s"), comm=med("comm_s"), compute=med("compute_s"), data=med("data_s"),
                   samples=rows[0]["samples"], bytes=rows[0]["bytes"])
    res[np]["sps"] = res[np]["samples"] / res[np]["step"]
print("\n%-22s %10s %12s %10s %10s %12s %14s" % ("ranks", "step_ms", "compute_ms", "comm_ms", "data_ms", "samples/s", "bytes/step"))
names = {"1": "1", "2": "2 (default)", "2o": "2 (--overlap)", "2t": "2 (--overlap --progress-thread)", "2z": "2 (--zero1)"}
for np in ("1", "2", "2o", "2t", "2z"):
    r = res[np]
    print("%-22s %10.1f %12.1f %10.1f %10.1f %12.1f %14d" % (names[np], 1e3 * r["step"], 1e3 * r["compute"], 1e3 * r["comm"], 1e3 * r["data"], r["sps"], r["bytes"]))
print("scaling efficiency 2 ranks, default settings: %.2f (samples/s ratio %.2f of ideal 2)" % (res["2"]["sps"] / (2 * res["1"]["sps"]), res["2"]["sps"] / res["1"]["sps"]))
for v in ("2o", "2t", "2z"):
    print("  %-22s efficiency %.2f" % (names[v], res[v]["sps"] / (2 * res["1"]["sps"])))
print("ZeRO-1 step time / plain step time (both default settings): %.2f" % (res["2z"]["step"] / res["2"]["step"]))
fit = re.search(r"alpha_us=([-0-9.]+) busbw_GBps=([0-9.]+)", open(w + "/allreduce.txt").read())
alpha_m, bw_m = float(fit.group(1)) * 1e-6, float(fit.group(2)) * 1e9
N = res["2"]["bytes"]  # gradient bytes reduced per step
print("\nring all-reduce projection of %.1f MB of gradients per step: t(P) = 2(P-1)/P * N / B + 2(P-1) * alpha" % (N / 1e6))
nets = [("measured here (shared memory)", bw_m, max(alpha_m, 1e-6)), ("100 Gb/s InfiniBand", 12.5e9, 5e-6), ("25 Gb/s Ethernet", 3.125e9, 30e-6)]
print("%-6s" % "P" + "".join("%32s" % n for n, _, _ in nets))
for P in (2, 8, 16, 32, 64, 128, 256, 512):
    print("%-6d" % P + "".join("%29.2f ms" % (1e3 * (2 * (P - 1) / P * N / b + 2 * (P - 1) * a)) for _, b, a in nets))
PY
