#!/usr/bin/env bash
# finetune_study.sh - the prompt-tuning study (docs/finetune.md "The study"): CoOp, VPT and CPT against
# a hand-written prompt, a linear probe and full fine-tuning, over shots x seeds on the same splits,
# with every method's learning rate (the probe's L2 weight, the zero-shot row's prompt) chosen on a
# validation split carved from training data, never on the test split.
#
#   scripts/finetune_study.sh            the study: bases, every row, table.md, accuracy_vs_shots.png
#   scripts/finetune_study.sh --smoke    1 shot, 1 seed, tiny bases on synthetic data (ctest finetune_study)
#
# Bases:
#   A (classification, CoOp/VPT): pretrained here on real image-text data, the demo's (scripts/demo.sh)
#     emoji of three vendors (apple, twitter, facebook; npm emoji-datasource-*) with WordNet glosses as
#     text; the task classifies the held-out *google* emoji, never seen in pretraining, into their 9
#     categories. --smoke: synthetic shapes (scripts/make_finetune_data.py) and a tiny base.
#   B (grounding, CPT): pretrained here on CPT-painted synthetic scenes with several objects, where the
#     query names one of them (tests/finetune/make_pretrain_set.py, as the finetune tests' grounding fixture).
# Every stage is cached in $OUT (rerunning continues where it stopped); every run is `nice -n $NICE`
# (default 19: a study yields the CPU to other work; the ctest smoke run uses 0) with one thread per rank. The environment sets the size: SHOTS, SEEDS, STEPS, BATCH, LR_SHOTS (the K of the
# validation runs), ONLY (a regex over row names), GROUND (0 skips the grounding rows), CLASSIFY (0 skips the
# classification rows and base A's pretraining; the shared tokenizer is still built), NP (ranks per run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
PVLM=${PVLM:-$ROOT/build/cli/pvlm}
PY=${PVLM_PYTHON:-/usr/bin/python3}
NP=${NP:-1}
NICE=${NICE:-19}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
if [ "$SMOKE" = 1 ]; then
  OUT=${OUT:-$ROOT/study-smoke}
  SHOTS=${SHOTS:-1}; SEEDS=${SEEDS:-1}; STEPS=${STEPS:-4}; LR_SHOTS=${LR_SHOTS:-1}
else
  OUT=${OUT:-$ROOT/study-out}
  SHOTS=${SHOTS:-1,2,4,8,16}; SEEDS=${SEEDS:-3}; STEPS=${STEPS:-50}; LR_SHOTS=${LR_SHOTS:-4}
fi
BATCH=${BATCH:-4}; ONLY=${ONLY:-.}; GROUND=${GROUND:-1}; CLASSIFY=${CLASSIFY:-1}
STUDY=$ROOT/scripts/finetune_study.py
mkdir -p "$OUT"
T0=$(date +%s)
say() { printf '[study %5ds] %s\n' $(( $(date +%s) - T0 )) "$*"; }
pvlm() { # nice, one thread per rank, NP ranks
  if [ "$NP" = 1 ]; then nice -n "$NICE" "$PVLM" "$@"; else nice -n "$NICE" mpirun -np "$NP" --bind-to none "$PVLM" "$@"; fi
}
logged() { # log-file command...: run quietly, show the log's tail on failure
  local log=$1; shift
  "$@" >"$log" 2>&1 || { tail -n 15 "$log" >&2; echo "finetune_study: failed, see $log" >&2; exit 1; }
}
pretrain() { # out shards-manifest steps micro lr text-manifest|"" model-flags...
  local out=$1 man=$2 steps=$3 micro=$4 lr=$5 txt=$6; shift 6
  [ -f "$out/done" ] && return 0
  local text=(--text-ratio 0)
  [ -n "$txt" ] && text=(--text "$txt" --text-ratio 0.1)
  logged "$out.log" pvlm pretrain --images "$man" "${text[@]}" --tokenizer "$TOK" "$@" --micro-batch "$micro" \
    --steps "$steps" --warmup $((steps / 15 + 1)) --lr "$lr" --min-lr-ratio 0.05 --weight-decay 0.01 \
    --ckpt-dir "$out" --ckpt-every 500 --keep-last 1 --log-every 100 --threads 1 --resume auto
  grep -E "step $steps/" "$out.log" | tail -1 | cut -c1-150
  touch "$out/done"
}

