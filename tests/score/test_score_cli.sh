#!/usr/bin/env bash
# `pvlm score captions|vqa` end to end: --json output equals the official
# evaluator's golden values (1e-9), --per-image writes the per-image file,
# NoCaps domains appear, bad input exits 1 with one clear line, a bad flag
# exits 2, and `pvlm score vqa` reproduces both official VQA script versions
# on the shared cases (converted to the official question/annotation/result files).
set -u
bin=${PVLM_BIN:?}
py=${PVLM_PYTHON:-/usr/bin/python3}
sh=${PVLM_SHARED:?}
tmp=${PVLM_TMP:-$(mktemp -d)}
mkdir -p "$tmp"
D=$sh/data/captions/coco-karpathy-test
fail=0
bad() { echo "FAIL: $*"; fail=$((fail+1)); }

# captions, --json, --per-image
"$bin" score captions --annotations "$D/captions_karpathy_test.json" --results "$D/results_magic.json" --json \
  --per-image "$tmp/per_image.json" > "$tmp/magic.json" 2> "$tmp/err.txt" || bad "score captions magic: $(cat "$tmp/err.txt")"
[ "$(wc -l < "$tmp/magic.json")" -eq 1 ] || bad "--json must print one line"
"$py" - "$tmp/magic.json" "$D/golden_scores.json" "$tmp/per_image.json" "$D/golden_per_image_magic.json" <<'PYEOF' || bad "json values"
import json, sys
mine = json.load(open(sys.argv[1])); gold = json.load(open(sys.argv[2]))["magic"]
keys = ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"]
for k, g in zip(keys, gold["Bleu"]):
    assert abs(mine[k] - g) <= 1e-9, (k, mine[k], g)
assert abs(mine["ROUGE_L"] - gold["ROUGE_L"]) <= 1e-9
assert abs(mine["CIDEr"] - gold["CIDEr"]) <= 1e-9
assert mine["n_images"] == gold["n_images"] == 4982
assert set(mine["unavailable"]) == {"METEOR", "SPICE"}
pi = json.load(open(sys.argv[3]))["per_image"]; gp = json.load(open(sys.argv[4]))["per_image"]
assert len(pi) == len(gp)
for name, g in gp.items():
    m = pi[name]
    assert max(abs(a - b) for a, b in zip(m["Bleu"], g["Bleu"])) <= 1e-9, name
    assert abs(m["CIDEr"] - g["CIDEr"]) <= 1e-9 and abs(m["ROUGE_L"] - g["ROUGE_L"]) <= 1e-9, name
PYEOF

