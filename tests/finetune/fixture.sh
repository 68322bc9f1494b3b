#!/usr/bin/env bash
# fixture.sh STAGE: the shared set-up of the finetune and end-to-end evaluation tests, one ctest
# fixture per stage (tests/finetune/CMakeLists.txt), written to $PVLM_BUILD_DIR/test-tmp/ft-fixture:
#   data      synthetic tasks (scripts/make_finetune_data.py), the caption/VQA files made from them
#             (make_eval_sets.py), three pretraining sets (make_pretrain_set.py), one tokenizer, shards;
#   base-cls  base A: patch 4 on captions of the training images (CoOp, VPT, caption/VQA finetuning);
#   base-cpt  base B: patch 8 on those captions plus 20000 fresh CPT-painted scenes (CPT);
#   base-eval base E: patch 4 on the caption and VQA texts of the training images (pvlm caption/vqa).
# Every base is pretrained on one process (no MPI progress threads polling for a partner: the CPU
# time is the model's); the finetune tests themselves run on 2 MPI ranks.
set -euo pipefail
stage=${1:?stage}
bin=${PVLM_BIN:?}; py=${PVLM_PYTHON:-/usr/bin/python3}; src=${PVLM_SOURCE_DIR:?}
f=${PVLM_BUILD_DIR:?}/test-tmp/ft-fixture

pretrain() { # name patch-size steps
  rm -rf "$f/run-$1"
  "$bin" pretrain --images "$f/shards-$1/manifest.json" --tokenizer "$f/tok" --text-ratio 0 \
    --image-size 32 --patch-size "$2" --d-model 64 --n-heads 4 --d-ff 256 --enc-layers 2 --dec-layers 2 \
    --prefix-len 16 --suffix-len 12 --micro-batch 48 --steps "$3" --warmup 20 --lr 3e-3 --weight-decay 0 \
    --ckpt-dir "$f/run-$1" --ckpt-every 0 --log-every "$3" --threads 1 2>&1 | grep -E "step $3/|done"
  test -f "$f/run-$1/latest"
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
base-cls) pretrain cls 4 400 ;;
base-cpt) pretrain cpt 8 4000 ;;
base-eval) pretrain eval 4 400 ;;
*) echo "fixture.sh: unknown stage $stage" >&2; exit 2 ;;
esac
