#!/usr/bin/env bash
# demo.sh - the README's main command: a fresh Debian 12 machine to a pretrained model and zero-shot
# results on real data, in one go (issue 9). Steps:
#   1. install dependencies, build
#   2. real data: emoji images + names from the emoji-datasource-{apple,twitter,facebook,google} npm
#      packages (train on three vendors' art styles, hold out google), WordNet glosses (Debian's
#      wordnet-base) as C4-format JSON lines
#   3. tokenizer, LMDB image shards, zstd text shards
#   4. pretrain on 2 MPI ranks with checkpoints; the job is stopped with SIGUSR1 mid-run (as Slurm's
#      --signal does before a preemption) and restarted with --resume auto
#   5. zero-shot captioning and VQA on the held-out vendor, scored with pvlm score, beside two
#      baselines measured the same way (the most frequent training caption / answer, and the same
#      model before pretraining); results table, loss curve PNG and a Markdown report
# Everything goes to $OUT (default ./demo-out). Re-running reuses downloads, data and shards.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${OUT:-$ROOT/demo-out}
STEPS=${STEPS:-2400}          # optimizer steps (global batch 2 ranks x MICRO)
MICRO=${MICRO:-32}
STOP_AT=${STOP_AT:-$((STEPS / 2))}
JOBS=$(nproc)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPIRUN=(mpirun -np 2 --bind-to none)
T0=$(date +%s)
say() { printf '\n[demo %4ds] %s\n' $(( $(date +%s) - T0 )) "$*"; }

say "1/5 dependencies and build"
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DPVLM_BUILD_TESTS=OFF -DPVLM_BUILD_BENCH=OFF >/dev/null
cmake --build build -j"$JOBS" --target pvlm >/dev/null
PVLM=$ROOT/build/cli/pvlm

say "2/5 real data (npm emoji packages, WordNet)"
mkdir -p "$OUT/npm"
for v in apple twitter facebook google; do
  f="$OUT/npm/emoji-datasource-$v-16.0.0.tgz"
  [ -s "$f" ] || (cd "$OUT/npm" && npm pack --silent "emoji-datasource-$v@16.0.0" >/dev/null)
done
[ -s "$OUT/data/summary.json" ] || /usr/bin/python3 scripts/demo_data.py --npm-dir "$OUT/npm" --out "$OUT/data" --holdout google >/dev/null
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
"$PVLM" shard text --input "$D/c4-train.00000-of-00001.json.zst" --out "$OUT/shards/txt" 2>&1 | tail -1

say "4/5 pretraining on 2 MPI ranks (stopped at step $STOP_AT with SIGUSR1, then resumed)"
MODEL=(--image-size 32 --patch-size 4 --d-model 192 --n-heads 6 --d-ff 768 --enc-layers 3 --dec-layers 3
       --prefix-len 16 --suffix-len 16)
TRAIN=(--images "$OUT/shards/img/manifest.json" --text "$OUT/shards/txt/manifest.json" --text-ratio 0.25
       --tokenizer "$OUT/tok" "${MODEL[@]}" --micro-batch "$MICRO" --steps "$STEPS" --warmup 100 --lr 2e-3
       --min-lr-ratio 0.05 --weight-decay 0.01 --ckpt-dir "$OUT/run" --ckpt-every 200 --keep-last 2
       --log-every 100 --threads 1 --metrics "$OUT/metrics.jsonl")
# the same model before pretraining: one step with learning rate 0 writes the initial weights
[ -d "$OUT/init" ] || "${MPIRUN[@]}" "$PVLM" pretrain "${TRAIN[@]}" --steps 1 --lr 0 --warmup 0 \
  --ckpt-dir "$OUT/init" --metrics /dev/null >/dev/null 2>&1
if [ ! -f "$OUT/run/done" ]; then
  rc=0
  "${MPIRUN[@]}" "$PVLM" pretrain "${TRAIN[@]}" --stop-at-step "$STOP_AT" 2>&1 | grep -E "step .*/|checkpoint:|resume|done|stop" || true
  rc=${PIPESTATUS[0]}
  echo "first job exited with code $rc (3 = stopped after a checkpoint, as on preemption)"
  "${MPIRUN[@]}" "$PVLM" pretrain "${TRAIN[@]}" --resume auto 2>&1 | grep -E "step .*/|checkpoint:|resume|done" || true
  [ "${PIPESTATUS[0]}" -eq 0 ] && touch "$OUT/run/done"