# errors: unknown / duplicate image ids, missing file, bad flag
echo '[{"image_id": 391895, "caption": "a"}, {"image_id": 1, "caption": "b"}]' > "$tmp/unknown.json"
msg=$("$bin" score captions --annotations "$D/captions_karpathy_test.json" --results "$tmp/unknown.json" 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && echo "$msg" | grep -q "image id 1 is not in the references" || bad "unknown id: rc=$rc $msg"
echo '[{"image_id": 391895, "caption": "a"}, {"image_id": 391895, "caption": "b"}]' > "$tmp/dup.json"
msg=$("$bin" score captions --annotations "$D/captions_karpathy_test.json" --results "$tmp/dup.json" 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && echo "$msg" | grep -q "duplicate image id 391895" || bad "duplicate id: rc=$rc $msg"
msg=$("$bin" score captions --annotations "$tmp/none.json" --results "$tmp/dup.json" 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && [ "$(echo "$msg" | wc -l)" -eq 1 ] || bad "missing file: rc=$rc $msg"
"$bin" score captions --annotations a --results b --no-such-flag >/dev/null 2>&1; [ $? -eq 2 ] || bad "bad flag must exit 2"
"$bin" score vqa --questions a >/dev/null 2>&1; [ $? -eq 2 ] || bad "missing required flag must exit 2"

# NoCaps-style file: per-domain output
"$py" - "$tmp" <<'PYEOF'
import json, sys
t = sys.argv[1]
doms = ["in-domain", "near-domain", "out-domain"]
caps = ["a dog on the grass", "two cats on a couch", "a man riding a bike", "a plate of rice", "a red truck", "an owl in a tree"]
refs = {"images": [{"id": i, "domain": doms[i % 3]} for i in range(6)],
        "annotations": [{"image_id": i, "caption": c + s} for i, c in enumerate(caps) for s in ["", " outside", " today."]]}
json.dump(refs, open(t + "/nocaps.json", "w"))
json.dump([{"image_id": i, "caption": c} for i, c in enumerate(caps)], open(t + "/nocaps_res.json", "w"))
PYEOF
"$bin" score captions --annotations "$tmp/nocaps.json" --results "$tmp/nocaps_res.json" --json > "$tmp/nc.json" 2>/dev/null || bad "nocaps run"
"$py" -c "
import json,sys; j=json.load(open('$tmp/nc.json'))
assert j['n_images']==6 and sorted(j['domains'])==['in-domain','near-domain','out-domain'], j
assert all(d['n_images']==2 for d in j['domains'].values())
" || bad "nocaps domains"
# the evaluation server's formats: --nocaps-out (its result layout) and --submission (the whole split)
"$bin" score captions --annotations "$tmp/nocaps.json" --results "$tmp/nocaps_res.json" --nocaps-out "$tmp/server.json" \
  --submission "$tmp/sub.json" > /dev/null 2>&1 || bad "nocaps server formats"
"$py" -c "
import json; s=json.load(open('$tmp/server.json')); j=json.load(open('$tmp/nc.json')); sub=json.load(open('$tmp/sub.json'))
assert [list(e) for e in s]==[['in-domain'],['near-domain'],['out-domain'],['entire']], s
for e, name in zip(s, ['in-domain','near-domain','out-domain','entire']):
    assert list(e[name])==['B1','B2','B3','B4','METEOR','ROUGE-L','CIDEr','SPICE'], e
    ref = j if name=='entire' else j['domains'][name]
    assert e[name]['CIDEr']==ref['CIDEr'] and e[name]['B4']==ref['Bleu_4'] and e[name]['METEOR'] is None
assert [r['image_id'] for r in sub]==list(range(6)) and all(set(r)=={'image_id','caption'} for r in sub), sub
" || bad "nocaps server format values"
echo '[{"image_id": 0, "caption": "a dog"}]' > "$tmp/partial.json"
"$bin" score captions --annotations "$tmp/nocaps.json" --results "$tmp/partial.json" --submission "$tmp/sub2.json" \
  > /dev/null 2> "$tmp/err.txt" && bad "an incomplete submission must fail"
grep -q "no caption for image id 1" "$tmp/err.txt" || bad "incomplete submission message: $(cat "$tmp/err.txt")"

# METEOR / SPICE plumbing through a stand-in for java (the official jars are not available here)
printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$py" "$(dirname "$0")/fake_java.py" > "$tmp/java"; chmod +x "$tmp/java"
touch "$tmp/meteor-1.5.jar" "$tmp/spice-1.0.jar"
TMPDIR=$tmp "$bin" score captions --annotations "$tmp/nocaps.json" --results "$tmp/nocaps_res.json" --json \
  --java "$tmp/java" --meteor-jar "$tmp/meteor-1.5.jar" --spice-jar "$tmp/spice-1.0.jar" > "$tmp/ms.json" 2> "$tmp/ms.err" \
  || bad "meteor/spice run: $(cat "$tmp/ms.err")"
"$py" -c "
import json; j=json.load(open('$tmp/ms.json'))
caps=['a dog on the grass','two cats on a couch','a man riding a bike','a plate of rice','a red truck','an owl in a tree']
n=[len(c.split()) for c in caps]
assert abs(j['METEOR']-sum(x/100 for x in n)/6)<1e-12, j
assert abs(j['SPICE']-sum(x/10 for x in n)/6)<1e-12, j
assert 'unavailable' not in j, j
d=j['domains']['in-domain']; assert abs(d['METEOR']-(n[0]+n[3])/200)<1e-12, d
" || bad "meteor/spice values"

# VQA: both official script versions on the shared cases
for v in 2021 pre2021; do
  "$py" - "$sh/data/vqa/vqa_eval_cases_$v.json" "$tmp/vqa_$v" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1])); p = sys.argv[2]
json.dump({"questions": [{"question_id": c["qid"], "image_id": 1, "question": "?"} for c in d["cases"]]}, open(p + "_q.json", "w"))
json.dump({"annotations": [{"question_id": c["qid"], "image_id": 1, "question_type": c["question_type"],
                            "answer_type": c["answer_type"], "multiple_choice_answer": c["gt"][0],
                            "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(c["gt"])]}
                           for c in d["cases"]]}, open(p + "_a.json", "w"))
json.dump([{"question_id": c["qid"], "answer": c["pred"]} for c in d["cases"]], open(p + "_r.json", "w"))
PYEOF
  "$bin" score vqa --questions "$tmp/vqa_${v}_q.json" --annotations "$tmp/vqa_${v}_a.json" --results "$tmp/vqa_${v}_r.json" \
    --version $v --json --per-question "$tmp/vqa_${v}_pq.json" > "$tmp/vqa_$v.out" || bad "score vqa $v"
  "$py" - "$sh/data/vqa/vqa_eval_cases_$v.json" "$tmp/vqa_$v.out" "$tmp/vqa_${v}_pq.json" <<'PYEOF' || bad "vqa $v values"
import json, sys
d = json.load(open(sys.argv[1])); m = json.load(open(sys.argv[2])); pq = json.load(open(sys.argv[3]))
acc = d["accuracy"]
assert abs(m["overall"] - acc["overall"]) <= 1e-9, (m["overall"], acc["overall"])
for k in ("perQuestionType", "perAnswerType"):
    assert set(m[k]) == set(acc[k]), k
    for t, v in acc[k].items():
        assert abs(m[k][t] - v) <= 1e-9, (k, t, m[k][t], v)
for c in d["cases"]:
    assert abs(pq[str(c["qid"])] - c["acc_x100_round2"]) <= 1e-9, c
PYEOF
done
# layering: score/ and `pvlm score` (cli/cmd_score.c) include only core/ and score/ (no model, no MPI)
src=${PVLM_SOURCE_DIR:?}
other=$(grep -h '^#include "' "$src"/score/*.c "$src"/score/*.h "$src/cli/cmd_score.c" | grep -v '"core/\|"score/')
[ -z "$other" ] || bad "score/ or cli/cmd_score.c includes outside core/ and score/: $other"

echo "score_cli: $fail failed"
[ $fail -eq 0 ]