# ---- data and bases ----
say "data and bases (SMOKE=$SMOKE) in $OUT"
SYN=$OUT/synth
[ -s "$SYN/grounding.json" ] || "$PY" scripts/make_finetune_data.py --out "$SYN" --size 32 \
  --n-train "$([ "$SMOKE" = 1 ] && echo 48 || echo 240)" --n-test "$([ "$SMOKE" = 1 ] && echo 24 || echo 96)" --seed 3 >/dev/null
TASKS=$OUT/tasks
mkdir -p "$TASKS"
[ -s "$TASKS/ground_test.json" ] || "$PY" "$STUDY" val-split "$SYN/grounding.json" "$TASKS" --task ground >/dev/null
SCENES=$([ "$SMOKE" = 1 ] && echo 200 || echo 20000)
[ -s "$OUT/pre-ground/pretrain.json" ] || "$PY" tests/finetune/make_pretrain_set.py "$SYN" "$OUT/pre-ground" --scenes "$SCENES" >/dev/null
if [ "$SMOKE" = 1 ]; then
  # synthetic classification (make_finetune_data.py), one tiny tokenizer and base for both tasks
  [ -s "$TASKS/classify_test.json" ] || "$PY" "$STUDY" val-split "$SYN/classification.json" "$TASKS" --task classify >/dev/null
  CLS_IMAGES=$SYN
  TOK=$OUT/tok
  [ -s "$TOK/encoder.json" ] || logged "$OUT/tok.log" "$PVLM" tokenizer train --vocab-size 300 --out "$TOK" "$OUT/pre-ground/corpus.txt"
  [ -s "$OUT/shards-ground/manifest.json" ] || logged "$OUT/shard.log" "$PVLM" shard images --coco "$OUT/pre-ground/pretrain.json" \
    --images "$OUT/pre-ground" --out "$OUT/shards-ground" --image-size 32 --store raw --shards 1
  TINY=(--image-size 32 --patch-size 8 --d-model 32 --n-heads 2 --d-ff 64 --enc-layers 1 --dec-layers 1 --prefix-len 16 --suffix-len 12)
  pretrain "$OUT/base-ground" "$OUT/shards-ground/manifest.json" 40 16 3e-3 "" "${TINY[@]}"
  BASE_CLS=$OUT/base-ground; BASE_GROUND=$OUT/base-ground
  BASE_CLS_NAME="S (tiny smoke base)"; BASE_GROUND_NAME="S"
  PROMPTS=("a picture of a" "there is a")
  GRID_LR=(3e-3 3e-2); GRID_FULL=(1e-4 1e-3); GRID_L2=(1e-2 1e-1); GRID_CPT=(1e-5 1e-4); GRID_RFT=(1e-4 1e-3)
else
  # base A: the demo's data (real emoji images and names, WordNet text)
  D=$OUT/data
  mkdir -p "$OUT/npm"
  for v in apple twitter facebook google; do
    f="$OUT/npm/emoji-datasource-$v-16.0.0.tgz"
    [ -s "$f" ] || (cd "$OUT/npm" && npm pack --silent "emoji-datasource-$v@16.0.0" >/dev/null)
  done
  [ -s "$D/summary.json" ] || nice -n "$NICE" "$PY" scripts/demo_data.py --npm-dir "$OUT/npm" --out "$D" >/dev/null
  [ -s "$TASKS/classify_test.json" ] || "$PY" "$STUDY" emoji-split "$D" "$TASKS"
  CLS_IMAGES=$D/images
  TOK=$OUT/tok
  if [ ! -s "$TOK/encoder.json" ]; then # as scripts/demo.sh: captions plus every 4th WordNet gloss
    "$PY" -c 'import json, sys; print("\n".join(a["caption"] for a in json.load(open(sys.argv[1]))["annotations"]))' \
      "$D/train_captions.json" > "$OUT/tok_corpus.txt"
    zstdcat "$D/c4-train.00000-of-00001.json.zst" | "$PY" -c '
