#!/usr/bin/env bash
# bench_comm.sh - every communication figure of docs/perf-scaling.md in one command, each printed
# beside the load average it was measured under (timings on a busy machine are not comparable).
#
#   bench/bench_comm.sh BUILD_DIR [ROUNDS] [STEPS]
#
# 1. Shared memory, 2 ranks: the all-reduce sweep (bench_allreduce: blocking MPI_Allreduce, the
#    reducer's bucketed path, ZeRO-1) under Open MPI's own defaults (single-copy CMA) and under
#    btl_vader_single_copy_mechanism=none (what tests/CMakeLists.txt and the old bench_scaling.sh
#    set), interleaved ROUNDS times (medians over rounds).
# 2. bench_scaling.sh (1 vs 2 ranks of the demo-size model, overlap variants, ZeRO-1): the 2-rank
#    efficiency and ZeRO-1 against plain data parallelism.
# 3. Across hosts (root only): a 3-host test cluster (scripts/testcluster.sh, TCP over veth, i.e.
#    loopback networking inside one machine): the all-reduce sweep on 2 and 3 hosts up to the bench
#    model's gradient size, and the demo model's communication share per step on 1, 2 and 3 hosts.
set -euo pipefail
BUILD=${1:?usage: bench_comm.sh BUILD_DIR [ROUNDS] [STEPS]}
ROUNDS=${2:-3}
STEPS=${3:-20}
BUILD=$(cd "$BUILD" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
PY=${PVLM_PYTHON:-/usr/bin/python3}
AR=$BUILD/bench/bench_allreduce
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PVLM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
W=$(mktemp -d /tmp/pvlm-bench-comm.XXXXXX)
trap 'rm -rf "$W"' EXIT
la() { cut -d' ' -f1-3 /proc/loadavg; }

echo "## 1. all-reduce sweep, 2 ranks, shared memory ($ROUNDS interleaved rounds; load at start $(la))"
for r in $(seq 1 "$ROUNDS"); do
  env -u OMPI_MCA_btl_vader_single_copy_mechanism mpirun -np 2 --bind-to none "$AR" 32 5 > "$W/ar-ompi-$r.txt"
  OMPI_MCA_btl_vader_single_copy_mechanism=none mpirun -np 2 --bind-to none "$AR" 32 5 > "$W/ar-none-$r.txt"
  echo "# round $r done, load $(la)"
done
"$PY" - "$W" "$ROUNDS" <<'PY'
import sys, statistics
w, rounds = sys.argv[1], int(sys.argv[2])
names = {"ompi": "Open MPI defaults (single-copy CMA)", "none": "btl_vader_single_copy_mechanism=none"}
for cfg, title in names.items():
    rows = {}
    for r in range(1, rounds + 1):
        for line in open("%s/ar-%s-%d.txt" % (w, cfg, r)):
            f = line.split()
            if f and f[0].isdigit():
                rows.setdefault(int(f[0]), []).append([float(x) for x in f[1:5]])
    print("\n%s: MiB, median ms of allreduce / bucketed / zero1, busbw GB/s" % title)
    for mib in sorted(rows):
        med = [statistics.median(v[i] for v in rows[mib]) for i in range(4)]
        print("%6d %10.2f %10.2f %10.2f %8.2f" % (mib, *med))
PY

echo
echo "## 2. 1 vs 2 ranks, demo-size model (load at start $(la))"
env -u OMPI_MCA_btl_vader_single_copy_mechanism "$SRC/bench/bench_scaling.sh" "$BUILD" "$ROUNDS" "$STEPS"
echo "# load at end $(la)"

if [ "$(id -u)" -ne 0 ]; then echo "## 3. skipped: the test cluster needs root"; rm -rf "$W"; exit 0; fi
echo
echo "## 3. across hosts: TCP over veth inside one machine (loopback networking, not a real interconnect)"
export PVLM_CLUSTER_NAME=pvlmb PVLM_CLUSTER_DIR=$W/cluster
TC=$SRC/scripts/testcluster.sh
trap '"$TC" down >/dev/null 2>&1 || true; rm -rf "$W"' EXIT
"$TC" up 3 2>/dev/null
cd "$W"
"$SRC/scripts/make-tiny-data.sh" "$BUILD/cli/pvlm" "$W/data" 256 >/dev/null 2>&1
for n in 2 3; do
  echo "# all-reduce sweep on $n hosts, 1 rank each (load $(la))"
  "$TC" run srun --nodes="$n" --ntasks-per-node=1 --mpi=pmix "$AR" 256 3
done
MODEL=(--tokenizer "$W/data/tok" --images "$W/data/img/manifest.json" --image-size 16 --patch-size 4
       --d-model 256 --n-heads 4 --d-ff 1024 --enc-layers 2 --dec-layers 2 --prefix-len 6 --suffix-len 12
       --micro-batch 8 --steps "$STEPS" --warmup 2 --lr 1e-3 --log-every 1000 --loader-threads 1 --threads 1)
for n in 1 2 3; do
  "$TC" run srun --nodes="$n" --ntasks-per-node=1 --mpi=pmix "$BUILD/cli/pvlm" pretrain "${MODEL[@]}" --resume none \
    --metrics "$W/mn-$n.jsonl" 2>"$W/mn-$n.log" || { tail -5 "$W/mn-$n.log"; exit 1; }
  echo "# $n host(s) done, load $(la)"
done
"$PY" - "$W" <<'PY'
import json, statistics, sys
w = sys.argv[1]
print("\nhosts  step_ms  compute_ms  comm_ms  comm_share  samples/s")
for n in (1, 2, 3):
    rows = [json.loads(l) for l in open("%s/mn-%d.jsonl" % (w, n))][3:]
    med = lambda k: statistics.median(x[k] for x in rows)
    print("%5d %8.1f %11.1f %8.1f %10.2f %10.1f" % (n, 1e3 * med("step_s"), 1e3 * med("compute_s"), 1e3 * med("comm_s"),
          med("comm_s") / med("step_s"), rows[0]["samples"] / med("step_s")))
PY
