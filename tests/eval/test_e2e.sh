#!/usr/bin/env bash
# test_e2e.sh CASE: `pvlm caption` / `pvlm vqa` on 2 MPI ranks from base E (tests/finetune/fixture.sh:
# pretrained on "a red circle on a grey background" captions and "question: ... answer: red" texts of
# the training images) on the 96 held-out test images, scored by `pvlm score`. Cases:
#   caption     CIDEr-D beats the same captions given to the wrong images (rotated by one) by 0.5, and
#               every test image is scored
#   vqa-gen     generative VQA accuracy beats the best constant answer per question type by 15 points
#   vqa-closed  closed-set VQA (--candidates) accuracy, the same bar
#   bad-images  a missing file, a directory, a truncated JPEG and a JPEG cut to its header among
#               good images: each is named and counted, gets no result, the others
#               are captioned and scored; with only bad images the commands fail (exit 1)
set -euo pipefail
case=${1:?case}
bin=${PVLM_BIN:?}; py=${PVLM_PYTHON:-/usr/bin/python3}; src=${PVLM_SOURCE_DIR:?}
w=${PVLM_TMP:?}; rm -rf "$w"; mkdir -p "$w"
f=${PVLM_BUILD_DIR:?}/test-tmp/ft-fixture; d=$f/data
mpi="${PVLM_MPIEXEC:-mpirun} -np 2 --oversubscribe --bind-to none"
common=(--ckpt "$f/run-eval" --threads 1 --batch-size 8)
caption() { $mpi "$bin" caption "${common[@]}" --prompt a --keep-prompt "$@"; }
vqa() { $mpi "$bin" vqa "${common[@]}" "$@"; }
check() { "$py" "$src/tests/eval/check_e2e.py" "$@"; }

case $case in
caption)
  caption --annotations "$d/captions_test.json" --images "$d" --out "$w/res.json"
  "$bin" score captions --annotations "$d/captions_test.json" --results "$w/res.json" --json > "$w/score.json"
  "$py" -c 'import json,sys; r=json.load(open(sys.argv[1])); r=[{"image_id": a["image_id"], "caption": b["caption"]} for a, b in zip(r, r[1:] + r[:1])]; json.dump(r, open(sys.argv[2], "w"))' \
    "$w/res.json" "$w/rotated.json"
  "$bin" score captions --annotations "$d/captions_test.json" --results "$w/rotated.json" --json > "$w/rotated-score.json"
  check caption "$w" "$d" ;;
vqa-gen | vqa-closed)
  extra=(); [ "$case" = vqa-closed ] && extra=(--candidates "$d/vqa_candidates.json")
  vqa --questions "$d/vqa_test_questions.json" --image-list "$d/vqa_test_annotations.json" --images "$d" --out "$w/res.json" "${extra[@]}"
  "$bin" score vqa --questions "$d/vqa_test_questions.json" --annotations "$d/vqa_test_annotations.json" \
    --results "$w/res.json" --json > "$w/score.json"
  check vqa "$w" "$d" ;;
bad-images)
  "$py" "$src/tests/eval/make_bad_images.py" "$d" "$w"
  caption --annotations "$w/captions.json" --images "$w/img" --out "$w/res.json" 2> "$w/caption.log" || { cat "$w/caption.log"; exit 1; }
  "$bin" score captions --annotations "$w/captions.json" --results "$w/res.json" --json > "$w/score.json"
  vqa --questions "$w/questions.json" --image-list "$w/captions.json" --images "$w/img" --out "$w/vqa.json" \
    --candidates "$d/vqa_candidates.json" 2> "$w/vqa.log" || { cat "$w/vqa.log"; exit 1; }
  # only unreadable images: nothing to write, a failure
  rc=0; caption --annotations "$w/only-bad.json" --images "$w/img" --out "$w/none.json" 2> "$w/none.log" || rc=$?
  echo "$rc" > "$w/none.rc"
  check bad-images "$w" "$d" ;;
*) echo "test_e2e.sh: unknown case $case" >&2; exit 2 ;;
esac
