#!/usr/bin/env bash
# multinode_node_loss: while a 3-host job is training, host node3 dies (SIGKILL of its
# slurmd, slurmstepd and rank: every process in its namespaces). The surviving ranks must not hang:
# the step ends within seconds (its peers see the TCP connections close; the watchdog is the bound
# when they do not), pvlm-job.sh finds that a node no longer runs tasks and leaves the job to Slurm,
# which marks node3 DOWN after SlurmdTimeout (20 s here) and requeues the job (NODE_FAIL); the
# previous checkpoint verifies; the user lowers the pending job to 2 nodes (scontrol update), and the
# requeued job resumes from the checkpoint on node1 and node2 and finishes,
# bit-identical to a 2-rank single-host resume from that checkpoint. Prints how long each part of
# the detection took.
source "$(dirname "$0")/lib.sh"

STEPS=400
ARGS=(--steps "$STEPS" --ckpt-every 50 --keep-last 3 --log-every 10 --watchdog-min 20)
submit 3 "${ARGS[@]}"
log0=logs/pretrain-$JOB-r0.log
wait_for '[ -f ck/latest ] && grep -qE "step ([7-9][0-9]|[12][0-9]{2})/" '"$log0"' 2>/dev/null' 120 ||
  fail "job did not reach a checkpoint: $(tc run squeue -j "$JOB" 2>&1 | tail -1) $(tail -3 logs/*.log 2>/dev/null)"
[ "$(hosts_of "$log0")" = "node1 node2 node3 " ] || fail "first run on hosts '$(hosts_of "$log0")'"
grep -qE "step $STEPS/" "$log0" && fail "the job finished before the host could be killed"

# ranks_alive: pvlm processes still running on node1 or node2
ranks_alive() {
  local ns p
  for ns in pvlmt-node1 pvlmt-node2; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do
      [ "$(cat "/proc/$p/comm" 2>/dev/null)" = pvlm ] && return 0
    done
  done
  return 1
}
t0=$(date +%s%N)
tc kill-node 3
wait_for '! ranks_alive' 90 || fail "surviving ranks still running 90 s after node3 died (hang)"
t_ranks=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "surviving ranks ended $t_ranks ms after node3 died"
# the checkpoint the run will resume from must verify
L=$(latest_step ck)
verify_ckpt "ck/$(cat ck/latest)" || fail "latest checkpoint ck/$(cat ck/latest) does not verify"
keep_resume_point
job_field() { tc run scontrol show job "$JOB" 2>/dev/null | tr ' ' '\n' | sed -nE "s/^$1=//p" | head -1; }
wait_for '[ "$(job_field JobState)" = PENDING ] && [ "$(job_field Restarts)" -ge 1 ]' 120 ||
  fail "job not requeued within 120 s of the node loss: $(tc run squeue -j "$JOB" 2>&1 | tail -1); $(tail -3 slurm-$JOB.out)"
t_requeue=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "Slurm requeued the job $t_requeue ms after node3 died ($(tc run sinfo -h -n node3 -o '%t %E'))"
tc run scontrol update JobId="$JOB" NumNodes=2 NumTasks=2 || fail "cannot lower the requeued job to 2 nodes"
wait_for '[ -f logs/pretrain-$JOB-r1.log ]' 60 || fail "requeued job did not start on 2 nodes: $(tc run squeue -j "$JOB" 2>&1 | tail -1)"
t_restart=$(( ($(date +%s%N) - t0) / 1000000 ))
finish 200
[ "$RC" -eq 0 ] || fail "sbatch --wait returned $RC"
log1=logs/pretrain-$JOB-r1.log
[ "$(hosts_of "$log1")" = "node1 node2 " ] || fail "requeued run on hosts '$(hosts_of "$log1")', want node1 node2"
grep -q "resumed at step $L " "$log1" || fail "requeued run did not resume at step $L: $(grep -m1 resume "$log1")"
same_as_single_host_resume "$STEPS" "${ARGS[@]}"
pass "job $JOB: node3 killed -> ranks ended in $t_ranks ms -> requeued by Slurm in $t_requeue ms -> restarted on 2 nodes at $t_restart ms -> resumed from step $L on node1 node2 -> finished; == single-host 2-rank resume"
