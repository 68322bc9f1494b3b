#!/usr/bin/env bash
# `pvlm finetune --recompute block` trains exactly as `--recompute none` (the model's gradients are
# bit-identical in every mode, model_unit): the same 10 full-finetune caption steps on the finetune
# fixture's base give byte-identical output files, in fp32 and in bf16 (the CPU's, or emulated where it has
# none: PVLM_BF16_EMULATE).
set -u
bin=${PVLM_BIN:?}; w=${PVLM_TMP:?}; f=${PVLM_BUILD_DIR:?}/test-tmp/ft-fixture
rm -rf "$w"; mkdir -p "$w"
precs="fp32 bf16"
"$bin" finetune --help >/dev/null
if [ -n "${PVLM_HIDE_BF16:-}" ] || ! grep -q avx512_bf16 /proc/cpuinfo; then export PVLM_BF16_EMULATE=1; fi
for p in $precs; do
  for r in none block; do
    "$bin" finetune --tokenizer "$f/tok" --threads 1 --out "$w/$p-$r" --base "$f/run-cls" --method full --seeds 1 \
      --steps 10 --batch-size 8 --lr 1e-3 --val-every 10 --task caption --data "$f/data/captions_train.json" \
      --precision "$p" --recompute "$r" > "$w/$p-$r.log" 2>&1 || { cat "$w/$p-$r.log"; exit 1; }
  done
  out=$(cd "$w/$p-none" && ls *.safetensors)
  [ -n "$out" ] || { echo "no finetune output in $w/$p-none"; exit 1; }
  for o in $out; do
    cmp "$w/$p-none/$o" "$w/$p-block/$o" || { echo "$p: --recompute block output differs from none ($o)"; exit 1; }
  done
  echo "$p: --recompute block gives byte-identical $out"
done
"$bin" finetune --base "$f/run-cls" --out "$w/bad" --recompute blocks > "$w/bad.log" 2>&1 && { echo "bad mode accepted"; exit 1; }
grep -q "blocks" "$w/bad.log" || { cat "$w/bad.log"; echo "error does not name the value"; exit 1; }
echo "ok"
