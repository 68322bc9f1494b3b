#!/usr/bin/env bash
# eval_during_train: `pvlm pretrain --eval-every` (pretrain/evalloop.h)
#  - does not change training: parameters, optimizer state and every step's loss are bit-identical to
#    the same run without evaluation;
#  - logs the held-out loss per stream, CIDEr-D/BLEU-4 and the cost share to the metrics file and the
#    progress line;
#  - its validation loss equals `pvlm eval-loss` on one process over the same samples (the 2-rank
#    reduction is exact), and so do the caption scores;
#  - --best-metric keeps a `best` pointer that retention (--keep-last 1) does not delete, while
#    `latest` still names the newest checkpoint.
source "$(dirname "$0")/lib.sh"

"$PVLM_SOURCE_DIR/scripts/make-tiny-data.sh" "$PVLM_BIN" val 20 >/dev/null 2>&1 || fail "held-out data"
EV=(--val-images val/img/manifest.json --val-samples 16 --val-seed 5 --eval-every 3 --eval-captions 6)
OFF=(--images val/img/manifest.json --samples 16 --seed 5 --micro-batch 4)
if [ -f val/text/manifest.json ]; then EV+=(--val-text val/text/manifest.json); OFF+=(--text val/text/manifest.json); fi
RUN=(--steps 6 --ckpt-every 3 --keep-last 1)

pretrain 2 "${RUN[@]}" --ckpt-dir ckA --metrics mA.jsonl 2>logA || fail "run without eval: $(tail -3 logA)"
# max mode makes the early, worse checkpoint the best one, so retention has something to spare
pretrain 2 "${RUN[@]}" --ckpt-dir ckB --metrics mB.jsonl "${EV[@]}" --best-metric val_loss_image:max 2>logB ||
  fail "run with eval: $(tail -3 logB)"
same_files ckA/step_00000006 ckB/step_00000006 model.safetensors optim.safetensors
grep -q "eval step 3 | val loss img" logB || fail "no evaluation line: $(grep eval logB | head -3)"
grep -q "of the step time since the previous evaluation" logB || fail "no cost share in the evaluation line"
grep -q "ETA .* | val@3 img" logB || fail "progress line without the held-out loss"
"$PY" - <<'PY' || fail "metrics"
import json, sys
a = [json.loads(l) for l in open("mA.jsonl")]
b = [json.loads(l) for l in open("mB.jsonl")]
steps = [r for r in b if r.get("kind") != "eval"]
evals = [r for r in b if r.get("kind") == "eval"]
assert len(steps) == len(a) == 6, (len(steps), len(a))
for x, y in zip(a, steps):
    for k in ("loss", "loss_img", "loss_txt", "grad_norm", "lr", "ntok"):
        if x[k] != y[k]:
            sys.exit("step %d %s: %r != %r" % (x["step"], k, x[k], y[k]))
assert [e["step"] for e in evals] == [3, 6], evals
for e in evals:
    for k in ("val_loss_image", "cider", "bleu4", "eval_s", "eval_share", "n_captioned"):
        assert k in e, (k, e)
    assert e["val_samples_image"] == 16 and e["val_tokens_image"] > 0 and e["n_captioned"] == 6, e
    assert 0 < e["val_loss_image"] < 20 and e["eval_share"] > 0, e
json.dump(evals, open("evals.json", "w"))
PY
if "$PY" -c "import matplotlib" 2>/dev/null; then
  "$PY" "$PVLM_SOURCE_DIR/scripts/plot_metrics.py" mB.jsonl curves.png --smooth 2 | grep -q "2 evaluations" ||
    fail "plot_metrics.py did not draw the evaluations"
fi
pass "evaluation every 3 steps leaves training bit-identical; metrics, progress lines and the plot carry it"

# offline: the same samples from the checkpoint on one process give the same numbers, exactly
for s in 3 6; do
  "$PVLM_BIN" eval-loss --ckpt ckB/step_0000000$s "${OFF[@]}" --captions 6 --threads 1 >off$s.json 2>offlog$s ||
    [ $s = 3 ] || fail "pvlm eval-loss: $(tail -3 offlog$s)"
done
"$PY" - <<'PY' || fail "offline evaluation differs from the one logged during training"
import json, os, sys
evals = {e["step"]: e for e in json.load(open("evals.json"))}
for s in (3, 6):
    if not os.path.getsize("off%d.json" % s):
        continue  # step 3 may have been pruned (it is kept only as the best)
    off = json.loads(open("off%d.json" % s).read())
    for k in ("val_loss_image", "val_tokens_image", "val_samples_image", "val_loss_text", "val_tokens_text",
              "cider", "bleu4", "n_captioned"):
        if k in evals[s] or k in off:
            if evals[s].get(k) != off.get(k):
                sys.exit("step %d %s: during training %r, offline %r" % (s, k, evals[s].get(k), off.get(k)))
    print("step %d: val_loss_image %.17g == offline" % (s, off["val_loss_image"]))
PY
pass "pvlm eval-loss on 1 process == the 2-rank evaluation during training (loss, tokens, CIDEr-D, BLEU-4)"

# best pointer: names the evaluated checkpoint with the highest image loss, and survives --keep-last 1
"$PY" - <<'PY' || fail "best pointer"
import json, os
evals = json.load(open("evals.json"))
want = max(evals, key=lambda e: e["val_loss_image"])
best = json.load(open("ckB/best"))
assert best["step"] == want["step"] and best["metric"] == "val_loss_image" and best["mode"] == "max", (best, want)
assert best["value"] == want["val_loss_image"], (best, want)
assert os.path.isdir("ckB/" + best["dir"]), "best checkpoint deleted by retention"
steps = sorted(d for d in os.listdir("ckB") if d.startswith("step_"))
assert steps == sorted({"step_00000006", best["dir"]}), steps
print("best", best)
PY
[ "$(cat ckB/latest)" = step_00000006 ] || fail "latest is not the newest checkpoint"
verify_ckpt "ckB/$(sed -n 's/.*"dir": "\(step_[0-9]*\)".*/\1/p' ckB/best)" || fail "best checkpoint does not verify"
pass "best pointer follows --best-metric, survives retention; latest still names the newest"

# usage errors name the flag
set +e
pretrain 1 --steps 2 --eval-every 1 2>logU1; rc1=$?
pretrain 1 --steps 2 --ckpt-dir ckU --eval-every 1 --val-images val/img/manifest.json --best-metric loss 2>logU2; rc2=$?
pretrain 1 --steps 2 --ckpt-dir ckU --eval-every 1 --val-images val/img/manifest.json --best-metric cider 2>logU3; rc3=$?
pretrain 1 --steps 2 --eval-every 1 --val-images val/nothere.json 2>logU4; rc4=$?
pretrain 1 --steps 2 --eval-every 1 --val-images ./data/img/manifest.json 2>logU5; rc5=$?
set -e
[ $rc3 -ne 0 ] && grep -q -- "--best-metric cider: the evaluation does not compute it" logU3 || fail "cider without captions"
[ $rc4 -ne 0 ] && grep -q -- "--val-images val/nothere.json: no such file" logU4 || fail "missing held-out manifest"
[ $rc5 -ne 0 ] && grep -q -- "name a training manifest" logU5 || fail "training data as held-out data"
[ $rc1 -ne 0 ] && grep -q -- "--eval-every needs --val-images" logU1 || fail "--eval-every without held-out data"
[ $rc2 -ne 0 ] && grep -q -- "--best-metric 'loss'" logU2 || fail "unknown --best-metric"
pass "usage errors"
