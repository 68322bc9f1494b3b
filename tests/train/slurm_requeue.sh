#!/usr/bin/env bash
# slurm_requeue: a real single-node Slurm (scripts/slurm-local.sh: munged, slurmctld, slurmd) runs
# slurm/pretrain.sbatch with 2 tasks under `sbatch --wait`; mid-run the batch shell gets the
# time-limit signal (scancel --signal=USR1 --batch, what --signal=B:USR1@T delivers); the job must
# checkpoint, requeue itself, resume from the checkpoint, finish, and end with parameters identical
# to an uninterrupted mpirun run. Daemons are stopped by PID at the end, also on failure.
# Needs root and the Slurm packages (exit 77 = skipped otherwise).
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null ||
  { echo "SKIP: Slurm not installed (scripts/install-deps.sh)"; exit 77; }

SL=$PVLM_TMP/slurm
stop_slurm() { cleanup_bg; "$PVLM_SOURCE_DIR/scripts/slurm-local.sh" stop "$SL" || true; }
trap stop_slurm EXIT
"$PVLM_SOURCE_DIR/scripts/slurm-local.sh" start "$SL" || fail "could not start Slurm: $(tail -5 "$SL"/log/*.log 2>/dev/null)"
export SLURM_CONF=$SL/slurm.conf

STEPS=1000
ARGS=(--steps "$STEPS" --ckpt-every 200 --keep-last 2 --log-every 50)
# Reference: the same training, uninterrupted, under mpirun
pretrain 2 "${ARGS[@]}" --ckpt-dir ref 2>ref.log || fail "reference run failed: $(tail -3 ref.log)"

export PVLM_CKPT_DIR=$PVLM_TMP/ck PVLM_LOG_DIR=$PVLM_TMP/logs PVLM_SLURM_DIR=$PVLM_SOURCE_DIR/slurm PVLM_MAX_REQUEUES=3
sbatch --parsable --wait --ntasks-per-node=2 --cpus-per-task=1 --output="$PVLM_TMP/slurm-%j.out" \
  "$PVLM_SOURCE_DIR/slurm/pretrain.sbatch" "${TINY[@]}" "${ARGS[@]}" >sbatch.out 2>sbatch.err &
SB=$!; BG_PIDS+=("$SB")
wait_for '[ -s sbatch.out ]' 30 || fail "sbatch printed no job id: $(cat sbatch.err)"
JOB=$(head -1 sbatch.out | cut -d';' -f1)
echo "job $JOB submitted"
# signal once the first run has made progress (a few hundred steps)
wait_for 'grep -qE "step [2-9][0-9]{2}/" logs/pretrain-$JOB-r0.log 2>/dev/null' 90 ||
  fail "job did not start training: $(squeue -j "$JOB" 2>&1 | tail -1) $(tail -3 logs/*.log 2>/dev/null)"
scancel --signal=USR1 --batch "$JOB" || fail "scancel --signal failed"
echo "sent USR1 to the batch shell of job $JOB"
wait_for '! kill -0 $SB 2>/dev/null' 240 || fail "sbatch --wait did not return in 240 s: $(squeue -j "$JOB" 2>&1 | tail -1)"
set +e; wait "$SB"; rc=$?; set -e
cat "$PVLM_TMP"/slurm-"$JOB".out
[ $rc -eq 0 ] || fail "sbatch --wait returned $rc"
restarts=$(scontrol show job "$JOB" | sed -nE 's/.*Restarts=([0-9]+).*/\1/p')
[ "${restarts:-0}" -ge 1 ] || fail "job was not requeued (Restarts=${restarts:-?})"
grep -q "stop requested (signal)" "logs/pretrain-$JOB-r0.log" || fail "first run did not see the stop signal"
grep -q "requeueing job $JOB" "$PVLM_TMP/slurm-$JOB.out" || fail "batch script did not requeue"
K=$(sed -nE 's/.*resumed at step ([0-9]+).*/\1/p' "logs/pretrain-$JOB-r1.log")
[ -n "$K" ] && [ "$K" -gt 0 ] && [ "$K" -lt "$STEPS" ] || fail "second run did not resume mid-run (K=${K:-none})"
S=$(printf 'step_%08d' "$STEPS")
[ "$(cat ck/latest)" = "$S" ] || fail "final checkpoint missing"
same_files "ck/$S" "ref/$S" model.safetensors optim.safetensors
pass "Slurm job $JOB: USR1 -> checkpoint at step $K -> requeued (Restarts=$restarts) -> resumed -> finished; params == uninterrupted run"
