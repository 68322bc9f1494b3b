#!/usr/bin/env bash
# fault_corrupt_ckpt: a corrupted newest checkpoint (flipped byte in the model, truncated optimizer
# file, edited state.json) is detected and reported by --resume auto, the previous one is used,
# and the result equals an uninterrupted run; --resume PATH of a corrupt one fails clearly.
source "$(dirname "$0")/lib.sh"

set +e; pretrain 2 "${LONG[@]}" --ckpt-every 4 --keep-last 0 --ckpt-dir ck --stop-at-step 16 2>log1; rc=$?; set -e
[ $rc -eq 3 ] || fail "first run: exit $rc"
ls -d ck/step_00000004 ck/step_00000008 ck/step_00000012 ck/step_00000016 >/dev/null || fail "missing checkpoints"
# 16: flip one byte in the middle of the model data; 12: truncate the optimizer; 8: edit state.json
"$PY" - <<'PY'
import os
p = "ck/step_00000016/model.safetensors"; b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 0x40
open(p, "wb").write(b)
p = "ck/step_00000012/optim.safetensors"; os.truncate(p, os.path.getsize(p) - 100)
p = "ck/step_00000008/state.json"; s = open(p).read().replace('"samples_seen": 64', '"samples_seen": 65')
assert "65" in s; open(p, "w").write(s)
PY
set +e; pretrain 2 "${LONG[@]}" --ckpt-dir ck --resume ck/step_00000016 --stop-at-step 20 2>logp; rc=$?; set -e
[ $rc -eq 1 ] || fail "--resume of a corrupt checkpoint should exit 1, got $rc"
grep -q "model.safetensors" logp || fail "error does not name the corrupt file: $(grep ERROR logp)"
set +e; pretrain 2 "${LONG[@]}" --ckpt-dir ck --stop-at-step 20 2>log2; rc=$?; set -e
[ $rc -eq 3 ] || fail "resume: exit $rc: $(tail -3 log2)"
for s in 16 12 8; do grep -q "skipping checkpoint step $s" log2 || fail "corrupt step $s not reported"; done
grep -q "resumed at step 4" log2 || fail "did not fall back to step 4"
reference_at 20 ref
same_files ck/step_00000020 ref/step_00000020 model.safetensors optim.safetensors
pass "3 corrupt checkpoints reported and skipped; resumed from step 4; step 20 identical"
