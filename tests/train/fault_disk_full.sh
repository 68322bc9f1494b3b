#!/usr/bin/env bash
# fault_disk_full: checkpoints on a small tmpfs; when the disk fills, the run stops with a clear
# error (exit 1), the older checkpoints and `latest` stay valid, and a run resumes from them.
# Needs root for mount (exit 77 = skipped otherwise).
source "$(dirname "$0")/lib.sh"
mkdir -p mnt
if ! mount -t tmpfs -o size=1200k tmpfs mnt 2>/dev/null; then echo "SKIP: cannot mount a tmpfs"; exit 77; fi
trap 'cleanup_bg; umount mnt 2>/dev/null || true' EXIT
# ZeRO-1: every rank writes an optimizer shard, so a failure may hit either rank
set +e; pretrain 2 "${LONG[@]}" --zero1 --ckpt-every 2 --keep-last 5 --ckpt-dir mnt/ck --stop-at-step 40 2>log; rc=$?; set -e
[ $rc -eq 1 ] || fail "disk full should exit 1, got $rc: $(tail -3 log)"
grep -q "No space left on device" log || fail "no clear ENOSPC error: $(grep ERROR log | head -3)"
L=$(latest_step mnt/ck)
[ "$L" -ge 2 ] || fail "no checkpoint survived"
for d in mnt/ck/step_*; do verify_ckpt "$d" || fail "$d does not verify after disk full"; done
echo "disk full after step $L: $(grep -m1 ERROR log)"
T=$((L + 4))
set +e; pretrain 2 "${LONG[@]}" --zero1 --resume "mnt/ck/$(cat mnt/ck/latest)" --ckpt-dir ck2 --stop-at-step "$T" 2>log2; rc=$?; set -e
[ $rc -eq 3 ] || fail "resume from the tmpfs checkpoint: exit $rc: $(tail -3 log2)"
reference_at "$T" ref --zero1
S=$(printf 'step_%08d' "$T")
same_files "ck2/$S" "ref/$S" model.safetensors optim-rank00000.safetensors optim-rank00001.safetensors
pass "disk full: exit 1 with ENOSPC, checkpoints up to step $L intact, resume identical at step $T"
