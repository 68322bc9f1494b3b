# lib.sh - shared part of the multinode tests (sourced): a 3-host test cluster of network namespaces
# (scripts/testcluster.sh), torn down on exit whatever happens, and helpers that submit the real
# slurm/pretrain-multinode.sbatch to it. Builds on tests/train/lib.sh (tiny data, TINY model, fail,
# pass, wait_for, same_files, verify_ckpt).
# Needs root, iproute2 and the Slurm packages: exit 77 (skipped) otherwise.
source "$(dirname "${BASH_SOURCE[0]}")/../train/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (network namespaces, Slurm daemons)"; exit 77; }
for t in ip nsenter unshare slurmctld slurmd sbatch munged; do
  command -v "$t" >/dev/null || { echo "SKIP: $t not installed (scripts/install-deps.sh)"; exit 77; }
done

# The overlap of gradient reduction with backward is decided per layout (mpi/dp.h: on only with a
# spare core per node): a cluster host runs 1 rank on 2 cores (on), the single-host reference 2-3
# ranks on 2 cores (off), and the two modes issue different collectives (different summation order
# over 3 ranks). Bit-identical comparisons need the same mode on both sides: set it.
TINY+=(--overlap)

TC=$PVLM_SOURCE_DIR/scripts/testcluster.sh
# A cluster of its own (state under the test's folder, namespaces pvlmt-*), so a developer's
# `testcluster.sh up` (pvlmc-*) does not collide with the tests.
export PVLM_CLUSTER_DIR=$PVLM_TMP/cluster PVLM_CLUSTER_NAME=pvlmt
tc() { "$TC" "$@"; }

cluster_down() {
  cleanup_bg
  tc down >/dev/null 2>&1 || tc down || true
}
trap cluster_down EXIT
# a cluster left by a killed earlier run of these tests would block `up`
tc down >/dev/null 2>&1 || true
tc up "${NODES:-3}" || fail "could not start the test cluster"

# PVLM_START_RETRIES: on a machine loaded far beyond its cores Open MPI's MPI_Init race (pvlm-job.sh)
# was seen to hit 2 starts in a row
export PVLM_CKPT_DIR=$PVLM_TMP/ck PVLM_LOG_DIR=$PVLM_TMP/logs PVLM_SLURM_DIR=$PVLM_SOURCE_DIR/slurm PVLM_MAX_REQUEUES=3 PVLM_START_RETRIES=5
# (`testcluster.sh run` adds SLURM_CONF and Open MPI's TCP-only settings to what sbatch exports;
# this shell keeps the defaults, so the single-host reference runs use shared memory as usual.)

# submit OUT NODES ARGS...: sbatch --wait the real multi-node script with 1 task x 1 thread per
# node in the background (SB = sbatch's PID, JOB = the job id); NODES may be a range (2-3).
submit() {
  local nodes=$1; shift
  tc run sbatch --parsable --wait --nodes="$nodes" --ntasks-per-node=1 --cpus-per-task=1 \
    --output="$PVLM_TMP/slurm-%j.out" "$PVLM_SOURCE_DIR/slurm/pretrain-multinode.sbatch" "${TINY[@]}" "$@" \
    >sbatch.out 2>sbatch.err &
  SB=$!
  BG_PIDS+=("$SB")
  wait_for '[ -s sbatch.out ]' 30 || fail "sbatch printed no job id: $(cat sbatch.err)"
  JOB=$(head -1 sbatch.out | cut -d';' -f1)
  echo "job $JOB submitted ($nodes nodes)"
}

# finish LIMIT_S: wait for sbatch --wait to return; its exit code in RC
finish() {
  wait_for '! kill -0 $SB 2>/dev/null' "$1" ||
    fail "job $JOB not done in $1 s: $(tc run squeue -j "$JOB" 2>&1 | tail -1); $(tail -3 "$PVLM_TMP"/slurm-"$JOB".out)"
  set +e; wait "$SB"; RC=$?; set -e
  cat "$PVLM_TMP/slurm-$JOB.out"
}

# hosts_of LOG: the distinct hosts the ranks of one run logged ("rank R of P on host H")
hosts_of() { sed -nE 's/.*rank [0-9]+ of [0-9]+ on host ([^ ]+).*/\1/p' "$1" | sort -u | tr '\n' ' '; }

# tx_total: bytes all hosts sent over their links (veth counters)
tx_total() { tc bytes | awk 'NR > 1 { s += $2 } END { print s + 0 }'; }


# keep_resume_point: copy the checkpoint ck/latest names (the one a resumed run will start from)
# to refck/, for same_as_single_host_resume
keep_resume_point() { mkdir -p refck && cp -r "ck/$(cat ck/latest)" refck/ && cp ck/latest refck/; }

# same_as_single_host_resume STEPS ARGS...: resume refck/ with 2 ranks on this host (mpirun, shared
# memory) to STEPS and compare its final parameters and moments with the cluster run's
same_as_single_host_resume() {
  local steps=$1 rc; shift
  set +e; pretrain 2 "$@" --ckpt-dir refck --resume auto 2>refck.log; rc=$?; set -e
  [ $rc -eq 0 ] || fail "single-host 2-rank resume failed: $(tail -3 refck.log)"
  local S; S=$(printf 'step_%08d' "$steps")
  [ "$(cat ck/latest)" = "$S" ] || fail "final checkpoint missing"
  same_files "ck/$S" "refck/$S" model.safetensors optim.safetensors
}
