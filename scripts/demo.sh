#!/usr/bin/env bash
# demo.sh - the README's main command: a fresh Debian 12 machine to a pretrained model and zero-shot
# results on real data, in one go. Steps:
#   1. install dependencies, build
#   2. real data: emoji images + names from the emoji-datasource-{apple,twitter,facebook,google} npm
#      packages (train on three vendors' art styles, hold out $HOLDOUT, default google), WordNet glosses
#      (Debian's wordnet-base) as C4-format JSON lines
#   3. tokenizer, LMDB image shards (training, and a validation split of held-out images), zstd text shards
#   4. pretrain on 2 MPI ranks with checkpoints and held-out evaluation every $EVAL_EVERY steps (validation
#      loss and CIDEr-D, a `best` checkpoint pointer); progress lines are shown live; the job is stopped
#      with SIGUSR1 mid-run (as Slurm's --signal does before a preemption) and restarted with --resume auto
#   5. zero-shot captioning and VQA on the held-out vendor (concepts seen in other styles) and captioning
#      of concepts never seen in any style, scored with pvlm score, beside baselines measured the same
#      way (scripts/demo_baselines.py: the strongest constant caption per metric, chosen on the
#      validation split; the nearest training image by pixels; the VQA answer prior; the same model
#      before pretraining); results tables, loss curve PNG and a Markdown report
# Everything goes to $OUT (default ./demo-out); the build to $BUILD (default ./build). Re-running reuses
# downloads, data, shards and a finished training run (an unfinished one resumes from its checkpoint).
# The recipe can be changed through the environment (HOLDOUT, STEPS, MICRO, PATCH, LR, WARMUP, TEXT_RATIO,
# STOP_AT, N_TEST, EVAL_EVERY); docs/results.md has the numbers and wall time of the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${OUT:-$ROOT/demo-out}
# Recipe (docs/results.md "recipe search"): sized so that the whole demo, install and build included,
# ends well inside 20 minutes on 2 cores.
STEPS=${STEPS:-1500}          # optimizer steps (global batch 2 ranks x MICRO)
MICRO=${MICRO:-32}
PATCH=${PATCH:-8}
LR=${LR:-2e-3}
WARMUP=${WARMUP:-100}
TEXT_RATIO=${TEXT_RATIO:-0.1}
STOP_AT=${STOP_AT:-$((STEPS / 2))}
N_TEST=${N_TEST:-300}         # held-out images evaluated (evenly spaced over the emoji order)
HOLDOUT=${HOLDOUT:-google}    # the vendor whose art style is held out: google|twitter|apple|facebook
EVAL_EVERY=${EVAL_EVERY:-250} # held-out evaluation during training (validation split, never the test split)
JOBS=$(nproc)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPIRUN=(mpirun -np 2 --bind-to none)
T0=$(date +%s)
say() { printf '\n[demo %4ds] %s\n' $(( $(date +%s) - T0 )) "$*"; }

say "1/5 dependencies and build"
scripts/install-deps.sh
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DPVLM_BUILD_TESTS=OFF -DPVLM_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target pvlm >/dev/null   # warnings (there should be none) still show
PVLM=$(cd "$BUILD" && pwd)/cli/pvlm

say "2/5 real data (npm emoji packages, WordNet)"
mkdir -p "$OUT/npm"
for v in apple twitter facebook google; do
  f="$OUT/npm/emoji-datasource-$v-16.0.0.tgz"
  [ -s "$f" ] || (cd "$OUT/npm" && npm pack --silent "emoji-datasource-$v@16.0.0" >/dev/null)
done
# the data of another held-out vendor is rebuilt (and so is everything trained on it)
if [ -s "$OUT/data/summary.json" ] && ! grep -q "\"holdout\": \"$HOLDOUT\"" "$OUT/data/summary.json"; then
  rm -rf "$OUT/data" "$OUT/tok" "$OUT/shards" "$OUT/run" "$OUT/init" "$OUT/eval" "$OUT/baselines" "$OUT/metrics.jsonl"
fi
[ -s "$OUT/data/summary.json" ] || /usr/bin/python3 scripts/demo_data.py --npm-dir "$OUT/npm" --out "$OUT/data" \
  --holdout "$HOLDOUT" --max-test "$N_TEST" >/dev/null
cat "$OUT/data/summary.json"
D=$OUT/data

say "3/5 tokenizer and shards"
if [ ! -s "$OUT/tok/encoder.json" ]; then
  /usr/bin/python3 - "$D" <<'PY'