import json, sys
for i, line in enumerate(sys.stdin):
    if i % 4 == 0: print(json.loads(line)["text"])' >> "$OUT/tok_corpus.txt"
    cat "$OUT/pre-ground/corpus.txt" >> "$OUT/tok_corpus.txt"
    logged "$OUT/tok.log" nice -n "$NICE" "$PVLM" tokenizer train --vocab-size 2048 --out "$TOK" "$OUT/tok_corpus.txt"
  fi
  [ "$CLASSIFY" = 0 ] || [ -s "$OUT/shards-cls/manifest.json" ] || logged "$OUT/shard-cls.log" nice -n "$NICE" "$PVLM" shard images \
    --coco "$D/train_captions.json" --images "$D/images" --out "$OUT/shards-cls" --image-size 32 --store raw --shards 2
  [ "$CLASSIFY" = 0 ] || [ -s "$OUT/shards-txt/manifest.json" ] || logged "$OUT/shard-txt.log" nice -n "$NICE" "$PVLM" shard text \
    --input "$D/c4-train.00000-of-00001.json.zst" --out "$OUT/shards-txt"
  [ "$CLASSIFY" = 1 ] && say "pretraining base A (emoji + WordNet)"
  [ "$CLASSIFY" = 1 ] && pretrain "$OUT/base-cls" "$OUT/shards-cls/manifest.json" 1200 32 2e-3 "$OUT/shards-txt/manifest.json" \
    --image-size 32 --patch-size 8 --d-model 128 --n-heads 4 --d-ff 512 --enc-layers 2 --dec-layers 2 \
    --prefix-len 16 --suffix-len 16
  BASE_CLS=$OUT/base-cls
  BASE_CLS_NAME="A (emoji+WordNet)"; BASE_GROUND_NAME="B (painted scenes)"
  PROMPTS=("a picture of a" "a photo of a" "question: what category is this? answer:" "a picture of a emoji of the category")
  GRID_LR=(3e-3 1e-2 3e-2); GRID_FULL=(1e-4 3e-4 1e-3); GRID_L2=(1e-3 1e-2 1e-1); GRID_CPT=(3e-6 1e-5 3e-5 1e-4)
  # region fine-tuning starts its head from scratch: one more value than the others, from full fine-tuning's
  # smallest rate up
  GRID_RFT=(1e-4 3e-4 1e-3 3e-3 1e-2)
  BASE_GROUND=$OUT/base-ground
fi
base_ground() { # base B, pretrained when the first grounding row needs it
  [ "$SMOKE" = 1 ] && return 0
  [ -s "$OUT/shards-ground/manifest.json" ] || logged "$OUT/shard-ground.log" nice -n "$NICE" "$PVLM" shard images \
    --coco "$OUT/pre-ground/pretrain.json" --images "$OUT/pre-ground" --out "$OUT/shards-ground" --image-size 32 \
    --store raw --shards 1
  [ -f "$BASE_GROUND/done" ] || say "pretraining base B (painted scenes)"
  pretrain "$BASE_GROUND" "$OUT/shards-ground/manifest.json" 4000 48 3e-3 "" --image-size 32 --patch-size 8 \
    --d-model 64 --n-heads 4 --d-ff 256 --enc-layers 2 --dec-layers 2 --prefix-len 16 --suffix-len 12
}

# ---- the rows ----
# task | name | description | learning-rate flag | grid (array name) | finetune flags
ROWS=()
[ "$CLASSIFY" = 1 ] && ROWS+=(
  "classify|zero-shot|hand-written prompt (best on val), zero-shot|prompt|PROMPTS|--method full"
  "classify|probe|linear probe, frozen encoder|--weight-decay|GRID_L2|--method probe"
  "classify|full|full fine-tuning|--lr|GRID_FULL|--method full --groups all"
  "classify|coop|CoOp unified, M=4, class at end|--lr|GRID_LR|--method coop --n-ctx 4"
  "classify|coop-cs|CoOp class-specific, M=4|--lr|GRID_LR|--method coop --n-ctx 4 --class-specific"
  "classify|vpt|VPT-shallow, p=8|--lr|GRID_LR|--method vpt --n-prompt 8"
  "classify|vpt-deep|VPT-deep, p=8 per layer|--lr|GRID_LR|--method vpt --n-prompt 8 --deep"
)
[ "$GROUND" = 1 ] && ROWS+=(
  "ground|zero-shot|CPT zero-shot (one colour per box)|none|NONE|--method cpt --zero-shot-only"
  "ground|cpt-fs|CPT few-shot, all parameters (prompt-based fine-tuning)|--lr|GRID_CPT|--method cpt --groups all"
  "ground|cpt-fs-dec|CPT few-shot, decoder only|--lr|GRID_CPT|--method cpt --groups decoder"
  "ground|regionft|fine-tuning: encoder + linear head over the candidate regions, no colour prompts|--lr|GRID_RFT|--method regionft"
)
[ "$CLASSIFY" = 1 ] && ROWS+=( # CoOp's ablations (class token position, context length), last
  "classify|coop-mid|CoOp unified, M=4, class in the middle|--lr|GRID_LR|--method coop --n-ctx 4 --class-position middle"
  "classify|coop-m8|CoOp unified, M=8|--lr|GRID_LR|--method coop --n-ctx 8"
  "classify|coop-m16|CoOp unified, M=16|--lr|GRID_LR|--method coop --n-ctx 16"
)
NONE=()
"$PY" - "$OUT" "$SHOTS" "$SEEDS" "$STEPS" "$BATCH" "$LR_SHOTS" "$BASE_CLS_NAME" "$BASE_GROUND_NAME" "${ROWS[@]}" <<'PY'
import json, sys
out, shots, seeds, steps, batch, lr_shots, bcls, bgr = sys.argv[1:9]
rows = []
for r in sys.argv[9:]:
    task, name, desc, flag, grid, args = r.split("|")
    rows.append({"task": task, "name": name, "desc": desc, "base": bcls if task == "classify" else bgr, "flag": flag,
                 "args": args})
