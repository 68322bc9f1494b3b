#!/usr/bin/env bash
# test_gpt2_node.sh TEST_BIN GPT2_DIR - re-derive the GPT-2 vectors with the reference encoder
# (node + gpt-3-encoder's Encoder.js, fetched into GPT2_DIR) and check pvlm against them.
# Exit 0 only when the comparison ran and passed, or when node is not installed (then it
# prints SKIPPED and why). Anything else that goes wrong fails.
set -u
bin=$1; gdir=$2
if ! command -v node >/dev/null 2>&1; then
  echo "tokenizer_gpt2_node: SKIPPED: node is not installed (apt-get install nodejs npm)"
  exit 0
fi
[ -f "$gdir/Encoder.js" ] || { echo "FAIL: $gdir/Encoder.js missing (scripts/fetch-gpt2-bpe.sh $gdir)"; exit 1; }
out=${PVLM_TMP:?}/vectors
rm -rf "$out"; mkdir -p "$out"
node "$(dirname "$0")/gen_vectors.js" "$gdir" "$out" || { echo "FAIL: gen_vectors.js"; exit 1; }
echo "tokenizer_gpt2_node: RAN: node $(node --version) re-derived the vectors into $out"
"$bin" "$out" "$gdir" || { echo "FAIL: pvlm differs from the reference encoder"; exit 1; }
# the checked-in vectors must be what the reference produces today
cmp -s "$out/gpt2_vectors.json" "$(dirname "$0")/data/gpt2_vectors.json" || {
  echo "FAIL: tests/tokenizer/data/gpt2_vectors.json differs from a fresh node run"; exit 1; }
for f in "$out"/*.u16; do
  cmp -s "$f" "$(dirname "$0")/data/$(basename "$f")" || { echo "FAIL: data/$(basename "$f") is stale"; exit 1; }
done
echo "tokenizer_gpt2_node: PASSED"
