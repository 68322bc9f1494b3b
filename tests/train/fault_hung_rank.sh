#!/usr/bin/env bash
# fault_hung_rank: a rank that stops making progress (SIGSTOP) would leave the other spinning in a
# collective forever; the watchdog must end the job with exit code 4 and a message.
source "$(dirname "$0")/lib.sh"
pretrain_bg log 2 "${LONG[@]}" --watchdog-factor 10 --watchdog-min 2 --watchdog-first 30
M=$BG
wait_for 'grep -q "step 8/" log' 60 || fail "run did not start"
victim=$(rank_pid "$M" 1) || fail "cannot find rank 1"
BG_PIDS+=("$victim")
kill -STOP "$victim"
t0=$(date +%s%N)
wait_for '! kill -0 $M 2>/dev/null' 30 || fail "job still running 30 s after a rank hung"
set +e; wait "$M"; rc=$?; set -e
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
grep -q "watchdog: no progress" log || fail "no watchdog message: $(tail -3 log)"
[ $rc -eq 4 ] || fail "expected exit 4 (watchdog), got $rc"
pass "hung rank: watchdog ended the job after $ms ms with exit 4"
