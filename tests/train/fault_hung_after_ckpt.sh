#!/usr/bin/env bash
# fault_hung_after_ckpt: a rank that hangs in the first step after a checkpoint (--hang-at-step; with
# --ckpt-every 1 every step follows one) is caught within the normal step bound
# max(--watchdog-min, --watchdog-factor x slowest step), here a few seconds, not within the start-up
# bound --watchdog-first or the checkpoint bound --ckpt-timeout (60 s each here).
source "$(dirname "$0")/lib.sh"
t0=$(date +%s%N)
set +e # TERM (mpirun then ends its ranks) after 50 s, KILL 10 s later
timeout -k 10 50 "$MPIEXEC" -np 2 --oversubscribe --bind-to none "$PVLM_BIN" pretrain "${TINY[@]}" "${LONG[@]}" \
  --ckpt-dir ck --ckpt-every 1 --keep-last 2 --hang-at-step 7 --watchdog-factor 10 --watchdog-min 2 \
  --watchdog-first 60 --ckpt-timeout 60 2>log
rc=$?
set -e
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ $rc -ne 124 ] && [ $rc -ne 137 ] || fail "job still running 50 s after a rank hung after a checkpoint (bounded by the 60 s limits)"
grep -q "checkpoint: ck/step_00000006" log || fail "no checkpoint before the hang: $(tail -3 log)"
msg=$(grep -o "watchdog: no progress for [0-9.]* s (limit [0-9.]* s) in phase '[a-z-]*'" log | head -1)
[ -n "$msg" ] || fail "no watchdog message: $(tail -3 log)"
[ $rc -eq 4 ] || fail "expected exit 4 (watchdog), got $rc"
limit=$(echo "$msg" | sed -E 's/.*limit ([0-9.]*) s.*/\1/')
"$PY" -c "import sys; sys.exit(0 if float('$limit') < 30 else 1)" || fail "limit $limit s: not the normal step bound ($msg)"
pass "rank hung in the step after a checkpoint: $msg; job ended after $ms ms with exit 4"