import json, sys
d = sys.argv[1]
caps = [a["caption"] for a in json.load(open(f"{d}/train_captions.json"))["annotations"]]
open(f"{d}/tokenizer_corpus.txt", "w").write("\n".join(caps) + "\n")
PY
  zstdcat "$D/c4-train.00000-of-00001.json.zst" | /usr/bin/python3 -c '
import json, sys
for i, line in enumerate(sys.stdin):
    if i % 4 == 0: print(json.loads(line)["text"])' >> "$D/tokenizer_corpus.txt"
  "$PVLM" tokenizer train --vocab-size 4096 --out "$OUT/tok" "$D/tokenizer_corpus.txt"
fi
"$PVLM" shard images --coco "$D/train_captions.json" --images "$D/images" --out "$OUT/shards/img" \
  --image-size 32 --store raw --shards 4 2>&1 | tail -1
"$PVLM" shard images --coco "$D/val_captions.json" --images "$D/images" --out "$OUT/shards/val" \
  --image-size 32 --store raw --shards 1 --shuffle 0 2>&1 | tail -1
"$PVLM" shard text --input "$D/c4-train.00000-of-00001.json.zst" --out "$OUT/shards/txt" 2>&1 | tail -1

say "4/5 pretraining on 2 MPI ranks (stopped at step $STOP_AT with SIGUSR1, then resumed)"
MODEL=(--image-size 32 --patch-size "$PATCH" --d-model 192 --n-heads 6 --d-ff 768 --enc-layers 3 --dec-layers 3
       --prefix-len 16 --suffix-len 16)
TRAIN=(--images "$OUT/shards/img/manifest.json" --text "$OUT/shards/txt/manifest.json" --text-ratio "$TEXT_RATIO"
       --tokenizer "$OUT/tok" "${MODEL[@]}" --micro-batch "$MICRO" --steps "$STEPS" --warmup "$WARMUP" --lr "$LR"
       --min-lr-ratio 0.05 --weight-decay 0.01 --ckpt-dir "$OUT/run" --ckpt-every "$EVAL_EVERY" --keep-last 2
       --log-every 50 --threads 1 --peak-gflops 0 --metrics "$OUT/metrics.jsonl")
# held-out evaluation on the validation split: loss on its 100 images, CIDEr-D of their zero-shot captions
EVAL=(--val-images "$OUT/shards/val/manifest.json" --eval-every "$EVAL_EVERY" --val-samples 100 --eval-captions 100
      --best-metric cider)
# the same model before pretraining: one step with learning rate 0 writes the initial weights
[ -d "$OUT/init" ] || "${MPIRUN[@]}" "$PVLM" pretrain "${TRAIN[@]}" --steps 1 --lr 0 --warmup 0 \
  --ckpt-dir "$OUT/init" --metrics /dev/null >"$OUT/init.log" 2>&1
# The lines a newcomer wants, as they come (rank 0's log lines only, so the settings JSON stays out):
# progress (step, loss, throughput, ETA), evaluations, checkpoints, stop and resume.
filter() {
  grep --line-buffered -E "(INFO|WARN|ERROR) +(step [0-9]+/|eval step|best:|checkpoint:|resum|done:|stop requested)|Forwarding signal|ERROR" |
    sed -u -E 's/^\[rank [0-9]+\] +//; s/ \| lr [^|]*\| gnorm [^|]*\|/ |/; s/ \| [0-9]+ tok\/s \| MFU [^|]*\| data [^|]*\| comm [^|]*\| skipped [0-9]+//;
              s/ of the step time since the previous evaluation \(([0-9.]+%) of all step time\)/ of step time (\1 overall)/'
}
# train LOG ARGS...: one training job on 2 ranks, its filtered log shown live; returns the job's exit code
train() {
  local log=$1; shift
  "${MPIRUN[@]}" "$PVLM" pretrain "${TRAIN[@]}" "${EVAL[@]}" "$@" >"$log" 2>&1 &
  job=$!
  tail --pid="$job" -n +1 -F "$log" 2>/dev/null | filter &
  tailer=$!
}
# steps finished so far: rank 0 appends one metrics line per step, whose "step" field is the 0-based
# index of the step (the progress line and the checkpoint names count finished steps: index + 1);
# evaluation records ({"kind": "eval", ...}) do not start with "step"
last_step() {
  local s; s=$(grep '^{"step":' "$OUT/metrics.jsonl" 2>/dev/null | tail -n 1 | sed -n 's/^{"step":\([0-9]*\),.*/\1/p' || true)
  if [ -n "$s" ]; then echo $((s + 1)); else echo 0; fi
}
if [ ! -f "$OUT/run/done" ]; then
  rm -f "$OUT/metrics.jsonl"
  # First job: in the background, as a scheduler would run it. When it has done $STOP_AT steps, send
  # SIGUSR1 to mpirun, which forwards it to the ranks ("mpirun: Forwarding signal 10 to job", as Slurm's
  # --signal=B:USR1 would); the ranks agree on the stop, finish the step, checkpoint and exit with 3.
  t_train=$(date +%s)
  train "$OUT/train1.log"
  deadline=$(( $(date +%s) + 3600 ))
  while kill -0 "$job" 2>/dev/null && [ "$(last_step)" -lt "$STOP_AT" ] && [ "$(date +%s)" -lt "$deadline" ]; do
    sleep 1
  done
  signalled=0
  sent_at=$(last_step)
  if kill -0 "$job" 2>/dev/null; then kill -USR1 "$job" && signalled=1; fi
  rc=0; wait "$job" || rc=$?
  wait "$tailer" || true
  echo "first job: SIGUSR1 sent at step $sent_at, checkpointed at step $(last_step), exit code $rc (3 = stopped after a checkpoint, as on preemption)"
  if [ "$signalled" -ne 1 ] || [ "$rc" -ne 3 ]; then
    # The signal did not stop the job as documented (it ended early or failed): show why and stop here
    # rather than report numbers of a run that was not interrupted and resumed.
    tail -n 20 "$OUT/train1.log" >&2; echo "demo: first training job did not stop with code 3" >&2; exit 1
  fi
  train "$OUT/train2.log" --resume auto
  rc=0; wait "$job" || rc=$?
  wait "$tailer" || true
  [ "$rc" -eq 0 ] || { tail -n 20 "$OUT/train2.log" >&2; echo "demo: resumed training job failed" >&2; exit 1; }
  echo "{\"train_s\": $(( $(date +%s) - t_train ))}" > "$OUT/run/train_time.json"
  touch "$OUT/run/done"
