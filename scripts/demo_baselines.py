#!/usr/bin/python3
"""demo_baselines.py - the caption baselines scripts/demo.sh reports beside the model.

    demo_baselines.py PVLM DATA_DIR OUT_DIR [--candidates N]

1. Strongest constant caption per metric: every image gets the same caption. Candidates are the
   training captions' names ("a picture of <name>" without the prompt) and all their word prefixes
   ("a", "a flag", "a flag of", ...), the N most common (by how many training names start with them).
   Each candidate is scored exactly by `pvlm score captions` on the validation split, and the best one
   per metric (CIDEr-D, BLEU-4, ROUGE-L) is chosen there, never on a test split; its test scores are
   what the demo reports. The best constant found on the test split itself (an oracle, the strongest
   any constant can be) is recorded too.
2. Nearest neighbour by pixels: each held-out image gets the name of the training image closest to it
   in squared RGB distance at 16x16 (PIL, alpha composited on white as pvlm's decoder does).
3. The ceiling, not a baseline: each image gets its own first reference ("a <name>"), i.e. what a model
   that names every concept exactly would score. It puts the other rows in proportion: CIDEr-D is not
   bounded by 1, and a target such as "2x the best baseline" can exceed what any caption can reach.

Writes OUT_DIR/constant_<metric>_<split>.json, nn_<split>.json, ceiling_<split>.json (COCO results files, <split> = test
and novel) and OUT_DIR/baselines.json (the chosen captions, their validation scores and the oracle).
Uses Debian's python3 with python3-numpy and python3-pil.
"""
import argparse
import collections
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

METRICS = {"CIDEr": "cider", "Bleu_4": "bleu4", "ROUGE_L": "rouge_l"}
PROMPT = "a picture of "


def score(pvlm, refs, results, tmp):
    with open(tmp, "w") as f:
        json.dump(results, f)
    out = subprocess.run([pvlm, "score", "captions", "--annotations", refs, "--results", tmp, "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def constant(split, cap):
    return [{"image_id": im["id"], "caption": cap} for im in split["images"]]


def candidates(train, n):
    names = {a["caption"][len(PROMPT):] for a in train["annotations"] if a["caption"].startswith(PROMPT)}
    count = collections.Counter()
    for name in names:
        w = name.split()
        for k in range(1, len(w) + 1):
            count[" ".join(w[:k])] += 1
    return [c for c, _ in count.most_common(n)]


def ceiling(split):
    first = {}
    for a in split["annotations"]:
        first.setdefault(a["image_id"], a["caption"])
    return [{"image_id": im["id"], "caption": first[im["id"]]} for im in split["images"]]


def pixels(path, side=16):
    im = Image.open(path).convert("RGBA")
    bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(bg, im).convert("RGB").resize((side, side), Image.BILINEAR),
                      dtype=np.float32).reshape(-1)


def nearest(data, train, split):
    name = {}
    for a in train["annotations"]:
        if a["caption"].startswith(PROMPT):
            name.setdefault(a["image_id"], a["caption"][len(PROMPT):])
    tr = [im for im in train["images"] if im["id"] in name]
    X = np.stack([pixels(os.path.join(data, "images", im["file_name"])) for im in tr])
    x2 = (X * X).sum(1)
    out = []
    for im in split["images"]:
        q = pixels(os.path.join(data, "images", im["file_name"]))
        j = int(np.argmin(x2 - 2 * X @ q))
        out.append({"image_id": im["id"], "caption": name[tr[j]["id"]]})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pvlm")
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--candidates", type=int, default=200)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    L = lambda n: json.load(open(os.path.join(a.data, n)))
    train = L("train_captions.json")
    splits = {s: os.path.join(a.data, f"{s}_captions.json") for s in ("val", "test", "novel")}
    split = {s: json.load(open(p)) for s, p in splits.items()}
    tmp = os.path.join(a.out, ".candidate.json")
    val, test = {}, {}
    for c in candidates(train, a.candidates):
        val[c] = score(a.pvlm, splits["val"], constant(split["val"], c), tmp)
        test[c] = score(a.pvlm, splits["test"], constant(split["test"], c), tmp)
    os.remove(tmp)
    summary = {"candidates": len(val), "constant": {}}
    for key, short in METRICS.items():
        best = max(val, key=lambda c: (val[c][key], c))
        oracle = max(test, key=lambda c: (test[c][key], c))
        summary["constant"][short] = {"caption": best, "val": val[best][key], "test": test[best][key],
                                      "oracle_caption": oracle, "oracle_test": test[oracle][key]}
        for s in ("test", "novel"):
            with open(os.path.join(a.out, f"constant_{short}_{s}.json"), "w") as f:
                json.dump(constant(split[s], best), f)
    for s in ("test", "novel"):
        with open(os.path.join(a.out, f"nn_{s}.json"), "w") as f:
            json.dump(nearest(a.data, train, split[s]), f)
        with open(os.path.join(a.out, f"ceiling_{s}.json"), "w") as f:
            json.dump(ceiling(split[s]), f)
    with open(os.path.join(a.out, "baselines.json"), "w") as f:
        json.dump(summary, f, indent=1)
    for short, b in summary["constant"].items():
        print("constant caption for %s (chosen on validation): %r, test %.4f (oracle on test: %r, %.4f)"
              % (short, b["caption"], b["test"], b["oracle_caption"], b["oracle_test"]), file=sys.stderr)


if __name__ == "__main__":
    main()
