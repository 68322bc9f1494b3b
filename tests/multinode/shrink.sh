#!/usr/bin/env bash
# multinode_shrink: a 3-node job runs on 3 hosts; after its first checkpoint one host is taken away
# (node3 drained, the job checkpoints on the time-limit signal and requeues itself, node3's slurmd
# is stopped, the user lowers the pending job to 2 nodes with scontrol update), and the requeued
# job runs on the 2 remaining hosts with --resume auto. Checked, as docs/pretrain.md promises for a world-size change: the resume warns
# 3 -> 2 ranks and continues at the checkpoint's step with the samples-seen count carried over, no
# sample of the interrupted epoch (images and text) is skipped or drawn twice (the sample ids every
# step consumed, from --log-samples, checked by shrink_samples.py), the loss is continuous, and the
# 2-host continuation is bit-identical to a 2-rank single-host resume from the same checkpoint
# (re-sliced optimizer state, re-derived data order).
source "$(dirname "$0")/lib.sh"

STEPS=300
ARGS=(--steps "$STEPS" --ckpt-every 50 --keep-last 3 --log-every 10)
submit 3 "${ARGS[@]}" --log-samples "$PVLM_TMP/samples"
log0=logs/pretrain-$JOB-r0.log
wait_for '[ -f ck/latest ] && grep -qE "step ([6-9][0-9]|[12][0-9]{2})/" '"$log0"' 2>/dev/null' 120 ||
  fail "job did not reach a checkpoint: $(tc run squeue -j "$JOB" 2>&1 | tail -1) $(tail -3 logs/*.log 2>/dev/null)"
[ "$(hosts_of "$log0")" = "node1 node2 node3 " ] || fail "first run on hosts '$(hosts_of "$log0")'"
tc run scontrol update NodeName=node3 State=DRAIN Reason=shrink-test || fail "cannot drain node3"
tc run scancel --signal=USR1 --batch "$JOB" || fail "scancel --signal failed"
wait_for 'grep -q "requeueing job" slurm-$JOB.out 2>/dev/null' 90 || fail "job did not checkpoint and requeue: $(tail -5 slurm-$JOB.out)"
tc stop-node 3
tc run scontrol update JobId="$JOB" NumNodes=2 NumTasks=2 || fail "cannot lower the requeued job to 2 nodes"
K=$(latest_step ck)
# the checkpoint the 2-host run will resume from, for the single-host reference
keep_resume_point
echo "first run stopped at step $K on 3 hosts; node3 drained and its slurmd stopped"
finish 200
[ "$RC" -eq 0 ] || fail "sbatch --wait returned $RC"
log1=logs/pretrain-$JOB-r1.log
[ "$(hosts_of "$log1")" = "node1 node2 " ] || fail "requeued run on hosts '$(hosts_of "$log1")', want node1 node2"
grep -q "written by 3 ranks, now 2" "$log1" || fail "no world-size change warning in $log1"
read -r R SEEN < <(sed -nE 's/.*resumed at step ([0-9]+) \(([0-9]+) samples seen\).*/\1 \2/p' "$log1")
[ "${R:-}" = "$K" ] || fail "requeued run resumed at step ${R:-none}, want $K"
[ "$SEEN" -eq $((K * 12)) ] || fail "samples seen at resume $SEEN, want $K x 12 (3 ranks x 4)"
DONE=$(sed -nE 's/.*done: [0-9]+ steps, ([0-9]+) samples seen.*/\1/p' "$log1")
[ "$DONE" -eq $((SEEN + (STEPS - K) * 8)) ] || fail "samples seen at the end $DONE, want $SEEN + $((STEPS - K)) x 8"
# the last loss logged on 3 hosts and the first on 2 hosts (logged every 10 steps and at the stop)
read -r s0 before < <(sed -nE 's/.*step ([0-9]+)\/[0-9]+ \| loss ([0-9.]+).*/\1 \2/p' "$log0" | tail -1)
read -r s1 after < <(sed -nE 's/.*step ([0-9]+)\/[0-9]+ \| loss ([0-9.]+).*/\1 \2/p' "$log1" | head -1)
awk -v a="$before" -v b="$after" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d / a < 0.25) }' ||
  fail "loss not continuous: $before at step $s0 (3 hosts), $after at step $s1 (2 hosts)"
# the interrupted epoch of each stream: every sample exactly once, except the documented remainder
MANIFESTS=(data/img/manifest.json)
[ -f data/text/manifest.json ] && MANIFESTS+=(data/text/manifest.json)
EPOCH=$("$PY" "$(dirname "$0")/shrink_samples.py" "$PVLM_TMP/samples" "$K" "${MANIFESTS[@]}") ||
  fail "data order after the world-size change: $EPOCH"
echo "$EPOCH"
same_as_single_host_resume "$STEPS" "${ARGS[@]}"
pass "job $JOB: 3 hosts -> checkpoint at step $K -> node3 removed -> resumed on node1 node2 (loss $before at step $s0 -> $after at step $s1, $SEEN -> $DONE samples; interrupted epochs drawn exactly once); == single-host 2-rank resume"
