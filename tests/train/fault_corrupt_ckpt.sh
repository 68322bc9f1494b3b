#!/usr/bin/env bash
# fault_corrupt_ckpt: a corrupted newest checkpoint (flipped byte in the model, truncated optimizer
# file, edited state.json) is detected and reported by --resume auto, the previous one is used,
# retention does not delete it while the newer ones are damaged, and the result equals an
# uninterrupted run; --resume PATH of a corrupt one fails clearly. When every checkpoint is damaged,
# --resume auto fails and lists them (nothing deleted) unless --allow-fresh-start is given, and the
# fresh run's retention keeps the damaged newer ones. Forged state.json files, re-sealed with a matching
# checksum (an optimizer file in another step, a model file left out of "files"), are skipped too.
# Usage: fault_corrupt_ckpt.sh RESEAL_TOOL (ckpt_interop_tool, for its `reseal` mode)
TOOL=${1:?usage: fault_corrupt_ckpt.sh CKPT_INTEROP_TOOL}
source "$(dirname "$0")/lib.sh"

set +e; pretrain 2 "${LONG[@]}" --ckpt-every 4 --keep-last 0 --ckpt-dir ck --stop-at-step 16 2>log1; rc=$?; set -e
[ $rc -eq 3 ] || fail "first run: exit $rc"
ls -d ck/step_00000004 ck/step_00000008 ck/step_00000012 ck/step_00000016 >/dev/null || fail "missing checkpoints"
cp -r ck all
cp -r ck forged
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
# Fall back to step 4 and stop at 8 with --keep-last 1: 12 and 16 still fail, so step 4 must survive.
set +e; pretrain 2 "${LONG[@]}" --ckpt-dir ck --ckpt-every 4 --keep-last 1 --stop-at-step 8 2>log2; rc=$?; set -e
[ $rc -eq 3 ] || fail "resume: exit $rc: $(tail -3 log2)"
for s in 16 12 8; do grep -q "skipping checkpoint step $s" log2 || fail "corrupt step $s not reported"; done
grep -q "resumed at step 4" log2 || fail "did not fall back to step 4"
[ -d ck/step_00000004 ] || fail "retention deleted step 4 while the newer steps 12 and 16 do not verify"
verify_ckpt ck/step_00000008 || fail "the rewritten step 8 does not verify"
set +e; pretrain 2 "${LONG[@]}" --ckpt-dir ck --ckpt-every 4 --keep-last 1 --stop-at-step 20 2>log3; rc=$?; set -e
[ $rc -eq 3 ] || fail "second resume: exit $rc: $(tail -3 log3)"
grep -q "resumed at step 8" log3 || fail "did not resume from step 8"
[ ! -d ck/step_00000004 ] || fail "retention kept step 4 after every newer checkpoint verified again"
reference_at 20 ref
same_files ck/step_00000020 ref/step_00000020 model.safetensors optim.safetensors

# Forged state.json: 16 loads its optimizer state from step 12, 12 leaves its model out of "files".
"$PY" - <<'PY'
import json
p = "forged/step_00000016/state.json"; j = json.load(open(p))
j["optim_files"] = ["../step_00000012/optim.safetensors"]; json.dump(j, open(p, "w"))
p = "forged/step_00000012/state.json"; j = json.load(open(p))
del j["files"]["model.safetensors"]; json.dump(j, open(p, "w"))
PY
"$TOOL" reseal forged/step_00000016 && "$TOOL" reseal forged/step_00000012 || fail "reseal failed"
set +e; "$PVLM_BIN" inspect forged >inspect.out 2>&1; rc=$?; set -e
[ $rc -eq 1 ] || fail "inspect of a root with forged checkpoints: exit $rc"
grep -q "step 16 .*CORRUPT: .*not a plain file name" inspect.out && grep -q "step 12 .*CORRUPT: .*model file .*not listed" inspect.out ||
  fail "inspect does not name the forgeries: $(cat inspect.out)"
set +e; pretrain 2 "${LONG[@]}" --ckpt-dir forged --resume forged/step_00000016 --stop-at-step 20 2>log6; rc=$?; set -e
[ $rc -eq 1 ] && grep -q "not a plain file name" log6 || fail "--resume of a forged checkpoint: exit $rc: $(grep ERROR log6)"
set +e; pretrain 2 "${LONG[@]}" --ckpt-dir forged --stop-at-step 12 2>log7; rc=$?; set -e
[ $rc -eq 3 ] || fail "resume past forged checkpoints: exit $rc: $(tail -3 log7)"
grep -q "skipping checkpoint step 16" log7 && grep -q "skipping checkpoint step 12" log7 && grep -q "resumed at step 8" log7 ||
  fail "forged checkpoints not skipped: $(grep -E 'skipping|resumed' log7)"

# Every checkpoint damaged: --resume auto refuses to start from scratch and lists what failed.
"$PY" - <<'PY'
import glob
for p in glob.glob("all/step_*/model.safetensors"):
    b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 0x01; open(p, "wb").write(b)
PY
set +e; pretrain 2 "${LONG[@]}" --ckpt-dir all --stop-at-step 4 2>log4; rc=$?; set -e
[ $rc -eq 1 ] || fail "all checkpoints corrupt: expected exit 1, got $rc"
grep -q "none verifies" log4 && grep -q "allow-fresh-start" log4 || fail "no clear message: $(grep ERROR log4)"
for s in 16 12 8 4; do grep -q "step $s: .*model.safetensors" log4 || fail "step $s not listed: $(grep ERROR log4)"; done
[ "$(ls -d all/step_* | wc -l)" -eq 4 ] || fail "a damaged checkpoint was deleted"
# --allow-fresh-start: trains from step 0; retention (keep 2) keeps the damaged newer 8, 12 and 16
set +e; pretrain 2 "${LONG[@]}" --ckpt-dir all --ckpt-every 4 --keep-last 2 --allow-fresh-start --stop-at-step 4 2>log5; rc=$?; set -e
[ $rc -eq 3 ] || fail "--allow-fresh-start: exit $rc: $(tail -3 log5)"
grep -q "starting fresh" log5 || fail "no fresh-start warning"
verify_ckpt all/step_00000004 || fail "the fresh step 4 does not verify"
for s in 8 12 16; do [ -d all/step_000000$(printf %02d $s) ] || fail "retention deleted damaged step $s"; done
pass "3 corrupt checkpoints reported and skipped; resumed from step 4 (kept by retention); step 20 identical; forged state.json files rejected and skipped; all corrupt: refused, then --allow-fresh-start kept them"
