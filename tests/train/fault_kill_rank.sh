#!/usr/bin/env bash
# fault_kill_rank: kill -9 of one rank mid-run ends the whole job within seconds, the previous
# checkpoint stays valid, and resuming from it reproduces an uninterrupted run exactly.
source "$(dirname "$0")/lib.sh"

pretrain_bg log 2 "${LONG[@]}" --ckpt-every 10 --keep-last 2 --ckpt-dir ck
M=$BG
wait_for '[ -f ck/latest ] && [ "$(latest_step ck)" -ge 30 ]' 60 || fail "no checkpoint at step >= 30 in 60 s"
victim=$(rank_pid "$M" 1) || fail "cannot find rank 1 of mpirun $M"
t0=$(date +%s%N)
kill -9 "$victim"
wait_for '! kill -0 $M 2>/dev/null' 15 || fail "job still running 15 s after a rank was killed"
set +e; wait "$M"; rc=$?; set -e
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ $rc -ne 0 ] || fail "job exited 0 after a rank was killed"
echo "job ended $ms ms after kill -9 of rank 1 (exit $rc)"
for ids in $(pgrep -P "$M" 2>/dev/null); do fail "leftover rank $ids"; done

L=$(latest_step ck)
verify_ckpt "ck/$(cat ck/latest)" || fail "latest checkpoint ck/$(cat ck/latest) does not verify"
for d in ck/step_*; do verify_ckpt "$d" || fail "$d does not verify"; done
T=$((L + 7))
set +e; pretrain 2 "${LONG[@]}" --ckpt-dir ck --stop-at-step "$T" 2>log2; rc=$?; set -e
[ $rc -eq 3 ] || fail "resume: exit $rc: $(tail -3 log2)"
grep -q "resumed at step $L" log2 || fail "did not resume at step $L"
reference_at "$T" ref
S=$(printf 'step_%08d' "$T")
same_files "ck/$S" "ref/$S" model.safetensors optim.safetensors
pass "kill -9: job ended in $ms ms; resumed from step $L; step $T identical to an uninterrupted run"
