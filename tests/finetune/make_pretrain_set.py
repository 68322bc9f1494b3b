#!/usr/bin/python3
"""make_pretrain_set.py - the small pretraining set of the finetune tests.

usage: make_pretrain_set.py SRC OUT [--scenes N] [--seed S] [--unique-shapes] [--eval-texts]

SRC is a make_finetune_data.py output; OUT receives PNGs, pretrain.json (COCO-style) and corpus.txt
(tokenizer training text). Test images are never used. The set has two parts:

- captions of the *training* images of classification.json and grounding.json, in a style that
  differs from the hand-written zero-shot prompt ("there is a red circle, a blue square" rather than
  "a picture of a ..."), so CoOp/VPT have something to improve on;
- N *fresh* grounding scenes (make_finetune_data.scene with their own seed) in CPT's format: every box
  painted with its own CPT colour (alpha 0.5, exactly as finetune/paint.c) and the caption
  "<expression> is in <colour> color" for one referred box. This is the region-colour binding that
  CPT's zero-shot grounding relies on. Variety matters more than steps: a tiny model pretrained on a
  few hundred painted scenes memorises them and stays at chance on unseen scenes, with 20000 fresh
  scenes it grounds unseen ones well above chance (docs/finetune.md has the measurements).

With --eval-texts the set is instead the classification training images with the texts of the
end-to-end evaluation tests (make_eval_sets.py): the caption "a red circle on a grey background" and
the VQA prompts "question: what color is the shape? answer: red" / "question: what shape is it?
answer: circle", three captions per image (the loader picks one per epoch).
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
from make_finetune_data import CLASSES, scene, shape_image, write_png  # noqa: E402

# finetune/paint.c's table (CPT paper's colour set)
COLOURS = [("red", (255, 0, 0)), ("blue", (0, 0, 255)), ("yellow", (255, 255, 0)), ("purple", (128, 0, 128)),
           ("green", (0, 255, 0))]


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    return struct.unpack(">II", head[16:24])  # IHDR width, height


def paint(img, boxes, order):
    """Box b painted in COLOURS[order[b]], alpha 0.5 rounding half up, pixel range floor(x)..ceil(x+w)."""
    out = img.astype(int)
    h, w, _ = img.shape
    for b, (x, y, bw, bh) in enumerate(boxes):
        x0, y0 = max(int(np.floor(x)), 0), max(int(np.floor(y)), 0)
        x1, y1 = min(int(np.ceil(x + bw)), w), min(int(np.ceil(y + bh)), h)
        out[y0:y1, x0:x1] = (out[y0:y1, x0:x1] + np.array(COLOURS[order[b]][1]) + 1) // 2
    return out.astype(np.uint8)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--scenes", type=int, default=20000, help="fresh CPT-painted scenes")
    ap.add_argument("--shape-scenes", type=int, default=0, help="fresh single-shape images, captioned 'there is a ...'")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--unique-shapes", action="store_true", help="as make_finetune_data.py --unique-shapes")
    ap.add_argument("--eval-texts", action="store_true", help="only the caption/VQA texts of the evaluation tests")
    args = ap.parse_args()
    src, out = args.src, args.out
    os.makedirs(out, exist_ok=True)
    images, anns = [], []

    def add(name, w, h, caption):
        images.append({"id": len(images) + 1, "file_name": name, "width": w, "height": h})
        anns.append({"id": len(anns) + 1, "image_id": len(images), "caption": caption})

    def link(name):
        if not os.path.exists(os.path.join(out, name)):
            os.link(os.path.join(src, name), os.path.join(out, name))

    g = json.load(open(os.path.join(src, "grounding.json")))
    c = json.load(open(os.path.join(src, "classification.json")))
    size = g["train"][0]["width"]
    if args.eval_texts:
        for item in c["train"]:
            link(item["file"])
            w, h = png_size(os.path.join(src, item["file"]))
            colour, shape = c["classes"][item["label"]].split()
            images.append({"id": len(images) + 1, "file_name": item["file"], "width": w, "height": h})
            for text in (f"a {colour} {shape} on a grey background", f"question: what color is the shape? answer: {colour}",
                         f"question: what shape is it? answer: {shape}"):
                anns.append({"id": len(anns) + 1, "image_id": len(images), "caption": text})
        g["train"], c["train"] = [], []
    for item in g["train"]:
        words = []
        for box, ref in sorted(zip(item["boxes"], item["refs"]), key=lambda t: t[0][0]):
            # "the big blue square right of the circle" -> "a blue square"
            toks = [t for t in ref["expression"].split() if t in ("red", "green", "blue", "yellow", "circle", "square",
                                                                    "triangle")]
            words.append("a " + " ".join(toks[:2]))
        link(item["file"])
        add(item["file"], item["width"], item["height"], "there is " + ", ".join(words))
    for item in c["train"]:
        link(item["file"])
        w, h = png_size(os.path.join(src, item["file"]))
        add(item["file"], w, h, "there is a " + c["classes"][item["label"]])

    rng = np.random.default_rng(args.seed)
    for i in range(args.scenes):
        img, boxes, refs = scene(rng, size, args.unique_shapes)
        ref = refs[int(rng.integers(len(refs)))]
        order = rng.permutation(len(COLOURS))[:len(boxes)]
        name = f"cpt_{i:06d}.png"
        write_png(os.path.join(out, name), paint(img, boxes, order))
        add(name, size, size, f"{ref['expression']} is in {COLOURS[order[ref['box']]][0]} color")

    for i in range(args.shape_scenes):
        label = int(rng.integers(len(CLASSES)))
        name = f"shp_{i:06d}.png"
        write_png(os.path.join(out, name), shape_image(rng, size, label))
        add(name, size, size, "there is a " + CLASSES[label])

    json.dump({"images": images, "annotations": anns}, open(os.path.join(out, "pretrain.json"), "w"))
    with open(os.path.join(out, "corpus.txt"), "w") as f:
        for a in anns:
            f.write(a["caption"] + "\n")
        for name in c["classes"]:
            f.write(f"a picture of a {name}\n")
        f.write("a photo of a\n")
    print(json.dumps({"images": len(images), "captions": len(anns)}))


if __name__ == "__main__":
    main()
