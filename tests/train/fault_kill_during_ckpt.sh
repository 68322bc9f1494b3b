#!/usr/bin/env bash
# fault_kill_during_ckpt: rank 0 (which writes the model and commits) is killed at varying moments
# of a run that checkpoints every step; `latest` must always name a complete checkpoint, every
# step_* directory must verify, and the final resumed run must equal an uninterrupted one.
source "$(dirname "$0")/lib.sh"

for delay in 0.13 0.29 0.47 0.71; do
  prev=-1; [ -f ck/latest ] && prev=$(latest_step ck)
  pretrain_bg log 2 "${LONG[@]}" --ckpt-every 1 --keep-last 3 --ckpt-dir ck
  M=$BG
  # kill only once this run is checkpointing (not while it starts up)
  wait_for '[ -f ck/latest ] && [ "$(latest_step ck)" -gt "$prev" ]' 60 || fail "no new checkpoint in 60 s"
  sleep "$delay"
  victim=$(rank_pid "$M" 0) || fail "cannot find rank 0: $(tail -5 log)"
  kill -9 "$victim"
  wait_for '! kill -0 $M 2>/dev/null' 30 || fail "job still running 30 s after kill"
  set +e; wait "$M"; set -e
  verify_ckpt "ck/$(cat ck/latest)" || fail "after kill at +$delay s: latest $(cat ck/latest) does not verify"
  for d in ck/step_*; do verify_ckpt "$d" || fail "after kill at +$delay s: $d does not verify"; done
  echo "killed rank 0 at +$delay s: latest $(cat ck/latest) verifies; $(ls -d ck/.tmp.* 2>/dev/null | wc -l) tmp dir(s) left (ignored)"
done
L=$(latest_step ck)
T=$((L + 5))
set +e; pretrain 2 "${LONG[@]}" --ckpt-dir ck --stop-at-step "$T" 2>log2; rc=$?; set -e
[ $rc -eq 3 ] || fail "resume: exit $rc: $(tail -3 log2)"
[ -z "$(ls -d ck/.tmp.* 2>/dev/null)" ] || fail "tmp dirs of killed writes not cleaned by the next checkpoint"
reference_at "$T" ref
S=$(printf 'step_%08d' "$T")
same_files "ck/$S" "ref/$S" model.safetensors optim.safetensors
pass "4 kills during checkpointing: latest always complete; resumed run identical at step $T"
