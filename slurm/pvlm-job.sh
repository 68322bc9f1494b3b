#!/usr/bin/env bash
# pvlm-job.sh - body of pvlm's sbatch scripts (pretrain.sbatch, pretrain-multinode.sbatch exec it, so
# it runs as the batch shell and receives Slurm's --signal=B:USR1@T itself).
#
# 1. Starts `srun --mpi=pmix pvlm pretrain --resume auto --ckpt-dir $PVLM_CKPT_DIR "$@"` (only pmix
#    works with Debian's Open MPI), its output appended to
#    $PVLM_LOG_DIR/pretrain-<job id>-r<restart count>.log.
# 2. Traps USR1 (time-limit warning) and TERM and forwards SIGUSR1 to the job step: every rank sets
#    its stop flag, the ranks agree at the end of the step, write a checkpoint and exit 3.
# 3. Exit 3 (= a complete checkpoint exists): `scontrol requeue $SLURM_JOB_ID` unless the job has
#    been requeued PVLM_MAX_REQUEUES times already (SLURM_RESTART_COUNT). scontrol requeue kills this
#    script at once, which is why it is called only after the checkpoint is complete.
#    Exit 0: done. Exit 2 (usage): the job fails. Anything else (an error, a watchdog abort, a killed
#    rank): if every node of the allocation still runs a task, the job fails with that code (no
#    requeue loop on real errors); if one does not (a node was lost), the script waits for Slurm to
#    mark the node down and requeue the job (--requeue) on the remaining nodes (up to
#    PVLM_NODE_FAIL_WAIT seconds, default 2 x SlurmdTimeout + 30), and the requeued job resumes.
#
# Data-parallel defaults (docs/slurm.md, docs/perf-scaling.md) are pvlm's own, not set here: gradient
# reduction overlapped with backward only when a node has a core beyond ranks x threads, glibc malloc
# thresholds raised for Open MPI's temporaries, OMPI_MCA_btl_vader_single_copy_mechanism=none unless
# exported before sbatch; rank 0's log names them ("shared memory: ...", "data parallel: ...").
#
# Environment: PVLM_BIN (default: pvlm on PATH), PVLM_CKPT_DIR (required; on a file system all
# nodes share), PVLM_LOG_DIR (default $PVLM_CKPT_DIR/logs), PVLM_MAX_REQUEUES (default 20),
# PVLM_SRUN_ARGS (extra srun flags), PVLM_NODE_FAIL_WAIT, PVLM_PROBE_TIMEOUT (the node probe's
# limit, default 60 s), PVLM_START_RETRIES (default 2). Threads per rank: SLURM_CPUS_PER_TASK when set.
set -uo pipefail

PVLM_BIN=${PVLM_BIN:-pvlm}
: "${PVLM_CKPT_DIR:?set PVLM_CKPT_DIR to the checkpoint directory (shared by all nodes)}"
: "${SLURM_JOB_ID:?pvlm-job.sh runs inside a Slurm batch job}"
LOG_DIR=${PVLM_LOG_DIR:-$PVLM_CKPT_DIR/logs}
MAX_REQUEUES=${PVLM_MAX_REQUEUES:-20}
restart=${SLURM_RESTART_COUNT:-0}
mkdir -p "$LOG_DIR" "$PVLM_CKPT_DIR"
log="$LOG_DIR/pretrain-${SLURM_JOB_ID}-r${restart}.log"
if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then export PVLM_THREADS=$SLURM_CPUS_PER_TASK; fi

say() { echo "[pvlm-job $(date -u +%FT%TZ)] $*"; }

requeued=""
requeue() {
  if [ "$restart" -ge "$MAX_REQUEUES" ]; then
    say "requeue cap reached ($restart of PVLM_MAX_REQUEUES=$MAX_REQUEUES): not requeueing"
    exit 3
  fi
  say "requeueing job $SLURM_JOB_ID (restart $((restart + 1)))"
  requeued=1
  scontrol requeue "$SLURM_JOB_ID" || { say "scontrol requeue failed"; exit 3; }
  # Slurm now ends this script (SIGTERM, then SIGKILL); wait for that without doing anything else.
  for _ in $(seq 1 120); do sleep 1; done
  say "scontrol requeue did not end the job within 120 s"
  exit 3
}

step_pid=""
got_signal=""
forward() {
  if [ -n "$requeued" ]; then exit 3; fi # the requeue itself terminates us
  got_signal=$1
  say "got SIG$1: asking the ranks to checkpoint and stop"
  if [ -n "$step_pid" ]; then kill -USR1 "$step_pid" 2>/dev/null || true; fi
}
trap 'forward USR1' USR1
trap 'forward TERM' TERM