json.dump(rows, open(f"{out}/rows.json", "w"), indent=1)
json.dump({"shots": [int(k) for k in shots.split(",")], "seeds": int(seeds), "steps": int(steps), "batch": int(batch),
           "lr_shots": int(lr_shots)}, open(f"{out}/settings.json", "w"), indent=1)
PY

ft() { # task base out log finetune-flags...
  local task=$1 base=$2 out=$3 log=$4; shift 4
  local images=$CLS_IMAGES
  [ "$task" = ground ] && images=$SYN
  mkdir -p "$out"
  logged "$log" pvlm finetune --base "$base" --tokenizer "$TOK" --threads 1 --task "$task" --images "$images" \
    --steps "$STEPS" --batch-size "$BATCH" --out "$out" "$@"
}
for r in "${ROWS[@]}"; do
  IFS='|' read -r task name desc flag grid args <<<"$r"
  [[ "$name" =~ $ONLY ]] || continue
  d=$OUT/runs/$task/$name
  [ -s "$d/test/report.json" ] && continue
  base=$BASE_CLS
  if [ "$task" = ground ]; then base_ground; base=$BASE_GROUND; fi
  read -r -a a <<<"$args"
  eval "values=(\"\${$grid[@]}\")"
  say "$task / $name: ${#values[@]} setting(s) on the validation split, then shots $SHOTS x $SEEDS seed(s) on test"
  pairs=()
  for i in "${!values[@]}"; do
    v=${values[$i]}
    if [ "$flag" = prompt ]; then
      ft "$task" "$base" "$d/val/p$i" "$d/val/p$i.log" "${a[@]}" --data "$TASKS/${task}_val.json" --zero-shot-only --prompt "$v"
      pairs+=("$v" "$d/val/p$i/report.json")
    else
      ft "$task" "$base" "$d/val/$v" "$d/val/$v.log" "${a[@]}" --data "$TASKS/${task}_val.json" --shots "$LR_SHOTS" \
        --seeds 1 "$flag" "$v"
      pairs+=("$v" "$d/val/$v/report.json")
    fi
  done
  chosen=()
  if [ ${#pairs[@]} -gt 0 ]; then
    best=$("$PY" "$STUDY" pick "$d/choice.json" "${pairs[@]}")
    if [ "$flag" = prompt ]; then chosen=(--zero-shot-only --prompt "$best"); else chosen=("$flag" "$best"); fi
    say "  chosen on val: $flag $best"
  fi
  ft "$task" "$base" "$d/test" "$d/test.log" "${a[@]}" --data "$TASKS/${task}_test.json" --shots "$SHOTS" \
    --seeds "$SEEDS" "${chosen[@]}"
  tail -n $(( $(tr ',' '\n' <<<"$SHOTS" | wc -l) + 2 )) "$d/test.log" | sed 's/^/    /'
done
"$PY" "$STUDY" report "$OUT" >/dev/null
say "done: $OUT/table.md, $OUT/accuracy_vs_shots.png, $OUT/results.json"
cat "$OUT/table.md"
echo "CPU time of this invocation (user, system; the shell, then every command it ran):"
times
