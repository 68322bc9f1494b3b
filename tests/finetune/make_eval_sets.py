#!/usr/bin/python3
"""make_eval_sets.py - caption and VQA files for the end-to-end tests, from make_finetune_data.py output.

usage: make_eval_sets.py DATA

DATA is a make_finetune_data.py output folder (classification.json and its PNGs); the files are written
beside them (file names stay relative to DATA). Each image holds one coloured shape ("red circle"):

- captions_{train,test}.json: COCO caption format; references in a style the pretraining set of the
  tests does not use ("a red circle on a grey background"), so caption finetuning has something to learn;
- vqa_{train,test}_questions.json, vqa_{train,test}_annotations.json: VQA v2 format, two questions per
  image ("what color is the shape?" -> "red", "what shape is it?" -> "circle"), 10 identical answers,
  plus the "images" list (id, file_name) that `pvlm finetune --task vqa` and `pvlm vqa --image-list` read;
- vqa_candidates.json: the closed answer set (every colour and shape word).
"""
import json
import os
import sys


def main():
    data = sys.argv[1]
    c = json.load(open(os.path.join(data, "classification.json")))
    colours = sorted({name.split()[0] for name in c["classes"]})
    shapes = sorted({name.split()[1] for name in c["classes"]})
    for split, first_id in (("train", 1), ("test", 100001)):
        items = c[split]
        images = [{"id": first_id + i, "file_name": it["file"], "width": 32, "height": 32} for i, it in enumerate(items)]
        anns, questions, answers = [], [], []
        for i, it in enumerate(items):
            colour, shape = c["classes"][it["label"]].split()
            iid = first_id + i
            for cap in (f"a {colour} {shape} on a grey background", f"a {colour} {shape} on grey"):
                anns.append({"id": len(anns) + 1, "image_id": iid, "caption": cap})
            for k, (q, a, qtype) in enumerate((("what color is the shape?", colour, "what color is the"),
                                               ("what shape is it?", shape, "what"))):
                qid = iid * 10 + k
                questions.append({"image_id": iid, "question": q, "question_id": qid})
                answers.append({"question_id": qid, "image_id": iid, "question_type": qtype, "answer_type": "other",
                                "multiple_choice_answer": a,
                                "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": j + 1}
                                            for j in range(10)]})
        json.dump({"images": images, "annotations": anns}, open(os.path.join(data, f"captions_{split}.json"), "w"))
        json.dump({"questions": questions}, open(os.path.join(data, f"vqa_{split}_questions.json"), "w"))
        json.dump({"images": images, "annotations": answers},
                  open(os.path.join(data, f"vqa_{split}_annotations.json"), "w"))
    json.dump(colours + shapes, open(os.path.join(data, "vqa_candidates.json"), "w"))


if __name__ == "__main__":
    main()
