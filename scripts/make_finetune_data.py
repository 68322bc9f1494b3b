#!/usr/bin/python3
"""make_finetune_data.py - small synthetic but non-trivial tasks for pvlm finetune tests and examples.

classification: one coloured shape per image (K = colours x shapes classes), random size, position,
  background shade and a distractor blob of another colour; labels are "red circle", "blue square", ...
grounding: 2-4 shapes per image with boxes and referring expressions that need attributes and relations
  ("the small blue circle left of the square"); the gold box is the referent, the candidates are all boxes.

Outputs PNGs plus classification.json / grounding.json (formats in docs/finetune.md). Deterministic
for a seed. Uses numpy (Debian python3-numpy) and a stdlib PNG writer.
"""
import argparse
import json
import os
import struct
import zlib

import numpy as np

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 200, 30)}
SHAPES = ("circle", "square", "triangle")


def write_png(path, img):
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(tag, data):
        c = struct.pack(">I", len(data)) + tag + data
        return c + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def shape_mask(size, shape, cx, cy, r):
    yy, xx = np.mgrid[0:size, 0:size]
    if shape == "circle":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    if shape == "square":
        return (abs(xx - cx) <= r * 0.85) & (abs(yy - cy) <= r * 0.85)
    # upward triangle inside the box [cx-r, cx+r] x [cy-r, cy+r]
    top, bottom = cy - r, cy + r
    t = (yy - top) / max(bottom - top, 1)
    return (yy >= top) & (yy <= bottom) & (abs(xx - cx) <= t * r)


def background(rng, size):
    shade = rng.integers(200, 256)
    img = np.full((size, size, 3), shade, np.uint8)
    noise = rng.integers(-8, 9, (size, size, 1))
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


CLASSES = [f"{c} {s}" for c in COLOURS for s in SHAPES]


def shape_image(rng, size, label):
    """One classification image of class CLASSES[label]."""
    colour, shape = CLASSES[label].split()
    img = background(rng, size)
    # a small distractor blob of another colour, so colour alone is not "any non-background pixel"
    other = [c for c in COLOURS if c != colour][int(rng.integers(len(COLOURS) - 1))]
    dx, dy = rng.integers(2, size - 2, 2)
    img[max(0, dy - 1):dy + 2, max(0, dx - 1):dx + 2] = COLOURS[other]
    r = rng.uniform(0.18, 0.32) * size
    cx, cy = rng.uniform(r, size - r, 2)
    img[shape_mask(size, shape, cx, cy, r)] = COLOURS[colour]
    return img


def classification(rng, n, size, outdir):
    items = []
    for i in range(n):
        label = int(rng.integers(len(CLASSES)))
        name = f"cls_{i:05d}.png"
        write_png(os.path.join(outdir, name), shape_image(rng, size, label))
        items.append({"file": name, "label": label})
    return CLASSES, items


def scene(rng, size, unique_shapes=False):
    """One grounding scene: (image, boxes [x, y, w, h], refs [{"expression", "box"}])."""
    img = background(rng, size)
    k = int(rng.integers(2, 4 if unique_shapes else 5))
    kinds = list(rng.permutation(len(SHAPES))) if unique_shapes else None
    objs = []
    for _ in range(200):
        if len(objs) == k:
            break
        # unique-shape scenes use larger shapes: at 32 px a 5 px circle and square look alike
        r = rng.uniform(0.14, 0.22) * size if unique_shapes else rng.uniform(0.08, 0.2) * size
        cx, cy = rng.uniform(r + 1, size - r - 1, 2)
        if any(abs(cx - o["cx"]) < r + o["r"] + 2 and abs(cy - o["cy"]) < r + o["r"] + 2 for o in objs):
            continue
        shape = SHAPES[kinds[len(objs)]] if unique_shapes else SHAPES[int(rng.integers(len(SHAPES)))]
        objs.append({"cx": cx, "cy": cy, "r": r, "colour": list(COLOURS)[int(rng.integers(len(COLOURS)))],
                     "shape": shape})
    for o in objs:
        img[shape_mask(size, o["shape"], o["cx"], o["cy"], o["r"])] = COLOURS[o["colour"]]
    boxes = [[round(o["cx"] - o["r"], 2), round(o["cy"] - o["r"], 2), round(2 * o["r"], 2), round(2 * o["r"], 2)]
             for o in objs]
    refs = []
    for t, o in enumerate(objs):
        same_kind = [p for p in objs if p["shape"] == o["shape"]]
        size_word = ""
        if len(same_kind) > 1:
            size_word = "small " if o["r"] == min(p["r"] for p in same_kind) else "big "
        expr = f"the {size_word}{o['colour']} {o['shape']}"
        others = [p for p in objs if p is not o and p["shape"] != o["shape"]]
        if others:
            p = others[0]
            dx, dy = o["cx"] - p["cx"], o["cy"] - p["cy"]
            # the axis with the larger separation, so the relation is visible
            if abs(dx) >= abs(dy):
                rel = "left of" if dx < 0 else "right of"
            else:
                rel = "above" if dy < 0 else "below"
            expr += f" {rel} the {p['shape']}"
        refs.append({"expression": expr, "box": t})
    return img, boxes, refs


def grounding(rng, n, size, outdir, unique_shapes=False):
    items = []
    for i in range(n):
        img, boxes, refs = scene(rng, size, unique_shapes)
        name = f"grd_{i:05d}.png"
        write_png(os.path.join(outdir, name), img)
        items.append({"file": name, "width": size, "height": size, "boxes": boxes, "refs": refs})
    return items


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--n-train", type=int, default=240)
    ap.add_argument("--n-test", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--unique-shapes", action="store_true",
                    help="grounding scenes hold each shape kind at most once, so an object stays identifiable "
                         "by its shape after CPT paints its box (the paint hides its colour)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    classes, items = classification(rng, args.n_train + args.n_test, args.size, args.out)
    with open(os.path.join(args.out, "classification.json"), "w") as f:
        json.dump({"classes": classes, "train": items[:args.n_train], "test": items[args.n_train:]}, f)
    g = grounding(rng, args.n_train + args.n_test, args.size, args.out, args.unique_shapes)
    with open(os.path.join(args.out, "grounding.json"), "w") as f:
        json.dump({"train": g[:args.n_train], "test": g[args.n_train:]}, f)
    print(json.dumps({"classes": len(classes), "classification": len(items), "grounding": len(g)}))


if __name__ == "__main__":
    main()
