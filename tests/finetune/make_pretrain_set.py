#!/usr/bin/python3
"""make_pretrain_set.py - the small pretraining set of the finetune tests.

From the training images of grounding.json (several shapes each) and classification.json (one shape)
it writes COCO-style captions in a style
that differs from the hand-written zero-shot prompt ("there is a red circle, a blue square" rather
than "a picture of a ..."), plus colour-block images in CPT's format: every box painted with its own CPT colour (alpha 0.5, as
finetune/paint.c) and the caption "<expression> is in <colour> color" for one referred box, the
kind of image-text pair that teaches a model colour words over regions. Test images are never used.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
from make_finetune_data import write_png  # noqa: E402

COLOURS = [("red", (255, 0, 0)), ("blue", (0, 0, 255)), ("yellow", (255, 255, 0)), ("purple", (128, 0, 128)),
           ("green", (0, 255, 0))]


def read_png(path):
    import zlib
    import struct
    data = open(path, "rb").read()
    pos, idat, w, h = 8, b"", 0, 0
    while pos < len(data):
        n, tag = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if tag == b"IHDR":
            w, h = struct.unpack(">II", body[:8])
        elif tag == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    rows = [np.frombuffer(raw[y * (3 * w + 1) + 1:(y + 1) * (3 * w + 1)], np.uint8) for y in range(h)]
    return np.stack(rows).reshape(h, w, 3).copy()


def main():
    src, out = sys.argv[1], sys.argv[2]
    g = json.load(open(os.path.join(src, "grounding.json")))
    rng = np.random.default_rng(0)
    images, anns = [], []
    for i, item in enumerate(g["train"]):
        img = read_png(os.path.join(src, item["file"]))
        objs = sorted(zip(item["boxes"], [r["expression"] for r in item["refs"]]), key=lambda t: t[0][0])
        words = []
        for box, expr in objs:  # "the big blue square right of the circle" -> "a blue square"
            toks = expr.split()
            colour_shape = [t for t in toks if t in ("red", "green", "blue", "yellow", "circle", "square", "triangle")][:2]
            words.append("a " + " ".join(colour_shape))
        iid = len(images) + 1
        images.append({"id": iid, "file_name": item["file"], "width": item["width"], "height": item["height"]})
        anns.append({"id": len(anns) + 1, "image_id": iid, "caption": "there is " + ", ".join(words)})
        for k in range(2):
            # CPT's format (finetune/paint.c, --cpt-mode multi): every box painted in its own colour,
            # the caption names the colour of the referred box
            ref = item["refs"][int(rng.integers(len(item["refs"])))]
            order = rng.permutation(len(COLOURS))[:len(item["boxes"])]
            painted = img.astype(int)
            for b, (x, y, w, h) in enumerate(item["boxes"]):
                rgb = np.array(COLOURS[order[b]][1])
                x0, y0 = max(int(np.floor(x)), 0), max(int(np.floor(y)), 0)
                x1, y1 = min(int(np.ceil(x + w)), img.shape[1]), min(int(np.ceil(y + h)), img.shape[0])
                painted[y0:y1, x0:x1] = (painted[y0:y1, x0:x1] + rgb + 1) // 2
            cname = COLOURS[order[ref["box"]]][0]
            name = f"cpt_{i:05d}_{k}.png"
            write_png(os.path.join(out, name), painted.astype(np.uint8))
            iid = len(images) + 1
            images.append({"id": iid, "file_name": name, "width": item["width"], "height": item["height"]})
            anns.append({"id": len(anns) + 1, "image_id": iid, "caption": f"{ref['expression']} is in {cname} color"})
    # single-object scenes: the classification *training* images (test images stay unseen)
    c = json.load(open(os.path.join(src, "classification.json")))
    for item in c["train"]:
        iid = len(images) + 1
        h, w, _ = read_png(os.path.join(src, item["file"])).shape
        images.append({"id": iid, "file_name": item["file"], "width": w, "height": h})
        anns.append({"id": len(anns) + 1, "image_id": iid, "caption": "there is a " + c["classes"][item["label"]]})
        if not os.path.exists(os.path.join(out, item["file"])):
            os.link(os.path.join(src, item["file"]), os.path.join(out, item["file"]))
    for item in g["train"]:
        os.link(os.path.join(src, item["file"]), os.path.join(out, item["file"])) if not os.path.exists(
            os.path.join(out, item["file"])) else None
    json.dump({"images": images, "annotations": anns}, open(os.path.join(out, "pretrain.json"), "w"))
    with open(os.path.join(out, "corpus.txt"), "w") as f:
        for a in anns:
            f.write(a["caption"] + "\n")
        c = json.load(open(os.path.join(src, "classification.json")))
        for name in c["classes"]:
            f.write(f"a picture of a {name}\n")
        f.write("a photo of a\n")
    print(json.dumps({"images": len(images), "captions": len(anns)}))


if __name__ == "__main__":
    main()
