#!/usr/bin/env python3
"""demo_data.py - turn real data shipped in npm and Debian packages into pvlm's input formats.

emoji: the emoji-datasource-{apple,twitter,facebook,google} npm tarballs (64 px PNGs + emoji.json)
  -> COCO-style caption files (images + annotations) for the training vendors and the held-out vendor,
     one caption set per image built from the emoji's name, short names, category and subcategory;
  -> VQA v2 questions/annotations JSON (official format) for the held-out vendor;
  -> a validation split (other concepts, same held-out vendor) for choosing recipes and for
     `pvlm pretrain --eval-every`, and a "novel" split: concepts left out of training in every style.
wordnet: Debian's wordnet-base glosses -> C4-format JSON lines ({"text","url","timestamp"}), zstd-compressed.

Python standard library only (plus the `zstd` command). Deterministic: no randomness.
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tarfile

VENDORS = ("apple", "twitter", "facebook", "google")


def phrase(name):
    """'GRINNING FACE WITH BIG EYES' -> 'a grinning face with big eyes'; 'KEYCAP: *' -> 'a keycap star'."""
    s = name.lower().replace("_", " ").replace(":", "").replace("*", "star").replace("#", "hash")
    s = re.sub(r"[^a-z0-9&'\- ]+", " ", s)
    s = re.sub(r"\s+", " ", s).strip()
    if not s:
        return None
    article = "an" if s[0] in "aeiou" else "a"
    return f"{article} {s}", s


def category_words(cat):
    return cat.lower()


def extract(tgz, vendor, outdir, wanted):
    """Extract img/<vendor>/64/<file> for the wanted file names into outdir/<vendor>/."""
    dst = os.path.join(outdir, vendor)
    os.makedirs(dst, exist_ok=True)
    prefix = f"package/img/{vendor}/64/"
    n = 0
    with tarfile.open(tgz, "r:gz") as tf:
        for m in tf:
            if not m.isfile() or not m.name.startswith(prefix):
                continue
            base = m.name[len(prefix):]
            if base not in wanted:
                continue
            path = os.path.join(dst, base)
            if not os.path.exists(path):
                with tf.extractfile(m) as src, open(path, "wb") as out:
                    out.write(src.read())
            n += 1
    return n


def load_emoji(tgz):
    with tarfile.open(tgz, "r:gz") as tf:
        return json.load(tf.extractfile("package/emoji.json"))


def captions_for(e):
    """Training captions: a SimVLM-style caption ("a picture of ...") and question-formatted
    captions so that the same PrefixLM objective teaches the answer format used by VQA."""
    p = phrase(e["name"])
    if not p:
        return None, None
    with_article, bare = p
    cat = category_words(e["category"])
    sub = e["subcategory"].replace("-", " ")
    caps = [
        f"a picture of {with_article}",
        f"question: what is this? answer: {bare}",
        f"question: what category is this? answer: {cat}",
        f"question: what kind of emoji is this? answer: {sub}",
    ]
    refs = [with_article, bare]
    for sn in e.get("short_names") or []:
        s = sn.replace("_", " ").replace("-", " ").strip()
        if s and s != bare:
            refs.append(s)
    return caps, refs


def coco_file(entries, vendor, image_root, caption_mode, picture_weight=1):
    images, annotations = [], []
    aid = 0
    for iid, (e, caps, refs) in enumerate(entries, start=1):
        images.append({"id": iid, "file_name": f"{vendor}/{e['image']}", "width": 64, "height": 64,
                       "emoji": e["unified"], "category": e["category"], "subcategory": e["subcategory"]})
        # pvlm's loader draws one of a record's captions uniformly: repeating the "a picture of" caption
        # picture_weight times makes it that share of the image-text samples (the captioning task).
        texts = [c for c in caps for _ in range(picture_weight if c.startswith("a picture of ") else 1)]
        for c in (texts if caption_mode == "train" else refs):
            aid += 1
            annotations.append({"id": aid, "image_id": iid, "caption": c})
    return {"info": {"description": f"emoji-datasource {vendor} 16.0.0 (pvlm demo)"},
            "images": images, "annotations": annotations}


def vqa_files(entries, vendor):
    questions, anns = [], []
    qid = 0
    for iid, (e, caps, refs) in enumerate(entries, start=1):
        bare = phrase(e["name"])[1]
        for qtype, q, a, atype in (
            ("what is this", "what is this?", bare, "other"),
            ("what category is this", "what category is this?", category_words(e["category"]), "other"),
            ("what kind of", "what kind of emoji is this?", e["subcategory"].replace("-", " "), "other"),
        ):
            qid += 1
            questions.append({"image_id": iid, "question": q, "question_id": qid})
            anns.append({"question_id": qid, "image_id": iid, "question_type": qtype, "answer_type": atype,
                         "multiple_choice_answer": a,
                         "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": k + 1} for k in range(10)]})
    return ({"info": {}, "task_type": "Open-Ended", "data_type": f"emoji-{vendor}", "data_subtype": "test",
             "questions": questions},
            {"info": {}, "data_type": f"emoji-{vendor}", "data_subtype": "test", "annotations": anns})


def wordnet_c4(out_path, wordnet_dir):
    """One C4 document per synset: 'lemma, lemma: gloss' (WordNet 3.0 data.* line format:
    offset lex_filenum ss_type w_cnt (word lex_id)* p_cnt ... | gloss)."""
    n = 0
    tmp = out_path + ".tmp.json"
    with open(tmp, "w", encoding="utf-8") as out:
        for pos in ("noun", "verb", "adj", "adv"):
            path = os.path.join(wordnet_dir, f"data.{pos}")
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith("  ") or "|" not in line:
                        continue
                    head, gloss = line.split("|", 1)
                    fields = head.split()
                    w_cnt = int(fields[3], 16)
                    words = [fields[4 + 2 * i].replace("_", " ") for i in range(w_cnt)]
                    words = [re.sub(r"\(.*\)$", "", w) for w in words]
                    text = f"{', '.join(words)}: {gloss.strip()}"
                    doc = {"text": text, "url": f"wordnet:{pos}/{fields[0]}", "timestamp": "2006-12-01T00:00:00Z"}
                    out.write(json.dumps(doc, ensure_ascii=False) + "\n")
                    n += 1
    subprocess.run(["zstd", "-q", "-f", "-10", tmp, "-o", out_path], check=True)
    os.unlink(tmp)
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--npm-dir", required=True, help="folder with emoji-datasource-*-16.0.0.tgz")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--holdout", default="google", choices=VENDORS)
    ap.add_argument("--max-test", type=int, default=0, help="cap held-out images (0 = all)")
    ap.add_argument("--max-val", type=int, default=100, help="validation images (other concepts than the test ones)")
    ap.add_argument("--novel-every", type=int, default=24,
                    help="leave every N-th concept out of training in every style: the novel-concept split (0: none)")
    ap.add_argument("--picture-weight", type=int, default=4,
                    help="copies of the 'a picture of' caption per training image (vs 1 per question caption)")
    ap.add_argument("--wordnet-dir", default="/usr/share/wordnet")
    args = ap.parse_args()

    tgz = {v: os.path.join(args.npm_dir, f"emoji-datasource-{v}-16.0.0.tgz") for v in VENDORS}
    for v, p in tgz.items():
        if not os.path.exists(p):
            sys.exit(f"demo_data: missing {p} (npm pack emoji-datasource-{v}@16.0.0)")
    emoji = load_emoji(tgz[args.holdout])
    train_vendors = [v for v in VENDORS if v != args.holdout]
    # Concepts drawn by every vendor, in the package's sort order (deterministic).
    usable = []
    for e in sorted(emoji, key=lambda e: e["sort_order"]):
        if e["category"] == "Component" or not all(e.get(f"has_img_{v}") for v in VENDORS):
            continue
        caps, refs = captions_for(e)
        if caps:
            usable.append((e, caps, refs))
    os.makedirs(args.out, exist_ok=True)
    img_root = os.path.join(args.out, "images")
    wanted = {e["image"] for e, _, _ in usable}
    counts = {v: extract(tgz[v], v, img_root, wanted) for v in VENDORS}

    # Splits by position in the package's sort order: test = every k-th concept from 0, validation = every
    # k-th from k/2 (disjoint), novel = every n-th from 1, removed from training in every style.
    k = max(1, len(usable) // args.max_test) if args.max_test > 0 else 1
    test_entries = usable[::k][: args.max_test] if args.max_test > 0 else usable
    val_entries = usable[k // 2 :: k][: args.max_val] if k > 1 else []
    novel = set(range(1, len(usable), args.novel_every)) if args.novel_every > 0 else set()
    novel_entries = [u for i, u in enumerate(usable) if i in novel]
    train_entries = [u for i, u in enumerate(usable) if i not in novel]
    train = {"info": {"description": "emoji-datasource 16.0.0, vendors " + ",".join(train_vendors)},
             "images": [], "annotations": []}
    for v in train_vendors:
        part = coco_file(train_entries, v, img_root, "train", args.picture_weight)
        off_i, off_a = len(train["images"]), len(train["annotations"])
        for im in part["images"]:
            im["id"] += off_i
        for an in part["annotations"]:
            an["id"] += off_a
            an["image_id"] += off_i
        train["images"] += part["images"]
        train["annotations"] += part["annotations"]
    test = coco_file(test_entries, args.holdout, img_root, "test")
    val = coco_file(val_entries, args.holdout, img_root, "test")
    novel_test = coco_file(novel_entries, args.holdout, img_root, "test")
    q, a = vqa_files(test_entries, args.holdout)
    answers = collections.Counter(an["multiple_choice_answer"] for an in a["annotations"])
    for name, obj in (("train_captions.json", train), ("test_captions.json", test), ("test_questions.json", q),
                      ("test_annotations.json", a), ("val_captions.json", val), ("novel_captions.json", novel_test)):
        with open(os.path.join(args.out, name), "w") as f:
            json.dump(obj, f, indent=None)
    n_docs = wordnet_c4(os.path.join(args.out, "c4-train.00000-of-00001.json.zst"), args.wordnet_dir)
    summary = {"concepts": len(usable), "images_per_vendor": counts, "train_concepts": len(train_entries),
               "train_images": len(train["images"]), "holdout": args.holdout,
               "test_images": len(test["images"]), "test_questions": len(q["questions"]),
               "val_images": len(val["images"]), "novel_images": len(novel_test["images"]),
               "test_concepts_also_novel": len({id(u) for u in test_entries} & {id(u) for u in novel_entries}),
               "most_common_answer": answers.most_common(1)[0],
               "c4_documents": n_docs}
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