fi
/usr/bin/python3 scripts/plot_metrics.py "$OUT/metrics.jsonl" --out "$OUT/loss.png" || true

say "5/5 zero-shot evaluation on the held-out vendor (google)"
EV=$OUT/eval; mkdir -p "$EV"
for m in run init; do
  "${MPIRUN[@]}" "$PVLM" caption --ckpt "$OUT/$m" --annotations "$D/test_captions.json" --images "$D/images" \
    --out "$EV/captions_$m.json" --batch-size 64 --threads 1 2>&1 | grep wrote || true
  "${MPIRUN[@]}" "$PVLM" vqa --ckpt "$OUT/$m" --questions "$D/test_questions.json" --images "$D/images" \
    --image-list "$D/test_captions.json" --out "$EV/vqa_$m.json" --batch-size 64 --threads 1 2>&1 | grep wrote || true
done
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
score "$EV/captions_run.json" > "$EV/score_run.json"
score "$EV/captions_init.json" > "$EV/score_init.json"
score "$D/baseline_most_frequent.json" > "$EV/score_frequent.json"
vqa "$EV/vqa_run.json" > "$EV/vqa_score_run.json"
vqa "$EV/vqa_init.json" > "$EV/vqa_score_init.json"
vqa "$EV/vqa_prior.json" > "$EV/vqa_score_prior.json"

/usr/bin/python3 - "$OUT" "$D" "$EV" "$T0" <<'PY'
import json, os, shutil, sys, time
out, d, ev, t0 = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
L = lambda p: json.load(open(p))
rows = [("pvlm pretrained (this run)", "score_run.json", "vqa_score_run.json"),
        ("same model before pretraining", "score_init.json", "vqa_score_init.json"),
        ("most frequent training caption / answer prior", "score_frequent.json", "vqa_score_prior.json")]
def vqa_overall(j):
    return j.get("overall", j.get("accuracy", {}).get("overall") if isinstance(j.get("accuracy"), dict) else j.get("accuracy"))
lines = ["| model | CIDEr-D | BLEU-4 | ROUGE-L | VQA accuracy |", "|---|---|---|---|---|"]
for name, cs, vs in rows:
    c, v = L(f"{ev}/{cs}"), L(f"{ev}/{vs}")
    lines.append(f"| {name} | {100*c['CIDEr']:.2f} | {100*c['Bleu_4']:.2f} | {100*c['ROUGE_L']:.2f} | {vqa_overall(v)} |")
table = "\n".join(lines)
print("\nZero-shot on held-out google emoji (%d images, %d questions); CIDEr-D/BLEU/ROUGE x100\n" % (
      L(f"{ev}/score_run.json")["n_images"], len(L(f"{d}/test_questions.json")["questions"])))
print(table)
# report with example images
rep = os.path.join(out, "report"); os.makedirs(rep, exist_ok=True)
test = L(f"{d}/test_captions.json"); refs = {}
for a in test["annotations"]:
    refs.setdefault(a["image_id"], []).append(a["caption"])
files = {im["id"]: im["file_name"] for im in test["images"]}
gen = {r["image_id"]: r["caption"] for r in L(f"{ev}/captions_run.json")}
ex = ["| image | generated (pretrained) | references |", "|---|---|---|"]
ids = sorted(gen)[:: max(1, len(gen) // 16)][:16]
for i in ids:
    shutil.copy(os.path.join(d, "images", files[i]), os.path.join(rep, os.path.basename(files[i])))
    ex.append(f"| ![]({os.path.basename(files[i])}) | {gen[i]} | {' / '.join(refs[i][:3])} |")
with open(os.path.join(rep, "report.md"), "w") as f:
    f.write("# pvlm demo report\n\nZero-shot captioning and VQA of held-out google-style emoji after pretraining on "
            "apple, twitter and facebook emoji plus WordNet text.\n\n" + table + "\n\n![loss](../loss.png)\n\n## Examples\n\n"
            + "\n".join(ex) + f"\n\nWall time of the demo: {time.time() - t0:.0f} s.\n")
print(f"\nreport: {rep}/report.md   loss curve: {out}/loss.png   total {time.time() - t0:.0f} s")
PY