# Tasks of the step: nodes x tasks per node of the allocation as it is now. A requeued job whose node
# count was lowered (scontrol update JobId=... NumNodes=... NumTasks=..., after a node loss) still
# exports the first start's SLURM_NTASKS, so derive it from the node count when per-node is known.
layout=()
if [ -n "${SLURM_JOB_NUM_NODES:-}" ] && [[ "${SLURM_NTASKS_PER_NODE:-}" =~ ^[0-9]+$ ]]; then
  layout=(--nodes="$SLURM_JOB_NUM_NODES" --ntasks=$((SLURM_JOB_NUM_NODES * SLURM_NTASKS_PER_NODE)))
fi
say "job $SLURM_JOB_ID restart $restart: ${SLURM_JOB_NUM_NODES:-1} node(s) ${SLURM_JOB_NODELIST:-}, ${layout[1]:-${SLURM_NTASKS:-?} task(s)}, log $log"

# run_step ARGS...: the job step; its exit code in rc
run_step() {
  # shellcheck disable=SC2086
  srun --mpi=pmix --kill-on-bad-exit=1 "${layout[@]}" ${PVLM_SRUN_ARGS:-} \
    "$PVLM_BIN" pretrain --resume auto --ckpt-dir "$PVLM_CKPT_DIR" "$@" >>"$log" 2>&1 &
  step_pid=$!
  # A signal that came before srun existed (Slurm may signal early) is forwarded now.
  if [ -n "$got_signal" ]; then sleep 2; kill -USR1 "$step_pid" 2>/dev/null || true; fi
  # `wait` returns early (status > 128) when a trapped signal arrives; wait again until srun is gone.
  rc=0
  while :; do
    wait "$step_pid"; rc=$?
    kill -0 "$step_pid" 2>/dev/null || break
  done
  if [ $rc -gt 128 ] && [ -n "$got_signal" ]; then
    wait "$step_pid" 2>/dev/null; r2=$?
    [ $r2 -ne 127 ] && rc=$r2
  fi
  step_pid=""
}

# Open MPI 4.1.4's TCP transport occasionally kills a rank with SIGSEGV inside MPI_Init (a peer that
# left MPI_Init early connects while this rank still waits in the start-up fence; seen in about 1 of
# 5 three-host starts with every core busy, docs/slurm.md). Such a start did no training step, so
# it is retried (PVLM_START_RETRIES times, default 2); `--resume auto` makes the retry exact.
steps_logged() { if [ -f "$log" ]; then grep -cE 'step [0-9]+/[0-9]+ \|' "$log" || true; else echo 0; fi; }
tries=0
while :; do
  n0=$(steps_logged)
  run_step "$@"
  if [ $rc -gt 128 ] && [ -z "$got_signal" ] && [ "$(steps_logged)" = "$n0" ] &&
     [ $tries -lt "${PVLM_START_RETRIES:-2}" ]; then
    tries=$((tries + 1))
    say "a rank died during start-up (exit code $rc, no step done): starting the step again ($tries of ${PVLM_START_RETRIES:-2})"
    continue
  fi
  break
done

# nodes_healthy: every node of the allocation runs a trivial task (a dead host, a dead slurmd or a
# pulled cable fails this within MessageTimeout)
nodes_healthy() {
  timeout "${PVLM_PROBE_TIMEOUT:-60}" srun --nodes="${SLURM_JOB_NUM_NODES:-1}" --ntasks-per-node=1 --kill-on-bad-exit=1 \
    true >/dev/null 2>&1
}

# After a node loss the ranks end within seconds (a rank's peers see its TCP connections close, or
# the watchdog fires), before Slurm has noticed the node: Slurm marks it DOWN after SlurmdTimeout
# and then requeues this --requeue job itself (NODE_FAIL) on the remaining nodes, killing this script.
# So wait for that instead of failing the job; give up after PVLM_NODE_FAIL_WAIT seconds
# (default 2 x SlurmdTimeout + 30).
wait_for_node_failure() {
  local limit=${PVLM_NODE_FAIL_WAIT:-} t
  if [ -z "$limit" ]; then
    t=$(scontrol show config 2>/dev/null | sed -nE 's/^SlurmdTimeout *= *([0-9]+).*/\1/p')
    limit=$(( 2 * ${t:-300} + 30 ))
  fi
  say "a node of this job does not respond: waiting up to ${limit} s for Slurm to requeue the job (node failure)"
  sleep "$limit"
  say "Slurm did not requeue the job within ${limit} s"
}

case $rc in
  0) say "training finished"; exit 0 ;;
  3) say "stopped after a complete checkpoint"; requeue ;;
  2) say "pvlm pretrain: usage error (exit 2, see $log)"; exit 2 ;;
  *)
    # A real error (1), a watchdog abort (4) or a killed rank: was a node lost? Then the job is
    # worth resuming from its last checkpoint on the nodes that remain; otherwise fail (no loop).
    if ! nodes_healthy; then wait_for_node_failure; fi
    say "pvlm pretrain failed with exit code $rc (see $log)"; exit "$rc" ;;
esac