fi
/usr/bin/python3 scripts/plot_metrics.py "$OUT/metrics.jsonl" "$OUT/loss.png" --smooth 20

say "5/5 zero-shot evaluation on the held-out vendor ($HOLDOUT)"
EV=$OUT/eval; mkdir -p "$EV"
# Decoding (docs/results.md "recipe search"): greedy with pvlm caption's trigram repetition guard (beam 3
# scored lower on the trained model); the same for every model.
CAPTION_DEC=(--beam 1 --no-repeat-ngram 3 --max-len 20)
VQA_DEC=(--max-len 8)
run_eval() { # kind model out log split [decoding flags...]
  local kind=$1 m=$2 out=$3 log=$4 split=$5; shift 5
  if [ "$kind" = caption ]; then
    "${MPIRUN[@]}" "$PVLM" caption --ckpt "$OUT/$m" --annotations "$D/${split}_captions.json" --images "$D/images" \
      --out "$out" --tokenizer "$OUT/tok" --batch-size 64 --threads 1 "$@" >"$log" 2>&1
  else
    "${MPIRUN[@]}" "$PVLM" vqa --ckpt "$OUT/$m" --questions "$D/test_questions.json" --images "$D/images" \
      --image-list "$D/test_captions.json" --out "$out" --tokenizer "$OUT/tok" --batch-size 64 --threads 1 \
      "$@" >"$log" 2>&1
  fi
}
for m in run init; do
  for kind in caption vqa novel; do
    case $kind in
      caption) args=(caption "$m" "$EV/captions_$m.json" "$EV/caption_$m.log" test "${CAPTION_DEC[@]}") ;;
      vqa) args=(vqa "$m" "$EV/vqa_$m.json" "$EV/vqa_$m.log" test "${VQA_DEC[@]}") ;;
      novel) args=(caption "$m" "$EV/novel_$m.json" "$EV/novel_$m.log" novel "${CAPTION_DEC[@]}") ;;
    esac
    run_eval "${args[@]}" || { tail -n 5 "${args[3]}" >&2; exit 1; }
    grep -h "wrote" "${args[3]}" | cut -c1-150 || true
  done
done
# baselines: strongest constant caption per metric (chosen on the validation split) and nearest neighbour
[ -s "$OUT/baselines/baselines.json" ] && [ -s "$OUT/baselines/ceiling_test.json" ] || /usr/bin/python3 scripts/demo_baselines.py "$PVLM" "$D" "$OUT/baselines"
/usr/bin/python3 - "$D" "$EV" <<'PY'
import collections, json, sys
d, ev = sys.argv[1], sys.argv[2]
q = json.load(open(f"{d}/test_questions.json"))["questions"]
# most frequent answer per question type in the *training* metadata = the answer prior
train_caps = [a["caption"] for a in json.load(open(f"{d}/train_captions.json"))["annotations"]]
prior = {}
for qt in ("what is this?", "what category is this?", "what kind of emoji is this?"):
    answers = [c.split(" answer: ", 1)[1] for c in train_caps if c.startswith(f"question: {qt} answer: ")]
    prior[qt] = collections.Counter(answers).most_common(1)[0][0]
