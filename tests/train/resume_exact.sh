#!/usr/bin/env bash
# resume_exact: a run stopped at step k and resumed gives bit-identical losses, parameters and
# optimizer state to an uninterrupted run (same world size and threads), with plain DP and ZeRO-1;
# --config JSON gives the same run as flags; resuming on another number of ranks works.
source "$(dirname "$0")/lib.sh"

# A: uninterrupted, settings from a --config file
cat > cfg.json <<'JSON'
{"steps": 8, "ckpt-every": 0, "metrics": "mA.jsonl", "ckpt-dir": "ckA"}
JSON
pretrain 2 --config cfg.json 2>logA || fail "uninterrupted run failed: $(tail -3 logA)"
grep -q '"ckpt-dir": "ckA"' logA || fail "resolved settings not printed"
grep -q '"steps": 8' ckA/step_00000008/state.json || fail "settings not stored in state.json"

# B: stopped after step 3 (exit 3, as on a preemption signal), then resumed
set +e; pretrain 2 --steps 8 --ckpt-every 0 --metrics mB.jsonl --ckpt-dir ckB --stop-at-step 3 2>logB1; rc=$?; set -e
[ $rc -eq 3 ] || fail "stop should exit 3, got $rc: $(tail -3 logB1)"
[ "$(cat ckB/latest)" = step_00000003 ] || fail "no checkpoint at step 3"
pretrain 2 --steps 8 --ckpt-every 0 --metrics mB.jsonl --ckpt-dir ckB 2>logB2 || fail "resume failed: $(tail -3 logB2)"
grep -q "resumed at step 3" logB2 || fail "did not resume from step 3"
same_files ckA/step_00000008 ckB/step_00000008 model.safetensors optim.safetensors
"$PY" - <<'PY' || fail "losses differ"
import json, sys
a = [json.loads(l) for l in open("mA.jsonl")]
b = [json.loads(l) for l in open("mB.jsonl")]
assert [x["step"] for x in a] == list(range(8)), [x["step"] for x in a]
assert [x["step"] for x in b] == list(range(8)), [x["step"] for x in b]
for x, y in zip(a, b):
    for k in ("loss", "loss_img", "loss_txt", "grad_norm", "lr", "ntok"):
        if x[k] != y[k]:
            sys.exit("step %d %s: %r != %r" % (x["step"], k, x[k], y[k]))
PY
pass "plain DP: stop at 3 + resume == uninterrupted (params, moments, losses bit-identical)"

# Z: the same with ZeRO-1 (per-rank optimizer shards)
pretrain 2 --zero1 --steps 8 --ckpt-every 0 --ckpt-dir ckZA 2>logZA || fail "zero1 run failed"
set +e; pretrain 2 --zero1 --steps 8 --ckpt-every 0 --ckpt-dir ckZB --stop-at-step 5 2>logZB1; rc=$?; set -e
[ $rc -eq 3 ] || fail "zero1 stop should exit 3, got $rc"
pretrain 2 --zero1 --steps 8 --ckpt-every 0 --ckpt-dir ckZB 2>logZB2 || fail "zero1 resume failed"
same_files ckZA/step_00000008 ckZB/step_00000008 model.safetensors optim-rank00000.safetensors optim-rank00001.safetensors
# ZeRO-1 == plain DP (same data, same world size): parameters within float rounding
"$PY" - <<'PY' || fail "ZeRO-1 parameters differ from plain DP"
import json, struct, sys
def load(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); d = b[8 + n:]
    out = {}
    for k, v in h.items():
        if k == "__metadata__": continue
        s, e = v["data_offsets"]; out[k] = struct.unpack("<%df" % ((e - s) // 4), d[s:e])
    return out
a = load("ckA/step_00000008/model.safetensors"); z = load("ckZA/step_00000008/model.safetensors")
num = sum((x - y) ** 2 for k in a for x, y in zip(a[k], z[k])); den = sum(x * x for k in a for x in a[k])
print("zero1 vs plain relative L2 difference: %.3g" % (num / den) ** 0.5)
sys.exit(0 if (num / den) ** 0.5 <= 1e-6 else 1)
PY
pass "ZeRO-1: stop at 5 + resume == uninterrupted; ZeRO-1 == plain DP"

# W: a 2-rank ZeRO-1 checkpoint resumed on 3 ranks (ZeRO-1) and on 1 rank (plain): optimizer re-sliced
cp -r ckZB ckW3; cp -r ckZB ckW1
rm -rf ckW3/step_00000008 ckW1/step_00000008; echo step_00000005 > ckW3/latest; echo step_00000005 > ckW1/latest
pretrain 3 --zero1 --steps 8 --ckpt-every 0 --ckpt-dir ckW3 2>logW3 || fail "resume on 3 ranks failed: $(tail -3 logW3)"
grep -q "written by 2 ranks, now 3" logW3 || fail "world-size change not reported"
[ -f ckW3/step_00000008/optim-rank00002.safetensors ] || fail "3-rank run wrote no third optimizer shard"
pretrain 1 --steps 8 --ckpt-every 0 --ckpt-dir ckW1 2>logW1 || fail "resume on 1 rank failed: $(tail -3 logW1)"
grep -q '"world_size": 1' ckW1/step_00000008/state.json || fail "state.json world size"
pass "resume on 3 and on 1 rank(s) from a 2-rank ZeRO-1 checkpoint"

# The metrics of the interrupted+resumed run plot (scripts/plot_metrics.py, Debian matplotlib)
if "$PY" -c "import matplotlib" 2>/dev/null; then
  "$PY" "$PVLM_SOURCE_DIR/scripts/plot_metrics.py" mB.jsonl curves.png --smooth 2 >/dev/null || fail "plot_metrics.py failed"
  [ "$(head -c 4 curves.png | od -An -c | tr -d ' ')" = "211PNG" ] || fail "plot_metrics.py wrote no PNG"
  pass "plot_metrics.py drew the curves"
fi
