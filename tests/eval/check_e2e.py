#!/usr/bin/python3
"""check_e2e.py CASE WORK DATA - the assertions of one test_e2e.sh case; exit 1 when one fails."""
import collections
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from verdict import check, done  # noqa: E402

case, w, data = sys.argv[1:4]


def load(name):
    return json.load(open(f"{w}/{name}"))


if case == "caption":
    s, rot, res = load("score.json"), load("rotated-score.json"), load("res.json")
    print("info captions:", [r["caption"] for r in res[:4]])
    check(s["n_images"] == 96 and len(res) == 96, f"caption: all 96 test images captioned and scored ({s['n_images']})")
    # the rotated results hold the same caption texts, so only the image-caption match differs
    check(s["CIDEr"] > rot["CIDEr"] + 0.5, f"caption: CIDEr-D {s['CIDEr']:.3f} > {rot['CIDEr']:.3f} (captions of "
          "the wrong images) + 0.5")
elif case == "vqa":
    s = load("score.json")
    ann = json.load(open(f"{data}/vqa_test_annotations.json"))["annotations"]
    # the best constant answer per question type (a model that ignores the image can reach this)
    by_type = collections.defaultdict(collections.Counter)
    for a in ann:
        by_type[a["question_type"]][a["multiple_choice_answer"]] += 1
    prior = 100.0 * sum(c.most_common(1)[0][1] for c in by_type.values()) / len(ann)
    print("info answers:", collections.Counter(r["answer"] for r in load("res.json")).most_common(8))
    check(s["n_questions"] == len(ann), f"vqa: all {len(ann)} questions answered and scored")
    check(s["overall"] > prior + 15, f"vqa: accuracy {s['overall']:.2f} > best constant answer per type {prior:.2f} + 15")
elif case == "bad-images":
    e, res, vqa, score = load("expect.json"), load("res.json"), load("vqa.json"), load("score.json")
    clog, vlog, nlog = (open(f"{w}/{n}").read() for n in ("caption.log", "vqa.log", "none.log"))
    check([r["image_id"] for r in res] == e["good"], f"caption: results for exactly the readable images, in input "
          f"order ({[r['image_id'] for r in res]})")
    check(score["n_images"] == len(e["good"]), "caption: the results score (pvlm score captions)")
    check(sorted(r["question_id"] // 10 for r in vqa) == sorted(e["good"]), "vqa: answers for exactly the questions "
          "whose image is readable")
    for log, what in ((clog, "caption"), (vlog, "vqa")):
        n = len(e["bad"])
        check(f"{n} of {n + len(e['good'])} items have no result" in log, f"{what}: the summary counts {n} unreadable")
        key = "image_id" if what == "caption" else "question_id"
        ids = [str(i if what == "caption" else 10 * i) for i in e["bad"]]
        check(all(f"item {i} has no result" in log for i in ids) and f"{key} {', '.join(ids)}" in log,
              f"{what}: every unreadable image is named")
    for name in ("missing.png", "folder.jpg", "truncated.jpg", "header.jpg"):
        check(name in clog, f"caption: the message names {name}")
    rc = int(open(f"{w}/none.rc").read())
    check(rc == 1 and "none of the 4 images could be read" in nlog, f"caption: only unreadable images -> exit {rc}, "
          "no results written")
else:
    sys.exit(f"check_e2e.py: unknown case {case}")
done()