json.dump([{"question_id": x["question_id"], "answer": prior[x["question"]]} for x in q], open(f"{ev}/vqa_prior.json", "w"))
PY
score() { "$PVLM" score captions --annotations "$D/test_captions.json" --results "$1" --json 2>/dev/null; }
vqa() { "$PVLM" score vqa --questions "$D/test_questions.json" --annotations "$D/test_annotations.json" --results "$1" --json 2>/dev/null; }
novel() { "$PVLM" score captions --annotations "$D/novel_captions.json" --results "$1" --json 2>/dev/null; }
for m in run init; do score "$EV/captions_$m.json" > "$EV/score_$m.json"; novel "$EV/novel_$m.json" > "$EV/novel_score_$m.json"; done
for b in constant_cider constant_bleu4 constant_rouge_l nn ceiling; do
  score "$OUT/baselines/${b}_test.json" > "$EV/score_$b.json"
  novel "$OUT/baselines/${b}_novel.json" > "$EV/novel_score_$b.json"
done
vqa "$EV/vqa_run.json" > "$EV/vqa_score_run.json"
vqa "$EV/vqa_init.json" > "$EV/vqa_score_init.json"
vqa "$EV/vqa_prior.json" > "$EV/vqa_score_prior.json"

/usr/bin/python3 - "$OUT" "$D" "$EV" "$T0" <<'PY'
import json, os, shutil, sys, time
out, d, ev, t0 = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
L = lambda p: json.load(open(p))
summ = L(f"{d}/summary.json")
hold = summ["holdout"]
# pvlm score captions --json: Bleu_4, ROUGE_L, CIDEr as fractions (x100 here, as papers print them);
# pvlm score vqa --json: overall, perQuestionType already in percent (official rounding).
keys = (("CIDEr", "CIDEr-D", "constant_cider"), ("Bleu_4", "BLEU-4", "constant_bleu4"), ("ROUGE_L", "ROUGE-L", "constant_rouge_l"))
qtypes = ("what is this", "what category is this", "what kind of")
base = L(f"{out}/baselines/baselines.json")["constant"]
def cap_row(name, files, vqa=None):
    cells = [f"{100 * L(f)[k]:.2f}" for (k, _, _), f in zip(keys, files)]
    if vqa is not None:
        v = L(vqa)
        cells += [f"{v['overall']:.2f}"] + [f"{v['perQuestionType'].get(t, 0.0):.2f}" for t in qtypes]
    return cells
def table(prefix, with_vqa):
    hdr = "| model | " + " | ".join(k[1] for k in keys) + (" | VQA acc | VQA what is this | VQA category | VQA subcategory |" if with_vqa else " |")
    rows = [hdr, "|" + "---|" * (hdr.count("|") - 1)]
    model = {}
    spec = [("pvlm pretrained (this run)", [f"{ev}/{prefix}_run.json"] * 3, f"{ev}/vqa_score_run.json"),
            ("same model before pretraining", [f"{ev}/{prefix}_init.json"] * 3, f"{ev}/vqa_score_init.json"),
            ("strongest constant caption per metric (chosen on validation) / answer prior",
             [f"{ev}/{prefix}_{c}.json" for _, _, c in keys], f"{ev}/vqa_score_prior.json"),
            ("nearest training image by pixels (its caption)", [f"{ev}/{prefix}_nn.json"] * 3, None)]
    ceil = [100 * L(f"{ev}/{prefix}_ceiling.json")[k] for k, _, _ in keys]
    for name, files, vqa in spec:
        cells = cap_row(name, files, vqa if with_vqa else None)
        if with_vqa and vqa is None:
            cells += ["-"] * 4
        model[name] = [float(c) for c in cells[:3]]
        rows.append(f"| {name if with_vqa else name.replace(' / answer prior', '')} | " + " | ".join(cells) + " |")
    m = model["pvlm pretrained (this run)"]
    others = [v for k, v in model.items() if not k.startswith("pvlm")]
    beats = all(m[i] > o[i] for o in others for i in range(3))
    best_cider = max(o[0] for o in others)
    verdict = ("the pretrained model beats every baseline on every caption metric" if beats else
               "the pretrained model does NOT beat every baseline on every caption metric") + \
        f"; CIDEr-D {m[0]:.2f} = {m[0] / best_cider if best_cider > 0 else float('inf'):.2f}x the best baseline's {best_cider:.2f}" + \
        f" (2x that baseline = {200 * best_cider / ceil[0]:.0f}% of the ceiling {ceil[0]:.2f})"
    rows.append("| ceiling: each image's own first reference (not a baseline) | " +
                " | ".join(f"{c:.2f}" for c in ceil) + (" | - | - | - | - |" if with_vqa else " |"))
    return "\n".join(rows), verdict
