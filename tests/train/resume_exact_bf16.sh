#!/usr/bin/env bash
# resume_exact_bf16: with --precision bf16 a run stopped at step 3 and resumed gives bit-identical
# losses, parameters and optimizer state to an uninterrupted run (2 ranks, same threads); the checkpoint
# format is fp32 as always. With the CPU's bf16 hidden (PVLM_HIDE_BF16=1) pretrain refuses bf16 with a
# message naming the variable and exits nonzero. On a CPU without bf16 the runs take the emulation
# (PVLM_BF16_EMULATE=1), which must say so in the log and resume exactly as well.
source "$(dirname "$0")/lib.sh"

set +e; PVLM_HIDE_BF16=1 pretrain 1 --precision bf16 --steps 2 --ckpt-every 0 --ckpt-dir ckH 2>logH; rc=$?; set -e
[ $rc -ne 0 ] || fail "bf16 with PVLM_HIDE_BF16=1 should fail"
grep -q "PVLM_HIDE_BF16" logH || fail "the hidden-bf16 error does not name PVLM_HIDE_BF16: $(tail -3 logH)"
pass "hidden bf16: clear error ($(grep -m1 -o 'precision bf16 unavailable[^;]*' logH))"

set +e; pretrain 2 --precision bf16 --steps 6 --ckpt-every 0 --metrics mA.jsonl --ckpt-dir ckA 2>logA; rc=$?; set -e
if [ $rc -ne 0 ] && grep -q "precision bf16 unavailable" logA; then
  echo "no bf16 products here ($(grep -m1 -o 'precision bf16 unavailable[^;]*' logA)): the runs take the emulation"
  export PVLM_BF16_EMULATE=1
  set +e; pretrain 2 --precision bf16 --steps 6 --ckpt-every 0 --metrics mA.jsonl --ckpt-dir ckA 2>logA; rc=$?; set -e
  grep -q "bf16 is emulated" logA || fail "the emulated run does not say so: $(tail -3 logA)"
fi
[ $rc -eq 0 ] || fail "uninterrupted bf16 run failed: $(tail -3 logA)"
set +e; pretrain 2 --precision bf16 --steps 6 --ckpt-every 0 --metrics mB.jsonl --ckpt-dir ckB --stop-at-step 3 2>logB1
rc=$?; set -e
[ $rc -eq 3 ] || fail "stop should exit 3, got $rc: $(tail -3 logB1)"
pretrain 2 --precision bf16 --steps 6 --ckpt-every 0 --metrics mB.jsonl --ckpt-dir ckB 2>logB2 ||
  fail "bf16 resume failed: $(tail -3 logB2)"
grep -q "resumed at step 3" logB2 || fail "did not resume from step 3"
same_files ckA/step_00000006 ckB/step_00000006 model.safetensors optim.safetensors
"$PY" - <<'PY' || fail "losses differ"
import json, sys
a = [json.loads(l) for l in open("mA.jsonl")]
b = [json.loads(l) for l in open("mB.jsonl")]
assert [x["step"] for x in a] == list(range(6)) and [x["step"] for x in b] == list(range(6))
for x, y in zip(a, b):
    for k in ("loss", "grad_norm", "ntok"):
        if x[k] != y[k]:
            sys.exit("step %d %s: %r != %r" % (x["step"], k, x[k], y[k]))
PY
# bf16 really ran: its losses are not fp32's
pretrain 2 --steps 6 --ckpt-every 0 --metrics mF.jsonl --ckpt-dir ckF 2>logF || fail "fp32 run failed"
"$PY" -c '
import json, sys
a = [json.loads(l)["loss"] for l in open("mA.jsonl")]; f = [json.loads(l)["loss"] for l in open("mF.jsonl")]
print("bf16 losses", a); print("fp32 losses", f)
sys.exit(0 if a != f and all(abs(x - y) <= 0.05 * y for x, y in zip(a, f)) else 1)' || fail "bf16 losses equal fp32's or far from them"
pass "bf16: stop at 3 + resume == uninterrupted (params, moments, losses bit-identical)"
