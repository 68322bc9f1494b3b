#!/usr/bin/env bash
# fixture.sh STAGE: the shared set-up of the finetune and end-to-end evaluation tests, one ctest
# fixture per stage (tests/finetune/CMakeLists.txt), written to $PVLM_BUILD_DIR/test-tmp/ft-fixture:
#   data      synthetic tasks (scripts/make_finetune_data.py), the caption/VQA files made from them
#             (make_eval_sets.py), three pretraining sets (make_pretrain_set.py), one tokenizer, shards;
#   base-cls  base A: patch 4 on captions of the training images (CoOp, VPT, caption/VQA finetuning);
#   base-cpt-half, base-cpt   base B: patch 8 on those captions plus 20000 fresh CPT-painted scenes
#             (CPT), steps 0-2000 then 2000-4000;
#   base-eval base E: patch 4 on the caption and VQA texts of the training images (pvlm caption/vqa).
# Every base is pretrained on one process (no MPI progress threads polling for a partner: the CPU
# time is the model's); the finetune tests themselves run on 2 MPI ranks.
set -euo pipefail
stage=${1:?stage}
bin=${PVLM_BIN:?}; py=${PVLM_PYTHON:-/usr/bin/python3}; src=${PVLM_SOURCE_DIR:?}
f=${PVLM_BUILD_DIR:?}/test-tmp/ft-fixture

pretrain() { # name patch-size steps [flags]: trains or resumes $f/run-NAME; returns pvlm's exit code
  local name=$1 patch=$2 steps=$3 rc=0; shift 3
  "$bin" pretrain --images "$f/shards-$name/manifest.json" --tokenizer "$f/tok" --text-ratio 0 \
    --image-size 32 --patch-size "$patch" --d-model 64 --n-heads 4 --d-ff 256 --enc-layers 2 --dec-layers 2 \
    --prefix-len 16 --suffix-len 12 --micro-batch 48 --steps "$steps" --warmup 20 --lr 3e-3 --weight-decay 0 \
    --ckpt-dir "$f/run-$name" --ckpt-every 0 --log-every 500 --threads 1 "$@" > "$f/run-$name.log" 2>&1 || rc=$?
  grep -E "resum|step [0-9]+/$steps|stop|done" "$f/run-$name.log" | tail -4 || true
  [ "$rc" = 0 ] || [ "$rc" = 3 ] || tail -20 "$f/run-$name.log"
  return $rc
}

case $stage in
data)
  rm -rf "$f"; mkdir -p "$f"
  "$py" "$src/scripts/make_finetune_data.py" --out "$f/data" --size 32 --n-train 240 --n-test 96 --seed 3 >/dev/null
  "$py" "$src/tests/finetune/make_eval_sets.py" "$f/data"
  # captions of the training images (base A), plus 20000 fresh CPT-painted scenes (base B); base E
  # learns the caption style and the question format of the evaluation tests
  "$py" "$src/tests/finetune/make_pretrain_set.py" "$f/data" "$f/pre-cls" --scenes 0
  "$py" "$src/tests/finetune/make_pretrain_set.py" "$f/data" "$f/pre-cpt" --scenes 20000
  "$py" "$src/tests/finetune/make_pretrain_set.py" "$f/data" "$f/pre-eval" --scenes 0 --eval-texts
  cat "$f/pre-cpt/corpus.txt" "$f/pre-eval/corpus.txt" > "$f/corpus.txt"
  "$bin" tokenizer train --vocab-size 400 --out "$f/tok" "$f/corpus.txt" 2>/dev/null
  for n in cls cpt eval; do
    "$bin" shard images --coco "$f/pre-$n/pretrain.json" --images "$f/pre-$n" --out "$f/shards-$n" --image-size 32 \
      --store raw --shards 1 2>/dev/null
  done ;;
base-cls) rm -rf "$f/run-cls"; pretrain cls 4 400 ;;
# base B in two halves of about 40 s of CPU each: stop at step 2000 as a preempted job does (checkpoint,
# exit 3), then resume to 4000; exact resume (docs/pretrain.md) makes it the uninterrupted run's model
base-cpt-half)
  rm -rf "$f/run-cpt"; rc=0
  pretrain cpt 8 4000 --stop-at-step 2000 || rc=$?
  [ "$rc" = 3 ] && test -f "$f/run-cpt/step_00002000/model.safetensors" ;;
base-cpt) test -f "$f/run-cpt/step_00002000/model.safetensors"; pretrain cpt 8 4000 --resume auto
  test -f "$f/run-cpt/step_00004000/model.safetensors" ;;
base-eval) rm -rf "$f/run-eval"; pretrain eval 4 400 ;;
*) echo "fixture.sh: unknown stage $stage" >&2; exit 2 ;;
esac