t1, v1 = table("score", True)
t2, v2 = table("novel_score", False)
consts = "; ".join(f"{n}: \"{base[c[len('constant_'):]]['caption']}\"" for _, n, c in keys)
head1 = (f"Zero-shot on held-out {hold}-style emoji of concepts seen in other styles ({L(f'{ev}/score_run.json')['n_images']} "
         f"images, {L(f'{ev}/vqa_score_run.json')['n_questions']} questions); CIDEr-D, BLEU-4, ROUGE-L x100; VQA accuracy in %")
head2 = (f"Zero-shot captioning of concepts never seen in any style ({L(f'{ev}/novel_score_run.json')['n_images']} "
         f"{hold}-style images of concepts left out of training for every vendor); x100")
text = f"{head1}\n\n{t1}\n\n{v1}. Constant captions: {consts}.\n\n{head2}\n\n{t2}\n\n{v2}.\n"
print("\n" + text)
# wall time: recorded by the run that trained; a rerun that reuses the training says so instead of overwriting it
rec = os.path.join(out, "run", "demo_time.json")
trained_now = os.path.getmtime(os.path.join(out, "run", "train_time.json")) >= t0
now = time.time() - t0
if trained_now or not os.path.exists(rec):
    json.dump({"total_s": round(now), **L(os.path.join(out, "run", "train_time.json"))}, open(rec, "w"))
    wall = f"Wall time of the demo: {now:.0f} s (training {L(rec)['train_s']} s)."
else:
    r = L(rec)
    wall = f"Wall time of the demo run that trained: {r['total_s']} s (training {r['train_s']} s); this rerun took {now:.0f} s."
# report with example images, generated captions (pretrained and before pretraining) and references
rep = os.path.join(out, "report"); os.makedirs(rep, exist_ok=True)
shutil.copy(os.path.join(out, "loss.png"), os.path.join(rep, "loss.png"))
test = L(f"{d}/test_captions.json"); refs = {}
for a in test["annotations"]:
    refs.setdefault(a["image_id"], []).append(a["caption"])
files = {im["id"]: im["file_name"] for im in test["images"]}
gen = {r["image_id"]: r["caption"] for r in L(f"{ev}/captions_run.json")}
gen0 = {r["image_id"]: r["caption"] for r in L(f"{ev}/captions_init.json")}
nn = {r["image_id"]: r["caption"] for r in L(f"{out}/baselines/nn_test.json")}
qs = {x["question_id"]: x for x in L(f"{d}/test_questions.json")["questions"]}
ans = {x["question_id"]: x["multiple_choice_answer"] for x in L(f"{d}/test_annotations.json")["annotations"]}
vq = {}
for r in L(f"{ev}/vqa_run.json"):
    q = qs[r["question_id"]]
    vq.setdefault(q["image_id"], []).append(f"{q['question']} **{r['answer']}** ({ans[r['question_id']]})")
ex = ["| image | generated (pretrained) | before pretraining | nearest neighbour | references | VQA: question **answer** (truth) |",
      "|---|---|---|---|---|---|"]
ids = sorted(gen)[:: max(1, len(gen) // 20)][:20]
for i in ids:
    name = files[i].replace("/", "_")
    shutil.copy(os.path.join(d, "images", files[i]), os.path.join(rep, name))
    ex.append(f"| ![]({name}) | {gen[i]} | {gen0[i]} | {nn[i]} | {' / '.join(refs[i][:3])} | {'<br>'.join(vq.get(i, []))} |")
with open(os.path.join(rep, "report.md"), "w") as f:
    f.write(f"# pvlm demo report\n\nZero-shot captioning (prompt \"a picture of\") and VQA of held-out {hold}-style emoji "
            "after pretraining on the other three vendors' emoji plus WordNet glosses as C4-format text.\n\n"
            + text + "\n## Training loss and held-out evaluation\n\n![loss](loss.png)\n\n## Examples\n\n"
            + "\n".join(ex) + f"\n\n{wall}\n")
print(f"\nreport: {rep}/report.md   loss curve: {out}/loss.png   {wall}")
PY
