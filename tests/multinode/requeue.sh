#!/usr/bin/env bash
# multinode_requeue: a 3-node job of the real slurm/pretrain-multinode.sbatch gets the time-limit
# signal mid-run (scancel --signal=USR1 --batch: what --signal=B:USR1@T delivers to the batch shell);
# all ranks checkpoint, the job requeues itself, resumes on the 3 hosts and finishes with parameters
# identical to an uninterrupted 3-rank run.
source "$(dirname "$0")/lib.sh"

STEPS=300
ARGS=(--steps "$STEPS" --ckpt-every 100 --keep-last 2 --log-every 10)
pretrain 3 "${ARGS[@]}" --ckpt-dir ref 2>ref.log || fail "reference run failed: $(tail -3 ref.log)"

submit 3 "${ARGS[@]}"
wait_for 'grep -qE "step ([4-9][0-9]|[12][0-9]{2})/" logs/pretrain-$JOB-r0.log 2>/dev/null' 120 ||
  fail "job did not start training: $(tc run squeue -j "$JOB" 2>&1 | tail -1) $(tail -3 logs/*.log 2>/dev/null)"
tc run scancel --signal=USR1 --batch "$JOB" || fail "scancel --signal failed"
echo "sent USR1 to the batch shell of job $JOB"
finish 200
[ "$RC" -eq 0 ] || fail "sbatch --wait returned $RC"
restarts=$(tc run scontrol show job "$JOB" | sed -nE 's/.*Restarts=([0-9]+).*/\1/p')
[ "${restarts:-0}" -ge 1 ] || fail "job was not requeued (Restarts=${restarts:-?})"
grep -q "stop requested (signal)" "logs/pretrain-$JOB-r0.log" || fail "first run did not see the stop signal"
grep -q "requeueing job $JOB" "slurm-$JOB.out" || fail "batch script did not requeue"
K=$(sed -nE 's/.*resumed at step ([0-9]+).*/\1/p' "logs/pretrain-$JOB-r1.log")
[ -n "$K" ] && [ "$K" -gt 0 ] && [ "$K" -lt "$STEPS" ] || fail "second run did not resume mid-run (K=${K:-none})"
for r in 0 1; do
  h=$(hosts_of "logs/pretrain-$JOB-r$r.log")
  [ "$h" = "node1 node2 node3 " ] || fail "run $r ran on hosts '$h'"
done
S=$(printf 'step_%08d' "$STEPS")
[ "$(cat ck/latest)" = "$S" ] || fail "final checkpoint missing"
same_files "ck/$S" "ref/$S" model.safetensors optim.safetensors
pass "3-node job $JOB: USR1 -> checkpoint at step $K -> requeued (Restarts=$restarts) -> resumed on 3 hosts -> finished; params == uninterrupted run"
