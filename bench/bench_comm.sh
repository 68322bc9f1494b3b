#!/usr/bin/env bash
# bench_comm.sh - every communication figure of docs/perf-scaling.md in one command, each printed
# beside the load average it was measured under (timings on a busy machine are not comparable).
#
#   bench/bench_comm.sh BUILD_DIR [ROUNDS] [STEPS] [MIB_MAX]
#
# 1. Shared memory, 2 ranks: the all-reduce sweep from 1 MiB to MIB_MAX (default 256; bench_allreduce:
#    Open MPI's blocking MPI_Allreduce of the whole buffer, the reducer's path after backward, ZeRO-1)
#    with pvlm's defaults (btl_vader_single_copy_mechanism=none, set by mpi/comm.c) and with Open MPI's
#    own single-copy mechanism (CMA), interleaved ROUNDS times (medians over rounds).
# 2. bench_scaling.sh (1 vs 2 ranks x 1 thread of the demo-size model: default settings, --overlap,
#    --overlap --progress-thread, --zero1): the 2-rank efficiency and ZeRO-1 against plain.
# 3. Across hosts (root only): a 3-host test cluster (scripts/testcluster.sh, TCP over veth, i.e.
#    loopback networking inside one machine): the all-reduce sweep on 2 and 3 hosts to MIB_MAX, the
#    demo model's communication share per step on 1, 2 and 3 hosts, and the ring all-reduce
#    projection refitted with the shared-memory and TCP sweeps.
# Run it alone (on 2 cores: /work/tools/quiet -t 420, under flock /tmp/pvlm-cluster.lock for part 3).
set -euo pipefail
BUILD=${1:?usage: bench_comm.sh BUILD_DIR [ROUNDS] [STEPS] [MIB_MAX]}
ROUNDS=${2:-3}
STEPS=${3:-20}
MIB=${4:-256}
BUILD=$(cd "$BUILD" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
PY=${PVLM_PYTHON:-/usr/bin/python3}
AR=$BUILD/bench/bench_allreduce
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PVLM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
W=$(mktemp -d /tmp/pvlm-bench-comm.XXXXXX)
chmod 755 "$W" # part 3: munged (user munge) must reach the test cluster's socket below it
trap 'rm -rf "$W"' EXIT
T0=$(date +%s)
la() { cut -d' ' -f1-3 /proc/loadavg; }

echo "## 1. all-reduce sweep, 2 ranks, shared memory ($ROUNDS interleaved rounds; load at start $(la))"
for r in $(seq 1 "$ROUNDS"); do
  env -u OMPI_MCA_btl_vader_single_copy_mechanism mpirun -np 2 --bind-to none "$AR" "$MIB" 3 > "$W/ar-none-$r.txt"
  OMPI_MCA_btl_vader_single_copy_mechanism=cma mpirun -np 2 --bind-to none "$AR" "$MIB" 3 > "$W/ar-cma-$r.txt"
  echo "# round $r done, load $(la)"
done
"$PY" - "$W" "$ROUNDS" <<'PY'
import sys, statistics
w, rounds = sys.argv[1], int(sys.argv[2])
names = {"none": "pvlm's defaults (btl_vader_single_copy_mechanism=none)", "cma": "single-copy CMA (Open MPI's default)"}
for cfg, title in names.items():
    rows = {}
    for r in range(1, rounds + 1):
        for line in open("%s/ar-%s-%d.txt" % (w, cfg, r)):
            f = line.split()
            if f and f[0].isdigit():
                rows.setdefault(int(f[0]), []).append([float(x) for x in f[1:5]])
    print("\n%s: MiB, median ms of MPI_Allreduce / reducer / reducer ZeRO-1 (reduce-scatter + all-gather), busbw GB/s of each" % title)
    for mib in sorted(rows):
        med = [statistics.median(v[i] for v in rows[mib]) for i in range(3)]
        bw = [2 * 0.5 * mib * 2**20 / (t * 1e-3) / 1e9 for t in med]  # 2(P-1)/P x bytes / t at P = 2
        print("%6d %10.2f %10.2f %10.2f   %6.2f %6.2f %6.2f" % (mib, *med, *bw))
    fit = [l for l in open("%s/ar-%s-%d.txt" % (w, cfg, rounds)) if l.startswith("fit:")]
    if fit: print("last round's " + fit[0].strip())
PY

echo
echo "## 2. 1 vs 2 ranks, demo-size model (load at start $(la))"
env -u OMPI_MCA_btl_vader_single_copy_mechanism "$SRC/bench/bench_scaling.sh" "$BUILD" "$ROUNDS" "$STEPS"
echo "# load at end $(la)"

if [ "$(id -u)" -ne 0 ]; then echo "## 3. skipped: the test cluster needs root ($(( $(date +%s) - T0 )) s)"; rm -rf "$W"; exit 0; fi
echo
echo "## 3. across hosts: TCP over veth inside one machine (loopback networking, not a real interconnect)"
export PVLM_CLUSTER_NAME=pvlmb PVLM_CLUSTER_DIR=$W/cluster
TC=$SRC/scripts/testcluster.sh
trap '"$TC" down >/dev/null 2>&1 || true; rm -rf "$W"' EXIT
"$TC" up 3 || { echo "## 3. failed: scripts/testcluster.sh up (its messages above)"; exit 1; }
cd "$W"
"$SRC/scripts/make-tiny-data.sh" "$BUILD/cli/pvlm" "$W/data" 256 > "$W/data.log" 2>&1 || { tail -5 "$W/data.log"; exit 1; }
for n in 2 3; do
  echo "# all-reduce sweep on $n hosts, 1 rank each (load $(la))"
  "$TC" run srun --nodes="$n" --ntasks-per-node=1 --mpi=pmix "$AR" "$MIB" 3 2>"$W/tcp-$n.err" | tee "$W/tcp-$n.txt" ||
    { tail -5 "$W/tcp-$n.err"; exit 1; }
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
# The ring all-reduce model t(P) = 2(P-1)/P x N / B + 2(P-1) x alpha refitted: B from each sweep's
# least-squares fit, alpha from its 1 MiB point (one ring step moves 1/P of it: a small share).
"$PY" - "$W" "$ROUNDS" <<'PY'
import re, sys
w, rounds = sys.argv[1], int(sys.argv[2])
def fit(path, P):
    txt = open(path).read()
    bw = float(re.search(r"busbw_GBps=([0-9.]+)", txt).group(1)) * 1e9
    t1 = [float(l.split()[1]) * 1e-3 for l in txt.splitlines() if l.split() and l.split()[0] == "1"][0]
    alpha = max(t1 - 2 * (P - 1) / P * 2**20 / bw, 1e-6) / (2 * (P - 1))
    return bw, alpha
nets = [("shm, 2 ranks", *fit("%s/ar-none-%d.txt" % (w, rounds), 2)), ("TCP/veth 2 hosts", *fit(w + "/tcp-2.txt", 2)),
        ("TCP/veth 3 hosts", *fit(w + "/tcp-3.txt", 3)), ("100 Gb/s IB (nominal)", 12.5e9, 5e-6), ("25 GbE (nominal)", 3.125e9, 30e-6)]
print("\nring all-reduce projection, ms per step (loopback figures: shm and TCP/veth are one machine)")
print("%-24s %9s %9s" % ("network", "B GB/s", "alpha us") + "".join("%10s" % ("P=%d" % P) for P in (2, 8, 64, 512)))
for N, what in ((15141888, "demo model, 15.1 MB"), (190e6, "bench model, 190 MB")):
    print("# " + what)
    for name, bw, a in nets:
        print("%-24s %9.2f %9.1f" % (name, bw / 1e9, a * 1e6) + "".join("%10.2f" % (1e3 * (2 * (P - 1) / P * N / bw + 2 * (P - 1) * a)) for P in (2, 8, 64, 512)))
PY
echo "# bench_comm.sh: $(( $(date +%s) - T0 )) s wall, load at end $(la)"
